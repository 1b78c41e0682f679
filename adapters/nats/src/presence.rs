//! `NatsPresence`: who is in which room, wherever connected, in a
//! JetStream key-value bucket of the deployment's.
//!
//! Each process writes only its own keys. The server here (2.9) has no
//! per-key expiry, so a process is alive while its heartbeat is recent: a
//! key it puts every [`NatsSettings::heartbeat`], whose time the server
//! stamps. Readers compare that stamp with the server's clock too (the
//! newest write in the bucket), so no two machines' clocks are compared. A
//! process that dies drops out of every listing within
//! [`NatsSettings::expiry`], with nobody cleaning up after it; its member
//! lists stay until one survivor claims them (creating a claim key, which
//! the server lets only one process do) and deletes them. The bucket's
//! `max_age` (`expiry + grace`) removes whatever nobody claimed, so each
//! process puts its lists again before half the grace has passed.
//!
//! Keys, for a process `O` (hex digits and `-`) and a room `R` (its name
//! in hex: room names may hold anything):
//! - `proc.O.alive` — O's heartbeat;
//! - `proc.O.room.R` — O's connections in R and the names connected (JSON:
//!   `names` every one, `guests` those of them connected as guests — a
//!   field older processes ignore, reading guests as registered, and whose
//!   absence in what they wrote reads as no guests);
//! - `claim.O` — who claimed O's members after it died.
//!
//! Every process keeps a mirror of the bucket, fed by a watch, and reads
//! listings there; a read first asks the server how far the bucket has
//! been written and waits until the mirror has caught up, so a join that
//! was written before the read began is in it.
//!
//! Owns this process's counts of who is here ([`Here`]) and their writing;
//! knows the bucket's keys; nothing of events or sockets.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use async_trait::async_trait;
use futures_util::StreamExt;
use parley_ports::domain::{DisplayName, Present, RoomName};
use parley_ports::{Presence, PresenceError, Written};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::{Notify, watch};

use crate::{ANSWER_WITHIN, MAX_BACKOFF, NatsSettings, connect, hex, origin};

/// How long a listing waits for the server and the mirror.
const READ_PATIENCE: Duration = Duration::from_secs(1);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub struct NatsPresence {
    state: Arc<State>,
    mirror: Arc<Mirror>,
    store: kv::Store,
    origin: String,
    settings: NatsSettings,
    /// The number of the last change written to the bucket.
    written: watch::Receiver<u64>,
    /// Dropped with the presence: the writer and the watch stop (and write
    /// nothing more, as a process that died would).
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

impl NatsPresence {
    /// Connects to NATS at `url` (with JetStream), makes the deployment's
    /// bucket if it is missing, and starts writing this process's presence.
    ///
    /// # Errors
    /// [`PresenceError::Unavailable`] if NATS or JetStream cannot be reached now.
    pub async fn connect(url: &str, settings: NatsSettings) -> Result<Self, PresenceError> {
        let client = connect(url, &settings, |_| {}).await.map_err(|error| PresenceError::Unavailable(error.into()))?;
        let jetstream = jetstream::new(client.clone());
        let store = bucket(&jetstream, &settings).await.map_err(PresenceError::Unavailable)?;
        let origin = origin();
        let state = Arc::new(State {
            here: Mutex::default(),
            changed: Notify::new(),
            steady_since: Mutex::new(Some(Instant::now())),
        });
        let mirror = Arc::new(Mirror::default());
        let (written_to, written) = watch::channel(0);
        let (stop, stopped) = watch::channel(());
        let writer =
            Writer { client, jetstream, store: store.clone(), origin: origin.clone(), settings: settings.clone() };
        tokio::spawn(writer.run(Arc::clone(&state), written_to, stopped.clone()));
        tokio::spawn(Arc::clone(&mirror).follow(store.clone(), stopped));
        Ok(Self { state, mirror, store, origin, settings, written, _stop: stop })
    }

    /// Waits until the mirror holds everything written before now; returns
    /// the server's time (of the newest write in the bucket).
    async fn sync(&self) -> Result<OffsetDateTime, PresenceError> {
        let deadline = tokio::time::Instant::now() + READ_PATIENCE;
        let mut stream = self.store.stream.clone();
        let info = match tokio::time::timeout_at(deadline, stream.info()).await {
            Ok(Ok(info)) => info.state.clone(),
            Ok(Err(error)) => return Err(PresenceError::Unavailable(error.into())),
            Err(_) => return Err(unavailable("NATS did not answer within 1 s")),
        };
        if info.messages > 0 {
            let mut reached = self.mirror.reached.subscribe();
            let caught_up = tokio::time::timeout_at(deadline, reached.wait_for(|at| *at >= info.last_sequence));
            if !matches!(caught_up.await, Ok(Ok(_))) {
                return Err(unavailable("the presence watch is behind the bucket"));
            }
        }
        Ok(info.last_timestamp)
    }

    /// The other processes alive at `now`, by the server's clock.
    fn alive<'a>(&self, view: &'a View, now: OffsetDateTime) -> impl Iterator<Item = &'a Process> {
        let (origin, expiry) = (self.origin.clone(), self.settings.expiry);
        view.processes.iter().filter(move |(o, p)| **o != origin && p.alive_at(now, expiry)).map(|(_, p)| p)
    }
}

