//! The protocol's limits: how long content, names and `ref`s may be, how much
//! history a join brings, and how often typing is sent and shown.

/// Longest chat message, in characters (not bytes).
pub const MAX_CONTENT_CHARS: usize = 4000;
/// Longest room name, in characters.
pub const MAX_ROOM_NAME_CHARS: usize = 64;
/// Longest display name, in characters, after trimming.
pub const MAX_DISPLAY_NAME_CHARS: usize = 32;
/// Longest user id (a token's `sub`, the server API's `user_id`), in characters.
pub const MAX_USER_ID_CHARS: usize = 256;
/// How many recent messages a member receives on join when it asks for no `since`.
pub const JOIN_HISTORY: usize = 50;
/// A client sends `typing` at most this often while its user types.
pub const TYPING_EVERY_MS: u64 = 3000;
/// Others show a user as typing for this long after its last `typing` (or until
/// its message arrives).
pub const TYPING_SHOWN_MS: u64 = 5000;
/// The server passes on at most one `typing` per connection this often; more are
/// dropped (a little under [`TYPING_EVERY_MS`], for timers that fire early).
pub const TYPING_MIN_GAP_MS: u64 = 2000;

/// Longest client `ref`, in characters.
pub const MAX_REF_CHARS: usize = 64;
/// How long a message's `ref` is remembered for idempotent resends, in seconds.
pub const REF_WINDOW_SECS: u64 = 300;

/// The most messages one `GET /api/rooms/{room}/messages` returns, and how many
/// without `limit`.
pub const MAX_PAGE: usize = 100;
/// How many messages one history request returns without `limit`.
pub const DEFAULT_PAGE: usize = 50;
