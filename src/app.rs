//! The composition root: picks one adapter per port from the configuration,
//! builds the services on them, and runs until told to stop. No business
//! rules live here.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use parley_auth::{Argon2Hasher, JwtIssuer};
use parley_memory::SystemClock;
use parley_nats::{NatsBroker, NatsPresence, NatsSettings};
use parley_ports::domain::EventIds;
use parley_ports::{Accounts, Broker, Chat, ChatLogWriter, ChatRecorder, Clock, Presence, Rooms};
use parley_redis::{RedisBroker, RedisPresence, RedisSettings};
use tokio::net::TcpListener;

use crate::config::{Across, Config, Limits};
use crate::storage::Storage;

/// How long a client may take to send a request body.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often rooms are told of members whose process died (with
/// `REDIS_URL` or `NATS_URL`; one process alone has no such members).
/// Presence expires a dead process within 8 s (10 s on NATS, whose
/// heartbeats are compared a heartbeat late), so its members' `left`
/// events come within about 12 s.
const DEPARTURES_EVERY: Duration = Duration::from_secs(2);
/// How long WebSocket connections get to close at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The wired services, and the chat-log writer that must run beside them.
pub struct App {
    pub accounts: Arc<Accounts>,
    pub chat: Arc<Chat>,
    writer: ChatLogWriter,
    server: parley_http::ServerConfig,
    body_limit: usize,
    ws: parley_ws::WsConfig,
}

impl App {
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        // rustls takes its process-wide crypto from crate features, and finds
        // none when a build enables two (goose's reqwest brings aws-lc-rs into
        // workspace builds): Redis over TLS then panicked. Ring is what every
        // TLS client here is built with; a provider installed already stays.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Before anything is waited for: a contradiction is said at once.
        let across = config.across().map_err(anyhow::Error::msg)?;
        if config.limits == Limits::Off {
            tracing::warn!("PARLEY_LIMITS=off: no per-client limit applies; never run so on the internet");
        }
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let storage = Storage::from_url(config.database_url.as_deref(), &config.data_dir)?;
        let (users, database_log) = storage.open(Duration::from_secs(config.db_wait_seconds)).await?;
        let log: Arc<dyn parley_ports::ChatLog> = match &config.elastic_url {
            None => {
                tracing::info!("users and the chat log are kept in {}", storage.describe());
                database_log
            }
            Some(url) => {
                let elastic = parley_elasticsearch::ElasticChatLog::new(parley_elasticsearch::ElasticConfig {
                    url: url.clone(),
                    api_key: config.elastic_api_key.clone(),
                    timeout: Duration::from_secs(config.elastic_timeout_seconds),
                    index: config.elastic_index.clone(),
                })?;
                tracing::info!(
                    "users are kept in {}; the chat log in Elasticsearch (index {})",
                    storage.describe(),
                    config.elastic_index
                );
                Arc::new(elastic)
            }
        };

        // Hashes run on the blocking pool, at most one core's worth fewer
        // than the machine has: a login storm then queues for its turn
        // instead of taking every core from the other requests (measured:
        // two per core let a storm raise `/users/me`'s p99 fivefold).
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let hashing = cores.saturating_sub(1).max(1);
        let hasher = Arc::new(Argon2Hasher::new(config.hash_cost(), hashing).context("ARGON2_* settings")?);
        let secret = jwt_secret(config.jwt_secret.as_deref(), &storage, &config.data_dir)?;
        let tokens =
            Arc::new(JwtIssuer::new(&secret, config.jwt_algorithm, config.token_lifetime(), Arc::clone(&clock)));
        let accounts = Arc::new(Accounts::new(users, hasher, tokens, Arc::clone(&clock)));

