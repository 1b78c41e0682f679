//! Black-box tests of the `parley` binary: started as a user starts it, in a
//! directory of its own, with the environment a user would set.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

mod across;
mod nats;
mod redis;
mod settings;

/// Variables a developer's shell might hold that would change what is tested.
const CONFIG_VARS: &[&str] = &[
    "HOST",
    "PORT",
    "DATABASE_URL",
    "PARLEY_DATA_DIR",
    "PARLEY_DB_WAIT_SECONDS",
    "ELASTIC_URL",
    "ELASTIC_API_KEY",
    "ELASTIC_INDEX",
    "ELASTIC_TIMEOUT_SECONDS",
    "REDIS_URL",
    "NATS_URL",
    "JWT_SECRET",
    "SECRET_KEY",
    "JWT_ALGORITHM",
    "ACCESS_TOKEN_EXPIRE_MINUTES",
    "ARGON2_MEMORY_KIB",
    "ARGON2_ITERATIONS",
    "ARGON2_PARALLELISM",
    "PARLEY_MEMBER_QUEUE",
    "PARLEY_LOG_QUEUE",
    "PARLEY_BODY_LIMIT",
    "CORS_ORIGINS",
    "AUTH_MODE",
    "PARLEY_WS_MAX_MESSAGE",
    "PARLEY_MAX_CONNECTIONS",
    "PARLEY_HISTORY_ON_JOIN",
    "PARLEY_RATE",
    "PARLEY_BURST",
    "PARLEY_PING_SECONDS",
    "PARLEY_LIMITS",
    "PARLEY_ADDRESS_RATE",
    "PARLEY_ADDRESS_BURST",
    "PARLEY_USER_RATE",
    "PARLEY_USER_BURST",
    "PARLEY_JOIN_RATE",
    "PARLEY_JOIN_BURST",
    "PARLEY_RESERVE_USERNAMES",
    "PARLEY_MEMBER_QUEUE_BYTES",
    "PARLEY_ROOM_RECENT_BYTES",
    "PARLEY_MAX_ROOMS",
    "PARLEY_LOG_QUEUE_BYTES",
    "PARLEY_WRITE_TIMEOUT_SECONDS",
    "PARLEY_HEADER_TIMEOUT_SECONDS",
    "PARLEY_IDLE_SECONDS",
    "PARLEY_MAX_TCP_CONNECTIONS",
    "PARLEY_MAX_CONNECTIONS_PER_ADDRESS",
    "PARLEY_CONNECTIONS_PER_SECOND_PER_ADDRESS",
    "PARLEY_CONNECTION_BURST_PER_ADDRESS",
    "PARLEY_TRUSTED_PROXIES",
    "RUST_LOG",
];

fn parley(dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_parley"));
    command.current_dir(dir).env("NO_COLOR", "1");
    for var in CONFIG_VARS {
        command.env_remove(var);
    }
    // Any free port: tests run side by side.
    command.env("PORT", "0");
    command.envs(env.iter().copied());
    command
}

fn run_to_exit(dir: &Path, env: &[(&str, &str)]) -> Output {
    parley(dir, env).stdin(Stdio::null()).output().expect("parley runs")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Starts the binary and returns it with a channel of its stdout lines.
fn start(dir: &Path, env: &[(&str, &str)]) -> (Child, mpsc::Receiver<String>) {
    let mut child = parley(dir, env).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("parley starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let (lines, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    (child, receiver)
}

/// Collects lines until one contains `wanted`; panics with what was seen if none does in time.
fn wait_for(lines: &mpsc::Receiver<String>, wanted: &str) -> Vec<String> {
    let mut seen = Vec::new();
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(30)) {
        let found = line.contains(wanted);
        seen.push(line);
        if found {
            return seen;
        }
    }
    panic!("no line containing {wanted:?}; saw:\n{}", seen.join("\n"));
}

fn terminate(child: &Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
    assert!(status.success());
}

#[test]
fn with_nothing_set_it_starts_warns_about_the_secret_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, lines) = start(dir.path(), &[]);
    let seen = wait_for(&lines, "Parley is listening");
    assert!(seen.iter().any(|l| l.contains("JWT_SECRET is not set")), "{seen:?}");
    terminate(&child);
    wait_for(&lines, "shutting down");
    assert!(child.wait().unwrap().success());
}

#[test]
fn secret_key_is_accepted_as_the_originals_name_for_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, lines) = start(dir.path(), &[("SECRET_KEY", "a shared secret of thirty-two by")]);
    let seen = wait_for(&lines, "Parley is listening");
    assert!(!seen.iter().any(|l| l.contains("JWT_SECRET")), "no warning about the secret: {seen:?}");
    terminate(&child);
    assert!(child.wait().unwrap().success());
}

