//! Storage down: requests fail fast with 503 and `Retry-After`, `/readyz`
//! names what is down, and nothing is a 500. The services are wired here by
//! hand over adapters that refuse every call.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parley_auth::{Argon2Hasher, HashCost, JwtAlgorithm, JwtIssuer};
use parley_memory::SystemClock;
use parley_ports::domain::{ChatEvent, EventId, EventIds, RoomName, User, UserId};
use parley_ports::hub::DEFAULT_QUEUE;
use parley_ports::{
    Accounts, Chat, ChatLog, ChatLogError, ChatRecorder, NewUserRecord, Rooms, SearchQuery, UserChanges, UserQuery,
    UserRecord, UserStore, UserStoreError,
};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{PASSWORD, body, new_user};

struct Down;

fn refused() -> parley_ports::BoxError {
    "connection refused".into()
}

#[async_trait]
impl UserStore for Down {
    async fn create(&self, _: NewUserRecord) -> Result<User, UserStoreError> {
        Err(UserStoreError::Unavailable(refused()))
    }
    async fn get(&self, _: UserId) -> Result<Option<User>, UserStoreError> {
        Err(UserStoreError::Unavailable(refused()))
    }
    async fn find_by_login(&self, _: &str) -> Result<Option<UserRecord>, UserStoreError> {
        Err(UserStoreError::Unavailable(refused()))
    }
    async fn list(&self, _: &UserQuery) -> Result<Vec<User>, UserStoreError> {
        Err(UserStoreError::Unavailable(refused()))
    }
    async fn update(&self, _: UserId, _: UserChanges) -> Result<User, UserStoreError> {
        Err(UserStoreError::Unavailable(refused()))
    }
    async fn delete(&self, _: UserId) -> Result<(), UserStoreError> {
        Err(UserStoreError::Unavailable(refused()))
    }
    async fn ping(&self) -> Result<(), UserStoreError> {
        Err(UserStoreError::Unavailable(refused()))
    }
}

#[async_trait]
impl ChatLog for Down {
    async fn append(&self, _: &[ChatEvent]) -> Result<(), ChatLogError> {
        Err(ChatLogError::Unavailable(refused()))
    }
    async fn search(&self, _: &SearchQuery) -> Result<Vec<ChatEvent>, ChatLogError> {
        Err(ChatLogError::Unavailable(refused()))
    }
    async fn history(&self, _: &RoomName, _: Option<EventId>, _: u32) -> Result<Vec<ChatEvent>, ChatLogError> {
        Err(ChatLogError::Unavailable(refused()))
    }
    async fn since(&self, _: &RoomName, _: EventId, _: u32) -> Result<Vec<ChatEvent>, ChatLogError> {
        Err(ChatLogError::Unavailable(refused()))
    }
    async fn ping(&self) -> Result<(), ChatLogError> {
        Err(ChatLogError::Unavailable(refused()))
    }
}

async fn spawn_with_storage_down() -> (String, reqwest::Client) {
    let clock = Arc::new(SystemClock);
    let hasher = Arc::new(Argon2Hasher::new(HashCost::FAST_INSECURE, 2).unwrap());
    let tokens = Arc::new(JwtIssuer::new(b"secret", JwtAlgorithm::HS256, Duration::from_secs(60), clock.clone()));
    let accounts = Arc::new(Accounts::new(Arc::new(Down), hasher, tokens, clock.clone()));
    let log: Arc<dyn ChatLog> = Arc::new(Down);
    let (recorder, _writer) = ChatRecorder::new(log.clone(), clock.clone(), 16);
    let chat = Arc::new(Chat::new(Rooms::local(DEFAULT_QUEUE), log, recorder, clock, EventIds::new(1)));
    let api = parley_http::Api {
        accounts,
        chat,
        body_limit: 64 * 1024,
        body_timeout: Duration::from_secs(5),
        websockets: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(parley_http::serve(listener, api, parley_http::ServerConfig::default(), std::future::pending()));
    (address, reqwest::Client::new())
}

#[tokio::test]
async fn with_storage_down_requests_get_503_with_retry_after_and_readyz_says_what_is_down() {
    let (address, client) = spawn_with_storage_down().await;
    let register = client.post(format!("{address}/api/v1/auth/register")).json(&new_user("ann")).send().await.unwrap();
    let login = client
        .post(format!("{address}/api/v1/auth/login"))
        .form(&[("username", "ann"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let me = client.get(format!("{address}/api/v1/users/me")).bearer_auth("x.y.z").send().await.unwrap();
    let search = client.get(format!("{address}/search?room=general&query=hello")).send().await.unwrap();
    for response in [register, login, search] {
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["retry-after"], "5");
        let detail = body(response).await["detail"].as_str().unwrap().to_owned();
        assert!(!detail.contains("refused"), "the cause stays in the server's log: {detail}");
    }
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED, "a bad token is refused before storage is asked");

    let ready = client.get(format!("{address}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let ready = body(ready).await;
    assert_eq!(ready["status"], "unavailable");
    assert_eq!(ready["checks"]["fanout"], "ok");
    assert!(ready["checks"]["user_store"].as_str().unwrap().contains("unavailable"));
    assert!(ready["checks"]["chat_log"].as_str().unwrap().contains("unavailable"));
    assert_eq!(body(client.get(format!("{address}/healthz")).send().await.unwrap()).await, json!({"status": "ok"}));
}
