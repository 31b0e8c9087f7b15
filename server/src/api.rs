//! The HTTP API: guest tokens (issue, refresh), the room list and the health check.

use app::protocol::{ApiErrorBody, IssuedToken, RoomSummary, TokenRequest, normalize_display_name};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::state::{AppState, GuestTokens};
use crate::telemetry::ErrorChain;

/// An HTTP status with a JSON [`ApiErrorBody`].
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ApiErrorBody,
}

impl ApiError {
    fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> Self {
        let body = ApiErrorBody {
            error: error.to_owned(),
            message: message.into(),
        };
        ApiError { status, body }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// `POST /api/token` with `{"name":"alice"}`: a guest token for the web UI.
pub async fn issue_token(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<IssuedToken>, ApiError> {
    let guests = guest_login(&state)?;
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
pub async fn refresh_token(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<IssuedToken>, ApiError> {
    let guests = guest_login(&state)?;
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default()
        .trim();
    let issued = state
        .auth
        .refresh_guest(token, guests.refresh_grace, guests.ttl)
        .map_err(|err| {
            // Never log the token itself.
            tracing::info!(error = %err, "refused a token refresh");
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

/// `GET /api/rooms`: active rooms with their member counts.
pub async fn list_rooms(State(state): State<AppState>) -> Result<Json<Vec<RoomSummary>>, ApiError> {
    let rooms = state.hub.rooms().await.map_err(|err| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            ErrorChain(&err).to_string(),
        )
    })?;
    Ok(Json(rooms))
}

/// `GET /healthz`.
pub async fn healthz() -> &'static str {
    "ok"
}
