//! Limits per client across connections, and how WebSocket handshakes are
//! refused: clients bind 127.0.0.2, 127.0.0.3… (all of 127/8 is loopback) to
//! act as different addresses.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parley_auth::{Argon2Hasher, HashCost, JwtAlgorithm, JwtIssuer};
use parley_memory::{MemoryChatLog, MemoryUserStore, SystemClock};
use parley_ports::domain::{EventIds, User, UserId};
use parley_ports::hub::DEFAULT_QUEUE;
use parley_ports::{
    Accounts, Chat, ChatRecorder, NewUserRecord, Rooms, TokenIssuer, UserChanges, UserQuery, UserRecord, UserStore,
    UserStoreError,
};
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, http};

use crate::helpers::{TestApp, serve, spawn_app_with};
use crate::ws::{Client, closed, connect, json, send, text};

/// A WebSocket to `path` from the local address `from`.
async fn connect_from(app: &TestApp, from: &str, path: &str) -> Result<Client, tungstenite::Error> {
    let server: SocketAddr = app.address.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from.parse().unwrap(), 0)).unwrap();
    let stream = socket.connect(server).await.unwrap();
    let url = format!("ws://{server}{path}");
    tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream)).await.map(|(client, _)| client)
}

async fn open_from(app: &TestApp, from: &str, path: &str) -> Client {
    connect_from(app, from, path).await.unwrap_or_else(|e| panic!("{path} from {from}: {e}"))
}

/// The refused upgrade's answer.
async fn refused_from(app: &TestApp, from: &str, path: &str) -> http::Response<Option<Vec<u8>>> {
    match connect_from(app, from, path).await {
        Err(tungstenite::Error::Http(response)) => *response,
        Err(other) => panic!("{path}: expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("{path} from {from}: the upgrade was accepted"),
    }
}

/// Joins the JSON protocol from `from`, past the greeting.
async fn join_json(app: &TestApp, from: &str, token: &str) -> Client {
    let mut client = open_from(app, from, &format!("/ws/rooms/general?token={token}")).await;
    assert_eq!(json(&mut client).await["type"], "presence");
    assert_eq!(json(&mut client).await["type"], "history");
    client
}

/// Sends a message and returns what answered it: `Ok(())` for an ack, the
/// `rate_limited` message otherwise.
async fn say(client: &mut Client, text: &str) -> Result<(), String> {
    send(client, &serde_json::json!({"type": "send", "text": text}).to_string()).await;
    loop {
        let frame = json(client).await;
        match frame["type"].as_str() {
            Some("ack") => return Ok(()),
            Some("error") => {
                assert_eq!(frame["code"], "rate_limited", "{frame}");
                return Err(frame["message"].as_str().unwrap_or_default().to_owned());
            }
            _ => continue,
        }
    }
}

/// Per-connection rates high enough never to be what refuses.
const ONE_CONNECTION_UNLIMITED: [&str; 4] = ["--rate", "100000", "--burst", "100000"];

#[tokio::test]
async fn messages_are_limited_per_address_across_its_connections_and_another_address_is_unaffected() {
    let mut args = vec!["--address-rate", "1", "--address-burst", "3", "--user-rate", "0"];
    args.extend(ONE_CONNECTION_UNLIMITED);
    let app = spawn_app_with(&args).await;
    let (ann, bob, cat) = (app.account("ann").await, app.account("bob").await, app.account("cat").await);
    let mut first = join_json(&app, "127.0.0.2", &ann.token).await;
    let mut second = join_json(&app, "127.0.0.2", &bob.token).await;
    let mut elsewhere = join_json(&app, "127.0.0.3", &cat.token).await;

    assert_eq!(say(&mut first, "1").await, Ok(()));
    assert_eq!(say(&mut second, "2").await, Ok(()));
    assert_eq!(say(&mut first, "3").await, Ok(()));
    // The address's burst is spent, by two connections of two users.
    let refused = say(&mut second, "4").await.expect_err("the address's fourth message in a burst of 3");
    assert!(refused.contains("address"), "{refused}");
    for n in 0..3 {
        assert_eq!(say(&mut elsewhere, &n.to_string()).await, Ok(()), "another address sends on");
    }
}

#[tokio::test]
async fn messages_are_limited_per_user_across_their_addresses() {
    let mut args = vec!["--user-rate", "1", "--user-burst", "2", "--address-rate", "0"];
    args.extend(ONE_CONNECTION_UNLIMITED);
    let app = spawn_app_with(&args).await;
    let (ann, bob) = (app.account("ann").await, app.account("bob").await);
    let mut at_home = join_json(&app, "127.0.0.2", &ann.token).await;
    let mut at_work = join_json(&app, "127.0.0.3", &ann.token).await;
    let mut bob_at_home = join_json(&app, "127.0.0.2", &bob.token).await;

    assert_eq!(say(&mut at_home, "1").await, Ok(()));
    assert_eq!(say(&mut at_work, "2").await, Ok(()));
    let refused = say(&mut at_home, "3").await.expect_err("ann's third message in a burst of 2");
    assert!(refused.contains("account"), "{refused}");
    for n in 0..2 {
        assert_eq!(say(&mut bob_at_home, &n.to_string()).await, Ok(()), "another user at the same address");
    }
}

/// The name in a `🔵 … joined` or `🔴 … left` line.
fn comer_or_goer(line: &str) -> Option<&str> {
    let line = line.strip_prefix("🔵 ").or_else(|| line.strip_prefix("🔴 "))?;
    line.strip_suffix(" joined the room.").or_else(|| line.strip_suffix(" left the room."))
}

#[tokio::test]
async fn a_join_flood_is_refused_with_429_and_retry_after_and_the_room_sees_none_of_it() {
    let app = spawn_app_with(&["--join-rate", "1", "--join-burst", "3"]).await;
    let mut watcher = open_from(&app, "127.0.0.3", "/ws/chat/general/watcher").await;
    assert_eq!(text(&mut watcher).await, "🔵 watcher joined the room.");

    let mut admitted = Vec::new();
    let mut refused = 0;
    for n in 0..12 {
        let name = format!("flood{n}");
        match connect_from(&app, "127.0.0.2", &format!("/ws/chat/general/{name}")).await {
            Ok(client) => {
                drop(client);
                admitted.push(name);
            }
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 429);
                let wait: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
                assert!(wait >= 1, "Retry-After: {wait}");
                let body: serde_json::Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
                assert!(body["detail"].as_str().unwrap().contains("Too many joins"), "{body}");
                refused += 1;
            }
            Err(other) => panic!("join {n}: {other}"),
        }
    }
    assert!(refused >= 6, "a burst of 3 at 1/s lets few of 12 quick joins in; {refused} refused");

    let mut late = open_from(&app, "127.0.0.3", "/ws/chat/general/late").await;
    assert_eq!(text(&mut late).await, "🔵 late joined the room.", "another address joins");
    loop {
        let line = text(&mut watcher).await;
        if line == "🔵 late joined the room." {
            break;
        }
        let name = comer_or_goer(&line).unwrap_or_else(|| panic!("unexpected line {line:?}"));
        assert!(admitted.iter().any(|a| a == name), "the room saw {line:?} of a refused join");
    }
}

