//! Several `parley` processes sharing rooms through a broker (Redis or
//! NATS): the helpers, and the scenarios every broker must pass — rooms,
//! presence and resume across processes, and what happens when the broker
//! goes away, or stops answering, and comes back. `redis.rs` and `nats.rs`
//! run them.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{Running, run_to_exit, text};

/// A broker's server of the test's own, that the test stops and starts.
pub trait Server {
    fn url(&self) -> String;
    /// Kills it: every connection drops.
    fn down(&mut self);
    /// Starts it again on the same port.
    fn up(&mut self);
    /// Freezes (`-STOP`) or thaws (`-CONT`) it: connections stay open and silent.
    fn signal(&self, signal: &str);
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Two processes on one broker and one database (as a deployment shares
/// its accounts), each in a directory of its own.
pub struct Pair {
    pub a: Running,
    pub b: Running,
    _dirs: [tempfile::TempDir; 3],
}

/// A test that fails leaves no process behind.
impl Drop for Pair {
    fn drop(&mut self) {
        for child in [&mut self.a.child, &mut self.b.child] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Pair {
    /// Both on the broker `var` (`REDIS_URL`, `NATS_URL`) points at.
    pub fn start(var: &str, url: &str) -> Self {
        Self::start_with(var, url, &[])
    }

    pub fn start_with(var: &str, url: &str, more: &[(&str, &str)]) -> Self {
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let database = format!("sqlite://{}", dirs[2].path().join("parley.db").display());
        let mut env = vec![
            (var, url),
            ("DATABASE_URL", database.as_str()),
            ("JWT_SECRET", "a3f1c2d4e5b6a7980123456789abcdef0123456789abcdef0123456789abcdef"),
            ("ARGON2_MEMORY_KIB", "64"),
            ("ARGON2_ITERATIONS", "1"),
        ];
        env.extend_from_slice(more);
        // One after the other: the first creates the database.
        let a = Running::start(dirs[0].path(), &env);
        let b = Running::start(dirs[1].path(), &env);
        Self { a, b, _dirs: dirs }
    }
}

/// A room name no other test (or earlier run) uses.
pub fn room(what: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{what}{}x{nanos}", std::process::id())
}

pub fn ws(running: &Running) -> String {
    running.address.replacen("http://", "ws://", 1)
}

/// Registers `name` and returns an access token.
pub async fn token(address: &str, name: &str) -> String {
    let client = reqwest::Client::new();
    let user = json!({"email": format!("{name}@example.com"), "username": name, "password": "correct horse"});
    let registered = client.post(format!("{address}/api/v1/auth/register")).json(&user).send().await.unwrap();
    assert_eq!(registered.status(), 201);
    let login = [("username", name), ("password", "correct horse")];
    let reply: Value =
        client.post(format!("{address}/api/v1/auth/login")).form(&login).send().await.unwrap().json().await.unwrap();
    reply["access_token"].as_str().unwrap().to_owned()
}

/// Joins on the JSON protocol; returns the socket and the `presence` frame's members.
pub async fn join(running: &Running, room: &str, token: &str, since: Option<&str>) -> (Socket, Vec<String>, Value) {
    let since = since.map(|id| format!("&since={id}")).unwrap_or_default();
    let url = format!("{}/ws/rooms/{room}?token={token}{since}", ws(running));
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let presence = next_of(&mut socket, "presence").await;
    let members = presence["members"].as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_owned()).collect();
    let history = next_of(&mut socket, "history").await;
    (socket, members, history)
}

/// The next JSON frame of type `kind`, skipping others; within 15 s.
pub async fn next_of(socket: &mut Socket, kind: &str) -> Value {
    frames_until(socket, kind).await.pop().expect("the frame waited for")
}

/// Every JSON frame up to and including the next of type `kind`; within 15 s.
pub async fn frames_until(socket: &mut Socket, kind: &str) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut frames = Vec::new();
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next()).await;
        let frame = frame.unwrap_or_else(|_| panic!("a {kind} frame within 15 s"));
        let Some(Ok(Message::Text(text))) = frame else { panic!("the connection ended waiting for {kind}: {frame:?}") };
        let value: Value = serde_json::from_str(&text).unwrap();
        let found = value["type"] == kind;
        frames.push(value);
        if found {
            return frames;
        }
    }
}

