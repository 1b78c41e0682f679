//! From an HTTP request to an open WebSocket: the endpoint, the token, a
//! connection slot and the room are all settled before the 101, so a refusal
//! is an ordinary HTTP status with a `{"detail"}` body.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    AUTHORIZATION, CONNECTION, CONTENT_TYPE, HeaderMap, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use hyper::{Method, Request, Response, StatusCode};
use parley_ports::domain::{ClientAddress, DisplayName};
use parley_ports::{AccountError, ChatError};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::WsRooms;
use crate::connection::{self, Protocol};
use crate::endpoint::{AuthMode, BadEndpoint, Endpoint, Options};

type Reply = Response<Full<Bytes>>;

fn detail(status: StatusCode, text: &str) -> Reply {
    let body = serde_json::json!({ "detail": text }).to_string();
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    *reply.status_mut() = status;
    reply.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if status == StatusCode::UNAUTHORIZED {
        reply.headers_mut().insert(hyper::header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    reply
}

fn header_has(headers: &HeaderMap, name: hyper::header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case(token))
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
}

fn account_refusal(error: AccountError) -> Reply {
    match error {
        AccountError::Inactive => detail(StatusCode::FORBIDDEN, "Inactive user"),
        AccountError::Unavailable(cause) => {
            tracing::warn!(%cause, "cannot check a WebSocket token");
            detail(StatusCode::SERVICE_UNAVAILABLE, "Service temporarily unavailable, try again shortly")
        }
        _ => detail(StatusCode::UNAUTHORIZED, "Could not validate credentials"),
    }
}

pub async fn upgrade(rooms: Arc<WsRooms>, mut request: Request<Incoming>, _client: ClientAddress) -> Reply {
    let endpoint = match Endpoint::parse(request.uri().path()) {
        Ok(endpoint) => endpoint,
        Err(BadEndpoint::NotFound) => return detail(StatusCode::NOT_FOUND, "Not Found"),
        Err(BadEndpoint::Invalid(invalid)) => return detail(StatusCode::BAD_REQUEST, &invalid.to_string()),
        Err(BadEndpoint::NotUtf8(field)) => return detail(StatusCode::BAD_REQUEST, &format!("{field}: not UTF-8")),
    };
    let headers = request.headers();
    let key = headers.get(SEC_WEBSOCKET_KEY).map(|k| derive_accept_key(k.as_bytes()));
    let is_upgrade = request.method() == Method::GET
        && header_has(headers, CONNECTION, "upgrade")
        && header_has(headers, UPGRADE, "websocket")
        && headers.get(SEC_WEBSOCKET_VERSION).is_some_and(|v| v == "13");
    let Some(accept) = key.filter(|_| is_upgrade) else {
        let mut reply = detail(StatusCode::UPGRADE_REQUIRED, "WebSocket upgrade expected");
        reply.headers_mut().insert(UPGRADE, HeaderValue::from_static("websocket"));
        reply.headers_mut().insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        return reply;
    };
    let options = match Options::parse(request.uri().query()) {
        Ok(options) => options,
        Err(problem) => return detail(StatusCode::BAD_REQUEST, &problem),
    };
    let token = options.token.clone().or_else(|| bearer(request.headers()));

    // `guest`: nobody checked the name. The JSON endpoint always
    // authenticates; the original one only when auth is required.
    let (room, name, guest, protocol) = match endpoint {
        Endpoint::Compat { room, username } => {
            if rooms.config.auth_mode == AuthMode::Required {
                let Some(token) = token else {
                    return detail(StatusCode::UNAUTHORIZED, "Not authenticated");
                };
                let caller = match rooms.accounts.authenticate(&token).await {
                    Ok(caller) => caller,
                    Err(error) => return account_refusal(error),
                };
                if !caller.user().username.as_str().eq_ignore_ascii_case(username.as_str()) {
                    return detail(StatusCode::FORBIDDEN, "The username in the path is not the token's user");
                }
            }
            let guest = rooms.config.auth_mode != AuthMode::Required;
            (room, username, guest, Protocol::Compat)
        }
        Endpoint::Json { room } => {
            let Some(token) = token else {
                return detail(StatusCode::UNAUTHORIZED, "Not authenticated");
            };
            let caller = match rooms.accounts.authenticate(&token).await {
                Ok(caller) => caller,
                Err(error) => return account_refusal(error),
            };
            let name = DisplayName::from_storage(caller.user().username.as_str().to_owned());
            (room, name, false, Protocol::Json { since: options.since, history: options.history })
        }
    };

    let Ok(slot) = Arc::clone(&rooms.slots).try_acquire_owned() else {
        return detail(StatusCode::SERVICE_UNAVAILABLE, "Too many connections");
    };
    let (member, subscription) = match rooms.chat.join(room, name, guest).await {
        Ok(joined) => joined,
        Err(error @ ChatError::TooManyRooms(_)) => {
            tracing::warn!(%error, client = %_client, "refused a join to a new room");
            return detail(StatusCode::SERVICE_UNAVAILABLE, "Too many rooms are open on this server; try again later");
        }
        Err(error) => {
            tracing::warn!(%error, "cannot join a room");
            return detail(StatusCode::SERVICE_UNAVAILABLE, "Service temporarily unavailable, try again shortly");
        }
    };

    let upgrade = connection::Upgrade {
        on_upgrade: hyper::upgrade::on(&mut request),
        config: socket_config(rooms.config.max_message_bytes),
        slot,
    };
    let serving = connection::run(upgrade, rooms, member, subscription, protocol);
    tokio::spawn(serving);

    let mut reply = Response::new(Full::new(Bytes::new()));
    *reply.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let out = reply.headers_mut();
    out.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    out.insert(UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        out.insert(SEC_WEBSOCKET_ACCEPT, accept);
    }
    reply
}

/// Small buffers: an idle connection should cost a few KiB, not tungstenite's
/// default 128 KiB read buffer.
fn socket_config(max_message_bytes: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(128)
        .write_buffer_size(8 * 1024)
        .max_write_buffer_size(1024 * 1024)
        .max_message_size(Some(max_message_bytes))
        .max_frame_size(Some(max_message_bytes))
}
