//! Command-line flags, each with a `CHORUS_*` environment fallback, in the groups
//! `--help` shows (and `docs/configuration.md`, which a test holds to it); and the
//! settings each part of the server is built from (`Config::hub`, `::connection`,
//! `::limits`, ...). `parse.rs` reads the values flags take.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser};
use ipnet::IpNet;

use crate::auth::ClaimsPolicy;
use crate::auth::jwks::JwksSource;
use crate::auth::permissions::Pattern;
use crate::hub::HubSettings;
use crate::hub::redis::RedisOptions;
use crate::limits::{AddressLimits, FailedAuth, OpenPerAddress, PerAddress, PublishLimits};
use crate::observe::logs::LogFormat;
use crate::observe::metrics::Metrics;
use crate::state::GuestTokens;
use crate::ws::connection::ConnectionSettings;
pub use parse::{parse_duration, parse_size};
use parse::{parse_net, parse_positive_duration, parse_write_delay};

mod parse;

/// Chorus: a real-time rooms server with a web client.
#[derive(Debug, Clone, Parser)]
#[command(name = "chorus", version, about)]
pub struct Config {
    /// Where the server listens, what it serves, and whom it believes about client addresses.
    #[command(flatten)]
    pub http: HttpConfig,
    /// Which tokens are accepted, and the server API's keys.
    #[command(flatten)]
    pub tokens: TokenConfig,
    /// Guest login for the web client.
    #[command(flatten)]
    pub guests: GuestConfig,
    /// How many rooms, how much history, and how presence is announced.
    #[command(flatten)]
    pub rooms: RoomConfig,
    /// What each socket may do, and how many there may be.
    #[command(flatten)]
    pub connections: ConnectionConfig,
    /// Sharing rooms with other servers through Redis.
    #[command(flatten)]
    pub redis: RedisConfig,
    /// Metrics and logs.
    #[command(flatten)]
    pub observe: ObserveConfig,
}

/// Where the server listens, what it serves, and whom it believes about client addresses.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "HTTP")]
pub struct HttpConfig {
    /// Address to listen on (use port 0 for any free port).
    #[arg(long, env = "CHORUS_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// Directory holding the built web client (`cargo leptos build` writes it).
    #[arg(long, env = "CHORUS_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,

    /// Web origins whose pages may open sockets (comma-separated, e.g.
    /// `https://app.example.com`). Without it, pages served from the request's own
    /// host may; clients that send no `Origin` (non-browsers) always may.
    #[arg(long, env = "CHORUS_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Proxies (addresses or CIDR blocks, comma-separated) whose `X-Forwarded-For` /
    /// `Forwarded` headers name the client; other peers' headers are ignored.
    #[arg(long, env = "CHORUS_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_net)]
    pub trusted_proxies: Vec<IpNet>,

    /// An HTTP connection must send a request's headers within this long, also while
    /// idle between requests, and then the request's body within this long again;
    /// otherwise it is closed (a late body is answered 408 first). WebSockets are not
    /// affected.
    #[arg(long, env = "CHORUS_HTTP_IDLE_TIMEOUT", default_value = "10s", value_parser = parse_positive_duration)]
    pub http_idle_timeout: Duration,

    /// HTTP connections one client address (IPv6: its /64) may hold open at once;
    /// more are closed as soon as they are accepted. A connection is counted until it
    /// closes or becomes a WebSocket; those from `--trusted-proxies` are not counted.
    #[arg(long, env = "CHORUS_MAX_HTTP_CONNECTIONS_PER_ADDRESS", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_http_connections_per_address: u32,
}

