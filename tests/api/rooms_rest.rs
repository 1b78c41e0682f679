//! The rooms' REST side: which rooms are busy, who is in one, its history.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{assert_invalid, body, spawn_app};
use crate::ws::{connect, send, text};

#[tokio::test]
async fn rooms_members_and_history_describe_what_happens_over_websockets() {
    let app = spawn_app().await;
    let mut ann = connect(&app, "/ws/chat/general/ann").await;
    text(&mut ann).await;
    let mut bob = connect(&app, "/ws/chat/general/bob").await;
    text(&mut bob).await;
    let mut zoe = connect(&app, "/ws/chat/%E6%97%A5%E6%9C%AC/zo%C3%AB").await;
    text(&mut zoe).await;
    for n in 1..=5 {
        send(&mut ann, &format!("m{n}")).await;
    }
    for _ in 0..6 {
        text(&mut ann).await;
    }

    assert_eq!(
        body(app.get("/api/v1/rooms", None).await).await,
        json!([{"room": "general", "members": 2}, {"room": "日本", "members": 1}])
    );
    assert_eq!(
        body(app.get("/api/v1/rooms/general/members", None).await).await,
        json!({"room": "general", "members": ["ann", "bob"], "guests": ["ann", "bob"]}),
        "members of the original protocol are guests, and the list says so"
    );
    assert_eq!(body(app.get("/api/v1/rooms/%E6%97%A5%E6%9C%AC/members", None).await).await["members"], json!(["zoë"]));

    // The log is written beside the hot path: wait for it to catch up.
    let mut page = json!([]);
    for _ in 0..200 {
        page = body(app.get("/api/v1/rooms/general/history?limit=3", None).await).await;
        if page[0]["message"] == "m5" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let texts = |page: &serde_json::Value| {
        page.as_array().unwrap().iter().map(|e| e["message"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(texts(&page), ["m5", "m4", "m3"]);
    let before = page[2]["id"].as_str().unwrap();
    let older = body(app.get(&format!("/api/v1/rooms/general/history?limit=3&before={before}"), None).await).await;
    assert_eq!(texts(&older), ["m2", "m1", ""]);
    assert_eq!(older[2]["type"], "joined");

    assert_invalid(
        app.get("/api/v1/rooms/general/history?before=nope", None).await,
        &["query", "before"],
        "value_error",
    )
    .await;
    assert_invalid(app.get("/api/v1/rooms/a%0Ab/members", None).await, &["path", "room"], "string_pattern_mismatch")
        .await;
    assert_eq!(app.get("/api/v1/rooms/empty/history", None).await.status(), StatusCode::OK);
}
