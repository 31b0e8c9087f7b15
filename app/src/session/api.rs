//! The token calls (`POST /api/token`, `/api/token/refresh`) and the API reads the
//! page makes with the session's token (the room list, older messages), through
//! the browser's `fetch`.

use std::fmt;

#[cfg(feature = "hydrate")]
use chorus_protocol::{ApiErrorBody, IssuedToken, JOIN_HISTORY, TokenRequest};
use chorus_protocol::{MessagePage, RoomSummary};

use super::storage::Session;
#[cfg(feature = "hydrate")]
use super::storage::store;

/// Why an API call failed, worded for the person using the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiFailure {
    /// The server answered with an error body; `error` is its machine-readable code.
    Rejected {
        /// The server's code.
        error: String,
        /// The server's words.
        message: String,
    },
    /// No usable answer: network down, server gone, or an unexpected body.
    Unreachable(String),
}

impl fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiFailure::Rejected { message, .. } => f.write_str(message),
            ApiFailure::Unreachable(detail) => write!(f, "The server is unreachable ({detail})."),
        }
    }
}

#[cfg(not(feature = "hydrate"))]
fn browser_only<T>() -> Result<T, ApiFailure> {
    Err(ApiFailure::Unreachable(
        "this call runs in the browser".into(),
    ))
}

/// Stores a token the server issued as the session of `name`.
#[cfg(feature = "hydrate")]
fn keep(name: &str, issued: IssuedToken) -> Session {
    let session = Session {
        name: name.to_owned(),
        token: issued.token,
        expires_at: issued.expires_at,
        received_at_ms: js_sys::Date::now() as u64,
        lifetime_secs: issued.expires_in,
    };
    store(&session);
    session
}

/// Signs in as a guest called `name` and stores the session.
pub async fn sign_in(name: &str) -> Result<Session, ApiFailure> {
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = name;
        browser_only()
    }
    #[cfg(feature = "hydrate")]
    {
        let body = TokenRequest {
            name: name.to_owned(),
        };
        let body =
            serde_json::to_string(&body).map_err(|err| ApiFailure::Unreachable(err.to_string()))?;
        let issued = read_json(fetch("POST", "/api/token", Some(body), None).await)?;
        Ok(keep(name.trim(), issued))
    }
}

/// Exchanges the stored guest token for a fresh one with the same identity
/// (`POST /api/token/refresh`) and stores it.
pub async fn refresh(current: &Session) -> Result<Session, ApiFailure> {
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = current;
        browser_only()
    }
    #[cfg(feature = "hydrate")]
    {
        let answer = fetch("POST", "/api/token/refresh", None, Some(&current.token)).await;
        Ok(keep(&current.name, read_json(answer)?))
    }
}

/// `GET /api/rooms/{room}/messages?before=ID`: the page of retained messages just
/// older than `before`, read with the member's own token.
pub async fn older_messages(
    room: &str,
    before: u64,
    token: &str,
) -> Result<MessagePage, ApiFailure> {
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = (room, before, token);
        browser_only()
    }
    #[cfg(feature = "hydrate")]
    {
        // Room names are `[A-Za-z0-9_.-]`: nothing to escape in the path.
        let url = format!("/api/rooms/{room}/messages?before={before}&limit={JOIN_HISTORY}");
        read_json(fetch("GET", &url, None, Some(token)).await)
    }
}

/// `GET /api/rooms` with the stored session's token: the rooms it may join (without
/// a session, the server's public rooms).
pub async fn active_rooms() -> Result<Vec<RoomSummary>, ApiFailure> {
    #[cfg(not(feature = "hydrate"))]
    return browser_only();
    #[cfg(feature = "hydrate")]
    {
        let token = super::storage::load().map(|session| session.token);
        read_json(fetch("GET", "/api/rooms", None, token.as_deref()).await)
    }
}

/// An answer: its status, status text and body.
#[cfg(feature = "hydrate")]
struct Answer {
    ok: bool,
    status: u16,
    status_text: String,
    body: String,
}

/// Calls the API with the browser's `fetch` (a JSON body, a bearer token, each if
/// given). Written against `web_sys` directly: an HTTP client crate brought its own
/// request builder, header map and error types into the page's WASM for four calls.
#[cfg(feature = "hydrate")]
async fn fetch(
    method: &str,
    url: &str,
    json: Option<String>,
    bearer: Option<&str>,
) -> Result<Answer, ApiFailure> {
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    let headers = web_sys::Headers::new().map_err(unreachable)?;
    if let Some(json) = json {
        headers
            .set("Content-Type", "application/json")
            .map_err(unreachable)?;
        init.set_body(&JsValue::from_str(&json));
    }
    if let Some(token) = bearer {
        headers
            .set("Authorization", &format!("Bearer {token}"))
            .map_err(unreachable)?;
    }
    init.set_headers(&headers);
    let window = web_sys::window().ok_or_else(|| unreachable(JsValue::NULL))?;
    let response = JsFuture::from(window.fetch_with_str_and_init(url, &init))
        .await
        .map_err(unreachable)?;
    let response: web_sys::Response = response.dyn_into().map_err(unreachable)?;
    let body = JsFuture::from(response.text().map_err(unreachable)?)
        .await
        .map_err(unreachable)?;
    Ok(Answer {
        ok: response.ok(),
        status: response.status(),
        status_text: response.status_text(),
        body: body.as_string().unwrap_or_default(),
    })
}

/// What the browser said went wrong (a `TypeError: Failed to fetch`, say).
#[cfg(feature = "hydrate")]
fn unreachable(error: wasm_bindgen::JsValue) -> ApiFailure {
    use wasm_bindgen::JsCast;
    let detail = match error.dyn_ref::<js_sys::Error>() {
        Some(error) => String::from(error.message()),
        None => "no answer".to_owned(),
    };
    ApiFailure::Unreachable(detail)
}

#[cfg(feature = "hydrate")]
fn read_json<T: serde::de::DeserializeOwned>(
    answer: Result<Answer, ApiFailure>,
) -> Result<T, ApiFailure> {
    // Only the parse is generic: the answer's handling is one function for every
    // kind of answer, not one copy each in the WASM.
    let body = read_body(answer)?;
    serde_json::from_str(&body).map_err(|err| ApiFailure::Unreachable(err.to_string()))
}

/// A successful answer's body, or why there is none: the server's JSON error, or
/// what went wrong on the way.
#[cfg(feature = "hydrate")]
fn read_body(answer: Result<Answer, ApiFailure>) -> Result<String, ApiFailure> {
    let answer = answer?;
    if answer.ok {
        return Ok(answer.body);
    }
    match serde_json::from_str::<ApiErrorBody>(&answer.body) {
        Ok(body) => Err(ApiFailure::Rejected {
            error: body.error,
            message: body.message,
        }),
        Err(_) => Err(ApiFailure::Unreachable(format!(
            "HTTP {} {}",
            answer.status, answer.status_text
        ))),
    }
}
