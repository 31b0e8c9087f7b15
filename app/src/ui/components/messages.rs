//! `MessageList`: the conversation, day headings and author groups, following new
//! messages unless the reader scrolled up, loading older ones at the top; and
//! `NewMessages`, what arrives live, for screen readers.

use std::sync::Arc;

use leptos::either::{Either, EitherOf3};
use leptos::html;
use leptos::prelude::*;
use leptos::wasm_bindgen::JsCast;
use leptos::web_sys;

use crate::model::grouping::{DayName, Row, rows};
use crate::model::links::{Piece, pieces};
use crate::model::timeline::{Entry, messages_after, newest_message};
use chorus_protocol::{Member, SystemEvent};

/// How close to the bottom (in pixels) still counts as "following" the conversation.
const FOLLOW_SLACK_PX: i32 = 48;

/// How close to the top (in pixels) loads older messages.
const OLDER_SLACK_PX: i32 = 80;

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
    let rows = move || entries.with(|entries| rows(entries, local::local_ms, local::today()));
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
            <For each=rows key=Row::key let:row>
                {render_row(&row, me, first_unseen)}
            </For>
        </ol>
        <button type="button" class="jump" node_ref=jump hidden on:click=move |_| to_bottom()>
            "Jump to latest"
        </button>
    }
}

