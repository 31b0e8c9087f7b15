//! Guest tokens: what the web client signs in with (`POST /api/token`), signed here
//! with the HS256 secret, marked `guest`, and renewable for the same user
//! (`POST /api/token/refresh`) within the refresh grace.

use std::time::Duration;

use rand::Rng;

use super::{Auth, AuthError, Claims, IssuedToken, reason, unix_now};

impl Auth {
    /// Issues a guest token with a fresh random `sub`.
    pub fn issue_guest(&self, name: &str, ttl: Duration) -> IssuedToken {
        let id: u64 = rand::rng().random();
        self.sign(&format!("guest-{id:016x}"), Some(name), ttl, true)
    }

    /// A new guest token for the same `sub` and name as `token`, which must be a
    /// guest token signed here, still valid or expired for less than `grace`.
    pub fn refresh_guest(
        &self,
        token: &str,
        grace: Duration,
        ttl: Duration,
    ) -> Result<IssuedToken, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let claims =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.refresh_validation)
                .map_err(|err| AuthError::Invalid(reason(err.kind())))?
                .claims;
        if !claims.guest || claims.sub.is_empty() {
            return Err(AuthError::NotGuest);
        }
        if claims.exp.saturating_add(grace.as_secs()) < unix_now() {
            return Err(AuthError::TooOld);
        }
        Ok(self.sign(&claims.sub, claims.name.as_deref(), ttl, true))
    }
}
