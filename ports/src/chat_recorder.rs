//! Keeps the chat log off the hot path: a bounded queue in front of a writer
//! that appends in batches and retries, so a slow or absent log changes
//! nothing for the people chatting — and loses nothing it was given.
//!
//! What it gives up, and says so: when the queue is full — in events or in
//! bytes (the log has been down for a long time, or cannot keep up with large
//! messages) — new events are not logged; the room still gets them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::Clock;
use crate::chat_log::{ChatLog, ChatLogError};
use crate::delivery::event_bytes;
use crate::domain::ChatEvent;

/// The most events one `append` call carries.
pub const MAX_BATCH: usize = 500;
/// What the queued events ([`event_bytes`]) may weigh, the batch being
/// written included. 100 000 ordinary messages (~150 bytes each) come to
/// about this, so the count bound still rules for them; it is a thousand
/// 16 KiB ones.
pub const DEFAULT_QUEUE_BYTES: usize = 16 * 1024 * 1024;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Attempts at a batch the log refuses outright (`Failed`), before it is given
/// up with an error line naming its events. An unreachable log is retried forever.
const ATTEMPTS_WHEN_REFUSED: u32 = 5;
/// How long the writer may keep trying after it is told to stop.
pub const FLUSH_GRACE: Duration = Duration::from_secs(10);

/// The hot path's handle: hands events to the writer without waiting.
#[derive(Clone)]
pub struct ChatRecorder {
    sender: mpsc::Sender<ChatEvent>,
    unlogged: Arc<AtomicU64>,
    /// What is queued or being written weighs, shared with the writer.
    queued_bytes: Arc<AtomicUsize>,
    max_bytes: usize,
}

impl ChatRecorder {
    /// A recorder queueing at most `capacity` events (and
    /// [`DEFAULT_QUEUE_BYTES`]), and the writer that drains it; spawn `writer.run()`.
    pub fn new(log: Arc<dyn ChatLog>, clock: Arc<dyn Clock>, capacity: usize) -> (ChatRecorder, ChatLogWriter) {
        Self::bounded(log, clock, capacity, DEFAULT_QUEUE_BYTES)
    }

    /// [`ChatRecorder::new`], with the queue bounded to `max_bytes` too.
    pub fn bounded(
        log: Arc<dyn ChatLog>,
        clock: Arc<dyn Clock>,
        capacity: usize,
        max_bytes: usize,
    ) -> (ChatRecorder, ChatLogWriter) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let recorder = ChatRecorder {
            sender,
            unlogged: Arc::new(AtomicU64::new(0)),
            queued_bytes: Arc::clone(&queued_bytes),
            max_bytes,
        };
        (recorder, ChatLogWriter { receiver, log, clock, batch: Vec::new(), queued_bytes })
    }

    /// Queues the event for the log. Returns `false`, and counts it, when the
    /// queue is full (in events or bytes; one event always fits in an empty
    /// queue) or the writer has stopped.
    pub fn record(&self, event: ChatEvent) -> bool {
        let bytes = event_bytes(&event);
        let before = self.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
        if before > 0 && before + bytes > self.max_bytes {
            self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
            self.refuse(&event, "chat log queue full (bytes); event not logged");
            return false;
        }
        match self.sender.try_send(event) {
            Ok(()) => true,
            Err(error) => {
                self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
                let (mpsc::error::TrySendError::Full(event) | mpsc::error::TrySendError::Closed(event)) = &error;
                self.refuse(event, "chat log queue full; event not logged");
                false
            }
        }
    }

    fn refuse(&self, event: &ChatEvent, why: &'static str) {
        let total = self.unlogged.fetch_add(1, Ordering::Relaxed) + 1;
        // Once per power of two: an outage logs a few lines, not millions.
        if total.is_power_of_two() {
            tracing::error!(event = %event.id, room = %event.room, unlogged = total, "{why}");
        }
    }

    /// How many events could not be queued for the log since start.
    pub fn unlogged(&self) -> u64 {
        self.unlogged.load(Ordering::Relaxed)
    }
}

/// The writer's end: appends what was recorded, in batches, with retries.
pub struct ChatLogWriter {
    receiver: mpsc::Receiver<ChatEvent>,
    log: Arc<dyn ChatLog>,
    clock: Arc<dyn Clock>,
    /// The batch being written: kept here, so stopping mid-retry loses nothing.
    batch: Vec<ChatEvent>,
    /// The recorder's count, given back once a batch is written or given up.
    queued_bytes: Arc<AtomicUsize>,
}

