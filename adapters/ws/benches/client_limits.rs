//! What the limits per client cost one message: `cargo bench -p parley-ws --bench client_limits`.
//!
//! - `message/…`: the per-address and per-user checks a post makes, in maps
//!   holding 10 000 other clients, well under the limits (a well-behaved
//!   client's case), beside the same with limits off;
//! - `join`: the per-address check an upgrade makes.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{Criterion, criterion_group, criterion_main};
use parley_ports::domain::{ClientAddress, UserId};
use parley_ws::{ClientLimits, Rate};

const OTHERS: u32 = 10_000;

fn address(n: u32) -> ClientAddress {
    ClientAddress::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n)))
}

fn limits() -> ClientLimits {
    let plenty = Rate::new(u32::MAX / 2, u32::MAX / 2);
    let limits = ClientLimits::new(plenty, plenty, plenty);
    for n in 0..OTHERS {
        let _ = limits.message(address(n), Some(UserId::new(i64::from(n))));
        let _ = limits.join(address(n));
    }
    limits
}

fn bench(c: &mut Criterion) {
    let on = limits();
    let off = ClientLimits::off();
    let (client, user) = (address(OTHERS / 2), Some(UserId::new(7)));
    c.bench_function("message/address_and_user", |b| b.iter(|| black_box(on.message(black_box(client), user))));
    c.bench_function("message/address_only", |b| b.iter(|| black_box(on.message(black_box(client), None))));
    c.bench_function("message/limits_off", |b| b.iter(|| black_box(off.message(black_box(client), user))));
    c.bench_function("join", |b| b.iter(|| black_box(on.join(black_box(client)))));
}

criterion_group!(benches, bench);
criterion_main!(benches);
