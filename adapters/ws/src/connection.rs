//! One open WebSocket: a reader that turns frames into posts, and a writer
//! that drains the member's queue in batches (feed every frame, flush once)
//! and also sends this connection's own frames (acks, errors, history).
//!
//! No lock is held across an await here, and the room never waits for this
//! connection: if the writer falls behind, the fan-out cuts the member off
//! and the writer closes the socket with 1008.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use parley_ports::domain::{ChatEvent, EventId, MessageText};
use parley_ports::{Chat, Ended, Member, Published, Subscription};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use crate::WsRooms;
use crate::close::Close;
use crate::encoding::{self, Compat, Json};
use crate::rate::TokenBucket;

type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// Events written per flush at most: enough to amortise the write syscall,
/// few enough that one connection's batch stays small.
const BATCH: usize = 64;
/// Rate-limited messages tolerated before the connection is closed as abusive.
const ABUSE_LIMIT: u32 = 100;
/// How long the reader may go on once the writer has closed the connection.
const READ_GRACE: Duration = Duration::from_secs(2);
/// Longest `client_id` echoed in acks.
const MAX_CLIENT_ID: usize = 64;

pub enum Protocol {
    Compat,
    Json { since: Option<EventId>, history: Option<usize> },
}

/// What the reader asks of the writer.
enum Control {
    Frame(Utf8Bytes),
    Close(Close),
}

pub async fn run(
    socket: Socket,
    rooms: &Arc<WsRooms>,
    member: Member,
    mut subscription: Subscription,
    protocol: Protocol,
) {
    let (sink, stream) = socket.split();
    let (control, controls) = mpsc::channel(32);
    let ponged = Arc::new(AtomicBool::new(true));
    let json = matches!(protocol, Protocol::Json { .. });
    if let Protocol::Json { since, history } = protocol {
        for frame in welcome(rooms, &member, &mut subscription, since, history).await {
            // The channel was just made with room to spare; a full one only drops a greeting.
            let _ = control.try_send(Control::Frame(frame));
        }
    }
    let writer = Writer {
        sink,
        json,
        ping_interval: rooms.config.ping_interval,
        write_timeout: rooms.config.write_timeout,
        ponged: Arc::clone(&ponged),
    };
    let mut writing = tokio::spawn(writer.run(subscription, controls, rooms.shutdown.subscribe()));
    let reader = Reader {
        stream,
        chat: &rooms.chat,
        member: &member,
        json,
        control: control.clone(),
        bucket: TokenBucket::new(rooms.config.messages_per_second, rooms.config.message_burst),
        ponged,
    };
    // The writer owns the subscription; once it is done the member is out of
    // the fan-out and the leave notice goes only to those who remain.
    {
        let reading = reader.run();
        tokio::pin!(reading);
        tokio::select! {
            close = &mut reading => {
                let _ = control.send(Control::Close(close)).await;
                drop(control);
                let _ = writing.await;
            }
            // The writer closed the connection (shutdown, too slow, a dead
            // socket). What the client sent before that is still read — a
            // message followed at once by a disconnect is not lost — but the
            // client's close echo is not waited for past a moment.
            _ = &mut writing => {
                let _ = tokio::time::timeout(READ_GRACE, &mut reading).await;
            }
        }
    }
    if let Err(error) = rooms.chat.leave(member).await {
        tracing::warn!(%error, "could not tell the room a member left");
    }
}

/// The JSON protocol's greeting: who is here, then what was said before
/// (or, on resume, what was missed).
async fn welcome(
    rooms: &WsRooms,
    member: &Member,
    subscription: &mut Subscription,
    since: Option<EventId>,
    history: Option<usize>,
) -> Vec<Utf8Bytes> {
    let chat = &rooms.chat;
    let room = member.room();
    let mut frames = Vec::new();
    match chat.members(room).await {
        Ok(members) => {
            let names: Vec<&str> = members.iter().map(|m| m.as_str()).collect();
            frames.push(json!({"type": "presence", "room": room.as_str(), "members": names}).to_string().into());
        }
        Err(error) => frames.push(error_frame("unavailable", &format!("presence unavailable: {error}"))),
    }
    let recent: Vec<ChatEvent> = subscription.take_recent().iter().map(|p| p.event().clone()).collect();
    let wanted = history.unwrap_or(rooms.config.history_on_join).min(1000);
    let (events, complete) = match since {
        Some(since) => resume(chat, member, recent, since).await,
        None => (latest(chat, member, recent, wanted).await, true),
    };
    if !complete {
        frames.push(error_frame("resume_gap", "some events since that id are no longer available; reload the history"));
    }
    let events: Vec<_> = events.iter().map(encoding::event_object).collect();
    frames.push(
        json!({"type": "history", "room": room.as_str(), "events": events, "complete": complete}).to_string().into(),
    );
    frames
}

