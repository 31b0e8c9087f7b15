//! The server API: JSON over HTTP for the application's backend, authenticated by
//! `Authorization: Bearer <key>` with a key from `--api-key`.
//!
//! - `POST /api/rooms/{room}/messages`: publish as a member would, whether or not
//!   anyone is connected; idempotent per `idempotency_key` for the ref window.
//! - `GET /api/rooms/{room}/messages?before=ID&limit=N`: history, newest page first;
//!   also open to a member's token that may join the room (the web client loads
//!   older messages with it).
//! - `GET /api/rooms/{room}/members`: who is listed, with connection counts.
//! - `POST /api/users/{user_id}/disconnect`: close the user's sockets everywhere
//!   (4010), optionally banning its reconnects (4003).
//!
//! Every request field is checked here, and a refusal names the field; the work
//! itself is the hub's, so it is the same on both engines and from any server.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chorus_protocol::{
    CloseCode, DEFAULT_PAGE, MAX_PAGE, MAX_USER_ID_CHARS, RoomName, is_valid_user_id,
    normalize_display_name, validate_content, validate_ref,
};
use serde_json::{Map, Value, json};

use super::body::read_body;
use super::error::{ApiError, bearer, refuse_failing_address};
use crate::hub::{MAX_BAN, Participant};
use crate::state::AppState;

/// A close frame's reason holds at most 123 bytes.
const MAX_REASON_BYTES: usize = 123;
/// Who a message published without `user_id` is from.
const DEFAULT_AUTHOR: &str = "server";

/// Who is calling.
enum Caller {
    /// A holder of an API key: the application's backend.
    Backend,
    /// A member's token, which may join these rooms.
    Member(crate::auth::permissions::Permissions),
}

fn unauthorized(message: &'static str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

/// The backend, by its API key; anyone else gets 401 (429 for an address that
/// failed too often of late, whatever it sends now).
fn backend(state: &AppState, headers: &HeaderMap, client: IpAddr) -> Result<(), ApiError> {
    refuse_failing_address(&state.address_limits, client)?;
    match bearer(headers) {
        Some(key) if state.api_keys.accepts(key) => Ok(()),
        Some(_) => {
            state.address_limits.failed_auth.failed(client);
            Err(unauthorized("the API key is not valid"))
        }
        None if state.api_keys.is_empty() => Err(unauthorized(
            "the server API is disabled: start the server with --api-key",
        )),
        None => Err(unauthorized(
            "send `Authorization: Bearer <API key>` (a key given to --api-key)",
        )),
    }
}

/// The backend by its API key, or a member by its token.
async fn backend_or_member(
    state: &AppState,
    headers: &HeaderMap,
    client: IpAddr,
) -> Result<Caller, ApiError> {
    refuse_failing_address(&state.address_limits, client)?;
    let Some(credentials) = bearer(headers) else {
        return Err(unauthorized(
            "send `Authorization: Bearer <API key or member token>`",
        ));
    };
    if state.api_keys.accepts(credentials) {
        return Ok(Caller::Backend);
    }
    match state.auth.verify_current(Some(credentials)).await {
        Ok(identity) => Ok(Caller::Member(identity.permissions)),
        Err(err) => {
            tracing::debug!(reason = %err, "refused an API call's credentials");
            state.connection.metrics.auth_failed(err.reason());
            state.address_limits.failed_auth.failed(client);
            Err(unauthorized(
                "neither a valid API key nor a valid member token",
            ))
        }
    }
}

fn room_name(room: &str) -> Result<RoomName, ApiError> {
    RoomName::parse(room).map_err(|err| ApiError::invalid_field("room", err.to_string()))
}

/// The request body as a JSON object (an empty body is an empty object).
fn object_body(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "the body must be a JSON object",
        )),
    }
}

/// An optional string field; anything but a string (or `null`) is refused by name.
fn optional_string<'a>(
    object: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, ApiError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(ApiError::invalid_field(
            field,
            format!("`{field}` must be a string"),
        )),
    }
}

fn user_id_field(user_id: &str) -> Result<&str, ApiError> {
    if !is_valid_user_id(user_id) {
        return Err(ApiError::invalid_field(
            "user_id",
            format!(
                "`user_id` must be 1–{MAX_USER_ID_CHARS} characters without control characters"
            ),
        ));
    }
    Ok(user_id)
}

