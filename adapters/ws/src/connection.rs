//! One open WebSocket, served by one task: the client's frames become posts,
//! and the member's queue is drained in batches (feed every frame, flush
//! once), with this connection's own frames (acks, errors, history, pings)
//! in between.
//!
//! One task rather than a reader and a writer: no lock between two halves
//! of the socket, no channel between them, and a connection costs one
//! task's memory. The client's frames are read first, so a publisher is
//! never queued behind its own room's traffic.
//!
//! No lock is held across an await here, and the room never waits for this
//! connection: if it falls behind, the fan-out cuts the member off and the
//! connection closes with 1008.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use parley_ports::domain::{ChatEvent, ClientAddress, EventId, Invalid, MessageText, Present, RoomName, Rule, UserId};
use parley_ports::{Ended, Greeting, Member, Notice, Published, Subscription};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::OwnedSemaphorePermit;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use crate::WsRooms;
use crate::client_limits::Exceeded;
use crate::close::Close;
use crate::encoding::{self, Compat, Json};
use crate::rate::TokenBucket;

type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// Events written per flush at most: enough to amortise the write syscall,
/// few enough that one connection's batch stays small.
const BATCH: usize = 64;
/// Batch capacity kept between batches: steady traffic reuses it.
const BATCH_KEPT: usize = 16;
/// Rate-limited messages tolerated before the connection is closed as abusive.
const ABUSE_LIMIT: u32 = 100;
/// How long what the client sent is still read once the connection is
/// ending: a message followed at once by a disconnect is not lost, but a
/// client's close echo is not waited for past a moment.
const READ_GRACE: Duration = Duration::from_secs(2);
/// Longest `client_id` echoed in acks.
const MAX_CLIENT_ID: usize = 64;
/// Largest `history` frame, in bytes (one event larger than this still goes,
/// alone): a quarter of the socket's write limit (`max_write_buffer_size`,
/// 1 MiB, see `handshake.rs`), so a frame never comes near it, and small
/// enough that a history is written in several goes rather than one burst.
const HISTORY_FRAME_BYTES: usize = 256 * 1024;

pub enum Protocol {
    Compat,
    Json { since: Option<EventId>, history: Option<usize> },
}

/// What woke the connection.
enum Next {
    Frame(Option<Result<Message, WsError>>),
    Events(Result<(), Ended>),
    ShuttingDown,
    Ping,
}

/// How serving a connection ended.
enum Outcome {
    /// Close with this code, then read what is left.
    Close(Close),
    /// The socket cannot be written to (the client vanished): read what is left.
    Gone,
}

/// Why frames were not all written.
enum Unsent {
    /// The socket failed or did not drain within the write timeout.
    Gone,
    /// The subscription ended while the frames were being written: the
    /// member was cut off (or its room closed) and need not wait for them.
    Ended(Ended),
}

impl From<Unsent> for Outcome {
    fn from(unsent: Unsent) -> Self {
        match unsent {
            Unsent::Gone => Outcome::Gone,
            Unsent::Ended(ended) => Outcome::Close(closing(ended)),
        }
    }
}

/// How a connection whose subscription ended closes.
fn closing(ended: Ended) -> Close {
    match ended {
        Ended::TooSlow => Close::TooSlow,
        Ended::Closed => Close::ShuttingDown,
        Ended::RoomClosed => Close::RoomClosed,
    }
}

/// What the handshake hands over: the upgrade still to come, the socket's
/// settings, the connection slot (held until the member has left), and whom
/// the per-client limits count the messages of.
pub struct Upgrade {
    pub on_upgrade: OnUpgrade,
    pub config: WebSocketConfig,
    pub slot: OwnedSemaphorePermit,
    pub client: ClientAddress,
    pub user: Option<UserId>,
}

