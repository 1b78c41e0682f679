//! The original protocol, `/ws/chat/{room}/{username}`, byte for byte.

use futures_util::SinkExt;
use reqwest::StatusCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::helpers::{body, spawn_app, spawn_app_with};
use crate::ws::{PATIENCE, closed, connect, refused_status, send, text};

#[tokio::test]
async fn members_see_the_originals_strings_in_one_order() {
    let app = spawn_app().await;
    let mut ann = connect(&app, "/ws/chat/general/ann").await;
    assert_eq!(text(&mut ann).await, "🔵 ann joined the room.");
    let mut bob = connect(&app, "/ws/chat/general/bob").await;
    assert_eq!(text(&mut bob).await, "🔵 bob joined the room.", "the newcomer sees its own join first");
    assert_eq!(text(&mut ann).await, "🔵 bob joined the room.");
    let mut elsewhere = connect(&app, "/ws/chat/random/cat").await;
    assert_eq!(text(&mut elsewhere).await, "🔵 cat joined the room.");

    send(&mut ann, "hello").await;
    send(&mut bob, "hi ann: how are you?").await;
    send(&mut ann, "").await;
    for member in [&mut ann, &mut bob] {
        assert_eq!(text(member).await, "ann: hello", "the sender gets its own message too");
        assert_eq!(text(member).await, "bob: hi ann: how are you?");
        assert_eq!(text(member).await, "ann: ");
    }
    bob.close(None).await.unwrap();
    assert_eq!(text(&mut ann).await, "🔴 bob left the room.");
    send(&mut elsewhere, "only here").await;
    assert_eq!(text(&mut elsewhere).await, "cat: only here");
    send(&mut ann, "still here").await;
    assert_eq!(text(&mut ann).await, "ann: still here", "nothing from the other room came between");
}

#[tokio::test]
async fn names_in_any_script_are_percent_decoded() {
    let app = spawn_app().await;
    let mut zoe = connect(&app, "/ws/chat/%E6%97%A5%E6%9C%AC/zo%C3%AB").await;
    assert_eq!(text(&mut zoe).await, "🔵 zoë joined the room.");
    send(&mut zoe, "こんにちは").await;
    assert_eq!(text(&mut zoe).await, "zoë: こんにちは");
}

#[tokio::test]
async fn a_dropped_connection_counts_as_leaving() {
    let app = spawn_app().await;
    let mut ann = connect(&app, "/ws/chat/general/ann").await;
    text(&mut ann).await;
    let mut bob = connect(&app, "/ws/chat/general/bob").await;
    text(&mut bob).await;
    text(&mut ann).await;
    drop(bob);
    assert_eq!(text(&mut ann).await, "🔴 bob left the room.");
}

#[tokio::test]
async fn bad_names_and_plain_http_are_refused_before_the_upgrade() {
    let app = spawn_app().await;
    assert_eq!(refused_status(&app, "/ws/chat/general/a%0Ab").await, 400);
    assert_eq!(refused_status(&app, &format!("/ws/chat/general/{}", "x".repeat(101))).await, 400);
    assert_eq!(refused_status(&app, "/ws/chat/general").await, 404);
    let plain = app.get("/ws/chat/general/ann", None).await;
    assert_eq!(plain.status(), StatusCode::UPGRADE_REQUIRED);
}

#[tokio::test]
async fn binary_oversize_and_invalid_frames_close_with_their_codes() {
    let app = spawn_app().await;
    let mut binary = connect(&app, "/ws/chat/general/ann").await;
    binary.send(Message::Binary(vec![1, 2, 3].into())).await.unwrap();
    assert_eq!(closed(&mut binary).await.0, CloseCode::Unsupported);

    let mut big = connect(&app, "/ws/chat/general/bob").await;
    big.send(Message::Text("x".repeat(17 * 1024).into())).await.unwrap();
    assert_eq!(closed(&mut big).await.0, CloseCode::Size);

    let mut long = connect(&app, "/ws/chat/general/cat").await;
    long.send(Message::Text("x".repeat(5000).into())).await.unwrap();
    assert_eq!(closed(&mut long).await.0, CloseCode::Size, "more characters than a message may have");
}

#[tokio::test]
async fn invalid_utf8_in_a_text_frame_closes_with_1007() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let address = app.address.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "GET /ws/chat/general/raw HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    // A masked text frame holding 0xFF, which is never valid UTF-8.
    socket.write_all(&[0x81, 0x81, 1, 2, 3, 4, 0xFF ^ 1]).await.unwrap();
    let mut received = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), socket.read_to_end(&mut received)).await;
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    // The close frame: 0x88, length, then the code 1007 (0x03EF).
    let close = received.windows(4).position(|w| w[0] == 0x88 && w[2] == 0x03 && w[3] == 0xEF);
    assert!(close.is_some(), "no 1007 close frame in {received:?}");
}

