//! The WebSocket routes: admission (capacity, token, room name), then the
//! connection loops in [`crate::ws::connection`].
//!
//! A refused socket is still upgraded and then closed with a close code
//! (4001, 4004, 1013): a browser cannot see why an upgrade failed, but it can
//! read a close code.
//!
//! Every socket runs in its own `socket` tracing span (`connection_id`, `room`,
//! `user_id`; never the token), so its log lines need not repeat them.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::header::{HOST, ORIGIN, SEC_WEBSOCKET_PROTOCOL};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chorus_protocol::{CloseCode, RoomName, SUBPROTOCOL, token_from_subprotocols};
use futures_util::future::Either;
use serde::Deserialize;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tungstenite::protocol::WebSocketConfig;

use crate::auth::{Auth, AuthError, Identity};
use crate::http::error::ApiError;
use crate::http::origin::origin_allowed;
use crate::hub::{Hub, Participant, Unavailable};
use crate::limits::{AddressSlot, UserSlot};
use crate::observe::logs::ErrorChain;
use crate::observe::metrics::Metrics;
use crate::state::AppState;
use crate::ws::connection::{self, ConnectionSettings, Ended};
use crate::ws::handshake::{Upgrade, WebSocket};

/// The read buffer a socket starts with (it grows for a larger frame): a client sends
/// short frames (pongs, messages of at most a few KiB), and it is held for as long as
/// the socket lives, by every socket. A longer message takes a few more reads.
const READ_BUFFER_BYTES: usize = 512;
/// How much is written before a flush is forced (a batch is flushed anyway).
const WRITE_BUFFER_BYTES: usize = 4 * 1024;
/// The most a socket's write buffer may hold while the peer is not reading: room for
/// the largest frame the server sends (a welcome listing a very large room). A
/// write beyond it fails, which ends the connection, so a peer that never reads
/// cannot grow the server's memory past this.
const MAX_WRITE_BUFFER_BYTES: usize = 4 * 1024 * 1024;

type Socket = connection::Socket<WebSocket>;

#[derive(Debug, Deserialize)]
pub(crate) struct ChatParams {
    token: Option<String>,
    since: Option<String>,
}

/// `GET /ws`: answers each text frame `X` with `Echo: X`.
pub(crate) async fn echo(
    ws: Upgrade,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    State(state): State<AppState>,
) -> Response {
    let Some(echo_permits) = &state.echo_permits else {
        return (
            StatusCode::NOT_FOUND,
            "the echo endpoint is off (--max-echo-connections 0)",
        )
            .into_response();
    };
    let address_slot = match admit_upgrade(&state, peer, &headers) {
        Ok(slot) => slot,
        Err(refused) => return refused.into_response(),
    };
    // A pool of its own: unauthenticated sockets never take a member's place.
    let permit = echo_permits.clone().try_acquire_owned().ok();
    let tasks = state.tasks.clone();
    let span = tracing::info_span!("socket", connection_id = next_connection_id(), path = "/ws");
    configure(ws, &state).on_upgrade(move |socket| {
        tasks.track_future(
            async move {
                let open = OpenSocket::new(&state, address_slot);
                let socket = wrap(socket, &state);
                let Some(_permit) = permit else {
                    Box::pin(socket.close(CloseCode::ServerFull)).await;
                    open.ended(Ended::Closed(CloseCode::ServerFull));
                    return;
                };
                let ended = connection::run_echo(socket, &state.connection, &state.shutdown).await;
                tracing::debug!(?ended, "echo socket ended");
                open.ended(ended);
            }
            .instrument(span),
        )
    })
}

/// `GET /ws/chat/{room}[?since=ID]` with the token in `Sec-WebSocket-Protocol`
/// (`chorus.v1, chorus.token.<JWT>`), or in the query (`?token=JWT`): a member of a
/// chat room. The header wins when both are given.
pub(crate) async fn chat(
    ws: Upgrade,
    Path(room): Path<String>,
    Query(params): Query<ChatParams>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    State(state): State<AppState>,
) -> Response {
    let address_slot = match admit_upgrade(&state, peer, &headers) {
        Ok(slot) => slot,
        Err(refused) => return refused.into_response(),
    };
    // A malformed `since` is a client bug, not a runtime condition: say so plainly.
    let since = match params.since.as_deref().map(str::parse::<u64>).transpose() {
        Ok(since) => since,
        Err(_) => {
            return (
                StatusCode::BAD_REQUEST,
                "`since` must be a message id (a non-negative integer)",
            )
                .into_response();
        }
    };
    let span = tracing::info_span!(
        "socket",
        connection_id = next_connection_id(),
        room,
        user_id = tracing::field::Empty
    );
    let offered = headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok());
    let token = token_from_subprotocols(offered).or(params.token.as_deref());
    let client = state.address_limits.client(peer, &headers);
    let admission = admit(&state, token, &room, client)
        .instrument(span.clone())
        .await;
    if let Ok(admitted) = &admission {
        span.record("user_id", admitted.identity.id.as_str());
    }
    let tasks = state.tasks.clone();
    configure(ws, &state).on_upgrade(move |socket| {
        // Everything the task needs is picked out here, so it keeps only that for the
        // socket's life: the socket and its write deadline; a few handles, not the
        // whole state; the admission, not the attempt.
        let socket = wrap(socket, &state);
        let open = OpenSocket::new(&state, address_slot);
        let served = match admission {
            Ok(admitted) => {
                let services = MemberServices {
                    hub: state.hub.clone(),
                    auth: state.auth.clone(),
                    connection: state.connection.clone(),
                    shutdown: state.shutdown.clone(),
                };
                Either::Left(serve_member(
                    Box::new(socket),
                    open,
                    admitted,
                    since,
                    services,
                ))
            }
            // Boxed: the closing handshake is larger than a member's whole task.
            Err(code) => Either::Right(Box::pin(async move {
                socket.close(code).await;
                open.ended(Ended::Closed(code));
            })),
        };
        tasks.track_future(served.instrument(span))
    })
}

