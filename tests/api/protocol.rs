//! What every HTTP client meets: unknown paths, wrong methods, oversize
//! bodies, CORS, request ids, health.

use reqwest::StatusCode;
use reqwest::header::{ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_ORIGIN, ALLOW, ORIGIN, VARY};
use serde_json::json;

use crate::helpers::{assert_detail, body, spawn_app, spawn_app_with};

#[tokio::test]
async fn the_root_welcomes_and_health_checks_answer() {
    let app = spawn_app().await;
    let welcome = body(app.get("/", None).await).await;
    assert!(welcome["message"].as_str().unwrap().contains("Parley"));
    assert_eq!(body(app.get("/healthz", None).await).await["status"], "ok");
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(
        body(ready).await,
        json!({"status": "ready", "checks": {"user_store": "ok", "fanout": "ok", "chat_log": "ok"}})
    );
}

#[tokio::test]
async fn an_unknown_path_is_a_json_404_and_a_wrong_method_a_405_naming_the_allowed() {
    let app = spawn_app().await;
    assert_detail(app.get("/nowhere", None).await, StatusCode::NOT_FOUND, "Not Found").await;
    let wrong = app.client.delete(app.url("/api/v1/auth/login")).send().await.unwrap();
    assert_eq!(wrong.headers()[ALLOW], "POST");
    assert_detail(wrong, StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed").await;
    let wrong = app.client.patch(app.url("/api/v1/users/1")).send().await.unwrap();
    assert_eq!(wrong.headers()[ALLOW], "GET, PUT, DELETE");
}

#[tokio::test]
async fn an_oversize_body_is_a_413_whether_declared_or_streamed() {
    let app = spawn_app().await;
    let big = "x".repeat(65 * 1024);
    let declared = app.client.post(app.url("/api/v1/auth/register")).body(big.clone()).send().await.unwrap();
    assert_eq!(declared.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let stream = futures_stream(big);
    let streamed = app
        .client
        .post(app.url("/api/v1/auth/register"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

/// A body without a Content-Length: chunks of 8 KiB.
fn futures_stream(text: String) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        text.into_bytes().chunks(8 * 1024).map(|c| Ok(c.to_vec())).collect();
    tokio_stream::iter(chunks)
}

#[tokio::test]
async fn cors_preflights_are_answered_for_allowed_origins_only() {
    let app = spawn_app().await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/users/me"))
            .header(ORIGIN, origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let allowed = preflight("http://localhost:3000").await.unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(allowed.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], "http://localhost:3000");
    assert_eq!(allowed.headers()[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
    assert_eq!(allowed.headers()["access-control-allow-headers"], "authorization");
    assert!(allowed.headers()["access-control-allow-methods"].to_str().unwrap().contains("PUT"));
    let refused = preflight("http://evil.example").await.unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(refused.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());

    let simple = app.client.get(app.url("/")).header(ORIGIN, "http://localhost:3000").send().await.unwrap();
    assert_eq!(simple.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], "http://localhost:3000");
    let other = app.client.get(app.url("/")).header(ORIGIN, "http://evil.example").send().await.unwrap();
    assert!(other.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
}

#[tokio::test]
async fn cors_answers_say_what_a_cache_must_key_them_by() {
    let app = spawn_app().await;
    for origin in ["http://localhost:3000", "http://evil.example"] {
        let preflight = app
            .client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/users/me"))
            .header(ORIGIN, origin)
            .header("access-control-request-method", "GET")
            .send()
            .await
            .unwrap();
        let vary: Vec<_> = preflight.headers().get_all(VARY).iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(vary, ["Origin, Access-Control-Request-Method, Access-Control-Request-Headers"], "{origin}");
    }
    // The allowed origin is echoed: answers with it, without it, and to no
    // origin at all differ by Origin, so each says so.
    for origin in [Some("http://localhost:3000"), Some("http://evil.example"), None] {
        let mut request = app.client.get(app.url("/"));
        if let Some(origin) = origin {
            request = request.header(ORIGIN, origin);
        }
        let response = request.send().await.unwrap();
        let vary: Vec<_> = response.headers().get_all(VARY).iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(vary, ["Origin"], "{origin:?}");
    }
}

#[tokio::test]
async fn cors_origins_are_configurable() {
    let app = spawn_app_with(&["--cors-origins", "https://chat.example,https://admin.example"]).await;
    let response = app.client.get(app.url("/")).header(ORIGIN, "https://admin.example").send().await.unwrap();
    assert_eq!(response.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], "https://admin.example");
    let response = app.client.get(app.url("/")).header(ORIGIN, "http://localhost:3000").send().await.unwrap();
    assert!(response.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_a_sane_one_is_echoed() {
    let app = spawn_app().await;
    let generated = app.get("/", None).await;
    let first = generated.headers()["x-request-id"].to_str().unwrap().to_owned();
    let second = app.get("/", None).await.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(first, second);
    let echoed = app.client.get(app.url("/")).header("x-request-id", "trace-42").send().await.unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-42");
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let address = app.address.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    socket.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    // The server's header timeout (10 s) closes the connection; 30 s is a generous bound.
    let mut buffer = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(30), socket.read_to_end(&mut buffer)).await;
    assert!(read.is_ok(), "the server kept a stalled connection open");
}
