//! `OutboxList`: messages typed and not delivered yet, each with where it stands
//! (sending, waiting, failed with Retry and Discard).

use leptos::prelude::*;

use crate::model::outbox::Status;
use crate::room::{ChatSocket, ConnectionState};
use crate::ui::eager::IntoEagerAny;

/// Messages typed but not delivered yet, under the conversation: each says whether
/// it is being sent, waits for the connection, or failed (then Retry or Discard).
#[component]
pub(crate) fn OutboxList(socket: ChatSocket) -> impl IntoView {
    let outbox = socket.outbox();
    let state = socket.state();
    view! {
        <ul class="outbox" aria-label="Unsent messages" aria-live="polite">
            <For
                each=move || outbox.get().entries().to_vec()
                key=|entry| (entry.reference.clone(), entry.status.clone())
                let:entry
            >
                {
                    let reference = entry.reference.clone();
                    let discard_ref = entry.reference.clone();
                    let (class, label) = match &entry.status {
                        Status::Sending => ("pending", "Sending…".to_owned()),
                        Status::Queued => ("pending", "Waiting for the connection…".to_owned()),
                        Status::Failed(reason) => ("failed", format!("Not sent: {reason}")),
                    };
                    let failed = matches!(entry.status, Status::Failed(_));
                    view! {
                        <li class=format!("outbox-entry {class}") data-status=class>
                            <span class="text">{entry.text.clone()}</span>
                            <span class="status">{label}</span>
                            // Drawn again on a change of status (it is in the key).
                            <button type="button" class="link" hidden=!failed
                                disabled=move || state.get() != ConnectionState::Open
                                on:click=move |_| socket.retry(&reference)>"Retry"</button>
                            <button type="button" class="link" hidden=!failed
                                on:click=move |_| socket.discard(&discard_ref)>"Discard"</button>
                        </li>
                    }
                    .into_eager_any()
                }
            </For>
        </ul>
    }
}
