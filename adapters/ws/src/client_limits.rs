//! Limits per client across all of its connections, beside each
//! connection's own bucket (`rate.rs`): messages per address
//! ([`ClientAddress::key`]) and per user (token-authenticated members), and
//! joins per address.
//!
//! Knows addresses and user ids, not sockets, frames or rooms: the handshake
//! asks before a join, the connection before a post. Each check is one
//! lock-free GCRA step in a sharded map (`governor`), and the maps stay
//! bounded: [`ClientLimits::forget_idle`], run on a timer, drops every key
//! whose bucket is full again, so they hold only the clients active within
//! one refill period, however many distinct addresses a flood comes from.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use parley_ports::domain::{ClientAddress, UserId};

/// How often idle keys are forgotten.
pub const FORGET_EVERY: Duration = Duration::from_secs(10);
/// A refusal is logged at most once per address in this time: a flood must not flood the log.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// A sustained rate and a burst; a rate of 0 is no limit of that kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

impl Rate {
    pub const UNLIMITED: Rate = Rate { per_second: 0, burst: 0 };

    pub fn new(per_second: u32, burst: u32) -> Self {
        Self { per_second, burst }
    }

    fn limiter<K: std::hash::Hash + Eq + Clone>(self) -> Option<DefaultKeyedRateLimiter<K>> {
        let per_second = NonZeroU32::new(self.per_second)?;
        let burst = NonZeroU32::new(self.burst).unwrap_or(per_second);
        Some(DefaultKeyedRateLimiter::dashmap(Quota::per_second(per_second).allow_burst(burst)))
    }
}

/// Whose limit a message met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    Address,
    User,
}

impl Exceeded {
    /// What the client is told.
    pub fn explanation(self) -> &'static str {
        match self {
            Exceeded::Address => "slow down: too many messages from your address, message dropped",
            Exceeded::User => "slow down: too many messages from your account, message dropped",
        }
    }
}

/// A join refused: try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyJoins {
    pub retry_after: Duration,
}

/// The per-client limiters; `None` where that kind is off.
pub struct ClientLimits {
    messages_by_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    messages_by_user: Option<DefaultKeyedRateLimiter<UserId>>,
    joins_by_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Who was warned about lately, so that each is warned once per [`WARN_EVERY`].
    warned: Option<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
}

impl ClientLimits {
    pub fn new(messages_per_address: Rate, messages_per_user: Rate, joins_per_address: Rate) -> Self {
        let warned = NonZeroU32::MIN;
        Self {
            messages_by_address: messages_per_address.limiter(),
            messages_by_user: messages_per_user.limiter(),
            joins_by_address: joins_per_address.limiter(),
            warned: Quota::with_period(WARN_EVERY).map(|q| DefaultKeyedRateLimiter::dashmap(q.allow_burst(warned))),
            clock: DefaultClock::default(),
        }
    }

    /// No limit at all (`PARLEY_LIMITS=off`).
    pub fn off() -> Self {
        Self::new(Rate::UNLIMITED, Rate::UNLIMITED, Rate::UNLIMITED)
    }

    /// Counts a join from `client`, or says when one may come.
    pub fn join(&self, client: ClientAddress) -> Result<(), TooManyJoins> {
        let Some(joins) = &self.joins_by_address else { return Ok(()) };
        joins
            .check_key(&client.key())
            .map_err(|not_until| TooManyJoins { retry_after: not_until.wait_time_from(self.clock.now()) })
    }

    /// Counts a message from `client` (and `user`, when a token named one):
    /// one check per key. The user's limit is asked first, so a refusal there
    /// costs the address nothing.
    pub fn message(&self, client: ClientAddress, user: Option<UserId>) -> Result<(), Exceeded> {
        if let (Some(users), Some(user)) = (&self.messages_by_user, user)
            && users.check_key(&user).is_err()
        {
            return Err(Exceeded::User);
        }
        match &self.messages_by_address {
            Some(addresses) if addresses.check_key(&client.key()).is_err() => Err(Exceeded::Address),
            _ => Ok(()),
        }
    }

