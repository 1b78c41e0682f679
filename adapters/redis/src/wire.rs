//! An event between processes: JSON, tagged with the process that published
//! it (which does not deliver its own events twice) and that process's
//! sequence number (a publish retried after a lost reply is recognised).

use parley_ports::domain::{ChatEvent, DisplayName, EventId, EventKind, MessageText, RoomName};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Borrowed to send, owned to receive (JSON escapes need owned strings).
#[derive(Serialize, Deserialize)]
struct Wire<S> {
    /// The publishing process.
    origin: S,
    /// Counts up with each event the process publishes.
    seq: u64,
    id: S,
    room: S,
    user: S,
    kind: S,
    text: S,
    /// Unix time in milliseconds.
    ts: i64,
}

/// An event as it came from another process.
#[derive(Debug, PartialEq)]
pub struct Relayed {
    pub origin: String,
    pub seq: u64,
    pub event: ChatEvent,
}

pub fn encode(origin: &str, seq: u64, event: &ChatEvent) -> String {
    let id = event.id.to_string();
    let wire = Wire {
        origin,
        seq,
        id: id.as_str(),
        room: event.room.as_str(),
        user: event.user.as_str(),
        kind: event.kind.as_str(),
        text: event.text.as_str(),
        ts: (event.timestamp.unix_timestamp_nanos() / 1_000_000) as i64,
    };
    serde_json::to_string(&wire).unwrap_or_default()
}

/// The event and where it came from; `None` for anything else on the channel.
pub fn decode(payload: &[u8]) -> Option<Relayed> {
    let wire: Wire<String> = serde_json::from_slice(payload).ok()?;
    let event = ChatEvent {
        id: wire.id.parse::<EventId>().ok()?,
        room: RoomName::parse(wire.room).ok()?,
        user: DisplayName::parse(wire.user).ok()?,
        kind: EventKind::parse(&wire.kind)?,
        text: MessageText::parse(wire.text).ok()?,
        timestamp: OffsetDateTime::from_unix_timestamp_nanos(i128::from(wire.ts) * 1_000_000).ok()?,
    };
    Some(Relayed { origin: wire.origin, seq: wire.seq, event })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_crosses_whole_with_its_origin() {
        let event = ChatEvent {
            id: EventId::from_u128(42),
            room: RoomName::parse("général").unwrap(),
            user: DisplayName::parse("zoë").unwrap(),
            kind: EventKind::Message,
            text: MessageText::parse("hello \"there\" 👋").unwrap(),
            timestamp: time::macros::datetime!(2026-11-26 12:00:01.234 UTC),
        };
        let back = decode(encode("node-a", 7, &event).as_bytes()).unwrap();
        assert_eq!(back, Relayed { origin: "node-a".into(), seq: 7, event });
    }

    #[test]
    fn anything_else_on_the_channel_is_ignored() {
        assert!(decode(b"not json").is_none());
        assert!(
            decode(br#"{"origin":"a","seq":1,"id":"x","room":"r","user":"u","kind":"message","text":"t","ts":0}"#)
                .is_none()
        );
    }
}
