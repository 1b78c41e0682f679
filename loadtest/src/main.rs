//! `parley-loadtest`: goose load tests for Parley, run without writing code.
//!
//! ```text
//! cargo run --release -p parley-loadtest -- --host http://127.0.0.1:8000 \
//!     --scenarios rooms --users 1000 --hatch-rate 200 --run-time 60s --report-file report.html
//! ```
//!
//! Scenarios (goose's `--scenarios`): `http` (register once, then log in,
//! read me, list users, search, in a realistic mix) and `rooms` (members in
//! rooms over the original WebSocket protocol; publishers send numbered
//! messages; every delivery's latency is a goose metric `WS deliver`, and
//! losses, duplicates and out-of-order deliveries are counted per publisher).
//! Rooms are shaped by environment variables — see `rooms.rs`. With
//! `PARLEY_SERVER_PID` set, the server's CPU time per delivery and memory are
//! read from /proc at the end. Only loopback targets are accepted.

mod http;
mod proc_stats;
mod rooms;

use goose::prelude::*;
use http::{list as http_list, login as http_login, me as http_me, register as http_register, search as http_search};
use rooms::{join as room_join, leave as room_leave, publish_and_report as room_publish};

/// The `--host` argument, which must name this machine.
fn loopback_only(args: &[String]) -> Result<(), String> {
    let host = args
        .iter()
        .position(|a| a == "--host" || a == "-H")
        .and_then(|at| args.get(at + 1))
        .cloned()
        .or_else(|| args.iter().find_map(|a| a.strip_prefix("--host=").map(str::to_owned)))
        .ok_or("give the server with --host http://127.0.0.1:PORT")?;
    if is_loopback(&host) {
        Ok(())
    } else {
        Err(format!("refusing to load {host}: only loopback targets (127.0.0.0/8, ::1, localhost)"))
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
    if let Err(refusal) = loopback_only(&std::env::args().collect::<Vec<_>>()) {
        eprintln!("parley-loadtest: {refusal}");
        std::process::exit(2);
    }
    let shape = rooms::Shape::from_env();
    eprintln!("rooms shape: {shape:?}");
    let cpu_before = proc_stats::server().map(|s| s.cpu);
    GooseAttack::initialize()?
        .register_scenario(
            scenario!("http")
                .register_transaction(transaction!(http_register).set_on_start())
                .register_transaction(transaction!(http_login).set_weight(1)?)
                .register_transaction(transaction!(http_me).set_weight(4)?)
                .register_transaction(transaction!(http_list).set_weight(2)?)
                .register_transaction(transaction!(http_search).set_weight(3)?),
        )
        .register_scenario(
            scenario!("rooms")
                .register_transaction(transaction!(room_join).set_on_start())
                .register_transaction(transaction!(room_publish))
                .register_transaction(transaction!(room_leave).set_on_stop()),
        )
        .execute()
        .await?;
    rooms::summary(cpu_before);
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
}
