//! The real `chorus` binary as a child process.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};

use super::PATIENCE;

/// The `chorus` binary, started with `args`, and its log lines up to "listening on".
pub(crate) struct Binary {
    pub child: tokio::process::Child,
    pub lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    pub addr: String,
    pub startup_log: Vec<String>,
}

pub(crate) async fn start_binary(args: &[&str], envs: &[(&str, &str)]) -> Binary {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args(["--addr", "127.0.0.1:0", "--site-root", "target/no-site"])
        .args(args)
        .envs(envs.iter().copied())
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut startup_log = Vec::new();
    let addr = tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            startup_log.push(line.clone());
            // Plain text, or inside a JSON line (`--log-format json`).
            if let Some((_, rest)) = line.split_once("listening on http://") {
                let addr = rest.split(['"', ' ']).next().unwrap_or_default();
                return addr.to_owned();
            }
        }
        panic!("the server never said where it listens: {startup_log:?}");
    })
    .await
    .expect("server starts in time");
    Binary {
        child,
        lines,
        addr,
        startup_log,
    }
}