/// The next `message` event's text and sender.
pub async fn next_message(socket: &mut Socket) -> (String, String) {
    let event = next_of(socket, "message").await;
    (event["user"].as_str().unwrap().to_owned(), event["text"].as_str().unwrap().to_owned())
}

/// The texts of the messages in a `history` frame, oldest first.
pub fn messages_in(history: &Value) -> Vec<&str> {
    let events = history["events"].as_array().unwrap();
    events.iter().filter(|e| e["type"] == "message").map(|e| e["text"].as_str().unwrap()).collect()
}

pub async fn say(socket: &mut Socket, text: &str) {
    socket.send(Message::Text(json!({"type": "send", "text": text}).to_string().into())).await.unwrap();
}

/// The next text frame of the original protocol that is a message.
pub async fn next_line(socket: &mut Socket) -> String {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(15), socket.next()).await.expect("a frame within 15 s");
        let Some(Ok(Message::Text(text))) = frame else { panic!("the connection ended: {frame:?}") };
        if !text.starts_with('🔵') && !text.starts_with('🔴') {
            return text.to_string();
        }
    }
}

pub async fn members_over_rest(running: &Running, room: &str) -> Vec<String> {
    let url = format!("{}/api/v1/rooms/{room}/members", running.address);
    let body: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    body["members"].as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_owned()).collect()
}

async fn ready(running: &Running) -> u16 {
    reqwest::get(format!("{}/readyz", running.address)).await.unwrap().status().as_u16()
}

pub async fn a_room_spans_two_processes_on_both_protocols_and_a_killed_ones_members_leave(var: &str, url: &str) {
    let mut pair = Pair::start(var, url);
    let room = room("across");
    let (ann_token, bob_token) = (token(&pair.a.address, "ann").await, token(&pair.a.address, "bob").await);
    let (mut ann, _, _) = join(&pair.a, &room, &ann_token, None).await;
    let (mut bob, members, _) = join(&pair.b, &room, &bob_token, None).await;
    assert_eq!(members, ["ann", "bob"], "presence on B lists ann, connected to A");
    let (mut carl, _) = tokio_tungstenite::connect_async(format!("{}/ws/chat/{room}/carl", ws(&pair.b))).await.unwrap();
    assert_eq!(next_of(&mut ann, "joined").await["user"], "ann");
    assert_eq!(next_of(&mut ann, "joined").await["user"], "bob", "A hears B's joins");
    assert_eq!(next_of(&mut ann, "joined").await["user"], "carl");

    for n in 1..=5 {
        say(&mut ann, &format!("from A {n}")).await;
    }
    for n in 1..=3 {
        carl.send(Message::Text(format!("from B {n}").into())).await.unwrap();
    }
    let mut heard_by_bob = Vec::new();
    while heard_by_bob.len() < 8 {
        heard_by_bob.push(next_message(&mut bob).await);
    }
    let from = |who: &str, heard: &[(String, String)]| -> Vec<String> {
        heard.iter().filter(|(user, _)| user == who).map(|(_, text)| text.clone()).collect()
    };
    let a_said: Vec<String> = (1..=5).map(|n| format!("from A {n}")).collect();
    let b_said: Vec<String> = (1..=3).map(|n| format!("from B {n}")).collect();
    assert_eq!(from("ann", &heard_by_bob), a_said, "bob (B, JSON) hears A once each, in order");
    assert_eq!(from("carl", &heard_by_bob), b_said);
    let mut heard_by_ann = Vec::new();
    while heard_by_ann.len() < 8 {
        heard_by_ann.push(next_message(&mut ann).await);
    }
    assert_eq!(from("ann", &heard_by_ann), a_said);
    assert_eq!(from("carl", &heard_by_ann), b_said, "ann (A, JSON) hears B's original protocol");
    let mut heard_by_carl = Vec::new();
    while heard_by_carl.len() < 8 {
        heard_by_carl.push(next_line(&mut carl).await);
    }
    let carl_from_ann: Vec<String> = heard_by_carl.into_iter().filter(|line| line.starts_with("ann: ")).collect();
    let a_said_as_lines: Vec<String> = a_said.iter().map(|t| format!("ann: {t}")).collect();
    assert_eq!(carl_from_ann, a_said_as_lines, "carl (B, original protocol) hears A once each, in order");

    assert_eq!(members_over_rest(&pair.a, &room).await, ["ann", "bob", "carl"]);
    // B dies without a word: its members leave A's presence by expiry.
    pair.b.child.kill().unwrap();
    pair.b.child.wait().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut members = members_over_rest(&pair.a, &room).await;
    while members != ["ann"] && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        members = members_over_rest(&pair.a, &room).await;
    }
    assert_eq!(members, ["ann"], "bob and carl left with B");
    let mut told = Vec::new();
    for _ in 0..2 {
        told.push(next_of(&mut ann, "left").await["user"].as_str().unwrap().to_owned());
    }
    told.sort();
    assert_eq!(told, ["bob", "carl"], "A's members are told who left with B");
    let (_dave, members, _) = join(&pair.a, &room, &token(&pair.a.address, "dave").await, None).await;
    assert_eq!(members, ["ann", "dave"]);
}

