//! The `parley` binary's library: configuration ([`config`]) and the
//! composition root ([`app`]) that wires adapters to the core. Shared by
//! `main` and the black-box tests, so both start Parley the same way.

pub mod app;
pub mod config;
pub mod storage;