/// The last `wanted` events before the member joined, oldest first: the
/// fan-out's recent ones, topped up from the chat log.
async fn latest(chat: &Chat, member: &Member, mut recent: Vec<ChatEvent>, wanted: usize) -> Vec<ChatEvent> {
    if recent.len() >= wanted {
        return recent.split_off(recent.len() - wanted);
    }
    let before = recent.first().map(|e| e.id).unwrap_or(member.joined());
    let missing = u32::try_from(wanted - recent.len()).unwrap_or(u32::MAX);
    let mut older = chat.history(member.room(), Some(before), missing).await.unwrap_or_default();
    older.reverse();
    older.extend(recent);
    older
}

/// What came after `since`, oldest first, and whether that is all of it.
async fn resume(chat: &Chat, member: &Member, recent: Vec<ChatEvent>, since: EventId) -> (Vec<ChatEvent>, bool) {
    if let Some(at) = recent.iter().position(|e| e.id == since) {
        return (recent[at + 1..].to_vec(), true);
    }
    let mut logged = chat.since(member.room(), since, 1000).await.unwrap_or_default();
    logged.retain(|e| e.id < member.joined());
    // The log is written behind the room: it is known to be whole only where
    // it reaches the recent events (or there are none since).
    let complete = logged.last().is_some_and(|last| recent.first().is_none_or(|first| last.id >= first.id));
    let mut events = logged;
    for event in recent.into_iter().filter(|e| e.id > since) {
        if !events.iter().any(|e| e.id == event.id) {
            events.push(event);
        }
    }
    events.sort_by_key(|e| e.id);
    (events, complete)
}

fn error_frame(code: &str, message: &str) -> Utf8Bytes {
    json!({"type": "error", "code": code, "message": message}).to_string().into()
}

struct Reader<'a> {
    stream: SplitStream<Socket>,
    chat: &'a Chat,
    member: &'a Member,
    json: bool,
    control: mpsc::Sender<Control>,
    bucket: TokenBucket,
    ponged: Arc<AtomicBool>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Command {
    Send { text: String, client_id: Option<serde_json::Value> },
}