/// Which tokens are accepted, and the server API's keys.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Tokens")]
pub struct TokenConfig {
    /// HS256 secret that signs and verifies JWTs. When absent, a random secret is
    /// generated at start (tokens then do not survive a restart); with `--redis-url`
    /// and guest login on, it is required (every server must share it).
    #[arg(long, env = "CHORUS_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// A PEM public key (RSA, EC P-256 / P-384, or Ed25519) whose tokens are accepted,
    /// with the algorithms its type allows (RS256/RS384/RS512/PS256, ES256, ES384,
    /// EdDSA). Repeat the flag (or separate paths with commas) for several.
    #[arg(
        long = "jwt-public-key",
        env = "CHORUS_JWT_PUBLIC_KEYS",
        value_delimiter = ','
    )]
    pub jwt_public_keys: Vec<PathBuf>,

    /// An identity provider's JWKS (e.g. `https://id.example.com/.well-known/jwks.json`;
    /// plain `http://` only to a loopback address; redirects are not followed):
    /// fetched at start (the server refuses to start without it), refreshed every
    /// `--jwks-refresh`, and fetched again when a token names an unknown key id.
    #[arg(long, env = "CHORUS_JWKS_URL", conflicts_with = "jwks_file")]
    pub jwks_url: Option<String>,

    /// A JWKS in a file, read like `--jwks-url`.
    #[arg(long, env = "CHORUS_JWKS_FILE")]
    pub jwks_file: Option<PathBuf>,

    /// How often the JWKS is fetched again.
    #[arg(long, env = "CHORUS_JWKS_REFRESH", default_value = "5m", value_parser = parse_positive_duration)]
    pub jwks_refresh: Duration,

    /// When set, every token must carry this `iss` (guest tokens issued here do).
    #[arg(long, env = "CHORUS_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// When set, every token's `aud` must include this (guest tokens issued here do).
    /// When not, `aud` is not checked.
    #[arg(long, env = "CHORUS_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// A key the application's backend authenticates to the server API with
    /// (`Authorization: Bearer <key>`); at least 32 characters. Repeat the flag (or
    /// separate keys with commas) to accept several, e.g. while rotating.
    #[arg(
        long = "api-key",
        env = "CHORUS_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<String>,

    /// Failed authentications to the HTTP API (a wrong API key or token) one client
    /// address may make in a minute; then it is answered 429 with `Retry-After`,
    /// whatever it sends, until a minute after its first failure.
    #[arg(long, env = "CHORUS_FAILED_AUTH_LIMIT", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    pub failed_auth_limit: u32,
}

/// Guest login for the web client.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Guests")]
pub struct GuestConfig {
    /// Rooms guest tokens may join and post in: room names and prefixes ending in `*`,
    /// comma-separated (e.g. `lobby,public-*`). Others close with 4003.
    #[arg(
        long,
        env = "CHORUS_GUEST_ROOMS",
        value_delimiter = ',',
        default_value = "*"
    )]
    pub guest_rooms: Vec<Pattern>,

    /// Disable `POST /api/token` (guest login); tokens must then come from your own issuer.
    #[arg(long, env = "CHORUS_NO_GUEST_LOGIN")]
    pub no_guest_login: bool,

    /// Lifetime of guest tokens issued by `POST /api/token`.
    #[arg(long, env = "CHORUS_GUEST_TOKEN_TTL", default_value = "24h", value_parser = parse_duration)]
    pub guest_token_ttl: Duration,

    /// How long after expiring a guest token may still be exchanged for a fresh one
    /// with the same identity (`POST /api/token/refresh`).
    #[arg(long, env = "CHORUS_GUEST_REFRESH_GRACE", default_value = "7d", value_parser = parse_duration)]
    pub guest_refresh_grace: Duration,

    /// Guest tokens (`POST /api/token`) per client address and minute (sustained);
    /// more are answered 429 with `Retry-After`.
    #[arg(long, env = "CHORUS_GUEST_TOKEN_RATE_LIMIT", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub guest_token_rate_limit: u32,

    /// Guest tokens one client address may get at once.
    #[arg(long, env = "CHORUS_GUEST_TOKEN_RATE_LIMIT_BURST", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    pub guest_token_rate_limit_burst: u32,
}

/// How many rooms, how much history, and how presence is announced.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Rooms and history")]
pub struct RoomConfig {
    /// Rooms listed by `GET /api/rooms` to callers without a token (with their member
    /// counts), comma-separated patterns (e.g. `lobby,public-*`); none by default.
    /// A member's token sees the rooms it may join; an API key, every room.
    #[arg(long, env = "CHORUS_PUBLIC_ROOMS", value_delimiter = ',')]
    pub public_rooms: Vec<Pattern>,

    /// Rooms that may exist at once (with Redis: across every server). A join that
    /// would create one more is closed with 1013; existing rooms keep admitting.
    #[arg(long, env = "CHORUS_MAX_ROOMS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_rooms: u32,

    /// Messages kept per room in memory, for history on join and `since` recovery.
    #[arg(long, env = "CHORUS_HISTORY_SIZE", default_value_t = 100)]
    pub history_size: usize,

    /// Retained history all rooms together may hold in memory (e.g. `256MiB`, `16MiB`,
    /// `512KiB`, or bytes); beyond it the least recently active rooms lose their
    /// oldest messages first. With Redis, bound Redis itself with `maxmemory`.
    #[arg(long, env = "CHORUS_HISTORY_MEMORY", default_value = "256MiB", value_parser = parse_size)]
    pub history_memory: usize,

    /// How long a user whose last connection closed is still listed before others are
    /// told it left; a reconnect within it announces nothing (`0s`: at once).
    #[arg(long, env = "CHORUS_PRESENCE_GRACE", default_value = "5s", value_parser = parse_duration)]
    pub presence_grace: Duration,

