//! The server's side of a run, read from /proc when its pid is known
//! (`--server-pid` or `PARLEY_SERVER_PID`): CPU time, resident memory and
//! write syscalls, sampled through the run beside the load's own counters so
//! that a figure can be taken over one phase (joined and idle, publishing).
//! Several pids (`1234,1235`) are summed: the processes of a deployment
//! (two Parley processes and their Redis) count as one server.
//! Knows nothing of scenarios: they hand it the counters to sample.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

static PIDS: OnceLock<Vec<u32>> = OnceLock::new();

/// Sets the server's pids (from `--server-pid`); otherwise `PARLEY_SERVER_PID` is read.
pub fn set_pids(pids: Vec<u32>) {
    let _ = PIDS.set(pids);
}

/// `1234` or `1234,1235`; `None` if any is not a pid.
pub fn parse_pids(text: &str) -> Option<Vec<u32>> {
    text.split(',').map(|pid| pid.trim().parse().ok()).collect()
}

fn pids() -> Option<Vec<u32>> {
    PIDS.get().cloned().or_else(|| parse_pids(&std::env::var("PARLEY_SERVER_PID").ok()?)).filter(|p| !p.is_empty())
}

/// The processes' CPU, resident memory and writes, summed.
fn read_all(pids: &[u32]) -> Option<(Duration, u64, u64)> {
    pids.iter().try_fold((Duration::ZERO, 0, 0), |(cpu, rss, writes), pid| {
        let (c, r, w) = read(*pid)?;
        Some((cpu + c, rss + r, writes + w))
    })
}

/// The server at one moment, with the load's counters at the same moment.
#[derive(Debug, Clone)]
pub struct Sample {
    pub cpu: Duration,
    pub rss_kib: u64,
    /// write(2)-family syscalls so far (`syscw` in /proc/PID/io).
    pub writes: u64,
    pub counters: Vec<u64>,
}

fn read(pid: u32) -> Option<(Duration, u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): utime is the
    // 14th field overall, stime the 15th.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports CPU time in clock ticks of 1/100 s (USER_HZ).
    let cpu = Duration::from_millis(ticks * 10);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.split_whitespace().next()?.parse().ok()?;
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    let writes = io.lines().find_map(|l| l.strip_prefix("syscw:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    Some((cpu, rss_kib, writes))
}

/// CPU time this process (the load generator) has used.
pub fn own_cpu() -> Duration {
    read(std::process::id()).map(|(cpu, _, _)| cpu).unwrap_or_default()
}

/// Samples the server every 100 ms for as long as it lives.
pub struct Watch {
    samples: Arc<Mutex<Vec<Sample>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Watch {
    /// `None` when no server pid was given or /proc cannot be read.
    pub fn start(counters: Vec<&'static AtomicU64>) -> Option<Self> {
        let pids = pids()?;
        let take = move || {
            let (cpu, rss_kib, writes) = read_all(&pids)?;
            let counters = counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
            Some(Sample { cpu, rss_kib, writes, counters })
        };
        let first = take()?;
        let samples = Arc::new(Mutex::new(vec![first]));
        let kept = Arc::clone(&samples);
        let task = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(100));
            loop {
                every.tick().await;
                let Some(sample) = take() else { return };
                kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(sample);
            }
        });
        Some(Self { samples, task })
    }

    /// Every sample so far, the first taken before any load.
    pub fn stop(self) -> Vec<Sample> {
        self.task.abort();
        std::mem::take(&mut *self.samples.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_pids_are_summed() {
        assert_eq!(parse_pids("12, 34"), Some(vec![12, 34]));
        assert_eq!(parse_pids("12,x"), None);
        let me = std::process::id();
        let (_, once, _) = read_all(&[me]).unwrap();
        let (_, twice, _) = read_all(&[me, me]).unwrap();
        assert!(twice >= 2 * once - once / 10, "{twice} is about twice {once}");
        assert!(read_all(&[me, u32::MAX]).is_none(), "a vanished process spoils the sample");
    }

    #[test]
    fn this_process_can_be_read() {
        let (cpu, rss, _) = read(std::process::id()).expect("/proc is readable");
        assert!(rss > 0);
        assert!(cpu < Duration::from_secs(3600));
    }
}
