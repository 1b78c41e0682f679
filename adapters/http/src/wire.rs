//! Response bodies, shaped as the original app returned them (plus
//! `is_admin` on users and `id` on chat events). Timestamps are RFC 3339 in UTC.

use parley_ports::AccessToken;
use parley_ports::domain::{ChatEvent, User};
use serde::Serialize;
use time::OffsetDateTime;

#[derive(Serialize)]
pub struct UserBody {
    pub id: i64,
    pub email: String,
    pub username: String,
    pub full_name: Option<String>,
    pub is_active: bool,
    pub is_admin: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
}

impl From<User> for UserBody {
    fn from(user: User) -> Self {
        Self {
            id: user.id.get(),
            email: user.email.into_string(),
            username: user.username.into_string(),
            full_name: user.full_name.map(|n| n.into_string()),
            is_active: user.is_active,
            is_admin: user.is_admin,
            created_at: user.created_at.to_offset(time::UtcOffset::UTC),
            updated_at: user.updated_at.map(|t| t.to_offset(time::UtcOffset::UTC)),
        }
    }
}

#[derive(Serialize)]
pub struct TokenBody {
    pub access_token: String,
    pub token_type: &'static str,
    /// Seconds until the token expires (OAuth2's `expires_in`).
    pub expires_in: u64,
}

impl From<AccessToken> for TokenBody {
    fn from(token: AccessToken) -> Self {
        Self { access_token: token.token, token_type: "bearer", expires_in: token.expires_in.as_secs() }
    }
}

/// One chat-log event: the original's four fields, the event id and its kind,
/// and `guest: true` for a guest's (omitted for registered members', as in
/// the JSON protocol).
#[derive(Serialize)]
pub struct ChatHit {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub room: String,
    pub user: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub guest: bool,
    pub message: String,
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
}

impl From<ChatEvent> for ChatHit {
    fn from(event: ChatEvent) -> Self {
        Self {
            id: event.id.to_string(),
            kind: event.kind.as_str(),
            room: event.room.as_str().to_owned(),
            user: event.user.as_str().to_owned(),
            guest: event.guest,
            message: event.text.as_str().to_owned(),
            timestamp: event.timestamp.to_offset(time::UtcOffset::UTC),
        }
    }
}

/// A room with members now.
#[derive(Serialize)]
pub struct RoomBody {
    pub room: String,
    /// Open connections in the room.
    pub members: usize,
}

#[derive(Serialize)]
pub struct MembersBody {
    pub room: String,
    /// Everyone, guests included, sorted.
    pub members: Vec<String>,
    /// Those of `members` who never proved their name; empty when none.
    pub guests: Vec<String>,
}