    /// Whether a refusal concerning `client` should be logged now: once per
    /// address per minute.
    pub fn should_warn(&self, client: ClientAddress) -> bool {
        self.warned.as_ref().is_none_or(|warned| warned.check_key(&client.key()).is_ok())
    }

    /// Forgets every key whose bucket is full again: what keeps the maps
    /// bounded by the clients active lately.
    pub fn forget_idle(&self) {
        fn forget<K: std::hash::Hash + Eq + Clone>(limiter: Option<&DefaultKeyedRateLimiter<K>>) {
            if let Some(limiter) = limiter {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        }
        forget(self.messages_by_address.as_ref());
        forget(self.messages_by_user.as_ref());
        forget(self.joins_by_address.as_ref());
        forget(self.warned.as_ref());
    }

    /// Keys held now, over every limiter (for tests of the bound).
    #[cfg(test)]
    fn keys(&self) -> usize {
        fn len<K: std::hash::Hash + Eq + Clone>(limiter: Option<&DefaultKeyedRateLimiter<K>>) -> usize {
            limiter.map_or(0, |l| l.len())
        }
        len(self.messages_by_address.as_ref())
            + len(self.messages_by_user.as_ref())
            + len(self.joins_by_address.as_ref())
            + len(self.warned.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> ClientAddress {
        ClientAddress::new(text.parse().unwrap())
    }

    #[test]
    fn an_address_is_limited_across_its_users_and_a_user_across_addresses() {
        let limits = ClientLimits::new(Rate::new(1, 3), Rate::new(1, 2), Rate::UNLIMITED);
        let (home, office) = (address("192.0.2.1"), address("198.51.100.7"));
        let (ann, bob) = (Some(UserId::new(1)), Some(UserId::new(2)));
        assert_eq!(limits.message(home, ann), Ok(()));
        assert_eq!(limits.message(office, ann), Ok(()));
        assert_eq!(limits.message(home, ann), Err(Exceeded::User), "ann's burst is spent from two addresses");
        assert_eq!(limits.message(home, bob), Ok(()));
        assert_eq!(limits.message(home, None), Ok(()));
        assert_eq!(limits.message(home, None), Err(Exceeded::Address), "home's burst is spent by two users");
        assert_eq!(limits.message(office, bob), Ok(()), "another address is unaffected");
    }

    #[test]
    fn an_ipv6_64_counts_as_one_address() {
        let limits = ClientLimits::new(Rate::UNLIMITED, Rate::UNLIMITED, Rate::new(1, 1));
        assert_eq!(limits.join(address("2001:db8:1:2::1")), Ok(()));
        let refused = limits.join(address("2001:db8:1:2:ffff::9")).unwrap_err();
        assert!(refused.retry_after > Duration::ZERO && refused.retry_after <= Duration::from_secs(1));
        assert_eq!(limits.join(address("2001:db8:1:3::1")), Ok(()));
    }

    #[test]
    fn off_limits_nothing_and_keeps_no_key() {
        let limits = ClientLimits::off();
        let client = address("192.0.2.1");
        assert!((0..10_000).all(|_| limits.join(client).is_ok() && limits.message(client, None).is_ok()));
        assert_eq!(limits.keys(), 0, "no key is kept for a limit that is off");
    }

    #[test]
    fn idle_keys_are_forgotten() {
        let limits = ClientLimits::new(Rate::new(1000, 1), Rate::UNLIMITED, Rate::new(1000, 1));
        for n in 0..=255u8 {
            let client = address(&format!("10.0.0.{n}"));
            let _ = limits.join(client);
            let _ = limits.message(client, None);
            limits.should_warn(client);
        }
        assert_eq!(limits.keys(), 3 * 256);
        std::thread::sleep(Duration::from_millis(5));
        limits.forget_idle();
        assert_eq!(limits.keys(), 256, "what is left is the warnings, a minute long");
    }
}