pub async fn a_member_resumes_on_the_other_process_with_nothing_missed(var: &str, url: &str) {
    let pair = Pair::start(var, url);
    let room = room("resume");
    let (ann_token, bob_token) = (token(&pair.a.address, "ann").await, token(&pair.a.address, "bob").await);
    let (mut ann, _, _) = join(&pair.a, &room, &ann_token, None).await;
    let (mut bob, _, _) = join(&pair.b, &room, &bob_token, None).await;
    say(&mut ann, "seen by bob").await;
    let seen = next_of(&mut bob, "message").await;
    bob.close(None).await.unwrap();
    for n in 1..=3 {
        say(&mut ann, &format!("missed {n}")).await;
    }
    // Every message posted (acked: "seen by bob" and the three) before bob comes back.
    for _ in 0..4 {
        next_of(&mut ann, "ack").await;
    }
    // Bob comes back through the load balancer, to A this time.
    let last = seen["id"].as_str().unwrap();
    let (_bob, _, history) = join(&pair.a, &room, &bob_token, Some(last)).await;
    assert_eq!(history["complete"], true, "{history}");
    assert_eq!(messages_in(&history), ["missed 1", "missed 2", "missed 3"]);

    // And to B, where nobody is in the room now: the shared chat log has it.
    ann.close(None).await.unwrap();
    let history_url = format!("{}/api/v1/rooms/{room}/history", pair.b.address);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let logged: Value = reqwest::get(&history_url).await.unwrap().json().await.unwrap();
        if logged.as_array().unwrap().iter().any(|e| e["message"] == "missed 3")
            || tokio::time::Instant::now() > deadline
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_bob, _, history) = join(&pair.b, &room, &bob_token, Some(last)).await;
    assert_eq!(history["complete"], true, "{history}");
    assert_eq!(messages_in(&history), ["missed 1", "missed 2", "missed 3"]);
}

