//! Rooms over WebSocket: goose user `i` joins room `i % PARLEY_LT_ROOMS` on
//! the original protocol (`PARLEY_LT_PROTOCOL=compat`, the default) or the
//! JSON one (`json`; one account, registered once, speaks for every member).
//! Once joining has been quiet for a second (or `PARLEY_LT_JOIN_SECONDS`
//! have passed), the first `PARLEY_LT_PUBLISHERS` users of each room publish
//! `PARLEY_LT_MESSAGES` numbered messages each, keeping at most
//! `PARLEY_LT_WINDOW` in flight. In flight means, with `PARLEY_LT_PACE`:
//! - `echo` (the default): sent, and not yet heard back by the publisher —
//!   what a chat client sees. A server faster than the readers lets the
//!   publisher run ahead of its room; queues then grow and writes batch.
//! - `room`: sent, and not yet heard by the whole room (the room's
//!   deliveries of the publisher's messages, over its members): latency at a
//!   fixed load, with nothing queued beyond the window.
//!
//! `PARLEY_LT_HOSTS=http://127.0.0.1:8000,http://127.0.0.1:8001` spreads
//! each room's members over several Parley processes (on one Redis and one
//! database): a room's `k`-th member joins host `k % hosts`, so with two
//! publishers there is one on each (goose's `--host` still registers the
//! JSON account).
//!
//! Every member reads everything: each delivery's latency (send to receipt)
//! is a goose request `WS deliver`, and gaps, repeats and reorderings in each
//! publisher's numbers are counted. Join notices are counted too, which times
//! the join phase: from the first connect until the last notice is heard.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use goose::prelude::*;
use serde_json::{Value, json};
use tokio::sync::{Mutex, Notify, OnceCell, mpsc};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::histogram::Histogram;
use crate::server::Sample;

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// What the server watch samples: deliveries, join notices, open members, messages sent.
pub static COUNTERS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
const DELIVERED: usize = 0;
const NOTICES: usize = 1;
const CONNECTED: usize = 2;
const SENT: usize = 3;

static PEAK_CONNECTED: AtomicU64 = AtomicU64::new(0);
/// Moments, in µs since the epoch.
static FIRST_CONNECT: AtomicU64 = AtomicU64::new(0);
static LAST_JOIN: AtomicU64 = AtomicU64::new(0);
static LAST_NOTICE: AtomicU64 = AtomicU64::new(0);
static FIRST_SEND: AtomicU64 = AtomicU64::new(0);
static LAST_DELIVERY: AtomicU64 = AtomicU64::new(0);
static LOST: AtomicU64 = AtomicU64::new(0);
static DUPLICATES: AtomicU64 = AtomicU64::new(0);
static OUT_OF_ORDER: AtomicU64 = AtomicU64::new(0);
static LATENCY: Histogram = Histogram::new();
static TOKEN: OnceCell<String> = OnceCell::const_new();
/// Members per room, counted as they join.
static ROOM_SIZES: LazyLock<std::sync::Mutex<HashMap<String, u64>>> = LazyLock::new(Default::default);
/// Per publisher: how far its messages have reached.
static REACH: LazyLock<std::sync::Mutex<HashMap<String, Arc<Reach>>>> = LazyLock::new(Default::default);

/// How far one publisher's messages have reached its room.
#[derive(Default)]
struct Reach {
    /// Heard by anyone in the room.
    deliveries: AtomicU64,
    /// Heard back by the publisher itself.
    echoes: AtomicU64,
    /// Rung when the publisher hears one back, and each time the room has
    /// heard one more message's worth.
    wake: Notify,
}

fn reach(publisher: &str) -> Arc<Reach> {
    let mut all = REACH.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    Arc::clone(all.entry(publisher.to_owned()).or_default())
}

fn room_size(room: &str) -> u64 {
    ROOM_SIZES.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(room).copied().unwrap_or(1).max(1)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Compat,
    Json,
}

