//! The two wire formats. Each event is encoded at most once per format
//! (`Published::encoded`) and the frame's bytes shared by every recipient.

use parley_ports::Encoding;
use parley_ports::domain::{ChatEvent, EventKind};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// The original app's strings, byte for byte; a message of several lines
/// has each continuation line prefixed with its author's name, as IRC
/// clients send multi-line text, so no line of it reads as a line of its own
/// (a join, a leave, another member speaking).
pub struct Compat;

impl Encoding for Compat {
    type Frame = Utf8Bytes;
    fn encode(event: &ChatEvent) -> Utf8Bytes {
        let user = event.user.as_str();
        match event.kind {
            EventKind::Joined => format!("🔵 {user} joined the room."),
            EventKind::Message => spoken_lines(user, event.text.as_str()),
            EventKind::Left => format!("🔴 {user} left the room."),
        }
        .into()
    }
}

/// `{user}: {text}`, with `{user}: ` again after every line break in the
/// text. A break is LF, CRLF or a lone CR (a terminal returns to the start
/// of the line on it, so what follows would overwrite the name); the break's
/// own bytes are kept as sent.
fn spoken_lines(user: &str, text: &str) -> String {
    let breaks = text.bytes().enumerate().filter(|&(at, b)| is_break(text.as_bytes(), at, b)).count();
    let mut line = String::with_capacity(text.len() + (breaks + 1) * (user.len() + 2));
    line.push_str(user);
    line.push_str(": ");
    let mut from = 0;
    for (at, byte) in text.bytes().enumerate() {
        if is_break(text.as_bytes(), at, byte) {
            line.push_str(&text[from..=at]);
            line.push_str(user);
            line.push_str(": ");
            from = at + 1;
        }
    }
    line.push_str(&text[from..]);
    line
}

/// Whether the line ends at byte `at`: an LF, or a CR not followed by LF
/// (a CRLF ends at its LF).
fn is_break(text: &[u8], at: usize, byte: u8) -> bool {
    byte == b'\n' || (byte == b'\r' && text.get(at + 1) != Some(&b'\n'))
}

/// The JSON protocol's event object.
pub struct Json;

impl Encoding for Json {
    type Frame = Utf8Bytes;
    fn encode(event: &ChatEvent) -> Utf8Bytes {
        event_object(event).to_string().into()
    }
}

/// An event as the JSON protocol's object. `guest` only when true: most
/// events are registered members', and their frames stay as they were.
pub fn event_object(event: &ChatEvent) -> Value {
    let ts = event.timestamp.to_offset(time::UtcOffset::UTC).format(&Rfc3339).unwrap_or_default();
    let mut object = json!({
        "type": event.kind.as_str(),
        "id": event.id.to_string(),
        "room": event.room.as_str(),
        "user": event.user.as_str(),
        "text": event.text.as_str(),
        "ts": ts,
    });
    if event.guest {
        object["guest"] = Value::Bool(true);
    }
    object
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
            guest: false,
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
    fn each_continuation_line_of_a_text_message_names_its_author() {
        let said = |text: &str| Compat::encode(&event(EventKind::Message, text)).as_str().to_owned();
        assert_eq!(said("hi\n🔴 bob left the room."), "zoë: hi\nzoë: 🔴 bob left the room.");
        assert_eq!(said("a\r\nb"), "zoë: a\r\nzoë: b", "CRLF is one break, kept as sent");
        assert_eq!(said("a\rb"), "zoë: a\rzoë: b", "a lone CR is a break");
        assert_eq!(said("a\n\nb\n"), "zoë: a\nzoë: \nzoë: b\nzoë: ");
        assert_eq!(said("tab\there"), "zoë: tab\there");
    }

    #[test]
    fn a_guests_json_events_say_so_and_registered_members_omit_the_flag() {
        let guest = ChatEvent { guest: true, ..event(EventKind::Message, "hi") };
        let value: Value = serde_json::from_str(Json::encode(&guest).as_str()).unwrap();
        assert_eq!(value["guest"], json!(true));
        let value: Value = serde_json::from_str(Json::encode(&event(EventKind::Message, "hi")).as_str()).unwrap();
        assert!(value.get("guest").is_none());
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
