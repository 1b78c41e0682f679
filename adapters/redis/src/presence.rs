//! Presence across processes: who is in which room, wherever connected.
//!
//! Each process writes only its own keys, and each of them expires unless
//! the process's heartbeat renews it: a process that dies takes its members
//! out of every listing within [`EXPIRY`], with nobody cleaning up after it.
//! Readers ask every live process's keys and add their own process's
//! members from memory (fresher than anything written). A dead process's
//! member lists outlive it by [`GRACE`], so that one survivor can claim
//! them ([`claim_departed`]) and tell the rooms those members left.
//!
//! Keys, for a deployment prefix `P` and a process `O`:
//! - `P:procs` — the processes that have written presence (readers prune the dead);
//! - `P:proc:O` — O is alive;
//! - `P:proc:O:rooms` — O's rooms, each with O's connections in it;
//! - `P:proc:O:members:ROOM` — the names connected to O in ROOM.
//!
//! Writes follow [`Dirty`]: which names and rooms changed since the last
//! write. The truth is read at write time, so a join storm costs one write
//! per name, and an outage holds nothing but the changed names.
//!
//! Knows Redis keys and this process's rooms; nothing of events or sockets.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use parley_ports::domain::{DisplayName, RoomName};
use redis::aio::ConnectionManager;
use tokio::sync::watch;

use crate::fanout::Shared;

/// How often a process renews its keys.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// How long a process counts as alive after its last heartbeat: its members
/// leave every listing this long after it dies. Four heartbeats, so one
/// slow one does not blink a process out.
pub const EXPIRY: Duration = Duration::from_secs(8);
/// How much longer a dead process's member lists are kept, to be claimed.
pub const GRACE: Duration = Duration::from_secs(60);

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
    pub(crate) rooms: HashMap<RoomName, Room>,
    dirty: Dirty,
    /// Changes so far: a join waits until its number has been written.
    changes: u64,
}

#[derive(Default)]
pub(crate) struct Room {
    pub(crate) connections: usize,
    names: HashMap<DisplayName, usize>,
}

/// What changed since the last write.
#[derive(Default)]
struct Dirty {
    names: HashMap<RoomName, HashSet<DisplayName>>,
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
    /// A connection of `name` joined `room`. Returns whether it is the
    /// room's first here, and the change's number (see [`written`]).
    pub(crate) fn join(&mut self, room: &RoomName, name: &DisplayName) -> (bool, u64) {
        let entry = self.rooms.entry(room.clone()).or_default();
        entry.connections += 1;
        let count = entry.names.entry(name.clone()).or_insert(0);
        *count += 1;
        let first_of_name = *count == 1;
        let first = entry.connections == 1;
        self.changed(room, first_of_name.then_some(name));
        (first, self.changes)
    }

    /// A connection of `name` left `room`. Returns whether it was the room's last here.
    pub(crate) fn leave(&mut self, room: &RoomName, name: &DisplayName) -> bool {
        let Some(entry) = self.rooms.get_mut(room) else { return false };
        entry.connections = entry.connections.saturating_sub(1);
        let mut last_of_name = false;
        if let Some(count) = entry.names.get_mut(name) {
            *count -= 1;
            if *count == 0 {
                entry.names.remove(name);
                last_of_name = true;
            }
        }
        let last = entry.connections == 0;
        if last {
            self.rooms.remove(room);
        }
        self.changed(room, last_of_name.then_some(name));
        last
    }

    fn changed(&mut self, room: &RoomName, name: Option<&DisplayName>) {
        self.dirty.rooms.insert(room.clone());
        if let Some(name) = name {
            self.dirty.names.entry(room.clone()).or_default().insert(name.clone());
        }
        self.changes += 1;
    }

    fn has(&self, room: &RoomName, name: &DisplayName) -> bool {
        self.rooms.get(room).is_some_and(|entry| entry.names.contains_key(name))
    }
}

/// Writes this process's presence: every change soon after it happens, a
/// heartbeat that renews the keys, and everything again after Redis was
/// away (its keys may have expired meanwhile). Publishes the number of the
/// last change written, so a join can wait until others can see it.
pub(crate) async fn write_task(
    mut connection: ConnectionManager,
    keys: Keys,
    shared: Arc<Shared>,
    written: watch::Sender<u64>,
    mut stop: watch::Receiver<()>,
) {
    let mut beat = tokio::time::interval(HEARTBEAT);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Everything at first: that is what says this process is alive.
    let mut whole = true;
    let mut backoff = Duration::from_millis(50);
    loop {
        let heartbeat = tokio::select! {
            _ = shared.presence_changed.notified() => false,
            _ = beat.tick() => true,
            _ = stop.changed() => return,
        };
        let (pipe, taken, changes) = {
            let mut here = shared.here();
            let taken = std::mem::take(&mut here.dirty);
            let mut pipe = redis::pipe();
            if whole {
                everything(&mut pipe, &keys, &here);
            } else if heartbeat {
                renew(&mut pipe, &keys, &here);
            }
            changes_since(&mut pipe, &keys, &here, &taken);
            (pipe, taken, here.changes)
        };
        let result = if pipe.is_empty() { Ok(()) } else { pipe.query_async::<()>(&mut connection).await };
        match result {
            Ok(()) => {
                whole = false;
                backoff = Duration::from_millis(50);
                written.send_replace(changes);
            }
            Err(error) => {
                tracing::warn!(%error, "could not write presence to Redis; retrying");
                shared.here().dirty.merge(taken);
                whole = true;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(HEARTBEAT);
                shared.presence_changed.notify_one();
            }
        }
    }
}

