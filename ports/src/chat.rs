//! `Chat`: rooms. Joining adds a member to the room ([`Rooms`]) and tells
//! the room; the greeting says who is there and what was said before (or, on
//! resume, what the member missed); posting stamps a message and fans it out;
//! leaving tells those who remain. Every event also goes to the chat log, off
//! the hot path.
//!
//! Knows rooms and members; knows nothing of sockets, wire formats or which
//! broker or log is wired in.

use std::sync::Arc;

use time::OffsetDateTime;

use crate::broker::BrokerError;
use crate::chat_log::{ChatLog, ChatLogError, SearchQuery};
use crate::chat_recorder::ChatRecorder;
use crate::delivery::{Published, Subscription};
use crate::domain::{ChatEvent, DisplayName, EventId, EventIds, EventKind, MessageText, Present, RoomName};
use crate::hub::TooManyRooms;
use crate::presence::PresenceError;
use crate::rooms::Rooms;
use crate::{BoxError, Clock};

/// The most events a history or search call returns, whatever the client asks for.
pub const MAX_PAGE: u32 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// The broker, presence or the chat log cannot be reached; the client may retry.
    #[error("chat unavailable: {0}")]
    Unavailable(#[source] BoxError),
    #[error("chat failed: {0}")]
    Failed(#[source] BoxError),
    /// As many rooms as allowed are open in this process; joining one of
    /// them still works, and a new one may open once another closes.
    #[error(transparent)]
    TooManyRooms(#[from] TooManyRooms),
}

impl From<BrokerError> for ChatError {
    fn from(error: BrokerError) -> Self {
        match error {
            BrokerError::Unavailable(cause) => ChatError::Unavailable(cause),
        }
    }
}

impl From<PresenceError> for ChatError {
    fn from(error: PresenceError) -> Self {
        match error {
            PresenceError::Unavailable(cause) => ChatError::Unavailable(cause),
        }
    }
}

impl From<ChatLogError> for ChatError {
    fn from(error: ChatLogError) -> Self {
        match error {
            ChatLogError::Unavailable(cause) => ChatError::Unavailable(cause),
            ChatLogError::Failed(cause) => ChatError::Failed(cause),
        }
    }
}

/// Someone in a room: what a connection holds between joining and leaving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    room: RoomName,
    user: DisplayName,
    guest: bool,
    joined: EventId,
}

impl Member {
    pub fn room(&self) -> &RoomName {
        &self.room
    }
    pub fn user(&self) -> &DisplayName {
        &self.user
    }
    /// Whether the member never proved its name (see [`ChatEvent::guest`]).
    pub fn guest(&self) -> bool {
        self.guest
    }
    /// The id of this member's join notice: everything the member sees live
    /// came at or after it, so history for the member ends before it.
    pub fn joined(&self) -> EventId {
        self.joined
    }
}

/// What a member is told on arriving, before anything live: who is in the
/// room, and what was said before.
#[derive(Debug)]
pub struct Greeting {
    /// Who is in the room now, or why the fan-out cannot say.
    pub members: Result<Vec<Present>, ChatError>,
    /// Events before the member's join notice, oldest first: the latest ones,
    /// or on resume those after the member's last one.
    pub events: Vec<ChatEvent>,
    /// Whether `events` run without a gap up to the member's join notice (on
    /// resume: from the member's last event). The latest events always do;
    /// a resume may not, and the member must then reload the history.
    pub complete: bool,
    /// Why the chat log could not be read when `events` needed it: they are
    /// then only the room's recent events, as far back as the fan-out keeps them.
    pub log_failure: Option<ChatError>,
}

/// The past part of a greeting.
struct Recap {
    events: Vec<ChatEvent>,
    complete: bool,
    log_failure: Option<ChatError>,
}

impl Recap {
    fn whole(events: Vec<ChatEvent>) -> Self {
        Self { events, complete: true, log_failure: None }
    }
}

pub struct Chat {
    rooms: Rooms,
    log: Arc<dyn ChatLog>,
    recorder: ChatRecorder,
    clock: Arc<dyn Clock>,
    ids: EventIds,
}

impl Chat {
    pub fn new(
        rooms: Rooms,
        log: Arc<dyn ChatLog>,
        recorder: ChatRecorder,
        clock: Arc<dyn Clock>,
        ids: EventIds,
    ) -> Self {
        Self { rooms, log, recorder, clock, ids }
    }

    /// Joins `user` to `room`: subscribes first, so the newcomer's own join
    /// notice is the first event it receives, then tells the room. `guest`:
    /// the connection did not authenticate as `user`; every event of the
    /// member says so.
    ///
    /// # Errors
    /// [`ChatError::Unavailable`] if the join notice cannot be sent to other
    /// processes (the member is in the room here: drop the subscription);
    /// [`ChatError::TooManyRooms`] if the room would be one too many here
    /// (nothing is told to anyone).
    pub async fn join(
        &self,
        room: RoomName,
        user: DisplayName,
        guest: bool,
    ) -> Result<(Member, Subscription), ChatError> {
        let subscription = self.rooms.join(&room, &Present::new(user.clone(), guest)).await?;
        let mut member = Member { room, user, guest, joined: EventId::from_u128(0) };
        member.joined = self.tell_room(&member, EventKind::Joined, MessageText::default()).await?.event().id;
        Ok((member, subscription))
    }

    /// Greets a member who has just joined: who is here, then the last
    /// `history` events (at most [`MAX_PAGE`]) or, with `since`, what came
    /// after that event. The subscription's recent events come first; the chat
    /// log supplies what they do not reach. A log that cannot be read is
    /// reported in the greeting, never passed off as an empty past.
    pub async fn welcome(
        &self,
        member: &Member,
        subscription: &mut Subscription,
        since: Option<EventId>,
        history: usize,
    ) -> Greeting {
        let members = self.members(member.room()).await;
        let recent: Vec<ChatEvent> = subscription.take_recent().iter().map(|p| p.event().clone()).collect();
        let dropped = subscription.dropped_before_recent();
        let Recap { events, complete, log_failure } = match since {
            Some(since) => self.resume(member, recent, since).await,
            None => self.latest(member, recent, dropped, history).await,
        };
        Greeting { members, events, complete, log_failure }
    }

    /// Says `text` in the member's room; everyone in it, the sender included,
    /// receives the returned event.
    pub async fn post(&self, member: &Member, text: MessageText) -> Result<Arc<Published>, ChatError> {
        self.tell_room(member, EventKind::Message, text).await
    }

    /// Tells those who remain that the member left. Drop the member's
    /// subscription first: the leaver is not sent its own notice.
    pub async fn leave(&self, member: Member) -> Result<(), ChatError> {
        self.tell_room(&member, EventKind::Left, MessageText::default()).await.map(drop)
    }

    /// Tells each room of the members whose process died ([`Rooms::departed`]):
    /// a `left` event each, as if they had closed their connections. Returns
    /// how many were told of.
    pub async fn announce_departures(&self) -> Result<usize, ChatError> {
        let departed = self.rooms.departed().await?;
        for (room, gone) in &departed {
            // Presence keeps whether each was a guest, so the leave reads as
            // their join did.
            let member = Member {
                room: room.clone(),
                user: gone.name.clone(),
                guest: gone.guest,
                joined: EventId::from_u128(0),
            };
            self.tell_room(&member, EventKind::Left, MessageText::default()).await?;
        }
        Ok(departed.len())
    }

    /// Who is in the room now.
    pub async fn members(&self, room: &RoomName) -> Result<Vec<Present>, ChatError> {
        Ok(self.rooms.members(room).await)
    }

    /// Rooms with members now, with their connection counts.
    pub async fn rooms(&self) -> Result<Vec<(RoomName, usize)>, ChatError> {
        Ok(self.rooms.rooms().await)
    }

    /// Messages in a room containing any of the query's words; at most [`MAX_PAGE`].
    pub async fn search(&self, mut query: SearchQuery) -> Result<Vec<ChatEvent>, ChatError> {
        query.limit = query.limit.min(MAX_PAGE);
        Ok(self.log.search(&query).await?)
    }

    /// A room's events newest first, before the cursor if one is given.
    pub async fn history(
        &self,
        room: &RoomName,
        before: Option<EventId>,
        limit: u32,
    ) -> Result<Vec<ChatEvent>, ChatError> {
        Ok(self.log.history(room, before, limit.min(MAX_PAGE)).await?)
    }

    /// A room's events after `after`, oldest first: what a reconnecting client missed.
    async fn since(&self, room: &RoomName, after: EventId, limit: u32) -> Result<Vec<ChatEvent>, ChatError> {
        Ok(self.log.since(room, after, limit.min(MAX_PAGE)).await?)
    }

    /// Whether events cross between processes both ways now.
    pub async fn ping_fanout(&self) -> Result<(), ChatError> {
        Ok(self.rooms.ping().await?)
    }

    /// Events that may not have reached every other process since start.
    pub fn unrelayed(&self) -> u64 {
        self.rooms.unrelayed()
    }

    /// Whether the chat log answers now.
    pub async fn ping_log(&self) -> Result<(), ChatError> {
        Ok(self.log.ping().await?)
    }

    /// Events that could not be queued for the chat log since start.
    pub fn unlogged(&self) -> u64 {
        self.recorder.unlogged()
    }

    /// The last `wanted` events before the member joined, oldest first: the
    /// fan-out's recent ones, topped up from the chat log — if the log reaches
    /// `dropped`, the newest event the fan-out let go of before them. The log
    /// is written behind the room: one that has not got that far yet would
    /// leave a gap, so the recent events alone are given (fewer, but whole).
    async fn latest(
        &self,
        member: &Member,
        mut recent: Vec<ChatEvent>,
        dropped: Option<EventId>,
        wanted: usize,
    ) -> Recap {
        let wanted = wanted.min(MAX_PAGE as usize);
        if recent.len() >= wanted {
            return Recap::whole(recent.split_off(recent.len() - wanted));
        }
        let before = recent.first().map_or(member.joined(), |e| e.id);
        let missing = u32::try_from(wanted - recent.len()).unwrap_or(MAX_PAGE);
        match self.history(member.room(), Some(before), missing).await {
            Ok(older) if dropped.is_some_and(|dropped| older.first().is_none_or(|newest| newest.id < dropped)) => {
                tracing::debug!(room = %member.room(), "the chat log is behind the room; greeting with its recent events only");
                Recap::whole(recent)
            }
            Ok(mut older) => {
                older.reverse();
                older.extend(recent);
                Recap::whole(older)
            }
            // Fewer events than wanted, but still the ones just before the
            // join: no gap, so the greeting stays complete.
            Err(error) => Recap { events: recent, complete: true, log_failure: Some(error) },
        }
    }

    /// What came after `since`, oldest first, and whether that is all of it.
    async fn resume(&self, member: &Member, recent: Vec<ChatEvent>, since: EventId) -> Recap {
        if let Some(at) = recent.iter().position(|e| e.id == since) {
            return Recap::whole(recent[at + 1..].to_vec());
        }
        let (mut logged, log_failure) = match self.since(member.room(), since, MAX_PAGE).await {
            Ok(logged) => (logged, None),
            Err(error) => (Vec::new(), Some(error)),
        };
        logged.retain(|e| e.id < member.joined());
        // The log is written behind the room: it is known to be whole only where
        // it reaches the recent events (or there are none since). A log that
        // could not be read says nothing, so the member must reload.
        let complete = log_failure.is_none()
            && logged.last().is_some_and(|last| recent.first().is_none_or(|first| last.id >= first.id));
        let mut events = logged;
        for event in recent.into_iter().filter(|e| e.id > since) {
            if !events.iter().any(|e| e.id == event.id) {
                events.push(event);
            }
        }
        events.sort_by_key(|e| e.id);
        Recap { events, complete, log_failure }
    }

    async fn tell_room(
        &self,
        member: &Member,
        kind: EventKind,
        text: MessageText,
    ) -> Result<Arc<Published>, ChatError> {
        let timestamp = self.now();
        let event = ChatEvent {
            id: self.ids.next(timestamp),
            room: member.room.clone(),
            user: member.user.clone(),
            guest: member.guest,
            kind,
            text,
            timestamp,
        };
        let published = Published::new(event);
        self.rooms.publish(Arc::clone(&published)).await;
        self.recorder.record(published.event().clone());
        Ok(published)
    }

    /// Event times are kept to the millisecond: every chat log keeps them exactly so.
    fn now(&self) -> OffsetDateTime {
        let now = self.clock.now();
        now.replace_nanosecond(now.millisecond() as u32 * 1_000_000).unwrap_or(now)
    }
}

#[cfg(test)]
#[path = "chat_tests.rs"]
mod tests;
