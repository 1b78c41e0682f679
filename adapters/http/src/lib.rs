//! The HTTP adapter: the original app's REST API on hyper 1 — accounts,
//! login, users, chat search, health — with its status codes and
//! `{"detail": ...}` bodies, so its clients work unchanged.
//!
//! Drives the core's `Accounts` and `Chat` services; knows nothing of which
//! storage, hashing or fan-out adapters sit behind them.
//!
//! - [`serve`]: accept loop, timeouts, graceful shutdown, access log;
//! - `routes`: the route table; `api`: the handlers; `input`: reading
//!   requests into checked values; `error`: every failure's status and body;
//!   `cors`: cross-origin rules; `wire`: response bodies.

mod api;
mod cors;
mod docs;
mod error;
mod input;
mod openapi;
mod reply;
mod routes;
mod server;
mod wire;

pub use api::{Api, Upgrader};
pub use reply::Reply;
pub use server::{ServerConfig, serve};
