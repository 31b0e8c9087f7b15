//! HTTP: the router, the accept loop with its timeouts and per-address count,
//! request bodies read within a size and a time, what every response carries
//! (security headers), whether a page may open sockets, the
//! web client's files, and the two JSON APIs: the browser's (guest tokens, the room
//! list) and the backend's (publish, history, members, disconnect).

pub(crate) mod backend_api;
pub(crate) mod body;
pub(crate) mod browser_api;
pub(crate) mod error;
pub(crate) mod origin;
pub(crate) mod router;
pub(crate) mod security_headers;
pub(crate) mod serve;
pub(crate) mod static_files;
