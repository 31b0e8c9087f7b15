//! `/room/{name}`: the chat: the conversation, its members, the composer and the
//! connection's state.

use std::collections::HashMap;

use chorus_protocol::MAX_CONTENT_CHARS;
use leptos::ev::{KeyboardEvent, SubmitEvent};
use leptos::html;
use leptos::prelude::*;
use leptos_router::NavigateOptions;
use leptos_router::hooks::{use_navigate, use_params_map};

use crate::model::unread::{Unread, with_count};
use crate::room::{ChatSocket, ClosedReason, ConnectionState, use_websocket};
use crate::socket::Retry;
use crate::ui::components::{
    ConnectionBadge, MemberList, MentionAlerts, MessageList, NewMessages, OutboxList, RoomPicker,
    StorageNote,
};
use crate::ui::eager::IntoEagerAny;
use crate::ui::hooks::{focus_soon, use_hydrated};
use crate::ui::title::{room_title, use_title};

/// `/room/{name}`: the chat.
#[component]
pub(crate) fn RoomPage() -> AnyView {
    let params = use_params_map();
    let room = Signal::derive(move || params.read().get("name").unwrap_or_default());
    let socket = use_websocket(room);
    let users = socket.users();
    let member_count = Signal::derive(move || users.with(Vec::len));
    // Counts welcomes, so the room list is fetched again once this member is in it.
    let joins = RwSignal::new(0_u32);
    Effect::new(move |was_open: Option<bool>| {
        let open = socket.state().get() == ConnectionState::Open;
        if open && was_open != Some(true) {
            joins.update(|joins| *joins += 1);
        }
        open
    });
    track_visibility(socket);
    // The drawer closes once its link or form has brought the reader to a room.
    let drawer = NodeRef::<html::Div>::new();
    Effect::new(move |_| {
        room.track();
        if let Some(drawer) = drawer.get_untracked() {
            let _ = drawer.hide_popover();
        }
    });
    let unread = socket.unread();
    use_title(move || with_count(&room_title(&room.get()), unread.with(Unread::count)));
    let navigate = use_navigate();
    // Without a usable session the sign-in page takes over, then comes back here.
    Effect::new(move |_| {
        let reason = match socket.state().get() {
            ConnectionState::Closed(ClosedReason::SignedOut) => "",
            ConnectionState::Closed(ClosedReason::Unauthorized) => "reason=unauthorized&",
            _ => return,
        };
        let to = format!("/?{reason}room={}", room.get_untracked());
        let replace = NavigateOptions {
            replace: true,
            ..Default::default()
        };
        navigate(&to, replace);
    });
    view! {
        <section class="room" aria-labelledby="room-title">
            <header class="room-header">
                <a class="leave" href="/">"← Leave"</a>
                <h1 id="room-title">"#" {room}</h1>
                <ConnectionBadge state=socket.state() missed=socket.missed() room/>
                // Phones only (the style hides it elsewhere): opens the room list as a
                // drawer. The browser's popover gives it Escape, a tap outside to
                // close, and focus order, with no client code.
                <button type="button" class="rooms-toggle" popovertarget="rooms-drawer">"Rooms"</button>
            </header>
            <StorageNote/>
            <div class="room-body">
                <div class="conversation">
                    <MessageList entries=socket.messages() me=socket.me()
                        first_unseen=Signal::derive(move || unread.with(Unread::first_unseen))
                        has_older=socket.has_older() loading_older=socket.loading_older()
                        on_load_older=Callback::new(move |()| socket.load_older())/>
                    <OutboxList socket/>
                    <p class="typing">{move || socket.typing().get()}</p>
                    <NewMessages news=socket.news()/>
                </div>
                <aside class="sidebar">
                    <MemberList users=socket.users() me=socket.me()/>
                    <MentionAlerts socket room/>
                    // In the sidebar on wider screens; a drawer on phones.
                    <div id="rooms-drawer" class="rooms-drawer" popover="auto" node_ref=drawer>
                        <button type="button" class="link drawer-close" popovertarget="rooms-drawer"
                            popovertargetaction="hide">"Close"</button>
                        <RoomPicker current=room refresh_on=joins live_members=member_count/>
                    </div>
                </aside>
            </div>
            <ConnectionBanner socket/>
            <Composer socket room/>
        </section>
    }
    .into_eager_any()
}

/// Tells the chat whether the page is hidden, as it is now and whenever that
/// changes: what arrives meanwhile is unread.
fn track_visibility(socket: ChatSocket) {
    Effect::new(move |_| socket.page_hidden(document().hidden()));
    #[cfg(feature = "hydrate")]
    {
        let listener =
            gloo_events::EventListener::new(&document(), "visibilitychange", move |_| {
                socket.page_hidden(document().hidden());
            });
        StoredValue::new_local(listener);
    }
}

/// While the connection is down, or closed by the server (refused, removed), a
/// banner over the composer says so and offers to try again at once (the badge
/// alone is easy to miss). Not a live region: the badge's status already announces
/// each change. Always rendered, hidden while connected: one fixed element is far
/// less client code than one that comes and goes.
#[component]
fn ConnectionBanner(socket: ChatSocket) -> impl IntoView {
    let state = socket.state();
    let text = move || match state.get() {
        ConnectionState::Reconnecting(Retry { retry_in_secs, .. }) => Some(format!(
            "Connection lost. Trying again in {retry_in_secs} s."
        )),
        ConnectionState::Offline => {
            Some("You are offline. The room reconnects when the network is back.".to_owned())
        }
        // Refused or removed: said until the reader tries again. (Signed out or
        // unauthorized, the page goes to sign in.)
        ConnectionState::Closed(ref reason)
            if !matches!(reason, ClosedReason::SignedOut | ClosedReason::Unauthorized) =>
        {
            Some(format!("Disconnected: {reason}."))
        }
        _ => None,
    };
    view! {
        <div class="connection-banner" hidden=move || text().is_none()>
            <p>{text}</p>
            <button type="button" on:click=move |_| socket.reconnect_now()>"Retry now"</button>
        </div>
    }
}

