//! The one error a domain constructor returns: which field broke which rule.
//!
//! Inbound adapters turn it into their protocol's validation error (HTTP 422 with
//! the field's location), so it carries the field name and a machine-readable rule.

use std::fmt;

/// A value refused by a domain constructor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct Invalid {
    /// The input field, named as clients send it (`email`, `username`, `room`...).
    pub field: &'static str,
    pub rule: Rule,
}

impl Invalid {
    pub(crate) fn new(field: &'static str, rule: Rule) -> Self {
        Self { field, rule }
    }
}

/// The rule a value broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Fewer characters than allowed.
    TooShort { min: usize },
    /// More characters than allowed.
    TooLong { max: usize },
    /// Not shaped like an e-mail address.
    NotAnEmail,
    /// Holds a character the field does not allow (control characters, or
    /// outside a username's set).
    ForbiddenCharacter,
    /// Holds a C0 control character other than tab, CR and LF (message text,
    /// where line breaks are allowed but escapes and NULs are not).
    ControlCharacter,
}

impl Rule {
    /// A stable, machine-readable name for the rule (FastAPI-like `type`).
    pub fn code(&self) -> &'static str {
        match self {
            Rule::TooShort { .. } => "string_too_short",
            Rule::TooLong { .. } => "string_too_long",
            Rule::NotAnEmail => "value_error.email",
            Rule::ForbiddenCharacter => "string_pattern_mismatch",
            Rule::ControlCharacter => "string_control_character",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::TooShort { min } => write!(f, "should have at least {min} characters"),
            Rule::TooLong { max } => write!(f, "should have at most {max} characters"),
            Rule::NotAnEmail => f.write_str("value is not a valid email address"),
            Rule::ForbiddenCharacter => f.write_str("contains a character that is not allowed"),
            Rule::ControlCharacter => {
                f.write_str("contains a control character (only tab and line breaks are allowed)")
            }
        }
    }
}
