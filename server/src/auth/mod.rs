//! Who a socket or request speaks for: JWTs verified with the HS256 secret or an
//! identity provider's public keys (PEM files or a JWKS), guest tokens issued and
//! refreshed here, and the permissions a token carries.

pub mod api_keys;
pub mod jwks;
pub mod permissions;
pub mod signing_keys;
mod tokens;

pub use tokens::{
    Auth, AuthError, ClaimsPolicy, Identity, IssuedToken, LEEWAY, MIN_SECRET_BYTES, sign_hs256,
    unix_now,
};