/// Opens the connection and greets the member, then hands the member's life
/// to a task of its own: that task's future is what every idle member costs,
/// so it holds no trace of the upgrade or the greeting, and what runs for a
/// moment there (a write, a post, the goodbye) is boxed while it runs.
pub async fn run(
    upgrade: Upgrade,
    rooms: Arc<WsRooms>,
    member: Member,
    mut subscription: Subscription,
    protocol: Protocol,
) {
    let Upgrade { on_upgrade, config, slot, client, user } = upgrade;
    let upgraded = match on_upgrade.await {
        Ok(upgraded) => upgraded,
        Err(error) => {
            tracing::debug!(%error, "the client left during the upgrade");
            drop(subscription);
            return leave(&rooms, member).await;
        }
    };
    let socket = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
    let json = matches!(protocol, Protocol::Json { .. });
    let greeting = match protocol {
        Protocol::Json { since, history } => welcome(&rooms, &member, &mut subscription, since, history).await,
        // The original protocol sends no history: the recent events are let go at once.
        Protocol::Compat => {
            drop(subscription.take_recent());
            Vec::new()
        }
    };
    let connection = Connection {
        socket,
        bucket: rooms
            .config
            .per_client_limits
            .then(|| TokenBucket::new(rooms.config.messages_per_second, rooms.config.message_burst)),
        client,
        user,
        rooms,
        member,
        json,
        excess: 0,
        ponged: true,
    };
    tokio::spawn(connection.live(subscription, greeting, slot));
}

async fn leave(rooms: &WsRooms, member: Member) {
    if let Err(error) = Box::pin(rooms.chat.leave(member)).await {
        tracing::warn!(%error, "could not tell the room a member left");
    }
}

/// The JSON protocol's greeting. `Chat` decides what it holds; this only
/// encodes it.
async fn welcome(
    rooms: &WsRooms,
    member: &Member,
    subscription: &mut Subscription,
    since: Option<EventId>,
    history: Option<usize>,
) -> Vec<Utf8Bytes> {
    let history = history.unwrap_or(rooms.config.history_on_join);
    let greeting = rooms.chat.welcome(member, subscription, since, history).await;
    greeting_frames(member.room(), greeting)
}

/// Who is here, then what was said before (or, on resume, what was missed),
/// each preceded by an `error` frame when it is not all there. The past is
/// split over as many `history` frames as keep each under
/// [`HISTORY_FRAME_BYTES`]: all but the last say `"more": true`, the last
/// says whether it is `complete`.
fn greeting_frames(room: &RoomName, greeting: Greeting) -> Vec<Utf8Bytes> {
    let Greeting { members, events, complete, log_failure } = greeting;
    let mut frames = Vec::new();
    match members {
        Ok(members) => frames.push(presence_frame(room, &members)),
        Err(error) => frames.push(error_frame("unavailable", &format!("presence unavailable: {error}"))),
    }
    if let Some(error) = log_failure {
        // The cause stays in the server's log, as for the REST API.
        tracing::warn!(%error, "greeting without the chat log");
        frames.push(error_frame(
            "unavailable",
            "the chat log cannot be read now: the history holds only the room's most recent events",
        ));
    }
    if !complete {
        frames.push(error_frame("resume_gap", "some events since that id are no longer available; reload the history"));
    }
    frames.extend(history_frames(room, &events, complete, HISTORY_FRAME_BYTES));
    frames
}

/// Who is here: `members` names everyone (as before guests were told
/// apart, so older clients read it unchanged); `guests` names those of them
/// who never proved their name, always there, empty when none.
fn presence_frame(room: &RoomName, members: &[Present]) -> Utf8Bytes {
    let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    let guests: Vec<&str> = members.iter().filter(|m| m.guest).map(|m| m.name.as_str()).collect();
    json!({"type": "presence", "room": room.as_str(), "members": names, "guests": guests}).to_string().into()
}

