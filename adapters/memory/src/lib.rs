//! Adapters that live inside the process:
//!
//! - [`MemoryBroker`]: processes simulated in one ([`MemoryNetwork`]), the
//!   reference `Broker` for tests and benchmarks (a process alone needs none);
//! - [`MemoryUserStore`], [`MemoryChatLog`]: storage that forgets on exit, for
//!   tests, benchmarks and `DATABASE_URL=memory://`;
//! - [`SystemClock`]: the real clock.
//!
//! Each passes its port's contract suite from `parley_ports::testkit`.

mod broker;
mod chat_log;
mod clock;
mod user_store;

pub use broker::{MemoryBroker, MemoryNetwork};
pub use chat_log::MemoryChatLog;
pub use clock::SystemClock;
pub use user_store::MemoryUserStore;

/// Locks a std mutex, ignoring poisoning: every critical section here leaves
/// the data consistent even if it panicked half-way, and none awaits.
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
