//! From an HTTP request to an open WebSocket, in steps each settled before
//! the 101, so that a refusal is an ordinary HTTP status (`refusal.rs`):
//! - parse: the endpoint, the upgrade headers, the options;
//! - the client's joins are counted, before anything costs (a token check, a
//!   store lookup, the room): a join flood never reaches the room;
//! - authenticate: who joins — the user a token names, or a guest;
//! - admit: a connection slot, the reserved names, then the room.
//!
//! Knows nothing of frames once the connection is open: that is `connection`'s.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    AUTHORIZATION, CONNECTION, HeaderMap, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION,
    UPGRADE,
};
use hyper::upgrade::OnUpgrade;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use parley_ports::domain::{ClientAddress, DisplayName, RoomName, UserId};
use tokio::sync::OwnedSemaphorePermit;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::WsRooms;
use crate::close::Close;
use crate::connection::{self, Protocol};
use crate::endpoint::{AuthMode, BadEndpoint, Endpoint, Options};
use crate::refusal::{Refusal, Reply};

/// How long a refused client's close echo is waited for.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What a well-formed upgrade request asks for.
struct Asked {
    endpoint: Endpoint,
    /// The `Sec-WebSocket-Accept` the 101 carries.
    accept: String,
    options: Options,
    /// From the query's `token=` or an `Authorization: Bearer` header.
    token: Option<String>,
}

/// Who joins which room, and how they speak.
pub struct Identity {
    pub room: RoomName,
    pub name: DisplayName,
    /// The user a token named; `None` for a guest.
    pub user: Option<UserId>,
    pub protocol: Protocol,
}

impl Identity {
    /// Unauthenticated: the name is only what the client said it was.
    pub fn is_guest(&self) -> bool {
        self.user.is_none()
    }
}

pub async fn upgrade(rooms: Arc<WsRooms>, mut request: Request<Incoming>, client: ClientAddress) -> Reply {
    match open(&rooms, &mut request, client).await {
        Ok(reply) => reply,
        Err(refusal) => refusal.into_reply(client, &rooms.limits),
    }
}

async fn open(rooms: &Arc<WsRooms>, request: &mut Request<Incoming>, client: ClientAddress) -> Result<Reply, Refusal> {
    let asked = parse(request)?;
    rooms.limits.join(client)?;
    let accept = asked.accept.clone();
    let identity = authenticate(rooms, asked).await?;
    admit(rooms, request, identity, client, &accept).await
}

fn parse(request: &Request<Incoming>) -> Result<Asked, Refusal> {
    let endpoint = Endpoint::parse(request.uri().path()).map_err(|bad| match bad {
        BadEndpoint::NotFound => Refusal::NotFound,
        BadEndpoint::Invalid(invalid) => Refusal::BadRequest(invalid.to_string()),
        BadEndpoint::NotUtf8(field) => Refusal::BadRequest(format!("{field}: not UTF-8")),
    })?;
    let headers = request.headers();
    let is_upgrade = request.method() == Method::GET
        && header_has(headers, CONNECTION, "upgrade")
        && header_has(headers, UPGRADE, "websocket")
        && headers.get(SEC_WEBSOCKET_VERSION).is_some_and(|v| v == "13");
    let accept = headers
        .get(SEC_WEBSOCKET_KEY)
        .filter(|_| is_upgrade)
        .map(|key| derive_accept_key(key.as_bytes()))
        .ok_or(Refusal::NotAnUpgrade)?;
    let options = Options::parse(request.uri().query()).map_err(Refusal::BadRequest)?;
    let token = options.token.clone().or_else(|| bearer(headers));
    Ok(Asked { endpoint, accept, options, token })
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

/// The JSON endpoint needs a token and names the member after its user. The
/// original endpoint takes the path's name: with a token (always, in
/// `required` mode) it must be the token's user's; without one, in `open`
/// mode, the member is a guest. A token that does not hold is refused on
/// both, never taken for a guest.
async fn authenticate(rooms: &WsRooms, asked: Asked) -> Result<Identity, Refusal> {
    let Asked { endpoint, options, token, .. } = asked;
    let caller = match token {
        Some(token) => Some(rooms.accounts.authenticate(&token).await?),
        None => None,
    };
    match endpoint {
        Endpoint::Compat { room, username } => {
            let user = match caller {
                Some(caller) if caller.user().username.as_str().eq_ignore_ascii_case(username.as_str()) => {
                    Some(caller.id())
                }
                Some(_) => return Err(Refusal::NotTheTokensUser),
                None if rooms.config.auth_mode == AuthMode::Required => return Err(Refusal::NotAuthenticated),
                None => None,
            };
            Ok(Identity { room, name: username, user, protocol: Protocol::Compat })
        }
        Endpoint::Json { room } => {
            let caller = caller.ok_or(Refusal::NotAuthenticated)?;
            let name = DisplayName::from_storage(caller.user().username.as_str().to_owned());
            let protocol = Protocol::Json { since: options.since, history: options.history };
            Ok(Identity { room, name, user: Some(caller.id()), protocol })
        }
    }
}

async fn admit(
    rooms: &Arc<WsRooms>,
    request: &mut Request<Incoming>,
    identity: Identity,
    client: ClientAddress,
    accept: &str,
) -> Result<Reply, Refusal> {
    let slot = Arc::clone(&rooms.slots).try_acquire_owned().map_err(|_| Refusal::Full)?;
    let on_upgrade = hyper::upgrade::on(request);
    let config = socket_config(rooms.config.max_message_bytes);
    if identity.is_guest()
        && rooms.config.reserve_usernames
        && rooms.accounts.is_registered(identity.name.as_str()).await?
    {
        // Upgraded, then closed: a browser cannot read a refused upgrade's reason.
        tracing::info!(%client, name = identity.name.as_str(), "a guest asked for a registered user's name");
        tokio::spawn(close_at_once(on_upgrade, config, Close::ReservedName, slot, rooms.config.write_timeout));
        return Ok(switching_protocols(accept));
    }
    let guest = identity.is_guest();
    let (member, subscription) = rooms.chat.join(identity.room, identity.name, guest).await?;
    let upgrade = connection::Upgrade { on_upgrade, config, slot, client, user: identity.user };
    tokio::spawn(connection::run(upgrade, Arc::clone(rooms), member, subscription, identity.protocol));
    Ok(switching_protocols(accept))
}

fn switching_protocols(accept: &str) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::new()));
    *reply.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let out = reply.headers_mut();
    out.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    out.insert(UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(accept) {
        out.insert(SEC_WEBSOCKET_ACCEPT, accept);
    }
    reply
}

/// Completes the upgrade only to close with `close`'s code and reason; the
/// room never hears of it. The slot is held until the socket is gone.
async fn close_at_once(
    on_upgrade: OnUpgrade,
    config: WebSocketConfig,
    close: Close,
    _slot: OwnedSemaphorePermit,
    write_timeout: Duration,
) {
    let Ok(upgraded) = on_upgrade.await else { return };
    let mut socket = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
    if tokio::time::timeout(write_timeout, socket.close(Some(close.frame()))).await.is_ok() {
        // The close echo, for a clean close; not waited for past a moment.
        let _ = tokio::time::timeout(CLOSE_GRACE, async { while let Some(Ok(_)) = socket.next().await {} }).await;
    }
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
