//! A lock-free latency histogram in microseconds, shared by every reader:
//! exact below 64 µs, then 32 buckets per power of two (within ~3 %), so a
//! million deliveries cost a few KiB and no lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const SUB: u32 = 32;
const EXACT: usize = 64;
/// Up to 2^40 µs (12 days): anything longer lands in the last bucket.
const TOP: u32 = 40;
const BUCKETS: usize = EXACT + (TOP as usize - 6) * SUB as usize;

pub struct Histogram {
    counts: [AtomicU64; BUCKETS],
}

impl Histogram {
    pub const fn new() -> Self {
        Self { counts: [const { AtomicU64::new(0) }; BUCKETS] }
    }

    pub fn record(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.counts[index(micros)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// The latency at percentile `p` (0–100), at the bucket's lower bound.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (at, count) in self.counts.iter().enumerate() {
            seen += count.load(Ordering::Relaxed);
            if seen >= rank {
                return Some(Duration::from_micros(lower_bound(at)));
            }
        }
        None
    }
}

fn index(micros: u64) -> usize {
    if micros < EXACT as u64 {
        return micros as usize;
    }
    let power = 63 - micros.leading_zeros();
    if power >= TOP {
        return BUCKETS - 1;
    }
    let top_bits = (micros >> (power - 5)) as u32 - SUB;
    EXACT + ((power - 6) * SUB + top_bits) as usize
}

fn lower_bound(at: usize) -> u64 {
    if at < EXACT {
        return at as u64;
    }
    let offset = (at - EXACT) as u32;
    let power = offset / SUB + 6;
    u64::from(SUB + offset % SUB) << (power - 5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_round_down_within_three_percent() {
        for micros in [0, 1, 63, 64, 65, 100, 999, 1_000, 12_345, 987_654, 5_000_000_000] {
            let low = lower_bound(index(micros));
            assert!(low <= micros && micros - low <= micros / 32, "{micros} -> {low}");
        }
    }

    #[test]
    fn percentiles_follow_the_recorded_values() {
        let histogram = Histogram::new();
        for ms in 1..=100 {
            histogram.record(Duration::from_millis(ms));
        }
        assert_eq!(histogram.count(), 100);
        let p50 = histogram.percentile(50.0).unwrap().as_micros();
        let p99 = histogram.percentile(99.0).unwrap().as_micros();
        assert!((48_500..=50_000).contains(&p50), "{p50}");
        assert!((96_000..=99_000).contains(&p99), "{p99}");
        assert_eq!(Histogram::new().percentile(50.0), None);
    }
}
