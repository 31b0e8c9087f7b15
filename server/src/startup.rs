//! Starting and stopping: configuration into the state every handler shares, the listener, and
//! graceful shutdown.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use leptos::config::LeptosOptions;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::api_keys::{ApiKeys, WeakApiKey};
use crate::auth::jwks::{Jwks, JwksError, refresh_periodically};
use crate::auth::signing_keys::{KeyError, VerifyingKey};
use crate::auth::{Auth, MIN_SECRET_BYTES};
use crate::config::Config;
use crate::http::router::router;
use crate::http::serve::serve;
use crate::hub::Hub;
use crate::hub::redis::RedisStartError;
use crate::limits::{AddressLimits, UserSockets};
use crate::observe::metrics::{Metrics, Sample};
use crate::state::AppState;

/// Everything between the shutdown signal and the process exit fits in this.
const SHUTDOWN_BUDGET: Duration = Duration::from_millis(4500);

/// Why the server did not start (or stopped serving).
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Names the flag, never the value.
    #[error(
        "--jwt-secret (CHORUS_JWT_SECRET) is {bytes} bytes long; it must be at least {MIN_SECRET_BYTES} \
         (e.g. `openssl rand -base64 32`), since a short or empty secret lets anyone forge tokens"
    )]
    WeakSecret {
        /// The secret's length.
        bytes: usize,
    },
    /// Several servers on one Redis, each with a random secret of its own: a guest
    /// token from one would be refused by the others behind a load balancer.
    #[error(
        "--redis-url is set, so servers share rooms, but --jwt-secret (CHORUS_JWT_SECRET) is not:          every server would sign guest tokens with a random secret of its own, which the others          refuse; give every server the same --jwt-secret (e.g. `openssl rand -base64 32`),          or turn guests off with --no-guest-login"
    )]
    SecretNotShared,
    /// An `--api-key` too short.
    #[error(transparent)]
    WeakApiKey(#[from] WeakApiKey),
    /// A `--jwt-public-key` file could not be read.
    #[error("cannot read --jwt-public-key {path}")]
    ReadPublicKey {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A `--jwt-public-key` is not a public key this server can use.
    #[error("--jwt-public-key {path} cannot be used")]
    PublicKey {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: KeyError,
    },
    /// The identity provider's key set could not be had.
    #[error(transparent)]
    Jwks(#[from] JwksError),
    #[error("cannot listen for metrics on {addr}")]
    /// `--metrics-addr` could not be bound.
    MetricsBind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    #[error("cannot listen on {addr}")]
    /// `--addr` could not be bound.
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// Leptos's own settings are wrong.
    #[error("cannot read the Leptos configuration from LEPTOS_* variables")]
    LeptosConfig(#[source] leptos::config::errors::LeptosConfigError),
    /// Redis could not be used.
    #[error(transparent)]
    Redis(#[from] RedisStartError),
    /// Serving failed.
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

/// The HS256 secret: `--jwt-secret`, or a random one (guest tokens then do not
/// survive a restart), which servers sharing rooms through Redis cannot use.
fn jwt_secret(config: &Config) -> Result<Vec<u8>, StartupError> {
    let tokens = &config.tokens;
    match &tokens.jwt_secret {
        // Set but short, or empty (an unset variable in a compose file): refused,
        // not quietly replaced by a random one.
        Some(secret) if secret.len() < MIN_SECRET_BYTES => Err(StartupError::WeakSecret {
            bytes: secret.len(),
        }),
        Some(secret) => Ok(secret.as_bytes().to_vec()),
        None if config.redis.redis_url.is_some() && config.guest_tokens().is_some() => {
            Err(StartupError::SecretNotShared)
        }
        None if tokens.jwt_public_keys.is_empty() && config.jwks_source().is_none() => {
            tracing::warn!(
                "no --jwt-secret given: using a random secret, so tokens will not survive a restart"
            );
            Ok(Auth::random_secret())
        }
        // Tokens come from the identity provider; the secret only signs guests'.
        None => Ok(Auth::random_secret()),
    }
}

/// Token verification: the secret, the claims policy, guests' rooms, the public keys,
/// and the identity provider's key set (fetched now, then refreshed periodically).
async fn auth(config: &Config) -> Result<Auth, StartupError> {
    let mut auth = Auth::with_policy(&jwt_secret(config)?, config.claims_policy())
        .with_guest_rooms(config.guests.guest_rooms.clone().into())
        .with_public_keys(public_keys(&config.tokens.jwt_public_keys)?);
    if let Some(source) = config.jwks_source() {
        let jwks = Jwks::load(source).await?;
        refresh_periodically(Arc::downgrade(&jwks), config.tokens.jwks_refresh);
        auth = auth.with_jwks(jwks);
    }
    Ok(auth)
}

/// With `--metrics-addr`: its listener, bound now, and how it samples the hub.
async fn metrics_listener(
    addr: Option<SocketAddr>,
    metrics: Arc<Metrics>,
    hub: &Hub,
) -> Result<Option<(TcpListener, Arc<Metrics>, Sample)>, StartupError> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::MetricsBind { addr, source })?;
    let sampled = hub.clone();
    let sample: Sample = Arc::new(move |metrics: &Metrics| {
        metrics.rooms.set(sampled.occupied_rooms() as i64);
    });
    Ok(Some((listener, metrics, sample)))
}

/// The server API's removals (from any server, with Redis) close the user's sockets
/// here.
fn close_removed_users(hub: &Hub, user_sockets: Arc<UserSockets>) {
    hub.on_removal(Arc::new(move |user_id: &str, reason: &str| {
        let closed = user_sockets.remove(user_id, reason);
        tracing::info!(user = user_id, sockets = closed, "removed a user");
    }));
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
    address_limits: Arc<AddressLimits>,
}

impl Application {
    /// Builds the server from `config`: keys, the hub (connecting to Redis), the listeners.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let auth = auth(&config).await?;
        let api_keys = ApiKeys::new(&config.tokens.api_keys)?;
        let addr = config.http.addr;
        let listener = listen(addr).map_err(|source| StartupError::Bind { addr, source })?;
        let addr = listener.local_addr()?;
        let metrics = Arc::new(Metrics::default());
        let hub = match config.redis_options() {
            Some(options) => Hub::redis(config.hub(metrics.clone()), options).await?,
            None => Hub::memory(config.hub(metrics.clone())),
        };
        let state = AppState {
            hub: hub.clone(),
            auth: Arc::new(auth),
            api_keys: Arc::new(api_keys),
            connection: Arc::new(config.connection(metrics.clone())),
            guests: config.guest_tokens(),
            permits: Arc::new(Semaphore::new(config.connections.max_connections)),
            echo_permits: (config.connections.max_echo_connections > 0)
                .then(|| Arc::new(Semaphore::new(config.connections.max_echo_connections))),
            user_sockets: UserSockets::new(config.connections.max_connections_per_user as usize),
            address_limits: Arc::new(config.limits()),
            public_rooms: Arc::new(config.rooms.public_rooms.clone().into()),
            allowed_origins: Arc::new(config.http.allowed_origins.clone()),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            body_timeout: config.http.http_idle_timeout,
            leptos_options: leptos_options(&config, addr)?,
        };
        let metrics = metrics_listener(config.observe.metrics_addr, metrics, &hub).await?;
        close_removed_users(&hub, state.user_sockets.clone());
        Ok(Application {
            listener,
            metrics,
            addr,
            shutdown: state.shutdown.clone(),
            tasks: state.tasks.clone(),
            hub,
            http_idle_timeout: config.http.http_idle_timeout,
            address_limits: state.address_limits.clone(),
            router: router(state),
        })
    }

    /// The address it listens on (the port chosen, for port 0).
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
            // With the main listener's timeouts and per-address count: a scraper is
            // a client like any other.
            tokio::spawn(serve(
                listener,
                crate::observe::metrics::router(metrics, sample),
                self.http_idle_timeout,
                self.address_limits.clone(),
                shutdown.clone(),
                TaskTracker::new(),
            ));
        }
        tracing::info!("listening on http://{}", self.addr);
        // Serves until the shutdown token is cancelled.
        let connections = TaskTracker::new();
        serve(
            self.listener,
            self.router,
            self.http_idle_timeout,
            self.address_limits,
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

/// Connections the kernel holds for us before we accept them, capped by the kernel
/// at `net.core.somaxconn` (4096 by default since Linux 5.4).
///
/// Tokio's `bind` asks for 1024: in a reconnect storm (every client of a restarted
/// node coming back at once) the queue overflowed while the two cores were busy with
/// the first upgrades, and each dropped handshake was retried by the client only a
/// second later. That second was most of a 1000-member join storm.
const LISTEN_BACKLOG: u32 = 65_535;

/// A listening socket as `TcpListener::bind` makes one (address reuse on Unix, so a
/// restart does not wait out TIME_WAIT), with room for a storm of connects.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
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
            .site_root(config.http.site_root.to_string_lossy().into_owned())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The longest accept queue the kernel grants a listener, read back the way `ss`
    /// does (for a listening socket, TCP_INFO's `tcpi_sacked` is its backlog).
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)] // getsockopt has no safe wrapper in libc.
    fn backlog(listener: &TcpListener) -> u32 {
        use std::os::fd::AsRawFd;
        // SAFETY: a zeroed tcp_info is valid, and getsockopt writes at most `len`
        // bytes into it.
        let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let result = unsafe {
            libc::getsockopt(
                listener.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&mut info as *mut libc::tcp_info).cast(),
                &mut len,
            )
        };
        assert_eq!(result, 0, "{}", io::Error::last_os_error());
        info.tcpi_sacked
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_listener_queues_as_many_connects_as_the_kernel_allows() {
        let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_eq!(backlog(&listener), somaxconn.min(LISTEN_BACKLOG));
    }

    #[tokio::test]
    async fn a_listener_takes_connections_on_v4_and_v6() {
        for addr in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(listener) = listen(addr.parse().unwrap()) else {
                // No IPv6 on this machine.
                assert!(addr.starts_with('['));
                continue;
            };
            let addr = listener.local_addr().unwrap();
            let (connected, accepted) =
                tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
            assert_eq!(
                connected.unwrap().local_addr().unwrap(),
                accepted.unwrap().1
            );
        }
    }
}
