//! What reaches a member: the shared event ([`Published`], encoded at most
//! once per wire format however many members receive it) and the bounded
//! per-member queue ([`queue`]) the hub delivers through, bounded in events
//! and in bytes. A member that does not keep up is cut off with
//! [`Ended::TooSlow`] instead of slowing its room or holding its memory.
//!
//! Knows nothing of rooms, sockets or wire formats: those are the hub's and
//! the [`Encoding`]s supplied by inbound adapters.

use std::any::{Any, TypeId};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Poll, Waker};

use crate::domain::ChatEvent;

/// A wire format for events: how an inbound adapter turns an event into the
/// frame it sends. [`Published::encoded`] calls `encode` at most once per event.
pub trait Encoding: 'static {
    /// The encoded frame; cloning it must be cheap (shared bytes).
    type Frame: Clone + Send + Sync + 'static;
    fn encode(event: &ChatEvent) -> Self::Frame;
}

/// How many wire formats an event caches; more still work, encoded per call.
const CACHED_ENCODINGS: usize = 4;

type CachedFrame = (TypeId, Box<dyn Any + Send + Sync>);

/// What a frame adds to an event's text and names, counted in
/// [`event_bytes`]: the JSON protocol's keys, id and timestamp come to about
/// a hundred bytes. A constant, so the count is the same on every process.
pub const EVENT_OVERHEAD: usize = 96;

/// What an event weighs in the bounds counted in bytes (a member's queue,
/// a room's recent events, the chat-log queue): its text and names plus
/// [`EVENT_OVERHEAD`] — about the frame a member is sent for it. Cheap and
/// deterministic (three lengths), not the allocator's exact figure.
pub fn event_bytes(event: &ChatEvent) -> usize {
    EVENT_OVERHEAD + event.text.as_str().len() + event.user.as_str().len() + event.room.as_str().len()
}

/// A published event, shared by every member who receives it.
pub struct Published {
    event: ChatEvent,
    /// [`event_bytes`], counted once here for every member's queue.
    bytes: usize,
    frames: [OnceLock<CachedFrame>; CACHED_ENCODINGS],
}

impl Published {
    pub fn new(event: ChatEvent) -> Arc<Self> {
        let bytes = event_bytes(&event);
        Arc::new(Self { event, bytes, frames: Default::default() })
    }

    pub fn event(&self) -> &ChatEvent {
        &self.event
    }

    /// What the event weighs in the bounds counted in bytes ([`event_bytes`]).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The event in wire format `E`, encoded by the first member who asks and
    /// shared with the rest.
    pub fn encoded<E: Encoding>(&self) -> E::Frame {
        let wanted = TypeId::of::<E>();
        for slot in &self.frames {
            let (kind, frame) = slot.get_or_init(|| (wanted, Box::new(E::encode(&self.event))));
            if *kind == wanted
                && let Some(frame) = frame.downcast_ref::<E::Frame>()
            {
                return frame.clone();
            }
        }
        E::encode(&self.event)
    }
}

impl std::fmt::Debug for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Published").field(&self.event).finish()
    }
}

/// Why a subscription ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Ended {
    /// The member's queue overflowed (in events or in bytes): it was not
    /// reading fast enough.
    #[error("too slow: the outbound queue overflowed")]
    TooSlow,
    /// The hub closed the subscription (shutting down).
    #[error("closed")]
    Closed,
    /// The room was closed (by a control message, from any process).
    #[error("the room was closed")]
    RoomClosed,
}

/// News about the hub's link to other processes, told to a member beside its room's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// Events from members connected elsewhere (other processes) may not
    /// arrive: the link between processes is down.
    Degraded,
    /// The link is back; events sent while it was down may be missing.
    Restored,
}

/// What became of an event offered to one member's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    Queued,
    /// The queue was full: the member is now cut off; forget it.
    Overflowed,
    /// The member has gone away; forget it.
    Gone,
}

/// One member's queue. A plain `Mutex<VecDeque>` with the one reader's
/// waker inside it rather than a channel: measured on the reference server,
/// ~20 % less CPU per delivery and ~2 KiB less per connection than a tokio
/// mpsc, a writer can take a whole batch under one lock, and the offer that
/// queues an event finds the waker under the lock it already holds (a
/// `Notify` cost a second lock per delivery in the profile). The lock is
/// never held across an await.
struct Shared {
    state: Mutex<QueueState>,
    capacity: Capacity,
}

