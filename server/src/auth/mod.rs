//! Who a socket or request speaks for: JWTs verified with the HS256 secret or an
//! identity provider's public keys (PEM files or a JWKS), guest tokens issued and
//! refreshed here, and the permissions a token carries.

pub mod api_keys;
mod guest;
pub mod jwks;
pub mod permissions;
pub mod signing_keys;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use chorus_protocol::IssuedToken;
use chorus_protocol::{display_name_for_id, is_valid_user_id, normalize_display_name};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use rand::Rng;
use serde::{Deserialize, Serialize};

use jwks::Jwks;
use permissions::{Permissions, RoomPatterns};
use signing_keys::VerifyingKey;

/// Clock skew tolerated between token issuer and this server, for `exp` at connect
/// time and while connected.
pub const LEEWAY: Duration = Duration::from_secs(5);

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    exp: u64,
    /// Set on tokens this server issued to guests: only those may be refreshed here.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    guest: bool,
    /// Written on guest tokens when `--jwt-issuer` / `--jwt-audience` are set, so they
    /// pass the same checks as every other token (read by the validation itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    /// A string or a list in other issuers' tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aud: Option<serde_json::Value>,
    /// Room patterns the token may join (absent: every room). Read as JSON first, so
    /// a claim of the wrong shape gets its own refusal reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rooms: Option<serde_json::Value>,
    /// Room patterns the token may post in (absent: the same as `rooms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    publish: Option<serde_json::Value>,
}

/// What a token must say about where it comes from and whom it is for
/// (`--jwt-issuer`, `--jwt-audience`): when set, the claim is required and must match;
/// when not, it is not checked (as Centrifugo does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimsPolicy {
    /// The `iss` every token must carry, when set.
    pub issuer: Option<String>,
    /// The `aud` every token must include, when set.
    pub audience: Option<String>,
}

/// The user a verified token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The token's `sub`.
    pub id: String,
    /// The token's `name`, or `sub` when it has none.
    pub name: String,
    /// When the token stops being accepted (its `exp` plus [`LEEWAY`]).
    pub valid_until: SystemTime,
    /// Where it may join and post (`rooms`, `publish`; `--guest-rooms` for guests).
    pub permissions: Permissions,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No token at all.
    #[error("no token was given")]
    Missing,
    /// Well signed, but past its `exp` (and the leeway): renew it.
    #[error("the token has expired")]
    Expired,
    /// A fixed reason: never text from the token, which an attacker controls (and
    /// which could forge log lines).
    #[error("the token is invalid: {0}")]
    Invalid(&'static str),
    /// A refresh of a token that is not a guest token of this server.
    #[error("only guest tokens issued by this server can be refreshed")]
    NotGuest,
    /// A refresh of a guest token expired longer ago than the refresh grace.
    #[error("the token expired too long ago to be refreshed; sign in again")]
    TooOld,
    /// The token names a key id the JWKS does not have (yet): [`Auth::verify_current`]
    /// fetches the keys again before judging it.
    #[error("the token is invalid: unknown key id")]
    UnknownKey,
}

impl AuthError {
    /// A fixed word for the metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Expired => "expired",
            AuthError::Invalid(reason) => reason,
            AuthError::NotGuest => "not a guest token",
            AuthError::TooOld => "expired too long ago",
            AuthError::UnknownKey => "unknown key id",
        }
    }
}

/// Signs and verifies HS256 tokens with one secret.
/// The shortest `--jwt-secret` accepted: HS256 keys shorter than its 256-bit output
/// can be brute-forced offline from any one token.
pub const MIN_SECRET_BYTES: usize = 32;

/// The latest a connection's token may keep it open: later expiries (up to
/// `exp` = 2^64 - 1) count as this, so no deadline arithmetic can overflow.
const LONGEST_VALIDITY: Duration = Duration::from_secs(365 * 86_400);

/// Verifies tokens (HS256 with the secret, other algorithms with an identity provider's keys) and signs this server's own.
pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    policy: ClaimsPolicy,
    /// `--jwt-public-key`s: tokens from an identity provider.
    public_keys: Vec<VerifyingKey>,
    /// `--jwks-url` / `--jwks-file`: an identity provider's key set.
    jwks: Option<Arc<Jwks>>,
    /// Where guest tokens may go (`--guest-rooms`).
    guest_rooms: RoomPatterns,
    validation: Validation,
    /// The same checks without `exp`, for refreshing expired guest tokens.
    refresh_validation: Validation,
}

impl Auth {
    /// Verifies and signs with `secret` only, checking neither `iss` nor `aud`.
    pub fn new(secret: &[u8]) -> Self {
        Self::with_policy(secret, ClaimsPolicy::default())
    }

