//! The broadcast hot path — the core's hub, as one process runs it — no sockets:
//! `cargo bench --bench fanout` (add `-- --quick` for a fast pass).
//!
//! - publish: one event to a room of N members, each member then taking it
//!   from its queue (what its writer does) — reported per delivery;
//! - encode: an event in each wire format (done once per event, not per member);
//! - churn: a member joining and leaving a room of 10 000;
//! - chat log: recording events and the writer appending them in batches.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use parley_memory::{MemoryChatLog, SystemClock};
use parley_ports::domain::{ChatEvent, DisplayName, EventId, EventKind, MessageText, Present, RoomName};
use parley_ports::{ChatLog, ChatRecorder, Encoding, Published, Rooms};
use tokio::runtime::Runtime;

fn member(name: &str) -> Present {
    Present::new(DisplayName::parse(name).unwrap(), false)
}

fn event(n: u128) -> ChatEvent {
    ChatEvent {
        id: EventId::from_u128(n),
        room: RoomName::parse("bench").unwrap(),
        user: DisplayName::parse("publisher").unwrap(),
        guest: false,
        kind: EventKind::Message,
        text: MessageText::parse("a message of typical chat length, about sixty bytes").unwrap(),
        timestamp: time::OffsetDateTime::UNIX_EPOCH,
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn publish(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("publish");
    for members in [1usize, 10, 100, 1_000, 10_000] {
        let rooms = Rooms::local(1024);
        let room = RoomName::parse("bench").unwrap();
        let mut subscriptions: Vec<_> =
            (0..members).map(|n| runtime.block_on(rooms.join(&room, &member(&format!("m{n}")))).unwrap()).collect();
        group.throughput(Throughput::Elements(members as u64));
        group.bench_with_input(BenchmarkId::from_parameter(members), &members, |b, _| {
            let mut n = 0u128;
            b.iter(|| {
                n += 1;
                runtime.block_on(rooms.publish(Published::new(event(n))));
                for subscription in &mut subscriptions {
                    black_box(subscription.try_next().unwrap());
                }
            });
        });
    }
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    group.bench_function("original text", |b| {
        b.iter_batched(
            || Published::new(event(1)),
            |p| black_box(p.encoded::<parley_ws::encoding::Compat>()),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("json", |b| {
        b.iter_batched(
            || Published::new(event(1)),
            |p| black_box(p.encoded::<parley_ws::encoding::Json>()),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("cached, per further member", |b| {
        let published = Published::new(event(1));
        published.encoded::<parley_ws::encoding::Json>();
        b.iter(|| black_box(published.encoded::<parley_ws::encoding::Json>()))
    });
    group.bench_function("json without the cache", |b| {
        b.iter(|| black_box(parley_ws::encoding::Json::encode(&event(1))))
    });
    group.finish();
}

fn churn(c: &mut Criterion) {
    let runtime = runtime();
    let rooms = Rooms::local(64);
    let room = RoomName::parse("bench").unwrap();
    let _members: Vec<_> =
        (0..10_000).map(|n| runtime.block_on(rooms.join(&room, &member(&format!("m{n}")))).unwrap()).collect();
    let newcomer = member("newcomer");
    c.bench_function("churn/join and leave a room of 10000", |b| {
        b.iter(|| drop(black_box(runtime.block_on(rooms.join(&room, &newcomer)).unwrap())))
    });
}

fn chat_log(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("chat log");
    let events = 10_000u64;
    group.throughput(Throughput::Elements(events));
    group.bench_function("record and append 10000 events in batches", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let log: Arc<dyn ChatLog> = Arc::new(MemoryChatLog::default());
                let (recorder, writer) = ChatRecorder::new(Arc::clone(&log), Arc::new(SystemClock), events as usize);
                let writing = tokio::spawn(writer.run());
                for n in 0..events {
                    recorder.record(event(u128::from(n)));
                }
                drop(recorder);
                writing.await.unwrap();
            })
        })
    });
    group.finish();
}

criterion_group!(benches, publish, encode, churn, chat_log);
criterion_main!(benches);
