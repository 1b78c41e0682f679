//! Building responses: JSON bodies and the shared body type.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
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
    let mut reply = Response::new(Full::new(body));
    *reply.status_mut() = status;
    reply.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    reply
}

pub fn empty(status: StatusCode) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::new()));
    *reply.status_mut() = status;
    reply
}
