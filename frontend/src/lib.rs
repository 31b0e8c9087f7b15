//! The WASM entry point: hydrates the server-rendered [`app::App`].

/// Called by the generated JS once the WASM is loaded: takes over the page.
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
    // Marks the page as interactive, for people's tools and the end-to-end tests alike.
    if let Some(body) = leptos::prelude::document().body() {
        let _ = body.set_attribute("data-hydrated", "");
    }
}
