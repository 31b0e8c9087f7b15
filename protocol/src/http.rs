//! What travels over HTTP: the WebSocket subprotocols (and the token carried in
//! one), and the JSON bodies of the browser API.

use serde::{Deserialize, Serialize};

use crate::server::ChatMessage;

/// The WebSocket subprotocol of this protocol. A client may offer it in
/// `Sec-WebSocket-Protocol` together with `chorus.token.<JWT>` to authenticate
/// without putting the token in the URL (where proxies and access logs keep it); the
/// server then selects `chorus.v1`, never the token.
pub const SUBPROTOCOL: &str = "chorus.v1";
/// The prefix of the subprotocol that carries the token.
pub const TOKEN_SUBPROTOCOL_PREFIX: &str = "chorus.token.";

/// The subprotocols a client offers to connect with `token`.
pub fn token_subprotocols(token: &str) -> [String; 2] {
    [
        SUBPROTOCOL.to_owned(),
        format!("{TOKEN_SUBPROTOCOL_PREFIX}{token}"),
    ]
}

/// The token offered in `Sec-WebSocket-Protocol` values (comma-separated, possibly
/// over several headers), if any.
pub fn token_from_subprotocols<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    values
        .into_iter()
        .flat_map(|value| value.split(','))
        .find_map(|protocol| protocol.trim().strip_prefix(TOKEN_SUBPROTOCOL_PREFIX))
        .filter(|token| !token.is_empty())
}

/// `POST /api/token` request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRequest {
    /// The display name the guest chose.
    pub name: String,
}

/// `POST /api/token` response body: a freshly issued token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedToken {
    /// The JWT.
    pub token: String,
    /// RFC 3339, UTC.
    pub expires_at: String,
    /// The token's lifetime in seconds, from when it was issued: a client schedules
    /// its renewal by its own clock, unaffected by skew with the server's.
    pub expires_in: u64,
}

/// A live room as listed by `GET /api/rooms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSummary {
    /// The room's name.
    pub name: String,
    /// Distinct users present.
    pub members: usize,
    /// Open connections, counting every tab of a user.
    pub connections: usize,
}

/// The body of every HTTP API error: `{"error": "<code>", "message": "<human text>"}`,
/// plus `"field"` naming the request field at fault when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    /// A code a program can match (`invalid_field`, `rate_limited`, ...).
    pub error: String,
    /// The same in words, for people.
    pub message: String,
    /// The request field at fault, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// `GET /api/rooms/{room}/messages` response: retained messages, oldest first, each
/// as members receive it (with `"type":"message"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagePage {
    /// Oldest first.
    pub messages: Vec<ChatMessage>,
    /// Older messages are retained before the first of these.
    pub has_more: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_travels_as_a_subprotocol() {
        let offered = token_subprotocols("a.b.c");
        assert_eq!(
            offered,
            ["chorus.v1".to_owned(), "chorus.token.a.b.c".to_owned()]
        );
        assert_eq!(
            token_from_subprotocols(["chorus.v1, chorus.token.a.b.c"]),
            Some("a.b.c")
        );
        assert_eq!(
            token_from_subprotocols(["chorus.v1", "chorus.token.x.y.z"]),
            Some("x.y.z")
        );
        assert_eq!(token_from_subprotocols(["chorus.v1"]), None);
        assert_eq!(token_from_subprotocols(["chorus.token."]), None);
        assert_eq!(token_from_subprotocols([]), None);
    }
}
