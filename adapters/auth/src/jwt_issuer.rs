//! `JwtIssuer`: access tokens as HMAC-signed JWTs with the original app's
//! claims (`sub` = the user id as a string, `exp`), plus `iat`.
//!
//! The algorithm is pinned on verification: a token whose header names any
//! other algorithm — `none` included — is invalid. Expiry is checked against
//! the injected clock rather than jsonwebtoken's own, so it can be tested.
//! `iat` is issued but not required, so tokens the original app signed with
//! the same secret keep working until they expire.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use parley_ports::domain::UserId;
use parley_ports::{AccessToken, Clock, TokenError, TokenIssuer};
use serde::{Deserialize, Serialize};

/// Clock difference tolerated between the issuer and a verifier.
const LEEWAY_SECONDS: i64 = 60;

/// The HMAC algorithms a shared secret can sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JwtAlgorithm {
    #[default]
    HS256,
    HS384,
    HS512,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported JWT algorithm {0:?}: use HS256, HS384 or HS512")]
pub struct UnknownAlgorithm(pub String);

impl FromStr for JwtAlgorithm {
    type Err = UnknownAlgorithm;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "HS256" => Ok(Self::HS256),
            "HS384" => Ok(Self::HS384),
            "HS512" => Ok(Self::HS512),
            _ => Err(UnknownAlgorithm(s.to_owned())),
        }
    }
}

impl JwtAlgorithm {
    fn pinned(self) -> Algorithm {
        match self {
            Self::HS256 => Algorithm::HS256,
            Self::HS384 => Algorithm::HS384,
            Self::HS512 => Algorithm::HS512,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
}

pub struct JwtIssuer {
    algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    lifetime: Duration,
    clock: Arc<dyn Clock>,
}

impl JwtIssuer {
    pub fn new(secret: &[u8], algorithm: JwtAlgorithm, lifetime: Duration, clock: Arc<dyn Clock>) -> Self {
        let algorithm = algorithm.pinned();
        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        // Expiry is checked below against our clock.
        validation.validate_exp = false;
        validation.required_spec_claims = ["exp", "sub"].into_iter().map(str::to_owned).collect();
        Self {
            algorithm,
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            lifetime,
            clock,
        }
    }
}

#[async_trait]
impl TokenIssuer for JwtIssuer {
    async fn issue(&self, user: UserId) -> Result<AccessToken, TokenError> {
        let now = self.clock.now().unix_timestamp();
        let lifetime = i64::try_from(self.lifetime.as_secs()).unwrap_or(i64::MAX);
        let claims = Claims { sub: user.to_string(), exp: now.saturating_add(lifetime), iat: Some(now) };
        let token = jsonwebtoken::encode(&Header::new(self.algorithm), &claims, &self.encoding)
            .map_err(|e| TokenError::Failed(Box::new(e)))?;
        Ok(AccessToken { token, expires_in: self.lifetime })
    }

    async fn verify(&self, token: &str) -> Result<UserId, TokenError> {
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| TokenError::Invalid)?
            .claims;
        if self.clock.now().unix_timestamp() > claims.exp.saturating_add(LEEWAY_SECONDS) {
            return Err(TokenError::Expired);
        }
        claims.sub.parse().map_err(|_| TokenError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU8, Ordering};

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use parley_ports::testkit::ManualClock;
    use time::macros::datetime;

    use super::*;

    /// A fresh secret per issuer, as the contract requires.
    fn fresh_secret() -> Vec<u8> {
        static NEXT: AtomicU8 = AtomicU8::new(0);
        vec![NEXT.fetch_add(1, Ordering::Relaxed); 32]
    }

    parley_ports::token_issuer_contract!(|clock| JwtIssuer::new(
        &fresh_secret(),
        JwtAlgorithm::HS256,
        Duration::from_secs(30 * 60),
        clock
    ));

    const SECRET: &[u8] = b"a shared secret of thirty-two by";

    fn issuer(algorithm: JwtAlgorithm) -> JwtIssuer {
        let clock = Arc::new(ManualClock::at(datetime!(2026-11-26 12:00 UTC)));
        JwtIssuer::new(SECRET, algorithm, Duration::from_secs(1800), clock)
    }

    fn b64(json: serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(json.to_string())
    }

    fn far_future() -> i64 {
        datetime!(2030-01-01 0:00 UTC).unix_timestamp()
    }

    #[tokio::test]
    async fn tokens_carry_the_originals_claims() {
        let token = issuer(JwtAlgorithm::HS256).issue(UserId::new(42)).await.unwrap();
        let parts: Vec<&str> = token.token.split('.').collect();
        let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(header["alg"], "HS256");
        assert_eq!(claims["sub"], "42");
        let issued_at = datetime!(2026-11-26 12:00 UTC).unix_timestamp();
        assert_eq!(claims["iat"], issued_at);
        assert_eq!(claims["exp"], issued_at + 1800);
        assert_eq!(token.expires_in, Duration::from_secs(1800));
    }

    #[tokio::test]
    async fn an_unsigned_alg_none_token_is_invalid() {
        let token = format!(
            "{}.{}.",
            b64(serde_json::json!({"alg": "none", "typ": "JWT"})),
            b64(serde_json::json!({"sub": "1", "exp": far_future()}))
        );
        assert!(matches!(issuer(JwtAlgorithm::HS256).verify(&token).await, Err(TokenError::Invalid)));
    }

    #[tokio::test]
    async fn a_token_signed_with_the_same_key_under_another_algorithm_is_invalid() {
        let hs512 = issuer(JwtAlgorithm::HS512).issue(UserId::new(1)).await.unwrap().token;
        assert!(matches!(issuer(JwtAlgorithm::HS256).verify(&hs512).await, Err(TokenError::Invalid)));
        assert_eq!(issuer(JwtAlgorithm::HS512).verify(&hs512).await.unwrap(), UserId::new(1));
    }

    #[tokio::test]
    async fn a_token_like_the_originals_without_iat_is_accepted() {
        // python-jose, as the original app called it: {"sub": "<id>", "exp": ...}, HS256.
        let claims = serde_json::json!({"sub": "5", "exp": far_future()});
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET)).unwrap();
        assert_eq!(issuer(JwtAlgorithm::HS256).verify(&token).await.unwrap(), UserId::new(5));
    }

    #[tokio::test]
    async fn tokens_without_exp_or_with_a_non_numeric_subject_are_invalid() {
        for claims in [
            serde_json::json!({"sub": "5"}),
            serde_json::json!({"sub": "five", "exp": far_future()}),
            serde_json::json!({"exp": far_future()}),
        ] {
            let token =
                jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET))
                    .unwrap();
            assert!(matches!(issuer(JwtAlgorithm::HS256).verify(&token).await, Err(TokenError::Invalid)), "{claims}");
        }
    }

    #[test]
    fn only_hmac_algorithms_are_configurable() {
        assert_eq!("hs384".parse(), Ok(JwtAlgorithm::HS384));
        assert_eq!("HS256".parse(), Ok(JwtAlgorithm::HS256));
        assert!("RS256".parse::<JwtAlgorithm>().is_err());
        assert!("none".parse::<JwtAlgorithm>().is_err());
    }
}
