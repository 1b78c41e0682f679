//! Every way a WebSocket handshake is refused, and the one place each becomes
//! an HTTP status with a `{"detail"}` body, as the HTTP adapter answers the
//! same failures (`adapters/http/src/error.rs`): a backing service down is a
//! 503 with `Retry-After`, an unexpected failure a logged 500, a limit a 429
//! with `Retry-After`.
//!
//! Each refusal is logged here with the client's address: limits at warn, at
//! most once per address per minute (a flood must not flood the log);
//! failures of ours at error; a client's own mistakes at debug.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER, SEC_WEBSOCKET_VERSION, UPGRADE, WWW_AUTHENTICATE};
use hyper::{Response, StatusCode};
use parley_ports::domain::ClientAddress;
use parley_ports::{AccountError, ChatError};

use crate::client_limits::{ClientLimits, TooManyJoins};

pub type Reply = Response<Full<Bytes>>;

/// How long a client is told to wait when a backing service is down or the
/// server is full: long enough not to hammer it, short enough to recover fast.
const RETRY_UNAVAILABLE: &str = "5";

#[derive(Debug)]
pub enum Refusal {
    /// No WebSocket endpoint at this path.
    NotFound,
    /// A room, name or option the client got wrong.
    BadRequest(String),
    /// A plain HTTP request where an upgrade was expected.
    NotAnUpgrade,
    /// No token where one is needed.
    NotAuthenticated,
    Account(AccountError),
    /// A valid token for someone other than the path's username.
    NotTheTokensUser,
    TooManyJoins(TooManyJoins),
    /// Every connection slot is taken.
    Full,
    Chat(ChatError),
}

impl From<AccountError> for Refusal {
    fn from(error: AccountError) -> Self {
        Refusal::Account(error)
    }
}

impl From<ChatError> for Refusal {
    fn from(error: ChatError) -> Self {
        Refusal::Chat(error)
    }
}

impl From<TooManyJoins> for Refusal {
    fn from(refused: TooManyJoins) -> Self {
        Refusal::TooManyJoins(refused)
    }
}

