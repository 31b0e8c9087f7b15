//! A room's outbox in this tab's `sessionStorage`: a reload (or a crash of the page)
//! loses nothing typed, and what was being sent goes out again with its `ref`.
//! `sessionStorage` belongs to one tab, so two tabs never send the same entry.
//! Without `hydrate` (on the server) nothing is stored.

use crate::model::outbox::Outbox;

#[cfg(feature = "hydrate")]
fn key(room: &str) -> String {
    format!("chorus.outbox.{room}")
}

#[cfg(feature = "hydrate")]
fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.session_storage().ok().flatten()
}

/// Keeps `outbox` as `room`'s (an empty one removes it). Best effort: without
/// storage the outbox still lives as long as the page.
pub(crate) fn store(room: &str, outbox: &Outbox) {
    #[cfg(feature = "hydrate")]
    if let Some(storage) = storage() {
        if outbox.entries().is_empty() {
            let _ = storage.remove_item(&key(room));
        } else if let Ok(text) = serde_json::to_string(outbox) {
            let _ = storage.set_item(&key(room), &text);
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (room, outbox);
}

/// `room`'s outbox as this tab left it; what was being sent is queued again.
pub(crate) fn load(room: &str) -> Option<Outbox> {
    #[cfg(feature = "hydrate")]
    {
        let text = storage()?.get_item(&key(room)).ok().flatten()?;
        serde_json::from_str::<Outbox>(&text)
            .ok()
            .map(Outbox::restored)
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = room;
        None
    }
}