        let queue = parley_ports::hub::Bounds {
            queue: parley_ports::delivery::Capacity {
                events: config.member_queue as usize,
                bytes: usize::try_from(config.member_queue_bytes).unwrap_or(usize::MAX),
            },
            recent_bytes: usize::try_from(config.room_recent_bytes).unwrap_or(usize::MAX),
            rooms: config.max_rooms as usize,
            ..parley_ports::hub::Bounds::default()
        };
        let wait = Duration::from_secs(config.db_wait_seconds);
        let rooms = match across {
            Across::Alone => Rooms::local(queue),
            Across::Redis(url) => {
                let (broker, presence) = connect_across("Redis", "REDIS_URL", wait, async || {
                    let settings = RedisSettings::new("parley");
                    let broker = RedisBroker::connect(url, settings.clone()).await?;
                    Ok((Arc::new(broker) as _, Arc::new(RedisPresence::connect(url, settings).await?) as _))
                })
                .await?;
                Rooms::shared(queue, broker, Some(presence))
            }
            Across::Nats(url) => {
                let (broker, presence) = connect_across("NATS", "NATS_URL", wait, async || {
                    let settings = NatsSettings::new("parley");
                    let broker = NatsBroker::connect(url, settings.clone()).await?;
                    Ok((Arc::new(broker) as _, Arc::new(NatsPresence::connect(url, settings).await?) as _))
                })
                .await?;
                Rooms::shared(queue, broker, Some(presence))
            }
        };
        let log_bytes = usize::try_from(config.log_queue_bytes).unwrap_or(usize::MAX);
        let (recorder, writer) =
            ChatRecorder::bounded(Arc::clone(&log), Arc::clone(&clock), config.log_queue as usize, log_bytes);
        let seed = getrandom::u64().context("seeding event ids from the OS")?;
        let chat = Arc::new(Chat::new(rooms, log, recorder, clock, EventIds::new(seed)));
        let server = parley_http::ServerConfig {
            cors_origins: config.cors_origins.clone(),
            header_timeout: config.header_timeout,
            idle_timeout: config.idle_timeout,
            max_connections: config.max_tcp_connections(),
            per_address: config.per_address(),
            trusted_proxies: config.trusted_proxies.clone(),
            ..Default::default()
        };
        if config.max_connections as usize > server.max_connections {
            tracing::warn!(
                "PARLEY_MAX_CONNECTIONS ({}) exceeds the {} TCP connections this process may hold \
                 (PARLEY_MAX_TCP_CONNECTIONS, bounded by the file-descriptor limit): the latter is what applies",
                config.max_connections,
                server.max_connections
            );
        }
        let ws = parley_ws::WsConfig {
            auth_mode: config.auth_mode,
            max_message_bytes: config.ws_max_message as usize,
            max_connections: config.max_connections as usize,
            history_on_join: config.history_on_join as usize,
            messages_per_second: config.rate,
            message_burst: config.burst,
            ping_interval: Duration::from_secs(config.ping_seconds),
            write_timeout: Duration::from_secs(config.write_timeout_seconds),
            messages_per_address: parley_ws::Rate::new(config.address_rate, config.address_burst),
            messages_per_user: parley_ws::Rate::new(config.user_rate, config.user_burst),
            joins_per_address: parley_ws::Rate::new(config.join_rate, config.join_burst),
            per_client_limits: config.limits == Limits::On,
            reserve_usernames: config.reserve_usernames,
        };
        Ok(Self { accounts, chat, writer, server, body_limit: config.body_limit as usize, ws })
    }

    /// Serves on `listener` until `shutdown` resolves, then finishes the
    /// requests in flight and lets the chat-log writer write what it was given.
    pub async fn run_until_stopped(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let (stop_writer, writer_stopped) = tokio::sync::oneshot::channel::<()>();
        let writing = tokio::spawn(self.writer.run_until(async move { writer_stopped.await.unwrap_or(()) }));
        let departures = tokio::spawn(announce_departures(Arc::clone(&self.chat)));
        let rooms = parley_ws::WsRooms::new(Arc::clone(&self.chat), Arc::clone(&self.accounts), self.ws);
        let upgrade = {
            let rooms = Arc::clone(&rooms);
            Arc::new(move |request, client| {
                let rooms = Arc::clone(&rooms);
                Box::pin(rooms.handle(request, client))
                    as std::pin::Pin<Box<dyn Future<Output = parley_http::Reply> + Send>>
            })
        };
        let api = parley_http::Api {
            accounts: self.accounts,
            chat: self.chat,
            body_limit: self.body_limit,
            body_timeout: BODY_TIMEOUT,
            websockets: Some(upgrade),
        };
        match listener.local_addr() {
            Ok(address) => tracing::info!("Parley is listening on http://{address}"),
            Err(error) => tracing::warn!(%error, "Parley is listening on an address it cannot name"),
        }
        parley_http::serve(listener, api, self.server, shutdown).await;
        tracing::info!("shutting down");
        departures.abort();
        // Rooms first (close 1001 to everyone, their leave notices logged),
        // then the chat-log writer flushes.
        rooms.shutdown(SHUTDOWN_GRACE).await;
        // The writer flushes what it holds; whatever is recorded after this goes unlogged.
        let _ = stop_writer.send(());
        writing.await.context("chat-log writer")?;
        Ok(())
    }
}

/// Tells rooms, now and then, of members whose process died.
async fn announce_departures(chat: Arc<Chat>) {
    let mut every = tokio::time::interval(DEPARTURES_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(error) = chat.announce_departures().await {
            // Redis being down is said elsewhere, and loudly.
            tracing::debug!(%error, "could not look for departed members");
        }
    }
}

