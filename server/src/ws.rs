//! The WebSocket routes: admission (capacity, token, room name), then the
//! connection loops in [`crate::connection`].
//!
//! A refused socket is still upgraded and then closed with a close code
//! (4001, 4004, 1013): a browser cannot see why an upgrade failed, but it can
//! read a close code.

use app::protocol::{CloseCode, validate_room_name};
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::OwnedSemaphorePermit;

use crate::auth::{AuthError, Identity};
use crate::connection::{self, Ended};
use crate::hub::Participant;
use crate::startup::AppState;

/// Read and write buffers per socket: small, because there may be many sockets.
const SOCKET_BUFFER_BYTES: usize = 4 * 1024;

#[derive(Debug, Deserialize)]
pub struct ChatParams {
    token: Option<String>,
    since: Option<String>,
}

/// `GET /ws`: answers each text frame `X` with `Echo: X`.
pub async fn echo(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    let permit = state.permits.clone().try_acquire_owned().ok();
    let tasks = state.tasks.clone();
    configure(ws, &state).on_upgrade(move |socket| {
        tasks.track_future(async move {
            let (sink, stream) = socket.split();
            let Some(_permit) = permit else {
                let write_timeout = state.connection.write_timeout;
                connection::refuse(sink, stream, CloseCode::ServerFull, write_timeout).await;
                return;
            };
            let ended =
                connection::run_echo(sink, stream, &state.connection, &state.shutdown).await;
            tracing::debug!(?ended, "echo socket ended");
        })
    })
}

/// `GET /ws/chat/{room}?token=JWT[&since=ID]`: a member of a chat room.
pub async fn chat(
    ws: WebSocketUpgrade,
    Path(room): Path<String>,
    Query(params): Query<ChatParams>,
    State(state): State<AppState>,
) -> Response {
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
    let admission = admit(&state, params.token.as_deref(), &room);
    let tasks = state.tasks.clone();
    configure(ws, &state).on_upgrade(move |socket| {
        tasks.track_future(serve_member(socket, state, room, since, admission))
    })
}

/// Decides, before the upgrade completes, whether the socket may join.
fn admit(
    state: &AppState,
    token: Option<&str>,
    room: &str,
) -> Result<(OwnedSemaphorePermit, Identity), CloseCode> {
    let permit = state
        .permits
        .clone()
        .try_acquire_owned()
        .map_err(|_| CloseCode::ServerFull)?;
    let identity = state.auth.verify(token).map_err(|err| {
        // Never log the token itself.
        match err {
            AuthError::Missing => tracing::debug!(room, "refused a socket without a token"),
            _ => tracing::info!(room, error = %err, "refused a socket with a bad token"),
        }
        CloseCode::Unauthorized
    })?;
    validate_room_name(room).map_err(|err| {
        tracing::debug!(room, error = %err, "refused a socket for an invalid room");
        CloseCode::InvalidRoom
    })?;
    Ok((permit, identity))
}

async fn serve_member(
    socket: WebSocket,
    state: AppState,
    room: String,
    since: Option<u64>,
    admission: Result<(OwnedSemaphorePermit, Identity), CloseCode>,
) {
    let (sink, stream) = socket.split();
    let (_permit, identity) = match admission {
        Ok(admitted) => admitted,
        Err(code) => {
            connection::refuse(sink, stream, code, state.connection.write_timeout).await;
            return;
        }
    };
    let participant = Participant {
        id: identity.id.clone(),
        name: identity.name.clone(),
    };
    let joined = match state.hub.join(&room, participant, since).await {
        Ok(joined) => joined,
        Err(err) => {
            // Worth retrying: the broker may be back by the client's next attempt.
            tracing::warn!(room, error = %err, "cannot seat a member");
            let write_timeout = state.connection.write_timeout;
            connection::refuse(sink, stream, CloseCode::ServerFull, write_timeout).await;
            return;
        }
    };
    tracing::debug!(room, user = identity.id, "member joined");
    let ended = connection::run_chat(
        sink,
        stream,
        joined,
        identity.valid_until,
        &state.connection,
        &state.shutdown,
    )
    .await;
    match ended {
        Ended::Closed(code) => {
            tracing::debug!(
                room,
                user = identity.id,
                code = code.code(),
                "member closed"
            )
        }
        other => tracing::debug!(room, user = identity.id, ended = ?other, "member left"),
    }
}

fn configure(ws: WebSocketUpgrade, state: &AppState) -> WebSocketUpgrade {
    ws.max_message_size(state.connection.max_message_bytes)
        .max_frame_size(state.connection.max_message_bytes)
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(SOCKET_BUFFER_BYTES)
}