    /// Verifies (and issues guest tokens) as `policy` says about `iss` and `aud`.
    pub fn with_policy(secret: &[u8], policy: ClaimsPolicy) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY.as_secs();
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &policy.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &policy.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        let mut refresh_validation = validation.clone();
        refresh_validation.validate_exp = false;
        Auth {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            policy,
            public_keys: Vec::new(),
            jwks: None,
            guest_rooms: RoomPatterns::everything(),
            validation,
            refresh_validation,
        }
    }

    /// Also accepts tokens signed by these public keys (with the algorithms their
    /// type allows).
    pub fn with_public_keys(mut self, keys: Vec<VerifyingKey>) -> Self {
        self.public_keys = keys;
        self
    }

    /// Also accepts tokens signed by a key of this set, chosen by `kid`.
    pub fn with_jwks(mut self, jwks: Arc<Jwks>) -> Self {
        self.jwks = Some(jwks);
        self
    }

    /// [`Self::verify`]; a token naming a key id the JWKS lacks first has the keys
    /// fetched again (at most once per 30 s), so a key the provider just rotated in
    /// is accepted.
    pub async fn verify_current(&self, token: Option<&str>) -> Result<Identity, AuthError> {
        match self.verify(token) {
            Err(AuthError::UnknownKey) => {
                if let Some(jwks) = &self.jwks {
                    jwks.refetch_for_unknown_kid().await;
                }
                self.verify(token).map_err(|err| match err {
                    AuthError::UnknownKey => AuthError::Invalid("unknown key id"),
                    err => err,
                })
            }
            other => other,
        }
    }

    /// Limits guest tokens to these rooms, for joining and posting alike.
    pub fn with_guest_rooms(mut self, guest_rooms: RoomPatterns) -> Self {
        self.guest_rooms = guest_rooms;
        self
    }

    /// A random 256-bit secret, for servers started without `--jwt-secret`.
    pub fn random_secret() -> Vec<u8> {
        let mut secret = vec![0u8; 32];
        rand::rng().fill(secret.as_mut_slice());
        secret
    }

    /// The identity `token` speaks for, if one of this server's keys verifies it and its claims hold.
    pub fn verify(&self, token: Option<&str>) -> Result<Identity, AuthError> {
        let token = token.filter(|t| !t.is_empty()).ok_or(AuthError::Missing)?;
        let (claims, signer) = self.verified_claims(token)?;
        if claims.sub.is_empty() {
            return Err(AuthError::Invalid("`sub` is empty"));
        }
        const _: () = assert!(chorus_protocol::MAX_USER_ID_CHARS == 256, "say so below");
        if !is_valid_user_id(&claims.sub) {
            return Err(AuthError::Invalid(
                "`sub` is longer than 256 characters or has control characters",
            ));
        }
        // Held to the rules guest names follow, so no issuer's token can carry a name
        // that passes for another (bidi overrides, zero-width characters...); so is
        // the `sub` shown in its place.
        let name = match &claims.name {
            Some(name) => normalize_display_name(name)
                .map_err(|_| AuthError::Invalid("`name` is not a valid display name"))?
                .to_owned(),
            None => display_name_for_id(&claims.sub).ok_or(AuthError::Invalid(
                "no `name`, and `sub` cannot be shown as one",
            ))?,
        };
        // `guest` is this server's own claim: an identity provider's token is judged
        // by its `rooms` and `publish` whatever else it says.
        let permissions = if claims.guest && signer == Signer::Secret {
            Permissions {
                join: self.guest_rooms.clone(),
                publish: self.guest_rooms.clone(),
            }
        } else {
            let rooms = patterns_claim(
                claims.rooms.as_ref(),
                "`rooms` is not a list of room patterns",
            )?;
            let publish = patterns_claim(
                claims.publish.as_ref(),
                "`publish` is not a list of room patterns",
            )?;
            Permissions::from_claims(rooms.as_deref(), publish.as_deref())
                .map_err(|_| AuthError::Invalid("a room pattern is not a name or a prefix*"))?
        };
        Ok(Identity {
            id: claims.sub,
            name,
            valid_until: valid_until(claims.exp),
            permissions,
        })
    }

    /// The claims of a token whose signature one of our keys verifies, and which
    /// kind of key did: HS256 with the secret, any other algorithm only with public
    /// keys of the type made for it.
    fn verified_claims(&self, token: &str) -> Result<(Claims, Signer), AuthError> {
        let judged = |err: jsonwebtoken::errors::Error| match err.kind() {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            kind => AuthError::Invalid(reason(kind)),
        };
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| AuthError::Invalid("malformed token"))?;
        if header.alg == Algorithm::HS256 {
            return jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
                .map(|data| (data.claims, Signer::Secret))
                .map_err(judged);
        }
        let mut validation = self.validation.clone();
        validation.algorithms = vec![header.alg];
        let fetched = self.jwks.as_ref().map(|jwks| jwks.keys());
        let candidates = self
            .public_keys
            .iter()
            .chain(fetched.iter().flat_map(|set| set.keys.iter()))
            .filter(|key| key.verifies(header.alg))
            .filter(|key| match (&header.kid, &key.kid) {
                (Some(wanted), Some(kid)) => wanted == kid,
                _ => true,
            })
            // Each try is a signature check (an RSA one costs tens of microseconds):
            // a token naming no key is tried against the first few of its type only.
            .take(if header.kid.is_some() {
                usize::MAX
            } else {
                KEYS_TRIED_WITHOUT_KID
            });
        let mut refused = None;
        for key in candidates {
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => return Ok((data.claims, Signer::Provider)),
                // Another key may be the one.
                Err(err) if *err.kind() == ErrorKind::InvalidSignature => refused = Some(err),
                Err(err) => return Err(judged(err)),
            }
        }
        if let (Some(kid), Some(set)) = (&header.kid, &fetched)
            && !set.has_kid(kid)
        {
            return Err(AuthError::UnknownKey);
        }
        Err(refused.map_or(
            AuthError::Invalid("no key of this server verifies the token's algorithm"),
            judged,
        ))
    }

    /// Signs a token for `sub` (shown as `name`) that expires after `ttl`.
    pub fn issue(&self, sub: &str, name: Option<&str>, ttl: Duration) -> IssuedToken {
        self.sign(sub, name, ttl, false)
    }

    fn sign(&self, sub: &str, name: Option<&str>, ttl: Duration, guest: bool) -> IssuedToken {
        let expires = SystemTime::now() + ttl;
        let exp = expires
            .duration_since(UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_secs();
        let claims = Claims {
            sub: sub.to_owned(),
            name: name.map(str::to_owned),
            exp,
            guest,
            iss: self.policy.issuer.clone(),
            aud: self.policy.audience.clone().map(serde_json::Value::from),
            rooms: None,
            publish: None,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail");
        let expires_at = time::OffsetDateTime::from_unix_timestamp(exp as i64)
            .expect("expiry is a valid timestamp")
            .format(&time::format_description::well_known::Rfc3339)
            .expect("a UTC timestamp always formats");
        IssuedToken {
            token,
            expires_at,
            expires_in: ttl.as_secs(),
        }
    }
}

/// How many keys of its type a token without `kid` is tried against; a provider with
/// more keys of one type names them (`kid`), as every JWKS does.
const KEYS_TRIED_WITHOUT_KID: usize = 4;

/// Which kind of key verified a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signer {
    /// `--jwt-secret`: this server (its guest tokens) or a backend sharing the secret.
    Secret,
    /// An identity provider's public key (`--jwt-public-key`, `--jwks-url`/`-file`).
    Provider,
}

