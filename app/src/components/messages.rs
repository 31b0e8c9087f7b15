use std::sync::Arc;

use leptos::either::Either;
use leptos::html;
use leptos::prelude::*;
use leptos::wasm_bindgen::JsCast;
use leptos::web_sys;

use crate::eager::IntoEagerAny;
use crate::links::{Piece, pieces};
use crate::protocol::{Member, SystemEvent};
use crate::timeline::{Entry, messages_after, newest_message};

/// How close to the bottom (in pixels) still counts as "following" the conversation.
const FOLLOW_SLACK_PX: i32 = 48;

/// How close to the top (in pixels) loads older messages.
const OLDER_SLACK_PX: i32 = 80;

/// The conversation. Follows new messages while scrolled to the bottom, and
/// stays put once the reader scrolls up, offering "Jump to latest (N new)"; the
/// reader's own message always brings it back down. Reaching the top (or pressing
/// "Load older messages") asks for the page before the oldest shown; the message
/// that was at the top stays where it was when the page arrives above it.
#[component]
pub fn MessageList(
    entries: Signal<Vec<Arc<Entry>>>,
    me: Signal<Option<Member>>,
    /// The first message that arrived while the tab was hidden: a "New messages"
    /// divider goes above it.
    first_unseen: Signal<Option<u64>>,
    has_older: Signal<bool>,
    loading_older: Signal<bool>,
    on_load_older: Callback<()>,
) -> impl IntoView {
    let list = NodeRef::<html::Ol>::new();
    let jump = NodeRef::<html::Button>::new();
    let following = StoredValue::new(true);
    // Where the list was at the last scroll event, or where this code last put it.
    let last_top = StoredValue::new(0);
    // The newest message id seen, and the newest when the reader scrolled up.
    let newest = StoredValue::new(0_u64);
    let left_at = StoredValue::new(0_u64);
    // The jump button is kept up to date by hand, like `NewMessages`: a reactive
    // view for one button that comes and goes cost more client code than this.
    let show_jump = move || {
        let Some(jump) = jump.get_untracked() else {
            return;
        };
        let away = !following.get_value();
        jump.set_hidden(!away);
        if away {
            let unseen =
                entries.with_untracked(|entries| messages_after(entries, left_at.get_value()));
            let text = if unseen == 0 {
                "Jump to latest".to_owned()
            } else {
                format!("Jump to latest ({unseen} new)")
            };
            jump.set_text_content(Some(&text));
        }
    };
    let to_bottom = move || {
        following.set_value(true);
        show_jump();
        // After the change being made is rendered.
        request_animation_frame(move || {
            // The page may have gone in the meantime.
            if let Some(list) = list.try_get_untracked().flatten() {
                list.set_scroll_top(list.scroll_height());
                // Where this put it: a scroll event for it may come late or merged
                // with the reader's own.
                last_top.set_value(list.scroll_top());
            }
        });
    };
    // The message at the top when older ones were asked for, and how far below the
    // list's scroll position it was.
    let anchor = StoredValue::new(None::<(String, i32)>);
    let load_older = move || {
        if !has_older.get_untracked() || loading_older.get_untracked() {
            return;
        }
        if let Some(list) = list.get_untracked()
            && let Ok(Some(first)) = list.query_selector("li.message")
        {
            let first: web_sys::HtmlElement = first.unchecked_into();
            let id = first.get_attribute("data-id").unwrap_or_default();
            anchor.set_value(Some((id, first.offset_top() - list.scroll_top())));
        }
        on_load_older.run(());
    };
    let on_scroll = move |_| {
        if let Some(list) = list.get_untracked() {
            let top = list.scroll_top();
            let distance = list.scroll_height() - top - list.client_height();
            // Only the reader scrolling up stops the following: a scroll event that
            // comes after more messages were added (it fires a frame late) finds the
            // end farther away, but the list no higher than before.
            let scrolled_up = top < last_top.get_value();
            last_top.set_value(top);
            let now_following =
                distance <= FOLLOW_SLACK_PX || (following.get_value() && !scrolled_up);
            if now_following != following.get_value() {
                following.set_value(now_following);
                left_at.set_value(newest.get_value());
                show_jump();
            }
            if list.scroll_top() <= OLDER_SLACK_PX {
                load_older();
            }
        }
    };
    Effect::new(move |_| {
        entries.track();
        let me = me.with_untracked(|me| me.as_ref().map(|me| me.user_id.clone()));
        let arrived = entries.with_untracked(|entries| newest_message(entries, me.as_deref()));
        match arrived {
            // A room starting over (another room, say): from its end.
            None => {
                newest.set_value(0);
                following.set_value(true);
            }
            Some((id, own)) if id > newest.get_value() => {
                newest.set_value(id);
                // The reader's own message: back to the conversation's end.
                if own {
                    following.set_value(true);
                }
            }
            Some(_) => {}
        }
        show_jump();
        if let Some((id, offset)) = anchor.get_value() {
            request_animation_frame(move || {
                let Some(list) = list.try_get_untracked().flatten() else {
                    return;
                };
                let Ok(Some(first)) = list.query_selector("li.message") else {
                    return;
                };
                // Nothing arrived above the anchor yet (a live message at the bottom).
                if first.get_attribute("data-id").as_deref() == Some(id.as_str()) {
                    return;
                }
                anchor.set_value(None);
                if let Ok(Some(kept)) = list.query_selector(&format!("li[data-id=\"{id}\"]")) {
                    let kept: web_sys::HtmlElement = kept.unchecked_into();
                    list.set_scroll_top(kept.offset_top() - offset);
                    last_top.set_value(list.scroll_top());
                }
            });
        } else if following.get_value() {
            to_bottom();
        }
    });
    view! {
        // A list, not a live region: a live region would read out the whole history
        // on every join and reconnect. `NewMessages` reads out what arrives.
        <ol class="messages" node_ref=list on:scroll=on_scroll aria-label="Messages" tabindex="0">
            // Always there, hidden when not wanted: far less client code than items
            // that come and go.
            <li class="older" hidden=move || !has_older.get()>
                <button type="button" on:click=move |_| load_older()
                    disabled=move || loading_older.get()>
                    {move || if loading_older.get() { "Loading older messages…" } else { "Load older messages" }}
                </button>
            </li>
            <li class="empty" hidden=move || !entries.with(Vec::is_empty)>"No messages yet. Say hello!"</li>
            <For each=move || entries.get() key=|entry| entry.key() let:entry>
                {render_entry(&entry, me, first_unseen)}
            </For>
        </ol>
        <button type="button" class="jump" node_ref=jump hidden on:click=move |_| to_bottom()>
            "Jump to latest"
        </button>
    }
    .into_eager_any()
}

