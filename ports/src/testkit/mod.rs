//! Contract suites: one per port, the rules every adapter of that port must
//! keep. Each rule is a `pub async fn` named for the behaviour it checks; a
//! macro per port turns every rule into its own `#[tokio::test]`, so an adapter
//! runs the whole suite with one line and a failure names the broken rule:
//!
//! ```text
//! parley_ports::user_store_contract!(async { MemoryUserStore::default() });
//! ```
//!
//! The expression is evaluated afresh for each rule, so each rule starts from
//! an empty store. Adapters add `tokio` (features `macros`, `rt`) to their
//! dev-dependencies.

pub mod broker;
pub mod chat_log;
mod manual_clock;
pub mod password_hasher;
pub mod presence;
pub mod rooms;
pub mod token_issuer;
pub mod user_store;

pub use manual_clock::ManualClock;

/// Expands a port's rule list into a module of tests. The subject is an
/// `async` expression giving the adapter; `optional` marks one giving
/// `Option<adapter>` (a server that may be absent: the factory prints why it
/// skips, and fails under `CI=true`); `factory` is the token issuer's form.
#[doc(hidden)]
#[macro_export]
macro_rules! __contract_tests {
    ($module:ident, [$($rule:ident),* $(,)?], optional $make:expr) => {
        #[allow(unused_imports)]
        mod $module {
            use super::*;
            $(
                #[tokio::test]
                async fn $rule() {
                    let Some(subject) = $make.await else { return };
                    $crate::testkit::$module::$rule(&subject).await;
                }
            )*
        }
    };
    ($module:ident, [$($rule:ident),* $(,)?], factory $make:expr) => {
        #[allow(unused_imports)]
        mod $module {
            use super::*;
            $(
                #[tokio::test]
                async fn $rule() {
                    $crate::testkit::$module::$rule($make).await;
                }
            )*
        }
    };
    ($module:ident, [$($rule:ident),* $(,)?], $make:expr) => {
        #[allow(unused_imports)]
        mod $module {
            use super::*;
            $(
                #[tokio::test]
                async fn $rule() {
                    let subject = $make.await;
                    $crate::testkit::$module::$rule(&subject).await;
                }
            )*
        }
    };
}
