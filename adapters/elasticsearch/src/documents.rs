//! Chat events as `chat_logs` documents, and back.
//!
//! Joins and leaves are written with the original's message markers
//! (`[JOINED]`, `[LEFT]`) so the index reads as it always did; documents the
//! original app wrote (no `id`, no `kind`) are read too, and so are
//! documents without `guest` (written before it: not a guest).

use parley_ports::domain::{ChatEvent, DisplayName, EventId, EventKind, MessageText, RoomName};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const JOINED: &str = "[JOINED]";
const LEFT: &str = "[LEFT]";

/// The explicit mapping Parley creates the index with.
pub fn mapping() -> Value {
    json!({
        "mappings": {
            "properties": {
                "id": { "type": "keyword" },
                "room": { "type": "keyword" },
                "user": { "type": "keyword" },
                "guest": { "type": "boolean" },
                "kind": { "type": "keyword" },
                "message": { "type": "text" },
                "timestamp": { "type": "date" }
            }
        }
    })
}

pub fn document(event: &ChatEvent) -> Value {
    let message = match event.kind {
        EventKind::Joined => JOINED,
        EventKind::Left => LEFT,
        EventKind::Message => event.text.as_str(),
    };
    let mut document = json!({
        "id": event.id.to_string(),
        "room": event.room.as_str(),
        "user": event.user.as_str(),
        "kind": event.kind.as_str(),
        "message": message,
        "timestamp": timestamp(event.timestamp),
    });
    // Only guests' documents carry the flag: a registered member's stays the
    // original app's document, field for field.
    if event.guest {
        document["guest"] = Value::Bool(true);
    }
    document
}

/// ISO-8601 in UTC with milliseconds, as the original wrote it.
pub fn timestamp(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let at = at.replace_nanosecond(at.millisecond() as u32 * 1_000_000).unwrap_or(at);
    at.format(&Rfc3339).unwrap_or_default()
}

/// A hit's `_source` as an event; `None` for a document too broken to read.
pub fn event(hit: &Value) -> Option<ChatEvent> {
    let source = hit.get("_source")?;
    let text = |field: &str| source.get(field).and_then(Value::as_str);
    let message = text("message").unwrap_or_default();
    let kind = match text("kind") {
        Some(kind) => EventKind::parse(kind)?,
        // The original's documents: the markers tell joins and leaves apart.
        None if message == JOINED => EventKind::Joined,
        None if message == LEFT => EventKind::Left,
        None => EventKind::Message,
    };
    let timestamp = parse_timestamp(text("timestamp")?)?;
    // The original's documents have no id: derive a stable one from the
    // time and the document's own _id, so paging still works over them.
    let id = match text("id").and_then(|id| id.parse::<EventId>().ok()) {
        Some(id) => id,
        None => legacy_id(timestamp, hit.get("_id").and_then(Value::as_str).unwrap_or_default()),
    };
    Some(ChatEvent {
        id,
        room: RoomName::from_storage(text("room")?.to_owned()),
        user: DisplayName::from_storage(text("user").unwrap_or_default().to_owned()),
        // Documents from before the flag (the original's too) have none:
        // their authors read as registered, as clients were shown them.
        guest: source.get("guest").and_then(Value::as_bool).unwrap_or(false),
        kind,
        text: MessageText::from_storage(if kind == EventKind::Message { message.to_owned() } else { String::new() }),
        timestamp,
    })
}

/// RFC 3339, or the zone-less ISO-8601 the original wrote with Python's
/// `datetime.utcnow().isoformat()` (UTC by construction).
fn parse_timestamp(text: &str) -> Option<OffsetDateTime> {
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(at);
    }
    let naive = time::macros::format_description!(
        version = 2,
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    time::PrimitiveDateTime::parse(text, &naive).ok().map(time::PrimitiveDateTime::assume_utc)
}

fn legacy_id(at: OffsetDateTime, document_id: &str) -> EventId {
    let millis = (at.unix_timestamp_nanos() / 1_000_000).clamp(0, (1 << 48) - 1) as u128;
    // FNV-1a of the document id fills the random part.
    let hash =
        document_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    EventId::from_u128((millis << 80) | u128::from(hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event_of(kind: EventKind, text: &str) -> ChatEvent {
        ChatEvent {
            id: EventId::from_u128(42 << 80 | 7),
            room: RoomName::parse("general").unwrap(),
            user: DisplayName::parse("zoë").unwrap(),
            guest: false,
            kind,
            text: MessageText::parse(text).unwrap(),
            timestamp: time::macros::datetime!(2026-11-26 12:00:00.123 UTC),
        }
    }

    #[test]
    fn documents_keep_the_originals_four_fields_and_markers() {
        let joined = document(&event_of(EventKind::Joined, ""));
        assert_eq!(joined["message"], "[JOINED]");
        assert_eq!(joined["timestamp"], "2026-11-26T12:00:00.123Z");
        assert_eq!(
            (joined["room"].as_str(), joined["user"].as_str(), joined["kind"].as_str()),
            (Some("general"), Some("zoë"), Some("joined"))
        );
        for kind in [EventKind::Joined, EventKind::Message, EventKind::Left] {
            let original = event_of(kind, if kind == EventKind::Message { "hi" } else { "" });
            let hit = json!({ "_id": original.id.to_string(), "_source": document(&original) });
            assert_eq!(event(&hit), Some(original));
        }
    }

    #[test]
    fn only_a_guests_document_carries_the_flag_and_it_reads_back() {
        let registered = document(&event_of(EventKind::Message, "hi"));
        assert!(registered.get("guest").is_none(), "{registered}");
        let guest = ChatEvent { guest: true, ..event_of(EventKind::Message, "hi") };
        let written = document(&guest);
        assert_eq!(written["guest"], true);
        assert_eq!(event(&json!({ "_id": guest.id.to_string(), "_source": written })), Some(guest));
    }

    #[test]
    fn documents_the_original_app_wrote_are_read() {
        // Python's datetime.utcnow().isoformat(): no zone, microseconds.
        let hit = json!({"_id": "x1", "_source": {"room": "general", "user": "ann", "message": "[LEFT]", "timestamp": "2025-01-02T03:04:05.678901"}});
        let left = event(&hit).unwrap();
        assert_eq!(left.timestamp, time::macros::datetime!(2025-01-02 03:04:05.678901 UTC));
        assert_eq!((left.kind, left.text.as_str()), (EventKind::Left, ""));
        let again = event(&hit).unwrap();
        assert_eq!(left.id, again.id, "a stable id for the same document");
    }
}
