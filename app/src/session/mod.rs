//! The signed-in guest: kept in `localStorage` so every tab and reload shares it,
//! and obtained from `POST /api/token`. [`track`] lets effects follow it as it
//! changes, here or in another tab ([`crate::session::renewal`] renews it in the background).
//!
//! The server renders every page signed out; pages read the session after
//! hydration, in effects and event handlers, which only run in the browser. Built
//! without `hydrate`, storage is empty and the HTTP calls report that they need one.
//!
//! - `storage.rs`: [`Session`] and where it is kept ([`load`], [`store`],
//!   [`clear`], [`track`]);
//! - `api.rs`: the token calls and the page's API reads ([`sign_in`], [`refresh`],
//!   [`active_rooms`], [`older_messages`]);
//! - [`renewal`]: renewing the token in the background, across tabs.

mod api;
pub mod renewal;
mod storage;

pub use api::{ApiFailure, active_rooms, older_messages, refresh, sign_in};
pub use storage::{STORAGE_KEY, Session, changed, clear, load, store, survives_reload, track};