fn unavailable(why: &str) -> PresenceError {
    PresenceError::Unavailable(why.to_owned().into())
}

#[async_trait]
impl Presence for NatsPresence {
    fn joined(&self, room: &RoomName, member: &Present) -> Written {
        let change = self.state.here().join(room, member);
        self.state.changed.notify_one();
        let mut written = self.written.clone();
        let patience = self.settings.join_patience;
        Box::pin(async move {
            match tokio::time::timeout(patience, written.wait_for(|written| *written >= change)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(_)) => Err(unavailable("the presence writer has stopped")),
                Err(_) => Err(unavailable("NATS is slow to write presence; still trying")),
            }
        })
    }

    fn left(&self, room: &RoomName, member: &Present) {
        self.state.here().leave(room, member);
        self.state.changed.notify_one();
    }

    async fn members_elsewhere(&self, room: &RoomName) -> Result<Vec<Present>, PresenceError> {
        let now = self.sync().await?;
        let view = self.mirror.view();
        let now = now.max(view.newest);
        let key = hex(room.as_str());
        Ok(self.alive(&view, now).filter_map(|p| p.rooms.get(&key)).flat_map(|r| r.names.iter().cloned()).collect())
    }

    async fn rooms_elsewhere(&self) -> Result<Vec<(RoomName, usize)>, PresenceError> {
        let now = self.sync().await?;
        let view = self.mirror.view();
        let now = now.max(view.newest);
        Ok(self.alive(&view, now).flat_map(|p| p.rooms.values()).map(|r| (r.room.clone(), r.connections)).collect())
    }

    async fn claim_departed(&self) -> Result<Vec<(RoomName, Present)>, PresenceError> {
        // Just after NATS came back, every process's heartbeat may be old:
        // give the living time to beat again.
        if self.state.steady_for().is_none_or(|steady| steady < self.settings.claim_after) {
            return Ok(Vec::new());
        }
        let now = self.sync().await?;
        let dead: Vec<(String, Vec<RoomList>)> = {
            let mut view = self.mirror.view();
            let now = now.max(view.newest);
            // Forgotten by the server (max_age) long since, silently: the
            // mirror forgets them too.
            let forgotten = self.settings.expiry + self.settings.grace;
            view.processes.retain(|_, p| p.alive.is_none_or(|at| now - at < forgotten));
            view.processes
                .iter()
                .filter(|(o, p)| **o != self.origin && p.alive.is_some() && !p.alive_at(now, self.settings.expiry))
                .map(|(o, p)| (o.clone(), p.rooms.values().cloned().collect()))
                .collect()
        };
        let mut departed = Vec::new();
        for (dead, rooms) in dead {
            // No timeout around the claim: cut short, a claimed process's
            // members would never be told of (each request has its own).
            match self.store.create(Keys::claim(&dead), self.origin.clone().into()).await {
                Ok(_) => {}
                Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => continue,
                Err(error) => return Err(PresenceError::Unavailable(error.into())),
            }
            let before = departed.len();
            for room in &rooms {
                departed.extend(room.names.iter().map(|name| (room.room.clone(), name.clone())));
            }
            tracing::warn!(
                process = dead,
                members = departed.len() - before,
                "a Parley process died; telling its rooms"
            );
            // Its lists go; had this failed, the bucket's max_age takes them.
            let mut keys: Vec<String> = rooms.iter().map(|room| Keys::room(&dead, &room.room)).collect();
            keys.push(Keys::alive(&dead));
            for key in keys {
                if let Err(error) = self.store.purge(&key).await {
                    tracing::warn!(%error, key, "could not delete a departed process's presence");
                }
            }
        }
        Ok(departed)
    }
}

