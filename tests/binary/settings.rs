//! What `parley --help` shows, and where settings are read from.

use std::path::Path;

use crate::{parley, text};

/// Variables that hold passwords or keys, a value, and the secret part of it.
const SECRETS: &[(&str, &str, &str)] = &[
    ("DATABASE_URL", "mysql://parley:db-password-1@db.internal/parley", "db-password-1"),
    ("ELASTIC_URL", "https://elastic:es-password-2@es.internal:9200", "es-password-2"),
    ("ELASTIC_API_KEY", "api-key-3", "api-key-3"),
    ("REDIS_URL", "redis://:redis-password-4@redis.internal:6379", "redis-password-4"),
    ("NATS_URL", "nats://parley:nats-password-5@nats.internal:4222", "nats-password-5"),
    ("JWT_SECRET", "jwt-secret-6-thirty-two-bytes-long", "jwt-secret-6"),
];

fn help(dir: &Path, env: &[(&str, &str)]) -> String {
    let output = parley(dir, env).arg("--help").output().expect("parley runs");
    assert!(output.status.success(), "{}", text(&output));
    text(&output)
}

#[test]
fn help_names_the_variables_that_hold_secrets_but_never_shows_their_values() {
    let dir = tempfile::tempdir().unwrap();
    let mut env: Vec<_> = SECRETS.iter().map(|(name, value, _)| (*name, *value)).collect();
    env.push(("PARLEY_RATE", "4321"));
    // clap wraps long lines wherever the text falls: compare word by word.
    let help = help(dir.path(), &env).split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(help.contains("PARLEY_RATE=4321"), "a value that is no secret is shown:\n{help}");
    for (name, _, secret) in SECRETS {
        assert!(help.contains(&format!("[env: {name}]")), "{name} is named:\n{help}");
        assert!(!help.contains(secret), "--help shows {name}'s value:\n{help}");
    }
}

#[test]
fn dot_env_is_read_from_the_working_directory_only_never_from_a_parent() {
    let parent = tempfile::tempdir().unwrap();
    std::fs::write(parent.path().join(".env"), "PARLEY_RATE=4321\n").unwrap();
    let child = parent.path().join("child");
    std::fs::create_dir(&child).unwrap();
    assert!(help(parent.path(), &[]).contains("PARLEY_RATE=4321"), "read in the directory it starts in");
    let below = help(&child, &[]);
    assert!(!below.contains("PARLEY_RATE=4321"), "a .env above the working directory configured it:\n{below}");
}
