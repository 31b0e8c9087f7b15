//! Public keys that verify tokens from an identity provider: from PEM files
//! (`--jwt-public-key`) or a JWKS (`--jwks-url`, `--jwks-file`). Pure, unit-tested;
//! fetching a JWKS is [`crate::auth::jwks`].
//!
//! Each key knows its type, and its type decides the algorithms it verifies: RSA
//! keys RS256/RS384/RS512/PS256, P-256 keys ES256, P-384 keys ES384, Ed25519 keys
//! EdDSA. A token's `alg` picks keys of the matching type only, so no token can
//! make a public key act as an HMAC secret (algorithm confusion).

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use simple_asn1::ASN1Block;

/// The most keys one JWKS may bring; more are ignored.
pub const MAX_JWKS_KEYS: usize = 100;

/// What kind of key it is, which says which algorithms it verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA, 2048 bits or more.
    Rsa,
    /// EC on P-256.
    P256,
    /// EC on P-384.
    P384,
    /// Ed25519.
    Ed25519,
}

impl KeyKind {
    /// The algorithms a key of this kind verifies.
    pub fn algorithms(self) -> &'static [Algorithm] {
        match self {
            KeyKind::Rsa => &[
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
            ],
            KeyKind::P256 => &[Algorithm::ES256],
            KeyKind::P384 => &[Algorithm::ES384],
            KeyKind::Ed25519 => &[Algorithm::EdDSA],
        }
    }
}

/// One public key, with the key id a JWKS gave it.
#[derive(Clone)]
pub struct VerifyingKey {
    /// What kind of key it is.
    pub kind: KeyKind,
    /// The key, ready to verify with.
    pub key: DecodingKey,
    /// The JWKS's `kid` for it, if any: a token naming another is not tried with it.
    pub kid: Option<String>,
    /// A JWK's own `alg`, when it names one: then only that one.
    only: Option<Algorithm>,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kind", &self.kind)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Why a key could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not PEM at all.
    #[error("not a PEM public key")]
    NotPem,
    #[error(
        "not a supported public key (RSA, EC P-256 or P-384, or Ed25519, as a `PUBLIC KEY` PEM)"
    )]
    /// A key of a type that verifies no algorithm here.
    Unsupported,
    /// A private key where a public one belongs.
    #[error("a private key: give the public key (`openssl pkey -in KEY -pubout`)")]
    Private,
}

const RSA_ENCRYPTION: &[u64] = &[1, 2, 840, 113_549, 1, 1, 1];
const EC_PUBLIC_KEY: &[u64] = &[1, 2, 840, 10_045, 2, 1];
const P256: &[u64] = &[1, 2, 840, 10_045, 3, 1, 7];
const P384: &[u64] = &[1, 3, 132, 0, 34];
const ED25519: &[u64] = &[1, 3, 101, 112];

impl VerifyingKey {
    /// A PEM public key: `PUBLIC KEY` (SPKI) for every type, or `RSA PUBLIC KEY`.
    pub fn from_pem(pem_text: &[u8]) -> Result<Self, KeyError> {
        let parsed = pem::parse(pem_text).map_err(|_| KeyError::NotPem)?;
        let kind = match parsed.tag() {
            "RSA PUBLIC KEY" => KeyKind::Rsa,
            "PUBLIC KEY" => spki_kind(parsed.contents()).ok_or(KeyError::Unsupported)?,
            tag if tag.contains("PRIVATE") => return Err(KeyError::Private),
            _ => return Err(KeyError::Unsupported),
        };
        let key = match kind {
            KeyKind::Rsa => DecodingKey::from_rsa_pem(pem_text),
            KeyKind::P256 | KeyKind::P384 => DecodingKey::from_ec_pem(pem_text),
            KeyKind::Ed25519 => DecodingKey::from_ed_pem(pem_text),
        }
        .map_err(|_| KeyError::Unsupported)?;
        Ok(VerifyingKey {
            kind,
            key,
            kid: None,
            only: None,
        })
    }

    /// A JWK meant for signatures; `None` for one this server cannot use (an
    /// encryption key, an HMAC secret, an unknown curve or algorithm).
    pub fn from_jwk(jwk: &Jwk) -> Option<Self> {
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            return None;
        }
        let kind = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => KeyKind::Rsa,
            AlgorithmParameters::EllipticCurve(params) => match params.curve {
                EllipticCurve::P256 => KeyKind::P256,
                EllipticCurve::P384 => KeyKind::P384,
                _ => return None,
            },
            AlgorithmParameters::OctetKeyPair(params) => match params.curve {
                EllipticCurve::Ed25519 => KeyKind::Ed25519,
                _ => return None,
            },
            // A shared secret has no place in a public key set.
            AlgorithmParameters::OctetKey(_) => return None,
        };
        let only = match jwk.common.key_algorithm {
            None => None,
            Some(named) => {
                let algorithm = signing_algorithm(named)?;
                if !kind.algorithms().contains(&algorithm) {
                    return None;
                }
                Some(algorithm)
            }
        };
        let key = DecodingKey::from_jwk(jwk).ok()?;
        Some(VerifyingKey {
            kind,
            key,
            kid: jwk.common.key_id.clone(),
            only,
        })
    }

    /// Whether this key verifies tokens signed with `algorithm`.
    pub fn verifies(&self, algorithm: Algorithm) -> bool {
        self.only.map_or_else(
            || self.kind.algorithms().contains(&algorithm),
            |only| only == algorithm,
        )
    }
}

