//! Command-line flags, each with a `CHORUS_*` environment fallback.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use ipnet::IpNet;

use crate::auth::permissions::Pattern;

/// Chorus: a real-time rooms server with a web client.
#[derive(Debug, Clone, Parser)]
#[command(name = "chorus", version, about)]
pub struct Config {
    /// Address to listen on (use port 0 for any free port).
    #[arg(long, env = "CHORUS_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// HS256 secret that signs and verifies JWTs. When absent, a random secret is
    /// generated at start (tokens then do not survive a restart).
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

    /// An identity provider's JWKS (e.g. `https://id.example.com/.well-known/jwks.json`):
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

    /// Rooms that may exist at once (with Redis: across every server). A join that
    /// would create one more is closed with 1013; existing rooms keep admitting.
    #[arg(long, env = "CHORUS_MAX_ROOMS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_rooms: u32,

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

    /// Messages kept per room in memory, for history on join and `since` recovery.
    #[arg(long, env = "CHORUS_HISTORY_SIZE", default_value_t = 100)]
    pub history_size: usize,

    /// How often the server sends `{"type":"ping"}` (e.g. 30s, 500ms).
    #[arg(long, env = "CHORUS_HEARTBEAT_INTERVAL", default_value = "30s", value_parser = parse_positive_duration)]
    pub heartbeat_interval: Duration,

    /// Extra silence allowed after a heartbeat interval before closing with 4009.
    #[arg(long, env = "CHORUS_HEARTBEAT_TIMEOUT", default_value = "10s", value_parser = parse_positive_duration)]
    pub heartbeat_timeout: Duration,

    /// Largest WebSocket message accepted, in bytes; bigger ones close the socket with 1009.
    #[arg(long, env = "CHORUS_MAX_MESSAGE_BYTES", default_value_t = 65536, value_parser = clap::value_parser!(u32).range(256..))]
    pub max_message_bytes: u32,

    /// Chat messages per second allowed per connection (sustained rate).
    #[arg(long, env = "CHORUS_RATE_LIMIT", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit: u32,

    /// Chat messages a connection may send at once before the rate limit applies.
    #[arg(long, env = "CHORUS_RATE_LIMIT_BURST", default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_burst: u32,

    /// Open WebSockets allowed at once; beyond it new sockets are closed with 1013.
    #[arg(long, env = "CHORUS_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Chat sockets one user (token `sub`) may hold open on this server; more are
    /// closed with 4029.
    #[arg(long, env = "CHORUS_MAX_CONNECTIONS_PER_USER", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_user: u32,

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

    /// WebSocket upgrades allowed per client address and second (sustained); more are
    /// answered 429 before the upgrade.
    #[arg(long, env = "CHORUS_CONNECT_RATE_LIMIT", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub connect_rate_limit: u32,

    /// WebSocket upgrades one client address may make at once.
    #[arg(long, env = "CHORUS_CONNECT_RATE_LIMIT_BURST", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub connect_rate_limit_burst: u32,

    /// Guest tokens (`POST /api/token`) per client address and minute (sustained);
    /// more are answered 429 with `Retry-After`.
    #[arg(long, env = "CHORUS_GUEST_TOKEN_RATE_LIMIT", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub guest_token_rate_limit: u32,

    /// Guest tokens one client address may get at once.
    #[arg(long, env = "CHORUS_GUEST_TOKEN_RATE_LIMIT_BURST", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    pub guest_token_rate_limit_burst: u32,

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
    /// idle between requests; otherwise it is closed (WebSockets are not affected).
    #[arg(long, env = "CHORUS_HTTP_IDLE_TIMEOUT", default_value = "10s", value_parser = parse_positive_duration)]
    pub http_idle_timeout: Duration,

    /// Serve Prometheus metrics at `http://ADDR/metrics` on a listener of their own
    /// (e.g. `127.0.0.1:9100`; never the public port). Off when not set.
    #[arg(long, env = "CHORUS_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Log lines as human-readable text (`text`) or one JSON object per line (`json`).
    #[arg(long, env = "CHORUS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Directory holding the built web client (`cargo leptos build` writes it).
    #[arg(long, env = "CHORUS_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Config {
    /// The configuration with no flags given (`CHORUS_*` variables still apply).
    pub fn defaults() -> Self {
        Config::parse_from(["chorus"])
    }
}

/// Parses `250ms`, `30s`, `5m`, `24h`, `7d`, or a bare number of seconds (`1.5`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 500ms, 30s, 5m, 24h or 7d"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86400.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?}; use ms, s, m, h or d"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|err| format!("{text:?}: {err}"))
}

/// A size: bytes (`65536`) or with a unit, `KiB`, `MiB`, `GiB` (powers of 1024; `KB`,
/// `MB`, `GB` and `K`, `M`, `G` are read the same way).
pub fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: usize = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 256MiB, 16MiB or 65536"))?;
    let scale: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?}; use KiB, MiB or GiB")),
    };
    number
        .checked_mul(scale)
        .filter(|bytes| *bytes > 0)
        .ok_or_else(|| format!("{text:?} must be more than zero and less than the address space"))
}

