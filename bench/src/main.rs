//! `bench`: parses the flags and runs the scenario (see the library's docs).

use chorus_bench::args::Args;
use clap::Parser;

#[tokio::main]
async fn main() {
    chorus_bench::run(Args::parse()).await;
}