#[tokio::test]
async fn what_is_said_reaches_the_chat_log_and_search() {
    let app = spawn_app().await;
    let mut ann = connect(&app, "/ws/chat/general/ann").await;
    text(&mut ann).await;
    send(&mut ann, "searchable words").await;
    text(&mut ann).await;
    for _ in 0..200 {
        let hits = body(app.get("/search?room=general&query=searchable", None).await).await;
        if hits.as_array().is_some_and(|h| h.len() == 1) {
            assert_eq!(hits[0]["user"], "ann");
            assert_eq!(hits[0]["message"], "searchable words");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the message never reached the chat log");
}

#[tokio::test]
async fn a_reader_that_stalls_is_closed_while_the_others_receive_everything() {
    use futures_util::StreamExt;
    // One publisher floods from one address: no per-client limit may drop its messages.
    let app = spawn_app_with(&["--member-queue", "256", "--limits", "off"]).await;
    let mut stalled = connect(&app, "/ws/chat/big/stalled").await;
    let mut reader = connect(&app, "/ws/chat/big/reader").await;
    let publisher = connect(&app, "/ws/chat/big/publisher").await;
    assert_eq!(text(&mut reader).await, "🔵 reader joined the room.");
    assert_eq!(text(&mut reader).await, "🔵 publisher joined the room.");
    // Far more than the stalled client's socket buffers and queue can hold.
    let messages = 8000usize;
    let payload = "y".repeat(4000);
    // The stalled member is cut off as soon as its queue is full, mid-flood:
    // its leave reaches the others between two messages.
    let reading = tokio::spawn(async move {
        let mut n = 0;
        let mut left = false;
        while n < messages {
            let frame = text(&mut reader).await;
            if frame == "🔴 stalled left the room." {
                left = true;
                continue;
            }
            assert!(frame.starts_with(&format!("publisher: {n} ")), "message {n} arrived in order");
            n += 1;
        }
        left
    });
    // The publisher hears its own messages too; it keeps 16 in flight.
    let (mut sink, mut echoes) = publisher.split();
    for n in 0..messages {
        sink.send(Message::Text(format!("{n} {payload}").into())).await.unwrap();
        if n >= 16 {
            loop {
                match echoes.next().await {
                    Some(Ok(Message::Text(t))) if t.starts_with("publisher:") => break,
                    Some(Ok(_)) => continue,
                    other => panic!("publisher lost its connection: {other:?}"),
                }
            }
        }
    }
    assert!(reading.await.unwrap(), "the stalled member left while the room was flooded, not after it");
    // Only now does the stalled client read: what was buffered, then the end —
    // a 1008 "too slow" if the close frame still fitted in its socket, else the
    // socket simply ends (a client that does not read is not waited for).
    loop {
        match tokio::time::timeout(PATIENCE * 3, stalled.next()).await {
            Ok(Some(Ok(Message::Close(Some(frame))))) => {
                assert_eq!(frame.code, CloseCode::Policy);
                assert!(frame.reason.contains("too slow"), "{}", frame.reason);
                break;
            }
            Ok(Some(Ok(_))) => continue,
            Ok(None | Some(Err(_))) => break,
            Err(_) => panic!("the stalled client was never cut off"),
        }
    }
}

#[tokio::test]
async fn a_flood_beyond_the_rate_limit_is_closed_as_abuse() {
    let app = spawn_app_with(&["--rate", "1", "--burst", "2"]).await;
    let mut flooder = connect(&app, "/ws/chat/general/flood").await;
    text(&mut flooder).await;
    for n in 0..200 {
        if flooder.send(Message::Text(format!("{n}").into())).await.is_err() {
            break;
        }
    }
    let (code, reason) = closed(&mut flooder).await;
    assert_eq!((code, reason.as_str()), (CloseCode::Policy, "rate limit exceeded"));
}

#[tokio::test]
async fn connections_beyond_the_maximum_are_refused_with_503() {
    let app = spawn_app_with(&["--max-connections", "2"]).await;
    let _a = connect(&app, "/ws/chat/general/a").await;
    let _b = connect(&app, "/ws/chat/general/b").await;
    assert_eq!(refused_status(&app, "/ws/chat/general/c").await, 503);
}

#[tokio::test]
async fn with_auth_required_the_text_protocol_needs_the_users_own_token() {
    let app = spawn_app_with(&["--auth-mode", "required"]).await;
    let ann = app.account("ann").await;
    assert_eq!(refused_status(&app, "/ws/chat/general/ann").await, 401);
    assert_eq!(refused_status(&app, &format!("/ws/chat/general/bob?token={}", ann.token)).await, 403);
    let mut client = connect(&app, &format!("/ws/chat/general/ann?token={}", ann.token)).await;
    assert_eq!(text(&mut client).await, "🔵 ann joined the room.");
}

#[tokio::test]
async fn a_client_that_never_answers_pings_is_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with(&["--ping-seconds", "1"]).await;
    let address = app.address.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "GET /ws/chat/general/mute HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    // Never answer: after two silent intervals the server closes, saying why.
    let mut received = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(15), socket.read_to_end(&mut received)).await;
    let text = String::from_utf8_lossy(&received);
    assert!(text.contains("no pong received"), "{text}");
}
