//! Parley's pure core: the domain, the ports adapters plug into, and the
//! use-case services that drive them.
//!
//! - [`domain`]: users, rooms, chat events — checked on construction.
//! - the [`Hub`]: this process's rooms, members' bounded queues
//!   ([`delivery`]) and each room's recent events — the hot path of every
//!   message, pure and in memory.
//! - ports: [`UserStore`], [`PasswordHasher`], [`TokenIssuer`], [`Broker`]
//!   (events between processes, with its [`envelope`]), [`Presence`]
//!   (members across processes), [`ChatLog`], [`Clock`] — one module each,
//!   with the errors each may return and what each promises.
//! - services: [`Accounts`] (registration, login, users and who may change
//!   them), [`Rooms`] (the hub joined to the broker and presence) and
//!   [`Chat`] (rooms: join and the [`Greeting`], post, leave, search,
//!   history), with the [`ChatRecorder`] that keeps the chat log off the
//!   hot path.
//! - `testkit` (feature): the contract suite of each port, for adapters to run.
//!
//! This crate performs no I/O and depends on no framework or driver: anything
//! that talks to the outside world is an adapter behind one of the ports.

pub mod accounts;
pub mod broker;
pub mod chat;
pub mod chat_log;
pub mod chat_recorder;
pub mod clock;
pub mod delivery;
pub mod domain;
pub mod envelope;
pub mod hub;
pub mod password_hasher;
pub mod presence;
pub mod rooms;
pub mod token_issuer;
pub mod user_store;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use accounts::{AccountError, Accounts, Caller, Forbidden};
pub use broker::{Broker, BrokerError, Control, Incoming, Relaying};
pub use chat::{Chat, ChatError, Greeting, Member};
pub use chat_log::{ChatLog, ChatLogError, SearchOrder, SearchQuery};
pub use chat_recorder::{ChatLogWriter, ChatRecorder};
pub use clock::Clock;
pub use delivery::{Encoding, Ended, Notice, Published, Subscription};
pub use hub::Hub;
pub use password_hasher::{HashError, PasswordHasher, Verdict};
pub use presence::{Presence, PresenceError, Written};
pub use rooms::Rooms;
pub use token_issuer::{AccessToken, TokenError, TokenIssuer};
pub use user_store::{NewUserRecord, UserChanges, UserQuery, UserRecord, UserStore, UserStoreError};

/// The cause carried by an adapter's error: whatever its driver reported.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
