//! Rooms and what happens in them.

use time::OffsetDateTime;

use super::text::{check_length, check_printable, check_speakable};
use super::{EventId, Invalid};

macro_rules! printable_name {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub const MAX_CHARS: usize = $max;

            /// Any printable text in any script, 1 to `MAX_CHARS` characters.
            pub fn parse(value: impl Into<String>) -> Result<Self, Invalid> {
                let value = value.into();
                check_length($field, &value, 1, Self::MAX_CHARS)?;
                check_printable($field, &value)?;
                Ok(Self(value))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_string(self) -> String {
                self.0
            }
            /// For storage adapters reading a value they wrote earlier.
            pub fn from_storage(value: String) -> Self {
                Self(value)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

printable_name!(
    /// A chat room's name, as it appears in `/ws/chat/{room}/...` once decoded.
    RoomName,
    "room",
    100
);
printable_name!(
    /// The name a member speaks under: a free-form name on the original
    /// protocol, the account's username when signed in.
    DisplayName,
    "username",
    100
);

printable_name!(
    /// Words to search a room's messages for.
    SearchText,
    "query",
    500
);

/// The text of one chat message: up to `MAX_CHARS` characters of any script,
/// on one line or several (tab, CR and LF), but no other C0 control character.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessageText(String);

impl MessageText {
    pub const MAX_CHARS: usize = 4096;

    pub fn parse(value: impl Into<String>) -> Result<Self, Invalid> {
        let value = value.into();
        check_length("text", &value, 0, Self::MAX_CHARS)?;
        check_speakable("text", &value)?;
        Ok(Self(value))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// For storage adapters reading a value they wrote earlier.
    pub fn from_storage(value: String) -> Self {
        Self(value)
    }
}

/// What happened in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Joined,
    Message,
    Left,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Joined => "joined",
            EventKind::Message => "message",
            EventKind::Left => "left",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "joined" => Some(EventKind::Joined),
            "message" => Some(EventKind::Message),
            "left" => Some(EventKind::Left),
            _ => None,
        }
    }
}

/// One event in a room: a member joined, spoke or left. `text` is empty for
/// joins and leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatEvent {
    pub id: EventId,
    pub room: RoomName,
    pub user: DisplayName,
    /// Whether the author never proved the name (an unauthenticated
    /// connection): anyone may speak as `user` then, so clients must be able
    /// to tell a guest "ann" from the account ann. A flag beside the name, not
    /// a wrapper around it: every store and wire format keeps the name as a
    /// plain string already, and the flag is one more column or field there.
    pub guest: bool,
    pub kind: EventKind,
    pub text: MessageText,
    pub timestamp: OffsetDateTime,
}

/// Someone in a room, as its member list shows them: the name, and whether
/// they never proved it (a guest, as [`ChatEvent::guest`]). Ordered by name
/// first and registered before guest, so that when one name is present both
/// ways, sorting and keeping the first of each name lists it as registered.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Present {
    pub name: DisplayName,
    pub guest: bool,
}

impl Present {
    pub fn new(name: DisplayName, guest: bool) -> Self {
        Self { name, guest }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Rule;

    #[test]
    fn names_take_any_script_but_no_control_characters() {
        for good in ["general", "zoë", "日本", "a room with spaces", "🔵"] {
            assert!(RoomName::parse(good).is_ok(), "{good}");
            assert!(DisplayName::parse(good).is_ok(), "{good}");
        }
        assert_eq!(RoomName::parse("").map_err(|e| e.rule), Err(Rule::TooShort { min: 1 }));
        assert_eq!(RoomName::parse("a\nb").map_err(|e| e.rule), Err(Rule::ForbiddenCharacter));
        assert_eq!(DisplayName::parse("a\0").map_err(|e| e.field), Err("username"));
        assert_eq!(RoomName::parse("日".repeat(101)).map_err(|e| e.rule), Err(Rule::TooLong { max: 100 }));
    }

    #[test]
    fn message_text_is_bounded() {
        assert!(MessageText::parse("").is_ok());
        assert!(MessageText::parse("line one\nline two").is_ok());
        assert!(MessageText::parse("x".repeat(4096)).is_ok());
        assert_eq!(MessageText::parse("x".repeat(4097)).map_err(|e| e.rule), Err(Rule::TooLong { max: 4096 }));
    }

    #[test]
    fn message_text_takes_tabs_and_line_breaks_but_no_other_control_character() {
        assert!(MessageText::parse("a\tb\r\nc\rd\ne").is_ok());
        assert!(MessageText::parse("\u{7f} and \u{85} are not C0").is_ok());
        for bad in ["\0", "bell\u{7}", "\u{1b}[2Jclear", "\u{1f}", "form\u{c}feed"] {
            assert_eq!(MessageText::parse(bad).map_err(|e| e.rule), Err(Rule::ControlCharacter), "{bad:?}");
        }
    }

    #[test]
    fn event_kinds_round_trip_through_their_names() {
        for kind in [EventKind::Joined, EventKind::Message, EventKind::Left] {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventKind::parse("shouted"), None);
    }
}