    /// Joins and leaves announced one by one in a room per 250 ms; past that, during a
    /// burst, they are gathered into one `presence` frame per 250 ms, so a storm of N
    /// joins costs each member a few frames instead of N (`0`: always gathered).
    #[arg(long, env = "CHORUS_PRESENCE_BURST", default_value_t = 16)]
    pub presence_burst: u32,
}

/// What each socket may do, and how many there may be.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connections")]
pub struct ConnectionConfig {
    /// Open chat sockets allowed at once; beyond it new sockets are closed with 1013.
    #[arg(long, env = "CHORUS_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// WebSockets (chat and echo) one client address may hold open at once (IPv6: its
    /// /64; behind `--trusted-proxies`, the forwarded client); more are answered 429
    /// before the upgrade.
    #[arg(long, env = "CHORUS_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_address: u32,

    /// Sockets of the unauthenticated echo endpoint (`GET /ws`) allowed at once, a pool
    /// of their own beside `--max-connections`: beyond it they are closed with 1013
    /// (`0`: the endpoint is off, 404).
    #[arg(long, env = "CHORUS_MAX_ECHO_CONNECTIONS", default_value_t = 100)]
    pub max_echo_connections: usize,

    /// Chat sockets one user (token `sub`) may hold open on this server; more are
    /// closed with 4029.
    #[arg(long, env = "CHORUS_MAX_CONNECTIONS_PER_USER", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_user: u32,

    /// WebSocket upgrades allowed per client address and second (sustained); more are
    /// answered 429 before the upgrade.
    #[arg(long, env = "CHORUS_CONNECT_RATE_LIMIT", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub connect_rate_limit: u32,

    /// WebSocket upgrades one client address may make at once.
    #[arg(long, env = "CHORUS_CONNECT_RATE_LIMIT_BURST", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub connect_rate_limit_burst: u32,

    /// How often the server sends `{"type":"ping"}` (e.g. 30s, 500ms).
    #[arg(long, env = "CHORUS_HEARTBEAT_INTERVAL", default_value = "30s", value_parser = parse_positive_duration)]
    pub heartbeat_interval: Duration,

    /// Extra silence allowed after a heartbeat interval before closing with 4009.
    #[arg(long, env = "CHORUS_HEARTBEAT_TIMEOUT", default_value = "10s", value_parser = parse_positive_duration)]
    pub heartbeat_timeout: Duration,

    /// Largest WebSocket message accepted, in bytes; bigger ones close the socket with 1009.
    #[arg(long, env = "CHORUS_MAX_MESSAGE_BYTES", default_value_t = 65536, value_parser = clap::value_parser!(u32).range(256..))]
    pub max_message_bytes: u32,

    /// Chat messages per second allowed per connection (sustained rate); `refresh`
    /// frames and refused frames count too.
    #[arg(long, env = "CHORUS_RATE_LIMIT", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit: u32,

    /// Chat messages a connection may send at once before the rate limit applies.
    #[arg(long, env = "CHORUS_RATE_LIMIT_BURST", default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_burst: u32,

    /// Chat messages per second one user may send across all its sockets on this
    /// server (sustained); past it they are refused with `rate_limited`.
    #[arg(long, env = "CHORUS_USER_RATE_LIMIT", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub user_rate_limit: u32,

    /// Chat messages one user may send at once across its sockets.
    #[arg(long, env = "CHORUS_USER_RATE_LIMIT_BURST", default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..))]
    pub user_rate_limit_burst: u32,

    /// Chat messages per second one client address (IPv6: its /64; behind
    /// `--trusted-proxies`, the forwarded client) may send across all its users and
    /// sockets (sustained); past it they are refused with `rate_limited`.
    #[arg(long, env = "CHORUS_ADDRESS_RATE_LIMIT", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub address_rate_limit: u32,

    /// Chat messages one client address may send at once.
    #[arg(long, env = "CHORUS_ADDRESS_RATE_LIMIT_BURST", default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub address_rate_limit_burst: u32,

    /// Frames (by size, e.g. `1MiB`, `256KiB`) queued per connection before it is
    /// closed with 4008 as too slow to keep up.
    #[arg(long, env = "CHORUS_SEND_QUEUE_MEMORY", default_value = "1MiB", value_parser = parse_size)]
    pub send_queue_memory: usize,

    /// How often at most a room receiving over 200 frames a second sends to its
    /// members: its frames are gathered and go out together, framed once for all of
    /// them, one send per member instead of one per frame (`0`: every frame at once).
    /// Rooms receiving fewer send every frame at once.
    #[arg(long, env = "CHORUS_WRITE_DELAY", default_value = "20ms", value_parser = parse_write_delay)]
    pub write_delay: Duration,
}

