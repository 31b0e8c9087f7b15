use std::sync::Arc;

use leptos::html;
use leptos::prelude::*;

use crate::protocol::{Member, SystemEvent};
use crate::timeline::Entry;

/// How close to the bottom (in pixels) still counts as "following" the conversation.
const FOLLOW_SLACK_PX: i32 = 48;

/// The conversation. Follows new messages while scrolled to the bottom, and
/// stays put once the reader scrolls up.
#[component]
pub fn MessageList(entries: Signal<Vec<Arc<Entry>>>, me: Signal<Option<Member>>) -> impl IntoView {
    let list = NodeRef::<html::Ol>::new();
    let following = StoredValue::new(true);
    let on_scroll = move |_| {
        if let Some(list) = list.get_untracked() {
            let distance = list.scroll_height() - list.scroll_top() - list.client_height();
            following.set_value(distance <= FOLLOW_SLACK_PX);
        }
    };
    Effect::new(move |_| {
        entries.track();
        if following.get_value() {
            // After this change is rendered.
            request_animation_frame(move || {
                // The page may have gone in the meantime.
                if let Some(list) = list.try_get_untracked().flatten() {
                    list.set_scroll_top(list.scroll_height());
                }
            });
        }
    });
    view! {
        <ol class="messages" node_ref=list on:scroll=on_scroll role="log" aria-live="polite"
            aria-label="Messages" tabindex="0">
            <Show when=move || entries.with(Vec::is_empty)>
                <li class="empty">"No messages yet. Say hello!"</li>
            </Show>
            <For each=move || entries.get() key=|entry| entry.key() let:entry>
                {render_entry(&entry, me)}
            </For>
        </ol>
    }
    .into_any()
}

fn render_entry(entry: &Entry, me: Signal<Option<Member>>) -> AnyView {
    match entry {
        Entry::Message(message) => {
            // Own messages are told apart by user id: two users may share a name.
            let author = message.user_id.clone();
            let own = move || me.with(|me| me.as_ref().is_some_and(|me| me.user_id == author));
            view! {
                <li class="message" class:own=own data-id=message.id.to_string()>
                    <div class="meta">
                        <span class="author">{message.user.clone()}</span>
                        <time datetime=message.timestamp.clone()>{local_time(&message.timestamp)}</time>
                    </div>
                    <p class="text">{message.content.clone()}</p>
                </li>
            }
            .into_any()
        }
        Entry::System { text, event, .. } => {
            let kind = match event {
                SystemEvent::Join => "system system-join",
                SystemEvent::Leave => "system system-leave",
                SystemEvent::Unknown => "system",
            };
            view! { <li class=kind>{text.clone()}</li> }.into_any()
        }
        Entry::Gap { .. } => view! {
            <li class="gap" role="note">
                "Some messages sent while you were away could not be recovered."
            </li>
        }
        .into_any(),
    }
}

/// `HH:MM` in the reader's time zone (UTC when rendered outside a browser).
fn local_time(timestamp: &str) -> String {
    #[cfg(feature = "hydrate")]
    {
        let date = js_sys::Date::new(&js_sys::JsString::from(timestamp).into());
        if !date.get_time().is_nan() {
            return format!("{:02}:{:02}", date.get_hours(), date.get_minutes());
        }
    }
    timestamp.get(11..16).unwrap_or(timestamp).to_owned()
}
