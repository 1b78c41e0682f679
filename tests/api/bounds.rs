//! Memory bounded in bytes, and large frames that still get through: a
//! member that never reads is cut off once its queue's bytes pass the bound,
//! and its socket closed without waiting out the write timeout; a history
//! larger than the socket's write limit arrives whole, over several frames.

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::helpers::{TestApp, body, spawn_app_with};
use crate::ws::{Client, PATIENCE, connect, json, send, text};

/// Rates out of the way: these tests post as fast as the server takes it.
const FAST: [&str; 6] = ["--limits", "off", "--rate", "1000000", "--burst", "1000000"];

/// 4 000 four-byte characters: 16 000 bytes, under the 16 KiB message limit.
fn large(n: usize) -> String {
    format!("{n:03} {}", "𝄞".repeat(4000))
}

/// A WebSocket client on a raw socket with a small receive buffer, that
/// reads the upgrade's answer and then nothing more.
async fn never_reading(app: &TestApp, path: &str) -> TcpStream {
    let address = app.address.trim_start_matches("http://").parse().unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(address).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    // The answer's head, byte by byte, so nothing after it is read.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.unwrap());
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    stream
}

#[tokio::test]
async fn a_member_that_never_reads_is_cut_off_by_bytes_and_its_socket_closed_at_once() {
    // Only the byte bound can cut anyone off (a million events), and a write
    // times out only after ten minutes: the stuck member can be gone within
    // this test only if its cut-off ends its blocked write.
    let mut args = vec!["--member-queue", "1000000", "--member-queue-bytes", "65536"];
    args.extend_from_slice(&["--write-timeout-seconds", "600"]);
    args.extend_from_slice(&FAST);
    let app = spawn_app_with(&args).await;
    let mut stuck = never_reading(&app, "/ws/chat/flood/stuck").await;
    let mut poster = connect(&app, "/ws/chat/flood/poster").await;
    assert_eq!(text(&mut poster).await, "🔵 poster joined the room.");

    // Up to 6.4 MB, one message at a time (each read back before the next, so
    // the poster keeps up), until the room is told the stuck member left.
    let mut left = false;
    for n in 0..400 {
        send(&mut poster, &large(n)).await;
        loop {
            let frame = text(&mut poster).await;
            if frame == "🔴 stuck left the room." {
                left = true;
            } else if frame.starts_with(&format!("poster: {n:03} ")) {
                break;
            }
        }
        if left {
            break;
        }
    }
    if !left {
        assert_eq!(text(&mut poster).await, "🔴 stuck left the room.", "the stuck member was cut off");
    }

    // It left the room only after its socket was let go: reading now finds
    // the end of what the server wrote, not a connection still open.
    let mut received = 0usize;
    let mut buffer = vec![0; 64 * 1024];
    let ended = tokio::time::timeout(PATIENCE, async {
        loop {
            match stuck.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => received += read,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stuck member's socket is still open after {received} bytes");
}

/// Ann posts `count` large messages to `room`, each acknowledged before the
/// next, and waits until the chat log has them all; ann stays in the room.
async fn fill_history(app: &TestApp, room: &str, count: usize) -> Client {
    let ann = app.account("ann").await;
    let mut ann_ws = connect(app, &format!("/ws/rooms/{room}?token={}&history=0", ann.token)).await;
    for n in 0..count {
        send(&mut ann_ws, &serde_json::json!({"type": "send", "text": large(n)}).to_string()).await;
        while json(&mut ann_ws).await["type"] != "ack" {}
    }
    // The log is written beside the hot path: wait for it to catch up.
    let last = format!("{:03} ", count - 1);
    for _ in 0..500 {
        let page = body(app.get(&format!("/api/v1/rooms/{room}/history?limit=1"), None).await).await;
        if page[0]["message"].as_str().is_some_and(|m| m.starts_with(&last)) {
            return ann_ws;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the chat log never caught up");
}

/// The history frames after presence, up to and including the last one.
async fn history_frames(client: &mut Client) -> Vec<Value> {
    let presence = json(client).await;
    assert_eq!(presence["type"], "presence");
    let mut frames = Vec::new();
    loop {
        let raw = text(client).await;
        assert!(raw.len() < 512 * 1024, "a history frame of {} bytes, near the 1 MiB write limit", raw.len());
        let frame: Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(frame["type"], "history", "{frame}");
        let more = frame["more"] == true;
        frames.push(frame);
        if !more {
            return frames;
        }
    }
}

#[tokio::test]
async fn a_history_larger_than_the_write_limit_arrives_whole_in_order_over_several_frames() {
    let app = spawn_app_with(&FAST).await;
    // 100 × 16 000 bytes: 1.6 MB of history, most of it past the room's
    // recent events (1 MiB, so about 20 of these) and read from the chat log.
    let _ann = fill_history(&app, "big", 100).await;
    let bob = app.account("bob").await;
    let mut bob_ws = connect(&app, &format!("/ws/rooms/big?token={}&history=100", bob.token)).await;
    let frames = history_frames(&mut bob_ws).await;
    assert!(frames.len() > 1, "split over several frames");
    let (last, before) = frames.split_last().unwrap();
    assert!(before.iter().all(|f| f["more"] == true && f.get("complete").is_none()), "all but the last say more");
    assert_eq!(last["complete"], true);
    let texts: Vec<String> = frames
        .iter()
        .flat_map(|f| f["events"].as_array().unwrap().clone())
        .filter(|e| e["type"] == "message")
        .map(|e| e["text"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (0..100).map(large).collect();
    let heads: Vec<&str> = texts.iter().map(|t| &t[..3]).collect();
    assert!(texts == expected, "{} messages, not the 100 posted in order: {heads:?}", texts.len());
    let joined = json(&mut bob_ws).await;
    assert_eq!((joined["type"].as_str(), joined["user"].as_str()), (Some("joined"), Some("bob")), "then live");
}

#[tokio::test]
async fn a_join_that_would_open_a_room_past_the_cap_is_refused_with_a_reason() {
    let app = spawn_app_with(&["--max-rooms", "1"]).await;
    let mut ann = connect(&app, "/ws/chat/one/ann").await;
    assert_eq!(text(&mut ann).await, "🔵 ann joined the room.");
    match crate::ws::try_connect(&app, "/ws/chat/two/bob").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 503);
            let detail = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned();
            assert!(detail.contains("Too many rooms"), "{detail}");
        }
        other => panic!("expected a 503, got {:?}", other.map(|_| ())),
    }
    let mut bob = connect(&app, "/ws/chat/one/bob").await;
    assert_eq!(text(&mut bob).await, "🔵 bob joined the room.", "an open room still takes members");
}
