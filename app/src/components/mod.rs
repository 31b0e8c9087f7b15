//! Pieces of the room and home pages, each taking signals as props and owning no
//! connection: `badge` (where the connection stands), `messages` (the timeline,
//! auto-scrolling unless the reader scrolled up), `members`, `outbox` (unsent messages, with Retry and Discard), and `rooms` (the active
//! rooms list and the join-by-name form), and `storage_note` (a session that will not
//! survive a reload). [`use_hydrated`] keeps server-rendered forms disabled until the
//! WASM is live.

mod badge;
mod members;
mod messages;
mod outbox;
mod rooms;
mod storage_note;

pub use badge::ConnectionBadge;
pub use members::MemberList;
pub use messages::MessageList;
pub use outbox::OutboxList;
pub use rooms::{RoomPicker, capitalize, room_path};
pub use storage_note::StorageNote;

use leptos::prelude::*;

/// `false` as rendered by the server, `true` once the page is hydrated (effects run
/// only in the browser). Forms are disabled until then: before it, their submit
/// would be a plain GET with what was typed in the URL, and hydration would wipe
/// what had been typed.
pub fn use_hydrated() -> Signal<bool> {
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    hydrated.into()
}
