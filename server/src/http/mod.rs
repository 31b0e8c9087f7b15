//! HTTP: the router, the accept loop with its timeouts, what every response carries
//! (security headers), who the client is and whether its page may open sockets, the
//! web client's files, and the two JSON APIs: the browser's (guest tokens, the room
//! list) and the backend's (publish, history, members, disconnect).

pub mod backend_api;
pub mod browser_api;
pub mod client_address;
pub mod error;
pub mod origin;
pub mod router;
pub mod security_headers;
pub mod serve;
pub mod static_files;
