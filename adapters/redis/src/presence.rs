//! `RedisPresence`: who is in which room, wherever connected.
//!
//! Each process writes only its own keys, and each of them expires unless
//! the process's heartbeat renews it: a process that dies takes its members
//! out of every listing within [`RedisSettings::expiry`], with nobody
//! cleaning up after it. Readers ask every other live process's keys (the
//! hub knows its own process's members better). A dead process's member
//! lists outlive it by [`RedisSettings::grace`], so that one survivor can
//! claim them and tell the rooms those members left.
//!
//! Keys, for a deployment prefix `P` and a process `O`:
//! - `P:procs` — the processes that have written presence (readers prune the dead);
//! - `P:proc:O` — O is alive;
//! - `P:proc:O:rooms` — O's rooms, each with O's connections in it;
//! - `P:proc:O:members:ROOM` — the names connected to O in ROOM: a
//!   registered member's as it is, a guest's after [`GUEST_MARK`].
//!
//! The mark is in the stored value, not in the name: lists written before
//! guests were told apart hold bare names, which read as registered. A
//! process from before the mark cannot read a marked value as a name (a
//! name holds no control character) and leaves it out of its listings.
//!
//! Writes follow [`Dirty`]: which names and rooms changed since the last
//! write. The truth is read at write time, so a join storm costs one write
//! per name, and an outage holds nothing but the changed names.
//!
//! Owns this process's counts of who is here ([`Here`]) and their writing;
//! knows Redis keys; nothing of events or sockets.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parley_ports::domain::{DisplayName, Present, RoomName};
use parley_ports::{Presence, PresenceError, Written};
use redis::aio::ConnectionManager;
use tokio::sync::{Notify, watch};

use crate::{RedisSettings, connect, origin};

/// What a guest's name is stored after in a member list. A control
/// character, which no name holds, so no registered name can be read as a
/// guest's.
const GUEST_MARK: &str = "\u{1}guest:";

/// How `member` is stored in a member list.
fn stored(member: &Present) -> String {
    match member.guest {
        true => format!("{GUEST_MARK}{}", member.name.as_str()),
        false => member.name.as_str().to_owned(),
    }
}

/// A member list's value read back; `None` for one that is no name.
fn read_stored(value: String) -> Option<Present> {
    match value.strip_prefix(GUEST_MARK) {
        Some(name) => Some(Present::new(DisplayName::parse(name).ok()?, true)),
        None => Some(Present::new(DisplayName::parse(value).ok()?, false)),
    }
}

/// How long a listing waits for the other processes' part.
const READ_PATIENCE: Duration = Duration::from_secs(1);

pub struct RedisPresence {
    state: Arc<State>,
    connection: ConnectionManager,
    keys: Keys,
    settings: RedisSettings,
    /// The number of the last change written to Redis.
    written: watch::Receiver<u64>,
    /// Dropped with the presence: the writer stops (and writes nothing
    /// more, as a process that died would).
    _stop: watch::Sender<()>,
}

/// What the presence shares with its writer.
struct State {
    here: Mutex<Here>,
    changed: Notify,
    /// Since when writes have worked without a break; `None` while they fail.
    steady_since: Mutex<Option<Instant>>,
}

impl State {
    fn here(&self) -> MutexGuard<'_, Here> {
        self.here.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn steady(&self, up: bool) {
        let mut since = self.steady_since.lock().unwrap_or_else(PoisonError::into_inner);
        match (up, *since) {
            (true, None) => *since = Some(Instant::now()),
            (false, _) => *since = None,
            (true, Some(_)) => {}
        }
    }

    fn steady_for(&self) -> Option<Duration> {
        self.steady_since.lock().unwrap_or_else(PoisonError::into_inner).map(|since| since.elapsed())
    }
}

impl RedisPresence {
    /// Connects to Redis at `url` and starts writing this process's presence.
    ///
    /// # Errors
    /// [`PresenceError::Unavailable`] if Redis cannot be reached now.
    pub async fn connect(url: &str, settings: RedisSettings) -> Result<Self, PresenceError> {
        let (_, connection) = connect(url).await.map_err(|error| PresenceError::Unavailable(error.into()))?;
        let keys = Keys::new(&settings.deployment, &origin());
        let state = Arc::new(State {
            here: Mutex::default(),
            changed: Notify::new(),
            steady_since: Mutex::new(Some(Instant::now())),
        });
        let (written_to, written) = watch::channel(0);
        let (stop, stopped) = watch::channel(());
        let writer = Writer { connection: connection.clone(), keys: keys.clone(), settings: settings.clone() };
        tokio::spawn(writer.run(Arc::clone(&state), written_to, stopped));
        Ok(Self { state, connection, keys, settings, written, _stop: stop })
    }

