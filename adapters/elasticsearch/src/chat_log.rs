//! `ElasticChatLog`: the `ChatLog` port on Elasticsearch 8.x and 7.17.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use elasticsearch::auth::Credentials;
use elasticsearch::http::Url;
use elasticsearch::http::request::JsonBody;
use elasticsearch::http::response::Response;
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::indices::IndicesCreateParts;
use elasticsearch::params::Refresh;
use elasticsearch::{BulkParts, Elasticsearch, SearchParts};
use parley_ports::domain::{ChatEvent, EventId, RoomName};
use parley_ports::{ChatLog, ChatLogError, SearchOrder, SearchQuery};
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};

use crate::documents;

/// Attempts at items a bulk request rejects with 429 or 5xx, within one
/// `append`; past them the batch is reported unavailable and the chat-log
/// writer retries it later (ids make that safe).
const ITEM_ATTEMPTS: u32 = 3;

/// Where and how to reach the cluster.
#[derive(Debug, Clone)]
pub struct ElasticConfig {
    /// `http(s)://[user:password@]host:port`.
    pub url: String,
    /// A base64 API key (`ELASTIC_API_KEY`), instead of a user and password.
    pub api_key: Option<String>,
    pub timeout: Duration,
    /// `chat_logs`, as the original app named it.
    pub index: String,
}

pub struct ElasticChatLog {
    client: Elasticsearch,
    index: String,
    /// Set once the index is known to exist; checked lazily so Parley starts
    /// (and chats) while the cluster is still down.
    index_ready: AtomicBool,
}