/// Others' messages as they arrive, read out by screen readers (a log: additions
/// only), and not shown: the list shows them. Kept in step by hand, one paragraph
/// appended per message and the oldest removed, rather than by a keyed `For`: this
/// is all it needs, and a `For` of its own cost 9 KB of WASM.
#[component]
pub(crate) fn NewMessages(news: Signal<Vec<(u64, String)>>) -> impl IntoView {
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

fn render_row(
    row: &Row,
    me: Signal<Option<Member>>,
    first_unseen: Signal<Option<u64>>,
) -> impl IntoView + use<> {
    let (entry, continues) = match row {
        Row::Day { day, name } => {
            let heading = match name {
                DayName::Today => "Today".to_owned(),
                DayName::Yesterday => "Yesterday".to_owned(),
                DayName::Date => local::date(*day),
            };
            return EitherOf3::A(view! { <li class="day"><h2>{heading}</h2></li> });
        }
        Row::Entry { entry, continues } => (entry, *continues),
    };
    match &**entry {
        Entry::Message(message) => {
            // Own messages are told apart by user id: two users may share a name.
            let author = message.user_id.clone();
            let own = move || me.with(|me| me.as_ref().is_some_and(|me| me.user_id == author));
            let id = message.id;
            let first_unseen = move || first_unseen.get() == Some(id);
            let (time, full) = local::time(&message.timestamp);
            // A continuing message keeps its author for screen readers; the style
            // hides it, and shows the time beside the message on hover or focus.
            // The time is focusable so its full date shows to keyboard users too.
            EitherOf3::B(view! {
                <li class="message" class:own=own class:continued=continues
                    class:first-unseen=first_unseen data-id=id.to_string()>
                    <div class="meta">
                        <span class="author">{message.user.clone()}</span>
                        <time datetime=message.timestamp.clone() tabindex="0" data-full=full>{time}</time>
                    </div>
                    <p class="text">{linked(&message.content)}</p>
                </li>
            })
        }
        // A line of its own: a join or leave, or a gap (a note).
        Entry::System { text, event, .. } => {
            let kind = match event {
                SystemEvent::Join => "system system-join",
                SystemEvent::Leave => "system system-leave",
                SystemEvent::Unknown => "system",
            };
            let no_role: Option<&str> = None;
            EitherOf3::C(view! { <li class=kind role=no_role>{text.clone()}</li> })
        }
        Entry::Gap { .. } => {
            let text = "Some messages sent while you were away could not be recovered.";
            EitherOf3::C(view! { <li class="gap" role=Some("note")>{text.to_owned()}</li> })
        }
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

/// Times in the reader's time zone and locale, as the browser knows them (12 or 24
/// hours, names of days and months). On the server, which never renders a message
/// (they come over the socket), the timestamp's own UTC text.
mod local {
    #[cfg(feature = "hydrate")]
    use leptos::wasm_bindgen::JsValue;

    #[cfg(feature = "hydrate")]
    const DAY_MS: f64 = 86_400_000.0;

    #[cfg(feature = "hydrate")]
    fn parse(timestamp: &str) -> Option<js_sys::Date> {
        let date = js_sys::Date::new(&JsValue::from_str(timestamp));
        (!date.get_time().is_nan()).then_some(date)
    }

    /// `Intl.DateTimeFormat` options, written as JSON.
    #[cfg(feature = "hydrate")]
    fn options(json: &str) -> JsValue {
        js_sys::JSON::parse(json).unwrap_or(JsValue::UNDEFINED)
    }

    /// Milliseconds since the epoch, moved by the time zone's offset at that time.
    #[cfg(feature = "hydrate")]
    fn local(date: &js_sys::Date) -> i64 {
        (date.get_time() - date.get_timezone_offset() * 60_000.0) as i64
    }

    /// When a message was sent, in local milliseconds (see [`crate::model::grouping`]).
    pub(crate) fn local_ms(timestamp: &str) -> Option<i64> {
        #[cfg(feature = "hydrate")]
        return parse(timestamp).map(|date| local(&date));
        #[cfg(not(feature = "hydrate"))]
        {
            let _ = timestamp;
            None
        }
    }

    /// The reader's local day.
    pub(crate) fn today() -> i64 {
        #[cfg(feature = "hydrate")]
        return crate::model::grouping::local_day(local(&js_sys::Date::new_0()));
        #[cfg(not(feature = "hydrate"))]
        0
    }

    /// A message's time as a list shows it ("3:04 PM", "15:04"), and its full date
    /// and time.
    pub(crate) fn time(timestamp: &str) -> (String, String) {
        #[cfg(feature = "hydrate")]
        if let Some(date) = parse(timestamp) {
            return (
                date.to_locale_time_string_with_options(
                    "default",
                    &options(r#"{"hour":"numeric","minute":"2-digit"}"#),
                )
                .into(),
                date.to_locale_string(
                    "default",
                    &options(r#"{"dateStyle":"full","timeStyle":"short"}"#),
                )
                .into(),
            );
        }
        let time = timestamp.get(11..16).unwrap_or(timestamp);
        (time.to_owned(), timestamp.to_owned())
    }

    /// A local day's date, in full.
    pub(crate) fn date(day: i64) -> String {
        #[cfg(feature = "hydrate")]
        {
            // Noon UTC of that day, written in UTC: the very date, whatever the zone.
            let noon = js_sys::Date::new(&JsValue::from_f64(day as f64 * DAY_MS + DAY_MS / 2.0));
            noon.to_locale_date_string(
                "default",
                &options(r#"{"dateStyle":"full","timeZone":"UTC"}"#),
            )
            .into()
        }
        #[cfg(not(feature = "hydrate"))]
        {
            // The proleptic Gregorian date of a day count (Howard Hinnant's
            // `civil_from_days`), as ISO 8601.
            let z = day + 719_468;
            let era = z.div_euclid(146_097);
            let of_era = z.rem_euclid(146_097);
            let year_of_era = (of_era - of_era / 1460 + of_era / 36_524 - of_era / 146_096) / 365;
            let of_year = of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
            let shifted_month = (5 * of_year + 2) / 153;
            let day_of_month = of_year - (153 * shifted_month + 2) / 5 + 1;
            let month = if shifted_month < 10 {
                shifted_month + 3
            } else {
                shifted_month - 9
            };
            let year = year_of_era + era * 400 + i64::from(month <= 2);
            format!("{year:04}-{month:02}-{day_of_month:02}")
        }
    }

    #[cfg(all(test, not(feature = "hydrate")))]
    mod tests {
        #[test]
        fn a_day_count_is_its_iso_date() {
            assert_eq!(super::date(0), "1970-01-01");
            assert_eq!(super::date(20_420), "2025-11-28");
            assert_eq!(super::date(20_785), "2026-11-28");
            assert_eq!(super::date(-1), "1969-12-31");
            assert_eq!(super::date(11_016), "2000-02-29");
        }
    }
}