/// The configured signing secret; unset, one generated once and kept in the
/// data directory (so tokens survive restarts), or a random one per run when
/// nothing is kept on disk.
fn jwt_secret(configured: Option<&str>, storage: &Storage, data_dir: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = configured {
        if secret.len() < 32 {
            tracing::warn!("JWT_SECRET is shorter than 32 bytes; HS256 wants at least 256 bits of secret");
        }
        return Ok(secret.as_bytes().to_vec());
    }
    if matches!(storage, Storage::Memory | Storage::SqliteMemory) {
        tracing::warn!("JWT_SECRET is not set: using a random secret, so tokens will not survive a restart");
        return random_secret();
    }
    let path = data_dir.join("jwt-secret");
    match std::fs::read_to_string(&path) {
        Ok(kept) if kept.trim().len() >= 32 => return Ok(kept.trim().as_bytes().to_vec()),
        Ok(_) => bail!("{} holds no usable secret; delete it or set JWT_SECRET", path.display()),
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(error).with_context(|| format!("reading {}", path.display()));
        }
        Err(_) => {}
    }
    let secret: String = random_secret()?.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    write_private(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    tracing::warn!("JWT_SECRET is not set: generated one and kept it in {}", path.display());
    Ok(secret.into_bytes())
}

fn random_secret() -> anyhow::Result<Vec<u8>> {
    let mut secret = vec![0u8; 32];
    getrandom::fill(&mut secret).context("generating a JWT secret")?;
    Ok(secret)
}

/// Writes a file only its owner can read.
fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}

/// A broker and a presence, connected.
type Connected = (Arc<dyn Broker>, Arc<dyn Presence>);

/// Connects the broker and presence on `what` (set by `var`), retrying for
/// `wait` as for the database (compose may start it after Parley), then
/// failing clearly.
async fn connect_across(
    what: &str,
    var: &str,
    wait: Duration,
    connect: impl AsyncFn() -> Result<Connected, parley_ports::BoxError>,
) -> anyhow::Result<Connected> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut pause = Duration::from_millis(250);
    loop {
        match connect().await {
            Ok(connected) => {
                tracing::info!("rooms span every Parley process on the same {what} ({var})");
                return Ok(connected);
            }
            Err(error) if tokio::time::Instant::now() + pause < deadline => {
                tracing::warn!(%error, "{what} ({var}) is not reachable yet; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            Err(error) => anyhow::bail!("{what} at {var} is unreachable: {error}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn a_missing_secret_is_generated_once_and_kept_beside_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::SqliteFile(dir.path().join("parley.db"));
        let first = jwt_secret(None, &storage, dir.path()).unwrap();
        let again = jwt_secret(None, &storage, dir.path()).unwrap();
        assert_eq!(first, again, "the same secret after a restart");
        assert_eq!(first.len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("jwt-secret")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let in_memory = jwt_secret(None, &Storage::Memory, dir.path()).unwrap();
        assert_ne!(in_memory, jwt_secret(None, &Storage::Memory, dir.path()).unwrap());
        assert_eq!(jwt_secret(Some("configured"), &storage, dir.path()).unwrap(), b"configured");
    }

    #[tokio::test]
    async fn the_wired_services_register_log_in_and_chat() {
        let args = ["parley", "--argon2-memory-kib", "64", "--argon2-iterations", "1", "--database-url", "memory://"];
        let app = App::build(&Config::try_parse_from(args).unwrap()).await.unwrap();
        let new = parley_ports::domain::NewUser {
            email: parley_ports::domain::Email::parse("ann@example.com").unwrap(),
            username: parley_ports::domain::Username::parse("ann").unwrap(),
            full_name: None,
            password: parley_ports::domain::Password::parse("correct horse").unwrap(),
            is_active: true,
        };
        let ann = app.accounts.register(new).await.unwrap();
        assert!(ann.is_admin, "the first user is an administrator");
        let token = app.accounts.login("ANN@example.com", "correct horse").await.unwrap();
        assert_eq!(app.accounts.authenticate(&token.token).await.unwrap().id(), ann.id);

        let room = parley_ports::domain::RoomName::parse("general").unwrap();
        let name = parley_ports::domain::DisplayName::parse("ann").unwrap();
        let (member, mut subscription) = app.chat.join(room.clone(), name, false).await.unwrap();
        app.chat.post(&member, parley_ports::domain::MessageText::parse("hello").unwrap()).await.unwrap();
        assert_eq!(subscription.next().await.unwrap().event().kind, parley_ports::domain::EventKind::Joined);
        assert_eq!(subscription.next().await.unwrap().event().text.as_str(), "hello");

        // `chat` outlives the run, as a straggling connection might: stopping must not wait for it.
        let chat = Arc::clone(&app.chat);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        app.run_until_stopped(listener, async {}).await.unwrap();
        let history = chat.history(&room, None, 10).await.unwrap();
        assert_eq!(history.len(), 2, "the writer flushed what it was given before stopping");
    }
}