/// The deployment's bucket, made if missing: one value per key, kept at
/// most `expiry + grace` after its last write.
///
/// Made as the stream a key-value bucket is (the layout every NATS client
/// reads), not with `create_key_value`: that first asks for the account's
/// limits in a form servers before 2.10 do not answer.
async fn bucket(jetstream: &jetstream::Context, settings: &NatsSettings) -> Result<kv::Store, BoxError> {
    let name = format!("{}-presence", settings.name());
    if let Ok(store) = jetstream.get_key_value(&name).await {
        return Ok(store);
    }
    let config = jetstream::stream::Config {
        name: format!("KV_{name}"),
        description: Some("Parley: who is in which room, on each process".to_owned()),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_age: settings.expiry + settings.grace,
        max_message_size: -1,
        storage: jetstream::stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        num_replicas: 1,
        discard: jetstream::stream::DiscardPolicy::New,
        ..Default::default()
    };
    if let Err(error) = jetstream.create_stream(config).await {
        // Another process may have made it meanwhile.
        return jetstream.get_key_value(&name).await.map_err(|_| error.into());
    }
    Ok(jetstream.get_key_value(&name).await?)
}

/// The bucket's keys.
struct Keys;

impl Keys {
    fn alive(origin: &str) -> String {
        format!("proc.{origin}.alive")
    }

    fn room(origin: &str, room: &RoomName) -> String {
        format!("proc.{origin}.room.{}", hex(room.as_str()))
    }

    fn claim(origin: &str) -> String {
        format!("claim.{origin}")
    }
}

/// A process's connections and names in one room.
#[derive(Debug, Clone, PartialEq)]
struct RoomList {
    room: RoomName,
    connections: usize,
    names: Vec<Present>,
}

/// A room's list as the bucket holds it: JSON, for an operator's eyes.
/// Borrowed to write, owned to read.
#[derive(Serialize, Deserialize)]
struct ListWire<S> {
    room: S,
    connections: usize,
    names: Vec<S>,
    /// Names in `names` connected as guests, once per guest entry there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    guests: Vec<S>,
}

