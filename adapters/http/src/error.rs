//! Every way a request can fail, and the one place each becomes a status
//! code and a `{"detail": ...}` body the original app's clients understand.
//!
//! Unexpected failures are logged here with their cause; the client sees
//! only a plain 500 (or 503 when a backing service is down and a retry may work).

use hyper::StatusCode;
use hyper::header::{ALLOW, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use parley_ports::domain::Invalid;
use parley_ports::{AccountError, ChatError};
use serde::Serialize;

use crate::admission::Refusal;
use crate::reply::{Reply, json};

/// One FastAPI-shaped validation problem: `{"type", "loc", "msg"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub loc: Vec<Loc>,
    pub msg: String,
}

/// A step in a problem's location: `["body", "email"]`, `["path", "user_id"]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Loc {
    Name(String),
    Index(usize),
}

impl FieldError {
    pub fn new(place: &'static str, field: &str, kind: &'static str, msg: impl Into<String>) -> Self {
        let mut loc = vec![Loc::Name(place.to_owned())];
        if !field.is_empty() {
            loc.push(Loc::Name(field.to_owned()));
        }
        Self { kind, loc, msg: msg.into() }
    }

    /// A domain constructor's refusal, located where the client sent the value.
    pub fn invalid(place: &'static str, invalid: &Invalid) -> Self {
        Self::new(place, invalid.field, invalid.rule.code(), invalid.rule.to_string())
    }
}

#[derive(Debug)]
pub enum ApiError {
    Validation(Vec<FieldError>),
    /// No bearer token was sent.
    NotAuthenticated,
    Account(AccountError),
    Chat(ChatError),
    NotFound,
    MethodNotAllowed(&'static str),
    PayloadTooLarge(usize),
    /// The client took too long to send its body.
    RequestTimeout,
    /// Admission refused the client (logged where it was refused).
    Refused(Refusal),
}

impl From<AccountError> for ApiError {
    fn from(error: AccountError) -> Self {
        ApiError::Account(error)
    }
}

impl From<ChatError> for ApiError {
    fn from(error: ChatError) -> Self {
        ApiError::Chat(error)
    }
}

#[derive(Serialize)]
struct Detail<T: Serialize> {
    detail: T,
}

fn detail(status: StatusCode, text: &str) -> Reply {
    json(status, &Detail { detail: text })
}

fn unauthorized(text: &str) -> Reply {
    let mut reply = detail(StatusCode::UNAUTHORIZED, text);
    reply.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    reply
}

fn unavailable(cause: &dyn std::fmt::Display) -> Reply {
    tracing::warn!(%cause, "a backing service is unavailable");
    let mut reply = detail(StatusCode::SERVICE_UNAVAILABLE, "Service temporarily unavailable, try again shortly");
    reply.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("5"));
    reply
}

fn internal(cause: &dyn std::fmt::Display) -> Reply {
    tracing::error!(%cause, "request failed");
    detail(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
}

impl ApiError {
    pub fn into_reply(self) -> Reply {
        match self {
            ApiError::Validation(problems) => json(StatusCode::UNPROCESSABLE_ENTITY, &Detail { detail: problems }),
            ApiError::NotAuthenticated => unauthorized("Not authenticated"),
            ApiError::NotFound => detail(StatusCode::NOT_FOUND, "Not Found"),
            ApiError::MethodNotAllowed(allow) => {
                let mut reply = detail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
                reply.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
                reply
            }
            ApiError::PayloadTooLarge(limit) => {
                detail(StatusCode::PAYLOAD_TOO_LARGE, &format!("Request body larger than {limit} bytes"))
            }
            ApiError::RequestTimeout => detail(StatusCode::REQUEST_TIMEOUT, "Request body not received in time"),
            ApiError::Refused(refusal) => {
                let status = match refusal {
                    Refusal::Full { .. } => StatusCode::SERVICE_UNAVAILABLE,
                    Refusal::TooManyOpen { .. } | Refusal::TooFast { .. } => StatusCode::TOO_MANY_REQUESTS,
                };
                let mut reply = detail(status, &refusal.to_string());
                reply.headers_mut().insert(RETRY_AFTER, HeaderValue::from(refusal.retry_after_seconds()));
                reply
            }
            ApiError::Chat(ChatError::Unavailable(cause)) => unavailable(&cause),
            ApiError::Chat(ChatError::Failed(cause)) => internal(&cause),
            // No HTTP route joins a room; were one to, the cap is a 503 like the WebSocket's.
            ApiError::Chat(ChatError::TooManyRooms(cause)) => unavailable(&cause),
            ApiError::Account(error) => account(error),
        }
    }
}

fn account(error: AccountError) -> Reply {
    let text = error.to_string();
    match error {
        AccountError::EmailTaken | AccountError::UsernameTaken => detail(StatusCode::BAD_REQUEST, &text),
        AccountError::UserNotFound => detail(StatusCode::NOT_FOUND, &text),
        AccountError::BadCredentials | AccountError::InvalidToken => unauthorized(&text),
        AccountError::Inactive | AccountError::Forbidden(_) => detail(StatusCode::FORBIDDEN, &text),
        AccountError::Unavailable(cause) => unavailable(&cause),
        AccountError::Failed(cause) => internal(&cause),
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use parley_ports::Forbidden;

    use super::*;

    async fn body(reply: Reply) -> serde_json::Value {
        let bytes = reply.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn each_account_error_has_the_originals_status_and_detail() {
        let cases = [
            (AccountError::EmailTaken, 400, "Email already registered"),
            (AccountError::UsernameTaken, 400, "Username already taken"),
            (AccountError::UserNotFound, 404, "User not found"),
            (AccountError::BadCredentials, 401, "Incorrect username or password"),
            (AccountError::InvalidToken, 401, "Could not validate credentials"),
            (AccountError::Inactive, 403, "Inactive user"),
            (AccountError::Forbidden(Forbidden::AdminOnly), 403, "Only an administrator may do this"),
            (AccountError::Unavailable("db down".into()), 503, "Service temporarily unavailable, try again shortly"),
            (AccountError::Failed("secret cause".into()), 500, "Internal server error"),
        ];
        for (error, status, text) in cases {
            let reply = ApiError::from(error).into_reply();
            assert_eq!(reply.status().as_u16(), status);
            let bearer = reply.headers().get(WWW_AUTHENTICATE).is_some();
            assert_eq!(bearer, status == 401, "WWW-Authenticate on every 401 and only there");
            assert_eq!(body(reply).await, serde_json::json!({ "detail": text }));
        }
    }

    #[tokio::test]
    async fn validation_problems_are_listed_fastapi_style() {
        let reply =
            ApiError::Validation(vec![FieldError::new("body", "email", "missing", "Field required")]).into_reply();
        assert_eq!(reply.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            body(reply).await,
            serde_json::json!({"detail": [{"type": "missing", "loc": ["body", "email"], "msg": "Field required"}]})
        );
    }
}
