//! The Chorus web client. The protocol it shares with the server is the
//! `chorus-protocol` crate.
//!
//! # Layout
//!
//! - [`model`]: plain data, unit-tested natively: the timeline, the outbox, grouping,
//!   links, typing, unread counts, mentions, backoff.
//! - [`socket`]: a reconnecting WebSocket for any Leptos app, generic over a
//!   [`socket::Codec`] (backoff, wake on return, close-code policy, resume point).
//! - [`room`]: `use_websocket(room)`, the chat room on top of it: the codec, the
//!   handler that turns frames into the page's signals, and [`room::ChatSocket`].
//! - [`session`]: the guest session in `localStorage`, the token calls, and
//!   renewing the token in the background, across tabs.
//! - [`ui`]: pages (one per route), components, the document's title.
//! - [`App`] / [`shell`]: the Leptos application, rendered on the server (`ssr`) and
//!   hydrated in the browser (`hydrate`). Browser APIs are used only under `hydrate`.

// `ssr` and `hydrate` together would put browser-only code (which needs a browser's
// event loop) into the server, whose pages would then panic on the first request.
// That happens when one `cargo build` covers both the server and the `frontend`
// crate, e.g. `cargo build --workspace`: cargo unifies the features of `app`.
#[cfg(all(feature = "ssr", feature = "hydrate"))]
compile_error!(
    "`app` was built with both `ssr` and `hydrate`: build the server alone \
     (`cargo build`, `cargo build -p chorus-server`, `cargo leptos build`) \
     and the WASM client with `cargo leptos build`, never the whole workspace in one build"
);

pub mod model;
pub mod room;
pub mod session;
pub mod socket;
pub mod ui;

use leptos::prelude::*;
use leptos_meta::HashedStylesheet;
use leptos_router::components::{Route, Router, Routes};
use leptos_router::location::RequestUrl;
use leptos_router::path;

use ui::pages::{HomePage, RoomPage};

/// The HTML document around [`App`], rendered by the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    // The request's URL, made absolute by leptos_axum (`http://leptos.dev/room/x`).
    let title = use_context::<RequestUrl>()
        .and_then(|url| url.parse().ok())
        .map(|url| ui::title::title_for_path(url.path()))
        .unwrap_or_else(|| ui::title::SITE_TITLE.to_owned());
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <AutoReload options=options.clone()/>
                <HashedStylesheet options=options.clone() id="chorus"/>
                <HydrationScripts options/>
                <title>{title}</title>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The application: its routes, each a page.
#[component]
pub fn App() -> impl IntoView {
    session::renewal::use_token_renewal();
    view! {
        <Router>
            <main>
                <Routes fallback=|| view! { <p class="not-found">"Page not found."</p> }>
                    <Route path=path!("/") view=HomePage/>
                    <Route path=path!("/room/:name") view=RoomPage/>
                </Routes>
            </main>
        </Router>
    }
}
