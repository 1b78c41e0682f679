//! Configuration: flags, then the environment, then `.env`, under the names
//! the original app used (`DATABASE_URL`, `JWT_SECRET`/`SECRET_KEY`,
//! `JWT_ALGORITHM`, `ACCESS_TOKEN_EXPIRE_MINUTES`, `ELASTIC_URL`) plus Parley's own.
//!
//! Only reads and checks settings; building adapters from them is `app`'s job.

use std::net::IpAddr;
use std::time::Duration;

use clap::Parser;
use parley_auth::{HashCost, JwtAlgorithm};

/// Parley: a real-time chat server — accounts over REST, rooms over WebSocket,
/// searchable history. Every flag can also be set through the environment
/// variable named beside it, or in a `.env` file in the working directory.
#[derive(Debug, Clone, Parser)]
#[command(name = "parley", version, about, long_about = None)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,

    /// Port to listen on.
    #[arg(long, env = "PORT", default_value_t = 8000)]
    pub port: u16,

    /// Where users and the chat log are kept: unset for SQLite in the data
    /// directory; `sqlite://PATH`, `sqlite::memory:`, `memory://` (forgotten on
    /// exit), `mysql://USER:PASSWORD@HOST/DB` (also `mariadb://`, and the
    /// original's `mysql+mysqlconnector://` and `mysql+pymysql://`), or
    /// `postgres://USER:PASSWORD@HOST/DB` (also `postgresql://`).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// How long startup waits for an unreachable database (and Redis or
    /// NATS), retrying with backoff, before it gives up.
    #[arg(long, env = "PARLEY_DB_WAIT_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub db_wait_seconds: u64,

    /// Where the embedded database and the generated token secret live.
    #[arg(long, env = "PARLEY_DATA_DIR", default_value = "./parley-data")]
    pub data_dir: std::path::PathBuf,

    /// Elasticsearch for the chat log and search (`http(s)://[user:password@]host:9200`);
    /// unset: the chat log lives in the database.
    #[arg(long, env = "ELASTIC_URL", hide_env_values = true)]
    pub elastic_url: Option<String>,

    /// Redis, so that rooms span every Parley process pointed at it
    /// (`redis://[:password@]host:6379`); unset: rooms live in this process.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// NATS instead of Redis, so that rooms span every Parley process pointed
    /// at it (`nats://[user:password@]host:4222`; presence needs JetStream);
    /// unset: rooms live in this process. Not with REDIS_URL.
    #[arg(long, env = "NATS_URL", hide_env_values = true)]
    pub nats_url: Option<String>,

    /// An Elasticsearch API key (base64), instead of a user and password in the URL.
    #[arg(long, env = "ELASTIC_API_KEY", hide_env_values = true)]
    pub elastic_api_key: Option<String>,

    /// The Elasticsearch index of the chat log (the original's name by default).
    #[arg(long, env = "ELASTIC_INDEX", default_value = "chat_logs")]
    pub elastic_index: String,

    /// Seconds an Elasticsearch request may take.
    #[arg(long, env = "ELASTIC_TIMEOUT_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub elastic_timeout_seconds: u64,

    /// Secret that signs access tokens (`SECRET_KEY` is read too). Unset: one
    /// generated once and kept in the data directory (`jwt-secret`), so tokens
    /// survive a restart; with `memory://` or `sqlite::memory:`, a random one per run.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Token signing algorithm: HS256, HS384 or HS512.
    #[arg(long, env = "JWT_ALGORITHM", default_value = "HS256")]
    pub jwt_algorithm: JwtAlgorithm,

    /// Lifetime of an access token, in minutes.
    #[arg(long, env = "ACCESS_TOKEN_EXPIRE_MINUTES", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=525_600))]
    pub access_token_expire_minutes: u64,

    /// Argon2id memory cost in KiB (OWASP: 19456).
    #[arg(long, env = "ARGON2_MEMORY_KIB", default_value_t = HashCost::OWASP.memory_kib)]
    pub argon2_memory_kib: u32,

    /// Argon2id iterations (OWASP: 2).
    #[arg(long, env = "ARGON2_ITERATIONS", default_value_t = HashCost::OWASP.iterations)]
    pub argon2_iterations: u32,

    /// Argon2id lanes (OWASP: 1).
    #[arg(long, env = "ARGON2_PARALLELISM", default_value_t = HashCost::OWASP.parallelism)]
    pub argon2_parallelism: u32,

    /// Browser origins allowed to call the API with credentials, comma-separated (`*`: any).
    #[arg(long, env = "CORS_ORIGINS", default_value = "http://localhost:3000", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "PARLEY_BODY_LIMIT", default_value_t = 64 * 1024, value_parser = clap::value_parser!(u32).range(1024..=64 * 1024 * 1024))]
    pub body_limit: u32,

    /// `open`: the original's /ws/chat endpoint is anonymous (as it was);
    /// `required`: both WebSocket endpoints need an access token.
    #[arg(long, env = "AUTH_MODE", default_value = "open")]
    pub auth_mode: parley_ws::AuthMode,

    /// Largest WebSocket message accepted, in bytes (close 1009 above).
    #[arg(long, env = "PARLEY_WS_MAX_MESSAGE", default_value_t = 16 * 1024, value_parser = clap::value_parser!(u32).range(64..=1024 * 1024))]
    pub ws_max_message: u32,

    /// Open WebSocket connections at most.
    #[arg(long, env = "PARLEY_MAX_CONNECTIONS", default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Past events a JSON-protocol client receives on joining.
    #[arg(long, env = "PARLEY_HISTORY_ON_JOIN", default_value_t = 50, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub history_on_join: u32,

    /// Messages per second one connection may send (sustained).
    #[arg(long, env = "PARLEY_RATE", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: u32,

    /// Messages one connection may send in a burst.
    #[arg(long, env = "PARLEY_BURST", default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..))]
    pub burst: u32,

    /// Messages per second one client address (an IPv4 address or an IPv6
    /// /64) may send across all of its connections, sustained; 0: no limit.
    /// Generous: a NAT'd office shares one address.
    #[arg(long, env = "PARLEY_ADDRESS_RATE", default_value_t = 50)]
    pub address_rate: u32,

    /// Messages one client address may send across its connections in a burst.
    #[arg(long, env = "PARLEY_ADDRESS_BURST", default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub address_burst: u32,

    /// Messages per second one token-authenticated user may send across all
    /// of their connections, sustained; 0: no limit.
    #[arg(long, env = "PARLEY_USER_RATE", default_value_t = 20)]
    pub user_rate: u32,

    /// Messages one user may send across their connections in a burst.
    #[arg(long, env = "PARLEY_USER_BURST", default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..))]
    pub user_burst: u32,

    /// WebSocket joins (upgrades into a room) per second from one client
    /// address, sustained; 0: no limit. Over it: 429 with Retry-After, and
    /// the room sees nothing.
    #[arg(long, env = "PARLEY_JOIN_RATE", default_value_t = 5)]
    pub join_rate: u32,

    /// Joins one client address may make in a burst (a whole office
    /// reconnecting at once).
    #[arg(long, env = "PARLEY_JOIN_BURST", default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub join_burst: u32,

    /// `true`: a guest (no token) may not use a registered user's username
    /// (or e-mail), ignoring case; it is closed with 1008 and told to sign in.
    #[arg(long, env = "PARLEY_RESERVE_USERNAMES", default_value_t = false, action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub reserve_usernames: bool,

    /// Seconds between WebSocket pings; a connection that sends nothing (not
    /// even a pong) from one ping to the next is closed.
    #[arg(long, env = "PARLEY_PING_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub ping_seconds: u64,

    /// Events one room member may have queued before it is cut off as too slow.
    #[arg(long, env = "PARLEY_MEMBER_QUEUE", default_value_t = parley_ports::hub::DEFAULT_QUEUE as u32, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub member_queue: u32,

    /// Bytes one room member may have queued (its messages' text and names,
    /// plus 96 each) before it is cut off as too slow (close 1008).
    #[arg(long, env = "PARLEY_MEMBER_QUEUE_BYTES", default_value_t = parley_ports::hub::DEFAULT_QUEUE_BYTES as u64, value_parser = clap::value_parser!(u64).range(1024..=1 << 30))]
    pub member_queue_bytes: u64,

    /// Bytes of recent events each room keeps in memory for newcomers (each
    /// event counted three times: it and its encoded frames); older history
    /// is read from the chat log.
    #[arg(long, env = "PARLEY_ROOM_RECENT_BYTES", default_value_t = parley_ports::hub::DEFAULT_RECENT_BYTES as u64, value_parser = clap::value_parser!(u64).range(0..=1 << 30))]
    pub room_recent_bytes: u64,

    /// Rooms with members in this process at once; a join that would open
    /// one more is refused (503).
    #[arg(long, env = "PARLEY_MAX_ROOMS", default_value_t = parley_ports::hub::DEFAULT_MAX_ROOMS as u32, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_rooms: u32,

    /// Seconds a write to a WebSocket client may take before the client is
    /// taken for gone.
    #[arg(long, env = "PARLEY_WRITE_TIMEOUT_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub write_timeout_seconds: u64,

    /// `off` lifts every per-client limit (rates and caps per connection, per
    /// address and per user) for test rigs; never on a server facing the internet.
    #[arg(long, env = "PARLEY_LIMITS", default_value = "on")]
    pub limits: Limits,

    /// Chat events waiting for the chat log before new ones go unlogged.
    #[arg(long, env = "PARLEY_LOG_QUEUE", default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
    pub log_queue: u32,

    /// Bytes the events waiting for the chat log may weigh (text and names,
    /// plus 96 each) before new ones go unlogged.
    #[arg(long, env = "PARLEY_LOG_QUEUE_BYTES", default_value_t = parley_ports::chat_recorder::DEFAULT_QUEUE_BYTES as u64, value_parser = clap::value_parser!(u64).range(1024..=1 << 34))]
    pub log_queue_bytes: u64,
    /// Seconds a client has, from connecting, to send a complete request head
    /// (protocol detection and the HTTP/2 preface included); decimals allowed.
    #[arg(long, env = "PARLEY_HEADER_TIMEOUT_SECONDS", default_value = "10", value_parser = seconds)]
    pub header_timeout: Duration,

    /// Seconds a connection may stay open with no request in flight (HTTP/2;
    /// idle HTTP/1 keep-alive connections close after the header timeout).
    #[arg(long, env = "PARLEY_IDLE_SECONDS", default_value = "60", value_parser = seconds)]
    pub idle_timeout: Duration,

    /// Open TCP connections at most, WebSockets included; more are closed at
    /// once. Unset: the file-descriptor limit less a twentieth (at least 256)
    /// for the database, broker and log files.
    #[arg(long, env = "PARLEY_MAX_TCP_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_tcp_connections: Option<u32>,

    /// Connections one client address (IPv4, or IPv6 /64) may hold open; 0: no cap.
    #[arg(long, env = "PARLEY_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 300)]
    pub max_connections_per_address: u32,

    /// New connections per second one client address may open, sustained
    /// (behind a trusted proxy: requests); 0: no limit.
    #[arg(long, env = "PARLEY_CONNECTIONS_PER_SECOND_PER_ADDRESS", default_value_t = 50)]
    pub connections_per_second_per_address: u32,

    /// New connections one client address may open at once before the per-second rate applies.
    #[arg(long, env = "PARLEY_CONNECTION_BURST_PER_ADDRESS", default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..))]
    pub connection_burst_per_address: u32,

    /// Comma-separated proxies (CIDR blocks or addresses) whose
    /// `X-Forwarded-For`/`Forwarded` name the client; empty: none is believed.
    #[arg(long, env = "PARLEY_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<parley_http::ProxyRange>,
}