    async fn read<T>(&self, read: impl Future<Output = redis::RedisResult<T>>) -> Result<T, PresenceError> {
        match tokio::time::timeout(READ_PATIENCE, read).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(PresenceError::Unavailable(error.into())),
            Err(_) => Err(PresenceError::Unavailable("Redis did not answer within 1 s".into())),
        }
    }
}

#[async_trait]
impl Presence for RedisPresence {
    fn joined(&self, room: &RoomName, member: &Present) -> Written {
        let change = self.state.here().join(room, member);
        self.state.changed.notify_one();
        let mut written = self.written.clone();
        let patience = self.settings.join_patience;
        Box::pin(async move {
            match tokio::time::timeout(patience, written.wait_for(|written| *written >= change)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(_)) => Err(PresenceError::Unavailable("the presence writer has stopped".into())),
                Err(_) => Err(PresenceError::Unavailable("Redis is slow to write presence; still trying".into())),
            }
        })
    }

    fn left(&self, room: &RoomName, member: &Present) {
        self.state.here().leave(room, member);
        self.state.changed.notify_one();
    }

    async fn members_elsewhere(&self, room: &RoomName) -> Result<Vec<Present>, PresenceError> {
        let mut connection = self.connection.clone();
        self.read(members_elsewhere(&mut connection, &self.keys, room)).await
    }

    async fn rooms_elsewhere(&self) -> Result<Vec<(RoomName, usize)>, PresenceError> {
        let mut connection = self.connection.clone();
        self.read(rooms_elsewhere(&mut connection, &self.keys)).await
    }

    async fn claim_departed(&self) -> Result<Vec<(RoomName, Present)>, PresenceError> {
        // Just after Redis came back, every process's alive key may have
        // lapsed in the outage: give the living time to say so again.
        if self.state.steady_for().is_none_or(|steady| steady < self.settings.claim_after) {
            return Ok(Vec::new());
        }
        // No timeout around the claim: cut short, a claimed process's members
        // would never be told of (each command has its own 2 s timeout).
        let mut connection = self.connection.clone();
        claim_departed(&mut connection, &self.keys).await.map_err(|error| PresenceError::Unavailable(error.into()))
    }
}

#[derive(Clone)]
pub(crate) struct Keys {
    pub(crate) prefix: String,
    pub(crate) origin: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str, origin: &str) -> Self {
        Self { prefix: prefix.to_owned(), origin: origin.to_owned() }
    }

    pub(crate) fn procs(&self) -> String {
        format!("{}:procs", self.prefix)
    }

    fn alive(&self, origin: &str) -> String {
        format!("{}:proc:{origin}", self.prefix)
    }

    pub(crate) fn rooms(&self, origin: &str) -> String {
        format!("{}:proc:{origin}:rooms", self.prefix)
    }

    pub(crate) fn members(&self, origin: &str, room: &str) -> String {
        format!("{}:proc:{origin}:members:{room}", self.prefix)
    }
}

/// This process's rooms: the connections in each, by name.
#[derive(Default)]
pub(crate) struct Here {
    rooms: HashMap<RoomName, Room>,
    dirty: Dirty,
    /// Changes so far: a join waits until its number has been written.
    changes: u64,
}

#[derive(Default)]
struct Room {
    connections: usize,
    /// A name joined as a guest and by its account is two entries.
    names: HashMap<Present, usize>,
}

/// What changed since the last write.
#[derive(Default)]
struct Dirty {
    names: HashMap<RoomName, HashSet<Present>>,
    rooms: HashSet<RoomName>,
}

impl Dirty {
    fn merge(&mut self, older: Dirty) {
        for (room, names) in older.names {
            self.names.entry(room).or_default().extend(names);
        }
        self.rooms.extend(older.rooms);
    }
}

