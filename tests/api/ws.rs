//! Rooms over real WebSocket connections: helpers shared by both protocols' tests.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::TestApp;

pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub const PATIENCE: Duration = Duration::from_secs(10);

pub async fn connect(app: &TestApp, path: &str) -> Client {
    try_connect(app, path).await.unwrap_or_else(|e| panic!("connecting to {path}: {e}"))
}

pub async fn try_connect(app: &TestApp, path: &str) -> Result<Client, tungstenite::Error> {
    let url = format!("{}{path}", app.address.replacen("http://", "ws://", 1));
    tokio_tungstenite::connect_async(url).await.map(|(client, _)| client)
}

/// The HTTP status a refused upgrade answered with.
pub async fn refused_status(app: &TestApp, path: &str) -> u16 {
    match try_connect(app, path).await {
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("{path}: expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("{path}: the upgrade was accepted"),
    }
}

/// The next text frame (pings and pongs skipped).
pub async fn text(client: &mut Client) -> String {
    loop {
        match tokio::time::timeout(PATIENCE, client.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return text.to_string(),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

pub async fn json(client: &mut Client) -> serde_json::Value {
    let frame = text(client).await;
    serde_json::from_str(&frame).unwrap_or_else(|e| panic!("not JSON ({e}): {frame}"))
}

pub async fn send(client: &mut Client, text: &str) {
    client.send(Message::Text(text.into())).await.unwrap();
}

/// Reads until the server's close frame; returns its code and reason.
pub async fn closed(client: &mut Client) -> (CloseCode, String) {
    loop {
        match tokio::time::timeout(PATIENCE * 3, client.next()).await {
            Ok(Some(Ok(Message::Close(Some(frame))))) => return (frame.code, frame.reason.to_string()),
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}
