//! A MySQL outage mid-run: requests fail fast with 503 instead of hanging,
//! /readyz says so, and service returns without a restart when the database
//! does. The database is a second `mariadbd` this test starts on a port of its
//! own, so the machine's shared server is never touched.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{PASSWORD, new_user, spawn_app_with};

struct PrivateMariadb {
    child: Child,
    port: u16,
}

impl PrivateMariadb {
    fn start(dir: &Path, port: u16) -> std::io::Result<Self> {
        let child = Command::new("mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .arg(format!("--socket={}", dir.join("socket").display()))
            .arg(format!("--port={port}"))
            .args(["--bind-address=127.0.0.1", "--user=root", "--skip-grant-tables", "--skip-log-error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(Self { child, port })
    }

    async fn wait_until_up(&self) {
        for _ in 0..200 {
            let up = Command::new("mariadb")
                .args([
                    "-uroot",
                    "-h127.0.0.1",
                    &format!("-P{}", self.port),
                    "-e",
                    "CREATE DATABASE IF NOT EXISTS parley",
                ])
                .output()
                .is_ok_and(|o| o.status.success());
            if up {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the private mariadbd on port {} did not come up", self.port);
    }
}

impl Drop for PrivateMariadb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mysql_outage_gives_fast_503s_and_service_returns_when_the_database_does() {
    let dir = tempfile::tempdir().unwrap();
    let installed = Command::new("mariadb-install-db")
        .arg("--no-defaults")
        .arg(format!("--datadir={}", dir.path().join("data").display()))
        .args(["--user=root", "--auth-root-authentication-method=normal", "--skip-test-db"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !installed.is_ok_and(|s| s.success()) {
        assert!(!std::env::var("CI").is_ok_and(|v| v == "true"), "CI=true but mariadb-install-db is not usable here");
        return eprintln!("skipped: mariadb-install-db/mariadbd not available");
    }
    let port = free_port();
    let database = PrivateMariadb::start(dir.path(), port).unwrap();
    database.wait_until_up().await;

    let url = format!("mysql://root@127.0.0.1:{port}/parley");
    let app = spawn_app_with(&["--database-url", &url]).await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let registered = client.post(app.url("/api/v1/auth/register")).json(&new_user("ann")).send().await.unwrap();
    assert_eq!(registered.status(), StatusCode::CREATED);

    drop(database);
    let login = [("username", "ann"), ("password", PASSWORD)];
    // A hang would end in the client's timeout (an error here), not a status.
    let during = client.post(app.url("/api/v1/auth/login")).form(&login).send().await.expect("an answer, not a hang");
    assert_eq!(during.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(during.headers()["retry-after"], "5");
    let ready = client.get(app.url("/readyz")).send().await.expect("an answer, not a hang");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert_ne!(ready["checks"]["user_store"], "ok");

    let _database = PrivateMariadb::start(dir.path(), port).unwrap();
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..60 {
        status = client.post(app.url("/api/v1/auth/login")).form(&login).send().await.unwrap().status();
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(status, StatusCode::OK, "service returned without a restart");
    assert_eq!(client.get(app.url("/readyz")).send().await.unwrap().status(), StatusCode::OK);
}
