//! Event ids: unique across processes without coordination, and ordered by time.
//!
//! An id is a ULID: 48 bits of Unix milliseconds, then 80 bits that are random
//! for the first event of a millisecond and counted up after it. So ids from one
//! process strictly increase (a room's history can page by id), ids from several
//! processes never collide in practice (a retried chat-log write is recognised by
//! its id), and the text form sorts like the number.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use time::OffsetDateTime;

/// A chat event's id. Shown as 26 Crockford base-32 characters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(u128);

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const RANDOM_BITS: u32 = 80;
const RANDOM_MASK: u128 = (1 << RANDOM_BITS) - 1;

impl EventId {
    pub const fn from_u128(value: u128) -> Self {
        Self(value)
    }
    pub const fn as_u128(self) -> u128 {
        self.0
    }
    /// The Unix time in milliseconds the id was made at.
    pub fn millis(self) -> u64 {
        (self.0 >> RANDOM_BITS) as u64
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = [0u8; 26];
        for (i, slot) in out.iter_mut().enumerate() {
            let shift = 5 * (25 - i);
            *slot = ALPHABET[((self.0 >> shift) & 0x1f) as usize];
        }
        // The alphabet is ASCII, so this cannot fail; fall back to hex rather than panic.
        match std::str::from_utf8(&out) {
            Ok(text) => f.write_str(text),
            Err(_) => write!(f, "{:032x}", self.0),
        }
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({self})")
    }
}

/// The text was not 26 Crockford base-32 characters within 128 bits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an event id")]
pub struct NotAnEventId;

impl FromStr for EventId {
    type Err = NotAnEventId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 26 || s.as_bytes()[0] > b'7' {
            return Err(NotAnEventId);
        }
        s.bytes()
            .try_fold(0u128, |acc, byte| {
                let digit = ALPHABET.iter().position(|a| *a == byte.to_ascii_uppercase()).ok_or(NotAnEventId)?;
                Ok((acc << 5) | digit as u128)
            })
            .map(Self)
    }
}

/// Makes event ids for one process. Cheap to share; the lock is held for a few
/// arithmetic operations and never across an await.
pub struct EventIds {
    state: Mutex<State>,
}

struct State {
    last: u128,
    seed: u64,
}

impl EventIds {
    /// `seed` should be random in production (ids from two processes collide only
    /// if their seeds do); tests pass a fixed one for repeatable ids.
    pub fn new(seed: u64) -> Self {
        Self { state: Mutex::new(State { last: 0, seed }) }
    }

    /// The next id for an event made at `now`: greater than every id this
    /// generator made before, even if the clock steps back.
    pub fn next(&self, now: OffsetDateTime) -> EventId {
        let millis = (now.unix_timestamp_nanos() / 1_000_000).clamp(0, (1 << 48) - 1) as u128;
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let candidate = (millis << RANDOM_BITS) | (u128::from(splitmix(&mut state.seed)) & (RANDOM_MASK >> 1));
        let id = if (candidate >> RANDOM_BITS) > (state.last >> RANDOM_BITS) { candidate } else { state.last + 1 };
        state.last = id;
        EventId(id)
    }
}

/// SplitMix64: a tiny, well-mixed generator; enough to spread ids, not for secrets.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn ids_increase_within_a_millisecond_and_when_the_clock_steps_back() {
        let ids = EventIds::new(7);
        let now = datetime!(2026-11-26 12:00:00 UTC);
        let a = ids.next(now);
        let b = ids.next(now);
        let c = ids.next(now - time::Duration::seconds(5));
        assert!(a < b && b < c);
        assert_eq!(a.millis() as i128, now.unix_timestamp_nanos() / 1_000_000);
    }

    #[test]
    fn a_later_millisecond_gives_a_later_id() {
        let ids = EventIds::new(1);
        let now = datetime!(2026-11-26 12:00:00 UTC);
        let first = ids.next(now);
        let later = ids.next(now + time::Duration::milliseconds(1));
        assert!(later > first);
        assert_eq!(later.millis(), first.millis() + 1);
    }

    #[test]
    fn text_form_round_trips_and_sorts_like_the_number() {
        let ids = EventIds::new(42);
        let now = datetime!(2026-11-26 12:00:00 UTC);
        let a = ids.next(now);
        let b = ids.next(now + time::Duration::days(400));
        assert_eq!(a.to_string().len(), 26);
        assert_eq!(a.to_string().parse::<EventId>(), Ok(a));
        assert_eq!(a.to_string().to_lowercase().parse::<EventId>(), Ok(a));
        assert!(a.to_string() < b.to_string());
    }

    #[test]
    fn malformed_ids_are_refused() {
        for bad in
            ["", "short", "8ZZZZZZZZZZZZZZZZZZZZZZZZZ", "0000000000000000000000000U", "00000000000000000000000000x"]
        {
            assert_eq!(bad.parse::<EventId>(), Err(NotAnEventId), "{bad:?}");
        }
    }
}
