//! A guest cannot pass for someone else: its events say it is a guest on the
//! JSON protocol and over REST, and on the original protocol no line of a
//! message reads as a line of its own.

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::helpers::{body, spawn_app};
use crate::ws::{Client, closed, connect, json, send, text};

/// Skips frames until a `message` event arrives.
async fn next_message(client: &mut Client) -> Value {
    loop {
        let frame = json(client).await;
        if frame["type"] == "message" {
            return frame;
        }
    }
}

#[tokio::test]
async fn a_guests_events_carry_guest_live_in_history_and_over_rest_and_a_members_do_not() {
    let app = spawn_app().await;
    let ann = app.account("ann").await;
    let mut registered = connect(&app, &format!("/ws/rooms/general?token={}", ann.token)).await;
    json(&mut registered).await; // presence
    json(&mut registered).await; // history
    json(&mut registered).await; // own join
    let mut guest = connect(&app, "/ws/chat/general/ann").await;
    text(&mut guest).await;
    let joined = json(&mut registered).await;
    assert_eq!((joined["type"].clone(), joined["guest"].clone()), (json!("joined"), json!(true)));

    send(&mut guest, "I am ann, trust me").await;
    let live = next_message(&mut registered).await;
    assert_eq!((live["user"].clone(), live["guest"].clone()), (json!("ann"), json!(true)));
    send(&mut registered, r#"{"type": "send", "text": "the real ann"}"#).await;
    let own = next_message(&mut registered).await;
    assert_eq!(own["text"], "the real ann");
    assert!(own.get("guest").is_none(), "a registered member's event has no flag: {own}");

    let bob = app.account("bob").await;
    let mut later = connect(&app, &format!("/ws/rooms/general?token={}", bob.token)).await;
    json(&mut later).await; // presence
    let history = json(&mut later).await;
    let said: Vec<(Value, Value)> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "message")
        .map(|e| (e["text"].clone(), e.get("guest").cloned().unwrap_or(Value::Null)))
        .collect();
    assert_eq!(said, [(json!("I am ann, trust me"), json!(true)), (json!("the real ann"), Value::Null)]);

    // The log is written beside the hot path: wait for it to catch up.
    let mut page = json!([]);
    for _ in 0..200 {
        page = body(app.get("/api/v1/rooms/general/history?limit=10", None).await).await;
        if page[0]["message"] == "the real ann" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let messages: Vec<(Value, Value)> = page
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "message")
        .map(|e| (e["message"].clone(), e.get("guest").cloned().unwrap_or(Value::Null)))
        .collect();
    assert_eq!(messages, [(json!("the real ann"), Value::Null), (json!("I am ann, trust me"), json!(true))]);
}

#[tokio::test]
async fn each_line_of_a_text_message_names_its_author() {
    let app = spawn_app().await;
    let mut bob = connect(&app, "/ws/chat/general/bob").await;
    text(&mut bob).await;
    let mut ann = connect(&app, "/ws/chat/general/ann").await;
    text(&mut ann).await;
    text(&mut bob).await;
    send(&mut ann, "hi\n🔴 bob left the room.").await;
    assert_eq!(text(&mut bob).await, "ann: hi\nann: 🔴 bob left the room.");
    send(&mut ann, "one\r\ntwo").await;
    assert_eq!(text(&mut bob).await, "ann: one\r\nann: two", "CRLF is one break, kept as sent");
}

#[tokio::test]
async fn a_control_character_is_refused_with_a_reason_of_its_own() {
    let app = spawn_app().await;
    let mut ann = connect(&app, "/ws/chat/general/ann").await;
    text(&mut ann).await;
    send(&mut ann, "tab\tis fine").await;
    assert_eq!(text(&mut ann).await, "ann: tab\tis fine");
    send(&mut ann, "\u{1b}[2Jcleared your screen").await;
    assert_eq!(closed(&mut ann).await, (CloseCode::Invalid, "control characters are not allowed in messages".into()));

    let zoe = app.account("zoe").await;
    let mut json_client = connect(&app, &format!("/ws/rooms/general?token={}", zoe.token)).await;
    send(&mut json_client, &json!({"type": "send", "text": "bell\u{7}"}).to_string()).await;
    let error = loop {
        let frame = json(&mut json_client).await;
        if frame["type"] == "error" {
            break frame;
        }
    };
    assert_eq!(error["code"], "control_character");
    send(&mut json_client, r#"{"type": "send", "text": "still connected", "client_id": 1}"#).await;
    assert_eq!(next_message(&mut json_client).await["text"], "still connected");
}
