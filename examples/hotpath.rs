//! The broadcast hot path as a fixed amount of work, for instruction
//! counts that repeat whatever else the machine does (criterion's timings
//! do not): 2 000 events published to a room of 1 000 members, each member
//! taking each event from its queue.
//!
//! `cargo build --release --example hotpath && valgrind --tool=callgrind target/release/examples/hotpath`

use std::hint::black_box;

use parley_ports::domain::{ChatEvent, DisplayName, EventId, EventKind, MessageText, Present, RoomName};
use parley_ports::{Published, Rooms};

const MEMBERS: usize = 1_000;
const EVENTS: u128 = 2_000;

fn event(n: u128) -> ChatEvent {
    ChatEvent {
        id: EventId::from_u128(n),
        room: RoomName::parse("bench").expect("a room name"),
        user: DisplayName::parse("publisher").expect("a display name"),
        guest: false,
        kind: EventKind::Message,
        text: MessageText::parse("a message of typical chat length, about sixty bytes").expect("a message"),
        timestamp: time::OffsetDateTime::UNIX_EPOCH,
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
    let rooms = Rooms::local(1024);
    let room = RoomName::parse("bench").expect("a room name");
    let mut members: Vec<_> =
        (0..MEMBERS)
            .map(|n| {
                runtime
                    .block_on(rooms.join(
                        &room,
                        &Present::new(DisplayName::parse(format!("m{n}")).expect("a display name"), false),
                    ))
                    .expect("one room")
            })
            .collect();
    for n in 0..EVENTS {
        runtime.block_on(rooms.publish(Published::new(event(n))));
        for member in &mut members {
            black_box(member.try_next().expect("still a member"));
        }
    }
}
