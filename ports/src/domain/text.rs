//! Length and character checks shared by every text-valued domain type.

use super::{Invalid, Rule};

/// Checks a length in characters (Unicode scalar values, as the original's
/// `String(n)` columns count them under utf8mb4).
pub(crate) fn check_length(field: &'static str, value: &str, min: usize, max: usize) -> Result<(), Invalid> {
    // Bounded count: a megabyte of input is refused after `max + 1` characters.
    let chars = value.chars().take(max + 1).count();
    if chars < min {
        return Err(Invalid::new(field, Rule::TooShort { min }));
    }
    if chars > max {
        return Err(Invalid::new(field, Rule::TooLong { max }));
    }
    Ok(())
}

/// Refuses control characters (NUL, newlines, escapes): they have no place in a
/// name and break logs, terminals and some databases.
pub(crate) fn check_printable(field: &'static str, value: &str) -> Result<(), Invalid> {
    if value.chars().any(char::is_control) {
        return Err(Invalid::new(field, Rule::ForbiddenCharacter));
    }
    Ok(())
}

/// Refuses the C0 control characters a message has no use for (NUL, escapes,
/// bells, backspaces): they reach other members' terminals and logs as they
/// are. Tab and line breaks stay: multi-line messages are ordinary text.
pub(crate) fn check_speakable(field: &'static str, value: &str) -> Result<(), Invalid> {
    let forbidden = |b: &u8| *b < 0x20 && !matches!(b, b'\t' | b'\r' | b'\n');
    // Bytes, not chars: C0 characters are single bytes in UTF-8, and no
    // multi-byte sequence holds a byte below 0x80.
    if value.as_bytes().iter().any(forbidden) {
        return Err(Invalid::new(field, Rule::ControlCharacter));
    }
    Ok(())
}
