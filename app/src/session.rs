//! The signed-in guest: kept in `localStorage` so every tab and reload shares it,
//! and obtained from `POST /api/token`. [`track`] lets effects follow it as it
//! changes, here or in another tab ([`crate::renewal`] renews it in the background).
//!
//! The server renders every page signed out; pages read the session after
//! hydration, in effects and event handlers, which only run in the browser. Built
//! without `hydrate`, storage is empty and the HTTP calls report that they need one.

use std::fmt;

use serde::{Deserialize, Serialize};

#[cfg(feature = "hydrate")]
use chorus_protocol::{ApiErrorBody, IssuedToken, JOIN_HISTORY, TokenRequest};
use chorus_protocol::{MessagePage, RoomSummary};

/// A guest session kept by this browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The display name signed in with.
    pub name: String,
    /// The guest token.
    pub token: String,
    /// RFC 3339, UTC.
    pub expires_at: String,
    /// When the token was received (Unix ms, by this browser's clock) and how long it
    /// lives from then: its renewal is scheduled from these ([`crate::renewal`]).
    /// `0` for a session stored before they were kept: renewed at once.
    #[serde(default)]
    pub received_at_ms: u64,
    /// The token's lifetime in seconds, from `received_at_ms`.
    #[serde(default)]
    pub lifetime_secs: u64,
}

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

/// The `localStorage` key of the session.
pub const STORAGE_KEY: &str = "chorus.session";

#[cfg(feature = "hydrate")]
thread_local! {
    /// This tab's copy of the session: the only one when the browser refuses site
    /// storage (blocked cookies and site data, some private modes), so signing in
    /// still works until the page is reloaded instead of looping back to sign-in.
    static IN_TAB: std::cell::RefCell<Option<Session>> = const { std::cell::RefCell::new(None) };
    /// Bumped whenever the session may have changed, for [`track`].
    static VERSION: leptos::prelude::ArcTrigger = leptos::prelude::ArcTrigger::new();
}

/// Makes the running effect run again whenever the session changes: signed in, out,
/// or renewed, in this tab or another.
pub fn track() {
    #[cfg(feature = "hydrate")]
    VERSION.with(|version| leptos::prelude::Track::track(version));
}

/// Tells the effects following [`track`] that the session may have changed (another
/// tab wrote it, for instance).
pub fn changed() {
    #[cfg(feature = "hydrate")]
    VERSION.with(|version| leptos::prelude::Notify::notify(version));
}

/// `localStorage`, if the browser lets this page use it (reading the property throws
/// when site data is blocked).
#[cfg(feature = "hydrate")]
fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

/// The stored session, if any (always `None` on the server): the shared one where
/// the browser keeps site data (so a sign-out or renewal in another tab counts
/// here too), else this tab's copy.
pub fn load() -> Option<Session> {
    #[cfg(feature = "hydrate")]
    {
        if !survives_reload() {
            return IN_TAB.with(|tab| tab.borrow().clone());
        }
        storage()
            .and_then(|storage| storage.get_item(STORAGE_KEY).ok().flatten())
            .and_then(|text| serde_json::from_str(&text).ok())
    }
    #[cfg(not(feature = "hydrate"))]
    None
}

/// Keeps `session` for this tab and, where the browser allows, for every tab and
/// reload; returns whether it was stored beyond this tab (see [`survives_reload`]).
pub fn store(session: &Session) -> bool {
    #[cfg(feature = "hydrate")]
    {
        IN_TAB.with(|tab| *tab.borrow_mut() = Some(session.clone()));
        let text = serde_json::to_string(session).expect("a session always serializes");
        let stored = storage().is_some_and(|storage| storage.set_item(STORAGE_KEY, &text).is_ok());
        changed();
        stored
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = session;
        false
    }
}

/// Signs out: forgets the session in this tab and in `localStorage`.
pub fn clear() {
    #[cfg(feature = "hydrate")]
    {
        IN_TAB.with(|tab| *tab.borrow_mut() = None);
        if let Some(storage) = storage() {
            let _ = storage.remove_item(STORAGE_KEY);
        }
        changed();
    }
}

/// Whether a session stored now outlives this page: `false` when the browser
/// refuses site storage (the session then lives only in this tab). `true` on the
/// server, which renders no note about it.
pub fn survives_reload() -> bool {
    #[cfg(feature = "hydrate")]
    {
        const PROBE: &str = "chorus.probe";
        storage().is_some_and(|storage| {
            let writable = storage.set_item(PROBE, "1").is_ok();
            let _ = storage.remove_item(PROBE);
            writable
        })
    }
    #[cfg(not(feature = "hydrate"))]
    true
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

/// `GET /api/rooms`.
pub async fn active_rooms() -> Result<Vec<RoomSummary>, ApiFailure> {
    #[cfg(not(feature = "hydrate"))]
    return browser_only();
    #[cfg(feature = "hydrate")]
    read_json(fetch("GET", "/api/rooms", None, None).await)
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
