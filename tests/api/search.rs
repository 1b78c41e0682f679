//! Searching a room's history, at both paths the original served and documented.

use std::time::Duration;

use parley_ports::domain::{DisplayName, MessageText, RoomName};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestApp, assert_invalid, body, spawn_app};

/// Says each text in `room` as `user`, through the chat service.
async fn say(app: &TestApp, room: &str, user: &str, texts: &[&str]) {
    let (member, _subscription) =
        app.chat.join(RoomName::parse(room).unwrap(), DisplayName::parse(user).unwrap(), false).await.unwrap();
    for text in texts {
        app.chat.post(&member, MessageText::parse(*text).unwrap()).await.unwrap();
    }
}

/// Searches until `expected` hits come back: the chat log is written beside
/// the hot path, so a message is searchable a moment after it was said.
async fn search(app: &TestApp, path: &str, expected: usize) -> Vec<Value> {
    for _ in 0..200 {
        let hits = body(app.get(path, None).await).await.as_array().cloned().unwrap_or_default();
        if hits.len() >= expected {
            return hits;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{path} never returned {expected} hits");
}

#[tokio::test]
async fn search_finds_a_rooms_messages_in_the_originals_shape_at_both_paths() {
    let app = spawn_app().await;
    say(&app, "general", "ann", &["Hello world", "nothing here", "say HELLO again"]).await;
    say(&app, "random", "bob", &["hello from elsewhere"]).await;
    for path in ["/search?room=general&query=hello", "/api/v1/search?room=general&query=hello"] {
        let hits = search(&app, path, 2).await;
        assert_eq!(hits.len(), 2);
        for hit in &hits {
            assert_eq!(hit["room"], "general");
            assert_eq!(hit["user"], "ann");
            assert!(hit["message"].as_str().unwrap().to_lowercase().contains("hello"));
            assert!(hit["timestamp"].as_str().unwrap().ends_with('Z'));
            assert_eq!(hit["id"].as_str().unwrap().len(), 26);
        }
    }
}

#[tokio::test]
async fn search_pages_newest_first_when_asked() {
    let app = spawn_app().await;
    say(&app, "general", "ann", &["ping 1", "ping 2", "ping 3", "ping 4"]).await;
    search(&app, "/search?room=general&query=ping", 4).await;
    let page = body(app.get("/search?room=general&query=ping&order=newest&limit=2&offset=1", None).await).await;
    let texts: Vec<&str> = page.as_array().unwrap().iter().map(|h| h["message"].as_str().unwrap()).collect();
    assert_eq!(texts, ["ping 3", "ping 2"]);
}

#[tokio::test]
async fn search_without_room_or_query_or_with_bad_paging_is_a_422() {
    let app = spawn_app().await;
    assert_invalid(app.get("/search?query=x", None).await, &["query", "room"], "missing").await;
    assert_invalid(app.get("/search?room=general", None).await, &["query", "query"], "missing").await;
    assert_invalid(app.get("/search?room=general&query=x&limit=0", None).await, &["query", "limit"], "range_error")
        .await;
    assert_invalid(app.get("/search?room=general&query=x&order=oldest", None).await, &["query", "order"], "enum").await;
    assert_invalid(
        app.get("/search?room=general&query=a%00b", None).await,
        &["query", "query"],
        "string_pattern_mismatch",
    )
    .await;
    let nothing = app.get("/search?room=empty&query=x", None).await;
    assert_eq!(nothing.status(), StatusCode::OK);
    assert_eq!(body(nothing).await, serde_json::json!([]));
}
