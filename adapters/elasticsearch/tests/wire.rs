//! The Elasticsearch adapter against a wire double: a local HTTP server that
//! answers with real Elasticsearch 8 response bodies and records what the
//! adapter sent.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use parley_elasticsearch::{ElasticChatLog, ElasticConfig};
use parley_ports::domain::{ChatEvent, DisplayName, EventId, EventKind, MessageText, RoomName};
use parley_ports::{ChatLog, ChatLogError, SearchOrder, SearchQuery};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
struct Sent {
    method: String,
    path: String,
    authorization: Option<String>,
    body: String,
}

impl Sent {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
    fn ndjson(&self) -> Vec<Value> {
        self.body.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
    }
}

/// Answers each request with the next scripted (status, body), and records it.
#[derive(Clone, Default)]
struct Double {
    answers: Arc<Mutex<VecDeque<(u16, String)>>>,
    sent: Arc<Mutex<Vec<Sent>>>,
}

impl Double {
    async fn start(answers: Vec<(u16, Value)>) -> (Self, String) {
        let double = Double::default();
        double.answers.lock().unwrap().extend(answers.into_iter().map(|(s, b)| (s, b.to_string())));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let serving = double.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let double = serving.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                        let double = double.clone();
                        async move { Ok::<_, Infallible>(double.answer(request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (double, address)
    }

    async fn answer(&self, request: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        let method = request.method().to_string();
        let path = request.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
        let authorization = request.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        self.sent.lock().unwrap().push(Sent {
            method,
            path,
            authorization,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        let (status, body) =
            self.answers.lock().unwrap().pop_front().unwrap_or((500, "{\"error\":\"unscripted\"}".into()));
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
        response.headers_mut().insert("content-type", "application/json".parse().unwrap());
        response.headers_mut().insert("x-elastic-product", "Elasticsearch".parse().unwrap());
        response
    }

    fn sent(&self) -> Vec<Sent> {
        self.sent.lock().unwrap().clone()
    }
}

fn log(address: &str) -> ElasticChatLog {
    ElasticChatLog::new(ElasticConfig {
        url: address.to_owned(),
        api_key: None,
        timeout: Duration::from_secs(5),
        index: "chat_logs".into(),
    })
    .unwrap()
}

fn event(n: u128, kind: EventKind, text: &str) -> ChatEvent {
    let millis = 1_795_000_000_000u128 + n;
    ChatEvent {
        id: EventId::from_u128(millis << 80 | n),
        room: RoomName::parse("general").unwrap(),
        user: DisplayName::parse("ann").unwrap(),
        guest: false,
        kind,
        text: MessageText::parse(text).unwrap(),
        timestamp: time::OffsetDateTime::from_unix_timestamp_nanos(millis as i128 * 1_000_000).unwrap(),
    }
}

// Real Elasticsearch 8 bodies.
fn created_index() -> Value {
    json!({"acknowledged": true, "shards_acknowledged": true, "index": "chat_logs"})
}
fn already_exists() -> Value {
    json!({"error": {"root_cause": [{"type": "resource_already_exists_exception", "reason": "index [chat_logs/7sA0tTHsQ3CYrl9nTzmNFg] already exists", "index_uuid": "7sA0tTHsQ3CYrl9nTzmNFg", "index": "chat_logs"}], "type": "resource_already_exists_exception", "reason": "index [chat_logs/7sA0tTHsQ3CYrl9nTzmNFg] already exists", "index_uuid": "7sA0tTHsQ3CYrl9nTzmNFg", "index": "chat_logs"}, "status": 400})
}
fn item(id: &EventId, status: u16) -> Value {
    match status {
        201 => {
            json!({"index": {"_index": "chat_logs", "_id": id.to_string(), "_version": 1, "result": "created", "forced_refresh": true, "_shards": {"total": 2, "successful": 1, "failed": 0}, "_seq_no": 0, "_primary_term": 1, "status": 201}})
        }
        429 => {
            json!({"index": {"_index": "chat_logs", "_id": id.to_string(), "status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=2048, max_coordinating_and_primary_bytes=107374182]"}}})
        }
        _ => {
            json!({"index": {"_index": "chat_logs", "_id": id.to_string(), "status": 400, "error": {"type": "document_parsing_exception", "reason": "[1:120] failed to parse field [timestamp] of type [date] in document with id '01JDX'. Preview of field's value: 'yesterday'", "caused_by": {"type": "illegal_argument_exception", "reason": "failed to parse date field [yesterday] with format [strict_date_optional_time||epoch_millis]"}}}})
        }
    }
}
fn bulk(items: Vec<Value>) -> Value {
    let errors = items.iter().any(|i| i["index"]["status"].as_u64().is_some_and(|s| s >= 300));
    json!({"errors": errors, "took": 12, "items": items})
}
fn rejected() -> Value {
    json!({"error": {"root_cause": [{"type": "es_rejected_execution_exception", "reason": "rejected execution of coordinating operation"}], "type": "es_rejected_execution_exception", "reason": "rejected execution of coordinating operation"}, "status": 429})
}
fn no_shards() -> Value {
    json!({"error": {"root_cause": [], "type": "search_phase_execution_exception", "reason": "all shards failed", "phase": "query", "grouped": true, "failed_shards": []}, "status": 503})
}
fn hits(hits: Vec<Value>) -> Value {
    json!({"took": 3, "timed_out": false, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0}, "hits": {"total": {"value": hits.len(), "relation": "eq"}, "max_score": 1.4, "hits": hits}})
}

#[tokio::test]
async fn the_index_is_created_with_an_explicit_mapping_and_an_existing_one_is_accepted() {
    let a = event(1, EventKind::Message, "hello");
    let (double, address) = Double::start(vec![
        (400, already_exists()),
        (200, bulk(vec![item(&a.id, 201)])),
        (200, bulk(vec![item(&a.id, 201)])),
    ])
    .await;
    let log = log(&address);
    log.append(std::slice::from_ref(&a)).await.unwrap();
    log.append(std::slice::from_ref(&a)).await.unwrap();
    let sent = double.sent();
    assert_eq!((sent[0].method.as_str(), sent[0].path.as_str()), ("PUT", "/chat_logs"));
    let mapping = &sent[0].json()["mappings"]["properties"];
    for (field, kind) in [
        ("room", "keyword"),
        ("user", "keyword"),
        ("kind", "keyword"),
        ("id", "keyword"),
        ("message", "text"),
        ("timestamp", "date"),
    ] {
        assert_eq!(mapping[field]["type"], kind, "{field}");
    }
    assert_eq!(sent.iter().filter(|s| s.method == "PUT").count(), 1, "the index is checked once");
}

#[tokio::test]
async fn events_are_written_through_bulk_as_ndjson_with_their_id_as_the_document_id() {
    let (a, b) = (event(1, EventKind::Joined, ""), event(2, EventKind::Message, "hi \"there\""));
    let (double, address) =
        Double::start(vec![(200, created_index()), (200, bulk(vec![item(&a.id, 201), item(&b.id, 201)]))]).await;
    log(&address).append(&[a.clone(), b.clone()]).await.unwrap();
    let sent = double.sent();
    let bulk = &sent[1];
    assert_eq!((bulk.method.as_str(), bulk.path.as_str()), ("POST", "/_bulk?refresh=wait_for"));
    assert!(bulk.body.ends_with('\n'), "NDJSON ends with a newline");
    let lines = bulk.ndjson();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0], json!({"index": {"_index": "chat_logs", "_id": a.id.to_string()}}));
    assert_eq!(
        lines[1],
        json!({"id": a.id.to_string(), "room": "general", "user": "ann", "kind": "joined", "message": "[JOINED]", "timestamp": "2026-11-18T11:06:40.001Z"})
    );
    assert_eq!(lines[2]["index"]["_id"], b.id.to_string());
    assert_eq!(lines[3]["message"], "hi \"there\"");
}

#[tokio::test]
async fn only_items_refused_with_429_are_retried_and_mapping_errors_are_given_up() {
    let (a, b, c) =
        (event(1, EventKind::Message, "ok"), event(2, EventKind::Message, "busy"), event(3, EventKind::Message, "bad"));
    let (double, address) = Double::start(vec![
        (200, created_index()),
        (200, bulk(vec![item(&a.id, 201), item(&b.id, 429), item(&c.id, 400)])),
        (200, bulk(vec![item(&b.id, 201)])),
    ])
    .await;
    log(&address).append(&[a.clone(), b.clone(), c.clone()]).await.unwrap();
    let sent = double.sent();
    assert_eq!(sent.len(), 3);
    let retried = sent[2].ndjson();
    assert_eq!(retried.len(), 2, "one event retried: {retried:?}");
    assert_eq!(retried[0]["index"]["_id"], b.id.to_string());
}

#[tokio::test]
async fn items_refused_every_time_leave_the_batch_unavailable_for_a_later_retry() {
    let a = event(1, EventKind::Message, "busy");
    let answers = std::iter::once((200, created_index()))
        .chain(std::iter::repeat_n((200, bulk(vec![item(&a.id, 429)])), 3))
        .collect();
    let (double, address) = Double::start(answers).await;
    let result = log(&address).append(std::slice::from_ref(&a)).await;
    assert!(matches!(result, Err(ChatLogError::Unavailable(_))), "{result:?}");
    assert_eq!(double.sent().len(), 4);
}

#[tokio::test]
async fn a_429_or_503_is_unavailable_and_other_refusals_are_failures() {
    let a = event(1, EventKind::Message, "x");
    let (_, address) = Double::start(vec![
        (200, created_index()),
        (429, rejected()),
        (503, no_shards()),
        (400, json!({"error": {"type": "parsing_exception", "reason": "unknown query [matchh]"}, "status": 400})),
    ])
    .await;
    let log = log(&address);
    assert!(matches!(log.append(std::slice::from_ref(&a)).await, Err(ChatLogError::Unavailable(_))));
    let query = SearchQuery {
        room: RoomName::parse("general").unwrap(),
        text: "x".into(),
        order: SearchOrder::Relevance,
        offset: 0,
        limit: 10,
    };
    assert!(matches!(log.search(&query).await, Err(ChatLogError::Unavailable(_))));
    assert!(matches!(log.search(&query).await, Err(ChatLogError::Failed(_))));
}

#[tokio::test]
async fn an_unreachable_cluster_is_unavailable_not_an_error_at_startup() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = log(&format!("http://127.0.0.1:{port}"));
    assert!(matches!(log.append(&[event(1, EventKind::Message, "x")]).await, Err(ChatLogError::Unavailable(_))));
    assert!(matches!(log.ping().await, Err(ChatLogError::Unavailable(_))));
}

