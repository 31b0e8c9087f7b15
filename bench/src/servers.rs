//! The servers a run measures: the release `chorus` (on memory or Redis), a
//! reference peer from `../shared/peers/`, or one already running (`--url`).

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::args::{Args, Peer};

pub(crate) struct Server {
    pub(crate) child: tokio::process::Child,
    pub(crate) base: String,
}

pub(crate) async fn start_server(args: &Args) -> Server {
    start_server_on(args, args.redis_url.as_deref()).await
}

pub(crate) async fn start_server_on(args: &Args, redis_url: Option<&str>) -> Server {
    start_server_at(args, redis_url, "127.0.0.1:0").await
}

/// A server listening on `addr` (the soak restarts one where it was).
pub(crate) async fn start_server_at(args: &Args, redis_url: Option<&str>, addr: &str) -> Server {
    let mut child = tokio::process::Command::new(&args.server)
        .args(["--addr", addr, "--jwt-secret", &args.secret])
        // Every simulated member connects from loopback: lift the per-address limits.
        .args([
            "--connect-rate-limit",
            "1000000",
            "--connect-rate-limit-burst",
            "1000000",
            "--max-connections-per-address",
            "1000000",
            "--max-http-connections-per-address",
            "1000000",
        ])
        .args(["--max-connections", "100000"])
        // The idle scenario puts every member in a room of its own.
        .args(["--max-rooms", "1000000"])
        .args(["--rate-limit", "1000000", "--rate-limit-burst", "1000000"])
        .args([
            "--user-rate-limit",
            "1000000",
            "--user-rate-limit-burst",
            "1000000",
        ])
        .args([
            "--address-rate-limit",
            "1000000",
            "--address-rate-limit-burst",
            "1000000",
        ])
        .args(redis_url.iter().flat_map(|url| ["--redis-url", *url]))
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {}: {err} (run `make bench`)", args.server));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines.next_line().await.unwrap().expect("server exited");
        if let Some((_, addr)) = line.split_once("listening on http://") {
            break format!("ws://{}", addr.trim());
        }
    };
    // `BENCH_SERVER_LOGS=1` passes the servers' logs on, prefixed with their address.
    let echo = std::env::var_os("BENCH_SERVER_LOGS").map(|_| base.clone());
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(base) = &echo {
                eprintln!("{base} {line}");
            }
        }
    });
    Server { child, base }
}

/// Where the reference peers live, beside the project.
const PEERS: &str = "../shared/peers";

/// Builds (once) and starts a reference peer on a free port with `secret`.
pub(crate) async fn start_peer(peer: Peer, secret: &str) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let run = |program: &str, args: &[&str], dir: Option<&str>| {
        let mut command = std::process::Command::new(program);
        command.args(args);
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        let status = command
            .status()
            .unwrap_or_else(|err| panic!("cannot run {program}: {err}"));
        assert!(status.success(), "{program} {args:?} failed");
    };
    let mut child = match peer {
        Peer::AxumNaive => {
            let manifest = format!("{PEERS}/axum_naive/Cargo.toml");
            run(
                "cargo",
                &[
                    "build",
                    "--release",
                    "--manifest-path",
                    &manifest,
                    "--target-dir",
                    "target/peers",
                ],
                None,
            );
            tokio::process::Command::new("target/peers/release/axum_naive")
                .env("PORT", port.to_string())
                .env("JWT_SECRET", secret)
                .kill_on_drop(true)
                .spawn()
                .expect("the axum peer starts")
        }
        Peer::FastapiSeed => {
            let venv = "target/peers/venv";
            if !std::path::Path::new(&format!("{venv}/bin/uvicorn")).exists() {
                run("python3", &["-m", "venv", venv], None);
                run(
                    &format!("{venv}/bin/pip"),
                    &[
                        "install",
                        "--quiet",
                        "fastapi",
                        "uvicorn[standard]",
                        "pyjwt",
                    ],
                    None,
                );
            }
            let uvicorn = std::fs::canonicalize(format!("{venv}/bin/uvicorn")).unwrap();
            tokio::process::Command::new(uvicorn)
                .args([
                    "app:app",
                    "--port",
                    &port.to_string(),
                    "--log-level",
                    "warning",
                ])
                .current_dir(format!("{PEERS}/fastapi_seed"))
                .env("JWT_SECRET", secret)
                .kill_on_drop(true)
                .spawn()
                .expect("the FastAPI peer starts")
        }
    };
    accepting(&mut child, port, Duration::from_secs(20), "the peer").await;
    Server {
        child,
        base: format!("ws://127.0.0.1:{port}"),
    }
}

/// Waits until `child` accepts connections on `port`; panics, naming `what`, if it
/// exits first or takes longer than `within`.
pub(crate) async fn accepting(
    child: &mut tokio::process::Child,
    port: u16,
    within: Duration,
    what: &str,
) {
    let deadline = std::time::Instant::now() + within;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(std::time::Instant::now() < deadline, "{what} did not start");
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited: {status}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
