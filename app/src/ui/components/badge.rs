//! `ConnectionBadge`: where the connection stands, in a word and a colour, with a
//! status region of its own that says each change once.

use leptos::prelude::*;

use crate::room::ConnectionState;
use crate::socket::Retry;

/// Where the connection stands, in a word and a colour. Screen readers hear each
/// change of state once, from a status region of its own: the badge's text counts
/// down every second while reconnecting, and a live region on it would be read out
/// every second.
#[component]
pub(crate) fn ConnectionBadge(
    state: Signal<ConnectionState>,
    missed: Signal<bool>,
    /// Named in what is announced, so arriving in a room says which.
    room: Signal<String>,
) -> impl IntoView {
    let kind = move || match state.get() {
        ConnectionState::Connecting => "connecting",
        ConnectionState::Open => "live",
        ConnectionState::Reconnecting(_) => "reconnecting",
        ConnectionState::Offline | ConnectionState::Closed(_) => "offline",
    };
    let label = move || match state.get() {
        ConnectionState::Connecting => "Connecting…".to_owned(),
        ConnectionState::Open => "Live".to_owned(),
        ConnectionState::Reconnecting(Retry {
            retry_in_secs,
            attempt,
        }) => format!("Reconnecting in {retry_in_secs} s (attempt {attempt})"),
        ConnectionState::Offline => "Offline".to_owned(),
        ConnectionState::Closed(reason) => format!("Offline: {reason}"),
    };
    // Changes with the state only, never with the countdown; and a connection
    // attempt while reconnecting is still reconnecting (each attempt would otherwise
    // be announced twice).
    let announced = Memo::new(move |previous: Option<&Announced>| match state.get() {
        ConnectionState::Connecting => match previous {
            Some(Announced::Reconnecting | Announced::Offline) => Announced::Reconnecting,
            _ => Announced::Connecting,
        },
        ConnectionState::Open => Announced::Live,
        ConnectionState::Reconnecting(_) => Announced::Reconnecting,
        ConnectionState::Offline => Announced::Offline,
        ConnectionState::Closed(reason) => Announced::Closed(reason.to_string()),
    });
    let announcement = move || {
        let room = room.get();
        match announced.get() {
            Announced::Connecting => format!("Connecting to #{room}"),
            Announced::Live => format!("In #{room}: live"),
            Announced::Reconnecting => format!("Connection to #{room} lost: reconnecting"),
            Announced::Offline => format!("#{room}: offline"),
            Announced::Closed(reason) => format!("#{room}: offline: {reason}"),
        }
    };
    view! {
        <div class="badges">
            <span class=move || format!("badge badge-{}", kind()) data-state=kind>{label}</span>
            <span class="visually-hidden" role="status">{announcement}</span>
            <span class="badge badge-missed" hidden=move || !missed.get()
                title="Some messages sent while you were away could not be recovered">
                "Missed messages"
            </span>
        </div>
    }
}

/// What the badge's status region says, apart from the room.
#[derive(Clone, PartialEq)]
enum Announced {
    Connecting,
    Live,
    Reconnecting,
    Offline,
    Closed(String),
}