/// The key type an SPKI DER names: its algorithm and, for EC, its curve.
fn spki_kind(der: &[u8]) -> Option<KeyKind> {
    let blocks = simple_asn1::from_der(der).ok()?;
    let Some(ASN1Block::Sequence(_, spki)) = blocks.first() else {
        return None;
    };
    let Some(ASN1Block::Sequence(_, algorithm)) = spki.first() else {
        return None;
    };
    let oids: Vec<Vec<u64>> = algorithm
        .iter()
        .filter_map(|block| match block {
            ASN1Block::ObjectIdentifier(_, oid) => oid
                .as_vec::<u64>()
                .ok()
                .map(|parts| parts.into_iter().collect()),
            _ => None,
        })
        .collect();
    match oids.as_slice() {
        [first, ..] if first == RSA_ENCRYPTION => Some(KeyKind::Rsa),
        [first, curve] if first == EC_PUBLIC_KEY && curve == P256 => Some(KeyKind::P256),
        [first, curve] if first == EC_PUBLIC_KEY && curve == P384 => Some(KeyKind::P384),
        [first] if first == ED25519 => Some(KeyKind::Ed25519),
        _ => None,
    }
}

fn signing_algorithm(named: KeyAlgorithm) -> Option<Algorithm> {
    Some(match named {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

/// The usable keys of a JWKS document, and how many it had that are not.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    /// The keys this server can verify with.
    pub keys: Vec<VerifyingKey>,
    /// How many it had that this server cannot use.
    pub skipped: usize,
}

impl KeySet {
    /// Reads a JWKS (`{"keys":[...]}`); keys this server cannot use are skipped, not
    /// fatal (identity providers publish encryption keys too). `None` if it is not a
    /// JWKS at all.
    pub fn parse(text: &[u8]) -> Option<KeySet> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let document: Document = serde_json::from_slice(text).ok()?;
        let mut set = KeySet::default();
        for value in document.keys.into_iter().take(MAX_JWKS_KEYS) {
            match serde_json::from_value::<Jwk>(value)
                .ok()
                .as_ref()
                .and_then(VerifyingKey::from_jwk)
            {
                Some(key) => set.keys.push(key),
                None => set.skipped += 1,
            }
        }
        Some(set)
    }

    /// Whether a key has this `kid`.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|key| key.kid.as_deref() == Some(kid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn each_pem_key_verifies_only_its_own_algorithms() {
        let cases = [
            ("rsa-1.pub.pem", KeyKind::Rsa),
            ("ec-p256.pub.pem", KeyKind::P256),
            ("ec-p384.pub.pem", KeyKind::P384),
            ("ed25519.pub.pem", KeyKind::Ed25519),
        ];
        for (file, kind) in cases {
            let key = VerifyingKey::from_pem(&fixture(file)).unwrap();
            assert_eq!(key.kind, kind, "{file}");
            assert!(!key.verifies(Algorithm::HS256), "{file}: never HMAC");
        }
        let p256 = VerifyingKey::from_pem(&fixture("ec-p256.pub.pem")).unwrap();
        assert!(p256.verifies(Algorithm::ES256) && !p256.verifies(Algorithm::ES384));
        let rsa = VerifyingKey::from_pem(&fixture("rsa-1.pub.pem")).unwrap();
        assert!(rsa.verifies(Algorithm::PS256) && !rsa.verifies(Algorithm::ES256));
    }

    #[test]
    fn private_keys_and_garbage_are_refused_by_name() {
        assert_eq!(
            VerifyingKey::from_pem(&fixture("rsa-1.pem")).unwrap_err(),
            KeyError::Private
        );
        assert_eq!(
            VerifyingKey::from_pem(b"not a key").unwrap_err(),
            KeyError::NotPem
        );
        let certificate_like = pem::encode(&pem::Pem::new("CERTIFICATE", vec![1, 2, 3]));
        assert_eq!(
            VerifyingKey::from_pem(certificate_like.as_bytes()).unwrap_err(),
            KeyError::Unsupported
        );
        let not_spki = pem::encode(&pem::Pem::new("PUBLIC KEY", vec![0x30, 0x00]));
        assert_eq!(
            VerifyingKey::from_pem(not_spki.as_bytes()).unwrap_err(),
            KeyError::Unsupported
        );
    }

    #[test]
    fn a_jwks_keeps_signing_keys_and_skips_the_rest() {
        let rsa = jsonwebtoken::EncodingKey::from_rsa_pem(&fixture("rsa-1.pem")).unwrap();
        let mut signing = Jwk::from_encoding_key(&rsa, Algorithm::RS256).unwrap();
        signing.common.key_id = Some("one".into());
        let document = serde_json::json!({"keys": [
            signing,
            {"kty": "oct", "k": "c2VjcmV0", "kid": "shared"},
            {"kty": "RSA", "use": "enc", "kid": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "EC", "crv": "P-521", "kid": "big", "x": "AA", "y": "AA"},
            {"kty": "unknown"},
        ]});
        let set = KeySet::parse(document.to_string().as_bytes()).unwrap();
        assert_eq!(set.keys.len(), 1);
        assert_eq!(set.skipped, 4);
        assert!(set.has_kid("one") && !set.has_kid("shared"));
        assert!(set.keys[0].verifies(Algorithm::RS256));
        assert!(
            !set.keys[0].verifies(Algorithm::PS256),
            "its JWK names RS256"
        );
        assert!(KeySet::parse(b"{}").is_none());
        assert!(KeySet::parse(b"<html>").is_none());
    }
}
