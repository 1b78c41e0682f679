//! Who may hold a connection: a cap on open TCP connections for the whole
//! process (it protects file descriptors, so it holds even with
//! `PARLEY_LIMITS=off`), and per client address ([`ClientAddress::key`]) a
//! cap on open connections and a rate of new ones.
//!
//! Knows nothing of HTTP or sockets: the server asks at accept (and, behind a
//! trusted proxy, per request) and holds the slot it is given for as long as
//! the connection (or request) lasts; dropping the slot gives it back.
//!
//! One map entry per address holds its open count, its rate state and when it
//! was last warned about, so an accepted connection costs one map update and
//! its close another. The map is bounded: entries go at zero when nothing
//! about them is worth remembering, and when it grows past
//! [`REMEMBERED`] entries idle addresses are forgotten.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use parley_ports::domain::ClientAddress;

/// Per-address limits; `0` lifts one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerAddress {
    /// Connections one address may hold open.
    pub max_open: u32,
    /// New connections one address may open per second, sustained.
    pub per_second: u32,
    /// New connections one address may open at once before the rate applies.
    pub burst: u32,
}

/// A refusal is logged at most once per address in this interval, and at
/// most [`WARNINGS_PER_INTERVAL`] addresses are named in one; the rest are
/// counted in one line, so a flood from many addresses cannot flood the log.
const LOG_INTERVAL: Duration = Duration::from_secs(10);
const WARNINGS_PER_INTERVAL: u32 = 100;
/// Addresses remembered beyond those holding connections (about 64 bytes
/// each): past this, addresses with nothing open lose their rate state.
pub(crate) const REMEMBERED: usize = 65_536;

/// Why a connection or request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The process holds as many connections as it may.
    Full { max: usize },
    /// This address holds as many connections as one address may.
    TooManyOpen { max: u32 },
    /// This address opens connections faster than one address may.
    TooFast { retry_after: Duration },
}

impl Refusal {
    /// Whole seconds a client should wait before trying again (at least 1).
    pub(crate) fn retry_after_seconds(self) -> u64 {
        match self {
            Refusal::TooFast { retry_after } => retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0),
            Refusal::Full { .. } | Refusal::TooManyOpen { .. } => 1,
        }
        .max(1)
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Full { max } => write!(f, "the server holds its maximum of {max} connections"),
            Refusal::TooManyOpen { max } => write!(f, "too many connections from this address (at most {max})"),
            Refusal::TooFast { .. } => f.write_str("too many new connections from this address; slow down"),
        }
    }
}

/// The admission control shared by every connection of one server.
pub(crate) struct Admission {
    max_open: usize,
    open: AtomicUsize,
    per_address: Option<PerAddress>,
    /// The rate as GCRA sees it: one connection per `spacing`, up to `burst`
    /// of them ahead of time.
    spacing: Duration,
    ahead: Duration,
    /// A std mutex: it is held for a map update, never across an await.
    clients: Mutex<Clients>,
    full_warnings: Mutex<LogWindow>,
}

struct Clients {
    by_key: HashMap<IpAddr, Client>,
    /// Size after the last sweep: the next waits until the map doubles, so
    /// sweeping stays amortised even when most entries are busy.
    swept_to: usize,
    log: LogWindow,
}

#[derive(Debug)]
struct Client {
    open: u32,
    /// GCRA's theoretical arrival time of the next connection.
    due: Instant,
    warned: Option<Instant>,
}

impl Client {
    /// Nothing about it differs from an address never seen.
    fn forgettable(&self, now: Instant) -> bool {
        self.open == 0 && self.due <= now && self.warned.is_none_or(|at| now.duration_since(at) >= LOG_INTERVAL)
    }
}

/// Counts log lines in the current interval.
struct LogWindow {
    started: Instant,
    logged: u32,
    suppressed: u64,
}

impl LogWindow {
    fn new(now: Instant) -> Self {
        Self { started: now, logged: 0, suppressed: 0 }
    }

