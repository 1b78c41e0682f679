//! NATS servers for tests: the one tests share, and ones of a test's own
//! that it stops and starts. Not for production use.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The shared test server's URL (`PARLEY_TEST_NATS_URL`, or this machine's
/// on 127.0.0.1:4222, with JetStream), or `None` (with the reason printed)
/// when none answers; under `CI=true` a missing server is a failure.
pub fn shared_nats() -> Option<String> {
    let url = std::env::var("PARLEY_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let address = url.trim_start_matches("nats://").split('/').next().unwrap_or_default().to_owned();
    let reachable = address
        .parse::<std::net::SocketAddr>()
        .ok()
        .is_some_and(|at| std::net::TcpStream::connect_timeout(&at, Duration::from_secs(2)).is_ok());
    if reachable {
        static SWEPT: std::sync::Once = std::sync::Once::new();
        SWEPT.call_once(|| sweep(&url));
        return Some(url);
    }
    assert!(!ci(), "CI=true but the NATS test server at {url} is unreachable");
    eprintln!("skipped: no NATS test server at {url}; set PARLEY_TEST_NATS_URL");
    None
}

/// Deletes the presence buckets of earlier test runs, idle for ten minutes
/// (a live one is written every heartbeat): each test makes a bucket of its
/// own, and a server keeps its streams. Best effort, once per test binary.
fn sweep(url: &str) {
    use futures_util::TryStreamExt;
    let url = url.to_owned();
    let swept = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
        runtime.block_on(async {
            let client = async_nats::connect(url).await.ok()?;
            let jetstream = async_nats::jetstream::new(client);
            let names: Vec<String> = jetstream.stream_names().try_collect().await.ok()?;
            for name in names.into_iter().filter(|name| name.starts_with("KV_parley-test-")) {
                let Ok(mut stream) = jetstream.get_stream(&name).await else { continue };
                let Ok(info) = stream.info().await else { continue };
                let idle = time::OffsetDateTime::now_utc() - info.state.last_timestamp;
                if idle > time::Duration::minutes(10) {
                    let _ = jetstream.delete_stream(&name).await;
                }
            }
            Some(())
        })
    });
    let _ = swept.join();
}

/// A deployment name no other test uses: subjects and a bucket of its own.
pub fn deployment(what: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("parley-test-{}-{}-{what}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A `nats-server` of the test's own, on a port of its own, that the test
/// stops and starts; with JetStream (for presence), storing in a directory
/// of its own, kept across a stop and a start as a server's disk would be.
pub struct OwnNats {
    port: u16,
    dir: PathBuf,
    jetstream: bool,
    child: Option<Child>,
}

impl OwnNats {
    /// Core NATS only (a broker needs no more). `None` (with the reason
    /// printed) without `nats-server`; under `CI=true` that is a failure.
    pub fn start() -> Option<Self> {
        Self::start_as(false)
    }

    /// With JetStream.
    pub fn start_jetstream() -> Option<Self> {
        Self::start_as(true)
    }

    fn start_as(jetstream: bool) -> Option<Self> {
        let found = Command::new("nats-server").arg("--version").stdout(Stdio::null()).status().is_ok();
        if !found {
            assert!(!ci(), "CI=true but nats-server is not installed");
            eprintln!("skipped: no nats-server on PATH");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let dir = tempfile::tempdir().ok()?.keep();
        let mut nats = Self { port, dir, jetstream, child: None };
        nats.up();
        Some(nats)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn up(&mut self) {
        let mut command = Command::new("nats-server");
        command.args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-l"]).arg(self.dir.join("nats-server.log"));
        if self.jetstream {
            command.args(["-js", "-sd"]).arg(self.dir.join("jetstream"));
        }
        let child = command.stdout(Stdio::null()).spawn().expect("nats-server starts");
        self.child = Some(child);
        let at = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        for _ in 0..100 {
            if std::net::TcpStream::connect_timeout(&at, Duration::from_millis(100)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nats-server did not listen on {at}");
    }

    /// Freezes (`-STOP`) or thaws (`-CONT`) the server: connections stay
    /// open and silent, as behind a network that drops packets.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        assert!(Command::new("kill").args([signal, &pid]).status().is_ok_and(|s| s.success()));
    }

    pub fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        self.down();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