/// What holds a publisher back: see the module's documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    Echo,
    Room,
}

#[derive(Debug, Clone)]
pub struct Shape {
    pub protocol: Protocol,
    pub pace: Pace,
    pub rooms: usize,
    pub publishers_per_room: usize,
    pub window: u64,
    pub messages: u64,
    pub join_timeout: Duration,
    /// Where members connect, in turn (`PARLEY_LT_HOSTS`); empty: goose's `--host`.
    pub hosts: Vec<String>,
}

/// The processes members are spread over (`PARLEY_LT_HOSTS`, comma-separated).
pub fn hosts() -> Vec<String> {
    let hosts = std::env::var("PARLEY_LT_HOSTS").unwrap_or_default();
    hosts.split(',').map(|h| h.trim().trim_end_matches('/').to_owned()).filter(|h| !h.is_empty()).collect()
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

impl Shape {
    pub fn from_env() -> Self {
        let protocol = match std::env::var("PARLEY_LT_PROTOCOL").as_deref() {
            Ok("json") => Protocol::Json,
            _ => Protocol::Compat,
        };
        let pace = match std::env::var("PARLEY_LT_PACE").as_deref() {
            Ok("room") => Pace::Room,
            _ => Pace::Echo,
        };
        Self {
            protocol,
            pace,
            rooms: env("PARLEY_LT_ROOMS", 1usize).max(1),
            publishers_per_room: env("PARLEY_LT_PUBLISHERS", 1usize),
            window: env("PARLEY_LT_WINDOW", 10u64).max(1),
            messages: env("PARLEY_LT_MESSAGES", 500u64),
            join_timeout: Duration::from_secs(env("PARLEY_LT_JOIN_SECONDS", 60u64)),
            hosts: hosts(),
        }
    }

    /// The host user `index` connects to, if members are spread.
    fn host_for(&self, index: usize) -> Option<&str> {
        (!self.hosts.is_empty()).then(|| self.hosts[(index / self.rooms) % self.hosts.len()].as_str())
    }
}

fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// One member's connection and counters (goose clones session data, so
/// everything lives behind one `Arc`).
#[derive(Clone)]
struct Member(Arc<MemberState>);

struct MemberState {
    sink: Mutex<SplitSink<Socket, Message>>,
    name: String,
    room: String,
    publisher: bool,
    sent: AtomicU64,
    /// How far this member's messages have reached its room.
    reach: Arc<Reach>,
    latencies: Mutex<mpsc::UnboundedReceiver<Duration>>,
    reader: tokio::task::JoinHandle<()>,
}

/// The JSON protocol's token: one account for the whole run, so that
/// argon2 is paid once rather than per member.
async fn token(user: &mut GooseUser) -> Result<String, Box<TransactionError>> {
    let token = TOKEN
        .get_or_try_init(|| async {
            let name = format!("lt{}", std::process::id());
            let password = "load test password";
            let body = json!({"email": format!("{name}@example.com"), "username": name, "password": password});
            let _ = user.post_json("/api/v1/auth/register", &body).await?;
            let body = json!({"username": name, "password": password});
            let reply = user.post_json("/api/v1/auth/login", &body).await?;
            let token: Value = match reply.response {
                Ok(response) => response.json().await.unwrap_or_default(),
                Err(_) => Value::Null,
            };
            token["access_token"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| Box::new(TransactionError::Custom("could not log in for the JSON protocol".into())))
        })
        .await?;
    Ok(token.clone())
}

pub async fn join(user: &mut GooseUser) -> TransactionResult {
    let shape = Shape::from_env();
    let index = user.weighted_users_index;
    let room = format!("room{}", index % shape.rooms);
    let name = format!("m{index}");
    let publisher = index / shape.rooms < shape.publishers_per_room;
    let base = shape.host_for(index).unwrap_or(user.base_url.as_str().trim_end_matches('/')).replacen("http", "ws", 1);
    let url = match shape.protocol {
        Protocol::Compat => format!("{base}/ws/chat/{room}/{name}"),
        Protocol::Json => format!("{base}/ws/rooms/{room}?history=0&token={}", token(user).await?),
    };
    let _ = FIRST_CONNECT.compare_exchange(0, now_micros(), Ordering::Relaxed, Ordering::Relaxed);
    let started = std::time::Instant::now();
    let connected = tokio::time::timeout(shape.join_timeout, tokio_tungstenite::connect_async(url)).await;
    let socket = match connected {
        Ok(Ok((socket, _))) => socket,
        Ok(Err(error)) => {
            user.record_custom_request_duration("WS", "join", started.elapsed(), false, None, Some(&error.to_string()))
                .await?;
            return Err(Box::new(TransactionError::Custom(format!("join failed: {error}"))));
        }
        Err(_) => {
            user.record_custom_request_duration("WS", "join", started.elapsed(), false, None, Some("timed out"))
                .await?;
            return Err(Box::new(TransactionError::Custom("join timed out".into())));
        }
    };
    user.record_custom_request_duration("WS", "join", started.elapsed(), true, None, None).await?;
    LAST_JOIN.store(now_micros(), Ordering::Relaxed);
    let open = COUNTERS[CONNECTED].fetch_add(1, Ordering::Relaxed) + 1;
    PEAK_CONNECTED.fetch_max(open, Ordering::Relaxed);
    let (sink, stream) = socket.split();
    let (latency, latencies) = mpsc::unbounded_channel();
    *ROOM_SIZES.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(room.clone()).or_default() += 1;
    let reader = tokio::spawn(read(stream, shape.protocol, name.clone(), room.clone(), latency));
    user.set_session_data(Member(Arc::new(MemberState {
        sink: Mutex::new(sink),
        reach: reach(&name),
        name,
        room,
        publisher,
        sent: AtomicU64::new(0),
        latencies: Mutex::new(latencies),
        reader,
    })));
    Ok(())
}

/// What a frame from the server is to the load test.
#[derive(Debug, PartialEq, Eq)]
enum Heard {
    /// A numbered message: who sent it, its number, when (µs since the epoch).
    Numbered {
        publisher: String,
        n: u64,
        sent: u64,
    },
    JoinNotice,
    Other,
}

fn hear(protocol: Protocol, frame: &str) -> Heard {
    let text = match protocol {
        Protocol::Compat => {
            if frame.starts_with("🔵 ") && frame.ends_with(" joined the room.") {
                return Heard::JoinNotice;
            }
            match frame.split_once(": ") {
                Some((_, text)) => text.to_owned(),
                None => return Heard::Other,
            }
        }
        Protocol::Json => {
            let event: Value = serde_json::from_str(frame).unwrap_or_default();
            match event["type"].as_str() {
                Some("joined") => return Heard::JoinNotice,
                Some("message") => event["text"].as_str().unwrap_or_default().to_owned(),
                _ => return Heard::Other,
            }
        }
    };
    let Some(payload) = text.strip_prefix("seq ") else { return Heard::Other };
    let mut parts = payload.split(' ');
    match (parts.next(), parts.next().map(str::parse), parts.next().map(str::parse)) {
        (Some(publisher), Some(Ok(n)), Some(Ok(sent))) => Heard::Numbered { publisher: publisher.to_owned(), n, sent },
        _ => Heard::Other,
    }
}

/// Reads every frame until the connection ends.
async fn read(
    mut stream: SplitStream<Socket>,
    protocol: Protocol,
    me: String,
    room: String,
    latency: mpsc::UnboundedSender<Duration>,
) {
    // Per publisher: the last number heard, and how far its messages have reached.
    let mut publishers: HashMap<String, (u64, Arc<Reach>)> = HashMap::new();
    let mut members = 0;
    while let Some(Ok(frame)) = stream.next().await {
        let Message::Text(frame) = frame else { continue };
        let (publisher, n, sent) = match hear(protocol, frame.as_str()) {
            Heard::Numbered { publisher, n, sent } => (publisher, n, sent),
            Heard::JoinNotice => {
                COUNTERS[NOTICES].fetch_add(1, Ordering::Relaxed);
                LAST_NOTICE.fetch_max(now_micros(), Ordering::Relaxed);
                continue;
            }
            Heard::Other => continue,
        };
        let now = now_micros();
        COUNTERS[DELIVERED].fetch_add(1, Ordering::Relaxed);
        LAST_DELIVERY.fetch_max(now, Ordering::Relaxed);
        let took = Duration::from_micros(now.saturating_sub(sent));
        LATENCY.record(took);
        let _ = latency.send(took);
        if members == 0 {
            // Read when messages first flow: everyone has joined by then.
            members = room_size(&room);
        }
        let (previous, reach) = match publishers.get_mut(&publisher) {
            Some(known) => known,
            None => publishers.entry(publisher.clone()).or_insert_with(|| (0, reach(&publisher))),
        };
        if publisher == me {
            reach.echoes.fetch_add(1, Ordering::Relaxed);
            reach.wake.notify_one();
        }
        if (reach.deliveries.fetch_add(1, Ordering::Relaxed) + 1) % members == 0 {
            reach.wake.notify_one();
        }
        match n.cmp(&(*previous + 1)) {
            std::cmp::Ordering::Equal => *previous = n,
            std::cmp::Ordering::Greater => {
                LOST.fetch_add(n - *previous - 1, Ordering::Relaxed);
                *previous = n;
            }
            std::cmp::Ordering::Less if n == *previous => {
                DUPLICATES.fetch_add(1, Ordering::Relaxed);
            }
            std::cmp::Ordering::Less => {
                OUT_OF_ORDER.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Still joining: a member joined, or a join notice arrived, within the last
/// second, and the join phase's bound has not passed.
fn joining(shape: &Shape) -> bool {
    let now = now_micros();
    let last = LAST_JOIN.load(Ordering::Relaxed).max(LAST_NOTICE.load(Ordering::Relaxed));
    now.saturating_sub(last) < 1_000_000
        && now.saturating_sub(FIRST_CONNECT.load(Ordering::Relaxed)) < shape.join_timeout.as_micros() as u64
}

/// Reports the latencies heard since last time to goose; a publisher also
/// tops its window of in-flight messages up, as soon as one comes back.
pub async fn publish_and_report(user: &mut GooseUser) -> TransactionResult {
    let shape = Shape::from_env();
    let member = Arc::clone(&user.get_session_data_unchecked::<Member>().0);
    if !publishing() {
        report(user, &member).await?;
    }
    if member.publisher && !joining(&shape) {
        let mut sink = member.sink.lock().await;
        let members = room_size(&member.room);
        let done = || match shape.pace {
            Pace::Echo => member.reach.echoes.load(Ordering::Relaxed),
            Pace::Room => member.reach.deliveries.load(Ordering::Relaxed) / members,
        };
        let in_flight = |sent: u64| sent.saturating_sub(done());
        while member.sent.load(Ordering::Relaxed) < shape.messages
            && in_flight(member.sent.load(Ordering::Relaxed)) < shape.window
        {
            let n = member.sent.fetch_add(1, Ordering::Relaxed) + 1;
            let now = now_micros();
            let _ = FIRST_SEND.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
            COUNTERS[SENT].fetch_add(1, Ordering::Relaxed);
            let text = format!("seq {} {n} {now}", member.name);
            let frame = match shape.protocol {
                Protocol::Compat => text,
                Protocol::Json => json!({"type": "send", "text": text}).to_string(),
            };
            if sink.send(Message::Text(frame.into())).await.is_err() {
                break;
            }
        }
    }
    // A publisher wakes when one of its messages has got far enough;
    // the others only report, which need not be often (a wake-up per member
    // per millisecond would cost the load generator more than the server).
    let _ = tokio::time::timeout(Duration::from_millis(100), member.reach.wake.notified()).await;
    Ok(())
}

/// Deliveries are still arriving (one within the last half second).
fn publishing() -> bool {
    now_micros().saturating_sub(LAST_DELIVERY.load(Ordering::Relaxed)) < 500_000
}

/// Hands the latencies heard so far to goose. Held back while messages are
/// still arriving: goose's bookkeeping per request costs the load generator
/// more than the delivery costs the server, and on a shared machine it would
/// be measured as the server's latency.
async fn report(user: &mut GooseUser, member: &MemberState) -> TransactionResult {
    let heard: Vec<Duration> = {
        let mut latencies = member.latencies.lock().await;
        let mut heard = Vec::new();
        while let Ok(latency) = latencies.try_recv() {
            heard.push(latency);
        }
        heard
    };
    for latency in heard {
        user.record_custom_request_duration("WS", "deliver", latency, true, None, None).await?;
    }
    Ok(())
}

pub async fn leave(user: &mut GooseUser) -> TransactionResult {
    if let Some(Member(member)) = user.get_session_data::<Member>().cloned() {
        report(user, &member).await?;
        let _ = member.sink.lock().await.close().await;
        member.reader.abort();
        COUNTERS[CONNECTED].fetch_sub(1, Ordering::Relaxed);
    }
    Ok(())
}

fn seconds_between(from: u64, to: u64) -> Option<f64> {
    (from > 0 && to > from).then(|| (to - from) as f64 / 1e6)
}

/// Join notices a room of `members` hears when they join one by one: each
/// hears its own and every later one's.
fn notices_expected(members: u64, rooms: u64) -> u64 {
    (0..rooms)
        .map(|room| {
            let n = members / rooms + u64::from(room < members % rooms);
            n * (n + 1) / 2
        })
        .sum()
}

/// The run's figures, as JSON (printed, and written with `--summary`).
pub fn summary(shape: &Shape, samples: &[Sample]) -> Value {
    let delivered = COUNTERS[DELIVERED].load(Ordering::Relaxed);
    let members = PEAK_CONNECTED.load(Ordering::Relaxed);
    let ms = |p: f64| LATENCY.percentile(p).map(|d| d.as_secs_f64() * 1e3);
    let first_send = FIRST_SEND.load(Ordering::Relaxed);
    let last_delivery = LAST_DELIVERY.load(Ordering::Relaxed);
    let mut report = json!({
        "scenario": "rooms",
        "protocol": if shape.protocol == Protocol::Json { "json" } else { "compat" },
        "pace": if shape.pace == Pace::Room { "room" } else { "echo" },
        "rooms": shape.rooms,
        "members": members,
        "publishers_per_room": shape.publishers_per_room,
        "window": shape.window,
        "messages": shape.messages,
        "processes": shape.hosts.len().max(1),
        "join_seconds": seconds_between(FIRST_CONNECT.load(Ordering::Relaxed), LAST_NOTICE.load(Ordering::Relaxed)),
        "join_notices": COUNTERS[NOTICES].load(Ordering::Relaxed),
        "join_notices_expected": notices_expected(members, shape.rooms as u64),
        "deliveries": delivered,
        "deliveries_expected": members * shape.publishers_per_room.min(members as usize) as u64 * shape.messages,
        "deliveries_per_second": seconds_between(first_send, last_delivery).map(|s| (delivered as f64 / s).round()),
        "lost": LOST.load(Ordering::Relaxed),
        "duplicates": DUPLICATES.load(Ordering::Relaxed),
        "out_of_order": OUT_OF_ORDER.load(Ordering::Relaxed),
        "p50_ms": ms(50.0),
        "p99_ms": ms(99.0),
    });
    let Some(baseline) = samples.first() else { return report };
    // Joined and idle: the last moment everyone was connected and nothing sent.
    if let Some(idle) = samples.iter().rev().find(|s| s.counters[SENT] == 0 && s.counters[CONNECTED] == members)
        && members > 0
    {
        let grown = idle.rss_kib.saturating_sub(baseline.rss_kib);
        report["rss_kib_before"] = json!(baseline.rss_kib);
        report["rss_kib_joined"] = json!(idle.rss_kib);
        report["idle_kib_per_connection"] = json!((grown as f64 / members as f64 * 100.0).round() / 100.0);
    }
    // Publishing: from the last sample before the first send to the first
    // one after the last delivery.
    let start = samples.iter().rev().find(|s| s.counters[SENT] == 0);
    let end = samples.iter().find(|s| s.counters[DELIVERED] == delivered);
    if let (Some(start), Some(end)) = (start, end) {
        let deliveries = end.counters[DELIVERED].saturating_sub(start.counters[DELIVERED]);
        if deliveries > 0 {
            let cpu = end.cpu.saturating_sub(start.cpu).as_secs_f64();
            report["cpu_us_per_delivery"] = json!((cpu * 1e6 / deliveries as f64 * 1000.0).round() / 1000.0);
            let writes = end.writes.saturating_sub(start.writes) as f64;
            report["writes_per_delivery"] = json!((writes / deliveries as f64 * 1000.0).round() / 1000.0);
        }
    }
    report["peak_rss_kib"] = json!(samples.iter().map(|s| s.rss_kib).max());
    report
}

/// Whether the run delivered what it sent, to every member, once each and in order.
pub fn sound(report: &Value) -> bool {
    let zero = |key: &str| report[key].as_u64() == Some(0);
    zero("lost") && zero("duplicates") && zero("out_of_order") && report["deliveries"] == report["deliveries_expected"]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_members_alternate_between_hosts_within_each_room() {
        let shape = Shape {
            protocol: Protocol::Compat,
            pace: Pace::Echo,
            rooms: 2,
            publishers_per_room: 2,
            window: 1,
            messages: 1,
            join_timeout: Duration::from_secs(1),
            hosts: vec!["http://a".into(), "http://b".into()],
        };
        // Users 0 and 1 are the first members of rooms 0 and 1; 2 and 3 the second.
        let hosts: Vec<_> = (0..4).map(|index| shape.host_for(index)).collect();
        assert_eq!(hosts, [Some("http://a"), Some("http://a"), Some("http://b"), Some("http://b")]);
        assert_eq!(Shape { hosts: Vec::new(), ..shape }.host_for(3), None, "goose's --host then");
    }

    #[test]
    fn frames_are_heard_on_both_protocols() {
        let numbered = Heard::Numbered { publisher: "m0".into(), n: 7, sent: 1234 };
        assert_eq!(hear(Protocol::Compat, "m0: seq m0 7 1234"), numbered);
        assert_eq!(hear(Protocol::Compat, "🔵 m5 joined the room."), Heard::JoinNotice);
        assert_eq!(hear(Protocol::Compat, "🔴 m5 left the room."), Heard::Other);
        assert_eq!(hear(Protocol::Compat, "m0: hello"), Heard::Other);
        let message = r#"{"type":"message","id":"x","room":"r","user":"lt1","text":"seq m0 7 1234","ts":"t"}"#;
        assert_eq!(hear(Protocol::Json, message), numbered);
        assert_eq!(hear(Protocol::Json, r#"{"type":"joined","user":"lt1","text":""}"#), Heard::JoinNotice);
        assert_eq!(hear(Protocol::Json, r#"{"type":"ack","id":"x"}"#), Heard::Other);
        assert_eq!(hear(Protocol::Json, "not json"), Heard::Other);
    }

    #[test]
    fn every_member_hears_its_own_and_every_later_join() {
        assert_eq!(notices_expected(1, 1), 1);
        assert_eq!(notices_expected(5000, 1), 12_502_500);
        // 5 members in 2 rooms: 3 and 2.
        assert_eq!(notices_expected(5, 2), 6 + 3);
    }
}