#[test]
fn an_unsupported_database_url_stops_startup_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_to_exit(dir.path(), &[("DATABASE_URL", "oracle://localhost/db")]);
    assert!(!output.status.success());
    assert!(text(&output).contains("DATABASE_URL"), "{}", text(&output));
}

#[test]
fn redis_and_nats_both_set_stop_startup_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    // Neither needs to answer: the settings are refused first.
    let env = [("REDIS_URL", "redis://127.0.0.1:1"), ("NATS_URL", "nats://127.0.0.1:1"), ("DATABASE_URL", "memory://")];
    let output = run_to_exit(dir.path(), &env);
    assert!(!output.status.success());
    let said = text(&output);
    assert!(said.contains("REDIS_URL and NATS_URL are both set"), "{said}");
}

#[test]
fn an_unknown_jwt_algorithm_is_refused_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_to_exit(dir.path(), &[("JWT_ALGORITHM", "none")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).contains("JWT_ALGORITHM"), "{}", text(&output));
}

#[test]
fn settings_in_dot_env_are_read_but_the_real_environment_wins() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "JWT_ALGORITHM=RS256\n").unwrap();
    let from_file = run_to_exit(dir.path(), &[]);
    assert_eq!(from_file.status.code(), Some(2), "{}", text(&from_file));
    assert!(text(&from_file).contains("RS256"), "{}", text(&from_file));

    let (mut child, lines) = start(dir.path(), &[("JWT_ALGORITHM", "HS512")]);
    wait_for(&lines, "Parley is listening");
    terminate(&child);
    assert!(child.wait().unwrap().success());
}

/// A running `parley` process, found by its "listening" log line.
struct Running {
    child: Child,
    address: String,
    lines: mpsc::Receiver<String>,
}

impl Running {
    fn start(dir: &Path, env: &[(&str, &str)]) -> Self {
        let (child, lines) = start(dir, env);
        let seen = wait_for(&lines, "Parley is listening on http://");
        let line = seen.last().expect("a listening line");
        let address = line[line.find("http://").expect("an address")..].trim().to_owned();
        Self { child, address, lines }
    }

    fn stop(mut self) {
        terminate(&self.child);
        wait_for(&self.lines, "shutting down");
        assert!(self.child.wait().unwrap().success());
    }
}

/// Registers, logs in, says something over the original protocol, and
/// returns the token.
async fn chat_once(address: &str) -> String {
    use futures_util::SinkExt;
    let client = reqwest::Client::new();
    let user = serde_json::json!({"email": "ann@example.com", "username": "ann", "password": "correct horse"});
    let registered = client.post(format!("{address}/api/v1/auth/register")).json(&user).send().await.unwrap();
    assert_eq!(registered.status(), 201);
    let login = [("username", "ann"), ("password", "correct horse")];
    let token: serde_json::Value =
        client.post(format!("{address}/api/v1/auth/login")).form(&login).send().await.unwrap().json().await.unwrap();
    let url = format!("{}/ws/chat/general/ann", address.replacen("http://", "ws://", 1));
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    socket.send(tokio_tungstenite::tungstenite::Message::Text("remember this sentence".into())).await.unwrap();
    socket.close(None).await.unwrap();
    token["access_token"].as_str().unwrap().to_owned()
}

/// After a restart: the user logs in, the old token still works (the secret
/// was kept), and history and search return what was said.
async fn remembered(address: &str, token: &str) {
    let client = reqwest::Client::new();
    let login = [("username", "ann@example.com"), ("password", "correct horse")];
    assert_eq!(client.post(format!("{address}/api/v1/auth/login")).form(&login).send().await.unwrap().status(), 200);
    let me = client.get(format!("{address}/api/v1/users/me")).bearer_auth(token).send().await.unwrap();
    assert_eq!(me.status(), 200, "a token from before the restart is still valid");
    let history: serde_json::Value =
        client.get(format!("{address}/api/v1/rooms/general/history")).send().await.unwrap().json().await.unwrap();
    let said: Vec<&str> = history.as_array().unwrap().iter().map(|e| e["message"].as_str().unwrap()).collect();
    assert!(said.contains(&"remember this sentence"), "{history}");
    let hits: serde_json::Value =
        client.get(format!("{address}/search?room=general&query=sentence")).send().await.unwrap().json().await.unwrap();
    assert_eq!(hits[0]["message"], "remember this sentence");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_nothing_set_everything_survives_a_restart_in_parley_data() {
    let dir = tempfile::tempdir().unwrap();
    let first = Running::start(dir.path(), &[("ARGON2_MEMORY_KIB", "64"), ("ARGON2_ITERATIONS", "1")]);
    let token = chat_once(&first.address).await;
    first.stop();
    assert!(dir.path().join("parley-data/parley.db").exists());
    assert!(dir.path().join("parley-data/jwt-secret").exists());
    let second = Running::start(dir.path(), &[("ARGON2_MEMORY_KIB", "64"), ("ARGON2_ITERATIONS", "1")]);
    remembered(&second.address, &token).await;
    second.stop();
}

/// The server a test's database lives on, by its admin URL.
#[derive(Clone)]
enum Server {
    Mysql(String),
    Postgres(String),
}

/// Drops the test's database however the test ends, passing or not.
struct DropDatabase {
    server: Server,
    name: String,
}

impl Drop for DropDatabase {
    fn drop(&mut self) {
        use sqlx::Connection;
        let (server, name) = (self.server.clone(), self.name.clone());
        // Drop cannot await: a thread with a small runtime of its own does it.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                match server {
                    Server::Mysql(url) => {
                        let mut connection = sqlx::MySqlConnection::connect(&url).await.ok()?;
                        let statement = format!("DROP DATABASE IF EXISTS `{name}`");
                        sqlx::query(&statement).execute(&mut connection).await.ok().map(|_| ())
                    }
                    Server::Postgres(url) => {
                        // FORCE: PostgreSQL refuses to drop a database still connected to.
                        let mut connection = sqlx::PgConnection::connect(&url).await.ok()?;
                        let statement = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                        sqlx::query(&statement).execute(&mut connection).await.ok().map(|_| ())
                    }
                }
            })
        })
        .join();
    }
}

