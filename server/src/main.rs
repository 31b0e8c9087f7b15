//! `chorus`: reads its flags, sets up logging, runs the server until SIGTERM or
//! Ctrl-C, and prints a failure with its causes.

use chorus_server::config::Config;
use chorus_server::observe::logs::{self, ErrorChain};
use chorus_server::startup::Application;
use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    logs::init(config.observe.log_format);
    let result = async {
        Application::build(config)
            .await?
            .run_until(shutdown_signal())
            .await
    }
    .await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // The one place a startup error is printed, with every cause.
            let err = ErrorChain(&err);
            tracing::error!("{err}");
            eprintln!("chorus: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
