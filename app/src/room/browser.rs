//! What the room layer asks of the browser: the clock, the page's origin, random
//! `ref`s, timers, lower case as the browser folds it.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use leptos::prelude::*;

use crate::model::typing::Typists;

/// A `ref` for a message, unique within this page: a random prefix per page load and
/// a counter.
pub(super) fn fresh_ref() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static SALT: OnceLock<u64> = OnceLock::new();
    let salt = SALT.get_or_init(|| {
        #[cfg(feature = "hydrate")]
        return (js_sys::Math::random() * 2f64.powi(48)) as u64;
        #[cfg(not(feature = "hydrate"))]
        0
    });
    format!("{salt:012x}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Looks again once a `typing` just seen has run out.
pub(super) fn forget_typists_later(typists: RwSignal<Typists>) {
    #[cfg(feature = "hydrate")]
    gloo_timers::callback::Timeout::new(chorus_protocol::TYPING_SHOWN_MS as u32, move || {
        typists.try_update(|typists| typists.expire(now_ms() as f64));
    })
    .forget();
    #[cfg(not(feature = "hydrate"))]
    let _ = typists;
}

/// The browser's clock, in Unix milliseconds.
pub(super) fn now_ms() -> u64 {
    #[cfg(feature = "hydrate")]
    return js_sys::Date::now() as u64;
    #[cfg(not(feature = "hydrate"))]
    0
}

/// Whether the page is `https:`, and its `host:port`.
pub(super) fn page_origin() -> (bool, String) {
    #[cfg(feature = "hydrate")]
    {
        let location = window().location();
        let secure = location
            .protocol()
            .is_ok_and(|protocol| protocol == "https:");
        (secure, location.host().unwrap_or_default())
    }
    #[cfg(not(feature = "hydrate"))]
    (false, String::new())
}

/// Lower case as the browser folds it (see [`mentions`]).
pub(super) fn lowercase(text: &str) -> String {
    #[cfg(feature = "hydrate")]
    return js_sys::JsString::from(text).to_lower_case().into();
    #[cfg(not(feature = "hydrate"))]
    text.to_lowercase()
}
