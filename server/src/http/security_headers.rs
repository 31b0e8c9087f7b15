//! Security headers on every response, and a Content-Security-Policy for pages that
//! lets only this server's scripts run: the hydration script by the nonce Leptos
//! puts on it (a new one per page), the WASM client by `'wasm-unsafe-eval'`, no
//! inline script or style of anyone else's.

use axum::extract::Request;
use axum::http::header::{CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use leptos::config::LeptosOptions;

/// The policy of a page rendered with `nonce`. `dev_reload` is the address of
/// `cargo leptos watch`'s reload socket, in development only.
pub(crate) fn page_policy(nonce: &str, dev_reload: Option<&str>) -> String {
    let reload = dev_reload.map(|url| format!(" {url}")).unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self'; img-src 'self' data:; connect-src 'self'{reload}; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// For everything that is not a page (files, API answers, errors): nothing may run,
/// and nothing may frame it.
const DEFAULT_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

/// Sets the page's policy while it renders, with the nonce Leptos generated for it;
/// given to `leptos_routes_with_context`, which runs it after its own contexts.
pub(crate) fn page_context(options: &LeptosOptions) -> impl Fn() + Clone + Send + 'static {
    let dev_reload = (options.env == leptos::config::Env::DEV).then(|| {
        let port = options.reload_external_port.unwrap_or(options.reload_port);
        format!("ws://{}:{port}", options.site_addr.ip())
    });
    move || {
        let Some(nonce) = leptos::nonce::use_nonce() else {
            return;
        };
        let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() else {
            return;
        };
        let policy = page_policy(&nonce, dev_reload.as_deref());
        if let Ok(value) = HeaderValue::from_str(&policy) {
            response.insert_header(CONTENT_SECURITY_POLICY, value);
        }
    }
}

/// The headers every response gets; a response without its own policy (anything
/// but a page) gets the strict default one. Pages are revalidated on every visit
/// (`no-cache`); API answers (tokens among them) are never stored.
pub(crate) async fn add(request: Request, next: Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static(if api {
            "no-store"
        } else {
            "no-cache"
        }));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers
        .entry(CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(DEFAULT_POLICY));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_policy_allows_this_nonce_and_nothing_inline() {
        let policy = page_policy("abc123", None);
        assert!(policy.contains("script-src 'self' 'nonce-abc123' 'wasm-unsafe-eval'"));
        assert!(policy.contains("frame-ancestors 'none'"));
        assert!(!policy.contains("unsafe-inline"));
        assert!(
            page_policy("n", Some("ws://127.0.0.1:3001"))
                .contains("connect-src 'self' ws://127.0.0.1:3001;")
        );
    }
}
