//! Whether events cross between processes now, and telling the hub when
//! that changes (members are told: the JSON protocol turns it into an
//! `error` event, then a `restored` one).
//!
//! One connection carries both ways, so there is one link. It is down as
//! soon as the client says it lost the connection, and up again only once a
//! round trip through the server ([`Probe`]) came back on the connection
//! since: by then the server has every subscription again (the client sends
//! them first on reconnecting), so events from the others reach this
//! process, and this process's reach the server.
//!
//! Knows the NATS client's connection and a request nobody answers; nothing
//! of rooms or members.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use async_nats::client::{Client, RequestErrorKind};
use parley_ports::{BrokerError, Incoming, Notice};

pub(crate) struct Link {
    /// The lock also keeps the notices in order.
    state: Mutex<State>,
    incoming: OnceLock<Weak<dyn Incoming>>,
}

struct State {
    up: bool,
    /// When the link last came back after an outage (not after starting).
    restored: Option<Instant>,
    /// Whether the link has ever worked.
    ever_up: bool,
    /// Counts the losses: a probe answered across one proves nothing.
    losses: u64,
}

impl Link {
    /// Down until first probed, so readiness waits for it (no one is told:
    /// nobody was told it was up).
    pub(crate) fn new() -> Self {
        let state = State { up: false, restored: None, ever_up: false, losses: 0 };
        Self { state: Mutex::new(state), incoming: OnceLock::new() }
    }

    /// Whom to tell from now on.
    pub(crate) fn tell(&self, incoming: Weak<dyn Incoming>) {
        let _ = self.incoming.set(incoming);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn is_up(&self) -> bool {
        self.lock().up
    }

    /// Whether the link came back less than `recovery` ago.
    pub(crate) fn recovering(&self, recovery: Duration) -> bool {
        self.lock().restored.is_some_and(|at| at.elapsed() < recovery)
    }

    /// How many times the link was lost so far: what [`Link::up_unless_lost`] takes.
    pub(crate) fn losses(&self) -> u64 {
        self.lock().losses
    }

    /// The connection was lost (or stopped answering).
    pub(crate) fn lost(&self) {
        let mut state = self.lock();
        state.losses += 1;
        if state.up {
            state.up = false;
            tracing::warn!("cross-process delivery is degraded: rooms still work within this process");
            self.notify(Notice::Degraded);
        }
    }

    /// A probe sent when the link had been lost `losses` times came back:
    /// the link is up, unless it was lost again meanwhile.
    pub(crate) fn up_unless_lost(&self, losses: u64) {
        let mut state = self.lock();
        if state.up || state.losses != losses {
            return;
        }
        state.up = true;
        if state.ever_up {
            state.restored = Some(Instant::now());
            tracing::info!("cross-process delivery works again");
            self.notify(Notice::Restored);
        }
        state.ever_up = true;
    }

    /// Told under the lock, so two changes reach the hub in order.
    fn notify(&self, notice: Notice) {
        if let Some(incoming) = self.incoming.get().and_then(Weak::upgrade) {
            incoming.link(notice);
        }
    }
}

/// A round trip through the server: a request to a subject nobody
/// subscribes to, which the server answers "no responders" after it has
/// handled everything this connection sent before. Each one answered
/// proves the link up.
#[derive(Clone)]
pub(crate) struct Probe {
    pub(crate) client: Client,
    pub(crate) subject: String,
    pub(crate) link: Arc<Link>,
}

impl Probe {
    /// Whether the server answered within `within`, on the connection it
    /// was asked on (a reconnection meanwhile may have lost what was sent
    /// before the probe: that is a failure).
    pub(crate) async fn round_trip(&self, within: Duration) -> Result<(), BrokerError> {
        let losses = self.link.losses();
        let connects = self.connects();
        let request = async_nats::Request::new().timeout(Some(within));
        let answered = match self.client.send_request(self.subject.clone(), request).await {
            Ok(_) => Ok(()),
            Err(error) if error.kind() == RequestErrorKind::NoResponders => Ok(()),
            Err(error) if error.kind() == RequestErrorKind::TimedOut => {
                Err(unavailable(&format!("NATS did not answer within {within:?}")))
            }
            Err(error) => Err(BrokerError::Unavailable(error.into())),
        };
        if answered.is_ok() && self.connects() != connects {
            return Err(unavailable("the NATS connection was replaced meanwhile"));
        }
        if answered.is_ok() {
            self.link.up_unless_lost(losses);
        }
        answered
    }

    /// How many times the client has connected so far.
    pub(crate) fn connects(&self) -> u64 {
        self.client.statistics().connects.load(Ordering::Acquire)
    }
}

pub(crate) fn unavailable(why: &str) -> BrokerError {
    BrokerError::Unavailable(why.to_owned().into())
}

#[cfg(test)]
mod tests {
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

    fn told() -> (Link, Arc<Told>) {
        let link = Link::new();
        let told = Arc::new(Told::default());
        let incoming: Arc<dyn Incoming> = Arc::clone(&told) as Arc<dyn Incoming>;
        link.tell(Arc::downgrade(&incoming));
        (link, told)
    }

    #[test]
    fn the_hub_is_told_once_per_change_and_not_of_the_first_start() {
        let (link, told) = told();
        assert!(!link.is_up(), "down until first probed");
        link.up_unless_lost(link.losses());
        assert!(link.is_up());
        assert!(told.0.lock().unwrap().is_empty(), "nobody was told it was down");
        link.lost();
        link.lost();
        link.up_unless_lost(link.losses());
        link.up_unless_lost(link.losses());
        assert_eq!(*told.0.lock().unwrap(), [Notice::Degraded, Notice::Restored]);
        assert!(link.recovering(Duration::from_secs(60)));
        assert!(!link.recovering(Duration::ZERO));
    }

    #[test]
    fn a_probe_sent_before_a_loss_does_not_bring_the_link_back() {
        let (link, told) = told();
        link.up_unless_lost(0);
        let before = link.losses();
        link.lost();
        link.up_unless_lost(before);
        assert!(!link.is_up(), "answered across the loss");
        assert_eq!(*told.0.lock().unwrap(), [Notice::Degraded]);
    }
}