impl Here {
    /// A connection of `name` joined `room`. Returns the change's number,
    /// which the writer says it has written.
    fn join(&mut self, room: &RoomName, name: &Present) -> u64 {
        let entry = self.rooms.entry(room.clone()).or_default();
        entry.connections += 1;
        let count = entry.names.entry(name.clone()).or_insert(0);
        *count += 1;
        let first_of_name = *count == 1;
        self.changed(room, first_of_name.then_some(name));
        self.changes
    }

    /// A connection of `name` left `room`.
    fn leave(&mut self, room: &RoomName, name: &Present) {
        let Some(entry) = self.rooms.get_mut(room) else { return };
        entry.connections = entry.connections.saturating_sub(1);
        let mut last_of_name = false;
        if let Some(count) = entry.names.get_mut(name) {
            *count -= 1;
            if *count == 0 {
                entry.names.remove(name);
                last_of_name = true;
            }
        }
        if entry.connections == 0 {
            self.rooms.remove(room);
        }
        self.changed(room, last_of_name.then_some(name));
    }

    fn changed(&mut self, room: &RoomName, name: Option<&Present>) {
        self.dirty.rooms.insert(room.clone());
        if let Some(name) = name {
            self.dirty.names.entry(room.clone()).or_default().insert(name.clone());
        }
        self.changes += 1;
    }

    fn has(&self, room: &RoomName, name: &Present) -> bool {
        self.rooms.get(room).is_some_and(|entry| entry.names.contains_key(name))
    }
}

/// Writes this process's presence: every change soon after it happens, a
/// heartbeat that renews the keys, and everything again after Redis was
/// away (its keys may have expired meanwhile). Publishes the number of the
/// last change written, so a join can wait until others can see it.
struct Writer {
    connection: ConnectionManager,
    keys: Keys,
    settings: RedisSettings,
}

impl Writer {
    async fn run(mut self, state: Arc<State>, written: watch::Sender<u64>, mut stop: watch::Receiver<()>) {
        let mut beat = tokio::time::interval(self.settings.heartbeat);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Everything at first: that is what says this process is alive.
        let mut whole = true;
        let mut backoff = Duration::from_millis(50);
        loop {
            let heartbeat = tokio::select! {
                _ = state.changed.notified() => false,
                _ = beat.tick() => true,
                _ = stop.changed() => return,
            };
            let (pipe, taken, changes) = {
                let mut here = state.here();
                let taken = std::mem::take(&mut here.dirty);
                let mut pipe = redis::pipe();
                if whole {
                    self.everything(&mut pipe, &here);
                } else if heartbeat {
                    self.renew(&mut pipe, &here);
                }
                self.changes_since(&mut pipe, &here, &taken);
                (pipe, taken, here.changes)
            };
            let result = if pipe.is_empty() { Ok(()) } else { pipe.query_async::<()>(&mut self.connection).await };
            match result {
                Ok(()) => {
                    whole = false;
                    backoff = Duration::from_millis(50);
                    state.steady(true);
                    written.send_replace(changes);
                }
                Err(error) => {
                    tracing::warn!(%error, "could not write presence to Redis; retrying");
                    state.steady(false);
                    state.here().dirty.merge(taken);
                    whole = true;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.settings.heartbeat);
                    state.changed.notify_one();
                }
            }
        }
    }

    fn expiry_ms(&self) -> u64 {
        self.settings.expiry.as_millis() as u64
    }

    /// Member lists and room counts: kept past the alive key, for the claim.
    fn lists_ms(&self) -> u64 {
        (self.settings.expiry + self.settings.grace).as_millis() as u64
    }

    /// The alive key and the process's entry in the list.
    fn alive(&self, pipe: &mut redis::Pipeline) {
        let keys = &self.keys;
        pipe.cmd("SET").arg(keys.alive(&keys.origin)).arg(1).arg("PX").arg(self.expiry_ms()).ignore();
        pipe.cmd("SADD").arg(keys.procs()).arg(&keys.origin).ignore();
    }

    /// Every key of this process's, given another expiry.
    fn renew(&self, pipe: &mut redis::Pipeline, here: &Here) {
        let keys = &self.keys;
        self.alive(pipe);
        for room in here.rooms.keys() {
            pipe.cmd("PEXPIRE").arg(keys.members(&keys.origin, room.as_str())).arg(self.lists_ms()).ignore();
        }
        pipe.cmd("PEXPIRE").arg(keys.rooms(&keys.origin)).arg(self.lists_ms()).ignore();
    }

    /// Everything this process has, written again (its keys may have expired).
    fn everything(&self, pipe: &mut redis::Pipeline, here: &Here) {
        let keys = &self.keys;
        self.alive(pipe);
        let rooms = keys.rooms(&keys.origin);
        pipe.cmd("DEL").arg(&rooms).ignore();
        for (room, entry) in &here.rooms {
            pipe.cmd("HSET").arg(&rooms).arg(room.as_str()).arg(entry.connections).ignore();
            let members = keys.members(&keys.origin, room.as_str());
            let names: Vec<String> = entry.names.keys().map(stored).collect();
            pipe.cmd("SADD").arg(&members).arg(names).ignore();
            pipe.cmd("PEXPIRE").arg(&members).arg(self.lists_ms()).ignore();
        }
        pipe.cmd("PEXPIRE").arg(&rooms).arg(self.lists_ms()).ignore();
    }

    /// What changed, as it is now: names that left are removed here.
    fn changes_since(&self, pipe: &mut redis::Pipeline, here: &Here, dirty: &Dirty) {
        let keys = &self.keys;
        for (room, names) in &dirty.names {
            let members = keys.members(&keys.origin, room.as_str());
            for name in names {
                let command = if here.has(room, name) { "SADD" } else { "SREM" };
                pipe.cmd(command).arg(&members).arg(stored(name)).ignore();
            }
            pipe.cmd("PEXPIRE").arg(&members).arg(self.lists_ms()).ignore();
        }
        let rooms = keys.rooms(&keys.origin);
        for room in &dirty.rooms {
            match here.rooms.get(room) {
                Some(entry) => pipe.cmd("HSET").arg(&rooms).arg(room.as_str()).arg(entry.connections).ignore(),
                None => pipe.cmd("HDEL").arg(&rooms).arg(room.as_str()).ignore(),
            };
        }
        if !dirty.rooms.is_empty() {
            pipe.cmd("PEXPIRE").arg(&rooms).arg(self.lists_ms()).ignore();
        }
    }
}

