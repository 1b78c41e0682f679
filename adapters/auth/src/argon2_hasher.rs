//! `Argon2Hasher`: argon2id password hashes, computed on tokio's blocking pool.
//!
//! A hash costs ~19 MiB and tens of milliseconds by design, so two limits
//! apply: the work never runs on an async worker (it would stall every
//! connection on that thread), and only a few hashes run at once (a login
//! flood must not take gigabytes of memory); the rest wait their turn.

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash as Phc, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use async_trait::async_trait;
use parley_ports::domain::{Password, PasswordHash};
use parley_ports::{HashError, PasswordHasher, Verdict};
use tokio::sync::Semaphore;

/// Argon2id's cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl HashCost {
    /// OWASP's recommendation for argon2id: m = 19 MiB, t = 2, p = 1.
    pub const OWASP: HashCost = HashCost { memory_kib: 19 * 1024, iterations: 2, parallelism: 1 };
    /// Cheap enough for test suites that register hundreds of users. Never in production.
    pub const FAST_INSECURE: HashCost = HashCost { memory_kib: 64, iterations: 1, parallelism: 1 };
}

impl Default for HashCost {
    fn default() -> Self {
        Self::OWASP
    }
}

pub struct Argon2Hasher {
    params: Params,
    running: Arc<Semaphore>,
}

/// Errors the hashing crates report, carried as the port's cause.
fn failed(error: impl std::fmt::Display) -> HashError {
    HashError(error.to_string().into())
}

impl Argon2Hasher {
    /// A hasher with `cost`, running at most `concurrency` hashes at once.
    pub fn new(cost: HashCost, concurrency: usize) -> Result<Self, HashError> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None).map_err(failed)?;
        Ok(Self { params, running: Arc::new(Semaphore::new(concurrency.max(1))) })
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Runs `work` on the blocking pool once a slot is free.
    async fn off_thread<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, HashError> {
        let _slot = self.running.acquire().await.map_err(failed)?;
        tokio::task::spawn_blocking(work).await.map_err(failed)
    }
}

#[async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        let argon2 = self.argon2();
        let password = password.clone();
        self.off_thread(move || {
            let salt = SaltString::generate(&mut OsRng);
            argon2.hash_password(password.expose().as_bytes(), &salt).map(|phc| PasswordHash::new(phc.to_string()))
        })
        .await?
        .map_err(failed)
    }

    async fn verify(&self, password: &Password, hash: &PasswordHash) -> Result<Verdict, HashError> {
        let current = self.argon2();
        let wanted = self.params.clone();
        let password = password.clone();
        let hash = hash.clone();
        self.off_thread(move || verify(&current, &wanted, &password, &hash)).await
    }
}

fn verify(current: &Argon2<'_>, wanted: &Params, password: &Password, hash: &PasswordHash) -> Verdict {
    let stored = hash.as_str();
    if stored.starts_with("$2") {
        // bcrypt, as passlib wrote it for the original app.
        return match bcrypt::verify(password.expose(), stored) {
            Ok(true) => Verdict::MatchButOutdated,
            Ok(false) => Verdict::Mismatch,
            Err(error) => unreadable(error),
        };
    }
    let phc = match Phc::new(stored) {
        Ok(phc) => phc,
        Err(error) => return unreadable(error),
    };
    // Verification follows the parameters recorded in the hash itself.
    if current.verify_password(password.expose().as_bytes(), &phc).is_err() {
        return Verdict::Mismatch;
    }
    let same_params = Params::try_from(&phc)
        .is_ok_and(|p| (p.m_cost(), p.t_cost(), p.p_cost()) == (wanted.m_cost(), wanted.t_cost(), wanted.p_cost()));
    if phc.algorithm.as_str() == "argon2id" && same_params { Verdict::Match } else { Verdict::MatchButOutdated }
}

fn unreadable(error: impl std::fmt::Display) -> Verdict {
    tracing::warn!(%error, "stored password hash is unreadable; treating as a mismatch");
    Verdict::Mismatch
}

#[cfg(test)]
mod tests {
    use super::*;

    parley_ports::password_hasher_contract!(async { Argon2Hasher::new(HashCost::FAST_INSECURE, 4).unwrap() });

    fn password(text: &str) -> Password {
        Password::parse(text).unwrap()
    }

    #[tokio::test]
    async fn hashes_are_argon2id_with_the_configured_cost() {
        let hasher = Argon2Hasher::new(HashCost { memory_kib: 128, iterations: 3, parallelism: 1 }, 1).unwrap();
        let hash = hasher.hash(&password("correct horse")).await.unwrap();
        assert!(hash.as_str().starts_with("$argon2id$v=19$m=128,t=3,p=1$"), "{}", hash.as_str());
    }

    #[tokio::test]
    async fn the_default_cost_is_owasps() {
        let hasher = Argon2Hasher::new(HashCost::default(), 1).unwrap();
        let hash = hasher.hash(&password("correct horse")).await.unwrap();
        assert!(hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{}", hash.as_str());
    }

    #[tokio::test]
    async fn a_hash_made_with_other_parameters_still_verifies_but_asks_to_be_redone() {
        let old = Argon2Hasher::new(HashCost { memory_kib: 64, iterations: 1, parallelism: 1 }, 1).unwrap();
        let current = Argon2Hasher::new(HashCost { memory_kib: 128, iterations: 1, parallelism: 1 }, 1).unwrap();
        let hash = old.hash(&password("correct horse")).await.unwrap();
        assert_eq!(current.verify(&password("correct horse"), &hash).await.unwrap(), Verdict::MatchButOutdated);
        assert_eq!(current.verify(&password("wrong horse"), &hash).await.unwrap(), Verdict::Mismatch);
    }

    #[tokio::test]
    async fn the_original_apps_bcrypt_hashes_verify_and_ask_to_be_redone() {
        // What passlib's bcrypt wrote for "secret123" in the original app's table.
        let legacy = PasswordHash::new(
            bcrypt::hash_with_result("secret123", 4).unwrap().format_for_version(bcrypt::Version::TwoB),
        );
        assert!(legacy.as_str().starts_with("$2b$04$"));
        let hasher = Argon2Hasher::new(HashCost::FAST_INSECURE, 1).unwrap();
        assert_eq!(hasher.verify(&password("secret123"), &legacy).await.unwrap(), Verdict::MatchButOutdated);
        assert_eq!(hasher.verify(&password("secret124"), &legacy).await.unwrap(), Verdict::Mismatch);
    }

    #[test]
    fn impossible_costs_are_refused_at_construction() {
        assert!(Argon2Hasher::new(HashCost { memory_kib: 1, iterations: 0, parallelism: 1 }, 1).is_err());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn hashing_leaves_the_async_thread_free_while_it_runs() {
        // On a one-thread runtime, a hash computed inline would finish within
        // the task's first poll; off the async thread, the task is still
        // waiting when this task next runs.
        let hasher =
            Arc::new(Argon2Hasher::new(HashCost { memory_kib: 8 * 1024, iterations: 3, parallelism: 1 }, 1).unwrap());
        let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let hashing = {
            let (hasher, started) = (Arc::clone(&hasher), Arc::clone(&started));
            tokio::spawn(async move {
                started.store(true, std::sync::atomic::Ordering::SeqCst);
                hasher.hash(&password("correct horse")).await.unwrap()
            })
        };
        while !started.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::task::yield_now().await;
        }
        assert!(!hashing.is_finished(), "the hash ran on the async thread");
        assert!(hashing.await.unwrap().as_str().starts_with("$argon2id$"));
    }
}
