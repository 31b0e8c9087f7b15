use leptos::prelude::*;

use crate::eager::IntoEagerAny;

use crate::chat::ConnectionState;

/// Where the connection stands, in a word and a colour, announced to screen readers.
#[component]
pub fn ConnectionBadge(state: Signal<ConnectionState>, missed: Signal<bool>) -> impl IntoView {
    let kind = move || match state.get() {
        ConnectionState::Connecting => "connecting",
        ConnectionState::Open => "live",
        ConnectionState::Reconnecting { .. } => "reconnecting",
        ConnectionState::Offline | ConnectionState::Closed(_) => "offline",
    };
    let label = move || match state.get() {
        ConnectionState::Connecting => "Connecting…".to_owned(),
        ConnectionState::Open => "Live".to_owned(),
        ConnectionState::Reconnecting { retry_in_secs, .. } => {
            format!("Reconnecting in {retry_in_secs} s")
        }
        ConnectionState::Offline => "Offline".to_owned(),
        ConnectionState::Closed(reason) => format!("Offline: {reason}"),
    };
    let detail = move || match state.get() {
        ConnectionState::Reconnecting { attempt, .. } => format!("attempt {attempt}"),
        _ => String::new(),
    };
    view! {
        <div class="badges">
            <span class=move || format!("badge badge-{}", kind()) data-state=kind title=detail role="status">
                {label}
            </span>
            <Show when=move || missed.get()>
                <span class="badge badge-missed" title="Some messages sent while you were away could not be recovered">
                    "Missed messages"
                </span>
            </Show>
        </div>
    }
    .into_eager_any()
}
