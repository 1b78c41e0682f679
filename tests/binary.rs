//! Black-box tests of the `parley` binary: started as a user starts it, in a
//! directory of its own, with the environment a user would set.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Variables a developer's shell might hold that would change what is tested.
const CONFIG_VARS: &[&str] = &[
    "HOST",
    "PORT",
    "DATABASE_URL",
    "ELASTIC_URL",
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
    let output = run_to_exit(dir.path(), &[("DATABASE_URL", "postgres://localhost/db")]);
    assert!(!output.status.success());
    assert!(text(&output).contains("DATABASE_URL"), "{}", text(&output));
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
