//! Rooms across several Parley processes, through Redis.
//!
//! - [`RedisFanout`]: a `Fanout` whose local members are served by the
//!   in-process [`parley_memory::MemoryFanout`], and whose events are
//!   published once to Redis and relayed by every other process to its own
//!   members.
//!
//! Knows Redis and the wire form of an event between processes; knows
//! nothing of sockets, HTTP or storage.

mod fanout;
mod wire;

pub use fanout::RedisFanout;
