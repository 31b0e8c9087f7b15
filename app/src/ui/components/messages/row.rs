//! One row of the conversation as the list shows it: a day's heading, a message
//! (its links live), a join or leave, or a gap.

use chorus_protocol::{Member, SystemEvent};
use leptos::either::{Either, EitherOf3};
use leptos::prelude::*;

use super::local_time;
use crate::model::grouping::{DayName, Row};
use crate::model::links::{Piece, pieces};
use crate::model::timeline::Entry;

pub(super) fn render(
    row: &Row,
    me: Signal<Option<Member>>,
    first_unseen: Signal<Option<u64>>,
) -> impl IntoView + use<> {
    let (entry, continues) = match row {
        Row::Day { day, name } => {
            let heading = match name {
                DayName::Today => "Today".to_owned(),
                DayName::Yesterday => "Yesterday".to_owned(),
                DayName::Date => local_time::date(*day),
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
            let (time, full) = local_time::time(&message.timestamp);
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