/// A duration given in (possibly fractional) seconds, from a millisecond to a day.
fn seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text.trim().parse().map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(0.001..=86_400.0).contains(&seconds) {
        return Err(format!("{text} is not between 0.001 and 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Whether per-client limits apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Limits {
    On,
    Off,
}

/// What rooms span processes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Across<'a> {
    /// Nothing: rooms live in this process.
    Alone,
    Redis(&'a str),
    Nats(&'a str),
}

impl Config {
    /// Reads `.env` from the working directory (if present; it never
    /// overrides the real environment), then flags and environment.
    pub fn load() -> Self {
        // Not `dotenvy::dotenv()`: it walks up the parent directories, so a
        // stray `.env` anywhere above would configure the server.
        if let Err(error) = dotenvy::from_path(".env")
            && !error.not_found()
        {
            // Logging is not set up yet: configuration decides how it is.
            eprintln!("parley: ignoring .env: {error}");
        }
        let mut config = Config::parse();
        // An empty value (compose's `${JWT_SECRET:-}`) means unset.
        config.jwt_secret = config.jwt_secret.filter(|s| !s.is_empty());
        if config.jwt_secret.is_none() {
            config.jwt_secret = std::env::var("SECRET_KEY").ok().filter(|s| !s.is_empty());
        }
        config.elastic_url = config.elastic_url.filter(|s| !s.is_empty());
        config.redis_url = config.redis_url.filter(|s| !s.is_empty());
        config.nats_url = config.nats_url.filter(|s| !s.is_empty());
        config.elastic_api_key = config.elastic_api_key.filter(|s| !s.is_empty());
        config
    }

    /// What rooms span processes through: at most one of REDIS_URL and NATS_URL.
    ///
    /// # Errors
    /// When both are set, naming both.
    pub fn across(&self) -> Result<Across<'_>, &'static str> {
        match (self.redis_url.as_deref(), self.nats_url.as_deref()) {
            (None, None) => Ok(Across::Alone),
            (Some(url), None) => Ok(Across::Redis(url)),
            (None, Some(url)) => Ok(Across::Nats(url)),
            (Some(_), Some(_)) => {
                Err("REDIS_URL and NATS_URL are both set: rooms span processes through one of them; unset the other")
            }
        }
    }

    /// `PARLEY_MAX_TCP_CONNECTIONS`, or the file-descriptor limit less headroom.
    pub fn max_tcp_connections(&self) -> usize {
        match self.max_tcp_connections {
            Some(max) => max as usize,
            None => {
                let descriptors = open_files_limit().unwrap_or(1024);
                descriptors.saturating_sub((descriptors / 20).max(256)).max(descriptors / 2).max(1) as usize
            }
        }
    }

    /// The limits each client address is held to, unless `PARLEY_LIMITS=off`.
    pub fn per_address(&self) -> Option<parley_http::PerAddress> {
        (self.limits == Limits::On).then_some(parley_http::PerAddress {
            max_open: self.max_connections_per_address,
            per_second: self.connections_per_second_per_address,
            burst: self.connection_burst_per_address,
        })
    }

    pub fn token_lifetime(&self) -> Duration {
        Duration::from_secs(self.access_token_expire_minutes * 60)
    }

    pub fn hash_cost(&self) -> HashCost {
        HashCost {
            memory_kib: self.argon2_memory_kib,
            iterations: self.argon2_iterations,
            parallelism: self.argon2_parallelism,
        }
    }
}

/// The soft limit on open files (sockets included), where the OS says.
#[cfg(unix)]
#[allow(clippy::unnecessary_cast, reason = "rlim_t is u64 on Linux, not on every unix")]
fn open_files_limit() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes the struct it is given, which lives here.
    let status = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (status == 0 && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur as u64)
}

#[cfg(not(unix))]
fn open_files_limit() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("parley").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_match_the_original_app() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.port, 8000);
        assert_eq!(config.jwt_algorithm, JwtAlgorithm::HS256);
        assert_eq!(config.token_lifetime(), Duration::from_secs(30 * 60));
        assert_eq!(config.hash_cost(), HashCost::OWASP);
    }

    #[test]
    fn flags_override_defaults() {
        let config =
            parse(&["--port", "9001", "--jwt-algorithm", "hs512", "--access-token-expire-minutes", "5"]).unwrap();
        assert_eq!((config.port, config.jwt_algorithm), (9001, JwtAlgorithm::HS512));
        assert_eq!(config.token_lifetime(), Duration::from_secs(300));
    }

    #[test]
    fn admission_settings_parse_and_limits_off_lifts_the_per_address_ones() {
        let config = parse(&["--header-timeout", "0.25", "--trusted-proxies", "10.0.0.0/8,::1"]).unwrap();
        assert_eq!(config.header_timeout, Duration::from_millis(250));
        assert_eq!(config.trusted_proxies.len(), 2);
        let defaults = parse(&[]).unwrap();
        assert!(defaults.max_tcp_connections() >= 256, "below the descriptor limit, not absurdly low");
        assert_eq!(defaults.per_address().map(|limits| limits.max_open), Some(300));
        assert_eq!(parse(&["--limits", "off"]).unwrap().per_address(), None);
        assert_eq!(parse(&["--max-tcp-connections", "7"]).unwrap().max_tcp_connections(), 7);
    }

    #[test]
    fn rooms_span_processes_through_redis_or_nats_not_both() {
        assert_eq!(parse(&[]).unwrap().across(), Ok(Across::Alone));
        assert_eq!(parse(&["--nats-url", "nats://n:4222"]).unwrap().across(), Ok(Across::Nats("nats://n:4222")));
        assert_eq!(parse(&["--redis-url", "redis://r"]).unwrap().across(), Ok(Across::Redis("redis://r")));
        let both = parse(&["--redis-url", "redis://r", "--nats-url", "nats://n"]).unwrap().across().unwrap_err();
        assert!(both.contains("REDIS_URL") && both.contains("NATS_URL"), "{both}");
    }

    #[test]
    fn impossible_values_are_refused_with_the_setting_named() {
        for args in [
            &["--port", "70000"][..],
            &["--jwt-algorithm", "RS256"],
            &["--access-token-expire-minutes", "0"],
            &["--member-queue", "0"],
            &["--member-queue-bytes", "10"],
            &["--max-rooms", "0"],
            &["--header-timeout", "0"],
            &["--idle-timeout", "soon"],
            &["--trusted-proxies", "10.0.0.0/33"],
            &["--max-tcp-connections", "0"],
        ] {
            let error = parse(args).unwrap_err().to_string();
            assert!(error.contains(args[0]), "{error}");
        }
    }
}
