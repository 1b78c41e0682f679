//! Accounts: who a user is, and the checked values an account is made of.
//!
//! Limits follow the original app's `users` table (username 50, email 100,
//! full name 100 characters) so an existing database fits without truncation.

use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;

use super::text::{check_length, check_printable};
use super::{Invalid, Rule};

/// A user's id: the `users.id` auto-increment of the original table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserId(i64);

impl UserId {
    pub const fn new(id: i64) -> Self {
        Self(id)
    }
    pub const fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for UserId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self)
    }
}

/// A string newtype: read access, and a constructor for adapters that load a
/// value stored earlier (which may predate today's rules and must still load).
macro_rules! checked_text {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_string(self) -> String {
                self.0
            }
            /// For storage adapters reading a value they wrote earlier: no checks,
            /// so rows from the original app load even where today's rules are stricter.
            pub fn from_storage(value: String) -> Self {
                Self(value)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

checked_text!(
    /// An e-mail address, unique among users regardless of letter case.
    Email
);
checked_text!(
    /// A login name: 3–50 ASCII letters, digits, `_`, `.` or `-`; unique
    /// regardless of letter case. Never contains `@`, so a login string is an
    /// e-mail exactly when it holds one.
    Username
);
checked_text!(
    /// A user's full name: up to 100 printable characters.
    FullName
);

impl Email {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(value: impl Into<String>) -> Result<Self, Invalid> {
        let value = value.into();
        check_length("email", &value, 3, Self::MAX_CHARS)?;
        if !is_email_shaped(&value) {
            return Err(Invalid::new("email", Rule::NotAnEmail));
        }
        Ok(Self(value))
    }
}

/// `local@domain.tld`: a non-empty local part without spaces, and a domain of
/// at least two dot-separated labels of letters, digits and inner hyphens.
fn is_email_shaped(value: &str) -> bool {
    let Some((local, domain)) = value.rsplit_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.chars().count() <= 64
        && !local.contains('@')
        && !local.chars().any(|c| c.is_whitespace() || c.is_control());
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    local_ok && domain_ok
}

impl Username {
    pub const MIN_CHARS: usize = 3;
    pub const MAX_CHARS: usize = 50;

    pub fn parse(value: impl Into<String>) -> Result<Self, Invalid> {
        let value = value.into();
        check_length("username", &value, Self::MIN_CHARS, Self::MAX_CHARS)?;
        if !value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
            return Err(Invalid::new("username", Rule::ForbiddenCharacter));
        }
        Ok(Self(value))
    }
}

impl FullName {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(value: impl Into<String>) -> Result<Self, Invalid> {
        let value = value.into();
        check_length("full_name", &value, 0, Self::MAX_CHARS)?;
        check_printable("full_name", &value)?;
        Ok(Self(value))
    }
}

/// A plain-text password as the client sent it. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 8;
    /// Long enough for any passphrase, short enough that hashing it costs nothing extra.
    pub const MAX_CHARS: usize = 128;

    pub fn parse(value: impl Into<String>) -> Result<Self, Invalid> {
        let value = value.into();
        check_length("password", &value, Self::MIN_CHARS, Self::MAX_CHARS)?;
        Ok(Self(value))
    }

    /// A password as typed at login: not checked against today's length rules, so
    /// accounts created under older rules can still log in. Length-capped so an
    /// attacker cannot make the hasher chew on megabytes.
    pub fn attempt(value: impl Into<String>) -> Option<Self> {
        let value = value.into();
        (value.chars().take(Self::MAX_CHARS + 1).count() <= Self::MAX_CHARS).then_some(Self(value))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

/// A password hash in PHC string form (`$argon2id$...`, or `$2b$...` bcrypt from
/// the original app). Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    pub fn new(phc: String) -> Self {
        Self(phc)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

/// A user as the rest of the system sees one: never the password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub username: Username,
    pub full_name: Option<FullName>,
    pub is_active: bool,
    pub is_admin: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: Option<OffsetDateTime>,
}

/// What a client gives to open an account. Built only from checked parts, so it
/// is valid by construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub email: Email,
    pub username: Username,
    pub full_name: Option<FullName>,
    pub password: Password,
    pub is_active: bool,
}

/// A partial change to an account: `None` leaves a field as it is.
/// `full_name: Some(None)` clears the full name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserPatch {
    pub email: Option<Email>,
    pub username: Option<Username>,
    pub full_name: Option<Option<FullName>>,
    pub password: Option<Password>,
    pub is_active: Option<bool>,
    pub is_admin: Option<bool>,
}

impl UserPatch {
    /// Whether the patch touches what only an administrator may change.
    pub fn changes_privileges(&self) -> bool {
        self.is_active.is_some() || self.is_admin.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_need_a_local_part_and_a_dotted_domain() {
        for good in ["a@b.co", "first.last+tag@mail.example.org", "zoë@exämple.de"] {
            assert!(Email::parse(good).is_ok(), "{good} should be accepted");
        }
        for bad in ["plain", "@b.co", "a@b", "a@.co", "a@b..co", "a b@c.de", "a@-b.co", "a@b.co\n"] {
            assert_eq!(Email::parse(bad).map_err(|e| e.rule), Err(Rule::NotAnEmail), "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(100));
        assert_eq!(Email::parse(long).map_err(|e| e.rule), Err(Rule::TooLong { max: 100 }));
    }

    #[test]
    fn usernames_are_three_to_fifty_characters_of_a_plain_set() {
        assert!(Username::parse("bob").is_ok());
        assert!(Username::parse("Bob_the-2nd.x").is_ok());
        assert_eq!(Username::parse("bo").map_err(|e| e.rule), Err(Rule::TooShort { min: 3 }));
        assert_eq!(Username::parse("b".repeat(51)).map_err(|e| e.rule), Err(Rule::TooLong { max: 50 }));
        for bad in ["bob@x", "bo b", "zoë", "bob\0"] {
            assert_eq!(Username::parse(bad).map_err(|e| e.rule), Err(Rule::ForbiddenCharacter), "{bad:?}");
        }
    }

    #[test]
    fn passwords_need_eight_characters_and_never_print() {
        assert_eq!(Password::parse("1234567").map_err(|e| e.field), Err("password"));
        let password = Password::parse("correct horse").unwrap();
        assert_eq!(format!("{password:?}"), "Password(..)");
        assert!(Password::attempt("short").is_some(), "login accepts what older rules allowed");
        assert!(Password::attempt("x".repeat(129)).is_none());
    }

    #[test]
    fn full_names_refuse_control_characters() {
        assert!(FullName::parse("Zoë 日本").is_ok());
        assert!(FullName::parse("").is_ok());
        assert_eq!(FullName::parse("a\u{7}b").map_err(|e| e.rule), Err(Rule::ForbiddenCharacter));
    }

    #[test]
    fn only_activity_and_admin_changes_are_privileged() {
        let email = UserPatch { email: Some(Email::parse("a@b.co").unwrap()), ..UserPatch::default() };
        assert!(!email.changes_privileges());
        assert!(UserPatch { is_active: Some(true), ..UserPatch::default() }.changes_privileges());
        assert!(UserPatch { is_admin: Some(false), ..UserPatch::default() }.changes_privileges());
    }
}
