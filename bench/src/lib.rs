//! The benchmark behind `make bench`: scenarios against the release server, figures
//! printed, never pass/fail (see `docs/benchmarks.md`).
//!
//! Starts the release server as a child process (or targets `--url`, e.g. the
//! FastAPI peer), connects the members, then prints delivery throughput, latency
//! percentiles, the server's resident memory per connection and its CPU time.
//!
//! ```text
//! make bench                      # defaults: 2000 members, 200 messages at 50/s
//! target/release/bench --members 5000 --messages 100 --rate 500
//! target/release/bench --url ws://127.0.0.1:8001 --secret dev-secret-change-me-to-32-bytes-or-more --pid PID
//! ```
//!
//! Figures, not pass/fail: compare runs on the same machine.
//!
//! # Layout
//!
//! - [`args`]: the flags; `main.rs` parses them and calls [`run`];
//! - [`load`]: the load generator (members that answer pings and count what they
//!   receive), shared with the test suite (`tests/load.rs`);
//! - `single.rs`: the scenarios of one room (fanout, storm, idle, rooms);
//! - `scale/`: many rooms over many servers and load processes; `soak/`: a long run
//!   with churn and restarts, and the rules its members check;
//! - `servers.rs`, `redis_servers.rs`: the processes a run starts; `measure.rs`: what
//!   it reads off them.

pub mod args;
pub mod load;
mod measure;
mod redis_servers;
mod scale;
mod servers;
mod single;
mod soak;

use args::{Args, Scenario};

/// Runs what `args` asks for: one scale worker, or a scenario and its figures.
pub async fn run(args: Args) {
    if let Some(spec) = &args.scale_worker {
        scale::worker(spec).await;
        return;
    }
    if args.scenario == Scenario::Scale {
        scale::coordinator::run_scale(&args).await;
        return;
    }
    if args.scenario == Scenario::Soak {
        soak::run(&args).await;
        return;
    }
    single::run(&args).await;
}