fn expiry_ms() -> u64 {
    EXPIRY.as_millis() as u64
}

/// Member lists and room counts: kept past the alive key, for the claim.
fn lists_ms() -> u64 {
    (EXPIRY + GRACE).as_millis() as u64
}

/// The alive key and the process's entry in the list.
fn alive(pipe: &mut redis::Pipeline, keys: &Keys) {
    pipe.cmd("SET").arg(keys.alive(&keys.origin)).arg(1).arg("PX").arg(expiry_ms()).ignore();
    pipe.cmd("SADD").arg(keys.procs()).arg(&keys.origin).ignore();
}

/// Every key of this process's, given another [`EXPIRY`].
fn renew(pipe: &mut redis::Pipeline, keys: &Keys, here: &Here) {
    alive(pipe, keys);
    for room in here.rooms.keys() {
        pipe.cmd("PEXPIRE").arg(keys.members(&keys.origin, room.as_str())).arg(lists_ms()).ignore();
    }
    pipe.cmd("PEXPIRE").arg(keys.rooms(&keys.origin)).arg(lists_ms()).ignore();
}

/// Everything this process has, written again (its keys may have expired).
fn everything(pipe: &mut redis::Pipeline, keys: &Keys, here: &Here) {
    alive(pipe, keys);
    let rooms = keys.rooms(&keys.origin);
    pipe.cmd("DEL").arg(&rooms).ignore();
    for (room, entry) in &here.rooms {
        pipe.cmd("HSET").arg(&rooms).arg(room.as_str()).arg(entry.connections).ignore();
        let members = keys.members(&keys.origin, room.as_str());
        let names: Vec<&str> = entry.names.keys().map(DisplayName::as_str).collect();
        pipe.cmd("SADD").arg(&members).arg(names).ignore();
        pipe.cmd("PEXPIRE").arg(&members).arg(lists_ms()).ignore();
    }
    pipe.cmd("PEXPIRE").arg(&rooms).arg(lists_ms()).ignore();
}

/// What changed, as it is now: names that left are removed here.
fn changes_since(pipe: &mut redis::Pipeline, keys: &Keys, here: &Here, dirty: &Dirty) {
    for (room, names) in &dirty.names {
        let members = keys.members(&keys.origin, room.as_str());
        for name in names {
            let command = if here.has(room, name) { "SADD" } else { "SREM" };
            pipe.cmd(command).arg(&members).arg(name.as_str()).ignore();
        }
        pipe.cmd("PEXPIRE").arg(&members).arg(lists_ms()).ignore();
    }
    let rooms = keys.rooms(&keys.origin);
    for room in &dirty.rooms {
        match here.rooms.get(room) {
            Some(entry) => pipe.cmd("HSET").arg(&rooms).arg(room.as_str()).arg(entry.connections).ignore(),
            None => pipe.cmd("HDEL").arg(&rooms).arg(room.as_str()).ignore(),
        };
    }
    if !dirty.rooms.is_empty() {
        pipe.cmd("PEXPIRE").arg(&rooms).arg(lists_ms()).ignore();
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
pub(crate) async fn claim_departed(
    connection: &mut ConnectionManager,
    keys: &Keys,
) -> redis::RedisResult<Vec<(RoomName, DisplayName)>> {
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
            departed.extend(names.into_iter().filter_map(|name| Some((room.clone(), DisplayName::parse(name).ok()?))));
        }
        forget.query_async::<()>(connection).await?;
        tracing::warn!(process = origin, members = departed.len() - before, "a Parley process died; telling its rooms");
    }
    Ok(departed)
}

/// Who is in `room` on the other live processes.
pub(crate) async fn members_elsewhere(
    connection: &mut ConnectionManager,
    keys: &Keys,
    room: &RoomName,
) -> redis::RedisResult<Vec<DisplayName>> {
    let others = live(connection, keys).await?;
    if others.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for origin in &others {
        pipe.cmd("SMEMBERS").arg(keys.members(origin, room.as_str()));
    }
    let names: Vec<Vec<String>> = pipe.query_async(connection).await?;
    Ok(names.into_iter().flatten().filter_map(|name| DisplayName::parse(name).ok()).collect())
}

/// The other live processes' rooms, with their connections in each.
pub(crate) async fn rooms_elsewhere(
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
    use super::*;

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).unwrap()
    }

    fn name(name: &str) -> DisplayName {
        DisplayName::parse(name).unwrap()
    }

    #[test]
    fn a_name_is_here_until_its_last_connection_leaves() {
        let mut here = Here::default();
        assert!(here.join(&room("r"), &name("ann")).0, "the room's first connection");
        assert!(!here.join(&room("r"), &name("ann")).0);
        assert!(!here.leave(&room("r"), &name("ann")));
        assert!(here.has(&room("r"), &name("ann")), "one tab still open");
        assert!(here.leave(&room("r"), &name("ann")), "the room's last connection");
        assert!(!here.has(&room("r"), &name("ann")));
        assert!(here.rooms.is_empty());
    }

    #[test]
    fn changes_are_numbered_and_a_failed_write_keeps_them() {
        let mut here = Here::default();
        let (_, first) = here.join(&room("r"), &name("ann"));
        let (_, second) = here.join(&room("r"), &name("bob"));
        assert!(second > first);
        let taken = std::mem::take(&mut here.dirty);
        here.leave(&room("r"), &name("ann"));
        here.dirty.merge(taken);
        assert_eq!(here.dirty.names[&room("r")], [name("ann"), name("bob")].into_iter().collect());
    }
}