/// How much a member's queue may hold before the member is cut off: both
/// bounds apply. Events alone bound a stuck member only to `events` times the
/// largest message (4 096 × 16 KiB = 64 MiB); bytes alone would let a join
/// storm's small notices pile up by the hundred thousand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    pub events: usize,
    /// Summed [`Published::bytes`] of the queued events.
    pub bytes: usize,
}

#[derive(Default)]
struct QueueState {
    events: VecDeque<Arc<Published>>,
    /// The queued events' [`Published::bytes`], summed.
    bytes: usize,
    /// The member's task, waiting for an event.
    waiting: Option<Waker>,
    /// The latest notice not yet taken (a newer one replaces it).
    notice: Option<Notice>,
    /// Why the subscription ended, before anything still queued.
    ended: Option<Ended>,
    /// The hub dropped its end.
    inbox_gone: bool,
    /// The member dropped its end.
    subscription_gone: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl QueueState {
    /// Frees whatever is queued: nobody will take it.
    fn let_go(&mut self) {
        self.events = VecDeque::new();
        self.bytes = 0;
    }
}

/// A bounded queue for one member: the hub holds the [`Inbox`], the member
/// the [`Subscription`]. Offering never waits, so no member can stall a room.
/// At least one event is always let in, however large.
pub fn queue(capacity: Capacity) -> (Inbox, Subscription) {
    let capacity = Capacity { events: capacity.events.max(1), bytes: capacity.bytes };
    let shared = Arc::new(Shared { state: Mutex::default(), capacity });
    let inbox = Inbox { shared: Arc::clone(&shared) };
    let subscription = Subscription { shared, on_drop: None, recent: Vec::new(), dropped: None };
    (inbox, subscription)
}

/// The hub's end of a member's queue.
pub struct Inbox {
    shared: Arc<Shared>,
}

impl Inbox {
    /// Queues the event without waiting. On overflow (in events or bytes)
    /// the member is marked too slow and will be told so at once, before
    /// anything still queued, which is let go.
    pub fn offer(&self, event: &Arc<Published>) -> Offer {
        let (offer, waiting) = {
            let mut state = self.shared.lock();
            if state.subscription_gone {
                return Offer::Gone;
            }
            let bytes = state.bytes + event.bytes();
            let capacity = self.shared.capacity;
            if state.events.len() >= capacity.events || (bytes > capacity.bytes && !state.events.is_empty()) {
                state.ended = Some(Ended::TooSlow);
                state.let_go();
                (Offer::Overflowed, state.waiting.take())
            } else {
                state.events.push_back(Arc::clone(event));
                state.bytes = bytes;
                (Offer::Queued, state.waiting.take())
            }
        };
        // Woken outside the lock, so the member's task never finds it held.
        if let Some(waker) = waiting {
            waker.wake();
        }
        offer
    }

    /// Tells the member `notice` at its next wake-up, before queued events.
    pub fn notify(&self, notice: Notice) {
        let waiting = {
            let mut state = self.shared.lock();
            state.notice = Some(notice);
            state.waiting.take()
        };
        if let Some(waker) = waiting {
            waker.wake();
        }
    }

    /// Ends the subscription for `reason`, at once, before anything still queued.
    pub fn end(&self, reason: Ended) {
        let waiting = {
            let mut state = self.shared.lock();
            state.ended.get_or_insert(reason);
            state.let_go();
            state.waiting.take()
        };
        if let Some(waker) = waiting {
            waker.wake();
        }
    }

    /// Whether the member has dropped its subscription.
    pub fn is_gone(&self) -> bool {
        self.shared.lock().subscription_gone
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let waiting = {
            let mut state = self.shared.lock();
            state.inbox_gone = true;
            state.waiting.take()
        };
        if let Some(waker) = waiting {
            waker.wake();
        }
    }
}

/// A member's end of its queue: the room's events, in order. Dropping it
/// leaves the room.
pub struct Subscription {
    shared: Arc<Shared>,
    on_drop: Option<Box<dyn FnOnce() + Send + Sync>>,
    recent: Vec<Arc<Published>>,
    /// The newest event the room had let go of before `recent`, if any.
    dropped: Option<crate::domain::EventId>,
}

impl Subscription {
    /// Runs `leave` when the subscription is dropped: how an adapter forgets
    /// the member at once rather than at its next publish. A hook set before
    /// runs first, so an adapter wrapping another keeps the inner one's.
    pub fn on_drop(mut self, leave: impl FnOnce() + Send + Sync + 'static) -> Self {
        let before = self.on_drop.take();
        self.on_drop = Some(Box::new(move || {
            if let Some(before) = before {
                before();
            }
            leave();
        }));
        self
    }

