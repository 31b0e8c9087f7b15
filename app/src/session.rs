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
use crate::protocol::{ApiErrorBody, IssuedToken, JOIN_HISTORY, TokenRequest};
use crate::protocol::{MessagePage, RoomSummary};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub name: String,
    pub token: String,
    /// RFC 3339, UTC.
    pub expires_at: String,
    /// When the token was received (Unix ms, by this browser's clock) and how long it
    /// lives from then: its renewal is scheduled from these ([`crate::renewal`]).
    /// `0` for a session stored before they were kept: renewed at once.
    #[serde(default)]
    pub received_at_ms: u64,
    #[serde(default)]
    pub lifetime_secs: u64,
}

/// Why an API call failed, worded for the person using the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiFailure {
    /// The server answered with an error body; `error` is its machine-readable code.
    Rejected { error: String, message: String },
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
        let request = gloo_net::http::Request::post("/api/token")
            .json(&TokenRequest {
                name: name.to_owned(),
            })
            .map_err(|err| ApiFailure::Unreachable(err.to_string()))?;
        Ok(keep(name.trim(), read_json(request.send().await).await?))
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
        let request = gloo_net::http::Request::post("/api/token/refresh")
            .header("Authorization", &format!("Bearer {}", current.token));
        Ok(keep(&current.name, read_json(request.send().await).await?))
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
        let request =
            gloo_net::http::Request::get(&url).header("Authorization", &format!("Bearer {token}"));
        read_json(request.send().await).await
    }
}

/// `GET /api/rooms`.
pub async fn active_rooms() -> Result<Vec<RoomSummary>, ApiFailure> {
    #[cfg(not(feature = "hydrate"))]
    return browser_only();
    #[cfg(feature = "hydrate")]
    read_json(gloo_net::http::Request::get("/api/rooms").send().await).await
}

#[cfg(feature = "hydrate")]
async fn read_json<T: serde::de::DeserializeOwned>(
    response: Result<gloo_net::http::Response, gloo_net::Error>,
) -> Result<T, ApiFailure> {
    // Only the parse is generic: the response's handling is one function for every
    // kind of answer, not one copy each in the WASM.
    let body = read_body(response).await?;
    serde_json::from_str(&body).map_err(|err| ApiFailure::Unreachable(err.to_string()))
}

/// A successful answer's body, or why there is none: the server's JSON error, or
/// what went wrong on the way.
#[cfg(feature = "hydrate")]
async fn read_body(
    response: Result<gloo_net::http::Response, gloo_net::Error>,
) -> Result<String, ApiFailure> {
    let response = response.map_err(|err| ApiFailure::Unreachable(err.to_string()))?;
    let body = response
        .text()
        .await
        .map_err(|err| ApiFailure::Unreachable(err.to_string()))?;
    if response.ok() {
        return Ok(body);
    }
    match serde_json::from_str::<ApiErrorBody>(&body) {
        Ok(body) => Err(ApiFailure::Rejected {
            error: body.error,
            message: body.message,
        }),
        Err(_) => Err(ApiFailure::Unreachable(format!(
            "HTTP {} {}",
            response.status(),
            response.status_text()
        ))),
    }
}