#[tokio::test]
async fn limits_off_lifts_the_per_connection_per_address_per_user_and_join_limits() {
    let app = spawn_app_with(&[
        "--limits",
        "off",
        "--rate",
        "1",
        "--burst",
        "1",
        "--address-rate",
        "1",
        "--address-burst",
        "1",
        "--user-rate",
        "1",
        "--user-burst",
        "1",
        "--join-rate",
        "1",
        "--join-burst",
        "1",
    ])
    .await;
    let ann = app.account("ann").await;
    for n in 0..5 {
        drop(open_from(&app, "127.0.0.2", &format!("/ws/chat/general/guest{n}")).await);
    }
    let mut first = join_json(&app, "127.0.0.2", &ann.token).await;
    let mut second = join_json(&app, "127.0.0.2", &ann.token).await;
    for n in 0..10 {
        assert_eq!(say(&mut first, &format!("a{n}")).await, Ok(()));
        assert_eq!(say(&mut second, &format!("b{n}")).await, Ok(()));
    }
}

#[tokio::test]
async fn a_full_server_answers_503_with_retry_after() {
    let app = spawn_app_with(&["--max-connections", "1"]).await;
    let _only = open_from(&app, "127.0.0.2", "/ws/chat/general/only").await;
    let refused = refused_from(&app, "127.0.0.3", "/ws/chat/general/more").await;
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "5");
}

/// Users as the memory store keeps them, except that reading one fails unexpectedly.
struct Broken(MemoryUserStore);

