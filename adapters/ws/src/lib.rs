//! The WebSocket adapter: rooms over tokio-tungstenite, upgraded from the
//! HTTP server's connections on the same port.
//!
//! - `/ws/chat/{room}/{username}`: the original app's protocol, byte for byte
//!   (text frames; `🔵 … joined the room.`, `name: text`, `🔴 … left the room.`);
//! - `/ws/rooms/{room}`: a JSON protocol for new clients (docs/protocol.md):
//!   token authentication, presence, history, acks, resume.
//!
//! Drives the core's `Chat` (and `Accounts` for tokens); knows nothing of the
//! fan-out or chat log behind it. What a member is greeted with (presence,
//! history, resume) is `Chat`'s to decide; this crate only encodes it.
//!
//! One task per connection: it reads the client's frames and drains the
//! member's bounded queue in batches, flushing once per batch; a member that
//! cannot keep up is closed, never waited for.

mod client_limits;
mod close;
mod connection;
pub mod encoding;
mod endpoint;
mod handshake;
mod rate;
mod refusal;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use parley_ports::domain::ClientAddress;
use parley_ports::{Accounts, Chat};
use tokio::sync::{Semaphore, watch};

pub use client_limits::{ClientLimits, Exceeded, Rate, TooManyJoins};
pub use endpoint::AuthMode;

/// Limits and timings of the WebSocket endpoints.
#[derive(Debug, Clone)]
pub struct WsConfig {
    pub auth_mode: AuthMode,
    /// Largest text frame accepted, in bytes (close 1009 above).
    pub max_message_bytes: usize,
    /// Open WebSocket connections at most (503 before the upgrade above).
    pub max_connections: usize,
    /// Past events a JSON client receives on joining.
    pub history_on_join: usize,
    /// Messages a connection may send per second, sustained…
    pub messages_per_second: u32,
    /// …and in a burst.
    pub message_burst: u32,
    /// Messages per client address (an IPv4 address or an IPv6 /64), across
    /// all of its connections: a NAT'd office shares one.
    pub messages_per_address: Rate,
    /// Messages per token-authenticated user, across all of their connections.
    pub messages_per_user: Rate,
    /// Joins (WebSocket upgrades into a room) per client address.
    pub joins_per_address: Rate,
    /// `false` lifts every per-client limit above, and the per-connection
    /// rate (`PARLEY_LIMITS=off`, for test rigs).
    pub per_client_limits: bool,
    /// Whether a guest may not use a registered user's name.
    pub reserve_usernames: bool,
    /// How often the server pings; two intervals without a pong close the connection.
    pub ping_interval: Duration,
    /// A write that cannot finish in this time means the client is gone.
    pub write_timeout: Duration,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            auth_mode: AuthMode::Open,
            max_message_bytes: 16 * 1024,
            max_connections: 100_000,
            history_on_join: 50,
            messages_per_second: 20,
            message_burst: 40,
            messages_per_address: Rate::new(50, 200),
            messages_per_user: Rate::new(20, 40),
            joins_per_address: Rate::new(5, 200),
            per_client_limits: true,
            reserve_usernames: false,
            ping_interval: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// The rooms' WebSocket endpoints.
pub struct WsRooms {
    chat: Arc<Chat>,
    accounts: Arc<Accounts>,
    config: WsConfig,
    limits: Arc<ClientLimits>,
    slots: Arc<Semaphore>,
    shutdown: watch::Sender<bool>,
}

impl WsRooms {
    /// Must be called within a tokio runtime: the per-client limits forget
    /// idle clients on a timer of their own, which ends with the rooms.
    pub fn new(chat: Arc<Chat>, accounts: Arc<Accounts>, config: WsConfig) -> Arc<Self> {
        let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
        let limits = Arc::new(if config.per_client_limits {
            ClientLimits::new(config.messages_per_address, config.messages_per_user, config.joins_per_address)
        } else {
            ClientLimits::off()
        });
        tokio::spawn(forget_idle_clients(Arc::downgrade(&limits)));
        Arc::new(Self { chat, accounts, config, limits, slots, shutdown: watch::Sender::new(false) })
    }

    /// Answers a request for a `/ws/...` path from `client`: the 101 upgrade, or a JSON error.
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>, client: ClientAddress) -> Response<Full<Bytes>> {
        handshake::upgrade(self, request, client).await
    }

    /// Closes every connection with 1001 and waits (up to `grace`) until each
    /// has left its room.
    pub async fn shutdown(&self, grace: Duration) {
        self.shutdown.send_replace(true);
        let all = u32::try_from(self.config.max_connections.max(1)).unwrap_or(u32::MAX);
        if tokio::time::timeout(grace, self.slots.acquire_many(all)).await.is_err() {
            tracing::warn!("WebSocket connections still open after the shutdown grace period");
        }
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.config.max_connections.max(1) - self.slots.available_permits()
    }
}

/// Keeps the per-client limiters' memory bounded by the clients active
/// lately, until the rooms are gone.
async fn forget_idle_clients(limits: std::sync::Weak<ClientLimits>) {
    let mut every = tokio::time::interval(client_limits::FORGET_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(limits) = limits.upgrade() else { return };
        limits.forget_idle();
    }
}