/// What an admitted member's connection uses of the server.
struct MemberServices {
    hub: Hub,
    auth: Arc<Auth>,
    connection: Arc<ConnectionSettings>,
    shutdown: CancellationToken,
}

/// The client address's place for one more socket, or why an upgrade is refused
/// before it happens (nothing else is allocated for it).
fn admit_upgrade(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<AddressSlot, UpgradeRefused> {
    let limits = &state.address_limits;
    let header = |name| headers.get(name).and_then(|value| value.to_str().ok());
    if !origin_allowed(header(ORIGIN), header(HOST), &state.allowed_origins) {
        tracing::debug!("refused an upgrade from another site's page");
        return Err(UpgradeRefused::OtherSite);
    }
    let client = limits.client(peer, headers);
    if let Err(wait) = limits.upgrades.check(client) {
        tracing::debug!("refused an upgrade: connect rate limit");
        return Err(UpgradeRefused::TooFast(wait));
    }
    limits.open_sockets.try_open(client).ok_or_else(|| {
        tracing::debug!("refused an upgrade: too many open sockets from this address");
        UpgradeRefused::TooMany
    })
}

/// Why an upgrade was refused before it happened.
enum UpgradeRefused {
    /// 403: a page of another site (`Origin`).
    OtherSite,
    /// 429: over the client address's connect rate, for this long.
    TooFast(Duration),
    /// 429: the client address holds as many sockets open as it may.
    TooMany,
}

/// When an address holding all the sockets it may is told to try again: a guess,
/// since what frees a place is one of its own sockets closing.
const OPEN_SOCKETS_RETRY: Duration = Duration::from_secs(5);

impl IntoResponse for UpgradeRefused {
    fn into_response(self) -> Response {
        match self {
            UpgradeRefused::OtherSite => (
                StatusCode::FORBIDDEN,
                "this page's origin may not open sockets here",
            )
                .into_response(),
            UpgradeRefused::TooFast(wait) => {
                ApiError::rate_limited(wait, "too many connections from this address; retry later")
                    .into_response()
            }
            UpgradeRefused::TooMany => ApiError::rate_limited(
                OPEN_SOCKETS_RETRY,
                "too many open sockets from this address; close some or retry later",
            )
            .into_response(),
        }
    }
}

/// Tells sockets apart in logs.
fn next_connection_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A socket that may join its room.
struct Admitted {
    _permit: OwnedSemaphorePermit,
    user_slot: UserSlot,
    identity: Identity,
    room: RoomName,
    /// Where it connects from (the forwarded client behind a trusted proxy).
    client: IpAddr,
}

/// Decides, before the upgrade completes, whether the socket may join.
async fn admit(
    state: &AppState,
    token: Option<&str>,
    room: &str,
    client: IpAddr,
) -> Result<Admitted, CloseCode> {
    // The token first: verifying it may wait for the identity provider's keys (a
    // key id not seen yet), and a socket waiting there must not hold a place.
    let identity = state.auth.verify_current(token).await.map_err(|err| {
        // A fixed reason only (see `AuthError::Invalid`), never the token itself; and
        // at debug level: anyone can send bad tokens, as often as they like.
        tracing::debug!(reason = %err, "refused a socket's token");
        state.connection.metrics.auth_failed(err.reason());
        // An expired token is renewable (4002); a missing or forged one is not (4001).
        match err {
            AuthError::Expired => CloseCode::TokenExpired,
            _ => CloseCode::Unauthorized,
        }
    })?;
    let room = RoomName::parse(room).map_err(|err| {
        tracing::debug!(error = %err, "refused a socket for an invalid room");
        CloseCode::InvalidRoom
    })?;
    if !identity.permissions.may_join(&room) {
        tracing::debug!("refused a socket: its token may not join this room");
        return Err(CloseCode::Forbidden);
    }
    let permit = state
        .permits
        .clone()
        .try_acquire_owned()
        .map_err(|_| CloseCode::ServerFull)?;
    let user_slot = state.user_sockets.try_open(&identity.id).ok_or_else(|| {
        tracing::debug!("refused a socket: too many for this user");
        CloseCode::TooManyConnections
    })?;
    Ok(Admitted {
        _permit: permit,
        user_slot,
        identity,
        room,
        client,
    })
}

/// Seats an admitted member and runs its connection to the end.
///
/// Not an `async fn`, which would hold its arguments twice for the connection's whole
/// life (see `connection::run_chat`); the socket comes boxed, so that the task, which
/// keeps room for it until it ends, does not also keep a second, moved-out copy.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would hold its arguments twice for the socket's life"
)]
fn serve_member(
    socket: Box<Socket>,
    open: OpenSocket,
    admitted: Admitted,
    since: Option<u64>,
    services: MemberServices,
) -> impl Future<Output = ()> {
    async move {
        // The whole admission, taken as one: an `async move` block moves in only the
        // fields it names, and the connection permit, named nowhere, would otherwise
        // be given back the moment this function returns.
        let admitted = &admitted;
        let identity = &admitted.identity;
        let participant = Participant {
            id: identity.id.clone(),
            name: identity.name.clone(),
        };
        // Boxed, like every await here but the connection's own loop: a task is as large
        // as the largest future it awaits, for as long as it lives, and each of these
        // runs once.
        let joined = match Box::pin(services.hub.join(&admitted.room, participant, since)).await {
            Ok(joined) => joined,
            Err(Unavailable::TooManyRooms) => {
                tracing::info!("refused a member: creating the room would exceed --max-rooms");
                Box::pin((*socket).close(CloseCode::ServerFull)).await;
                open.ended(Ended::Closed(CloseCode::ServerFull));
                return;
            }
            Err(Unavailable::Banned) => {
                tracing::debug!("refused a banned user");
                Box::pin((*socket).close(CloseCode::Forbidden)).await;
                open.ended(Ended::Closed(CloseCode::Forbidden));
                return;
            }
            Err(err) => {
                // Worth retrying: the broker may be back by the client's next attempt.
                tracing::warn!(error = %ErrorChain(&err), "cannot seat a member");
                Box::pin((*socket).close(CloseCode::ServerFull)).await;
                open.ended(Ended::Closed(CloseCode::ServerFull));
                return;
            }
        };
        tracing::debug!("member joined");
        let credentials = connection::Credentials {
            auth: &services.auth,
            user_id: identity.id.clone(),
            valid_until: identity.valid_until,
            may_publish: identity.permissions.may_publish(&admitted.room),
            room: admitted.room.clone(),
            removal: admitted.user_slot.removal().clone(),
            client: admitted.client,
        };
        let ended = connection::run_chat(
            socket,
            joined,
            credentials,
            &services.connection,
            &services.shutdown,
        )
        .await;
        match ended {
            Ended::Closed(code) => tracing::debug!(code = code.code(), "member closed"),
            other => tracing::debug!(ended = ?other, "member left"),
        }
        open.ended(ended);
    }
}