    /// Hands the member the room's recent events, oldest first: the ones
    /// published just before its first live event, taken atomically with
    /// joining so there is neither a gap nor an overlap.
    /// `dropped` is the event just before them that the room no longer
    /// keeps (if it let any go): whoever tops the recent events up from
    /// elsewhere can tell whether it reached them without a gap.
    pub fn with_recent(mut self, recent: Vec<Arc<Published>>, dropped: Option<crate::domain::EventId>) -> Self {
        self.recent = recent;
        self.dropped = dropped;
        self
    }

    /// Starts the subscription with `notice` waiting to be taken.
    pub fn with_notice(self, notice: Notice) -> Self {
        self.shared.lock().notice = Some(notice);
        self
    }

    /// The notice waiting for the member, if any (each is taken once).
    pub fn take_notice(&mut self) -> Option<Notice> {
        self.shared.lock().notice.take()
    }

    /// The recent events handed over at subscription (empty after the first call).
    pub fn take_recent(&mut self) -> Vec<Arc<Published>> {
        std::mem::take(&mut self.recent)
    }

    /// The newest event the room had let go of before the recent ones, if
    /// it had let any go ([`Self::with_recent`]).
    pub fn dropped_before_recent(&self) -> Option<crate::domain::EventId> {
        self.dropped
    }