pub fn detail(status: StatusCode, text: &str) -> Reply {
    let body = serde_json::json!({ "detail": text }).to_string();
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    *reply.status_mut() = status;
    reply.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if status == StatusCode::UNAUTHORIZED {
        reply.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    reply
}

fn retry_after(mut reply: Reply, seconds: HeaderValue) -> Reply {
    reply.headers_mut().insert(RETRY_AFTER, seconds);
    reply
}

fn unavailable(client: ClientAddress, cause: &dyn std::fmt::Display) -> Reply {
    tracing::warn!(%client, %cause, "WebSocket refused: a backing service is unavailable");
    let reply = detail(StatusCode::SERVICE_UNAVAILABLE, "Service temporarily unavailable, try again shortly");
    retry_after(reply, HeaderValue::from_static(RETRY_UNAVAILABLE))
}

fn internal(client: ClientAddress, cause: &dyn std::fmt::Display) -> Reply {
    tracing::error!(%client, %cause, "WebSocket handshake failed");
    detail(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
}

/// Whole seconds, rounded up: `Retry-After` has no fractions, and 0 would invite an instant retry.
fn whole_seconds(wait: Duration) -> HeaderValue {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    HeaderValue::from(seconds.max(1))
}

impl Refusal {
    /// The answer to `client`, logged.
    pub fn into_reply(self, client: ClientAddress, limits: &ClientLimits) -> Reply {
        let mistake = |reply: Reply, why: &dyn std::fmt::Display| {
            tracing::debug!(%client, %why, status = reply.status().as_u16(), "WebSocket refused");
            reply
        };
        match self {
            Refusal::NotFound => mistake(detail(StatusCode::NOT_FOUND, "Not Found"), &"no such endpoint"),
            Refusal::BadRequest(problem) => mistake(detail(StatusCode::BAD_REQUEST, &problem), &problem),
            Refusal::NotAnUpgrade => {
                let mut reply = detail(StatusCode::UPGRADE_REQUIRED, "WebSocket upgrade expected");
                reply.headers_mut().insert(UPGRADE, HeaderValue::from_static("websocket"));
                reply.headers_mut().insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
                mistake(reply, &"not an upgrade")
            }
            Refusal::NotAuthenticated => mistake(detail(StatusCode::UNAUTHORIZED, "Not authenticated"), &"no token"),
            Refusal::NotTheTokensUser => mistake(
                detail(StatusCode::FORBIDDEN, "The username in the path is not the token's user"),
                &"the token is another user's",
            ),
            Refusal::Account(error) => {
                let text = error.to_string();
                match error {
                    AccountError::Unavailable(cause) => unavailable(client, &cause),
                    AccountError::Failed(cause) => internal(client, &cause),
                    AccountError::Inactive | AccountError::Forbidden(_) => {
                        mistake(detail(StatusCode::FORBIDDEN, &text), &text)
                    }
                    // Every other account failure is a token that does not hold.
                    _ => mistake(detail(StatusCode::UNAUTHORIZED, "Could not validate credentials"), &text),
                }
            }
            Refusal::TooManyJoins(TooManyJoins { retry_after: wait }) => {
                if limits.should_warn(client) {
                    tracing::warn!(%client, "WebSocket refused: too many joins from this address (said once a minute)");
                }
                let reply = detail(StatusCode::TOO_MANY_REQUESTS, "Too many joins from your address, slow down");
                retry_after(reply, whole_seconds(wait))
            }
            Refusal::Full => {
                if limits.should_warn(client) {
                    tracing::warn!(%client, "WebSocket refused: every connection slot is taken (said once a minute)");
                }
                retry_after(
                    detail(StatusCode::SERVICE_UNAVAILABLE, "Too many connections"),
                    HeaderValue::from_static(RETRY_UNAVAILABLE),
                )
            }
            Refusal::Chat(error @ ChatError::TooManyRooms(_)) => {
                tracing::warn!(%client, %error, "WebSocket refused: no room may open here now");
                retry_after(
                    detail(StatusCode::SERVICE_UNAVAILABLE, "Too many rooms are open on this server; try again later"),
                    HeaderValue::from_static(RETRY_UNAVAILABLE),
                )
            }
            Refusal::Chat(ChatError::Unavailable(cause)) => unavailable(client, &cause),
            Refusal::Chat(ChatError::Failed(cause)) => internal(client, &cause),
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use parley_ports::Forbidden;

    use super::*;

    async fn answer(refusal: Refusal) -> (u16, Option<String>, bool, serde_json::Value) {
        let client = ClientAddress::new("192.0.2.1".parse().unwrap());
        let reply = refusal.into_reply(client, &ClientLimits::off());
        let status = reply.status().as_u16();
        let retry = reply.headers().get(RETRY_AFTER).map(|v| v.to_str().unwrap().to_owned());
        let bearer = reply.headers().contains_key(WWW_AUTHENTICATE);
        let body = reply.into_body().collect().await.unwrap().to_bytes();
        (status, retry, bearer, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn account_errors_are_answered_as_over_http() {
        let cases = [
            (AccountError::InvalidToken, 401, None, "Could not validate credentials"),
            (AccountError::UserNotFound, 401, None, "Could not validate credentials"),
            (AccountError::Inactive, 403, None, "Inactive user"),
            (AccountError::Forbidden(Forbidden::AdminOnly), 403, None, "Only an administrator may do this"),
            (
                AccountError::Unavailable("db down".into()),
                503,
                Some("5"),
                "Service temporarily unavailable, try again shortly",
            ),
            (AccountError::Failed("secret cause".into()), 500, None, "Internal server error"),
        ];
        for (error, status, retry, text) in cases {
            let (got, got_retry, bearer, body) = answer(Refusal::Account(error)).await;
            assert_eq!((got, got_retry.as_deref()), (status, retry), "{text}");
            assert_eq!(bearer, status == 401, "WWW-Authenticate on every 401 and only there");
            assert_eq!(body, serde_json::json!({ "detail": text }));
        }
    }

    #[tokio::test]
    async fn limits_and_a_full_server_say_when_to_come_back() {
        let (status, retry, _, _) =
            answer(Refusal::TooManyJoins(TooManyJoins { retry_after: Duration::from_millis(1500) })).await;
        assert_eq!((status, retry.as_deref()), (429, Some("2")), "rounded up");
        let (_, retry, _, _) = answer(Refusal::TooManyJoins(TooManyJoins { retry_after: Duration::ZERO })).await;
        assert_eq!(retry.as_deref(), Some("1"), "never 0");
        let (status, retry, _, body) = answer(Refusal::Full).await;
        assert_eq!((status, retry.as_deref()), (503, Some("5")));
        assert_eq!(body["detail"], "Too many connections");
        let (status, retry, _, _) = answer(Refusal::Chat(ChatError::Failed("bug".into()))).await;
        assert_eq!((status, retry), (500, None));
    }
}
