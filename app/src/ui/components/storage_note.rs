//! `StorageNote`: says when the browser refuses site storage, so a reload would
//! sign the reader out.

use leptos::prelude::*;

use crate::session;

/// Says so when the browser refuses site storage: the session then lives only in
/// this tab, and a reload signs the reader out. Rendered hidden on the server, and
/// decided after hydration.
#[component]
pub(crate) fn StorageNote() -> impl IntoView {
    let blocked = RwSignal::new(false);
    Effect::new(move |_| blocked.set(!session::survives_reload()));
    view! {
        <p class="notice storage-note" role="status" hidden=move || !blocked.get()>
            "This browser blocks site storage: you stay signed in only until this page is reloaded or closed."
        </p>
    }
}
