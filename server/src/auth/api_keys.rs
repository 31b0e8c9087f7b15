//! The backend's `--api-key`s: kept as SHA-256 digests, compared in constant time.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The shortest `--api-key` accepted.
pub const MIN_API_KEY_CHARS: usize = 32;

/// The `--api-key`s, kept as SHA-256 digests: a presented key is hashed and compared
/// with every one in constant time, so neither timing nor length says how close a
/// guess was.
#[derive(Default)]
pub struct ApiKeys(Vec<[u8; 32]>);

/// An `--api-key` that is too short; names its position, never its value.
#[derive(Debug, thiserror::Error)]
#[error(
    "--api-key number {position} (CHORUS_API_KEYS) is {chars} characters long; API keys must \
     be at least {MIN_API_KEY_CHARS} (e.g. `openssl rand -hex 32`)"
)]
pub struct WeakApiKey {
    /// Which `--api-key` it is, from 1.
    pub position: usize,
    /// How many characters it has.
    pub chars: usize,
}

impl ApiKeys {
    /// Keeps the digests of `keys`, refusing any shorter than [`MIN_API_KEY_CHARS`].
    pub fn new(keys: &[String]) -> Result<Self, WeakApiKey> {
        keys.iter()
            .enumerate()
            .map(|(index, key)| {
                let chars = key.chars().count();
                if chars < MIN_API_KEY_CHARS {
                    return Err(WeakApiKey {
                        position: index + 1,
                        chars,
                    });
                }
                Ok(digest(key))
            })
            .collect::<Result<_, _>>()
            .map(ApiKeys)
    }

    /// Whether `presented` is one of the keys.
    pub fn accepts(&self, presented: &str) -> bool {
        let presented = digest(presented);
        // Every key is compared, whichever matches.
        self.0
            .iter()
            .fold(subtle::Choice::from(0), |found, key| {
                found | key.ct_eq(&presented)
            })
            .into()
    }

    /// Whether no key was given (then only members' history reads work).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_accept_only_their_own() {
        let keys =
            ApiKeys::new(&["k".repeat(32), "another key that is long enough!!".into()]).unwrap();
        assert!(keys.accepts(&"k".repeat(32)));
        assert!(keys.accepts("another key that is long enough!!"));
        assert!(!keys.accepts(&"k".repeat(31)));
        assert!(!keys.accepts(""));
        assert!(!ApiKeys::default().accepts(""));
        let weak = ApiKeys::new(&["k".repeat(32), "short".into()])
            .err()
            .unwrap();
        assert_eq!((weak.position, weak.chars), (2, 5));
        assert!(!weak.to_string().contains("short"), "{weak}");
    }
}
