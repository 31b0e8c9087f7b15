//! The HTTP API: guest tokens (issue, refresh), the room list and the health check.

use axum::Json;
use axum::body::Bytes;
use chorus_protocol::{
    ApiErrorBody, IssuedToken, RoomSummary, TokenRequest, normalize_display_name,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::header::{AUTHORIZATION, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::limits::retry_after_secs;
use crate::observe::logs::ErrorChain;
use crate::state::{AppState, GuestTokens};

/// An HTTP status with a JSON [`ApiErrorBody`] (and `Retry-After`, for a 429).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ApiErrorBody,
    retry_after_secs: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> Self {
        let body = ApiErrorBody {
            error: error.to_owned(),
            message: message.into(),
            field: None,
        };
        ApiError {
            status,
            body,
            retry_after_secs: None,
        }
    }

    /// 400 `invalid_field`, naming the request field at fault.
    pub(crate) fn invalid_field(field: &'static str, message: impl Into<String>) -> Self {
        let mut error = ApiError::new(StatusCode::BAD_REQUEST, "invalid_field", message);
        error.body.field = Some(field.to_owned());
        error
    }

    /// 503 `unavailable`, logging the cause for the operator; the caller gets a
    /// fixed message.
    pub(crate) fn unavailable(what: &str, err: &crate::hub::Unavailable) -> Self {
        tracing::warn!(error = %ErrorChain(err), "{what}");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the rooms are unavailable right now; try again shortly",
        )
    }

    /// 429 `rate_limited`, to retry after `wait` (rounded up to whole seconds).
    fn rate_limited(wait: Duration, message: impl Into<String>) -> Self {
        ApiError {
            retry_after_secs: Some(retry_after_secs(wait)),
            ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if let Some(seconds) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// `POST /api/token` with `{"name":"alice"}`: a guest token for the web UI, a few per
/// client address and minute.
pub async fn issue_token(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
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
    let token = bearer(&headers).unwrap_or_default();
    let issued = state
        .auth
        .refresh_guest(token, guests.refresh_grace, guests.ttl)
        .map_err(|err| {
            // Never log the token itself.
            tracing::info!(error = %err, "refused a token refresh");
            state.connection.metrics.auth_failed(err.reason());
            ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", err.to_string())
        })?;
    Ok(Json(issued))
}

/// The credentials of `Authorization: Bearer <credentials>` (the scheme in any
/// case), if there are any.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credentials) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credentials.trim())
        .filter(|credentials| !credentials.is_empty())
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
pub async fn list_rooms(
    State(state): State<AppState>,
) -> Result<Json<Arc<Vec<RoomSummary>>>, ApiError> {
    let rooms = state.hub.rooms().await.map_err(|err| {
        // The detail is for the operator; the client gets a fixed message.
        tracing::warn!(error = %ErrorChain(&err), "cannot list rooms");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the room list is unavailable right now; try again shortly",
        )
    })?;
    Ok(Json(rooms))
}

/// `GET /healthz`.
pub async fn healthz() -> &'static str {
    "ok"
}

#[cfg(test)]
mod tests {
    use axum::http::header::AUTHORIZATION;

    use super::*;

    #[test]
    fn bearer_credentials() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, value.parse().unwrap());
            bearer(&headers).map(str::to_owned)
        };
        assert_eq!(with("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(with("bearer  abc ").as_deref(), Some("abc"));
        assert_eq!(with("Basic abc"), None);
        assert_eq!(with("Bearer "), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
