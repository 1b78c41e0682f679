//! Building responses: JSON bodies and the shared body type, and the headers
//! every response carries.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS};
use hyper::{Response, StatusCode};
use serde::Serialize;

pub type Reply = Response<Full<Bytes>>;

pub fn json(status: StatusCode, value: &impl Serialize) -> Reply {
    // Serialising our own plain structs cannot fail; if it ever did, say so.
    let (status, body) = match serde_json::to_vec(value) {
        Ok(body) => (status, body),
        Err(error) => {
            tracing::error!(%error, "could not encode a response");
            (StatusCode::INTERNAL_SERVER_ERROR, br#"{"detail":"Internal server error"}"#.to_vec())
        }
    };
    bytes(status, "application/json", Bytes::from(body))
}

pub fn bytes(status: StatusCode, content_type: &'static str, body: Bytes) -> Reply {
    let mut reply = empty(status);
    *reply.body_mut() = Full::new(body);
    reply.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    reply
}

pub fn empty(status: StatusCode) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::new()));
    *reply.status_mut() = status;
    let headers = reply.headers_mut();
    // Two static values, no allocation: a browser never guesses a type other
    // than the one stated (a JSON body holding markup stays JSON), and no page
    // or link here tells a third party where it was followed from (helmet's
    // choice too; nothing here reads `Referer`, and CORS and WebSocket
    // requests still carry their `Origin`).
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    reply
}