impl Reader<'_> {
    /// Reads until the client leaves or must be closed; says why.
    async fn run(mut self) -> Close {
        let mut excess = 0u32;
        while let Some(frame) = self.stream.next().await {
            let text = match frame {
                Ok(Message::Text(text)) => text,
                Ok(Message::Binary(_)) => return Close::Binary,
                Ok(Message::Pong(_)) => {
                    self.ponged.store(true, Ordering::Relaxed);
                    continue;
                }
                Ok(Message::Ping(_) | Message::Frame(_)) => continue,
                Ok(Message::Close(_)) => return Close::Normal,
                Err(WsError::Capacity(_)) => return Close::TooBig,
                Err(WsError::Utf8(_)) => return Close::InvalidUtf8,
                Err(WsError::Protocol(_)) => return Close::ProtocolError,
                Err(_) => return Close::Normal,
            };
            // Any frame shows the client is alive.
            self.ponged.store(true, Ordering::Relaxed);
            if !self.bucket.take() {
                excess += 1;
                if excess > ABUSE_LIMIT {
                    return Close::RateLimited;
                }
                if self.json {
                    self.reply(error_frame("rate_limited", "slow down: message dropped")).await;
                }
                continue;
            }
            let outcome = if self.json { self.command(&text).await } else { self.say(text.as_str()).await };
            if let Err(close) = outcome {
                return close;
            }
        }
        Close::Normal
    }

    /// The text protocol: the frame is the message.
    async fn say(&self, text: &str) -> Result<(), Close> {
        let text = MessageText::parse(text).map_err(|_| Close::TooBig)?;
        self.chat.post(self.member, text).await.map(drop).map_err(|error| {
            tracing::warn!(%error, "could not post a message");
            Close::Unavailable
        })
    }

    /// The JSON protocol: a command; mistakes get an `error` event, not a close.
    async fn command(&self, frame: &str) -> Result<(), Close> {
        let Command::Send { text, client_id } = match serde_json::from_str::<Command>(frame) {
            Ok(command) => command,
            Err(error) => {
                self.reply(error_frame("bad_request", &format!("not a command: {error}"))).await;
                return Ok(());
            }
        };
        let client_id = client_id.filter(|id| id.as_str().is_none_or(|s| s.chars().count() <= MAX_CLIENT_ID));
        let Ok(text) = MessageText::parse(text) else {
            self.reply(error_frame("too_long", &format!("text is limited to {} characters", MessageText::MAX_CHARS)))
                .await;
            return Ok(());
        };
        match self.chat.post(self.member, text).await {
            Ok(published) => {
                let ack = json!({"type": "ack", "client_id": client_id, "id": published.event().id.to_string()});
                self.reply(ack.to_string().into()).await;
            }
            Err(error) => {
                tracing::warn!(%error, "could not post a message");
                let mut frame =
                    json!({"type": "error", "code": "unavailable", "message": "message not sent, try again"});
                frame["client_id"] = client_id.unwrap_or_default();
                self.reply(frame.to_string().into()).await;
            }
        }
        Ok(())
    }

    async fn reply(&self, frame: Utf8Bytes) {
        let _ = self.control.send(Control::Frame(frame)).await;
    }
}

struct Writer {
    sink: SplitSink<Socket, Message>,
    json: bool,
    ping_interval: Duration,
    write_timeout: Duration,
    ponged: Arc<AtomicBool>,
}

impl Writer {
    async fn run(
        mut self,
        mut subscription: Subscription,
        mut controls: mpsc::Receiver<Control>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut batch: Vec<Arc<Published>> = Vec::with_capacity(0);
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + self.ping_interval, self.ping_interval);
        let close = loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => break Close::ShuttingDown,
                control = controls.recv() => match control {
                    Some(Control::Frame(frame)) => {
                        if self.send(std::iter::once(Message::Text(frame))).await.is_err() {
                            return;
                        }
                    }
                    Some(Control::Close(close)) => break close,
                    None => break Close::Normal,
                },
                received = subscription.next_batch(&mut batch, BATCH) => match received {
                    Ok(()) => {
                        let json = self.json;
                        let frames = batch.drain(..).map(|p| {
                            Message::Text(if json { p.encoded::<Json>() } else { p.encoded::<Compat>() })
                        });
                        let frames: Vec<Message> = frames.collect();
                        if self.send(frames).await.is_err() {
                            return;
                        }
                    }
                    Err(Ended::TooSlow) => break Close::TooSlow,
                    Err(Ended::Closed) => break Close::ShuttingDown,
                },
                _ = ping.tick() => {
                    if !self.ponged.swap(false, Ordering::Relaxed) {
                        break Close::Unresponsive;
                    }
                    if self.send(std::iter::once(Message::Ping(bytes::Bytes::new()))).await.is_err() {
                        return;
                    }
                }
            }
        };
        drop(subscription);
        let frame = Message::Close(Some(close.frame()));
        let _ = tokio::time::timeout(self.write_timeout, async {
            let _ = self.sink.send(frame).await;
            let _ = self.sink.close().await;
        })
        .await;
    }

    /// Feeds every frame, then flushes once; a client that cannot take them
    /// within the write timeout is gone.
    async fn send(&mut self, frames: impl IntoIterator<Item = Message>) -> Result<(), ()> {
        let sink = &mut self.sink;
        let written = tokio::time::timeout(self.write_timeout, async move {
            for frame in frames {
                sink.feed(frame).await?;
            }
            sink.flush().await
        })
        .await;
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => {
                tracing::debug!(%error, "write failed");
                Err(())
            }
            Err(_) => {
                tracing::debug!("write timed out; dropping the connection");
                Err(())
            }
        }
    }
}
