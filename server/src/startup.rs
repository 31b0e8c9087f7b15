//! Starting and stopping: configuration into [`AppState`], the listener, and
//! graceful shutdown.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use leptos::config::LeptosOptions;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{Auth, ClaimsPolicy, MIN_SECRET_BYTES};
use crate::config::Config;
use crate::connection::ConnectionSettings;
use crate::hub::redis_engine::{RedisOptions, RedisStartError};
use crate::hub::{Hub, HubSettings};
use crate::jwks::{Jwks, JwksError, JwksSource, refresh_periodically};
use crate::limits::{AddressLimits, PerAddress, UserSockets};
use crate::metrics::{Metrics, Sample};
use crate::routes::router;
use crate::serve::serve;
use crate::server_api::{ApiKeys, WeakApiKey};
use crate::signing_keys::{KeyError, VerifyingKey};
use crate::state::{AppState, GuestTokens};

/// Everything between the shutdown signal and the process exit fits in this.
const SHUTDOWN_BUDGET: Duration = Duration::from_millis(4500);

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Names the flag, never the value.
    #[error(
        "--jwt-secret (CHORUS_JWT_SECRET) is {bytes} bytes long; it must be at least {MIN_SECRET_BYTES} \
         (e.g. `openssl rand -base64 32`), since a short or empty secret lets anyone forge tokens"
    )]
    WeakSecret { bytes: usize },
    #[error(transparent)]
    WeakApiKey(#[from] WeakApiKey),
    #[error("cannot read --jwt-public-key {path}")]
    ReadPublicKey {
        path: std::path::PathBuf,
        source: io::Error,
    },
    #[error("--jwt-public-key {path} cannot be used")]
    PublicKey {
        path: std::path::PathBuf,
        source: KeyError,
    },
    #[error(transparent)]
    Jwks(#[from] JwksError),
    #[error("cannot listen for metrics on {addr}")]
    MetricsBind { addr: SocketAddr, source: io::Error },
    #[error("cannot listen on {addr}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot read the Leptos configuration from LEPTOS_* variables")]
    LeptosConfig(#[source] leptos::config::errors::LeptosConfigError),
    #[error(transparent)]
    Redis(#[from] RedisStartError),
    #[error("server failed")]
    Serve(#[from] io::Error),
}

/// Reads every `--jwt-public-key`.
fn public_keys(paths: &[std::path::PathBuf]) -> Result<Vec<VerifyingKey>, StartupError> {
    paths
        .iter()
        .map(|path| {
            let pem = std::fs::read(path).map_err(|source| StartupError::ReadPublicKey {
                path: path.clone(),
                source,
            })?;
            VerifyingKey::from_pem(&pem).map_err(|source| StartupError::PublicKey {
                path: path.clone(),
                source,
            })
        })
        .collect()
}

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    /// `--metrics-addr`, bound, with what it serves.
    metrics: Option<(TcpListener, Arc<Metrics>, Sample)>,
    router: Router,
    addr: SocketAddr,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    hub: Hub,
    http_idle_timeout: Duration,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let secret = match &config.jwt_secret {
            // Set but short, or empty (an unset variable in a compose file): refused,
            // not quietly replaced by a random one.
            Some(secret) if secret.len() < MIN_SECRET_BYTES => {
                return Err(StartupError::WeakSecret {
                    bytes: secret.len(),
                });
            }
            Some(secret) => secret.as_bytes().to_vec(),
            None if config.jwt_public_keys.is_empty()
                && config.jwks_url.is_none()
                && config.jwks_file.is_none() =>
            {
                tracing::warn!(
                    "no --jwt-secret given: using a random secret, so tokens will not survive a restart"
                );
                Auth::random_secret()
            }
            // Tokens come from the identity provider; the secret only signs guests'.
            None => Auth::random_secret(),
        };
        let api_keys = ApiKeys::new(&config.api_keys)?;
        let mut auth = Auth::with_policy(
            &secret,
            ClaimsPolicy {
                issuer: config.jwt_issuer.clone(),
                audience: config.jwt_audience.clone(),
            },
        )
        .with_guest_rooms(config.guest_rooms.clone().into())
        .with_public_keys(public_keys(&config.jwt_public_keys)?);
        let jwks_source = match (&config.jwks_url, &config.jwks_file) {
            (Some(url), _) => Some(JwksSource::Url(url.clone())),
            (None, Some(path)) => Some(JwksSource::File(path.clone())),
            (None, None) => None,
        };
        if let Some(source) = jwks_source {
            let jwks = Jwks::load(source).await?;
            refresh_periodically(Arc::downgrade(&jwks), config.jwks_refresh);
            auth = auth.with_jwks(jwks);
        }
        let listener =
            TcpListener::bind(config.addr)
                .await
                .map_err(|source| StartupError::Bind {
                    addr: config.addr,
                    source,
                })?;
        let addr = listener.local_addr()?;
        let leptos_options = leptos_options(&config, addr)?;
        let metrics = Arc::new(Metrics::default());
        let settings = HubSettings {
            metrics: metrics.clone(),
            history_size: config.history_size,
            queue_bytes: config.send_queue_memory,
            max_rooms: config.max_rooms as usize,
            history_memory: config.history_memory,
            presence_grace: config.presence_grace,
            presence_burst: config.presence_burst,
        };
        let hub = match &config.redis_url {
            Some(url) => {
                let options = RedisOptions {
                    url: url.clone(),
                    node_ttl: config.redis_node_ttl,
                    retention: config.redis_retention,
                };
                Hub::redis(settings, options).await?
            }
            None => Hub::memory(settings),
        };
        let state = AppState {
            hub: hub.clone(),
            auth: Arc::new(auth),
            api_keys: Arc::new(api_keys),
            connection: Arc::new(ConnectionSettings {
                heartbeat_interval: config.heartbeat_interval,
                heartbeat_timeout: config.heartbeat_timeout,
                max_message_bytes: config.max_message_bytes as usize,
                rate_limit: config.rate_limit,
                rate_limit_burst: config.rate_limit_burst,
                write_timeout: config.heartbeat_timeout,
                write_delay: config.write_delay,
                metrics: metrics.clone(),
            }),
            guests: (!config.no_guest_login).then_some(GuestTokens {
                ttl: config.guest_token_ttl,
                refresh_grace: config.guest_refresh_grace,
            }),
            permits: Arc::new(Semaphore::new(config.max_connections)),
            user_sockets: UserSockets::new(config.max_connections_per_user as usize),
            address_limits: Arc::new(AddressLimits {
                upgrades: PerAddress::new(
                    config.connect_rate_limit,
                    Duration::from_secs(1),
                    config.connect_rate_limit_burst,
                ),
                guest_tokens: PerAddress::new(
                    config.guest_token_rate_limit,
                    Duration::from_secs(60),
                    config.guest_token_rate_limit_burst,
                ),
                trusted_proxies: config.trusted_proxies.clone(),
            }),
            allowed_origins: Arc::new(config.allowed_origins.clone()),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            leptos_options,
        };
        let metrics = match config.metrics_addr {
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartupError::MetricsBind { addr, source })?;
                let sampled = hub.clone();
                let sample: Sample = Arc::new(move |metrics: &Metrics| {
                    metrics.rooms.set(sampled.occupied_rooms() as i64);
                });
                Some((listener, metrics, sample))
            }
            None => None,
        };
        let user_sockets = state.user_sockets.clone();
        hub.on_removal(Arc::new(move |user_id: &str, reason: &str| {
            let closed = user_sockets.remove(user_id, reason);
            tracing::info!(user = user_id, sockets = closed, "removed a user");
        }));
        let shutdown = state.shutdown.clone();
        let tasks = state.tasks.clone();
        Ok(Application {
            listener,
            metrics,
            router: router(state),
            addr,
            shutdown,
            tasks,
            hub,
            http_idle_timeout: config.http_idle_timeout,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where `/metrics` is served (`--metrics-addr`, with its port once bound).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics
            .as_ref()
            .and_then(|(listener, _, _)| listener.local_addr().ok())
    }

    /// Cancelling this token shuts the server down, as a signal would.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until `signal` completes (or the shutdown token is cancelled), then
    /// stops accepting, closes every socket with 1001 and returns within 5 seconds.
    pub async fn run_until(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let shutdown = self.shutdown.clone();
        tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                tokio::select! {
                    () = signal => shutdown.cancel(),
                    () = shutdown.cancelled() => {}
                }
            }
        });
        if let Some((listener, metrics, sample)) = self.metrics {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!("metrics on http://{addr}/metrics");
            }
            tokio::spawn(crate::metrics::serve(
                listener,
                metrics,
                sample,
                shutdown.clone(),
            ));
        }
        tracing::info!("listening on http://{}", self.addr);
        // Serves until the shutdown token is cancelled.
        let connections = TaskTracker::new();
        serve(
            self.listener,
            self.router,
            self.http_idle_timeout,
            shutdown.clone(),
            connections.clone(),
        )
        .await;
        // HTTP connections finish their request in flight; upgraded WebSockets are
        // ours to close.
        tracing::info!("shutting down: closing every socket with 1001");
        let deadline = Instant::now() + SHUTDOWN_BUDGET;
        self.tasks.close();
        if timeout_at(deadline, self.tasks.wait()).await.is_err() {
            tracing::warn!("some sockets did not close in time");
        }
        if timeout_at(deadline, self.hub.close()).await.is_err() {
            tracing::warn!("could not leave the shared rooms in time");
        }
        connections.close();
        if timeout_at(deadline, connections.wait()).await.is_err() {
            tracing::warn!("some HTTP requests did not finish in time");
        }
        Ok(())
    }
}

