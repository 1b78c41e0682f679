//! The words Parley speaks: users, rooms and chat events, each checked when it is
//! built so that nothing past a constructor has to check it again.
//!
//! Knows nothing of storage, wire formats or transports.

mod chat;
mod client;
mod event_id;
mod invalid;
mod text;
mod user;

pub use chat::{ChatEvent, DisplayName, EventKind, MessageText, Present, RoomName, SearchText};
pub use client::ClientAddress;
pub use event_id::{EventId, EventIds};
pub use invalid::{Invalid, Rule};
pub use user::{Email, FullName, NewUser, Password, PasswordHash, User, UserId, UserPatch, Username};
