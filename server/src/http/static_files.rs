//! The web client's files (`/pkg/…`): served with their precompressed siblings
//! (`chorus.<hash>.wasm.br`, `.gz`, written by `cargo leptos build --release
//! --precompress`) to browsers that accept them. Named by their content
//! (`hash-files`), they are cached as immutable: a new build is a new name. Without
//! hashed names (a build without the hash file) they are revalidated instead.

use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, VARY};
use leptos::config::LeptosOptions;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeader;

/// `/pkg`: the WASM client, its JavaScript glue and the stylesheet.
pub(crate) fn client_files(
    options: &LeptosOptions,
) -> SetResponseHeader<SetResponseHeader<ServeDir, HeaderValue>, HeaderValue> {
    let dir = std::path::Path::new(options.site_root.as_ref()).join(options.site_pkg_dir.as_ref());
    let files = ServeDir::new(dir).precompressed_br().precompressed_gzip();
    let caching = HeaderValue::from_static(if options.hash_files {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    });
    let revalidated = SetResponseHeader::overriding(files, CACHE_CONTROL, caching);
    // The same path has several encodings: a shared cache must keep them apart.
    SetResponseHeader::overriding(
        revalidated,
        VARY,
        HeaderValue::from_static("accept-encoding"),
    )
}