/// One upgraded socket in the metrics and in its address's count: counted open
/// while it lives, and closed with the code it ended with.
struct OpenSocket {
    metrics: Arc<Metrics>,
    _address_slot: AddressSlot,
}

impl OpenSocket {
    fn new(state: &AppState, address_slot: AddressSlot) -> Self {
        let metrics = state.connection.metrics.clone();
        metrics.connections_accepted.inc();
        metrics.connections_open.inc();
        OpenSocket {
            metrics,
            _address_slot: address_slot,
        }
    }

    fn ended(self, ended: Ended) {
        let code = match ended {
            Ended::Closed(code) => Some(code.code()),
            Ended::ClientGone | Ended::WriteStalled => None,
        };
        self.metrics.closed(code);
    }
}

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.metrics.connections_open.dec();
    }
}

fn wrap(socket: WebSocket, state: &AppState) -> Socket {
    connection::Socket::new(socket, state.connection.write_timeout)
}

fn configure(ws: Upgrade, state: &AppState) -> Upgrade {
    let max_message = state.connection.max_message_bytes;
    // Selected when offered; the token's own entry is never echoed back.
    ws.protocols([SUBPROTOCOL]).config(
        WebSocketConfig::default()
            .max_message_size(Some(max_message))
            .max_frame_size(Some(max_message))
            .read_buffer_size(READ_BUFFER_BYTES)
            .write_buffer_size(WRITE_BUFFER_BYTES)
            .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES),
    )
}