/// Sharing rooms with other servers through Redis.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Redis")]
pub struct RedisConfig {
    /// Share rooms with every server using this Redis (e.g. redis://127.0.0.1:6379).
    /// Without it, rooms live in this process only.
    #[arg(long, env = "CHORUS_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// With Redis: a server silent for this long is considered dead, and its members
    /// leave the rooms' presence.
    #[arg(long, env = "CHORUS_REDIS_NODE_TTL", default_value = "10s", value_parser = parse_positive_duration)]
    pub redis_node_ttl: Duration,

    /// With Redis: a room's history and ids are dropped after this long without a message.
    #[arg(long, env = "CHORUS_REDIS_RETENTION", default_value = "7d", value_parser = parse_positive_duration)]
    pub redis_retention: Duration,
}

/// Metrics and logs.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Observability")]
pub struct ObserveConfig {
    /// Serve Prometheus metrics at `http://ADDR/metrics` on a listener of their own
    /// (e.g. `127.0.0.1:9100`; never the public port). Off when not set.
    #[arg(long, env = "CHORUS_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Log lines as human-readable text (`text`) or one JSON object per line (`json`).
    #[arg(long, env = "CHORUS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl Config {
    /// The configuration with no flags given (`CHORUS_*` variables still apply).
    pub fn defaults() -> Self {
        Config::parse_from(["chorus"])
    }

    /// The hub's settings, counting into `metrics`.
    pub(crate) fn hub(&self, metrics: Arc<Metrics>) -> HubSettings {
        HubSettings {
            metrics,
            history_size: self.rooms.history_size,
            queue_bytes: self.connections.send_queue_memory,
            max_rooms: self.rooms.max_rooms as usize,
            history_memory: self.rooms.history_memory,
            presence_grace: self.rooms.presence_grace,
            presence_burst: self.rooms.presence_burst,
            write_delay: self.connections.write_delay,
        }
    }

    /// With `--redis-url`: how to reach Redis.
    pub(crate) fn redis_options(&self) -> Option<RedisOptions> {
        let url = self.redis.redis_url.clone()?;
        Some(RedisOptions {
            url,
            node_ttl: self.redis.redis_node_ttl,
            retention: self.redis.redis_retention,
        })
    }

    /// Every connection's limits and timers, counting refused frames into `metrics`.
    pub(crate) fn connection(&self, metrics: Arc<Metrics>) -> ConnectionSettings {
        let connections = &self.connections;
        ConnectionSettings {
            heartbeat_interval: connections.heartbeat_interval,
            heartbeat_timeout: connections.heartbeat_timeout,
            max_message_bytes: connections.max_message_bytes as usize,
            rate_limit: connections.rate_limit,
            rate_limit_burst: connections.rate_limit_burst,
            // A write may take as long as a silent client is given.
            write_timeout: connections.heartbeat_timeout,
            publish_limits: Arc::new(PublishLimits::new(
                connections.user_rate_limit,
                connections.user_rate_limit_burst,
                connections.address_rate_limit,
                connections.address_rate_limit_burst,
            )),
            metrics,
        }
    }

    /// The limits per client address (upgrades, open sockets and HTTP connections,
    /// guest tokens), and whom to believe about addresses.
    pub(crate) fn limits(&self) -> AddressLimits {
        AddressLimits {
            upgrades: PerAddress::new(
                self.connections.connect_rate_limit,
                Duration::from_secs(1),
                self.connections.connect_rate_limit_burst,
            ),
            guest_tokens: PerAddress::new(
                self.guests.guest_token_rate_limit,
                Duration::from_secs(60),
                self.guests.guest_token_rate_limit_burst,
            ),
            failed_auth: FailedAuth::new(self.tokens.failed_auth_limit),
            open_sockets: OpenPerAddress::new(
                self.connections.max_connections_per_address as usize,
            ),
            open_http_connections: OpenPerAddress::new(
                self.http.max_http_connections_per_address as usize,
            ),
            trusted_proxies: self.http.trusted_proxies.clone(),
        }
    }

    /// How guest tokens are issued; `None` with `--no-guest-login`.
    pub(crate) fn guest_tokens(&self) -> Option<GuestTokens> {
        (!self.guests.no_guest_login).then_some(GuestTokens {
            ttl: self.guests.guest_token_ttl,
            refresh_grace: self.guests.guest_refresh_grace,
        })
    }

    /// What `iss` and `aud` every token must carry.
    pub(crate) fn claims_policy(&self) -> ClaimsPolicy {
        ClaimsPolicy {
            issuer: self.tokens.jwt_issuer.clone(),
            audience: self.tokens.jwt_audience.clone(),
        }
    }

    /// Where an identity provider's key set comes from, if anywhere.
    pub(crate) fn jwks_source(&self) -> Option<JwksSource> {
        match (&self.tokens.jwks_url, &self.tokens.jwks_file) {
            (Some(url), _) => Some(JwksSource::Url(url.clone())),
            (None, Some(path)) => Some(JwksSource::File(path.clone())),
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests;