/// The other processes that have written presence, each with whether it is alive.
async fn others(connection: &mut ConnectionManager, keys: &Keys) -> redis::RedisResult<Vec<(String, bool)>> {
    let procs: Vec<String> = redis::cmd("SMEMBERS").arg(keys.procs()).query_async(connection).await?;
    let procs: Vec<String> = procs.into_iter().filter(|origin| *origin != keys.origin).collect();
    if procs.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for origin in &procs {
        pipe.cmd("EXISTS").arg(keys.alive(origin));
    }
    let alive: Vec<bool> = pipe.query_async(connection).await?;
    Ok(procs.into_iter().zip(alive).collect())
}

/// The other live processes.
async fn live(connection: &mut ConnectionManager, keys: &Keys) -> redis::RedisResult<Vec<String>> {
    Ok(others(connection, keys).await?.into_iter().filter_map(|(origin, alive)| alive.then_some(origin)).collect())
}

/// The members of every dead process this one is first to claim, by room.
/// Taking a process out of the list is the claim: Redis answers "removed"
/// to one caller only, so each departure is told once however many
/// processes look. The claimed lists are deleted.
async fn claim_departed(
    connection: &mut ConnectionManager,
    keys: &Keys,
) -> redis::RedisResult<Vec<(RoomName, Present)>> {
    let mut departed = Vec::new();
    for (origin, _) in others(connection, keys).await?.into_iter().filter(|(_, alive)| !alive) {
        let claimed: i64 = redis::cmd("SREM").arg(keys.procs()).arg(&origin).query_async(connection).await?;
        if claimed == 0 {
            continue;
        }
        let rooms: Vec<String> = redis::cmd("HKEYS").arg(keys.rooms(&origin)).query_async(connection).await?;
        let mut pipe = redis::pipe();
        for room in &rooms {
            pipe.cmd("SMEMBERS").arg(keys.members(&origin, room));
        }
        let names: Vec<Vec<String>> = if rooms.is_empty() { Vec::new() } else { pipe.query_async(connection).await? };
        let mut forget = redis::pipe();
        forget.cmd("DEL").arg(keys.rooms(&origin)).ignore();
        let before = departed.len();
        for (room, names) in rooms.into_iter().zip(names) {
            forget.cmd("DEL").arg(keys.members(&origin, &room)).ignore();
            let Ok(room) = RoomName::parse(room) else { continue };
            departed.extend(names.into_iter().filter_map(|name| Some((room.clone(), read_stored(name)?))));
        }
        forget.query_async::<()>(connection).await?;
        tracing::warn!(process = origin, members = departed.len() - before, "a Parley process died; telling its rooms");
    }
    Ok(departed)
}