/// The configuration cannot work (bad URL or scheme).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ElasticChatLog {
    /// Builds the client; touches no network.
    pub fn new(config: ElasticConfig) -> Result<Self, ConfigError> {
        let mut url = Url::parse(&config.url).map_err(|e| ConfigError(format!("ELASTIC_URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConfigError(format!("ELASTIC_URL: expected http:// or https://, got {}://", url.scheme())));
        }
        let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
        let basic = (!url.username().is_empty())
            .then(|| Credentials::Basic(decode(url.username()), decode(url.password().unwrap_or_default())));
        // Credentials travel in a header, not in every logged URL.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let mut builder = TransportBuilder::new(SingleNodeConnectionPool::new(url)).timeout(config.timeout);
        match (config.api_key, basic) {
            (Some(key), _) => builder = builder.auth(Credentials::EncodedApiKey(key)),
            (None, Some(basic)) => builder = builder.auth(basic),
            (None, None) => {}
        }
        let transport = builder.build().map_err(|e| ConfigError(format!("ELASTIC_URL: {e}")))?;
        Ok(Self { client: Elasticsearch::new(transport), index: config.index, index_ready: AtomicBool::new(false) })
    }

    /// Creates the index with its mapping if it is missing; an index that
    /// exists (Parley's, or the original app's dynamic one) is used as it is.
    async fn ensure_index(&self) -> Result<(), ChatLogError> {
        if self.index_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let sent = self
            .client
            .indices()
            .create(IndicesCreateParts::Index(&self.index))
            .body(documents::mapping())
            .send()
            .await;
        match answer(sent).await {
            Ok(_) => tracing::info!(index = %self.index, "created the chat log index"),
            Err(Refusal { status: 400, body }) if body.contains("resource_already_exists_exception") => {}
            Err(refusal) => return Err(refusal.into()),
        }
        self.index_ready.store(true, Ordering::Release);
        Ok(())
    }

    async fn search_hits(&self, body: Value) -> Result<Vec<ChatEvent>, ChatLogError> {
        self.ensure_index().await?;
        let sent = self.client.search(SearchParts::Index(&[&self.index])).body(body).send().await;
        let found = answer(sent).await?;
        let hits = found["hits"]["hits"].as_array().cloned().unwrap_or_default();
        Ok(hits
            .iter()
            .filter_map(|hit| {
                let event = documents::event(hit);
                if event.is_none() {
                    tracing::warn!(id = %hit["_id"], "skipping an unreadable chat log document");
                }
                event
            })
            .collect())
    }
}

/// A response that was not a success: its status (0: no response at all)
/// and body.
struct Refusal {
    status: u16,
    body: String,
}

impl From<Refusal> for ChatLogError {
    fn from(refusal: Refusal) -> Self {
        let cause = format!("Elasticsearch answered {}: {}", refusal.status, truncate(&refusal.body));
        // Overloaded (429), failing (5xx) or unreachable (0): try again later.
        if refusal.status == 0 || refusal.status == 429 || refusal.status >= 500 {
            ChatLogError::Unavailable(cause.into())
        } else {
            ChatLogError::Failed(cause.into())
        }
    }
}

fn truncate(text: &str) -> &str {
    text.char_indices().nth(300).map_or(text, |(at, _)| &text[..at])
}

/// The JSON body of a successful response, or why there is none.
async fn answer(sent: Result<Response, elasticsearch::Error>) -> Result<Value, Refusal> {
    let response = sent.map_err(|e| Refusal { status: 0, body: e.to_string() })?;
    let status = response.status_code().as_u16();
    let body = response.text().await.map_err(|e| Refusal { status: 0, body: e.to_string() })?;
    if !(200..300).contains(&status) {
        return Err(Refusal { status, body });
    }
    serde_json::from_str(&body).map_err(|e| Refusal { status, body: format!("unreadable response ({e}): {body}") })
}

/// Exact room: a `keyword` field in Parley's mapping, `room.keyword` in the
/// dynamic mapping the original app's index got.
fn room_filter(room: &RoomName) -> Value {
    json!({"bool": {"should": [{"term": {"room": room.as_str()}}, {"term": {"room.keyword": room.as_str()}}], "minimum_should_match": 1}})
}

fn newest_first() -> Value {
    json!([{"timestamp": {"order": "desc"}}, {"id": {"order": "desc", "unmapped_type": "keyword"}}])
}

/// Where a cursor event sits in (timestamp, id) order: ids carry their millisecond.
fn cursor(id: EventId) -> Value {
    json!([id.millis(), id.to_string()])
}

#[async_trait]
impl ChatLog for ElasticChatLog {
    async fn append(&self, events: &[ChatEvent]) -> Result<(), ChatLogError> {
        if events.is_empty() {
            return Ok(());
        }
        self.ensure_index().await?;
        let mut pending: Vec<&ChatEvent> = events.iter().collect();
        let mut backoff = Duration::from_millis(100);
        for attempt in 1..=ITEM_ATTEMPTS {
            let body: Vec<JsonBody<Value>> = pending
                .iter()
                .flat_map(|event| {
                    let action = json!({"index": {"_index": self.index, "_id": event.id.to_string()}});
                    [action.into(), documents::document(event).into()]
                })
                .collect();
            // wait_for: once append returns, search and history see the events.
            let sent = self.client.bulk(BulkParts::None).refresh(Refresh::WaitFor).body(body).send().await;
            let answered = answer(sent).await?;
            if answered["errors"] != json!(true) {
                return Ok(());
            }
            let items = answered["items"].as_array().cloned().unwrap_or_default();
            let mut again = Vec::new();
            for (event, item) in pending.iter().zip(items.iter()) {
                let outcome = &item["index"];
                let status = outcome["status"].as_u64().unwrap_or(0);
                if (200..300).contains(&status) {
                    continue;
                }
                if status == 429 || status >= 500 {
                    again.push(*event);
                } else {
                    // A mapping conflict and the like: retrying cannot help.
                    tracing::error!(event = %event.id, room = %event.room, status, error = %outcome["error"], "the chat log index refused an event; it is not logged");
                }
            }
            if again.is_empty() {
                return Ok(());
            }
            tracing::warn!(events = again.len(), attempt, retry_in = ?backoff, "the chat log index is pushing back; retrying those events");
            pending = again;
            if attempt < ITEM_ATTEMPTS {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
        Err(ChatLogError::Unavailable(
            format!("{} events still refused after {ITEM_ATTEMPTS} attempts", pending.len()).into(),
        ))
    }

    async fn search(&self, query: &SearchQuery) -> Result<Vec<ChatEvent>, ChatLogError> {
        let sort = match query.order {
            SearchOrder::Relevance => json!([{"_score": {"order": "desc"}}, {"timestamp": {"order": "desc"}}]),
            SearchOrder::Newest => newest_first(),
        };
        // The original's query: the room, and a full-text match on the message.
        self.search_hits(json!({
            "query": {"bool": {
                "filter": [room_filter(&query.room)],
                "must": [{"match": {"message": {"query": query.text}}}],
                "must_not": [{"terms": {"kind": ["joined", "left"]}}, {"terms": {"message.keyword": ["[JOINED]", "[LEFT]"]}}]
            }},
            "from": query.offset,
            "size": query.limit,
            "sort": sort
        }))
        .await
    }

    async fn history(
        &self,
        room: &RoomName,
        before: Option<EventId>,
        limit: u32,
    ) -> Result<Vec<ChatEvent>, ChatLogError> {
        let mut body =
            json!({"query": {"bool": {"filter": [room_filter(room)]}}, "size": limit, "sort": newest_first()});
        if let Some(before) = before {
            body["search_after"] = cursor(before);
        }
        self.search_hits(body).await
    }

    async fn since(&self, room: &RoomName, after: EventId, limit: u32) -> Result<Vec<ChatEvent>, ChatLogError> {
        self.search_hits(json!({
            "query": {"bool": {"filter": [room_filter(room)]}},
            "size": limit,
            "sort": [{"timestamp": {"order": "asc"}}, {"id": {"order": "asc", "unmapped_type": "keyword"}}],
            "search_after": cursor(after)
        }))
        .await
    }

    async fn ping(&self) -> Result<(), ChatLogError> {
        // HEAD / answers with a status and no body.
        let response = self.client.ping().send().await.map_err(|e| ChatLogError::Unavailable(Box::new(e)))?;
        let status = response.status_code().as_u16();
        if (200..300).contains(&status) { Ok(()) } else { Err(Refusal { status, body: String::new() }.into()) }
    }
}

#[cfg(test)]
mod live {
    //! The ChatLog contract against a real cluster: set ELASTIC_URL to run it,
    //! e.g. `ELASTIC_URL=http://127.0.0.1:9200 cargo test -p parley-elasticsearch`.
    use super::*;

    async fn live_log() -> Option<ElasticChatLog> {
        let Ok(url) = std::env::var("ELASTIC_URL") else {
            eprintln!("skipped: ELASTIC_URL is not set (no Elasticsearch cluster to run the live suite against)");
            return None;
        };
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let index = format!("parley_test_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let config = ElasticConfig {
            url,
            api_key: std::env::var("ELASTIC_API_KEY").ok(),
            timeout: Duration::from_secs(30),
            index,
        };
        Some(ElasticChatLog::new(config).expect("ELASTIC_URL is usable"))
    }

    parley_ports::chat_log_contract!(optional live_log());
}