impl RoomList {
    fn to_json(&self) -> Vec<u8> {
        let names = self.names.iter().map(|p| p.name.as_str()).collect();
        let guests = self.names.iter().filter(|p| p.guest).map(|p| p.name.as_str()).collect();
        let wire = ListWire { room: self.room.as_str(), connections: self.connections, names, guests };
        // Strings and an integer only: serialising cannot fail.
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// `None` for anything else (another version's, a stranger's).
    fn from_json(bytes: &[u8]) -> Option<Self> {
        let wire: ListWire<String> = serde_json::from_slice(bytes).ok()?;
        // Each entry of `guests` makes one entry of its name in `names` a
        // guest's: a name there both ways is listed twice, once a guest.
        let mut guests = wire.guests;
        let mut names: Vec<Present> = wire
            .names
            .into_iter()
            .filter_map(|name| {
                let guest = guests.iter().position(|g| *g == name).map(|at| guests.swap_remove(at)).is_some();
                Some(Present::new(DisplayName::parse(name).ok()?, guest))
            })
            .collect();
        // In the order `Here` lists them, registered before guest.
        names.sort_unstable();
        Some(Self { room: RoomName::parse(wire.room).ok()?, connections: wire.connections, names })
    }
}

/// The bucket as the watch has delivered it, by process.
#[derive(Debug, Clone)]
struct View {
    processes: HashMap<String, Process>,
    /// The server's time of the newest write delivered.
    newest: OffsetDateTime,
}

impl Default for View {
    fn default() -> Self {
        Self { processes: HashMap::new(), newest: OffsetDateTime::UNIX_EPOCH }
    }
}

#[derive(Debug, Clone, Default)]
struct Process {
    /// When its heartbeat was last written, by the server's clock.
    alive: Option<OffsetDateTime>,
    /// By room, in hex.
    rooms: HashMap<String, RoomList>,
}

impl Process {
    fn alive_at(&self, now: OffsetDateTime, expiry: Duration) -> bool {
        self.alive.is_some_and(|at| now - at < expiry)
    }
}

impl View {
    /// Takes in one entry of the bucket; anything it does not know is ignored.
    fn apply(&mut self, key: &str, value: &[u8], created: OffsetDateTime, put: bool) {
        self.newest = self.newest.max(created);
        let mut parts = key.splitn(4, '.');
        let (Some("proc"), Some(origin), Some(what)) = (parts.next(), parts.next(), parts.next()) else { return };
        let room = parts.next();
        if !put {
            if let Some(process) = self.processes.get_mut(origin) {
                match (what, room) {
                    ("alive", None) => process.alive = None,
                    ("room", Some(room)) => drop(process.rooms.remove(room)),
                    _ => {}
                }
                if process.alive.is_none() && process.rooms.is_empty() {
                    self.processes.remove(origin);
                }
            }
            return;
        }
        match (what, room) {
            ("alive", None) => self.processes.entry(origin.to_owned()).or_default().alive = Some(created),
            ("room", Some(room)) => {
                if let Some(list) = RoomList::from_json(value) {
                    self.processes.entry(origin.to_owned()).or_default().rooms.insert(room.to_owned(), list);
                }
            }
            _ => {}
        }
    }
}

/// The bucket's mirror, and how far into the bucket's stream it has read.
struct Mirror {
    view: Mutex<View>,
    reached: watch::Sender<u64>,
}

impl Default for Mirror {
    fn default() -> Self {
        Self { view: Mutex::default(), reached: watch::channel(0).0 }
    }
}

impl Mirror {
    /// The view, locked: read it without waiting on anything.
    fn view(&self) -> MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Watches the whole bucket (the newest value of each key, then every
    /// change), again from the start whenever the watch fails.
    async fn follow(self: Arc<Self>, store: kv::Store, mut stop: watch::Receiver<()>) {
        let mut backoff = Duration::from_millis(50);
        loop {
            match store.watch_with_history(">").await {
                Ok(mut entries) => {
                    *self.view() = View::default();
                    self.reached.send_replace(0);
                    loop {
                        let entry = tokio::select! {
                            entry = entries.next() => entry,
                            _ = stop.changed() => return,
                        };
                        match entry {
                            Some(Ok(entry)) => {
                                backoff = Duration::from_millis(50);
                                let put = entry.operation == kv::Operation::Put;
                                self.view().apply(&entry.key, &entry.value, entry.created, put);
                                self.reached.send_replace(entry.revision);
                            }
                            Some(Err(error)) => {
                                tracing::warn!(%error, "the NATS presence watch failed; watching again");
                                break;
                            }
                            None => break,
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, "could not watch the NATS presence bucket; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// This process's rooms: the connections in each, by name.
#[derive(Default)]
struct Here {
    rooms: HashMap<RoomName, Room>,
    /// Rooms changed since the last write.
    dirty: HashSet<RoomName>,
    /// Changes so far: a join waits until its number has been written.
    changes: u64,
}

#[derive(Default)]
struct Room {
    connections: usize,
    /// A name joined as a guest and by its account is two entries.
    names: BTreeMap<Present, usize>,
}

impl Here {
    /// A connection of `name` joined `room`. Returns the change's number,
    /// which the writer says it has written.
    fn join(&mut self, room: &RoomName, name: &Present) -> u64 {
        let entry = self.rooms.entry(room.clone()).or_default();
        entry.connections += 1;
        *entry.names.entry(name.clone()).or_insert(0) += 1;
        self.dirty.insert(room.clone());
        self.changes += 1;
        self.changes
    }

    /// A connection of `name` left `room`: the name goes with its last connection.
    fn leave(&mut self, room: &RoomName, name: &Present) {
        let Some(entry) = self.rooms.get_mut(room) else { return };
        entry.connections = entry.connections.saturating_sub(1);
        if let Some(count) = entry.names.get_mut(name) {
            *count -= 1;
            if *count == 0 {
                entry.names.remove(name);
            }
        }
        if entry.connections == 0 {
            self.rooms.remove(room);
        }
        self.dirty.insert(room.clone());
        self.changes += 1;
    }

    /// What the bucket should hold for `room` now: `None` once it is empty here.
    fn list(&self, room: &RoomName) -> Option<RoomList> {
        let entry = self.rooms.get(room)?;
        Some(RoomList {
            room: room.clone(),
            connections: entry.connections,
            names: entry.names.keys().cloned().collect(),
        })
    }
}

/// Writes this process's presence: every change soon after it happens, the
/// heartbeat, each room's list again before the bucket would forget it,
/// and everything again after a failed write or a new connection (the
/// server may have lost the bucket). Publishes the number of the last
/// change written, so a join can wait until others can see it.
struct Writer {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    store: kv::Store,
    origin: String,
    settings: NatsSettings,
}

/// A write to the bucket: a key's value, or its removal.
enum Write {
    Put(String, Vec<u8>),
    Delete(String),
}

impl Writer {
    async fn run(mut self, state: Arc<State>, written: watch::Sender<u64>, mut stop: watch::Receiver<()>) {
        let mut beat = tokio::time::interval(self.settings.heartbeat);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Every room's list is put again before the bucket's max_age would
        // take it, with half the grace to spare for a dead process's claim.
        let renew = self.settings.grace / 2;
        let mut put_at: HashMap<RoomName, Instant> = HashMap::new();
        // Everything at first: that is what says this process is alive.
        let mut whole = true;
        let mut connects = 0;
        let mut failing = false;
        let mut backoff = Duration::from_millis(50);
        loop {
            let heartbeat = tokio::select! {
                _ = state.changed.notified() => false,
                _ = beat.tick() => true,
                _ = stop.changed() => return,
            };
            let now_connects = self.client.statistics().connects.load(std::sync::atomic::Ordering::Acquire);
            whole |= now_connects != connects;
            connects = now_connects;
            if failing {
                // The bucket itself may be gone (a server that lost its storage).
                match bucket(&self.jetstream, &self.settings).await {
                    Ok(store) => self.store = store,
                    Err(error) => tracing::debug!(%error, "the NATS presence bucket is not there yet"),
                }
            }
            let (writes, taken, changes) = {
                let mut here = state.here();
                let taken = std::mem::take(&mut here.dirty);
                let mut rooms: HashSet<RoomName> = taken.clone();
                if whole {
                    rooms.extend(here.rooms.keys().cloned());
                } else if heartbeat {
                    let stale =
                        here.rooms.keys().filter(|room| put_at.get(*room).is_none_or(|at| at.elapsed() >= renew));
                    rooms.extend(stale.cloned());
                }
                let mut writes: Vec<(Option<RoomName>, Write)> = Vec::with_capacity(rooms.len() + 1);
                if whole || heartbeat {
                    writes.push((None, Write::Put(Keys::alive(&self.origin), b"1".to_vec())));
                }
                for room in rooms {
                    let key = Keys::room(&self.origin, &room);
                    let write = match here.list(&room) {
                        Some(list) => Write::Put(key, list.to_json()),
                        None => Write::Delete(key),
                    };
                    writes.push((Some(room), write));
                }
                (writes, taken, here.changes)
            };
            let result = tokio::time::timeout(ANSWER_WITHIN, self.write(&writes)).await;
            match result {
                Ok(Ok(())) => {
                    whole = false;
                    failing = false;
                    backoff = Duration::from_millis(50);
                    for (room, write) in writes {
                        match (room, write) {
                            (Some(room), Write::Put(..)) => drop(put_at.insert(room, Instant::now())),
                            (Some(room), Write::Delete(_)) => drop(put_at.remove(&room)),
                            (None, _) => {}
                        }
                    }
                    state.steady(true);
                    written.send_replace(changes);
                }
                failed => {
                    let error: BoxError = match failed {
                        Ok(Err(error)) => error,
                        _ => "NATS did not answer in time".into(),
                    };
                    tracing::warn!(%error, "could not write presence to NATS; retrying");
                    state.steady(false);
                    state.here().dirty.extend(taken);
                    whole = true;
                    failing = true;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.settings.heartbeat);
                    state.changed.notify_one();
                }
            }
        }
    }

    /// Every write at once.
    async fn write(&self, writes: &[(Option<RoomName>, Write)]) -> Result<(), BoxError> {
        let each = writes.iter().map(|(_, write)| async move {
            match write {
                Write::Put(key, value) => {
                    self.store.put(key, value.clone().into()).await.map(drop).map_err(BoxError::from)
                }
                Write::Delete(key) => self.store.delete(key).await.map_err(BoxError::from),
            }
        });
        futures_util::future::try_join_all(each).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use parley_ports::testkit::presence::PresenceBackend;

    use super::*;
    use crate::testing::{deployment, shared_nats};

    struct Backend {
        url: String,
        deployment: String,
    }

    #[async_trait]
    impl PresenceBackend for Backend {
        async fn instance(&self) -> Arc<dyn Presence> {
            let settings = NatsSettings::quick(&self.deployment);
            Arc::new(NatsPresence::connect(&self.url, settings).await.unwrap_or_else(|e| panic!("{e}")))
        }
    }

    parley_ports::presence_contract!(async {
        Some(Backend { url: shared_nats()?, deployment: deployment("presence") })
    });

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).unwrap()
    }

    fn name(name: &str) -> Present {
        Present::new(DisplayName::parse(name).unwrap(), false)
    }

    fn guest(name: &str) -> Present {
        Present::new(DisplayName::parse(name).unwrap(), true)
    }

    #[test]
    fn guests_are_listed_apart_and_a_list_without_them_reads_as_registered() {
        let list = RoomList { room: room("r"), connections: 3, names: vec![name("ann"), guest("ann"), guest("gus")] };
        assert_eq!(RoomList::from_json(&list.to_json()), Some(list));
        let older = br#"{"room":"r","connections":1,"names":["ann"]}"#;
        assert_eq!(
            RoomList::from_json(older).map(|l| l.names),
            Some(vec![name("ann")]),
            "as an older process wrote it"
        );
        let plain = RoomList { room: room("r"), connections: 1, names: vec![name("ann")] };
        assert_eq!(plain.to_json(), older.to_vec(), "unchanged without guests");
    }

    #[test]
    fn a_name_is_here_until_its_last_connection_leaves() {
        let mut here = Here::default();
        here.join(&room("r"), &name("ann"));
        here.join(&room("r"), &name("ann"));
        here.join(&room("r"), &name("bob"));
        here.leave(&room("r"), &name("ann"));
        let list = here.list(&room("r")).unwrap();
        assert_eq!((list.connections, list.names), (2, vec![name("ann"), name("bob")]), "one tab still open");
        here.leave(&room("r"), &name("ann"));
        here.leave(&room("r"), &name("bob"));
        assert!(here.list(&room("r")).is_none());
        assert!(here.rooms.is_empty());
    }

    #[test]
    fn the_view_follows_puts_and_deletions_and_ignores_strangers() {
        let mut view = View::default();
        let at = OffsetDateTime::UNIX_EPOCH;
        let list = RoomList { room: room("a.b"), connections: 1, names: vec![name("ann")] };
        let json = list.to_json();
        assert_eq!(RoomList::from_json(&json).as_ref(), Some(&list));
        view.apply(&Keys::alive("o1"), b"1", at, true);
        view.apply(&Keys::room("o1", &room("a.b")), &json, at, true);
        view.apply("something.else", b"", at, true);
        view.apply(&Keys::room("o2", &room("a.b")), b"not json", at, true);
        assert_eq!(view.processes["o1"].rooms[&hex("a.b")].names, [name("ann")]);
        assert!(!view.processes.contains_key("o2"));
        view.apply(&Keys::room("o1", &room("a.b")), b"", at, false);
        assert!(view.processes["o1"].rooms.is_empty());
        view.apply(&Keys::alive("o1"), b"", at, false);
        assert!(view.processes.is_empty(), "purged: gone");
    }

    #[test]
    fn a_process_is_alive_while_its_heartbeat_is_recent_by_the_servers_clock() {
        let beat = OffsetDateTime::UNIX_EPOCH;
        let process = Process { alive: Some(beat), rooms: HashMap::new() };
        let expiry = Duration::from_secs(8);
        assert!(process.alive_at(beat + Duration::from_secs(7), expiry));
        assert!(!process.alive_at(beat + Duration::from_secs(8), expiry));
        assert!(!Process::default().alive_at(beat, expiry), "no heartbeat: not alive");
    }
}
