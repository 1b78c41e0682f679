//! What a broker sends between processes: an event or a control message,
//! tagged with the process that sent it (which does not deliver its own
//! twice) and that process's sequence number (a publish retried after a lost
//! reply is recognised). JSON, so an operator can read it off the backend.
//!
//! Shared by every broker adapter: the promise of once-only, in-order
//! delivery per publisher is the same whatever carries the bytes.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::broker::Control;
use crate::domain::{ChatEvent, DisplayName, EventId, EventKind, MessageText, RoomName};

/// What an envelope carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Event(ChatEvent),
    Control(Control),
}

/// What an envelope is to carry, borrowed: sealing copies nothing but
/// into the bytes it writes.
#[derive(Debug, Clone, Copy)]
pub enum Contents<'a> {
    Event(&'a ChatEvent),
    Control(&'a Control),
}

/// An envelope as it arrived from another process.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The sending process.
    pub origin: String,
    /// Counts up with each envelope the process sends of this kind (events
    /// and control messages are counted apart: they travel apart).
    pub seq: u64,
    pub body: Body,
}

/// Borrowed to send, owned to receive (JSON escapes need owned strings).
#[derive(Serialize, Deserialize)]
struct Wire<S> {
    origin: S,
    seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event: Option<EventWire<S>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    control: Option<ControlWire<S>>,
}

#[derive(Serialize, Deserialize)]
struct EventWire<S> {
    id: S,
    room: S,
    user: S,
    /// Sent only when true, and read as false when absent: envelopes of
    /// processes that predate the flag (a rolling upgrade) are of members
    /// whose flag nobody knew, as they were before.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    guest: bool,
    kind: S,
    text: S,
    /// Unix time in milliseconds.
    ts: i64,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ControlWire<S> {
    DeleteEvent { room: S, id: S },
    CloseRoom { room: S },
}

/// The envelope's bytes.
pub fn seal(origin: &str, seq: u64, contents: Contents<'_>) -> Vec<u8> {
    let event_id;
    let control_id;
    let (event, control) = match contents {
        Contents::Event(event) => {
            event_id = event.id.to_string();
            let wire = EventWire {
                id: event_id.as_str(),
                room: event.room.as_str(),
                user: event.user.as_str(),
                guest: event.guest,
                kind: event.kind.as_str(),
                text: event.text.as_str(),
                ts: (event.timestamp.unix_timestamp_nanos() / 1_000_000) as i64,
            };
            (Some(wire), None)
        }
        Contents::Control(Control::DeleteEvent { room, id }) => {
            control_id = id.to_string();
            (None, Some(ControlWire::DeleteEvent { room: room.as_str(), id: control_id.as_str() }))
        }
        Contents::Control(Control::CloseRoom { room }) => (None, Some(ControlWire::CloseRoom { room: room.as_str() })),
    };
    // Strings and integers only: serialising cannot fail.
    serde_json::to_vec(&Wire { origin, seq, event, control }).unwrap_or_default()
}

/// The envelope in `bytes`; `None` for anything else (another version's
/// control message, a stranger on the channel).
pub fn open(bytes: &[u8]) -> Option<Envelope> {
    let wire: Wire<String> = serde_json::from_slice(bytes).ok()?;
    let body = match (wire.event, wire.control) {
        (Some(event), None) => Body::Event(ChatEvent {
            id: event.id.parse::<EventId>().ok()?,
            room: RoomName::parse(event.room).ok()?,
            user: DisplayName::parse(event.user).ok()?,
            guest: event.guest,
            kind: EventKind::parse(&event.kind)?,
            text: MessageText::parse(event.text).ok()?,
            timestamp: OffsetDateTime::from_unix_timestamp_nanos(i128::from(event.ts) * 1_000_000).ok()?,
        }),
        (None, Some(ControlWire::DeleteEvent { room, id })) => {
            Body::Control(Control::DeleteEvent { room: RoomName::parse(room).ok()?, id: id.parse().ok()? })
        }
        (None, Some(ControlWire::CloseRoom { room })) => {
            Body::Control(Control::CloseRoom { room: RoomName::parse(room).ok()? })
        }
        _ => return None,
    };
    Some(Envelope { origin: wire.origin, seq: wire.seq, body })
}

/// The last sequence number heard from each process: what a receiver needs
/// to deliver each envelope once, as the sender retries.
#[derive(Debug, Default)]
pub struct Heard {
    last: HashMap<String, u64>,
}

impl Heard {
    /// Whether `seq` from `origin` is new here (and remembers it if so).
    /// A sender's envelopes arrive in the order sent, so anything at or
    /// below the last one heard is a repeat.
    pub fn first_time(&mut self, origin: &str, seq: u64) -> bool {
        match self.last.get_mut(origin) {
            Some(last) if seq <= *last => false,
            Some(last) => {
                *last = seq;
                true
            }
            None => {
                self.last.insert(origin.to_owned(), seq);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> ChatEvent {
        ChatEvent {
            id: EventId::from_u128(42),
            room: RoomName::parse("général").unwrap(),
            user: DisplayName::parse("zoë").unwrap(),
            guest: false,
            kind: EventKind::Message,
            text: MessageText::parse("hello \"there\" 👋").unwrap(),
            timestamp: time::macros::datetime!(2026-11-26 12:00:01.234 UTC),
        }
    }

    #[test]
    fn an_event_crosses_whole_with_its_origin() {
        let back = open(&seal("node-a", 7, Contents::Event(&event()))).unwrap();
        assert_eq!(back, Envelope { origin: "node-a".into(), seq: 7, body: Body::Event(event()) });
    }

    #[test]
    fn a_guests_event_crosses_as_a_guests_and_old_envelopes_read_as_registered() {
        let guest = ChatEvent { guest: true, ..event() };
        let sealed = seal("node-a", 1, Contents::Event(&guest));
        assert_eq!(open(&sealed).unwrap().body, Body::Event(guest));
        // A registered member's envelope is exactly what older processes sent.
        let registered = seal("node-a", 2, Contents::Event(&event()));
        assert!(!String::from_utf8_lossy(&registered).contains("guest"));
        assert_eq!(open(&registered).unwrap().body, Body::Event(event()));
    }

    #[test]
    fn control_messages_cross_whole() {
        for control in [
            Control::DeleteEvent { room: RoomName::parse("r").unwrap(), id: EventId::from_u128(9) },
            Control::CloseRoom { room: RoomName::parse("r").unwrap() },
        ] {
            let back = open(&seal("node-a", 1, Contents::Control(&control))).unwrap();
            assert_eq!(back.body, Body::Control(control));
        }
    }

    #[test]
    fn anything_else_is_ignored() {
        assert!(open(b"not json").is_none());
        let bad_id =
            br#"{"origin":"a","seq":1,"event":{"id":"x","room":"r","user":"u","kind":"message","text":"t","ts":0}}"#;
        assert!(open(bad_id).is_none());
        assert!(open(br#"{"origin":"a","seq":1,"control":{"type":"from_the_future"}}"#).is_none());
        assert!(open(br#"{"origin":"a","seq":1}"#).is_none(), "neither event nor control");
    }

    #[test]
    fn a_repeat_is_heard_once_and_processes_count_apart() {
        let mut heard = Heard::default();
        assert!(heard.first_time("a", 1));
        assert!(!heard.first_time("a", 1), "a retried publish");
        assert!(heard.first_time("b", 1), "another process counts for itself");
        assert!(heard.first_time("a", 2));
        assert!(!heard.first_time("a", 2));
    }
}
