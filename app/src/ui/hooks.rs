//! Small hooks the pages and components share: whether the page is hydrated, and
//! where keyboard focus goes next.

use leptos::prelude::*;
use leptos::wasm_bindgen::JsCast;
use leptos::web_sys;

/// `false` as rendered by the server, `true` once the page is hydrated (effects run
/// only in the browser). Forms are disabled until then: before it, their submit
/// would be a plain GET with what was typed in the URL, and hydration would wipe
/// what had been typed.
pub(crate) fn use_hydrated() -> Signal<bool> {
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    hydrated.into()
}

/// Moves keyboard focus to the element with this id once the current change is on
/// screen, so focus never falls back to `<body>` when what had it goes away (a
/// sign-in form, a room's page). With `only_from_body`, focus the reader already
/// put somewhere stays there.
pub(crate) fn focus_soon(id: &'static str, only_from_body: bool) {
    request_animation_frame(move || {
        let document = document();
        if only_from_body {
            let on_body = document.active_element().is_none_or(|active| {
                document
                    .body()
                    .is_some_and(|body| body.unchecked_ref::<web_sys::Element>() == &active)
            });
            if !on_body {
                return;
            }
        }
        if let Some(element) = document.get_element_by_id(id) {
            let _ = element.unchecked_into::<web_sys::HtmlElement>().focus();
        }
    });
}
