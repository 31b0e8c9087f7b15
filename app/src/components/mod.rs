//! Pieces of the room and home pages, each taking signals as props and owning no
//! connection: `badge` (where the connection stands), `messages` (the timeline,
//! auto-scrolling unless the reader scrolled up, and `NewMessages`, what arrives
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
mod outbox;
mod rooms;
mod storage_note;

pub(crate) use badge::ConnectionBadge;
pub(crate) use members::MemberList;
pub(crate) use mention_alerts::MentionAlerts;
pub(crate) use messages::{MessageList, NewMessages};
pub(crate) use outbox::OutboxList;
pub(crate) use rooms::{RoomPicker, capitalize, room_path};
pub(crate) use storage_note::StorageNote;

use leptos::prelude::*;
use leptos::wasm_bindgen::JsCast;
use leptos::web_sys;

/// `false` as rendered by the server, `true` once the page is hydrated (effects run
/// only in the browser). Forms are disabled until then: before it, their submit
/// would be a plain GET with what was typed in the URL, and hydration would wipe
/// what had been typed.
pub(crate) fn use_hydrated() -> Signal<bool> {
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    hydrated.into()
}

/// Moves keyboard focus to the element with this id once the current change is on
/// screen, so focus never falls back to `<body>` when what had it goes away (a
/// sign-in form, a room's page). With `only_from_body`, focus the reader already
/// put somewhere stays there.
pub(crate) fn focus_soon(id: &'static str, only_from_body: bool) {
    request_animation_frame(move || {
        let document = document();
        if only_from_body {
            let on_body = document.active_element().is_none_or(|active| {
                document
                    .body()
                    .is_some_and(|body| body.unchecked_ref::<web_sys::Element>() == &active)
            });
            if !on_body {
                return;
            }
        }
        if let Some(element) = document.get_element_by_id(id) {
            let _ = element.unchecked_into::<web_sys::HtmlElement>().focus();
        }
    });
}
