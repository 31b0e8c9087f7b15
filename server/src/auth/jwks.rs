//! An identity provider's key set, fetched from `--jwks-url` (or read from
//! `--jwks-file`) at start, refreshed every `--jwks-refresh`, and fetched again at
//! once when a token names a key id it does not have (at most once per
//! [`UNKNOWN_KID_REFETCH`]), so a key rotation at the provider needs no restart.

use std::path::PathBuf;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::auth::signing_keys::KeySet;

/// Unknown-kid refetches happen at most this often (start-up and periodic fetches
/// do not count).
pub const UNKNOWN_KID_REFETCH: Duration = Duration::from_secs(30);
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest JWKS document read; a provider's is a few kilobytes.
const MAX_JWKS_BYTES: usize = 1 << 20;

/// Where the keys come from.
#[derive(Debug, Clone)]
pub enum JwksSource {
    /// `--jwks-url`.
    Url(String),
    /// `--jwks-file`.
    File(PathBuf),
}

impl std::fmt::Display for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwksSource::Url(url) => f.write_str(url),
            JwksSource::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Why the keys could not be had.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The request failed (unreachable, timed out, refused).
    #[error("cannot fetch the JWKS from {source_name}")]
    Fetch {
        /// Where the JWKS was to come from.
        source_name: String,
        /// Why the request failed.
        #[source]
        source: reqwest::Error,
    },
    #[error("the JWKS at {source_name} answered HTTP {status}")]
    /// The provider answered with an error.
    Status {
        /// Where the JWKS was to come from.
        source_name: String,
        /// The HTTP status.
        status: u16,
    },
    /// A plain `http://` URL to another host: anyone on the path could swap the
    /// keys, and so sign any token.
    #[error(
        "the JWKS URL {source_name} must be https:// (plain http:// is allowed only to a loopback address)"
    )]
    Insecure {
        /// The URL given.
        source_name: String,
    },
    /// The provider answered with a redirect, which is not followed: the keys come
    /// from the URL the operator gave, or not at all.
    #[error(
        "the JWKS at {source_name} answered HTTP {status}, a redirect, which is not followed: give --jwks-url the final URL"
    )]
    Redirected {
        /// Where the JWKS was to come from.
        source_name: String,
        /// The HTTP status.
        status: u16,
    },
    /// The document is larger than a JWKS ever is.
    #[error("the JWKS at {source_name} is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge {
        /// Where the JWKS was to come from.
        source_name: String,
    },
    /// The file could not be read.
    #[error("cannot read the JWKS file {source_name}")]
    File {
        /// The file's path.
        source_name: String,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// Not a JWKS document.
    #[error("{source_name} is not a JWKS (`{{\"keys\": [...]}}`)")]
    NotJwks {
        /// Where it came from.
        source_name: String,
    },
    /// A JWKS without any key this server can use.
    #[error("the JWKS at {source_name} has no key this server can verify with")]
    NoUsableKey {
        /// Where it came from.
        source_name: String,
    },
}

/// The current keys, and how to get new ones.
pub struct Jwks {
    source: JwksSource,
    client: reqwest::Client,
    keys: RwLock<Arc<KeySet>>,
    /// When the last unknown-kid refetch ran; held while one runs, so a burst of
    /// tokens with a new kid makes one fetch.
    last_unknown_kid: Mutex<Option<Instant>>,
}