/// `10.0.0.0/8`, `fd00::/8`, or a single address (`10.0.0.1`).
fn parse_net(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is not an address or CIDR block like 10.0.0.0/8"))
}

fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        Duration::ZERO => Err("must be greater than zero".into()),
        duration => Ok(duration),
    }
}

/// A write delay is a latency every member of a busy room pays: a second is already far more
/// than any stream of frames needs to be gathered.
fn parse_write_delay(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        delay if delay > Duration::from_secs(1) => Err("must be at most 1s".into()),
        delay => Ok(delay),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("16 MB"), Ok(16 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("65536"), Ok(65536));
        for bad in [
            "",
            "0",
            "lots",
            "5 parsecs",
            "-1MiB",
            "99999999999999999999GiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_positive_duration("0s").is_err());
        assert_eq!(parse_write_delay("0"), Ok(Duration::ZERO));
        assert_eq!(parse_write_delay("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_write_delay("2s"), Err("must be at most 1s".into()));
    }

    #[test]
    fn defaults_match_the_documentation() {
        let config = Config::defaults();
        assert_eq!(config.addr, "127.0.0.1:3000".parse().unwrap());
        assert_eq!(config.history_size, 100);
        assert_eq!(config.guest_refresh_grace, Duration::from_secs(7 * 86400));
        assert_eq!(config.heartbeat_interval, Duration::from_secs(30));
        assert_eq!(config.heartbeat_timeout, Duration::from_secs(10));
        assert_eq!(config.max_message_bytes, 65536);
        assert_eq!((config.rate_limit, config.rate_limit_burst), (20, 40));
        assert_eq!(config.write_delay, Duration::from_millis(20));
        assert!(!config.no_guest_login);
    }

    #[test]
    fn flags_override_defaults() {
        let config = Config::try_parse_from([
            "chorus",
            "--addr",
            "0.0.0.0:8080",
            "--heartbeat-interval",
            "200ms",
            "--no-guest-login",
        ])
        .unwrap();
        assert_eq!(config.addr.port(), 8080);
        assert_eq!(config.heartbeat_interval, Duration::from_millis(200));
        assert!(config.no_guest_login);
        assert!(Config::try_parse_from(["chorus", "--rate-limit", "0"]).is_err());
    }

    /// One flag's row in `docs/configuration.md`: its section, variable and default.
    struct DocumentedFlag {
        section: String,
        env: String,
        default: String,
    }

    /// The rows of `docs/configuration.md`'s flag tables, by flag.
    fn documented_flags() -> std::collections::BTreeMap<String, DocumentedFlag> {
        let page = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/configuration.md"
        ));
        let mut flags = std::collections::BTreeMap::new();
        let mut section = String::new();
        for line in page.lines() {
            if let Some(heading) = line.strip_prefix("## ") {
                section = heading.trim().to_owned();
            }
            let Some(row) = line.strip_prefix("| `--") else {
                continue;
            };
            let cells: Vec<&str> = row.split(" | ").collect();
            assert!(cells.len() >= 4, "a flag row has 4 cells: {line}");
            let flag = cells[0].trim_end_matches('`').to_owned();
            let row = DocumentedFlag {
                section: section.clone(),
                env: cells[1].trim_matches('`').to_owned(),
                default: cells[2].to_owned(),
            };
            assert!(
                flags.insert(flag.clone(), row).is_none(),
                "--{flag} has two rows"
            );
        }
        flags
    }

    /// `chorus --help` and the configuration page list the same flags, each with the
    /// same variable, default and group.
    #[test]
    fn the_configuration_page_matches_the_flags() {
        use clap::CommandFactory;

        let mut documented = documented_flags();
        let command = Config::command();
        for arg in command.get_arguments() {
            let Some(flag) = arg.get_long() else { continue };
            let row = documented
                .remove(flag)
                .unwrap_or_else(|| panic!("--{flag} is missing from docs/configuration.md"));
            let env = arg.get_env().and_then(|env| env.to_str()).unwrap_or("");
            assert_eq!(row.env, env, "--{flag}: its variable");
            let defaults: Vec<_> = arg
                .get_default_values()
                .iter()
                .map(|value| value.to_string_lossy())
                .collect();
            if !arg.get_action().takes_values() {
                assert_eq!(row.default, "off", "--{flag} is a switch: off by default");
            } else if defaults.is_empty() {
                assert!(
                    !row.default.starts_with('`'),
                    "--{flag} has no default, but the page gives {}",
                    row.default
                );
            } else {
                assert_eq!(
                    row.default,
                    format!("`{}`", defaults.join(",")),
                    "--{flag}: its default"
                );
            }
            if let Some(heading) = arg.get_help_heading() {
                assert_eq!(row.section, heading, "--{flag}: its group");
            }
        }
        assert!(
            documented.is_empty(),
            "docs/configuration.md documents flags chorus does not have: {:?}",
            documented.keys().collect::<Vec<_>>()
        );
    }
}