/// Two runs of the binary on the database at `url`, one after the other:
/// what the first was told, the second remembers.
async fn survives_a_restart(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("DATABASE_URL", url),
        ("JWT_SECRET", "a shared secret of thirty-two by"),
        ("ARGON2_MEMORY_KIB", "64"),
        ("ARGON2_ITERATIONS", "1"),
    ];
    let first = Running::start(dir.path(), &env);
    let token = chat_once(&first.address).await;
    first.stop();
    let second = Running::start(dir.path(), &env);
    remembered(&second.address, &token).await;
    second.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn on_mysql_everything_survives_a_restart() {
    use sqlx::Connection;
    let server = std::env::var("PARLEY_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".to_owned());
    let mut admin = match sqlx::MySqlConnection::connect(&server).await {
        Ok(connection) => connection,
        Err(error) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but no MySQL at {server}: {error}")
        }
        Err(error) => return eprintln!("skipped: no MySQL/MariaDB at {server} ({error})"),
    };
    let name = format!("parley_restart_{}", std::process::id());
    sqlx::query(&format!("CREATE DATABASE `{name}`")).execute(&mut admin).await.unwrap();
    let _cleanup = DropDatabase { server: Server::Mysql(server.clone()), name: name.clone() };
    // The original app's own URL form.
    let url = format!("{}/{name}", server.replacen("mysql://", "mysql+mysqlconnector://", 1));
    survives_a_restart(&url).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_postgres_a_missing_database_is_created_and_everything_survives_a_restart() {
    use sqlx::Connection;
    let server =
        std::env::var("PARLEY_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned());
    if let Err(error) = sqlx::PgConnection::connect(&server).await {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but no PostgreSQL at {server}: {error}");
        }
        return eprintln!("skipped: no PostgreSQL at {server} ({error})");
    }
    // Not created here: the binary creates it.
    let name = format!("parley_restart_{}", std::process::id());
    let _cleanup = DropDatabase { server: Server::Postgres(server.clone()), name: name.clone() };
    let url = format!("{}/{name}", server.replacen("postgres://", "postgresql://", 1));
    survives_a_restart(&url).await;
}

#[test]
fn an_unreachable_database_is_retried_for_a_while_then_startup_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("mysql://root@127.0.0.1:{port}/parley");
    let output = run_to_exit(dir.path(), &[("DATABASE_URL", &url), ("PARLEY_DB_WAIT_SECONDS", "5")]);
    assert!(!output.status.success());
    let said = text(&output);
    assert!(said.contains("retrying"), "it retried: {said}");
    assert!(said.contains("cannot reach the database within"), "{said}");
    assert!(said.contains("DATABASE_URL"), "{said}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_elasticsearch_unreachable_parley_starts_chats_and_says_what_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let elastic = format!("http://127.0.0.1:{port}");
    let running = Running::start(
        dir.path(),
        &[("ELASTIC_URL", &elastic), ("ARGON2_MEMORY_KIB", "64"), ("ARGON2_ITERATIONS", "1")],
    );
    let ready = reqwest::get(format!("{}/readyz", running.address)).await.unwrap();
    assert_eq!(ready.status(), 503);
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(ready["checks"]["user_store"], "ok");
    assert!(ready["checks"]["chat_log"].as_str().unwrap().contains("unavailable"), "{ready}");
    // Accounts and rooms work; only the log waits for the cluster.
    let token = chat_once(&running.address).await;
    assert!(!token.is_empty());
    running.stop();
}