    /// Whether one more line may be written now; a new interval first says
    /// how many the last one left out.
    fn allow(&mut self, now: Instant, per_interval: u32, what: &str) -> bool {
        if now.duration_since(self.started) >= LOG_INTERVAL {
            if self.suppressed > 0 {
                tracing::warn!("{} more {what} refused in the last {}s, not logged one by one", self.suppressed, {
                    now.duration_since(self.started).as_secs()
                });
            }
            *self = Self::new(now);
        }
        if self.logged < per_interval {
            self.logged += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }
}

impl Admission {
    pub(crate) fn new(max_open: usize, per_address: Option<PerAddress>) -> Arc<Self> {
        let now = Instant::now();
        let (spacing, ahead) = match per_address {
            Some(limits) if limits.per_second > 0 => {
                let spacing = Duration::from_secs(1) / limits.per_second;
                (spacing, spacing * limits.burst.max(1))
            }
            _ => (Duration::ZERO, Duration::ZERO),
        };
        Arc::new(Self {
            max_open,
            open: AtomicUsize::new(0),
            per_address: per_address.filter(|limits| limits.max_open > 0 || limits.per_second > 0),
            spacing,
            ahead,
            clients: Mutex::new(Clients { by_key: HashMap::new(), swept_to: 0, log: LogWindow::new(now) }),
            full_warnings: Mutex::new(LogWindow::new(now)),
        })
    }

    /// A place among the process's open connections, for one from `peer`.
    pub(crate) fn connection(self: &Arc<Self>, peer: ClientAddress) -> Result<Slot, Refusal> {
        if self.open.fetch_add(1, Ordering::Relaxed) >= self.max_open {
            self.open.fetch_sub(1, Ordering::Relaxed);
            let refusal = Refusal::Full { max: self.max_open };
            if lock(&self.full_warnings).allow(Instant::now(), 1, "connections") {
                tracing::warn!(client = %peer, "connection refused: {refusal}");
            }
            return Err(refusal);
        }
        Ok(Slot { admission: Arc::clone(self), key: None })
    }

    /// A place among `client`'s open connections (or requests, behind a
    /// trusted proxy); with no per-address limit, a slot that counts nothing.
    pub(crate) fn client(self: &Arc<Self>, client: ClientAddress) -> Result<ClientSlot, Refusal> {
        let Some(limits) = self.per_address else {
            return Ok(ClientSlot(None));
        };
        let key = client.key();
        let now = Instant::now();
        let mut clients = lock(&self.clients);
        if !clients.by_key.contains_key(&key) && clients.by_key.len() >= REMEMBERED.max(clients.swept_to * 2) {
            clients.sweep(now);
        }
        let Clients { by_key, log, .. } = &mut *clients;
        let entry = by_key.entry(key).or_insert(Client { open: 0, due: now, warned: None });
        let refusal = if limits.max_open > 0 && entry.open >= limits.max_open {
            Some(Refusal::TooManyOpen { max: limits.max_open })
        } else if limits.per_second > 0 {
            let due = entry.due.max(now) + self.spacing;
            let wait = due.duration_since(now).saturating_sub(self.ahead);
            if wait.is_zero() {
                entry.due = due;
                None
            } else {
                Some(Refusal::TooFast { retry_after: wait })
            }
        } else {
            None
        };
        if let Some(refusal) = refusal {
            let quiet = entry.warned.is_some_and(|at| now.duration_since(at) < LOG_INTERVAL);
            if !quiet && log.allow(now, WARNINGS_PER_INTERVAL, "connections or requests") {
                entry.warned = Some(now);
                tracing::warn!(%client, "refused: {refusal}");
            }
            return Err(refusal);
        }
        entry.open += 1;
        Ok(ClientSlot(Some(Slot { admission: Arc::clone(self), key: Some(key) })))
    }

    /// A slot that counts nothing: for a trusted proxy, and for requests
    /// from a client already counted at accept.
    pub(crate) fn client_exempt(&self) -> ClientSlot {
        ClientSlot(None)
    }

