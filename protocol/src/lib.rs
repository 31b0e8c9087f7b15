//! The wire protocol shared by the server and the browser client.
//!
//! Every frame is a JSON text message tagged by `type`. Unknown fields are
//! ignored in both directions so either side can grow new fields without
//! breaking the other. This crate has no Leptos dependency and compiles for
//! native and `wasm32` targets alike.
//!
//! # Layout
//!
//! - `client.rs`: what a client sends ([`ClientFrame`]), its parsing and validation,
//!   and the [`FrameError`] / [`ErrorCode`] that refuse a frame;
//! - `server.rs`: what the server sends ([`ServerFrame`] and the records in it), and
//!   [`ServerFrame::from_json`], the reader clients use;
//! - `spliced.rs`: server frames written in pieces, for speed (the member list kept
//!   as JSON entries, a welcome and its `users` frames, a message split around its
//!   id), each read back by the tests as the frame it stands for;
//! - `names.rs`: room names ([`RoomName`]) and display names;
//! - `close.rs`: close codes ([`CloseCode`]) and what a client does after each
//!   ([`Reconnect`]);
//! - `http.rs`: the WebSocket subprotocols (and the token in one) and the HTTP
//!   API's bodies;
//! - `limits.rs`: every length, count and interval the protocol fixes.
//!
//! Everything is exported at the crate's root (`chorus_protocol::ServerFrame`).

mod client;
mod close;
mod http;
mod limits;
mod names;
mod server;
mod spliced;

pub use client::{ClientFrame, ErrorCode, FrameError, validate_content, validate_ref};
pub use close::{CloseCode, Reconnect, reconnect_for_code};
pub use http::{
    ApiErrorBody, IssuedToken, MessagePage, RoomSummary, SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX,
    TokenRequest, token_from_subprotocols, token_subprotocols,
};
pub use limits::{
    DEFAULT_PAGE, JOIN_HISTORY, MAX_CONTENT_CHARS, MAX_DISPLAY_NAME_CHARS, MAX_PAGE, MAX_REF_CHARS,
    MAX_ROOM_NAME_CHARS, MAX_USER_ID_CHARS, REF_WINDOW_SECS, TYPING_EVERY_MS, TYPING_MIN_GAP_MS,
    TYPING_SHOWN_MS,
};
pub use names::{
    DisplayNameError, RoomName, RoomNameError, display_name_for_id, is_hidden_in_names,
    is_valid_user_id, normalize_display_name, validate_room_name,
};
pub use server::{ChatMessage, Member, ServerFrame, SystemEvent};
pub use spliced::{WelcomeHead, member_entry, message_around_id, users_frame};
