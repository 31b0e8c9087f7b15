//! Which handler answers which path.

use app::{App, shell};
use axum::Router;
use axum::routing::{get, post};
use leptos_axum::{LeptosRoutes, generate_route_list};
use tower_http::CompressionLevel;
use tower_http::compression::CompressionLayer;

use super::{backend_api, browser_api, security_headers, static_files};
use crate::state::AppState;
use crate::ws::admission;

/// The WebSocket routes, the HTTP API, and the server-rendered pages with the built
/// web client's files.
pub(crate) fn router(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let options = state.leptos_options.clone();
    let page_context = security_headers::page_context(&options);
    let files = static_files::client_files(&options);
    // Pages and API reads compressed on the fly: room lists and history pages grow
    // with the rooms, and the page is part of every first visit. Not the WebSocket
    // upgrades, not the client's files (precompressed once, at build time), and not
    // the token endpoints, whose answers carry a secret beside text the caller chose
    // (compression would let the length tell about the secret).
    let compressed = Router::new()
        .route("/api/rooms", get(browser_api::list_rooms))
        .route(
            "/api/rooms/{room}/messages",
            post(backend_api::publish).get(backend_api::history),
        )
        .route("/api/rooms/{room}/members", get(backend_api::members))
        .leptos_routes_with_context(&state, routes, page_context.clone(), move || {
            shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(page_context, shell))
        .layer(compression());
    Router::new()
        .nest_service(&format!("/{}", state.leptos_options.site_pkg_dir), files)
        .route("/ws", get(admission::echo))
        .route("/ws/chat/{room}", get(admission::chat))
        .route("/api/token", post(browser_api::issue_token))
        .route("/api/token/refresh", post(browser_api::refresh_token))
        .route(
            "/api/users/{user_id}/disconnect",
            post(backend_api::disconnect),
        )
        .route("/healthz", get(browser_api::healthz))
        .merge(compressed)
        .layer(axum::middleware::from_fn(security_headers::add))
        .with_state(state)
}

/// Brotli or gzip, as the client prefers, at a level meant for answers made per
/// request: brotli's own default (11) is meant for files compressed once and takes
/// tens of milliseconds for a page; 4 is about gzip's speed and still smaller.
fn compression() -> CompressionLayer {
    CompressionLayer::new().quality(CompressionLevel::Precise(4))
}