#[tokio::test]
async fn search_sends_the_originals_query_and_reads_hits_old_and_new() {
    let a = event(5, EventKind::Message, "hello world");
    let hit = json!({"_index": "chat_logs", "_id": a.id.to_string(), "_score": 1.4, "_source": {"id": a.id.to_string(), "room": "general", "user": "ann", "kind": "message", "message": "hello world", "timestamp": "2026-11-18T11:06:40.005Z"}});
    let legacy = json!({"_index": "chat_logs", "_id": "Xy3k0ZMB2f", "_score": 0.9, "_source": {"room": "general", "user": "bob", "message": "hello from 2024", "timestamp": "2024-05-01T10:00:00.123456"}});
    let (double, address) = Double::start(vec![(200, created_index()), (200, hits(vec![hit, legacy]))]).await;
    let query = SearchQuery {
        room: RoomName::parse("general").unwrap(),
        text: "Hello".into(),
        order: SearchOrder::Relevance,
        offset: 20,
        limit: 10,
    };
    let found = log(&address).search(&query).await.unwrap();
    assert_eq!(found[0], a);
    assert_eq!((found[1].user.as_str(), found[1].text.as_str()), ("bob", "hello from 2024"));
    let sent = double.sent();
    assert_eq!(sent[1].path, "/chat_logs/_search");
    let body = sent[1].json();
    assert_eq!(body["query"]["bool"]["must"], json!([{"match": {"message": {"query": "Hello"}}}]));
    assert_eq!(body["query"]["bool"]["filter"][0]["bool"]["should"][0], json!({"term": {"room": "general"}}));
    assert_eq!((body["from"].as_u64(), body["size"].as_u64()), (Some(20), Some(10)));
    assert_eq!(body["sort"][0], json!({"_score": {"order": "desc"}}));
    assert_eq!(body["query"]["bool"]["must_not"][0], json!({"terms": {"kind": ["joined", "left"]}}));
}

