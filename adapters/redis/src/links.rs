//! Whether events cross between processes now, both ways, and telling the
//! hub when that changes (members are told: the JSON protocol turns it into
//! an `error` event, then a `restored` one).
//!
//! Knows the two links events need; nothing of Redis commands or members.

use std::sync::{Mutex, OnceLock, PoisonError, Weak};
use std::time::Instant;

use parley_ports::{Incoming, Notice};

/// The links events need to cross processes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Link {
    /// This process's events reach Redis.
    Publishing = 0b01,
    /// The other processes' events reach this process.
    Relaying = 0b10,
}

pub(crate) struct Links {
    /// The lock also keeps the notices in order.
    state: Mutex<State>,
    incoming: OnceLock<Weak<dyn Incoming>>,
}

struct State {
    /// The links down now, as bits.
    down: u8,
    /// When both last worked again after an outage (not after starting).
    restored: Option<Instant>,
    /// Whether both have ever worked.
    ever_up: bool,
}

impl Links {
    /// Relaying counts as down until the relay has first subscribed, so
    /// readiness waits for it (no one is told: nobody was told it was up).
    pub(crate) fn new() -> Self {
        let state = State { down: Link::Relaying as u8, restored: None, ever_up: false };
        Self { state: Mutex::new(state), incoming: OnceLock::new() }
    }

    /// Whom to tell from now on.
    pub(crate) fn tell(&self, incoming: Weak<dyn Incoming>) {
        let _ = self.incoming.set(incoming);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Which link is down now, if any.
    pub(crate) fn down(&self) -> Option<Link> {
        match self.lock().down {
            0 => None,
            bits if bits & Link::Relaying as u8 != 0 => Some(Link::Relaying),
            _ => Some(Link::Publishing),
        }
    }

    /// When both links last worked again after an outage.
    pub(crate) fn restored_at(&self) -> Option<Instant> {
        self.lock().restored
    }

    /// Records whether `link` works; when that changes whether events cross
    /// both ways, the hub is told.
    pub(crate) fn set(&self, link: Link, up: bool) {
        let mut state = self.lock();
        let was = state.down != 0;
        if up {
            state.down &= !(link as u8);
        } else {
            state.down |= link as u8;
        }
        let now = state.down != 0;
        if was == now {
            return;
        }
        if !now {
            if state.ever_up {
                state.restored = Some(Instant::now());
            }
            state.ever_up = true;
        }
        let notice = if now {
            tracing::warn!(?link, "cross-process delivery is degraded: rooms still work within this process");
            Notice::Degraded
        } else {
            tracing::info!("cross-process delivery works both ways");
            Notice::Restored
        };
        // Told under the lock, so two changes reach the hub in order.
        if let Some(incoming) = self.incoming.get().and_then(Weak::upgrade) {
            incoming.link(notice);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parley_ports::{Control, Published};

    use super::*;

    #[derive(Default)]
    struct Told(Mutex<Vec<Notice>>);
    impl Incoming for Told {
        fn event(&self, _: Arc<Published>) {}
        fn control(&self, _: Control) {}
        fn link(&self, notice: Notice) {
            self.0.lock().unwrap().push(notice);
        }
    }

    #[test]
    fn the_hub_is_told_once_when_either_link_fails_and_once_when_both_work() {
        let links = Links::new();
        let told = Arc::new(Told::default());
        let incoming: Arc<dyn Incoming> = Arc::clone(&told) as Arc<dyn Incoming>;
        links.tell(Arc::downgrade(&incoming));
        assert!(links.down().is_some(), "relaying is down until first subscribed");
        links.set(Link::Relaying, true);
        links.set(Link::Relaying, true);
        assert!(links.down().is_none());
        links.set(Link::Relaying, false);
        links.set(Link::Publishing, false);
        links.set(Link::Relaying, true);
        assert_eq!(*told.0.lock().unwrap(), [Notice::Restored, Notice::Degraded], "still degraded: publishing");
        links.set(Link::Publishing, true);
        assert_eq!(*told.0.lock().unwrap(), [Notice::Restored, Notice::Degraded, Notice::Restored]);
    }

    #[test]
    fn only_working_again_after_an_outage_counts_as_restored() {
        let links = Links::new();
        links.set(Link::Relaying, true);
        assert!(links.restored_at().is_none(), "starting is not recovering");
        links.set(Link::Publishing, false);
        let before = Instant::now();
        links.set(Link::Publishing, true);
        assert!(links.restored_at().is_some_and(|at| at >= before));
    }
}
