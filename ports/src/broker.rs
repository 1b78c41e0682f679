//! The `Broker` port: carries a room's events, and control messages, between
//! Parley processes. One process needs none: its [`crate::Hub`] is the room.
//!
//! # Delivery and ordering
//!
//! - An event published by a process reaches every other process that
//!   relays its room ([`Broker::relay`]) **at most once**, and never comes
//!   back to the process that published it (which delivered it itself).
//! - Events from one process arrive **in the order it published them**.
//!   Events from different processes have no order between them: two
//!   members of different processes may see two publishers' events
//!   interleaved differently.
//! - A publish retried after a lost reply is recognised and delivered once.
//! - While the link is down, the broker says so ([`Incoming::link`] with
//!   [`Notice::Degraded`]) and again when it is back ([`Notice::Restored`]).
//!   Events published meanwhile are delivered late (once, in order), or
//!   counted in [`Broker::unrelayed`] and logged: never silently lost. Once
//!   [`Broker::ping`] answers again on every process, an event published
//!   reaches every process that relays its room.
//! - [`Control`] messages reach every other process, with the same promise.
//!
//! Knows events and rooms; nothing of Redis, NATS or sockets.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use async_trait::async_trait;

use crate::BoxError;
use crate::delivery::{Notice, Published};
use crate::domain::{EventId, RoomName};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The broker's backing service cannot be reached (or not in time).
    #[error("broker unavailable: {0}")]
    Unavailable(#[source] BoxError),
}

/// Resolves once the room's events from other processes reach this one, or
/// with an error once the adapter stops waiting for that (it keeps trying).
pub type Relaying = Pin<Box<dyn Future<Output = Result<(), BrokerError>> + Send>>;

/// A message for every process, beside the rooms' events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// An event was deleted: forget it among the room's recent events.
    DeleteEvent { room: RoomName, id: EventId },
    /// The room is closed: every member of it, in every process, is let go.
    CloseRoom { room: RoomName },
}

/// Where a broker hands what arrives from other processes: the hub.
pub trait Incoming: Send + Sync {
    /// An event another process published, for this process's members.
    fn event(&self, event: Arc<Published>);
    /// A control message another process sent.
    fn control(&self, control: Control);
    /// The link between processes went down ([`Notice::Degraded`]) or came
    /// back ([`Notice::Restored`]); told once per change.
    fn link(&self, notice: Notice);
}

/// Carries events between processes. Every method returns without waiting
/// for another process; those that talk to the backing service wait at most
/// the adapter's own timeout.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait Broker: Send + Sync {
    /// Hands whatever arrives from now on to `incoming` (held weakly: the
    /// broker stops handing once it is gone). Called once, before the rest.
    fn start(&self, incoming: Weak<dyn Incoming>);

    /// Sends the event to every other process relaying its room.
    ///
    /// # Errors
    /// [`BrokerError::Unavailable`] if the event cannot even be queued for
    /// sending; it is then counted in [`Broker::unrelayed`].
    async fn publish(&self, event: &Arc<Published>) -> Result<(), BrokerError>;

    /// Starts relaying `room`'s events from other processes to this one
    /// (its first member here joined). Never waits: the returned future says
    /// when relaying is live.
    fn relay(&self, room: &RoomName) -> Relaying;

    /// Stops relaying `room` (its last member here left). Never waits.
    fn stop_relaying(&self, room: &RoomName);

    /// Sends `control` to every other process.
    ///
    /// # Errors
    /// [`BrokerError::Unavailable`] if it cannot be queued for sending.
    async fn control(&self, control: &Control) -> Result<(), BrokerError>;

    /// Whether events cross now, both ways: published from here, and relayed
    /// to here for every room this process relays (for readiness checks).
    ///
    /// # Errors
    /// [`BrokerError::Unavailable`], saying which way does not work.
    async fn ping(&self) -> Result<(), BrokerError>;

    /// Events that may not have reached every other process since start
    /// (published while the link was down, or refused by the backend).
    fn unrelayed(&self) -> u64;
}