#[tokio::test]
async fn history_pages_with_search_after_and_since_reads_forward() {
    let cursor = event(9, EventKind::Message, "cursor");
    let (double, address) = Double::start(vec![(200, created_index()), (200, hits(vec![])), (200, hits(vec![]))]).await;
    let log = log(&address);
    let room = RoomName::parse("general").unwrap();
    log.history(&room, Some(cursor.id), 25).await.unwrap();
    log.since(&room, cursor.id, 50).await.unwrap();
    let sent = double.sent();
    let history = sent[1].json();
    assert_eq!(history["search_after"], json!([cursor.id.millis(), cursor.id.to_string()]));
    assert_eq!(
        history["sort"],
        json!([{"timestamp": {"order": "desc"}}, {"id": {"order": "desc", "unmapped_type": "keyword"}}])
    );
    assert_eq!(history["size"], 25);
    let since = sent[2].json();
    assert_eq!(since["search_after"], json!([cursor.id.millis(), cursor.id.to_string()]));
    assert_eq!(since["sort"][0], json!({"timestamp": {"order": "asc"}}));
}

#[tokio::test]
async fn credentials_in_the_url_or_an_api_key_go_in_the_authorization_header() {
    let (double, address) = Double::start(vec![(200, json!({})), (200, json!({}))]).await;
    let with_user = address.replacen("http://", "http://elastic:s%40cret@", 1);
    ElasticChatLog::new(ElasticConfig {
        url: with_user,
        api_key: None,
        timeout: Duration::from_secs(5),
        index: "chat_logs".into(),
    })
    .unwrap()
    .ping()
    .await
    .unwrap();
    ElasticChatLog::new(ElasticConfig {
        url: address,
        api_key: Some("VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==".into()),
        timeout: Duration::from_secs(5),
        index: "chat_logs".into(),
    })
    .unwrap()
    .ping()
    .await
    .unwrap();
    let sent = double.sent();
    // base64("elastic:s@cret")
    assert_eq!(sent[0].authorization.as_deref(), Some("Basic ZWxhc3RpYzpzQGNyZXQ="));
    assert_eq!(
        sent[1].authorization.as_deref(),
        Some("ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==")
    );
}

#[test]
fn a_url_that_is_not_http_is_refused_naming_the_variable() {
    let refused = ElasticChatLog::new(ElasticConfig {
        url: "ftp://x".into(),
        api_key: None,
        timeout: Duration::from_secs(1),
        index: "chat_logs".into(),
    });
    assert!(refused.err().unwrap().to_string().starts_with("ELASTIC_URL"));
}
