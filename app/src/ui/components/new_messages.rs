//! `NewMessages`: what arrives live, for screen readers.

use leptos::html;
use leptos::prelude::*;

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
