//! The HTTP adapter: the original app's REST API on hyper 1 — accounts,
//! login, users, chat search, health — with its status codes and
//! `{"detail": ...}` bodies, so its clients work unchanged.
//!
//! Drives the core's `Accounts` and `Chat` services; knows nothing of which
//! storage, hashing or fan-out adapters sit behind them.
//!
//! - [`serve`]: accept loop, graceful shutdown, access log; `admission`:
//!   the process's and each address's connection caps and rates;
//!   `connection`: one connection's deadlines; `forwarded`: which client a
//!   trusted proxy speaks for;
//! - `routes`: the route table; `api`: the handlers; `input`: reading
//!   requests into checked values; `error`: every failure's status and body;
//!   `cors`: cross-origin rules; `wire`: response bodies.

mod admission;
mod api;
mod connection;
mod cors;
mod docs;
mod error;
mod forwarded;
mod input;
mod openapi;
mod reply;
mod routes;
mod server;
mod wire;

pub use admission::PerAddress;
pub use api::{Api, Upgrader};
pub use forwarded::ProxyRange;
pub use reply::Reply;
pub use server::{ServerConfig, serve};
