//! The publisher: this process's events and control messages to NATS, in
//! the order they were published here, on one connection (NATS keeps a
//! connection's order on each subject).
//!
//! Core NATS keeps nothing for a subscriber that is not subscribed, and
//! says nothing of who received a message; so the publisher makes sure of
//! what it can and counts the rest as unrelayed (each count logged):
//! - each batch is followed by a round trip ([`Probe`]) on the same
//!   connection: answered, the server had the whole batch (and handed it
//!   to every subscription it held); not answered, or answered only after a
//!   reconnection (the client drops what it had not written when the
//!   connection went), the batch is counted;
//! - a batch published while the link is down is kept by the client and
//!   sent once it is back, but counted: others may not be subscribed yet;
//! - so is a batch published while the link is just back
//!   ([`crate::NatsSettings::recovery`]), as other processes may still be
//!   reconnecting.
//!
//! Round trips are pipelined: a batch goes out without waiting for the
//! previous one's answer.
//!
//! Knows NATS publishing and envelopes; nothing of members.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::Client;
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use parley_ports::envelope::{Contents, seal};
use parley_ports::{Control, Published};
use tokio::sync::{Notify, mpsc};

use crate::ANSWER_WITHIN;
use crate::broker::Subjects;
use crate::link::{Link, Probe};

/// Envelopes sent per batch at most.
const BATCH: usize = 256;
/// Batches whose round trip may be unanswered at once.
const IN_FLIGHT: usize = 16;

/// What waits to be published.
pub(crate) enum Outgoing {
    Event(Arc<Published>),
    Control(Control),
}

pub(crate) struct Publisher {
    pub(crate) client: Client,
    pub(crate) subjects: Subjects,
    pub(crate) link: Arc<Link>,
    pub(crate) probe: Probe,
    pub(crate) unrelayed: Arc<AtomicU64>,
    pub(crate) recovery: Duration,
    /// Wakes the link's monitor: a round trip failed, the link may be down.
    pub(crate) doubt: Arc<Notify>,
}

impl Publisher {
    pub(crate) async fn run(self, mut pending: mpsc::Receiver<Outgoing>) {
        let (mut events, mut controls) = (0u64, 0u64);
        let mut confirming = FuturesOrdered::new();
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                received = pending.recv_many(&mut batch, BATCH), if confirming.len() < IN_FLIGHT => {
                    if received == 0 {
                        return;
                    }
                    // Decided before sending: the batch may go out once the link is back.
                    let doubtful = !self.link.is_up() || self.link.recovering(self.recovery);
                    for outgoing in batch.drain(..) {
                        let (subject, bytes) = match outgoing {
                            Outgoing::Event(event) => {
                                events += 1;
                                let event = event.event();
                                let bytes = seal(&self.subjects.origin, events, Contents::Event(event));
                                (self.subjects.room(&event.room), bytes)
                            }
                            Outgoing::Control(control) => {
                                controls += 1;
                                (self.subjects.control(), seal(&self.subjects.origin, controls, Contents::Control(&control)))
                            }
                        };
                        if let Err(error) = self.client.publish(subject, bytes.into()).await {
                            // Only a closed client (the broker is going) or an
                            // envelope over the server's size limit.
                            tracing::error!(%error, "NATS refused an event: it reached this process's members only");
                            self.count(1);
                        }
                    }
                    if doubtful {
                        self.count(received as u64);
                    } else {
                        let probe = self.probe.clone();
                        confirming.push_back(async move { (received, probe.round_trip(ANSWER_WITHIN).await) });
                    }
                }
                Some((sent, confirmed)) = confirming.next(), if !confirming.is_empty() => {
                    if let Err(error) = confirmed {
                        tracing::debug!(%error, "a batch of events was not confirmed by NATS");
                        self.count(sent as u64);
                        self.doubt.notify_one();
                    }
                }
            }
        }
    }

    /// Counts `n` envelopes that may not have reached every other process,
    /// and says so at each power of two (an outage would flood the log).
    fn count(&self, n: u64) {
        let before = self.unrelayed.fetch_add(n, Ordering::Relaxed);
        if (before + n).checked_ilog2() != before.checked_ilog2() {
            tracing::warn!(
                unrelayed = before + n,
                "events published around a NATS outage may not have reached every process"
            );
        }
    }
}
