//! Which handler answers which path.

use app::{App, shell};
use axum::Router;
use axum::routing::{get, post};
use leptos_axum::{LeptosRoutes, generate_route_list};

use crate::state::AppState;
use crate::{api, security_headers, server_api, static_files, ws};

/// The WebSocket routes, the HTTP API, and the server-rendered pages with the built
/// web client's files.
pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let options = state.leptos_options.clone();
    let page_context = security_headers::page_context(&options);
    let files = static_files::client_files(&options);
    Router::new()
        .nest_service(&format!("/{}", options.site_pkg_dir), files)
        .route("/ws", get(ws::echo))
        .route("/ws/chat/{room}", get(ws::chat))
        .route("/api/token", post(api::issue_token))
        .route("/api/token/refresh", post(api::refresh_token))
        .route("/api/rooms", get(api::list_rooms))
        .route(
            "/api/rooms/{room}/messages",
            post(server_api::publish).get(server_api::history),
        )
        .route("/api/rooms/{room}/members", get(server_api::members))
        .route(
            "/api/users/{user_id}/disconnect",
            post(server_api::disconnect),
        )
        .route("/healthz", get(api::healthz))
        .leptos_routes_with_context(&state, routes, page_context.clone(), move || {
            shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(page_context, shell))
        .layer(axum::middleware::from_fn(security_headers::add))
        .with_state(state)
}
