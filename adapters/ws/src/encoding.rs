//! The two wire formats. Each event is encoded at most once per format
//! (`Published::encoded`) and the frame's bytes shared by every recipient.

use parley_ports::Encoding;
use parley_ports::domain::{ChatEvent, EventKind};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// The original app's strings, byte for byte.
pub struct Compat;

impl Encoding for Compat {
    type Frame = Utf8Bytes;
    fn encode(event: &ChatEvent) -> Utf8Bytes {
        let user = event.user.as_str();
        match event.kind {
            EventKind::Joined => format!("🔵 {user} joined the room."),
            EventKind::Message => format!("{user}: {}", event.text.as_str()),
            EventKind::Left => format!("🔴 {user} left the room."),
        }
        .into()
    }
}

/// The JSON protocol's event object.
pub struct Json;

impl Encoding for Json {
    type Frame = Utf8Bytes;
    fn encode(event: &ChatEvent) -> Utf8Bytes {
        event_object(event).to_string().into()
    }
}

pub fn event_object(event: &ChatEvent) -> Value {
    let ts = event.timestamp.to_offset(time::UtcOffset::UTC).format(&Rfc3339).unwrap_or_default();
    json!({
        "type": event.kind.as_str(),
        "id": event.id.to_string(),
        "room": event.room.as_str(),
        "user": event.user.as_str(),
        "text": event.text.as_str(),
        "ts": ts,
    })
}

#[cfg(test)]
mod tests {
    use parley_ports::domain::{DisplayName, EventId, MessageText, RoomName};

    use super::*;

    fn event(kind: EventKind, text: &str) -> ChatEvent {
        ChatEvent {
            id: EventId::from_u128(7),
            room: RoomName::parse("general").unwrap(),
            user: DisplayName::parse("zoë").unwrap(),
            kind,
            text: MessageText::parse(text).unwrap(),
            timestamp: time::macros::datetime!(2026-11-26 12:00:00.5 UTC),
        }
    }

    #[test]
    fn the_text_protocol_speaks_the_originals_strings() {
        assert_eq!(Compat::encode(&event(EventKind::Joined, "")).as_str(), "🔵 zoë joined the room.");
        assert_eq!(Compat::encode(&event(EventKind::Message, "hi: there")).as_str(), "zoë: hi: there");
        assert_eq!(Compat::encode(&event(EventKind::Left, "")).as_str(), "🔴 zoë left the room.");
    }

    #[test]
    fn json_events_carry_type_id_room_user_text_and_a_utc_timestamp() {
        let frame = Json::encode(&event(EventKind::Message, "hi \"you\""));
        let value: Value = serde_json::from_str(frame.as_str()).unwrap();
        assert_eq!(
            value,
            json!({"type": "message", "id": EventId::from_u128(7).to_string(), "room": "general", "user": "zoë", "text": "hi \"you\"", "ts": "2026-11-26T12:00:00.5Z"})
        );
    }
}
