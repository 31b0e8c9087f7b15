//! Pieces of the room and home pages, each taking signals as props and owning no
//! connection: `badge` (where the connection stands), `messages` (the timeline,
//! auto-scrolling unless the reader scrolled up), `new_messages` (what arrives
//! live, for screen readers), `members`, `mention_alerts` (desktop notifications
//! of mentions, on request), `outbox` (unsent messages, with Retry and Discard), and `rooms` (the active
//! rooms list and the join-by-name form), and `storage_note` (a session that will not
//! survive a reload). [`use_hydrated`] keeps server-rendered forms disabled until the
//! WASM is live.

// Leptos's `#[component]` writes `pub` items (the props' builder) whatever the
// component's own visibility, which `unreachable_pub` reports at the component.
#![allow(unreachable_pub)]

mod badge;
mod members;
mod mention_alerts;
mod messages;
mod new_messages;
mod outbox;
mod rooms;
mod storage_note;

pub(crate) use badge::ConnectionBadge;
pub(crate) use members::MemberList;
pub(crate) use mention_alerts::MentionAlerts;
pub(crate) use messages::MessageList;
pub(crate) use new_messages::NewMessages;
pub(crate) use outbox::OutboxList;
pub(crate) use rooms::{RoomPicker, capitalize, room_path};
pub(crate) use storage_note::StorageNote;
