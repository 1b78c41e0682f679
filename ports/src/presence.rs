//! The `Presence` port: who is in which room across processes. Each process
//! says who joined and left through it; the others read it.
//!
//! # Promise
//!
//! - A member whose join has been written ([`Presence::joined`] resolved)
//!   is listed by every other process until its last connection in that
//!   room leaves; each name once per room and process and way of being
//!   there (guest or registered), which is listed as it was joined.
//! - A process that dies stops being listed within the adapter's expiry,
//!   and its members are then reported by [`Presence::claim_departed`] once,
//!   to one process across all of them.
//! - Lists are of the *other* processes: a process knows its own members
//!   better than anything written (the hub).
//!
//! Knows rooms, names and whether each is a guest's; nothing of Redis,
//! NATS or sockets.

use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;

use crate::BoxError;
use crate::domain::{Present, RoomName};

#[derive(Debug, thiserror::Error)]
pub enum PresenceError {
    /// The presence's backing service cannot be reached (or not in time).
    #[error("presence unavailable: {0}")]
    Unavailable(#[source] BoxError),
}

/// Resolves once other processes can see a join, or with an error once the
/// adapter stops waiting for that (it keeps trying).
pub type Written = Pin<Box<dyn Future<Output = Result<(), PresenceError>> + Send>>;

#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait Presence: Send + Sync {
    /// A connection of `member` joined `room` here. Never waits: the future
    /// says when the others can see it.
    fn joined(&self, room: &RoomName, member: &Present) -> Written;

    /// A connection of `member` left `room` here. Never waits.
    fn left(&self, room: &RoomName, member: &Present);

    /// Who is in `room` on the other live processes (names may repeat).
    ///
    /// # Errors
    /// [`PresenceError::Unavailable`] when the backend does not answer in time.
    async fn members_elsewhere(&self, room: &RoomName) -> Result<Vec<Present>, PresenceError>;

    /// The other live processes' rooms, with their connections in each
    /// (a room may repeat, once per process).
    ///
    /// # Errors
    /// [`PresenceError::Unavailable`] when the backend does not answer in time.
    async fn rooms_elsewhere(&self) -> Result<Vec<(RoomName, usize)>, PresenceError>;

    /// The members of processes that died since, each reported once, to
    /// one caller across all processes (names may be connected elsewhere
    /// still: the caller checks).
    ///
    /// # Errors
    /// [`PresenceError::Unavailable`] when the backend does not answer; the
    /// claim is then left for a later call or another process.
    async fn claim_departed(&self) -> Result<Vec<(RoomName, Present)>, PresenceError>;
}