/// `events` as `history` frames of at most `limit` bytes each (a larger
/// event alone), in order; the last one carries `complete`, the others
/// `"more": true`. Always at least one frame, so a client always learns
/// whether its history is complete.
fn history_frames(room: &RoomName, events: &[ChatEvent], complete: bool, limit: usize) -> Vec<Utf8Bytes> {
    let room = serde_json::Value::from(room.as_str()).to_string();
    let head = format!(r#"{{"type":"history","room":{room},"events":["#);
    let last_tail = format!(r#"],"complete":{complete}}}"#);
    const MORE_TAIL: &str = r#"],"more":true}"#;
    let mut frames = Vec::new();
    let mut frame = head.clone();
    let mut in_frame = 0;
    for event in events {
        let encoded = encoding::event_object(event).to_string();
        // Room for this event and the longer tail, or a frame of its own.
        if in_frame > 0 && frame.len() + 1 + encoded.len() + last_tail.len().max(MORE_TAIL.len()) > limit {
            frame.push_str(MORE_TAIL);
            frames.push(std::mem::replace(&mut frame, head.clone()).into());
            in_frame = 0;
        }
        if in_frame > 0 {
            frame.push(',');
        }
        frame.push_str(&encoded);
        in_frame += 1;
    }
    frame.push_str(&last_tail);
    frames.push(frame.into());
    frames
}

/// How the JSON protocol tells a member about the fan-out itself. The
/// original protocol has no such frame: its clients are told nothing.
fn notice_frame(notice: Notice) -> Utf8Bytes {
    match notice {
        Notice::Degraded => error_frame(
            "degraded",
            "messages from members connected to other Parley processes may not arrive for now; \
             this room still works for everyone connected here",
        ),
        Notice::Restored => json!({
            "type": "restored",
            "message": "messages from other Parley processes arrive again; \
                        reconnect with since= to fetch what was missed meanwhile"
        })
        .to_string()
        .into(),
    }
}

fn error_frame(code: &str, message: &str) -> Utf8Bytes {
    json!({"type": "error", "code": code, "message": message}).to_string().into()
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Command {
    Send { text: String, client_id: Option<serde_json::Value> },
}

struct Connection {
    socket: Socket,
    rooms: Arc<WsRooms>,
    member: Member,
    json: bool,
    /// This connection's own rate; `None` with `PARLEY_LIMITS=off`.
    bucket: Option<TokenBucket>,
    /// Where the client connects from, for the limits across its connections.
    client: ClientAddress,
    /// The user a token named, for the limits across their connections.
    user: Option<UserId>,
    /// Rate-limited messages so far.
    excess: u32,
    /// Whether the client showed it is alive since the last ping.
    ponged: bool,
}

impl Connection {
    /// The member's life: the greeting, the room, the goodbye, the leave
    /// notice. The connection slot is held until the member has left.
    async fn live(mut self, mut subscription: Subscription, greeting: Vec<Utf8Bytes>, slot: OwnedSemaphorePermit) {
        let greeting = greeting.into_iter().map(Message::Text);
        let outcome = match Box::pin(self.send(greeting, Some(&mut subscription))).await {
            Ok(()) => self.serve(&mut subscription).await,
            Err(unsent) => unsent.into(),
        };
        // Out of the fan-out first: the leave notice goes only to those who remain.
        drop(subscription);
        Box::pin(self.finish(outcome)).await;
        let Connection { rooms, member, socket, .. } = self;
        drop(socket);
        leave(&rooms, member).await;
        drop(slot);
    }

    /// Serves the member until the connection must end; says how.
    ///
    /// One hand-written poll over the sources instead of `select!`: the
    /// macro keeps a future per branch inside this one, which lives as long
    /// as the member. Here the only futures are the brief ones (a write, a
    /// post), boxed while they run.
    async fn serve(&mut self, subscription: &mut Subscription) -> Outcome {
        let mut batch: Vec<Arc<Published>> = Vec::new();
        let ping_every = self.rooms.config.ping_interval;
        let mut shutdown = self.rooms.shutdown.subscribe();
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
        let mut shutting_down = Box::pin(async move {
            let _ = shutdown.changed().await;
        });
        loop {
            // The client's frames first: a publisher is not queued behind its own room.
            let next = std::future::poll_fn(|cx| {
                if let Poll::Ready(frame) = self.socket.poll_next_unpin(cx) {
                    return Poll::Ready(Next::Frame(frame));
                }
                if let Poll::Ready(received) = subscription.poll_batch(cx, &mut batch, BATCH) {
                    return Poll::Ready(Next::Events(received));
                }
                if shutting_down.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Next::ShuttingDown);
                }
                if ping.poll_tick(cx).is_ready() {
                    return Poll::Ready(Next::Ping);
                }
                Poll::Pending
            })
            .await;
            match next {
                Next::Frame(frame) => {
                    if let Err(outcome) = Box::pin(self.take(frame)).await {
                        return outcome;
                    }
                }
                Next::Events(Ok(())) => {
                    if let Some(notice) = subscription.take_notice()
                        && self.json
                        && let Err(outcome) = Box::pin(self.reply(notice_frame(notice))).await
                    {
                        return outcome;
                    }
                    if batch.is_empty() {
                        continue;
                    }
                    let json = self.json;
                    let frames = batch
                        .drain(..)
                        .map(|p| Message::Text(if json { p.encoded::<Json>() } else { p.encoded::<Compat>() }));
                    // Raced against the member being cut off: a client that
                    // does not read is let go as soon as its queue overflows,
                    // not when the write times out.
                    if let Err(unsent) = Box::pin(self.send(frames, Some(subscription))).await {
                        return unsent.into();
                    }
                    // A burst (a join storm) leaves a big buffer behind; an idle member keeps a small one.
                    if batch.capacity() > BATCH_KEPT {
                        batch = Vec::new();
                    }
                }
                Next::Events(Err(ended)) => return Outcome::Close(closing(ended)),
                Next::ShuttingDown => return Outcome::Close(Close::ShuttingDown),
                Next::Ping => {
                    if !std::mem::replace(&mut self.ponged, false) {
                        return Outcome::Close(Close::Unresponsive);
                    }
                    let ping = std::iter::once(Message::Ping(bytes::Bytes::new()));
                    if let Err(unsent) = Box::pin(self.send(ping, Some(subscription))).await {
                        return unsent.into();
                    }
                }
            }
        }
    }

    /// Ends the connection: the close frame if the socket still takes one,
    /// then what the client sent before it noticed, for a moment. A member
    /// cut off as too slow is not reading: its close frame goes only if the
    /// socket takes it at once, and the socket is dropped without a close
    /// handshake, so it does not linger for a peer that will not answer.
    async fn finish(&mut self, outcome: Outcome) {
        if let Outcome::Close(Close::TooSlow) = outcome {
            let close = Message::Close(Some(Close::TooSlow.frame()));
            let _ = self.socket.send(close).now_or_never();
            return;
        }
        if let Outcome::Close(close) = outcome {
            let _ = self.send(std::iter::once(Message::Close(Some(close.frame()))), None).await;
        }
        let _ = tokio::time::timeout(READ_GRACE, async {
            while let Some(Ok(frame)) = self.socket.next().await {
                if matches!(frame, Message::Close(_)) {
                    break;
                }
                if self.take(Some(Ok(frame))).await.is_err() {
                    break;
                }
            }
        })
        .await;
        let _ = tokio::time::timeout(self.rooms.config.write_timeout, self.socket.close(None)).await;
    }

    /// One frame from the client, or the end of them: `Err` ends the connection.
    async fn take(&mut self, frame: Option<Result<Message, WsError>>) -> Result<(), Outcome> {
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Binary(_))) => return Err(Outcome::Close(Close::Binary)),
            Some(Ok(Message::Pong(_))) => {
                self.ponged = true;
                return Ok(());
            }
            Some(Ok(Message::Ping(_) | Message::Frame(_))) => return Ok(()),
            Some(Ok(Message::Close(_))) => return Err(Outcome::Close(Close::Normal)),
            Some(Err(WsError::Capacity(_))) => return Err(Outcome::Close(Close::TooBig)),
            Some(Err(WsError::Utf8(_))) => return Err(Outcome::Close(Close::InvalidUtf8)),
            Some(Err(WsError::Protocol(_))) => return Err(Outcome::Close(Close::ProtocolError)),
            Some(Err(_)) | None => return Err(Outcome::Gone),
        };
        // Any frame shows the client is alive.
        self.ponged = true;
        if let Err(why) = self.may_send() {
            self.excess += 1;
            if self.excess > ABUSE_LIMIT {
                tracing::warn!(client = %self.client, "closing a connection that kept sending past its rate limit");
                return Err(Outcome::Close(Close::RateLimited));
            }
            if self.json {
                self.reply(error_frame("rate_limited", why)).await?;
            }
            return Ok(());
        }
        if self.json { self.command(&text).await } else { self.say(text.as_str()).await }
    }

    /// Whether one more message is within this connection's rate and within
    /// its client's, across connections (one check per limit); if not, why.
    fn may_send(&mut self) -> Result<(), &'static str> {
        if let Some(bucket) = &mut self.bucket
            && !bucket.take()
        {
            return Err("slow down: message dropped");
        }
        self.rooms.limits.message(self.client, self.user).map_err(|exceeded| {
            if self.rooms.limits.should_warn(self.client) {
                let by = match exceeded {
                    Exceeded::Address => "address",
                    Exceeded::User => "user",
                };
                tracing::warn!(client = %self.client, by, "messages dropped over a per-client rate (said once a minute)");
            }
            exceeded.explanation()
        })
    }

    /// The text protocol: the frame is the message.
    async fn say(&mut self, text: &str) -> Result<(), Outcome> {
        let text = MessageText::parse(text).map_err(|invalid| match invalid.rule {
            Rule::ControlCharacter => Outcome::Close(Close::ControlCharacter),
            _ => Outcome::Close(Close::TooBig),
        })?;
        self.rooms.chat.post(&self.member, text).await.map(drop).map_err(|error| {
            tracing::warn!(%error, "could not post a message");
            Outcome::Close(Close::Unavailable)
        })
    }

    /// The JSON protocol: a command; mistakes get an `error` event, not a close.
    async fn command(&mut self, frame: &str) -> Result<(), Outcome> {
        let Command::Send { text, client_id } = match serde_json::from_str::<Command>(frame) {
            Ok(command) => command,
            Err(error) => return self.reply(error_frame("bad_request", &format!("not a command: {error}"))).await,
        };
        let client_id = client_id.filter(|id| id.as_str().is_none_or(|s| s.chars().count() <= MAX_CLIENT_ID));
        let text = match MessageText::parse(text) {
            Ok(text) => text,
            Err(Invalid { rule: Rule::ControlCharacter, .. }) => {
                let why = "control characters other than tab, CR and LF are not allowed: message dropped";
                return self.reply(error_frame("control_character", why)).await;
            }
            Err(_) => {
                let limit = format!("text is limited to {} characters", MessageText::MAX_CHARS);
                return self.reply(error_frame("too_long", &limit)).await;
            }
        };
        match self.rooms.chat.post(&self.member, text).await {
            Ok(published) => {
                let ack = json!({"type": "ack", "client_id": client_id, "id": published.event().id.to_string()});
                self.reply(ack.to_string().into()).await
            }
            Err(error) => {
                tracing::warn!(%error, "could not post a message");
                let mut frame =
                    json!({"type": "error", "code": "unavailable", "message": "message not sent, try again"});
                frame["client_id"] = client_id.unwrap_or_default();
                self.reply(frame.to_string().into()).await
            }
        }
    }

    async fn reply(&mut self, frame: Utf8Bytes) -> Result<(), Outcome> {
        self.send(std::iter::once(Message::Text(frame)), None).await.map_err(Outcome::from)
    }

    /// Feeds every frame, then flushes once; a client that cannot take them
    /// within the write timeout is gone. The timer is only armed when the
    /// socket does not take the frames at once (the usual case needs none);
    /// so is the watch on `subscription`, which stops the write as soon as
    /// the subscription ends (the member cut off while its socket is full).
    async fn send(
        &mut self,
        frames: impl IntoIterator<Item = Message>,
        subscription: Option<&mut Subscription>,
    ) -> Result<(), Unsent> {
        let socket = &mut self.socket;
        let mut writing = std::pin::pin!(async move {
            for frame in frames {
                socket.feed(frame).await?;
            }
            socket.flush().await
        });
        let written = match (&mut writing).now_or_never() {
            Some(done) => done,
            None => {
                let mut timed = Box::pin(tokio::time::timeout(self.rooms.config.write_timeout, writing));
                let mut subscription = subscription;
                let raced = std::future::poll_fn(|cx| {
                    if let Poll::Ready(written) = timed.as_mut().poll(cx) {
                        return Poll::Ready(Ok(written));
                    }
                    match subscription.as_deref_mut().map(|s| s.poll_ended(cx)) {
                        Some(Poll::Ready(ended)) => Poll::Ready(Err(ended)),
                        _ => Poll::Pending,
                    }
                })
                .await;
                match raced {
                    Ok(Ok(written)) => written,
                    Ok(Err(_)) => {
                        tracing::debug!(room = %self.member.room(), "write timed out; dropping the connection");
                        return Err(Unsent::Gone);
                    }
                    Err(ended) => {
                        tracing::debug!(room = %self.member.room(), %ended, "ended while writing");
                        return Err(Unsent::Ended(ended));
                    }
                }
            }
        };
        written.map_err(|error| {
            if peer_went_away(&error) {
                tracing::debug!(%error, "write failed: the client went away");
            } else {
                tracing::warn!(%error, room = %self.member.room(), user = %self.member.user(), "write failed");
            }
            Unsent::Gone
        })
    }
}

