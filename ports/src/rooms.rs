//! `Rooms`: the rooms every process shares. This process's members are the
//! [`Hub`]'s, served at once whatever the other processes are doing; the
//! [`Broker`] (if any) carries events to and from the other processes, and
//! [`Presence`] (if any) lists who is in a room wherever connected.
//!
//! Knows how the three fit together; nothing of what the broker or presence
//! run on.

use std::sync::Arc;

use crate::broker::{Broker, BrokerError, Control, Incoming};
use crate::delivery::{Published, Subscription};
use crate::domain::{Present, RoomName};
use crate::hub::{Bounds, Hub, TooManyRooms};
use crate::presence::{Presence, PresenceError};

pub struct Rooms {
    hub: Arc<Hub>,
    broker: Option<Arc<dyn Broker>>,
    presence: Option<Arc<dyn Presence>>,
}

impl Rooms {
    /// Rooms within this process alone, holding at most `bounds` here
    /// ([`Hub::new`]).
    pub fn local(bounds: impl Into<Bounds>) -> Self {
        Self { hub: Arc::new(Hub::new(bounds, None)), broker: None, presence: None }
    }

    /// Rooms shared with every process on the same broker and presence,
    /// holding at most `bounds` here ([`Hub::new`]).
    pub fn shared(bounds: impl Into<Bounds>, broker: Arc<dyn Broker>, presence: Option<Arc<dyn Presence>>) -> Self {
        let hub = Arc::new(Hub::new(bounds, Some(Arc::clone(&broker))));
        let incoming: Arc<dyn Incoming> = Arc::clone(&hub) as Arc<dyn Incoming>;
        broker.start(Arc::downgrade(&incoming));
        Self { hub, broker: Some(broker), presence }
    }

    /// This process's hub.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Offers the event to every member of its room, here at once and
    /// through the broker elsewhere, waiting for none of them. The members
    /// here always have it; one the broker could not take is counted in
    /// [`Rooms::unrelayed`] (the broker logs it).
    pub async fn publish(&self, event: Arc<Published>) {
        self.hub.deliver(&event);
        if let Some(broker) = &self.broker
            && let Err(error) = broker.publish(&event).await
        {
            tracing::debug!(%error, "an event reached this process's members only");
        }
    }

    /// Joins `member` to the room: it receives every event published to the
    /// room, in any process, from when this returns until the subscription
    /// is dropped. With the link between processes working, this waits (the
    /// adapters bound how long) until the room is relayed here and the
    /// others list the member; without it, the room works here at once.
    ///
    /// # Errors
    /// [`TooManyRooms`] when the room is not open here and as many rooms as
    /// allowed are.
    pub async fn join(&self, room: &RoomName, member: &Present) -> Result<Subscription, TooManyRooms> {
        let joined = self.hub.join(room, member)?;
        let written = self.presence.as_ref().map(|presence| presence.joined(room, member));
        if !self.hub.degraded() {
            if let Some(relaying) = joined.relaying
                && let Err(error) = relaying.await
            {
                tracing::warn!(%error, room = room.as_str(), "the room may work in this process only for now");
            }
            if let Some(written) = written
                && let Err(error) = written.await
            {
                tracing::warn!(%error, room = room.as_str(), "other processes may not list this member yet");
            }
        }
        let mut subscription = joined.subscription;
        if let Some(presence) = &self.presence {
            let (presence, room, member) = (Arc::clone(presence), room.clone(), member.clone());
            subscription = subscription.on_drop(move || presence.left(&room, &member));
        }
        Ok(subscription)
    }

    /// Who is in the room, wherever connected: each name once, sorted (as
    /// registered if it is there both ways). When the other processes cannot
    /// be asked, this process's members (logged).
    pub async fn members(&self, room: &RoomName) -> Vec<Present> {
        let mut names = self.hub.members(room);
        if let Some(presence) = &self.presence {
            match presence.members_elsewhere(room).await {
                Ok(others) => names.extend(others),
                Err(error) => tracing::warn!(%error, "listing this process's members only"),
            }
        }
        crate::hub::once_per_name(&mut names);
        names
    }

    /// Rooms with members anywhere, and how many connections each has, by name.
    pub async fn rooms(&self) -> Vec<(RoomName, usize)> {
        let mut rooms = self.hub.rooms();
        if let Some(presence) = &self.presence {
            match presence.rooms_elsewhere().await {
                Ok(others) => rooms.extend(others),
                Err(error) => tracing::warn!(%error, "listing this process's rooms only"),
            }
        }
        rooms.sort();
        rooms.dedup_by(|later, first| {
            let same = later.0 == first.0;
            if same {
                first.1 += later.1;
            }
            same
        });
        rooms
    }

    /// Members connected through a process that has died since, and
    /// nowhere else now: each reported once, to one process across all.
    ///
    /// # Errors
    /// [`PresenceError::Unavailable`] when presence cannot be asked.
    pub async fn departed(&self) -> Result<Vec<(RoomName, Present)>, PresenceError> {
        let Some(presence) = &self.presence else {
            return Ok(Vec::new());
        };
        let mut claimed = presence.claim_departed().await?;
        claimed.sort();
        claimed.dedup();
        let mut departed = Vec::with_capacity(claimed.len());
        let mut checked: Option<(RoomName, Vec<Present>)> = None;
        for (room, gone) in claimed {
            if checked.as_ref().is_none_or(|(r, _)| *r != room) {
                // Still here under that name (another tab, or already
                // reconnected): not gone.
                let here = self.members(&room).await;
                checked = Some((room.clone(), here));
            }
            // By name: whoever still holds it, guest or not, is the one
            // the room sees under it.
            if checked.as_ref().is_some_and(|(_, here)| here.iter().all(|p| p.name != gone.name)) {
                departed.push((room, gone));
            }
        }
        Ok(departed)
    }

    /// Sends `control` to every process, this one included.
    ///
    /// # Errors
    /// [`BrokerError::Unavailable`]: applied here, but not sent to the others.
    pub async fn control(&self, control: Control) -> Result<(), BrokerError> {
        self.hub.apply(&control);
        match &self.broker {
            Some(broker) => broker.control(&control).await,
            None => Ok(()),
        }
    }

    /// Whether events cross between processes both ways now (always, alone).
    ///
    /// # Errors
    /// [`BrokerError::Unavailable`] as the broker says.
    pub async fn ping(&self) -> Result<(), BrokerError> {
        match &self.broker {
            Some(broker) => broker.ping().await,
            None => Ok(()),
        }
    }

    /// Events that may not have reached every other process since start.
    pub fn unrelayed(&self) -> u64 {
        self.broker.as_ref().map_or(0, |broker| broker.unrelayed())
    }
}

#[cfg(test)]
#[path = "rooms_tests.rs"]
mod tests;
