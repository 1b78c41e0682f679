//! `parley-loadtest`: goose load tests for Parley, run without writing code.
//!
//! ```text
//! cargo run --release -p parley-loadtest -- --host http://127.0.0.1:8000 \
//!     --scenarios rooms --users 1000 --increase-rate 500 --run-time 60s \
//!     --report-file report.html --server-pid 1234 --summary rooms.json
//! ```
//!
//! Scenarios (goose's `--scenarios`): `rooms` (members in rooms over
//! WebSocket, numbered messages, every delivery's latency a goose metric
//! `WS deliver`; see `rooms.rs`), `http` (a realistic mix), `me` and
//! `logins` (see `http.rs`). Two options are the load test's own, and
//! taken out before goose reads the rest: `--server-pid PID[,PID…]` (or
//! `PARLEY_SERVER_PID`) samples the server's CPU, memory and writes from
//! /proc through the run, summed over its processes; `--summary FILE` writes the printed figures as
//! JSON. The exit status is 1 if any message was lost, repeated,
//! reordered, or never arrived. Only loopback targets are accepted (the
//! `--host`, and each of `PARLEY_LT_HOSTS`, which spreads a room's members
//! over several Parley processes: see `rooms.rs`).

mod histogram;
mod http;
mod rooms;
mod server;

use goose::config::GooseConfiguration;
use goose::prelude::*;
use http::{list as http_list, login as http_login, me as http_me, register as http_register, search as http_search};
use rooms::{join as room_join, leave as room_leave, publish_and_report as room_publish};

/// The load test's own options, taken out of the arguments; goose gets the rest.
#[derive(Debug, Default, PartialEq)]
struct Own {
    server_pids: Option<Vec<u32>>,
    summary: Option<String>,
}

fn take_own(args: &[String]) -> Result<(Own, Vec<String>), String> {
    let mut own = Own::default();
    let mut rest = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_owned())),
            None => (arg.as_str(), None),
        };
        if flag != "--server-pid" && flag != "--summary" {
            rest.push(arg.clone());
            continue;
        }
        let value = inline.or_else(|| args.next().cloned()).ok_or(format!("{flag} needs a value"))?;
        if flag == "--server-pid" {
            own.server_pids = Some(server::parse_pids(&value).ok_or(format!("--server-pid: not pids: {value}"))?);
        } else {
            own.summary = Some(value);
        }
    }
    Ok((own, rest))
}

/// The `--host` argument, which must name this machine.
fn loopback_only(args: &[String]) -> Result<(), String> {
    let host = args
        .iter()
        .position(|a| a == "--host" || a == "-H")
        .and_then(|at| args.get(at + 1))
        .cloned()
        .or_else(|| args.iter().find_map(|a| a.strip_prefix("--host=").map(str::to_owned)))
        .ok_or("give the server with --host http://127.0.0.1:PORT")?;
    let spread = rooms::hosts();
    match std::iter::once(&host).chain(&spread).find(|host| !is_loopback(host)) {
        None => Ok(()),
        Some(host) => Err(format!("refusing to load {host}: only loopback targets (127.0.0.0/8, ::1, localhost)")),
    }
}

