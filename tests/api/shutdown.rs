//! Stopping the server: WebSocket clients get 1001, the chat log is flushed.

use std::sync::Arc;

use clap::Parser;
use parley::app::App;
use parley::config::Config;
use parley_ports::domain::RoomName;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::helpers::TestApp;
use crate::ws::{closed, connect, send, text};

#[tokio::test]
async fn shutdown_closes_sockets_with_1001_and_flushes_the_chat_log() {
    let config = Config::try_parse_from([
        "parley",
        "--argon2-memory-kib",
        "64",
        "--argon2-iterations",
        "1",
        "--database-url",
        "memory://",
    ])
    .unwrap();
    let app = App::build(&config).await.unwrap();
    let chat = Arc::clone(&app.chat);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run_until_stopped(listener, async move { stopped.await.unwrap_or(()) }));
    let test_app = TestApp { address, client: reqwest::Client::new(), chat: Arc::clone(&chat) };

    let mut ann = connect(&test_app, "/ws/chat/general/ann").await;
    text(&mut ann).await;
    send(&mut ann, "last words").await;
    assert_eq!(text(&mut ann).await, "ann: last words");
    stop.send(()).unwrap();
    let (code, reason) = closed(&mut ann).await;
    assert_eq!((code, reason.as_str()), (CloseCode::Away, "server shutting down"));
    running.await.unwrap().unwrap();

    let history = chat.history(&RoomName::parse("general").unwrap(), None, 10).await.unwrap();
    let kinds: Vec<&str> = history.iter().rev().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["joined", "message", "left"], "every event was logged before the server stopped");
}
