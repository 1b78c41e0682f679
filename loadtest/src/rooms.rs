//! Rooms over WebSocket (the original protocol): goose user `i` joins room
//! `i % PARLEY_LT_ROOMS`; the first `PARLEY_LT_PUBLISHERS` users of each room
//! publish `PARLEY_LT_MESSAGES` numbered messages each, keeping at most
//! `PARLEY_LT_WINDOW` in flight (sent, not yet heard back). Every member
//! reads everything; each delivery's latency (send to receipt) is reported to
//! goose as a `WS deliver` request, and gaps, repeats and reorderings in
//! each publisher's numbers are counted.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use goose::prelude::*;
use tokio::sync::{Mutex, mpsc};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

static DELIVERIES: AtomicU64 = AtomicU64::new(0);
/// When the last member joined (µs since the epoch): publishers wait until
/// joining has been quiet for a second, or the join phase's bound has passed.
static LAST_JOIN: AtomicU64 = AtomicU64::new(0);
static FIRST_JOIN: AtomicU64 = AtomicU64::new(0);
static LOST: AtomicU64 = AtomicU64::new(0);
static DUPLICATES: AtomicU64 = AtomicU64::new(0);
static OUT_OF_ORDER: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Clone)]
pub struct Shape {
    pub rooms: usize,
    pub publishers_per_room: usize,
    pub window: u64,
    pub messages: u64,
    pub join_timeout: Duration,
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

impl Shape {
    pub fn from_env() -> Self {
        Self {
            rooms: env("PARLEY_LT_ROOMS", 1usize).max(1),
            publishers_per_room: env("PARLEY_LT_PUBLISHERS", 1usize),
            window: env("PARLEY_LT_WINDOW", 10u64).max(1),
            messages: env("PARLEY_LT_MESSAGES", 500u64),
            join_timeout: Duration::from_secs(env("PARLEY_LT_JOIN_SECONDS", 60u64)),
        }
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
    publisher: bool,
    sent: AtomicU64,
    in_flight: Arc<AtomicU64>,
    latencies: Mutex<mpsc::UnboundedReceiver<Duration>>,
    reader: tokio::task::JoinHandle<()>,
}

pub async fn join(user: &mut GooseUser) -> TransactionResult {
    let shape = Shape::from_env();
    let index = user.weighted_users_index;
    let room = format!("room{}", index % shape.rooms);
    let name = format!("m{index}");
    let publisher = index / shape.rooms < shape.publishers_per_room;
    let base = user.base_url.as_str().trim_end_matches('/').replacen("http", "ws", 1);
    let url = format!("{base}/ws/chat/{room}/{name}");
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
    let now = now_micros();
    LAST_JOIN.store(now, Ordering::Relaxed);
    let _ = FIRST_JOIN.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
    let (sink, stream) = socket.split();
    let (latency, latencies) = mpsc::unbounded_channel();
    let in_flight = Arc::new(AtomicU64::new(0));
    let reader = tokio::spawn(read(stream, name.clone(), Arc::clone(&in_flight), latency));
    user.set_session_data(Member(Arc::new(MemberState {
        sink: Mutex::new(sink),
        name,
        publisher,
        sent: AtomicU64::new(0),
        in_flight,
        latencies: Mutex::new(latencies),
        reader,
    })));
    Ok(())
}

/// Reads every frame; numbered messages (`{name}: seq {publisher} {n} {micros}`)
/// give a latency and are checked for order.
async fn read(
    mut stream: futures_util::stream::SplitStream<Socket>,
    me: String,
    in_flight: Arc<AtomicU64>,
    latency: mpsc::UnboundedSender<Duration>,
) {
    let mut last: HashMap<String, u64> = HashMap::new();
    while let Some(Ok(frame)) = stream.next().await {
        let Message::Text(text) = frame else { continue };
        let Some((_, payload)) = text.split_once(": seq ") else { continue };
        let mut parts = payload.split(' ');
        let (Some(publisher), Some(Ok(n)), Some(Ok(sent))) =
            (parts.next(), parts.next().map(str::parse::<u64>), parts.next().map(str::parse::<u64>))
        else {
            continue;
        };
        DELIVERIES.fetch_add(1, Ordering::Relaxed);
        let _ = latency.send(Duration::from_micros(now_micros().saturating_sub(sent)));
        if publisher == me {
            in_flight.fetch_sub(1, Ordering::Relaxed);
        }
        let previous = last.entry(publisher.to_owned()).or_insert(0);
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

/// Reports the latencies heard since last time; a publisher also tops its
/// window of in-flight messages up.
pub async fn publish_and_report(user: &mut GooseUser) -> TransactionResult {
    let shape = Shape::from_env();
    let member = Arc::clone(&user.get_session_data_unchecked::<Member>().0);
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
    let now = now_micros();
    let joining = now.saturating_sub(LAST_JOIN.load(Ordering::Relaxed)) < 1_000_000
        && now.saturating_sub(FIRST_JOIN.load(Ordering::Relaxed)) < shape.join_timeout.as_micros() as u64;
    if member.publisher && !joining {
        let mut sink = member.sink.lock().await;
        while member.sent.load(Ordering::Relaxed) < shape.messages
            && member.in_flight.load(Ordering::Relaxed) < shape.window
        {
            let n = member.sent.fetch_add(1, Ordering::Relaxed) + 1;
            member.in_flight.fetch_add(1, Ordering::Relaxed);
            let text = format!("seq {} {n} {}", member.name, now_micros());
            if sink.send(Message::Text(text.into())).await.is_err() {
                break;
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(2)).await;
    Ok(())
}

pub async fn leave(user: &mut GooseUser) -> TransactionResult {
    if let Some(Member(member)) = user.get_session_data::<Member>() {
        let _ = member.sink.lock().await.close().await;
        member.reader.abort();
    }
    Ok(())
}

/// Prints the counts goose's tables cannot hold, and the server's cost.
pub fn summary(cpu_before: Option<Duration>) {
    let deliveries = DELIVERIES.load(Ordering::Relaxed);
    println!("\n=== rooms ===");
    println!("deliveries: {deliveries}");
    println!(
        "lost: {}  duplicates: {}  out of order: {}",
        LOST.load(Ordering::Relaxed),
        DUPLICATES.load(Ordering::Relaxed),
        OUT_OF_ORDER.load(Ordering::Relaxed)
    );
    if let (Some(before), Some(after)) = (cpu_before, crate::proc_stats::server()) {
        let cpu = after.cpu.saturating_sub(before);
        if deliveries > 0 {
            println!(
                "server CPU: {:.3} s, {:.2} µs per delivery",
                cpu.as_secs_f64(),
                cpu.as_secs_f64() * 1e6 / deliveries as f64
            );
        }
        println!("server memory (RSS): {} KiB", after.rss_kib);
    }
}