    /// Ready, with why, once the subscription has been ended ahead of its
    /// queue (cut off, room closed); takes no event. For a member's task
    /// busy writing to a client that does not read: it learns at once that
    /// it is cut off, instead of when the write gives up.
    pub fn poll_ended(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Ended> {
        let mut state = self.shared.lock();
        if let Some(reason) = state.ended {
            return Poll::Ready(reason);
        }
        if !state.waiting.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            state.waiting = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// The next event, waiting for one (notices are left for [`Self::take_notice`]).
    pub async fn next(&mut self) -> Result<Arc<Published>, Ended> {
        let mut batch = Vec::with_capacity(1);
        loop {
            std::future::poll_fn(|cx| self.poll_events(cx, &mut batch, 1, false)).await?;
            if let Some(event) = batch.pop() {
                return Ok(event);
            }
        }
    }

    /// Waits for at least one event or a notice, then moves up to `max`
    /// queued events into `batch` under one lock: a writer sends them all
    /// and flushes once. With a notice waiting ([`Self::take_notice`]) it
    /// returns at once, perhaps with no events.
    pub async fn next_batch(&mut self, batch: &mut Vec<Arc<Published>>, max: usize) -> Result<(), Ended> {
        std::future::poll_fn(|cx| self.poll_batch(cx, batch, max)).await
    }

    /// [`Subscription::next_batch`] for a hand-written poll loop (one that
    /// keeps no future per source, to keep a connection small).
    pub fn poll_batch(
        &mut self,
        cx: &mut std::task::Context<'_>,
        batch: &mut Vec<Arc<Published>>,
        max: usize,
    ) -> Poll<Result<(), Ended>> {
        self.poll_events(cx, batch, max, true)
    }

    fn poll_events(
        &mut self,
        cx: &mut std::task::Context<'_>,
        batch: &mut Vec<Arc<Published>>,
        max: usize,
        notices: bool,
    ) -> Poll<Result<(), Ended>> {
        let mut state = self.shared.lock();
        ended(&state)?;
        if state.events.is_empty() {
            if notices && state.notice.is_some() {
                return Poll::Ready(Ok(()));
            }
            if !state.waiting.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                state.waiting = Some(cx.waker().clone());
            }
            return Poll::Pending;
        }
        let take = state.events.len().min(max.max(1));
        let taken = batch.len();
        batch.extend(state.events.drain(..take));
        let bytes: usize = batch[taken..].iter().map(|event| event.bytes()).sum();
        state.bytes = state.bytes.saturating_sub(bytes);
        shrink_after_burst(&mut state.events);
        Poll::Ready(Ok(()))
    }

    /// The next event if one is queued now.
    pub fn try_next(&mut self) -> Result<Option<Arc<Published>>, Ended> {
        let mut state = self.shared.lock();
        ended(&state)?;
        let event = state.events.pop_front();
        if let Some(event) = &event {
            state.bytes = state.bytes.saturating_sub(event.bytes());
        }
        if event.is_none() && state.inbox_gone {
            return Err(Ended::Closed);
        }
        Ok(event)
    }
}

/// An ending (too slow, room closed) wins over anything still queued; a
/// dropped inbox ends the subscription once its queue is drained.
fn ended(state: &QueueState) -> Result<(), Ended> {
    if let Some(reason) = state.ended {
        return Err(reason);
    }
    if state.inbox_gone && state.events.is_empty() {
        return Err(Ended::Closed);
    }
    Ok(())
}

/// A burst grows the queue's buffer; give it back once drained, so an idle
/// member costs little however busy its room once was.
fn shrink_after_burst(events: &mut VecDeque<Arc<Published>>) {
    if events.is_empty() && events.capacity() > 64 {
        *events = VecDeque::new();
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        {
            let mut state = self.shared.lock();
            state.subscription_gone = true;
            state.let_go();
            state.waiting = None;
        }
        if let Some(leave) = self.on_drop.take() {
            leave();
        }
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").field("ended", &self.shared.lock().ended).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;
    use crate::domain::{DisplayName, EventId, EventKind, MessageText, RoomName};

    fn event(text: &str) -> ChatEvent {
        ChatEvent {
            id: EventId::from_u128(1),
            room: RoomName::parse("general").unwrap(),
            user: DisplayName::parse("ann").unwrap(),
            guest: false,
            kind: EventKind::Message,
            text: MessageText::parse(text).unwrap(),
            timestamp: time::macros::datetime!(2026-11-26 12:00 UTC),
        }
    }

    /// A queue bounded in events alone.
    fn events(events: usize) -> Capacity {
        Capacity { events, bytes: usize::MAX }
    }

    #[test]
    fn drop_hooks_all_run_the_inner_adapters_first() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let (_inbox, subscription) = queue(events(4));
        let (inner, outer) = (Arc::clone(&order), Arc::clone(&order));
        let subscription = subscription
            .on_drop(move || inner.lock().unwrap().push("inner"))
            .on_drop(move || outer.lock().unwrap().push("outer"));
        assert!(order.lock().unwrap().is_empty());
        drop(subscription);
        assert_eq!(*order.lock().unwrap(), ["inner", "outer"]);
    }

    static ENCODES: AtomicUsize = AtomicUsize::new(0);
    struct Shout;
    impl Encoding for Shout {
        type Frame = Arc<str>;
        fn encode(event: &ChatEvent) -> Arc<str> {
            ENCODES.fetch_add(1, Ordering::SeqCst);
            event.text.as_str().to_uppercase().into()
        }
    }
    struct Length;
    impl Encoding for Length {
        type Frame = usize;
        fn encode(event: &ChatEvent) -> usize {
            event.text.as_str().len()
        }
    }

    #[test]
    fn each_encoding_runs_once_per_event_and_encodings_do_not_mix() {
        let published = Published::new(event("hello"));
        let before = ENCODES.load(Ordering::SeqCst);
        assert_eq!(&*published.encoded::<Shout>(), "HELLO");
        assert_eq!(published.encoded::<Length>(), 5);
        assert_eq!(&*published.encoded::<Shout>(), "HELLO");
        assert_eq!(ENCODES.load(Ordering::SeqCst) - before, 1);
    }

    #[tokio::test]
    async fn an_overflowing_queue_reports_too_slow_before_what_it_still_holds() {
        let (inbox, mut subscription) = queue(events(2));
        let published = Published::new(event("x"));
        assert_eq!(inbox.offer(&published), Offer::Queued);
        assert_eq!(inbox.offer(&published), Offer::Queued);
        assert_eq!(inbox.offer(&published), Offer::Overflowed);
        assert_eq!(subscription.next().await.map(|_| ()), Err(Ended::TooSlow));
        assert_eq!(subscription.try_next().map(|_| ()), Err(Ended::TooSlow));
    }

    #[tokio::test]
    async fn a_queue_overflows_by_bytes_well_before_its_event_count() {
        let big = Published::new(event(&"x".repeat(1000)));
        let capacity = Capacity { events: 1000, bytes: 3 * big.bytes() };
        let (inbox, mut subscription) = queue(capacity);
        for _ in 0..3 {
            assert_eq!(inbox.offer(&big), Offer::Queued);
        }
        // What the member takes no longer counts against it.
        assert_eq!(subscription.try_next().map(|e| e.is_some()), Ok(true));
        assert_eq!(inbox.offer(&big), Offer::Queued);
        assert_eq!(inbox.offer(&big), Offer::Overflowed, "4 events, over 3 events' worth of bytes");
        assert_eq!(subscription.next().await.map(|_| ()), Err(Ended::TooSlow));
    }

    #[test]
    fn one_event_larger_than_the_byte_bound_still_gets_through_alone() {
        let big = Published::new(event(&"x".repeat(1000)));
        let (inbox, mut subscription) = queue(Capacity { events: 8, bytes: 10 });
        assert_eq!(inbox.offer(&big), Offer::Queued);
        assert_eq!(subscription.try_next().map(|e| e.is_some()), Ok(true));
        assert_eq!(inbox.offer(&big), Offer::Queued);
        assert_eq!(inbox.offer(&big), Offer::Overflowed);
    }

    #[test]
    fn an_events_weight_is_its_text_and_names_plus_a_fixed_overhead() {
        let published = Published::new(event("hello"));
        assert_eq!(published.bytes(), EVENT_OVERHEAD + "hello".len() + "ann".len() + "general".len());
    }

    #[tokio::test]
    async fn a_member_cut_off_is_told_without_taking_an_event() {
        let (inbox, mut subscription) = queue(events(1));
        let published = Published::new(event("x"));
        inbox.offer(&published);
        let ended = tokio::spawn(async move { std::future::poll_fn(|cx| subscription.poll_ended(cx)).await });
        tokio::task::yield_now().await;
        assert_eq!(inbox.offer(&published), Offer::Overflowed);
        assert_eq!(ended.await.unwrap(), Ended::TooSlow);
    }

    #[tokio::test]
    async fn a_queue_whose_inbox_is_dropped_ends_closed_after_draining() {
        let (inbox, mut subscription) = queue(events(4));
        inbox.offer(&Published::new(event("last")));
        drop(inbox);
        assert_eq!(subscription.next().await.map(|e| e.event().text.clone()), Ok(MessageText::parse("last").unwrap()));
        assert_eq!(subscription.next().await.map(|_| ()), Err(Ended::Closed));
    }

    #[tokio::test]
    async fn a_batch_takes_what_is_queued_up_to_the_maximum_in_order() {
        let (inbox, mut subscription) = queue(events(16));
        for n in 0..5 {
            inbox.offer(&Published::new(event(&format!("m{n}"))));
        }
        let mut batch = Vec::new();
        subscription.next_batch(&mut batch, 3).await.unwrap();
        let texts: Vec<_> = batch.iter().map(|e| e.event().text.as_str().to_owned()).collect();
        assert_eq!(texts, ["m0", "m1", "m2"]);
        batch.clear();
        subscription.next_batch(&mut batch, 3).await.unwrap();
        assert_eq!(batch.len(), 2);
    }

    #[tokio::test]
    async fn a_waiting_member_wakes_when_an_event_is_offered_from_another_task() {
        let (inbox, mut subscription) = queue(events(4));
        let waiting = tokio::spawn(async move { subscription.next().await.map(|e| e.event().text.clone()) });
        tokio::task::yield_now().await;
        inbox.offer(&Published::new(event("wake")));
        assert_eq!(waiting.await.unwrap(), Ok(MessageText::parse("wake").unwrap()));
    }

    #[tokio::test]
    async fn a_notice_wakes_the_member_before_its_events_and_is_taken_once() {
        let (inbox, mut subscription) = queue(events(4));
        let waiting = tokio::spawn(async move {
            let mut batch = Vec::new();
            subscription.next_batch(&mut batch, 4).await.map(|()| (subscription, batch.len()))
        });
        tokio::task::yield_now().await;
        inbox.notify(Notice::Degraded);
        let (mut subscription, events) = waiting.await.unwrap().unwrap();
        assert_eq!(events, 0, "woken by the notice alone");
        inbox.offer(&Published::new(event("after")));
        inbox.notify(Notice::Restored);
        assert_eq!(subscription.take_notice(), Some(Notice::Restored), "the newest notice wins");
        assert_eq!(subscription.take_notice(), None);
        assert_eq!(subscription.next().await.map(|e| e.event().text.clone()), Ok(MessageText::parse("after").unwrap()));
        let mut subscription = subscription.with_notice(Notice::Degraded);
        let mut batch = Vec::new();
        subscription.next_batch(&mut batch, 4).await.unwrap();
        assert!(batch.is_empty());
        assert_eq!(subscription.take_notice(), Some(Notice::Degraded), "a notice given at subscription");
    }

    #[tokio::test]
    async fn dropping_a_subscription_runs_its_leave_hook_and_the_inbox_sees_it_gone() {
        let (inbox, subscription) = queue(events(4));
        let left = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&left);
        let subscription = subscription.on_drop(move || flag.store(true, Ordering::SeqCst));
        assert!(!inbox.is_gone());
        drop(subscription);
        assert!(left.load(Ordering::SeqCst));
        assert!(inbox.is_gone());
        assert_eq!(inbox.offer(&Published::new(event("late"))), Offer::Gone);
    }
}
