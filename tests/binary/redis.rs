//! Several `parley` processes on one Redis: the scenarios every broker
//! passes (`across.rs`), and Redis's own — over TLS.

use parley_redis::testing::{OwnRedis, shared_redis as test_redis};

use super::across::{self, Pair, Server, join, next_message, room, say, token};
use super::{run_to_exit, text};

impl Server for OwnRedis {
    fn url(&self) -> String {
        OwnRedis::url(self)
    }
    fn down(&mut self) {
        OwnRedis::down(self);
    }
    fn up(&mut self) {
        OwnRedis::up(self);
    }
    fn signal(&self, signal: &str) {
        OwnRedis::signal(self, signal);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_room_spans_two_processes_on_both_protocols_and_a_killed_ones_members_leave() {
    let Some(redis) = test_redis() else { return };
    across::a_room_spans_two_processes_on_both_protocols_and_a_killed_ones_members_leave("REDIS_URL", &redis).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_resumes_on_the_other_process_with_nothing_missed() {
    let Some(redis) = test_redis() else { return };
    across::a_member_resumes_on_the_other_process_with_nothing_missed("REDIS_URL", &redis).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn while_redis_is_down_rooms_work_within_each_process_and_across_once_it_is_back() {
    let Some(mut redis) = OwnRedis::start() else { return };
    across::while_the_broker_is_down_rooms_work_within_each_process_and_across_once_it_is_back("REDIS_URL", &mut redis)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_redis_is_noticed_and_delivery_resumes_when_it_answers_again() {
    let Some(redis) = OwnRedis::start() else { return };
    across::a_stalled_broker_is_noticed_and_delivery_resumes_when_it_answers_again("REDIS_URL", &redis).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn over_tls_rooms_span_processes_once_redis_certificate_is_trusted() {
    let Some(redis) = OwnRedis::start_tls() else { return };
    let dir = tempfile::tempdir().unwrap();
    // Not trusted yet: startup says so rather than carrying on in plain text.
    let env =
        [("REDIS_URL", redis.url()), ("DATABASE_URL", "memory://".into()), ("PARLEY_DB_WAIT_SECONDS", "1".into())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let output = run_to_exit(dir.path(), &env);
    assert!(!output.status.success());
    assert!(text(&output).contains("Redis at REDIS_URL is unreachable"), "{}", text(&output));

    let ca = redis.ca_certificate();
    let pair = Pair::start_with("REDIS_URL", &redis.url(), &[("SSL_CERT_FILE", ca.to_str().unwrap())]);
    let room = room("tls");
    let (ann_token, bob_token) = (token(&pair.a.address, "ann").await, token(&pair.a.address, "bob").await);
    let (mut ann, _, _) = join(&pair.a, &room, &ann_token, None).await;
    let (mut bob, members, _) = join(&pair.b, &room, &bob_token, None).await;
    assert_eq!(members, ["ann", "bob"]);
    say(&mut ann, "over TLS").await;
    assert_eq!(next_message(&mut bob).await, ("ann".into(), "over TLS".into()));
}

#[test]
fn an_unreachable_redis_is_retried_for_a_while_then_startup_fails_clearly() {
    across::an_unreachable_broker_is_retried_for_a_while_then_startup_fails_clearly("REDIS_URL", "redis", "Redis");
}
