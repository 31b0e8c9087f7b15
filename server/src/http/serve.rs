//! The HTTP/1 accept loop: every connection served by hyper with a timer, so slow
//! or idle clients cannot hold connections (and with them file descriptors) for ever.
//!
//! `axum::serve` runs hyper without a timer, and hyper's header-read timeout needs
//! one: a client that never finishes its headers would otherwise keep its
//! connection until the process runs out of files. Here a connection must send a
//! request's headers within `idle_timeout`, also between the requests of a
//! keep-alive connection (its body then has as long again: [`super::body`]).
//! Upgraded WebSockets leave this loop's timers behind.
//!
//! One client address may hold at most `--max-http-connections-per-address` of
//! these at once: slow clients are bounded in time, and this bounds how many one
//! of them can keep going at the same time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;

use crate::limits::{AddressFull, AddressLimits};

/// How long to wait before accepting again after `accept` failed (out of files).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// What an address over its count of connections is told before the connection
/// closes (the body is 38 bytes).
const TOO_MANY_CONNECTIONS: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\n\
connection: close\r\ncontent-type: text/plain\r\ncontent-length: 38\r\n\r\n\
too many connections from this address";

/// Accepts connections and serves `router` on each until `shutdown` is cancelled,
/// then asks every connection to finish its request in flight and close. The
/// connection tasks are in `connections`, for the caller to wait on.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    idle_timeout: Duration,
    limits: Arc<AddressLimits>,
    shutdown: CancellationToken,
    connections: TaskTracker,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(idle_timeout);
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (tcp, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of files, or a connection reset before it was accepted: the
                // listener itself is fine.
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let slot = match limits.open_http_connection(remote.ip()) {
            Ok(slot) => slot,
            Err(AddressFull) => {
                tracing::debug!("refused an HTTP connection: too many from this address");
                // Best effort, without waiting: a new socket's send buffer is empty.
                let _ = tcp.try_write(TOO_MANY_CONNECTIONS);
                continue;
            }
        };
        let connection =
            serve_connection(http.clone(), tcp, remote, router.clone(), shutdown.clone());
        connections.spawn(async move {
            connection.await;
            drop(slot);
        });
    }
}

async fn serve_connection(
    http: hyper::server::conn::http1::Builder,
    tcp: TcpStream,
    remote: SocketAddr,
    router: Router,
    shutdown: CancellationToken,
) {
    // Chat frames are small and latency-sensitive: no Nagle delay.
    if let Err(err) = tcp.set_nodelay(true) {
        tracing::debug!(error = %err, "cannot set TCP_NODELAY");
    }
    // Handlers may ask for the peer's address, as with axum's `into_make_service_with_connect_info`.
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote));
        router.clone().call(request)
    });
    let connection = http
        .serve_connection(TokioIo::new(tcp), service)
        .with_upgrades();
    tokio::pin!(connection);
    let finished = tokio::select! {
        finished = connection.as_mut() => finished,
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(err) = finished {
        log_connection_error(&err);
    }
}

/// Timeouts and resets are the normal end of many connections: debug level.
fn log_connection_error(err: &hyper::Error) {
    if err.is_timeout() {
        tracing::debug!("closed an HTTP connection that sent no request in time");
    } else {
        tracing::debug!(error = %err, "HTTP connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_whole_http_response() {
        let text = std::str::from_utf8(TOO_MANY_CONNECTIONS).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 429 "));
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
    }
}