fn is_loopback(url: &str) -> bool {
    let authority = url.split("://").nth(1).unwrap_or(url);
    let host = authority.split(['/', '?']).next().unwrap_or_default();
    let host = host.rsplit('@').next().unwrap_or_default();
    let name = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[tokio::main]
async fn main() -> Result<(), GooseError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("parley-loadtest's own options: --server-pid PID[,PID…], --summary FILE (see the crate docs)\n");
        GooseConfiguration::parse_args_default_or_exit();
    }
    let (own, goose_args) = match take_own(&args) {
        Ok(split) => split,
        Err(problem) => {
            eprintln!("parley-loadtest: {problem}");
            std::process::exit(2);
        }
    };
    if let Err(refusal) = loopback_only(&goose_args) {
        eprintln!("parley-loadtest: {refusal}");
        std::process::exit(2);
    }
    if let Some(pids) = own.server_pids {
        server::set_pids(pids);
    }
    let shape = rooms::Shape::from_env();
    let watched = rooms::COUNTERS.iter().chain(http::COUNTERS.iter()).collect();
    let watch = server::Watch::start(watched);
    if watch.is_none() {
        eprintln!("no server pid (--server-pid): server CPU and memory will not be reported");
    }
    let config = GooseConfiguration::parse_args_default(&goose_args)?;
    let own_cpu = server::own_cpu();
    let metrics = GooseAttack::initialize_with_config(config)?
        .register_scenario(
            scenario!("http")
                .register_transaction(transaction!(http_register).set_on_start())
                .register_transaction(transaction!(http_login).set_weight(1)?)
                .register_transaction(transaction!(http_me).set_weight(4)?)
                .register_transaction(transaction!(http_list).set_weight(2)?)
                .register_transaction(transaction!(http_search).set_weight(3)?),
        )
        .register_scenario(
            scenario!("me")
                .set_weight(4)?
                .register_transaction(transaction!(http_register).set_on_start())
                .register_transaction(transaction!(http_me)),
        )
        .register_scenario(
            scenario!("logins")
                .register_transaction(transaction!(http_register).set_on_start())
                .register_transaction(transaction!(http_login)),
        )
        .register_scenario(
            scenario!("rooms")
                .register_transaction(transaction!(room_join).set_on_start())
                .register_transaction(transaction!(room_publish))
                .register_transaction(transaction!(room_leave).set_on_stop()),
        )
        .execute()
        .await?;
    let samples = watch.map(server::Watch::stop).unwrap_or_default();
    let ran = |name: &str| metrics.scenarios.iter().any(|s| &*s.name == name && !s.users.is_empty());
    let mut sound = true;
    let mut reports = Vec::new();
    if ran("rooms") {
        let report = rooms::summary(&shape, &samples);
        sound = rooms::sound(&report);
        reports.push(report);
    }
    if ran("http") || ran("me") || ran("logins") {
        reports.push(http::summary(&samples, rooms::COUNTERS.len()));
    }
    let own_cpu = server::own_cpu().saturating_sub(own_cpu).as_secs_f64();
    for report in &mut reports {
        report["loadtest_cpu_seconds"] = serde_json::json!(own_cpu);
        println!("{}", serde_json::to_string_pretty(report).unwrap_or_default());
    }
    if let Some(path) = own.summary {
        let all = serde_json::Value::Array(reports);
        if let Err(error) = std::fs::write(&path, format!("{all:#}\n")) {
            eprintln!("parley-loadtest: could not write {path}: {error}");
        }
    }
    if !sound {
        eprintln!("parley-loadtest: messages were lost, repeated, reordered or not all delivered");
        std::process::exit(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_machine_can_be_loaded() {
        for host in ["http://127.0.0.1:8000", "http://localhost:8000/", "http://[::1]:8000", "http://127.8.9.10"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "http://10.0.0.5:8000",
            "http://example.com",
            "http://192.168.1.2",
            "http://127.0.0.1.example.com",
            "http://user@8.8.8.8",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(loopback_only(&args(&["lt", "--host", "http://127.0.0.1:1"])).is_ok());
        assert!(loopback_only(&args(&["lt", "--host=http://10.1.1.1"])).is_err());
        assert!(loopback_only(&args(&["lt"])).is_err(), "a host is required");
    }

    #[test]
    fn own_options_are_taken_out_and_the_rest_left_to_goose() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (own, rest) = take_own(&args(&[
            "--host",
            "http://127.0.0.1:1",
            "--server-pid",
            "42,43",
            "--summary=out.json",
            "-u",
            "5",
        ]))
        .unwrap();
        assert_eq!(own, Own { server_pids: Some(vec![42, 43]), summary: Some("out.json".into()) });
        assert_eq!(rest, args(&["--host", "http://127.0.0.1:1", "-u", "5"]));
        assert!(take_own(&args(&["--server-pid", "x"])).is_err());
        assert!(take_own(&args(&["--summary"])).is_err());
    }
}
