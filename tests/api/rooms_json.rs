//! The JSON protocol, `/ws/rooms/{room}`: tokens, presence, history, acks, resume.

use serde_json::json;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use crate::ws::{Client, connect, json, refused_status, send};

async fn join(app: &TestApp, room: &str, token: &str, query: &str) -> (Client, serde_json::Value, serde_json::Value) {
    let mut client = connect(app, &format!("/ws/rooms/{room}?token={token}{query}")).await;
    let presence = json(&mut client).await;
    let history = json(&mut client).await;
    (client, presence, history)
}

/// Skips frames until one of `kind` arrives.
async fn next_of(client: &mut Client, kind: &str) -> serde_json::Value {
    loop {
        let frame = json(client).await;
        if frame["type"] == kind {
            return frame;
        }
    }
}

#[tokio::test]
async fn a_token_is_needed_and_checked() {
    let app = spawn_app().await;
    app.account("ann").await;
    assert_eq!(refused_status(&app, "/ws/rooms/general").await, 401);
    assert_eq!(refused_status(&app, "/ws/rooms/general?token=forged.token.value").await, 401);
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "1", "exp": 1_000_000}),
        &jsonwebtoken::EncodingKey::from_secret(crate::helpers::SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(refused_status(&app, &format!("/ws/rooms/general?token={expired}")).await, 401);
}

#[tokio::test]
async fn joining_gives_presence_then_history_then_live_events_and_sends_are_acked() {
    let app = spawn_app().await;
    let ann = app.account("ann").await;
    let bob = app.account("bob").await;
    let (mut ann_ws, presence, history) = join(&app, "general", &ann.token, "").await;
    assert_eq!(presence, json!({"type": "presence", "room": "general", "members": ["ann"], "guests": []}));
    assert_eq!(history["type"], "history");
    assert_eq!(history["complete"], true);
    let joined = json(&mut ann_ws).await;
    assert_eq!((joined["type"].as_str(), joined["user"].as_str()), (Some("joined"), Some("ann")));

    send(&mut ann_ws, r#"{"type": "send", "text": "first words", "client_id": "c-1"}"#).await;
    let ack = next_of(&mut ann_ws, "ack").await;
    assert_eq!(ack["client_id"], "c-1");
    let message = next_of(&mut ann_ws, "message").await;
    assert_eq!(message["id"], ack["id"], "the ack names the event");
    assert_eq!(
        (message["user"].as_str(), message["text"].as_str(), message["room"].as_str()),
        (Some("ann"), Some("first words"), Some("general"))
    );
    assert!(message["ts"].as_str().unwrap().ends_with('Z'));

    let (_bob_ws, presence, history) = join(&app, "general", &bob.token, "").await;
    assert_eq!(presence["members"], json!(["ann", "bob"]));
    let said: Vec<&str> = history["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(said, ["joined", "message"], "the history a newcomer gets, oldest first");
    assert_eq!(history["events"][1]["text"], "first words");
}

#[tokio::test]
async fn both_protocols_share_a_room() {
    let app = spawn_app().await;
    let ann = app.account("ann").await;
    let (mut ann_ws, _, _) = join(&app, "general", &ann.token, "").await;
    let mut old = connect(&app, "/ws/chat/general/oldclient").await;
    assert_eq!(crate::ws::text(&mut old).await, "🔵 oldclient joined the room.");
    send(&mut ann_ws, r#"{"type": "send", "text": "hello old client"}"#).await;
    assert_eq!(crate::ws::text(&mut old).await, "ann: hello old client");
    send(&mut old, "hello json").await;
    let message = loop {
        let frame = json(&mut ann_ws).await;
        if frame["type"] == "message" && frame["user"] == "oldclient" {
            break frame;
        }
    };
    assert_eq!(message["text"], "hello json");
}

#[tokio::test]
async fn mistakes_get_an_error_event_and_the_connection_stays() {
    let app = spawn_app_with(&["--rate", "1", "--burst", "3"]).await;
    let ann = app.account("ann").await;
    let (mut ws, _, _) = join(&app, "general", &ann.token, "").await;
    send(&mut ws, "{not json").await;
    assert_eq!(next_of(&mut ws, "error").await["code"], "bad_request");
    send(&mut ws, r#"{"type": "shout", "text": "x"}"#).await;
    assert_eq!(next_of(&mut ws, "error").await["code"], "bad_request");
    send(&mut ws, &json!({"type": "send", "text": "x".repeat(5000)}).to_string()).await;
    assert_eq!(next_of(&mut ws, "error").await["code"], "too_long");
    send(&mut ws, r#"{"type": "send", "text": "one too many"}"#).await;
    assert_eq!(next_of(&mut ws, "error").await["code"], "rate_limited", "the burst of 3 is spent");
    // One message a second refills the bucket.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    send(&mut ws, r#"{"type": "send", "text": "still here", "client_id": 7}"#).await;
    assert_eq!(next_of(&mut ws, "ack").await["client_id"], 7);
}

#[tokio::test]
async fn a_client_that_reconnects_with_since_receives_what_it_missed() {
    let app = spawn_app().await;
    let ann = app.account("ann").await;
    let bob = app.account("bob").await;
    let (mut bob_ws, _, _) = join(&app, "general", &bob.token, "").await;
    let (mut ann_ws, _, _) = join(&app, "general", &ann.token, "").await;
    send(&mut ann_ws, r#"{"type": "send", "text": "seen"}"#).await;
    let seen = next_of(&mut ann_ws, "message").await;
    drop(ann_ws);
    for text in ["missed 1", "missed 2"] {
        send(&mut bob_ws, &json!({"type": "send", "text": text}).to_string()).await;
        next_of(&mut bob_ws, "ack").await;
    }
    let since = seen["id"].as_str().unwrap();
    let (_ann_ws, _, history) = join(&app, "general", &ann.token, &format!("&since={since}")).await;
    assert_eq!(history["complete"], true);
    let texts: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "message")
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["missed 1", "missed 2"]);
}

#[tokio::test]
async fn resuming_from_an_unknown_event_says_to_reload() {
    let app = spawn_app().await;
    let ann = app.account("ann").await;
    let unknown = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    let mut client = connect(&app, &format!("/ws/rooms/general?token={}&since={unknown}", ann.token)).await;
    json(&mut client).await;
    let gap = json(&mut client).await;
    assert_eq!((gap["type"].as_str(), gap["code"].as_str()), (Some("error"), Some("resume_gap")));
    assert_eq!(json(&mut client).await["complete"], false);
}
