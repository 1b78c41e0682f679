//! compose.yaml, and compose.nats.yaml laid over it, checked without a
//! Docker engine: they parse, name the services and images the README
//! promises, give each a health check that gates Parley's start, and set
//! only variables the binary reads.

use std::collections::BTreeSet;

use serde_norway::Value;

fn compose() -> Value {
    read("compose.yaml")
}

fn read(file: &str) -> Value {
    let text = std::fs::read_to_string(format!("{}/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{file} is not YAML: {e}"))
}

/// The environment variables `parley --help` lists, plus `RUST_LOG` and the
/// original's `SECRET_KEY`.
fn variables_the_binary_reads() -> BTreeSet<String> {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_parley")).arg("--help").output().unwrap();
    // Help may be wrapped to the terminal's width: read it as one line.
    let help = String::from_utf8(help.stdout).unwrap().split_whitespace().collect::<Vec<_>>().join(" ");
    let mut names: BTreeSet<String> = help
        .match_indices("[env: ")
        .map(|(at, _)| help[at + 6..].split(['=', ']']).next().unwrap().to_owned())
        .collect();
    names.extend(["RUST_LOG".to_owned(), "SECRET_KEY".to_owned()]);
    names
}

#[test]
fn compose_runs_two_parleys_on_redis_mysql_and_elasticsearch_with_health_gated_starts() {
    let compose = compose();
    let services = compose["services"].as_mapping().unwrap();
    let names: BTreeSet<&str> = services.keys().map(|k| k.as_str().unwrap()).collect();
    assert_eq!(names, BTreeSet::from(["parley", "parley-2", "mysql", "elasticsearch", "redis"]));
    assert_eq!(compose["services"]["mysql"]["image"], "mysql:8");
    assert_eq!(compose["services"]["elasticsearch"]["image"], "elasticsearch:8.11.1");
    assert_eq!(compose["services"]["redis"]["image"], "redis:7");
    assert_eq!(compose["services"]["parley"]["build"], ".");
    for service in ["parley", "mysql", "elasticsearch", "redis"] {
        assert!(compose["services"][service]["healthcheck"]["test"].is_sequence(), "{service} has a health check");
    }
    for service in ["parley", "mysql", "elasticsearch"] {
        assert!(compose["services"][service]["volumes"].is_sequence(), "{service} has a volume");
    }
    for dependency in ["mysql", "elasticsearch", "redis"] {
        assert_eq!(compose["services"]["parley"]["depends_on"][dependency]["condition"], "service_healthy");
    }
    // The second process is the first one's settings (a YAML merge) on its own
    // port, started once the first is healthy (it reads the secret the first made).
    let second = &compose["services"]["parley-2"];
    assert!(second.get("<<").is_some_and(|merged| merged == &compose["services"]["parley"]), "{second:?}");
    assert_eq!(second["ports"][0], "8001:8000");
    assert_eq!(second["depends_on"]["parley"]["condition"], "service_healthy");
    let elastic = &compose["services"]["elasticsearch"]["environment"];
    assert_eq!(elastic["discovery.type"], "single-node");
    assert_eq!(elastic["xpack.security.enabled"], "false", "as the original README ran it");
}

#[test]
fn parley_in_compose_sets_only_variables_the_binary_reads_and_reaches_its_services() {
    let compose = compose();
    let environment = compose["services"]["parley"]["environment"].as_mapping().unwrap();
    let known = variables_the_binary_reads();
    for name in environment.keys().map(|k| k.as_str().unwrap()) {
        assert!(known.contains(name), "compose sets {name}, which parley does not read (it reads {known:?})");
    }
    let database = environment[&Value::from("DATABASE_URL")].as_str().unwrap();
    assert!(database.starts_with("mysql://") && database.contains("@mysql:3306/"), "{database}");
    assert_eq!(environment[&Value::from("ELASTIC_URL")], "http://elasticsearch:9200");
    assert_eq!(environment[&Value::from("REDIS_URL")], "redis://redis:6379");
    assert_eq!(environment[&Value::from("HOST")], "0.0.0.0", "reachable from outside the container");
    let mysql = &compose["services"]["mysql"]["environment"];
    assert!(database.contains(&format!(
        "{}:{}@",
        mysql["MYSQL_USER"].as_str().unwrap(),
        mysql["MYSQL_PASSWORD"].as_str().unwrap()
    )));
}

#[test]
fn the_image_runs_as_a_non_root_user_from_a_small_base() {
    let dockerfile = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    let stages: Vec<&str> = dockerfile.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(stages.len(), 2, "a build stage and a runtime stage");
    assert!(stages[1].contains("slim"), "{}", stages[1]);
    assert!(dockerfile.lines().any(|l| l.trim() == "USER parley"));
    assert!(dockerfile.contains("cargo build --release --locked"));
}

#[test]
fn the_nats_variant_moves_both_parleys_from_redis_to_a_health_checked_nats_with_jetstream() {
    let over = read("compose.nats.yaml");
    let services = over["services"].as_mapping().unwrap();
    let names: BTreeSet<&str> = services.keys().map(|k| k.as_str().unwrap()).collect();
    assert_eq!(names, BTreeSet::from(["parley", "parley-2", "nats"]), "only what changes");
    let nats = &over["services"]["nats"];
    assert!(nats["image"].as_str().unwrap().starts_with("nats:2.9"), "the series CI runs");
    let command: Vec<&str> = nats["command"].as_sequence().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert!(command.contains(&"-js"), "presence needs JetStream: {command:?}");
    assert!(nats["healthcheck"]["test"].is_sequence());
    assert!(nats["volumes"].is_sequence(), "JetStream keeps its store across restarts");
    assert_eq!(over["services"]["parley"]["depends_on"]["nats"]["condition"], "service_healthy");
    let known = variables_the_binary_reads();
    // parley-2 takes parley's settings in compose.yaml itself (a YAML merge
    // there): the override names it too, or it would stay on Redis.
    for service in ["parley", "parley-2"] {
        let environment = over["services"][service]["environment"].as_mapping().unwrap();
        for name in environment.keys().map(|k| k.as_str().unwrap()) {
            assert!(known.contains(name), "compose.nats.yaml sets {name}, which parley does not read");
        }
        assert_eq!(environment[&Value::from("NATS_URL")], "nats://nats:4222", "{service}");
        assert_eq!(environment[&Value::from("REDIS_URL")], "", "{service}: empty is unset, or startup refuses both");
    }
    assert!(compose()["services"]["parley"]["environment"]["REDIS_URL"].is_string(), "what it overrides");
}
