//! The relay: one Redis subscription connection per process, subscribed to
//! the control channel and to each room with members here, handing what
//! other processes publish to the hub — each envelope once.
//!
//! Owns the set of rooms relayed, so that after a lost connection it
//! subscribes to all of them again before it says the link works.
//!
//! Knows Redis pub/sub and envelopes; nothing of members or sockets.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use parley_ports::domain::RoomName;
use parley_ports::envelope::{self, Body, Heard};
use parley_ports::{Incoming, Published};
use tokio::sync::{mpsc, oneshot, watch};

use crate::MAX_BACKOFF;
use crate::broker::Channels;
use crate::links::{Link, Links};

/// How long Redis gets to answer the relay (connect, subscribe, ping).
const ANSWER_WITHIN: Duration = Duration::from_secs(2);

/// What the relay is asked to do, by room, in the order asked.
pub(crate) enum Request {
    /// Relay the room; say when it is subscribed.
    Start(RoomName, oneshot::Sender<()>),
    Stop(RoomName),
}

pub(crate) struct Relay {
    pub(crate) client: redis::Client,
    pub(crate) channels: Channels,
    pub(crate) links: Arc<Links>,
    pub(crate) incoming: std::sync::Weak<dyn Incoming>,
    pub(crate) heartbeat: Duration,
}

/// What the relay holds between connections.
#[derive(Default)]
struct State {
    rooms: HashSet<RoomName>,
    /// Relays waiting for the connection to come back.
    waiting: Vec<oneshot::Sender<()>>,
    /// Repeats (a publish retried) are handed over once.
    events: Heard,
    controls: Heard,
}

impl Relay {
    pub(crate) async fn run(self, mut requests: mpsc::UnboundedReceiver<Request>, mut stop: watch::Receiver<()>) {
        let mut state = State::default();
        let mut backoff = Duration::from_millis(50);
        loop {
            let connected = tokio::select! {
                connected = tokio::time::timeout(ANSWER_WITHIN, self.connect(&state)) => connected,
                _ = stop.changed() => return,
            };
            let (mut sink, mut stream) = match connected.unwrap_or_else(|_| Err(timed_out())) {
                Ok(pubsub) => pubsub,
                Err(error) => {
                    self.links.set(Link::Relaying, false);
                    tracing::warn!(%error, "no Redis subscription connection; retrying");
                    // Requests are still taken meanwhile: a room asked for
                    // now is subscribed with the rest on reconnecting.
                    let pause = tokio::time::sleep(backoff);
                    tokio::pin!(pause);
                    loop {
                        tokio::select! {
                            _ = &mut pause => break,
                            request = requests.recv() => match request {
                                None => return,
                                Some(request) => state.offline(request),
                            },
                            _ = stop.changed() => return,
                        }
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            self.links.set(Link::Relaying, true);
            for waiting in state.waiting.drain(..) {
                let _ = waiting.send(());
            }
            backoff = Duration::from_millis(50);
            let mut probe = tokio::time::interval_at(tokio::time::Instant::now() + self.heartbeat, self.heartbeat);
            loop {
                tokio::select! {
                    request = requests.recv() => match request {
                        None => return,
                        Some(Request::Start(room, done)) => {
                            let subscribed = sink.subscribe(self.channels.room(&room));
                            if !matches!(tokio::time::timeout(ANSWER_WITHIN, subscribed).await, Ok(Ok(()))) {
                                state.offline(Request::Start(room, done));
                                break;
                            }
                            state.rooms.insert(room);
                            let _ = done.send(());
                        }
                        Some(Request::Stop(room)) => {
                            state.rooms.remove(&room);
                            let unsubscribed = sink.unsubscribe(self.channels.room(&room));
                            if !matches!(tokio::time::timeout(ANSWER_WITHIN, unsubscribed).await, Ok(Ok(()))) {
                                break;
                            }
                        }
                    },
                    _ = probe.tick() => {
                        if !matches!(tokio::time::timeout(ANSWER_WITHIN, sink.ping::<redis::Value>()).await, Ok(Ok(_))) {
                            break;
                        }
                    }
                    message = stream.next() => match message {
                        None => break,
                        Some(message) => {
                            if !self.hand_over(&mut state, message.get_payload_bytes()) {
                                return;
                            }
                        }
                    },
                    _ = stop.changed() => return,
                }
            }
            self.links.set(Link::Relaying, false);
            tracing::warn!("the Redis subscription connection dropped or stopped answering; reconnecting");
        }
    }

    /// A subscription connection, subscribed to the control channel and to
    /// every room relayed.
    async fn connect(&self, state: &State) -> redis::RedisResult<(redis::aio::PubSubSink, redis::aio::PubSubStream)> {
        let (mut sink, stream) = self.client.get_async_pubsub().await?.split();
        let mut wanted: Vec<String> = state.rooms.iter().map(|room| self.channels.room(room)).collect();
        wanted.push(self.channels.control());
        sink.subscribe(&wanted).await?;
        Ok((sink, stream))
    }

    /// Hands an envelope from another process to the hub, once. Returns
    /// false once the hub is gone.
    fn hand_over(&self, state: &mut State, payload: &[u8]) -> bool {
        let Some(envelope) = envelope::open(payload) else { return true };
        if envelope.origin == self.channels.origin {
            return true;
        }
        let Some(incoming) = self.incoming.upgrade() else { return false };
        match envelope.body {
            Body::Event(event) => {
                if state.events.first_time(&envelope.origin, envelope.seq) {
                    incoming.event(Published::new(event));
                }
            }
            Body::Control(control) => {
                if state.controls.first_time(&envelope.origin, envelope.seq) {
                    incoming.control(control);
                }
            }
        }
        true
    }
}

impl State {
    /// A request while there is no connection: remembered, and answered
    /// once subscribed again.
    fn offline(&mut self, request: Request) {
        match request {
            Request::Start(room, done) => {
                self.rooms.insert(room);
                self.waiting.push(done);
            }
            Request::Stop(room) => {
                self.rooms.remove(&room);
            }
        }
    }
}

fn timed_out() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, "Redis did not answer in time"))
}
