//! The `Presence` contract: instances — processes — on one backend list each
//! other's members and rooms, and a dead one's members are claimed once.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::{DisplayName, Present, RoomName};
use crate::presence::Presence;

/// How long a rule waits for something that should happen.
const PATIENCE: Duration = Duration::from_secs(10);

/// The backend presence runs on, as the suite needs it. Its instances must
/// expire a dead one within a few seconds (short test timings).
#[async_trait]
pub trait PresenceBackend: Send + Sync {
    /// A new instance — as another process would connect — sharing this
    /// backend's presence with every other instance of it. Dropping every
    /// handle to it stops it without a word, as a killed process would.
    async fn instance(&self) -> Arc<dyn Presence>;
}

/// Runs every `Presence` rule against `$make`, an `async` expression giving
/// `Option<backend>` (`None` skips, printing why).
#[macro_export]
macro_rules! presence_contract {
    ($make:expr) => {
        $crate::__contract_tests!(presence, [
            a_written_join_is_listed_by_the_others_until_its_last_connection_leaves,
            rooms_elsewhere_counts_the_other_processes_connections,
            a_dead_processs_members_are_claimed_once_by_one_process,
        ], optional $make);
    };
}

fn room(name: &str) -> RoomName {
    RoomName::parse(name).unwrap()
}

fn name(name: &str) -> DisplayName {
    DisplayName::parse(name).unwrap()
}

fn registered(member: &str) -> Present {
    Present::new(name(member), false)
}

fn guest(member: &str) -> Present {
    Present::new(name(member), true)
}

async fn join(presence: &dyn Presence, room_name: &str, member: &str) {
    join_as(presence, room_name, registered(member)).await;
}

async fn join_as(presence: &dyn Presence, room_name: &str, member: Present) {
    presence.joined(&room(room_name), &member).await.unwrap_or_else(|e| panic!("joined: {e}"));
}

/// What `check` gives once it equals `wanted`, polled for [`PATIENCE`].
async fn eventually<T: PartialEq + std::fmt::Debug>(wanted: T, mut check: impl AsyncFnMut() -> T) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let now = check().await;
        if now == wanted {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "wanted {wanted:?}, still {now:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn sorted_members(presence: &dyn Presence, room_name: &str) -> Vec<Present> {
    let mut names = presence.members_elsewhere(&room(room_name)).await.unwrap_or_else(|e| panic!("members: {e}"));
    names.sort_unstable();
    names.dedup();
    names
}

/// Once its join resolves, a member is listed by the other processes (not
/// by its own), as a guest if it joined as one, and stays listed until its
/// last connection leaves.
pub async fn a_written_join_is_listed_by_the_others_until_its_last_connection_leaves(backend: &impl PresenceBackend) {
    let (a, b) = (backend.instance().await, backend.instance().await);
    join(&*b, "lobby", "bob").await;
    join(&*b, "lobby", "bob").await;
    join_as(&*b, "lobby", guest("gus")).await;
    join(&*a, "lobby", "ann").await;
    assert_eq!(
        sorted_members(&*a, "lobby").await,
        [registered("bob"), guest("gus")],
        "listed once joined, each name once, guests as guests"
    );
    assert_eq!(sorted_members(&*b, "lobby").await, [registered("ann")], "the others' members only");
    assert!(sorted_members(&*a, "elsewhere").await.is_empty());
    b.left(&room("lobby"), &registered("bob"));
    b.left(&room("lobby"), &guest("gus"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sorted_members(&*a, "lobby").await, [registered("bob")], "bob's other tab is still there");
    b.left(&room("lobby"), &registered("bob"));
    eventually(Vec::new(), async || sorted_members(&*a, "lobby").await).await;
}

/// `rooms_elsewhere` gives each other process's rooms with its connections.
pub async fn rooms_elsewhere_counts_the_other_processes_connections(backend: &impl PresenceBackend) {
    let (a, b, c) = (backend.instance().await, backend.instance().await, backend.instance().await);
    join(&*b, "lobby", "bob").await;
    join(&*b, "lobby", "bob").await;
    join(&*c, "lobby", "cyd").await;
    join(&*c, "zoo", "cyd").await;
    join(&*b, "gone-soon", "bob").await;
    b.left(&room("gone-soon"), &registered("bob"));
    let counted = async || {
        let mut rooms = a.rooms_elsewhere().await.unwrap_or_else(|e| panic!("rooms: {e}"));
        rooms.sort();
        rooms
    };
    eventually(vec![(room("lobby"), 1), (room("lobby"), 2), (room("zoo"), 1)], counted).await;
}

/// A process that dies without a word: after it expires, its members are
/// claimed by exactly one of the processes asking, once, guests as guests.
pub async fn a_dead_processs_members_are_claimed_once_by_one_process(backend: &impl PresenceBackend) {
    let (a, b) = (backend.instance().await, backend.instance().await);
    let doomed = backend.instance().await;
    join(&*doomed, "lobby", "bob").await;
    join(&*doomed, "lobby", "cyd").await;
    join(&*doomed, "zoo", "cyd").await;
    join_as(&*doomed, "zoo", guest("gus")).await;
    assert_eq!(sorted_members(&*a, "lobby").await, [registered("bob"), registered("cyd")]);
    drop(doomed);
    let mut claimed = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while claimed.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the dead process was never claimed");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (from_a, from_b) = tokio::join!(a.claim_departed(), b.claim_departed());
        let mut told = [from_a.unwrap_or_else(|e| panic!("{e}")), from_b.unwrap_or_else(|e| panic!("{e}"))];
        told.sort_by_key(Vec::len);
        assert!(told[0].is_empty() || told[1].is_empty(), "one claimant only: {told:?}");
        claimed = std::mem::take(&mut told[1]);
    }
    claimed.sort();
    assert_eq!(
        claimed,
        [
            (room("lobby"), registered("bob")),
            (room("lobby"), registered("cyd")),
            (room("zoo"), registered("cyd")),
            (room("zoo"), guest("gus")),
        ]
    );
    assert!(a.claim_departed().await.unwrap().is_empty(), "told once");
    assert!(b.claim_departed().await.unwrap().is_empty(), "told once");
    assert!(sorted_members(&*a, "lobby").await.is_empty(), "no longer listed");
}