/// Whether a write failed because the client closed or dropped the
/// connection (routine), rather than for a reason worth a warning (a frame
/// over the write limit, a protocol error on our side).
fn peer_went_away(error: &WsError) -> bool {
    use std::io::ErrorKind;
    match error {
        WsError::ConnectionClosed | WsError::AlreadyClosed => true,
        WsError::Io(io) => matches!(
            io.kind(),
            ErrorKind::BrokenPipe
                | ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::NotConnected
                | ErrorKind::UnexpectedEof
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use parley_ports::ChatError;
    use parley_ports::domain::DisplayName;
    use serde_json::Value;

    use super::*;

    /// Each frame's `type`, and its `code` for errors.
    fn kinds(frames: &[Utf8Bytes]) -> Vec<String> {
        frames
            .iter()
            .map(|frame| {
                let frame: Value = serde_json::from_str(frame.as_str()).unwrap();
                match frame["code"].as_str() {
                    Some(code) => format!("error:{code}"),
                    None => frame["type"].as_str().unwrap_or_default().to_owned(),
                }
            })
            .collect()
    }

    fn room() -> RoomName {
        RoomName::parse("general").unwrap()
    }

    #[test]
    fn the_presence_frame_names_everyone_as_members_and_the_guests_again_apart() {
        let present = |name: &str, guest| Present::new(DisplayName::parse(name).unwrap(), guest);
        let frame = presence_frame(&room(), &[present("ann", false), present("gus", true)]);
        let frame: Value = serde_json::from_str(frame.as_str()).unwrap();
        assert_eq!(
            frame,
            serde_json::json!({"type": "presence", "room": "general", "members": ["ann", "gus"], "guests": ["gus"]})
        );
        let frame = presence_frame(&room(), &[present("ann", false)]);
        let frame: Value = serde_json::from_str(frame.as_str()).unwrap();
        assert_eq!(frame["guests"], serde_json::json!([]), "always there, empty when none");
    }

    #[test]
    fn a_whole_greeting_is_presence_then_history() {
        let greeting = Greeting {
            members: Ok(vec![Present::new(DisplayName::parse("ann").unwrap(), false)]),
            events: Vec::new(),
            complete: true,
            log_failure: None,
        };
        assert_eq!(kinds(&greeting_frames(&room(), greeting)), ["presence", "history"]);
    }

    #[test]
    fn what_the_greeting_lacks_is_said_before_the_frame_it_is_missing_from() {
        let greeting = Greeting {
            members: Err(ChatError::Unavailable("down".into())),
            events: Vec::new(),
            complete: false,
            log_failure: Some(ChatError::Unavailable("refused".into())),
        };
        let frames = greeting_frames(&room(), greeting);
        assert_eq!(kinds(&frames), ["error:unavailable", "error:unavailable", "error:resume_gap", "history"]);
        assert!(!frames[1].as_str().contains("refused"), "the cause stays in the server's log");
        let history: Value = serde_json::from_str(frames[3].as_str()).unwrap();
        assert_eq!(history["complete"], false);
    }
}
