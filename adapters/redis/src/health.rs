//! Whether events cross between processes now, and telling this process's
//! members when that changes (the JSON protocol turns it into an `error`
//! event, then a `restored` one).
//!
//! Knows the two links that carry events between processes; nothing of
//! Redis commands or sockets.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use parley_memory::MemoryFanout;
use parley_ports::Notice;

/// The links events need to cross processes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Link {
    /// This process's events reach Redis.
    Publishing = 0b01,
    /// The other processes' events reach this process.
    Relaying = 0b10,
}

pub(crate) struct Health {
    /// The links down now, as bits, and since when both have worked; the
    /// lock also keeps notices in order.
    down: Mutex<(u8, Instant)>,
    degraded: AtomicBool,
    local: Arc<MemoryFanout>,
}

impl Health {
    pub(crate) fn new(local: Arc<MemoryFanout>) -> Self {
        Self { down: Mutex::new((0, Instant::now())), degraded: AtomicBool::new(false), local }
    }

    /// Whether events may not cross between processes now.
    pub(crate) fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Acquire)
    }

    /// How long both links have worked without a break (zero while one is
    /// down). Counted from the start of the process at first.
    pub(crate) fn steady_for(&self) -> Duration {
        let (down, since) = *self.down.lock().unwrap_or_else(PoisonError::into_inner);
        if down != 0 { Duration::ZERO } else { since.elapsed() }
    }

    /// Records whether `link` works; when that changes whether delivery is
    /// degraded, every local member is told.
    pub(crate) fn set(&self, link: Link, up: bool) {
        let mut guard = self.down.lock().unwrap_or_else(PoisonError::into_inner);
        let (down, since) = &mut *guard;
        let was = *down != 0;
        if up {
            *down &= !(link as u8);
        } else {
            *down |= link as u8;
        }
        let now = *down != 0;
        if was == now {
            return;
        }
        if !now {
            *since = Instant::now();
        }
        // Set before the members are told: a member joining now either sees
        // the flag or is among those told.
        self.degraded.store(now, Ordering::Release);
        if now {
            tracing::warn!(?link, "cross-process delivery is degraded: rooms still work within this process");
            self.local.notify_all(Notice::Degraded);
        } else {
            tracing::info!("cross-process delivery restored");
            self.local.notify_all(Notice::Restored);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_ports::Fanout;
    use parley_ports::domain::{DisplayName, RoomName};

    #[tokio::test]
    async fn members_are_told_once_when_either_link_fails_and_once_when_both_work() {
        let local = Arc::new(MemoryFanout::default());
        let health = Health::new(Arc::clone(&local));
        let mut ann =
            local.subscribe(&RoomName::parse("r").unwrap(), &DisplayName::parse("ann").unwrap()).await.unwrap();
        health.set(Link::Relaying, true);
        assert_eq!(ann.take_notice(), None, "nothing changed");
        health.set(Link::Relaying, false);
        assert!(health.degraded());
        assert_eq!(ann.take_notice(), Some(Notice::Degraded));
        health.set(Link::Publishing, false);
        health.set(Link::Relaying, true);
        assert_eq!(ann.take_notice(), None, "still degraded: publishing is down");
        health.set(Link::Publishing, true);
        assert!(!health.degraded());
        assert_eq!(ann.take_notice(), Some(Notice::Restored));
    }

    #[test]
    fn steadiness_is_counted_from_the_last_restoration() {
        let health = Health::new(Arc::new(MemoryFanout::default()));
        std::thread::sleep(Duration::from_millis(30));
        assert!(health.steady_for() >= Duration::from_millis(30), "counted from the start");
        health.set(Link::Relaying, false);
        assert_eq!(health.steady_for(), Duration::ZERO);
        health.set(Link::Relaying, true);
        assert!(health.steady_for() < Duration::from_millis(30), "counted again from now");
    }
}