#[async_trait]
impl UserStore for Broken {
    async fn create(&self, user: NewUserRecord) -> Result<User, UserStoreError> {
        self.0.create(user).await
    }
    async fn get(&self, _: UserId) -> Result<Option<User>, UserStoreError> {
        Err(UserStoreError::Failed("the row does not decode".into()))
    }
    async fn find_by_login(&self, login: &str) -> Result<Option<UserRecord>, UserStoreError> {
        self.0.find_by_login(login).await
    }
    async fn list(&self, query: &UserQuery) -> Result<Vec<User>, UserStoreError> {
        self.0.list(query).await
    }
    async fn update(&self, id: UserId, changes: UserChanges) -> Result<User, UserStoreError> {
        self.0.update(id, changes).await
    }
    async fn delete(&self, id: UserId) -> Result<(), UserStoreError> {
        self.0.delete(id).await
    }
    async fn ping(&self) -> Result<(), UserStoreError> {
        self.0.ping().await
    }
}

#[tokio::test]
async fn a_store_failure_while_checking_a_token_is_a_500_as_over_http() {
    let clock = Arc::new(SystemClock);
    let log = Arc::new(MemoryChatLog::default());
    let (recorder, _writer) = ChatRecorder::new(log.clone(), clock.clone(), 16);
    let chat = Arc::new(Chat::new(Rooms::local(DEFAULT_QUEUE), log, recorder, clock.clone(), EventIds::new(5)));
    let hasher = Arc::new(Argon2Hasher::new(HashCost::FAST_INSECURE, 2).unwrap());
    let tokens = Arc::new(JwtIssuer::new(b"secret", JwtAlgorithm::HS256, Duration::from_secs(60), clock.clone()));
    let token = tokens.issue(UserId::new(1)).await.unwrap().token;
    let accounts = Arc::new(Accounts::new(Arc::new(Broken(MemoryUserStore::default())), hasher, tokens, clock));
    let app = serve(accounts, chat).await;

    let refused = refused_from(&app, "127.0.0.2", &format!("/ws/rooms/general?token={token}")).await;
    assert_eq!(refused.status(), 500);
    let body: serde_json::Value = serde_json::from_slice(refused.body().as_deref().unwrap()).unwrap();
    assert_eq!(body, serde_json::json!({"detail": "Internal server error"}), "the cause stays in the log");
}

#[tokio::test]
async fn with_reserved_usernames_a_guest_using_a_registered_name_is_closed_and_told_to_sign_in() {
    let app = spawn_app_with(&["--reserve-usernames", "true"]).await;
    let ann = app.account("ann").await;
    let mut watcher = connect(&app, "/ws/chat/general/watcher").await;
    assert_eq!(text(&mut watcher).await, "🔵 watcher joined the room.");

    let mut impostor = connect(&app, "/ws/chat/general/ANN").await;
    let (code, reason) = closed(&mut impostor).await;
    assert_eq!(code, CloseCode::Policy);
    assert!(reason.contains("sign in"), "{reason}");

    let mut real = connect(&app, &format!("/ws/chat/general/ann?token={}", ann.token)).await;
    assert_eq!(text(&mut real).await, "🔵 ann joined the room.", "with ann's token the name is hers");
    assert_eq!(text(&mut watcher).await, "🔵 ann joined the room.", "the room never saw the impostor");
    let mut guest = connect(&app, "/ws/chat/general/zed").await;
    assert_eq!(text(&mut guest).await, "🔵 zed joined the room.", "an unregistered name is free");
}

#[tokio::test]
async fn without_reserved_usernames_a_guest_may_use_any_name() {
    let app = spawn_app_with(&[]).await;
    app.account("ann").await;
    let mut guest = connect(&app, "/ws/chat/general/ann").await;
    assert_eq!(text(&mut guest).await, "🔵 ann joined the room.");
}

#[tokio::test]
async fn the_original_endpoint_takes_an_optional_token_that_must_be_the_paths_user() {
    let app = spawn_app_with(&[]).await;
    let (ann, bob) = (app.account("ann").await, app.account("bob").await);
    let by_query = format!("/ws/chat/general/ann?token={}", ann.token);
    let mut client = open_from(&app, "127.0.0.2", &by_query).await;
    assert_eq!(text(&mut client).await, "🔵 ann joined the room.");

    let mut request = tungstenite::client::IntoClientRequest::into_client_request(format!(
        "{}/ws/chat/general/ann",
        app.address.replacen("http://", "ws://", 1)
    ))
    .unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {}", ann.token).parse().unwrap());
    let (mut by_header, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(text(&mut by_header).await, "🔵 ann joined the room.");

    let other = refused_from(&app, "127.0.0.2", &format!("/ws/chat/general/ann?token={}", bob.token)).await;
    assert_eq!(other.status(), 403, "bob's token does not make anyone ann");
    let forged = refused_from(&app, "127.0.0.2", "/ws/chat/general/ann?token=forged.token.value").await;
    assert_eq!(forged.status(), 401, "a token that does not hold is refused, not taken for a guest");
}