impl ChatLogWriter {
    /// Writes batches until `stop` resolves (or every recorder is dropped).
    /// Then it closes the queue (later events count as unlogged) and gets up
    /// to [`FLUSH_GRACE`] to write what it still holds: a log that is down
    /// at shutdown must not keep the process from stopping. What it could
    /// not write by then is counted in an error line.
    pub async fn run_until(mut self, stop: impl Future<Output = ()>) {
        tokio::select! {
            () = self.work() => return,
            () = stop => {}
        }
        self.receiver.close();
        let clock = Arc::clone(&self.clock);
        tokio::select! {
            () = self.work() => {}
            () = clock.sleep(FLUSH_GRACE) => {
                let left = self.batch.len() + self.receiver.len();
                tracing::error!(events = left, "the chat log did not take these events before shutdown; they are not logged");
            }
        }
    }

    /// Writes batches until every recorder is dropped.
    pub async fn run(self) {
        self.run_until(std::future::pending()).await;
    }

    /// Writes until the queue is closed and empty; cancellable between and
    /// during writes without losing the batch in hand.
    async fn work(&mut self) {
        loop {
            if self.batch.is_empty() && self.receiver.recv_many(&mut self.batch, MAX_BATCH).await == 0 {
                return;
            }
            // A cancelled write leaves the batch in place for the next call.
            self.write(&self.batch).await;
            let written: usize = self.batch.iter().map(event_bytes).sum();
            self.queued_bytes.fetch_sub(written, Ordering::Relaxed);
            self.batch.clear();
        }
    }

