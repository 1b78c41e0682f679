//! Rooms across several Parley processes, through Redis.
//!
//! - [`RedisFanout`]: a `Fanout` whose local members are served by the
//!   in-process [`parley_memory::MemoryFanout`], and whose events are
//!   published once to Redis and relayed by every other process to its own
//!   members; who is in a room is listed across processes, and a process
//!   that dies leaves every listing within [`EXPIRY`], its members then
//!   reported once, to one survivor, as departed (`Fanout::departed`).
//!
//! Knows Redis and the wire form of an event between processes; knows
//! nothing of sockets, HTTP or storage.

mod fanout;
mod health;
mod presence;
mod publisher;
mod relay;
mod wire;

pub use fanout::RedisFanout;
pub use presence::{EXPIRY, GRACE, HEARTBEAT};