pub async fn while_the_broker_is_down_rooms_work_within_each_process_and_across_once_it_is_back(
    var: &str,
    server: &mut impl Server,
) {
    let pair = Pair::start(var, &server.url());
    let room = room("outage");
    let mut tokens = Vec::new();
    for name in ["ann", "bob", "cyd"] {
        tokens.push(token(&pair.a.address, name).await);
    }
    let (mut ann, _, _) = join(&pair.a, &room, &tokens[0], None).await;
    let (mut cyd, _, _) = join(&pair.a, &room, &tokens[2], None).await;
    let (mut bob, _, _) = join(&pair.b, &room, &tokens[1], None).await;
    say(&mut ann, "before").await;
    assert_eq!(next_message(&mut bob).await, ("ann".into(), "before".into()));

    server.down();
    for member in [&mut ann, &mut cyd, &mut bob] {
        assert_eq!(next_of(member, "error").await["code"], "degraded", "every member is told, unprompted");
    }
    assert_eq!(ready(&pair.a).await, 503, "/readyz says the broker is down");
    for n in 1..=3 {
        say(&mut ann, &format!("during {n}")).await;
    }
    for n in 1..=3 {
        assert_eq!(next_message(&mut cyd).await, ("ann".into(), format!("during {n}")), "local delivery goes on");
    }

    server.up();
    for member in [&mut ann, &mut cyd, &mut bob] {
        next_of(member, "restored").await;
    }
    assert_eq!(ready(&pair.a).await, 200);
    say(&mut ann, "after").await;
    say(&mut bob, "back").await;
    // What A said during the outage may still reach B, retried, in order; "after" does.
    let mut heard = Vec::new();
    loop {
        let (user, text) = next_message(&mut bob).await;
        if user == "ann" {
            heard.push(text.clone());
            if text == "after" {
                break;
            }
        }
    }
    let retried = &heard[..heard.len() - 1];
    assert!(
        retried.windows(2).all(|pair| pair[0] < pair[1]) && retried.iter().all(|text| text.starts_with("during ")),
        "in order, once each: {heard:?}"
    );
    let mut from_bob = Vec::new();
    while from_bob.is_empty() {
        let (user, text) = next_message(&mut ann).await;
        if user == "bob" {
            from_bob.push(text);
        }
    }
    assert_eq!(from_bob, ["back"], "cross-process delivery resumed both ways without a restart");
}

pub async fn a_stalled_broker_is_noticed_and_delivery_resumes_when_it_answers_again(var: &str, server: &impl Server) {
    let pair = Pair::start(var, &server.url());
    let room = room("stall");
    let (ann_token, bob_token) = (token(&pair.a.address, "ann").await, token(&pair.a.address, "bob").await);
    let (mut ann, _, _) = join(&pair.a, &room, &ann_token, None).await;
    let (mut bob, members, _) = join(&pair.b, &room, &bob_token, None).await;
    assert_eq!(members, ["ann", "bob"]);
    // Nothing is refused and no connection drops: only the relay's own
    // pings can tell that events no longer cross.
    server.signal("-STOP");
    assert_eq!(next_of(&mut ann, "error").await["code"], "degraded");
    assert_eq!(next_of(&mut bob, "error").await["code"], "degraded");
    server.signal("-CONT");
    next_of(&mut ann, "restored").await;
    next_of(&mut bob, "restored").await;
    say(&mut bob, "still here").await;
    let frames = frames_until(&mut ann, "message").await;
    assert!(frames.iter().all(|frame| frame["type"] != "left"), "nobody was told bob left: {frames:?}");
    assert_eq!(frames.last().unwrap()["text"], "still here");
    assert_eq!(members_over_rest(&pair.a, &room).await, ["ann", "bob"]);
}

pub fn an_unreachable_broker_is_retried_for_a_while_then_startup_fails_clearly(var: &str, scheme: &str, what: &str) {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("{scheme}://127.0.0.1:{port}");
    let env = [(var, url.as_str()), ("DATABASE_URL", "memory://"), ("PARLEY_DB_WAIT_SECONDS", "2")];
    let output = run_to_exit(dir.path(), &env);
    assert!(!output.status.success());
    let said = text(&output);
    assert!(said.contains("retrying"), "it retried: {said}");
    assert!(said.contains(&format!("{what} at {var} is unreachable")), "{said}");
}
