//! Parley's Elasticsearch chat log ([`ElasticChatLog`]): the original app's
//! `chat_logs` index and its four fields (`room`, `user`, `message`,
//! `timestamp`), plus `id` and `kind`, so the original's curl examples keep
//! working. Writes go through `_bulk` with the event id as `_id` (a retry
//! never duplicates); search and history through the same `ChatLog` port as
//! every other chat log.
//!
//! Knows Elasticsearch's REST API; knows nothing of HTTP clients of Parley,
//! rooms' fan-out or users.

mod chat_log;
mod documents;

pub use chat_log::{ElasticChatLog, ElasticConfig};
