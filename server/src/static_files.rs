//! The web client's files (`/pkg/…`): served with their precompressed siblings
//! (`chorus.wasm.br`, `.gz`, written by `cargo leptos build --release --precompress`)
//! to browsers that accept them, and revalidated by `Last-Modified` rather than
//! fetched again: a reload costs a 304, and a new build is picked up at once.

use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, VARY};
use leptos::config::LeptosOptions;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeader;

/// `/pkg`: the WASM client, its JavaScript glue and the stylesheet.
pub fn client_files(
    options: &LeptosOptions,
) -> SetResponseHeader<SetResponseHeader<ServeDir, HeaderValue>, HeaderValue> {
    let dir = std::path::Path::new(options.site_root.as_ref()).join(options.site_pkg_dir.as_ref());
    let files = ServeDir::new(dir).precompressed_br().precompressed_gzip();
    // The names carry no content hash yet, so a cached copy must be revalidated.
    let revalidated =
        SetResponseHeader::overriding(files, CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // The same path has several encodings: a shared cache must keep them apart.
    SetResponseHeader::overriding(
        revalidated,
        VARY,
        HeaderValue::from_static("accept-encoding"),
    )
}