/// `POST /api/rooms/{room}/messages` with `{"content", "user"?, "user_id"?,
/// "idempotency_key"?}` → 201 `{"id"}`.
pub(crate) async fn publish(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    backend(
        &state,
        &headers,
        state.address_limits.client(peer, &headers),
    )?;
    let room = room_name(&room)?;
    let body = read_body(&headers, body, state.body_timeout).await?;
    let body = object_body(&body)?;
    let content = optional_string(&body, "content")?
        .ok_or_else(|| ApiError::invalid_field("content", "`content` is required"))?;
    validate_content(content).map_err(|err| ApiError::invalid_field("content", err.message))?;
    let user_id = match optional_string(&body, "user_id")? {
        Some(user_id) => user_id_field(user_id)?,
        None => DEFAULT_AUTHOR,
    };
    let name = match optional_string(&body, "user")? {
        Some(name) => normalize_display_name(name)
            .map_err(|err| ApiError::invalid_field("user", format!("`user`: {err}")))?,
        None => user_id,
    };
    let key = optional_string(&body, "idempotency_key")?;
    if let Some(key) = key {
        validate_ref(key).map_err(|_| {
            ApiError::invalid_field(
                "idempotency_key",
                "`idempotency_key` must be 1–64 printable characters",
            )
        })?;
    }
    let author = Participant {
        id: user_id.to_owned(),
        name: name.to_owned(),
    };
    let published = state
        .hub
        .publish(&room, author, content.to_owned(), key)
        .await
        .map_err(|err| match err {
            crate::hub::Unavailable::TooManyRooms => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_rooms",
                "there are as many rooms as the server may hold (--max-rooms)",
            ),
            err => ApiError::unavailable("cannot publish from the API", &err),
        })?;
    Ok((StatusCode::CREATED, Json(json!({"id": published.id}))).into_response())
}

/// `GET /api/rooms/{room}/messages?before=ID&limit=N` → `{"messages": [...], "has_more"}`.
pub(crate) async fn history(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(room): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let client = state.address_limits.client(peer, &headers);
    let caller = backend_or_member(&state, &headers, client).await?;
    let room = room_name(&room)?;
    if let Caller::Member(permissions) = caller
        && !permissions.may_join(&room)
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this token may not join this room",
        ));
    }
    let param = |name: &str| {
        query
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let before = param("before")
        .map(|before| {
            before
                .parse::<u64>()
                .map_err(|_| ApiError::invalid_field("before", "`before` must be a message id"))
        })
        .transpose()?;
    let limit = match param("limit") {
        None => DEFAULT_PAGE,
        Some(limit) => limit
            .parse::<usize>()
            .ok()
            .filter(|limit| (1..=MAX_PAGE).contains(limit))
            .ok_or_else(|| {
                ApiError::invalid_field("limit", format!("`limit` must be 1–{MAX_PAGE}"))
            })?,
    };
    let page = state
        .hub
        .history(&room, before, limit)
        .await
        .map_err(|err| ApiError::unavailable("cannot read history for the API", &err))?;
    // The stored frames are JSON already: joined as they are, not parsed and re-encoded.
    let mut body = String::with_capacity(
        page.messages
            .iter()
            .map(|frame| frame.len() + 1)
            .sum::<usize>()
            + 32,
    );
    body.push_str(r#"{"messages":["#);
    for (n, frame) in page.messages.iter().enumerate() {
        if n > 0 {
            body.push(',');
        }
        body.push_str(frame.as_str());
    }
    body.push_str(if page.has_more {
        r#"],"has_more":true}"#
    } else {
        r#"],"has_more":false}"#
    });
    Ok(([(CONTENT_TYPE, "application/json")], body).into_response())
}

/// `GET /api/rooms/{room}/members` → `[{"user_id", "name", "connections"}]`.
pub(crate) async fn members(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    backend(
        &state,
        &headers,
        state.address_limits.client(peer, &headers),
    )?;
    let room = room_name(&room)?;
    let members = state
        .hub
        .members(&room)
        .await
        .map_err(|err| ApiError::unavailable("cannot list members for the API", &err))?;
    Ok(Json(members).into_response())
}

/// `POST /api/users/{user_id}/disconnect` with `{"reason"?, "ban_seconds"?}` → 204.
pub(crate) async fn disconnect(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    backend(
        &state,
        &headers,
        state.address_limits.client(peer, &headers),
    )?;
    let user_id = user_id_field(&user_id)?;
    let body = read_body(&headers, body, state.body_timeout).await?;
    let body = object_body(&body)?;
    let reason = match optional_string(&body, "reason")? {
        None => CloseCode::Removed.reason(),
        Some(reason)
            if reason.len() <= MAX_REASON_BYTES && !reason.chars().any(char::is_control) =>
        {
            reason
        }
        Some(_) => {
            return Err(ApiError::invalid_field(
                "reason",
                format!(
                    "`reason` must be at most {MAX_REASON_BYTES} bytes without control characters"
                ),
            ));
        }
    };
    let ban = match body.get("ban_seconds") {
        None | Some(Value::Null) => None,
        Some(seconds) => Some(
            seconds
                .as_u64()
                .filter(|seconds| *seconds >= 1 && *seconds <= MAX_BAN.as_secs())
                .map(Duration::from_secs)
                .ok_or_else(|| {
                    ApiError::invalid_field(
                        "ban_seconds",
                        format!(
                            "`ban_seconds` must be a whole number from 1 to {}",
                            MAX_BAN.as_secs()
                        ),
                    )
                })?,
        ),
    };
    state
        .hub
        .disconnect(user_id, reason, ban)
        .await
        .map_err(|err| ApiError::unavailable("cannot disconnect a user for the API", &err))?;
    tracing::info!(
        user = user_id,
        ban_seconds = ban.map(|ban| ban.as_secs()),
        "disconnect requested through the API"
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}