/// The message box: Enter sends, focus stays, a failed send keeps the text. Each
/// room keeps its own draft, and a room switch carries no error along. Disabled until
/// the page is hydrated, so nothing typed is lost to hydration and no message can be
/// submitted as a plain form (its text in a URL).
#[component]
fn Composer(socket: ChatSocket, room: Signal<String>) -> impl IntoView {
    let draft = RwSignal::new(String::new());
    let refused = RwSignal::new(None::<String>);
    let input = NodeRef::<html::Textarea>::new();
    let hydrated = use_hydrated();
    let drafts = StoredValue::new(HashMap::<String, String>::new());
    Effect::new(move |previous: Option<String>| {
        let current = room.get();
        if let Some(previous) = previous
            && previous != current
        {
            let left_behind = draft.get_untracked();
            drafts.update_value(|drafts| {
                if left_behind.is_empty() {
                    drafts.remove(&previous);
                } else {
                    drafts.insert(previous, left_behind);
                }
            });
            draft
                .set(drafts.with_value(|drafts| drafts.get(&current).cloned().unwrap_or_default()));
            refused.set(None);
        }
        current
    });
    // Focus in the composer on arriving in a room: from another room always (the
    // link that had it is gone or elsewhere), on a first load unless the reader
    // already focused something.
    Effect::new(move |previous: Option<Option<String>>| {
        let current = room.get();
        if !hydrated.get() {
            return None;
        }
        match previous.flatten() {
            Some(previous) if previous == current => {}
            Some(_) => focus_soon("composer-input", false),
            None => focus_soon("composer-input", true),
        }
        Some(current)
    });
    let send = move || {
        match socket.send(&draft.get_untracked()) {
            Ok(()) => {
                draft.set(String::new());
                refused.set(None);
            }
            Err(err) => refused.set(Some(err.to_string())),
        }
        if let Some(input) = input.get_untracked() {
            let _ = input.focus();
        }
    };
    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        send();
    };
    // Enter sends; Shift+Enter is a new line, and so is Enter while an input method
    // is composing (it confirms the composition).
    let on_keydown = move |ev: KeyboardEvent| {
        if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
            ev.prevent_default();
            send();
        }
    };
    // Shown near the limit, so nothing long is refused by surprise.
    let count = move || {
        let used = draft.with(|draft| draft.chars().count());
        counter_text(used, MAX_CONTENT_CHARS)
    };
    let problem = move || refused.get().or_else(|| socket.problem().get());
    // Sending never waits for the connection: say what happens to what is sent now.
    let hint = move || match socket.state().get() {
        ConnectionState::Open => None,
        ConnectionState::Closed(_) => {
            Some("Disconnected: messages you send now wait here until a retry gets in.")
        }
        ConnectionState::Connecting => {
            Some("Connecting… messages you send now go out as soon as it is live.")
        }
        ConnectionState::Reconnecting(_) | ConnectionState::Offline => {
            Some("Not connected: messages you send now go out when the connection is back.")
        }
    };
    view! {
        <form class="composer" on:submit=submit>
            <label for="composer-input" class="visually-hidden">"Message"</label>
            <textarea id="composer-input" name="message" rows="1" autocomplete="off"
                placeholder="Write a message: Enter sends, Shift+Enter adds a line" node_ref=input
                disabled=move || !hydrated.get()
                aria-describedby="composer-problem composer-hint composer-count"
                prop:value=move || draft.get()
                on:keydown=on_keydown
                on:input=move |ev| {
                    let text = event_target_value(&ev);
                    if !text.trim().is_empty() {
                        socket.user_typed();
                    }
                    draft.set(text);
                    refused.set(None);
                }></textarea>
            <button type="submit" disabled=move || !hydrated.get()>"Send"</button>
            <p class="composer-problem" id="composer-problem" role="alert">{problem}</p>
            <p class="composer-hint" id="composer-hint">{hint}</p>
            <p class="composer-count" id="composer-count">{count}</p>
        </form>
    }
}

/// What the composer's counter says after `used` of `limit` characters: nothing
/// until nine tenths are used, then how many are left, or how many too many.
fn counter_text(used: usize, limit: usize) -> Option<String> {
    if used * 10 < limit * 9 {
        return None;
    }
    Some(match limit.checked_sub(used) {
        Some(1) => "1 character left".to_owned(),
        Some(left) => format!("{left} characters left"),
        None => format!("{} over the limit of {limit}", used - limit),
    })
}

#[cfg(test)]
mod tests {
    use super::counter_text;

    #[test]
    fn the_counter_shows_near_the_limit_only() {
        assert_eq!(counter_text(0, 4000), None);
        assert_eq!(counter_text(3599, 4000), None);
        assert_eq!(
            counter_text(3600, 4000).as_deref(),
            Some("400 characters left")
        );
        assert_eq!(
            counter_text(3999, 4000).as_deref(),
            Some("1 character left")
        );
        assert_eq!(
            counter_text(4000, 4000).as_deref(),
            Some("0 characters left")
        );
        assert_eq!(
            counter_text(4003, 4000).as_deref(),
            Some("3 over the limit of 4000")
        );
    }
}