/// A `rooms` / `publish` claim's patterns (`None`: absent), or `invalid` when it is
/// not a list of strings.
fn patterns_claim(
    claim: Option<&serde_json::Value>,
    invalid: &'static str,
) -> Result<Option<Vec<String>>, AuthError> {
    let Some(claim) = claim else {
        return Ok(None);
    };
    let list = claim.as_array().ok_or(AuthError::Invalid(invalid))?;
    list.iter()
        .map(|pattern| pattern.as_str().map(str::to_owned))
        .collect::<Option<Vec<_>>>()
        .map(Some)
        .ok_or(AuthError::Invalid(invalid))
}

/// Why a token failed verification, in words fixed here.
fn reason(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => "unexpected algorithm",
        ErrorKind::MissingRequiredClaim(_) => "a required claim is missing",
        ErrorKind::ImmatureSignature => "not valid yet (`nbf`)",
        ErrorKind::InvalidIssuer => "wrong issuer",
        ErrorKind::InvalidAudience => "wrong audience",
        ErrorKind::InvalidSubject => "wrong subject",
        ErrorKind::ExpiredSignature => "expired",
        _ => "malformed token",
    }
}

/// When a token with this `exp` stops being accepted: `exp` plus [`LEEWAY`], and at
/// most [`LONGEST_VALIDITY`] from now.
fn valid_until(exp: u64) -> SystemTime {
    let latest = SystemTime::now() + LONGEST_VALIDITY;
    UNIX_EPOCH
        .checked_add(Duration::from_secs(exp))
        .and_then(|at| at.checked_add(LEEWAY))
        .map_or(latest, |at| at.min(latest))
}

/// Signs any claims as an HS256 token with `secret`: for a backend (or a test)
/// minting tokens this server accepts, or deliberately bad ones.
pub fn sign_hs256(secret: &[u8], claims: &impl Serialize) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("HS256 signing cannot fail")
}

/// Seconds since the Unix epoch, as `exp` counts them.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}