/// Where the built web client is. Under `cargo leptos watch/serve` the `LEPTOS_*`
/// variables say; the release binary uses `--site-root` instead.
fn leptos_options(config: &Config, addr: SocketAddr) -> Result<LeptosOptions, StartupError> {
    let mut options = if std::env::var_os("LEPTOS_OUTPUT_NAME").is_some() {
        leptos::config::get_configuration(None)
            .map_err(StartupError::LeptosConfig)?
            .leptos_options
    } else {
        // `cargo leptos build` names the client's files by their content and writes
        // the names beside the binary, where Leptos looks for them.
        let hashed = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join("hash.txt")))
            .is_some_and(|names| names.exists());
        LeptosOptions::builder()
            .output_name("chorus")
            .site_root(config.site_root.to_string_lossy().into_owned())
            .site_pkg_dir("pkg")
            .env(leptos::config::Env::PROD)
            .hash_files(hashed)
            .build()
    };
    options.site_addr = addr;
    let pkg = std::path::Path::new(options.site_root.as_ref()).join(options.site_pkg_dir.as_ref());
    let built = std::fs::read_dir(&pkg).is_ok_and(|mut files| {
        files.any(|file| {
            file.is_ok_and(|file| {
                let name = file.file_name();
                let name = name.to_string_lossy();
                name.starts_with(options.output_name.as_ref()) && name.ends_with(".js")
            })
        })
    });
    if !built {
        let client = pkg.join(format!("{}.js", options.output_name));
        tracing::warn!(
            path = %client.display(),
            "the web client is not built (run `cargo leptos build --release`); WebSocket and API routes still work"
        );
    }
    Ok(options)
}