    async fn write(&self, batch: &[ChatEvent]) {
        let mut backoff = FIRST_BACKOFF;
        let mut refusals = 0;
        loop {
            let error = match self.log.append(batch).await {
                Ok(()) => return,
                Err(error) => error,
            };
            if let ChatLogError::Failed(_) = error {
                refusals += 1;
                if refusals >= ATTEMPTS_WHEN_REFUSED {
                    let ids: Vec<String> = batch.iter().map(|e| e.id.to_string()).collect();
                    tracing::error!(%error, events = ?ids, "chat log refused a batch; giving it up");
                    return;
                }
            }
            tracing::warn!(%error, events = batch.len(), retry_in = ?backoff, "chat log append failed; will retry");
            self.clock.sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::chat_log::MockChatLog;
    use crate::clock::MockClock;
    use crate::domain::{DisplayName, EventId, EventKind, MessageText, RoomName};

    fn event(n: u128) -> ChatEvent {
        ChatEvent {
            id: EventId::from_u128(n),
            room: RoomName::parse("r").unwrap(),
            user: DisplayName::parse("u").unwrap(),
            guest: false,
            kind: EventKind::Message,
            text: MessageText::parse(format!("m{n}")).unwrap(),
            timestamp: time::macros::datetime!(2026-11-26 12:00 UTC),
        }
    }

    fn sleeps() -> (MockClock, Arc<Mutex<Vec<Duration>>>) {
        let slept = Arc::new(Mutex::new(Vec::new()));
        let mut clock = MockClock::new();
        let record = Arc::clone(&slept);
        clock.expect_sleep().returning(move |d| record.lock().unwrap().push(d));
        (clock, slept)
    }

    #[tokio::test]
    async fn queued_events_are_appended_together_in_order() {
        let mut log = MockChatLog::new();
        log.expect_append()
            .withf(|batch| batch.iter().map(|e| e.id.as_u128()).collect::<Vec<_>>() == vec![1, 2, 3])
            .times(1)
            .returning(|_| Ok(()));
        let (recorder, writer) = ChatRecorder::new(Arc::new(log), Arc::new(MockClock::new()), 10);
        assert!((1..=3).all(|n| recorder.record(event(n))));
        drop(recorder);
        writer.run().await;
    }

    #[tokio::test]
    async fn an_unreachable_log_is_retried_with_growing_backoff_until_it_takes_the_batch() {
        let mut log = MockChatLog::new();
        let mut failures = 4;
        log.expect_append().times(5).returning(move |_| {
            if failures > 0 {
                failures -= 1;
                Err(ChatLogError::Unavailable("connection refused".into()))
            } else {
                Ok(())
            }
        });
        let (clock, slept) = sleeps();
        let (recorder, writer) = ChatRecorder::new(Arc::new(log), Arc::new(clock), 10);
        recorder.record(event(1));
        drop(recorder);
        writer.run().await;
        let slept = slept.lock().unwrap().clone();
        assert_eq!(
            slept,
            vec![
                Duration::from_millis(100),
                Duration::from_millis(200),
                Duration::from_millis(400),
                Duration::from_millis(800)
            ]
        );
    }

    #[tokio::test]
    async fn a_batch_the_log_keeps_refusing_is_given_up_and_later_batches_still_go() {
        let mut log = MockChatLog::new();
        log.expect_append()
            .withf(|batch| batch[0].id.as_u128() == 1)
            .times(ATTEMPTS_WHEN_REFUSED as usize)
            .returning(|_| Err(ChatLogError::Failed("mapping conflict".into())));
        log.expect_append().withf(|batch| batch[0].id.as_u128() == 2).times(1).returning(|_| Ok(()));
        let (clock, _) = sleeps();
        let (recorder, writer) = ChatRecorder::new(Arc::new(log), Arc::new(clock), 10);
        let writing = tokio::spawn(writer.run());
        recorder.record(event(1));
        tokio::task::yield_now().await;
        // Wait until the first batch has been taken, so the second is separate.
        while recorder.sender.capacity() < 10 {
            tokio::task::yield_now().await;
        }
        recorder.record(event(2));
        drop(recorder);
        writing.await.unwrap();
    }

    /// Tokio's (paused, in these tests) timer: virtual time that passes
    /// only when every task waits.
    struct TokioClock;

    #[async_trait::async_trait]
    impl Clock for TokioClock {
        fn now(&self) -> time::OffsetDateTime {
            time::macros::datetime!(2026-11-26 12:00 UTC)
        }
        async fn sleep(&self, duration: Duration) {
            tokio::time::sleep(duration).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn stopping_writes_what_was_queued_and_later_events_go_unlogged() {
        let appended = Arc::new(Mutex::new(Vec::new()));
        let mut log = MockChatLog::new();
        let sink = Arc::clone(&appended);
        log.expect_append().returning(move |batch| {
            sink.lock().unwrap().extend(batch.iter().map(|e| e.id.as_u128()));
            Ok(())
        });
        let (recorder, writer) = ChatRecorder::new(Arc::new(log), Arc::new(TokioClock), 10);
        recorder.record(event(1));
        recorder.record(event(2));
        // The recorder is still alive: stopping must not wait for it.
        writer.run_until(std::future::ready(())).await;
        assert_eq!(*appended.lock().unwrap(), vec![1, 2]);
        assert!(!recorder.record(event(3)));
        assert_eq!(recorder.unlogged(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_log_that_is_down_at_shutdown_does_not_keep_the_writer_from_stopping() {
        let mut log = MockChatLog::new();
        log.expect_append().returning(|_| Err(ChatLogError::Unavailable("connection refused".into())));
        let (recorder, writer) = ChatRecorder::new(Arc::new(log), Arc::new(TokioClock), 10);
        recorder.record(event(1));
        let started = tokio::time::Instant::now();
        writer.run_until(std::future::ready(())).await;
        let waited = started.elapsed();
        assert!(
            waited >= FLUSH_GRACE && waited < FLUSH_GRACE * 2,
            "it tried for the grace period, then stopped ({waited:?})"
        );
        assert!(!recorder.record(event(2)), "the queue is closed");
    }

    #[tokio::test]
    async fn a_queue_full_in_bytes_refuses_and_counts_and_takes_more_once_written() {
        let mut log = MockChatLog::new();
        log.expect_append().returning(|_| Ok(()));
        let weight = event_bytes(&event(1));
        let (recorder, writer) = ChatRecorder::bounded(Arc::new(log), Arc::new(MockClock::new()), 1000, 2 * weight);
        assert!(recorder.record(event(1)));
        assert!(recorder.record(event(2)));
        assert!(!recorder.record(event(3)), "two events' worth of bytes, far under 1 000 events");
        assert_eq!(recorder.unlogged(), 1);
        let writing = tokio::spawn(writer.run());
        while recorder.queued_bytes.load(Ordering::Relaxed) > 0 {
            tokio::task::yield_now().await;
        }
        assert!(recorder.record(event(4)), "written events no longer count");
        drop(recorder);
        writing.await.unwrap();
    }

    #[tokio::test]
    async fn a_full_queue_refuses_and_counts_instead_of_waiting() {
        let (recorder, _writer) = ChatRecorder::new(Arc::new(MockChatLog::new()), Arc::new(MockClock::new()), 2);
        assert!(recorder.record(event(1)));
        assert!(recorder.record(event(2)));
        assert!(!recorder.record(event(3)));
        assert_eq!(recorder.unlogged(), 1);
    }
}
