//! The Chorus web client and the protocol it shares with the server.
//!
//! - [`protocol`]: wire frames, close codes and limits; no Leptos, used by the server too.
//! - [`App`] / [`shell`]: the Leptos application, rendered on the server (`ssr`) and
//!   hydrated in the browser (`hydrate`).

pub mod protocol;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::{
    StaticSegment,
    components::{Route, Router, Routes},
};

/// The HTML document around [`App`], rendered by the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="chorus" href="/pkg/chorus.css"/>
        <Title text="Chorus"/>
        <Router>
            <main>
                <Routes fallback=|| view! { <p class="not-found">"Page not found."</p> }>
                    <Route path=StaticSegment("") view=HomePage/>
                </Routes>
            </main>
        </Router>
    }
}

#[component]
fn HomePage() -> impl IntoView {
    view! {
        <section class="home">
            <h1>"Chorus"</h1>
            <p>"Real-time rooms. Connect a WebSocket client to " <code>"/ws/chat/{room}?token=JWT"</code> "."</p>
        </section>
    }
}
