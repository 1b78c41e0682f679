//! Several `parley` processes on one NATS server: the scenarios every
//! broker passes (`across.rs`), on the server this machine runs (JetStream
//! on, for presence), and on one of the test's own for the outages.

use parley_nats::testing::{OwnNats, shared_nats};

use super::across::{self, Server};

impl Server for OwnNats {
    fn url(&self) -> String {
        OwnNats::url(self)
    }
    fn down(&mut self) {
        OwnNats::down(self);
    }
    fn up(&mut self) {
        OwnNats::up(self);
    }
    fn signal(&self, signal: &str) {
        OwnNats::signal(self, signal);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn on_nats_a_room_spans_two_processes_on_both_protocols_and_a_killed_ones_members_leave() {
    let Some(nats) = shared_nats() else { return };
    across::a_room_spans_two_processes_on_both_protocols_and_a_killed_ones_members_leave("NATS_URL", &nats).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_nats_a_member_resumes_on_the_other_process_with_nothing_missed() {
    let Some(nats) = shared_nats() else { return };
    across::a_member_resumes_on_the_other_process_with_nothing_missed("NATS_URL", &nats).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn while_nats_is_down_rooms_work_within_each_process_and_across_once_it_is_back() {
    let Some(mut nats) = OwnNats::start_jetstream() else { return };
    across::while_the_broker_is_down_rooms_work_within_each_process_and_across_once_it_is_back("NATS_URL", &mut nats)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_nats_is_noticed_and_delivery_resumes_when_it_answers_again() {
    let Some(nats) = OwnNats::start_jetstream() else { return };
    across::a_stalled_broker_is_noticed_and_delivery_resumes_when_it_answers_again("NATS_URL", &nats).await;
}

#[test]
fn an_unreachable_nats_is_retried_for_a_while_then_startup_fails_clearly() {
    across::an_unreachable_broker_is_retried_for_a_while_then_startup_fails_clearly("NATS_URL", "nats", "NATS");
}
