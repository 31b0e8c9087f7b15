//! `MessageList`: the conversation, day headings and author groups, following new
//! messages unless the reader scrolled up, loading older ones at the top. Its
//! parts: `scroll` (following, the jump button, the message kept in place),
//! `row` (how each row is shown) and `local_time` (dates in the reader's zone).

mod local_time;
mod row;
mod scroll;

use std::sync::Arc;

use chorus_protocol::Member;
use leptos::prelude::*;

use crate::model::grouping::{Row, rows};
use crate::model::timeline::Entry;
use scroll::Scroll;

/// The conversation. Follows new messages while scrolled to the bottom, and
/// stays put once the reader scrolls up, offering "Jump to latest (N new)"; the
/// reader's own message always brings it back down. Reaching the top (or pressing
/// "Load older messages") asks for the page before the oldest shown; the message
/// that was at the top stays where it was when the page arrives above it. Each day
/// starts with a heading, and one author's consecutive messages form a group.
#[component]
pub(crate) fn MessageList(
    entries: Signal<Vec<Arc<Entry>>>,
    me: Signal<Option<Member>>,
    /// The first message that arrived while the tab was hidden: a "New messages"
    /// divider goes above it.
    first_unseen: Signal<Option<u64>>,
    has_older: Signal<bool>,
    loading_older: Signal<bool>,
    on_load_older: Callback<()>,
) -> impl IntoView {
    // Named from today as of the latest change: a heading says "Yesterday" once a
    // message arrives after midnight.
    let rows =
        move || entries.with(|entries| rows(entries, local_time::local_ms, local_time::today()));
    let scroll = Scroll::new(entries);
    let load_older = move || {
        if has_older.get_untracked() && !loading_older.get_untracked() {
            scroll.keep_top_message();
            on_load_older.run(());
        }
    };
    let on_scroll = move |_| {
        if scroll.scrolled() {
            load_older();
        }
    };
    Effect::new(move |_| {
        entries.track();
        scroll.entries_changed(me);
    });
    view! {
        // A list, not a live region: a live region would read out the whole history
        // on every join and reconnect. `NewMessages` reads out what arrives.
        <ol class="messages" node_ref=scroll.list on:scroll=on_scroll aria-label="Messages" tabindex="0">
            // Always there, hidden when not wanted: far less client code than items
            // that come and go.
            <li class="older" hidden=move || !has_older.get()>
                <button type="button" on:click=move |_| load_older()
                    disabled=move || loading_older.get()>
                    {move || if loading_older.get() { "Loading older messages…" } else { "Load older messages" }}
                </button>
            </li>
            <li class="empty" hidden=move || !entries.with(Vec::is_empty)>"No messages yet. Say hello!"</li>
            <For each=rows key=Row::key let:row>
                {row::render(&row, me, first_unseen)}
            </For>
        </ol>
        <button type="button" class="jump" node_ref=scroll.jump hidden on:click=move |_| scroll.to_bottom()>
            "Jump to latest"
        </button>
    }
}