    /// Connections open now, for tests and logs.
    #[cfg(test)]
    fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

impl Clients {
    /// Forgets what is not worth remembering; past [`REMEMBERED`], every
    /// address holding nothing open (their rate state and warnings too: a
    /// flood of distinct addresses costs them their memory, never ours).
    fn sweep(&mut self, now: Instant) {
        self.by_key.retain(|_, client| !client.forgettable(now));
        if self.by_key.len() >= REMEMBERED {
            self.by_key.retain(|_, client| client.open > 0);
        }
        self.swept_to = self.by_key.len();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; if something did, the counts are still counts.
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A held place: the process's (`key` none) or an address's; given back on drop.
pub(crate) struct Slot {
    admission: Arc<Admission>,
    key: Option<IpAddr>,
}

/// An address's place, or nothing when per-address limits are off.
pub(crate) struct ClientSlot(#[allow(dead_code)] Option<Slot>);

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(key) = self.key else {
            self.admission.open.fetch_sub(1, Ordering::Relaxed);
            return;
        };
        let mut clients = lock(&self.admission.clients);
        if let Some(client) = clients.by_key.get_mut(&key) {
            client.open = client.open.saturating_sub(1);
            if client.forgettable(Instant::now()) {
                clients.by_key.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> ClientAddress {
        ClientAddress::new(text.parse().unwrap())
    }

    #[test]
    fn the_process_cap_refuses_past_its_maximum_and_frees_on_drop() {
        let admission = Admission::new(2, None);
        let first = admission.connection(address("127.0.0.2")).unwrap();
        let _second = admission.connection(address("127.0.0.2")).unwrap();
        assert_eq!(admission.connection(address("127.0.0.3")).err(), Some(Refusal::Full { max: 2 }));
        drop(first);
        let _third = admission.connection(address("127.0.0.3")).unwrap();
        assert_eq!(admission.open(), 2);
    }

    #[test]
    fn an_address_may_hold_its_cap_and_no_more_while_others_still_get_in() {
        let admission = Admission::new(100, Some(PerAddress { max_open: 2, per_second: 0, burst: 0 }));
        let held: Vec<_> = (0..2).map(|_| admission.client(address("10.0.0.1")).unwrap()).collect();
        assert_eq!(admission.client(address("10.0.0.1")).err(), Some(Refusal::TooManyOpen { max: 2 }));
        assert!(admission.client(address("10.0.0.2")).is_ok());
        drop(held);
        assert!(admission.client(address("10.0.0.1")).is_ok());
        let remembered: Vec<IpAddr> = lock(&admission.clients).by_key.keys().copied().collect();
        assert_eq!(remembered, [address("10.0.0.1").ip()], "entries go at zero, but a warning is remembered");
    }

    #[test]
    fn an_ipv6_64_is_one_address() {
        let admission = Admission::new(100, Some(PerAddress { max_open: 1, per_second: 0, burst: 0 }));
        let _held = admission.client(address("2001:db8:1:2::1")).unwrap();
        assert!(admission.client(address("2001:db8:1:2:ffff::9")).is_err());
        assert!(admission.client(address("2001:db8:1:3::1")).is_ok());
    }

    #[test]
    fn new_connections_past_the_burst_wait_for_the_rate() {
        let admission = Admission::new(100, Some(PerAddress { max_open: 0, per_second: 1, burst: 3 }));
        for _ in 0..3 {
            drop(admission.client(address("10.0.0.1")).unwrap());
        }
        match admission.client(address("10.0.0.1")) {
            Err(refusal @ Refusal::TooFast { .. }) => assert_eq!(refusal.retry_after_seconds(), 1),
            other => panic!("{:?}", other.err()),
        }
        assert!(admission.client(address("10.0.0.2")).is_ok());
    }

    #[test]
    fn no_limit_counts_nothing() {
        let admission = Admission::new(100, None);
        let held: Vec<_> = (0..1000).map(|_| admission.client(address("10.0.0.1")).unwrap()).collect();
        assert!(lock(&admission.clients).by_key.is_empty());
        drop(held);
    }

    #[test]
    fn a_flood_of_distinct_addresses_is_remembered_within_bounds() {
        let admission = Admission::new(100, Some(PerAddress { max_open: 0, per_second: 1, burst: 1 }));
        for n in 0..(REMEMBERED as u32 * 3) {
            let ip = std::net::Ipv4Addr::from_bits(0x0a00_0000 + n);
            drop(admission.client(ClientAddress::new(ip.into())));
        }
        assert!(lock(&admission.clients).by_key.len() <= REMEMBERED, "rate state of idle addresses is forgotten");
    }
}
