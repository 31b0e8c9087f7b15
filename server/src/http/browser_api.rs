//! The HTTP API: guest tokens (issue, refresh), the room list and the health check.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use chorus_protocol::{IssuedToken, RoomSummary, TokenRequest, normalize_display_name};

use super::body::read_body;
use super::error::{ApiError, bearer, refuse_failing_address};
use crate::auth::permissions::RoomPatterns;
use crate::observe::logs::ErrorChain;
use crate::state::{AppState, GuestTokens};

/// `POST /api/token` with `{"name":"alice"}`: a guest token for the web UI, a few per
/// client address and minute.
pub(crate) async fn issue_token(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IssuedToken>, ApiError> {
    let guests = guest_login(&state)?;
    let limits = &state.address_limits;
    limits
        .guest_tokens
        .check(limits.client(peer, &headers))
        .map_err(|wait| {
            tracing::debug!("refused a guest token: rate limit");
            ApiError::rate_limited(
                wait,
                "too many guest sign-ins from this address; retry later",
            )
        })?;
    let body = read_body(&headers, body, state.body_timeout).await?;
    let request: TokenRequest = serde_json::from_slice(&body).map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("expected {{\"name\": \"...\"}}: {err}"),
        )
    })?;
    let name = normalize_display_name(&request.name)
        .map_err(|err| ApiError::new(StatusCode::BAD_REQUEST, "invalid_name", err.to_string()))?;
    Ok(Json(state.auth.issue_guest(name, guests.ttl)))
}

/// `POST /api/token/refresh` with `Authorization: Bearer <guest token>`: a fresh
/// token for the same guest (same `sub` and name), while the old one is valid or
/// expired for less than the refresh grace.
pub(crate) async fn refresh_token(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<IssuedToken>, ApiError> {
    let guests = guest_login(&state)?;
    let client = state.address_limits.client(peer, &headers);
    refuse_failing_address(&state.address_limits, client)?;
    let token = bearer(&headers).unwrap_or_default();
    let issued = state
        .auth
        .refresh_guest(token, guests.refresh_grace, guests.ttl)
        .map_err(|err| {
            // Never log the token itself.
            tracing::info!(error = %err, "refused a token refresh");
            state.connection.metrics.auth_failed(err.reason());
            state.address_limits.failed_auth.failed(client);
            ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", err.to_string())
        })?;
    Ok(Json(issued))
}

fn guest_login(state: &AppState) -> Result<GuestTokens, ApiError> {
    state.guests.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "guest_login_disabled",
            "guest login is disabled on this server",
        )
    })
}

/// `GET /api/rooms`: active rooms with their member counts, those the caller may
/// join: every room for an API key, the rooms its token may join for a member (a
/// guest: `--guest-rooms`), and `--public-rooms` for a caller without a valid token.
pub(crate) async fn list_rooms(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Arc<Vec<RoomSummary>>>, ApiError> {
    let client = state.address_limits.client(peer, &headers);
    refuse_failing_address(&state.address_limits, client)?;
    let visible = match bearer(&headers) {
        None => Visible::Matching(state.public_rooms.clone()),
        Some(key) if state.api_keys.accepts(key) => Visible::Every,
        Some(token) => match state.auth.verify_current(Some(token)).await {
            Ok(identity) => Visible::Matching(Arc::new(identity.permissions.join)),
            // Seen as a caller without a token (and counted as a failure): a page
            // whose stored token has just expired, or was never valid, lists the
            // public rooms while it renews or signs in again, rather than an error.
            Err(err) => {
                tracing::debug!(reason = %err, "a room list's token did not verify");
                state.connection.metrics.auth_failed(err.reason());
                state.address_limits.failed_auth.failed(client);
                Visible::Matching(state.public_rooms.clone())
            }
        },
    };
    let rooms = state.hub.rooms().await.map_err(|err| {
        // The detail is for the operator; the client gets a fixed message.
        tracing::warn!(error = %ErrorChain(&err), "cannot list rooms");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the room list is unavailable right now; try again shortly",
        )
    })?;
    let listed = match visible {
        // The cached list itself, shared, not copied.
        Visible::Every => rooms,
        Visible::Matching(patterns) => Arc::new(
            rooms
                .iter()
                .filter(|room| patterns.allows_name(&room.name))
                .cloned()
                .collect(),
        ),
    };
    Ok(Json(listed))
}

/// Which rooms a caller of the room list sees.
enum Visible {
    Every,
    Matching(Arc<RoomPatterns>),
}

/// `GET /healthz`.
pub(crate) async fn healthz() -> &'static str {
    "ok"
}
