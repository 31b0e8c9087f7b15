//! One component per route: `home` (`/`: sign in as a guest, pick or name a room)
//! and `room` (`/room/{name}`: the chat, its members and the composer). A page reads
//! its state from hooks (`chat::use_websocket`, `session`) and lays out
//! `components`; it renders on the server in the signed-out, connecting state and
//! comes alive after hydration.

// Leptos's `#[component]` writes `pub` items (the props' builder) whatever the
// component's own visibility, which `unreachable_pub` reports at the component.
#![allow(unreachable_pub)]

mod home;
mod room;

pub(crate) use home::HomePage;
pub(crate) use room::RoomPage;