/// Who is in `room` on the other live processes.
async fn members_elsewhere(
    connection: &mut ConnectionManager,
    keys: &Keys,
    room: &RoomName,
) -> redis::RedisResult<Vec<Present>> {
    let others = live(connection, keys).await?;
    if others.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for origin in &others {
        pipe.cmd("SMEMBERS").arg(keys.members(origin, room.as_str()));
    }
    let names: Vec<Vec<String>> = pipe.query_async(connection).await?;
    Ok(names.into_iter().flatten().filter_map(read_stored).collect())
}

/// The other live processes' rooms, with their connections in each.
async fn rooms_elsewhere(
    connection: &mut ConnectionManager,
    keys: &Keys,
) -> redis::RedisResult<Vec<(RoomName, usize)>> {
    let others = live(connection, keys).await?;
    if others.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for origin in &others {
        pipe.cmd("HGETALL").arg(keys.rooms(origin));
    }
    let rooms: Vec<HashMap<String, usize>> = pipe.query_async(connection).await?;
    Ok(rooms.into_iter().flatten().filter_map(|(room, count)| Some((RoomName::parse(room).ok()?, count))).collect())
}

#[cfg(test)]
mod tests {
    use parley_ports::testkit::presence::PresenceBackend;

    use super::*;
    use crate::testing::{deployment, shared_redis};

    struct Backend {
        url: String,
        deployment: String,
    }

    #[async_trait]
    impl PresenceBackend for Backend {
        async fn instance(&self) -> Arc<dyn Presence> {
            let settings = RedisSettings::quick(&self.deployment);
            Arc::new(RedisPresence::connect(&self.url, settings).await.unwrap_or_else(|e| panic!("{e}")))
        }
    }

    parley_ports::presence_contract!(async {
        Some(Backend { url: shared_redis()?, deployment: deployment("presence") })
    });

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).unwrap()
    }

    fn name(name: &str) -> Present {
        Present::new(DisplayName::parse(name).unwrap(), false)
    }

    #[test]
    fn a_guest_is_stored_marked_and_a_bare_name_reads_as_registered() {
        let gus = Present::new(DisplayName::parse("gus").unwrap(), true);
        assert_ne!(stored(&gus), "gus", "a guest is told apart in the list");
        assert_eq!(read_stored(stored(&gus)), Some(gus));
        assert_eq!(read_stored(stored(&name("ann"))), Some(name("ann")));
        assert_eq!(read_stored("ann".to_owned()), Some(name("ann")), "as an older process wrote it");
        assert_eq!(read_stored(format!("{GUEST_MARK}a\nb")), None, "no name: left out");
    }

    #[test]
    fn a_name_is_here_until_its_last_connection_leaves() {
        let mut here = Here::default();
        here.join(&room("r"), &name("ann"));
        here.join(&room("r"), &name("ann"));
        here.leave(&room("r"), &name("ann"));
        assert!(here.has(&room("r"), &name("ann")), "one tab still open");
        here.leave(&room("r"), &name("ann"));
        assert!(!here.has(&room("r"), &name("ann")));
        assert!(here.rooms.is_empty());
    }

    #[test]
    fn changes_are_numbered_and_a_failed_write_keeps_them() {
        let mut here = Here::default();
        let first = here.join(&room("r"), &name("ann"));
        let second = here.join(&room("r"), &name("bob"));
        assert!(second > first);
        let taken = std::mem::take(&mut here.dirty);
        here.leave(&room("r"), &name("ann"));
        here.dirty.merge(taken);
        assert_eq!(here.dirty.names[&room("r")], [name("ann"), name("bob")].into_iter().collect());
    }
}
