//! Redis servers for tests: the one tests share, and ones of a test's own
//! that it stops and starts. Not for production use.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The shared test Redis's URL (`PARLEY_TEST_REDIS_URL`, or this machine's
/// on 127.0.0.1:6379), or `None` (with the reason printed) when none
/// answers; under `CI=true` a missing Redis is a failure.
pub fn shared_redis() -> Option<String> {
    let url = std::env::var("PARLEY_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let address = url.trim_start_matches("redis://").split('/').next().unwrap_or_default().to_owned();
    let reachable = address
        .parse::<std::net::SocketAddr>()
        .ok()
        .is_some_and(|at| std::net::TcpStream::connect_timeout(&at, Duration::from_secs(2)).is_ok());
    if reachable {
        return Some(url);
    }
    assert!(!ci(), "CI=true but the Redis test server at {url} is unreachable");
    eprintln!("skipped: no Redis test server at {url}; set PARLEY_TEST_REDIS_URL");
    None
}

/// A deployment name no other test uses: keys and channels of its own.
pub fn deployment(what: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("parley-test-{}-{}-{what}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A `redis-server` of the test's own, on a port of its own, that the test
/// stops and starts again; with TLS, it serves a certificate for 127.0.0.1
/// signed by a CA of the test's own (`ca.crt` in its directory).
pub struct OwnRedis {
    port: u16,
    dir: PathBuf,
    tls: bool,
    child: Option<Child>,
}

impl OwnRedis {
    /// `None` (with the reason printed) without `redis-server`; under
    /// `CI=true` that is a failure.
    pub fn start() -> Option<Self> {
        Self::start_as(false)
    }

    /// With TLS; `None` also without `openssl` to make the certificates.
    pub fn start_tls() -> Option<Self> {
        Self::start_as(true)
    }

    fn start_as(tls: bool) -> Option<Self> {
        let tools: &[(&str, &str)] = if tls {
            &[("redis-server", "--version"), ("openssl", "version")]
        } else {
            &[("redis-server", "--version")]
        };
        for (tool, version) in tools {
            let found = Command::new(tool).arg(version).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
            if !found {
                if ci() {
                    panic!("CI=true but {tool} is not installed");
                }
                eprintln!("skipped: no {tool} on PATH");
                return None;
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap().keep();
        let mut redis = Self { port, dir, tls, child: None };
        if tls {
            redis.certificates();
        }
        redis.up();
        Some(redis)
    }

    /// A CA, and a certificate for 127.0.0.1 that it signed.
    fn certificates(&self) {
        std::fs::write(self.dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n").unwrap();
        let steps: [&[&str]; 3] = [
            &["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2"],
            &["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr"],
            &["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out"],
        ];
        for (n, step) in steps.into_iter().enumerate() {
            let mut command = Command::new("openssl");
            command.args(step).current_dir(&self.dir).stdout(Stdio::null()).stderr(Stdio::null());
            match n {
                0 => command.args(["-subj", "/CN=parley test CA"]),
                1 => command.args(["-subj", "/CN=127.0.0.1"]),
                _ => command.args(["server.crt", "-days", "2", "-extfile", "ext.cnf"]),
            };
            assert!(command.status().unwrap().success(), "openssl {step:?}");
        }
    }

    /// The CA that signed a TLS server's certificate.
    pub fn ca_certificate(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    pub fn up(&mut self) {
        let port = self.port.to_string();
        let mut args = vec!["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
        if self.tls {
            args.extend(["--port", "0", "--tls-port", &port, "--tls-cert-file", "server.crt"]);
            args.extend(["--tls-key-file", "server.key", "--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "no"]);
        } else {
            args.extend(["--port", &port]);
        }
        let child = Command::new("redis-server")
            .args(args)
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let at = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        for _ in 0..100 {
            if std::net::TcpStream::connect_timeout(&at, Duration::from_millis(100)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not listen on {at}");
    }

    /// Freezes (`-STOP`) or thaws (`-CONT`) the server: connections stay
    /// open and silent, as behind a network that drops packets.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        assert!(Command::new("kill").args([signal, &pid]).status().unwrap().success());
    }

    pub fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.down();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
