//! The composition root: picks one adapter per port from the configuration,
//! builds the services on them, and runs until told to stop. No business
//! rules live here.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use parley_auth::{Argon2Hasher, JwtIssuer};
use parley_memory::{MemoryChatLog, MemoryFanout, MemoryUserStore, SystemClock};
use parley_ports::domain::EventIds;
use parley_ports::{Accounts, Chat, ChatLog, ChatLogWriter, ChatRecorder, Clock, Fanout, UserStore};
use tokio::net::TcpListener;

use crate::config::Config;

/// How long a client may take to send a request body.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
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
    pub fn build(config: &Config) -> anyhow::Result<Self> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let users = user_store(&config.database_url)?;
        let log = chat_log(config.elastic_url.as_deref())?;

        // Hashes run on the blocking pool; two per core keeps the cores busy
        // without letting a login flood claim gigabytes of argon2 memory.
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let hasher = Arc::new(Argon2Hasher::new(config.hash_cost(), 2 * cores).context("ARGON2_* settings")?);
        let secret = jwt_secret(config.jwt_secret.as_deref())?;
        let tokens =
            Arc::new(JwtIssuer::new(&secret, config.jwt_algorithm, config.token_lifetime(), Arc::clone(&clock)));
        let accounts = Arc::new(Accounts::new(users, hasher, tokens, Arc::clone(&clock)));

        let fanout: Arc<dyn Fanout> = Arc::new(MemoryFanout::new(config.member_queue as usize));
        let (recorder, writer) = ChatRecorder::new(Arc::clone(&log), Arc::clone(&clock), config.log_queue as usize);
        let seed = getrandom::u64().context("seeding event ids from the OS")?;
        let chat = Arc::new(Chat::new(fanout, log, recorder, clock, EventIds::new(seed)));
        let server = parley_http::ServerConfig { cors_origins: config.cors_origins.clone(), ..Default::default() };
        let ws = parley_ws::WsConfig {
            auth_mode: config.auth_mode,
            max_message_bytes: config.ws_max_message as usize,
            max_connections: config.max_connections as usize,
            history_on_join: config.history_on_join as usize,
            messages_per_second: config.rate,
            message_burst: config.burst,
            ping_interval: Duration::from_secs(config.ping_seconds),
            ..parley_ws::WsConfig::default()
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
        let rooms = parley_ws::WsRooms::new(Arc::clone(&self.chat), Arc::clone(&self.accounts), self.ws);
        let upgrade = {
            let rooms = Arc::clone(&rooms);
            Arc::new(move |request| {
                let rooms = Arc::clone(&rooms);
                Box::pin(rooms.handle(request)) as std::pin::Pin<Box<dyn Future<Output = parley_http::Reply> + Send>>
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
        // Rooms first (close 1001 to everyone, their leave notices logged),
        // then the chat-log writer flushes.
        rooms.shutdown(SHUTDOWN_GRACE).await;
        // The writer flushes what it holds; whatever is recorded after this goes unlogged.
        let _ = stop_writer.send(());
        writing.await.context("chat-log writer")?;
        Ok(())
    }
}

fn user_store(database_url: &str) -> anyhow::Result<Arc<dyn UserStore>> {
    match database_url.split_once("://").map(|(scheme, _)| scheme) {
        Some("memory") => Ok(Arc::new(MemoryUserStore::default())),
        Some(scheme) if scheme.starts_with("mysql") || scheme == "mariadb" || scheme == "sqlite" => {
            bail!("DATABASE_URL: {scheme}:// is not supported by this build yet (issue 6); use memory://")
        }
        _ => bail!("DATABASE_URL: {database_url:?} is not a database URL this build knows; use memory://"),
    }
}

fn chat_log(elastic_url: Option<&str>) -> anyhow::Result<Arc<dyn ChatLog>> {
    match elastic_url {
        None => Ok(Arc::new(MemoryChatLog::default())),
        Some(url) => bail!("ELASTIC_URL={url}: Elasticsearch is not supported by this build yet (issue 7); unset it"),
    }
}

/// The configured signing secret, or a random one for this run only.
fn jwt_secret(configured: Option<&str>) -> anyhow::Result<Vec<u8>> {
    match configured {
        Some(secret) => {
            if secret.len() < 32 {
                tracing::warn!("JWT_SECRET is shorter than 32 bytes; HS256 wants at least 256 bits of secret");
            }
            Ok(secret.as_bytes().to_vec())
        }
        None => {
            tracing::warn!("JWT_SECRET is not set: using a random secret, so tokens will not survive a restart");
            let mut secret = vec![0u8; 32];
            getrandom::fill(&mut secret).context("generating a JWT secret")?;
            Ok(secret)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn unsupported_database_and_search_urls_are_refused_naming_the_variable() {
        let mysql = user_store("mysql+mysqlconnector://root:pw@localhost/db").err().unwrap().to_string();
        assert!(mysql.starts_with("DATABASE_URL: mysql+mysqlconnector://"), "{mysql}");
        let junk = user_store("not a url").err().unwrap().to_string();
        assert!(junk.starts_with("DATABASE_URL"), "{junk}");
        let elastic = chat_log(Some("http://127.0.0.1:9200")).err().unwrap().to_string();
        assert!(elastic.starts_with("ELASTIC_URL"), "{elastic}");
    }

    #[test]
    fn a_missing_secret_is_replaced_by_a_random_one() {
        let a = jwt_secret(None).unwrap();
        let b = jwt_secret(None).unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert_eq!(jwt_secret(Some("configured")).unwrap(), b"configured");
    }

    #[tokio::test]
    async fn the_wired_services_register_log_in_and_chat() {
        let config =
            Config::try_parse_from(["parley", "--argon2-memory-kib", "64", "--argon2-iterations", "1"]).unwrap();
        let app = App::build(&config).unwrap();
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
        let (member, mut subscription) = app.chat.join(room.clone(), name).await.unwrap();
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
