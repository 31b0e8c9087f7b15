//! The bench's flags: which scenario, how big, against what.

use std::time::Duration;

use clap::Parser;

/// What a run measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// N members in one room, one sender publishing M messages at a rate.
    Fanout,
    /// N members connect to one room at once; time until everyone knows everyone.
    Storm,
    /// N members, each alone in a room, idle but answering pings for `--hold`:
    /// server memory per connection.
    Idle,
    /// N members in `--rooms` rooms, a sender per room publishing M messages at
    /// `--rate` per second each: many small rooms.
    Rooms,
    /// N members over `--nodes` servers sharing rooms through a Redis the bench
    /// starts (`--cluster`: a three-master Redis Cluster), in rooms of every size
    /// (one of N/10, rooms of 1,000, rooms of 10), every room publishing steadily
    /// for `--hold`, the members spread over load processes.
    Scale,
    /// Members of rooms of 20 over `--nodes` servers sharing a Redis the bench starts
    /// (with an append-only file), for `--duration`: members reconnect with `since`
    /// every `--churn` on average (one in ten leaves for good, someone new taking
    /// its place), servers restart one at a time (SIGTERM, once SIGKILL), Redis
    /// restarts once, `--rate` messages a second over all rooms. Reports losses and
    /// duplicates (which must be none) and the memory slope of every server and Redis.
    Soak,
}

/// A reference server from `../shared/peers/`, built and started by the bench.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Peer {
    /// The naive axum port (tokio broadcast per room) the targets are stated against.
    AxumNaive,
    /// The FastAPI server Chorus grew from.
    FastapiSeed,
}

/// Runs one benchmark scenario against the release server (or a reference peer, or
/// any running server) and prints its figures.
#[derive(Parser)]
pub struct Args {
    /// Measure a reference peer instead of Chorus (built in target/peers on first use).
    #[arg(long, value_enum, conflicts_with_all = ["url", "redis_url"])]
    pub peer: Option<Peer>,
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Scenario::Fanout)]
    pub scenario: Scenario,
    /// Members connected to the room (all receive every message).
    #[arg(long, default_value_t = 2000)]
    pub members: usize,
    /// Rooms the members are spread over (rooms scenario).
    #[arg(long, default_value_t = 1000)]
    pub rooms: usize,
    /// How long the idle scenario holds its connections.
    #[arg(long, default_value = "10s", value_parser = chorus_server::config::parse_duration)]
    pub hold: Duration,
    /// Messages the sender publishes.
    #[arg(long, default_value_t = 200)]
    pub messages: usize,
    /// Messages per second from the sender.
    #[arg(long, default_value_t = 50)]
    pub rate: u32,
    /// Bytes of filler per message.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Target an already running server (`ws://host:port`) instead of starting one.
    #[arg(long)]
    pub url: Option<String>,
    /// Process id of the `--url` server, to report its memory and CPU.
    #[arg(long)]
    pub pid: Option<u32>,
    /// HS256 secret of the target server.
    #[arg(long, default_value = "bench-secret-of-at-least-32-bytes")]
    pub secret: String,
    /// Start the server with `--redis-url` (the Redis engine) instead of in-memory rooms.
    #[arg(long)]
    pub redis_url: Option<String>,
    /// With `--redis-url`: servers to start; members are spread over them round-robin
    /// and the sender uses the first, so most deliveries cross servers.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub nodes: u32,
    /// The server binary to start.
    #[arg(long, default_value = "target/release/chorus")]
    pub server: String,
    /// Scale scenario: start a three-master Redis Cluster instead of one Redis.
    #[arg(long)]
    pub cluster: bool,
    /// How long the soak runs.
    #[arg(long, default_value = "30m", value_parser = chorus_server::config::parse_duration)]
    pub duration: Duration,
    /// Soak: a member's mean time between reconnects.
    #[arg(long, default_value = "60s", value_parser = chorus_server::config::parse_duration)]
    pub churn: Duration,
    /// Scale scenario: this long into the hold, cut every client connection of the
    /// (first) Redis node (`CLIENT KILL TYPE normal`, then `pubsub`), as a network
    /// blip would.
    #[arg(long, value_parser = chorus_server::config::parse_duration, conflicts_with = "redis_url")]
    pub cut_redis_at: Option<Duration>,
    /// Scale scenario: load processes (default: enough for 17,000 sockets each).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Runs one load process of the scale scenario (started by the bench itself).
    #[arg(long, hide = true)]
    pub scale_worker: Option<String>,
}