impl Jwks {
    /// Fetches the keys once; fails (and the server refuses to start) if they
    /// cannot be had or none is usable.
    pub async fn load(source: JwksSource) -> Result<Arc<Self>, JwksError> {
        if let JwksSource::Url(url) = &source
            && !secure_enough(url)
        {
            return Err(JwksError::Insecure {
                source_name: url.clone(),
            });
        }
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|source_error| JwksError::Fetch {
                source_name: source.to_string(),
                source: source_error,
            })?;
        let jwks = Jwks {
            source,
            client,
            keys: RwLock::new(Arc::default()),
            last_unknown_kid: Mutex::new(None),
        };
        let keys = jwks.fetch().await?;
        tracing::info!(
            source = %jwks.source,
            keys = keys.keys.len(),
            skipped = keys.skipped,
            "loaded the identity provider's keys"
        );
        *jwks.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        Ok(Arc::new(jwks))
    }

    /// The keys as last fetched.
    pub fn keys(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Fetches again because a token named a key id we do not have, unless one such
    /// fetch ran within [`UNKNOWN_KID_REFETCH`]. Returns whether the keys were fetched.
    pub async fn refetch_for_unknown_kid(&self) -> bool {
        let mut last = self.last_unknown_kid.lock().await;
        if last.is_some_and(|at| at.elapsed() < UNKNOWN_KID_REFETCH) {
            return false;
        }
        *last = Some(Instant::now());
        self.refresh("a token named an unknown key id").await;
        true
    }

    /// Fetches and, on success, replaces the keys; on failure keeps the old ones.
    async fn refresh(&self, why: &str) {
        match self.fetch().await {
            Ok(keys) => {
                tracing::debug!(why, keys = keys.keys.len(), "refreshed the JWKS");
                *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
            }
            Err(err) => tracing::warn!(
                error = %crate::observe::logs::ErrorChain(&err),
                why,
                "could not refresh the JWKS; keeping the keys we have"
            ),
        }
    }

    async fn fetch(&self) -> Result<KeySet, JwksError> {
        let source_name = self.source.to_string();
        let text = match &self.source {
            JwksSource::File(path) => {
                tokio::fs::read(path)
                    .await
                    .map_err(|source| JwksError::File {
                        source_name: source_name.clone(),
                        source,
                    })?
            }
            JwksSource::Url(url) => self.download(url, &source_name).await?,
        };
        let keys = KeySet::parse(&text).ok_or_else(|| JwksError::NotJwks {
            source_name: source_name.clone(),
        })?;
        if keys.keys.is_empty() {
            return Err(JwksError::NoUsableKey { source_name });
        }
        Ok(keys)
    }

    async fn download(&self, url: &str, source_name: &str) -> Result<Vec<u8>, JwksError> {
        let fetch_error = |source| JwksError::Fetch {
            source_name: source_name.to_owned(),
            source,
        };
        let mut response = self.client.get(url).send().await.map_err(fetch_error)?;
        if response.status().is_redirection() {
            return Err(JwksError::Redirected {
                source_name: source_name.to_owned(),
                status: response.status().as_u16(),
            });
        }
        if !response.status().is_success() {
            return Err(JwksError::Status {
                source_name: source_name.to_owned(),
                status: response.status().as_u16(),
            });
        }
        // Read in chunks, so an endless body cannot grow memory past the cap.
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(fetch_error)? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(JwksError::TooLarge {
                    source_name: source_name.to_owned(),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// Whether keys may be fetched from `url`: over HTTPS, or over plain HTTP from this
/// machine (a provider's sidecar, a test), where no one is on the path.
fn secure_enough(url: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(url) else {
        // Not a URL at all: the fetch says so, naming it.
        return true;
    };
    let host = url.host_str().unwrap_or_default();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => true,
        "http" => loopback,
        _ => false,
    }
}

/// Refreshes the keys every `every` while the [`Jwks`] lives.
pub fn refresh_periodically(jwks: Weak<Jwks>, every: Duration) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
        loop {
            ticks.tick().await;
            let Some(jwks) = jwks.upgrade() else {
                return;
            };
            jwks.refresh("periodic refresh").await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::secure_enough;

    #[test]
    fn keys_come_over_https_or_from_this_machine() {
        assert!(secure_enough(
            "https://idp.example.com/.well-known/jwks.json"
        ));
        assert!(secure_enough("http://127.0.0.1:8080/jwks.json"));
        assert!(secure_enough("http://[::1]/jwks.json"));
        assert!(secure_enough("http://localhost/jwks.json"));
        assert!(!secure_enough("http://idp.example.com/jwks.json"));
        assert!(!secure_enough("http://10.0.0.5/jwks.json"));
        assert!(!secure_enough("ftp://idp.example.com/jwks.json"));
    }
}
