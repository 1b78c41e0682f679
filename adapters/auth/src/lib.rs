//! Authentication adapters: [`Argon2Hasher`] (the `PasswordHasher` port:
//! argon2id, off the async threads, and the original app's bcrypt hashes
//! accepted for upgrade) and [`JwtIssuer`] (the `TokenIssuer` port: HMAC-signed
//! JWTs with the original's claims).
//!
//! Knows cryptography; knows nothing of users beyond their id, of storage or HTTP.

mod argon2_hasher;
mod jwt_issuer;

pub use argon2_hasher::{Argon2Hasher, HashCost};
pub use jwt_issuer::{JwtAlgorithm, JwtIssuer, UnknownAlgorithm};
