//! Which endpoint a request names, with its room and username
//! percent-decoded and checked, and the query's options.

use std::str::FromStr;

use parley_ports::domain::{DisplayName, EventId, Invalid, RoomName};
use percent_encoding::percent_decode_str;

/// Whether the WebSocket endpoints need an access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMode {
    /// As the original: the text protocol is anonymous (the JSON protocol
    /// always needs a token).
    #[default]
    Open,
    /// Both endpoints need a token; on the text protocol the path's username
    /// must be the token's user.
    Required,
}

impl FromStr for AuthMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "open" => Ok(Self::Open),
            "required" => Ok(Self::Required),
            other => Err(format!("unknown auth mode {other:?}: use open or required")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `/ws/chat/{room}/{username}`.
    Compat { room: RoomName, username: DisplayName },
    /// `/ws/rooms/{room}`.
    Json { room: RoomName },
}

#[derive(Debug, PartialEq, Eq)]
pub enum BadEndpoint {
    NotFound,
    Invalid(Invalid),
    NotUtf8(&'static str),
}

fn segment(raw: &str, field: &'static str) -> Result<String, BadEndpoint> {
    percent_decode_str(raw).decode_utf8().map(|s| s.into_owned()).map_err(|_| BadEndpoint::NotUtf8(field))
}

impl Endpoint {
    pub fn parse(path: &str) -> Result<Self, BadEndpoint> {
        let parts: Vec<&str> = path.split('/').collect();
        match parts.as_slice() {
            ["", "ws", "chat", room, username] => Ok(Endpoint::Compat {
                room: RoomName::parse(segment(room, "room")?).map_err(BadEndpoint::Invalid)?,
                username: DisplayName::parse(segment(username, "username")?).map_err(BadEndpoint::Invalid)?,
            }),
            ["", "ws", "rooms", room] => {
                Ok(Endpoint::Json { room: RoomName::parse(segment(room, "room")?).map_err(BadEndpoint::Invalid)? })
            }
            _ => Err(BadEndpoint::NotFound),
        }
    }
}

/// The JSON endpoint's query options.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub token: Option<String>,
    pub since: Option<EventId>,
    pub history: Option<usize>,
}

impl Options {
    pub fn parse(query: Option<&str>) -> Result<Self, String> {
        let mut options = Options::default();
        let pairs = query.map(percent_encoding_pairs).unwrap_or_default();
        for (key, value) in pairs {
            match key.as_str() {
                "token" => options.token = Some(value),
                "since" => {
                    options.since = Some(value.parse().map_err(|_| format!("since: {value:?} is not an event id"))?)
                }
                "history" => {
                    options.history = Some(value.parse().map_err(|_| format!("history: {value:?} is not a count"))?)
                }
                _ => {}
            }
        }
        Ok(options)
    }
}

/// `a=b&c=d`, percent- and plus-decoded.
fn percent_encoding_pairs(query: &str) -> Vec<(String, String)> {
    let decode = |s: &str| percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_percent_decoded_utf8_in_any_script() {
        let parsed = Endpoint::parse("/ws/chat/%E6%97%A5%E6%9C%AC/zo%C3%AB").unwrap();
        assert_eq!(
            parsed,
            Endpoint::Compat {
                room: RoomName::parse("日本").unwrap(), username: DisplayName::parse("zoë").unwrap()
            }
        );
        assert_eq!(
            Endpoint::parse("/ws/rooms/a%20room").unwrap(),
            Endpoint::Json { room: RoomName::parse("a room").unwrap() }
        );
    }

    #[test]
    fn control_characters_bad_utf8_and_unknown_paths_are_refused() {
        assert!(matches!(Endpoint::parse("/ws/chat/room/a%0Ab"), Err(BadEndpoint::Invalid(_))));
        assert!(matches!(Endpoint::parse("/ws/chat/room/%FF"), Err(BadEndpoint::NotUtf8("username"))));
        assert!(matches!(Endpoint::parse("/ws/chat//ann"), Err(BadEndpoint::Invalid(_))));
        assert_eq!(Endpoint::parse("/ws/chat/room"), Err(BadEndpoint::NotFound));
        assert_eq!(Endpoint::parse("/ws/other/room"), Err(BadEndpoint::NotFound));
    }

    #[test]
    fn options_read_token_since_and_history() {
        let id = EventId::from_u128(12345);
        let options = Options::parse(Some(&format!("token=a.b%2Bc&since={id}&history=5&other=x"))).unwrap();
        assert_eq!(options, Options { token: Some("a.b+c".into()), since: Some(id), history: Some(5) });
        assert!(Options::parse(Some("since=nope")).is_err());
        assert_eq!(Options::parse(None).unwrap(), Options::default());
    }
}
