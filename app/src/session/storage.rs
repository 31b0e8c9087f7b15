//! Where the session is kept: `localStorage`, shared by every tab and reload, or
//! this tab's copy when the browser refuses site storage; and [`track`] for effects
//! that follow it.

use serde::{Deserialize, Serialize};

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
    /// lives from then: its renewal is scheduled from these ([`crate::session::renewal`]).
    /// `0` for a session stored before they were kept: renewed at once.
    #[serde(default)]
    pub received_at_ms: u64,
    /// The token's lifetime in seconds, from `received_at_ms`.
    #[serde(default)]
    pub lifetime_secs: u64,
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