/// Others' messages as they arrive, read out by screen readers (a log: additions
/// only), and not shown: the list shows them. Kept in step by hand, one paragraph
/// appended per message and the oldest removed, rather than by a keyed `For`: this
/// is all it needs, and a `For` of its own cost 9 KB of WASM.
#[component]
pub fn NewMessages(news: Signal<Vec<(u64, String)>>) -> impl IntoView {
    let log = NodeRef::<html::Div>::new();
    let newest = StoredValue::new(0_u64);
    Effect::new(move |_| {
        let Some(log) = log.get() else { return };
        news.with(|items| {
            let document = document();
            for (id, text) in items {
                if *id <= newest.get_value() {
                    continue;
                }
                newest.set_value(*id);
                if let Ok(paragraph) = document.create_element("p") {
                    paragraph.set_text_content(Some(text));
                    let _ = log.append_child(&paragraph);
                }
            }
            // A new room starts over; otherwise keep as many as the socket does.
            if items.is_empty() {
                newest.set_value(0);
                log.set_text_content(None);
            }
            while log.child_element_count() as usize > items.len().max(1) {
                match log.first_element_child() {
                    Some(oldest) => oldest.remove(),
                    None => break,
                }
            }
        });
    });
    view! { <div class="visually-hidden" role="log" aria-label="New messages" node_ref=log></div> }
}

fn render_entry(
    entry: &Entry,
    me: Signal<Option<Member>>,
    first_unseen: Signal<Option<u64>>,
) -> AnyView {
    match entry {
        Entry::Message(message) => {
            // Own messages are told apart by user id: two users may share a name.
            let author = message.user_id.clone();
            let own = move || me.with(|me| me.as_ref().is_some_and(|me| me.user_id == author));
            let id = message.id;
            let first_unseen = move || first_unseen.get() == Some(id);
            view! {
                <li class="message" class:own=own class:first-unseen=first_unseen data-id=id.to_string()>
                    <div class="meta">
                        <span class="author">{message.user.clone()}</span>
                        <time datetime=message.timestamp.clone()>{local_time(&message.timestamp)}</time>
                    </div>
                    <p class="text">{linked(&message.content)}</p>
                </li>
            }
            .into_eager_any()
        }
        Entry::System { text, event, .. } => {
            let kind = match event {
                SystemEvent::Join => "system system-join",
                SystemEvent::Leave => "system system-leave",
                SystemEvent::Unknown => "system",
            };
            view! { <li class=kind>{text.clone()}</li> }.into_eager_any()
        }
        Entry::Gap { .. } => view! {
            <li class="gap" role="note">
                "Some messages sent while you were away could not be recovered."
            </li>
        }
        .into_eager_any(),
    }
}

/// A message's text with its web addresses as links, opened in a new tab without
/// telling the page who linked to it. Text only: a message is never HTML.
fn linked(text: &str) -> impl IntoView + use<> {
    pieces(text)
        .into_iter()
        .map(|piece| match piece {
            Piece::Text(text) => Either::Left(text.to_owned()),
            Piece::Link(address) => Either::Right(view! {
                <a href=address.to_owned() target="_blank" rel="noopener noreferrer">{address.to_owned()}</a>
            }),
        })
        .collect_view()
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
