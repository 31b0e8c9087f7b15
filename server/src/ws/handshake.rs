//! The WebSocket handshake (RFC 6455 §4.2), here rather than axum's
//! `WebSocketUpgrade`: the connection needs the `WebSocketStream` itself, and axum's
//! `WebSocket` hides it. A busy room's frames reach every member already framed, one
//! shared buffer per batch (see `hub::framed`), and the connection writes those
//! bytes straight to the socket; through a `Sink<Message>` each frame would be
//! copied into every member's write buffer one by one.

use axum::extract::FromRequestParts;
use axum::http::header::{
    CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tungstenite::protocol::{Role, WebSocketConfig};

/// A WebSocket after the handshake.
pub(crate) type WebSocket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// A request to upgrade to a WebSocket, checked: answer it with [`Upgrade::on_upgrade`].
pub(crate) struct Upgrade {
    key: HeaderValue,
    on_upgrade: hyper::upgrade::OnUpgrade,
    /// The protocol chosen among those the client offered, if any.
    protocol: Option<HeaderValue>,
    offered: HeaderMap,
    config: WebSocketConfig,
}

/// Why a request cannot become a WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandshakeRefused {
    NotGet,
    NoUpgradeInConnection,
    NotWebSocket,
    WrongVersion,
    NoKey,
    /// The HTTP connection cannot be taken over (not HTTP/1.1, or already taken).
    NotUpgradable,
}

impl IntoResponse for HandshakeRefused {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            HandshakeRefused::NotGet => (
                StatusCode::METHOD_NOT_ALLOWED,
                "a WebSocket is opened with GET",
            ),
            HandshakeRefused::NoUpgradeInConnection => (
                StatusCode::BAD_REQUEST,
                "`Connection` must include `upgrade`",
            ),
            HandshakeRefused::NotWebSocket => {
                (StatusCode::BAD_REQUEST, "`Upgrade` must be `websocket`")
            }
            HandshakeRefused::WrongVersion => (
                StatusCode::BAD_REQUEST,
                "`Sec-WebSocket-Version` must be 13",
            ),
            HandshakeRefused::NoKey => (StatusCode::BAD_REQUEST, "`Sec-WebSocket-Key` is missing"),
            HandshakeRefused::NotUpgradable => (
                StatusCode::UPGRADE_REQUIRED,
                "this connection cannot be upgraded to a WebSocket",
            ),
        };
        (status, message).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = HandshakeRefused;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, HandshakeRefused> {
        let headers = &parts.headers;
        if parts.method != Method::GET {
            return Err(HandshakeRefused::NotGet);
        }
        if !header_lists(headers, CONNECTION, "upgrade") {
            return Err(HandshakeRefused::NoUpgradeInConnection);
        }
        if !header_is(headers, UPGRADE, "websocket") {
            return Err(HandshakeRefused::NotWebSocket);
        }
        if !header_is(headers, SEC_WEBSOCKET_VERSION, "13") {
            return Err(HandshakeRefused::WrongVersion);
        }
        let key = headers
            .get(SEC_WEBSOCKET_KEY)
            .ok_or(HandshakeRefused::NoKey)?
            .clone();
        let on_upgrade = parts
            .extensions
            .remove::<hyper::upgrade::OnUpgrade>()
            .ok_or(HandshakeRefused::NotUpgradable)?;
        let mut offered = HeaderMap::new();
        for value in headers.get_all(SEC_WEBSOCKET_PROTOCOL) {
            offered.append(SEC_WEBSOCKET_PROTOCOL, value.clone());
        }
        Ok(Upgrade {
            key,
            on_upgrade,
            protocol: None,
            offered,
            config: WebSocketConfig::default(),
        })
    }
}

impl Upgrade {
    /// Chooses the first of `supported` the client offered (never anything else it
    /// offered, such as a token carried as a protocol).
    pub(crate) fn protocols(mut self, supported: impl IntoIterator<Item = &'static str>) -> Self {
        let offered: Vec<&[u8]> = self
            .offered
            .get_all(SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .flat_map(|value| value.as_bytes().split(|byte| *byte == b','))
            .map(<[u8]>::trim_ascii)
            .collect();
        self.protocol = supported
            .into_iter()
            .find(|protocol| offered.contains(&protocol.as_bytes()))
            .map(HeaderValue::from_static);
        self
    }

    /// The socket's buffers and limits.
    pub(crate) fn config(mut self, config: WebSocketConfig) -> Self {
        self.config = config;
        self
    }

    /// Answers `101 Switching Protocols` and, once the client has it, runs `callback`
    /// with the socket in a task of its own.
    pub(crate) fn on_upgrade<C, F>(self, callback: C) -> Response
    where
        C: FnOnce(WebSocket) -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let Upgrade {
            key,
            on_upgrade,
            protocol,
            config,
            ..
        } = self;
        tokio::spawn(async move {
            // The client went away before the switch: nothing to serve.
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            let socket = WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                Role::Server,
                Some(config),
            )
            .await;
            callback(socket).await;
        });
        let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
        let mut response = (
            StatusCode::SWITCHING_PROTOCOLS,
            [
                (CONNECTION, HeaderValue::from_static("upgrade")),
                (UPGRADE, HeaderValue::from_static("websocket")),
            ],
        )
            .into_response();
        let headers = response.headers_mut();
        if let Ok(accept) = HeaderValue::from_str(&accept) {
            headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
        }
        if let Some(protocol) = protocol {
            headers.insert(SEC_WEBSOCKET_PROTOCOL, protocol);
        }
        response
    }
}

fn header_is(headers: &HeaderMap, name: HeaderName, value: &str) -> bool {
    headers
        .get(name)
        .is_some_and(|header| header.as_bytes().eq_ignore_ascii_case(value.as_bytes()))
}

/// Whether a comma-separated header lists `token` (case-insensitive).
fn header_lists(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|header| {
        header
            .as_bytes()
            .split(|byte| *byte == b',')
            .any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_lists_upgrade_among_other_tokens() {
        let mut headers = HeaderMap::new();
        headers.insert(CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        assert!(header_lists(&headers, CONNECTION, "upgrade"));
        headers.insert(CONNECTION, HeaderValue::from_static("keep-alive, upgrades"));
        assert!(!header_lists(&headers, CONNECTION, "upgrade"));
    }

    #[test]
    fn the_accept_key_is_the_rfc_example() {
        // RFC 6455 §1.3.
        assert_eq!(
            tungstenite::handshake::derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
