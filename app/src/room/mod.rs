//! `use_websocket(room)`: a chat room's live connection as reactive state.
//!
//! The chat layer on top of [`crate::socket`]: [`ChatCodec`] speaks
//! [`chorus_protocol`] (pings answered, `welcome` means ready, message ids are the
//! resume point, close codes per [`CloseCode::reconnect`](chorus_protocol::CloseCode::reconnect)), and the room's
//! [`Timeline`], member list and problems are signals the page reads. The URL
//! carries the stored guest token and `since=<last id>`; a token renewed while
//! connected ([`crate::session::renewal`], in this tab or another) is handed to the server in
//! a `refresh` frame; a 4002 (at connect or while connected) renews the token
//! keeping the identity ([`session::refresh`], or a new guest with the same name if
//! the server refuses); a 4001 or a renewal that cannot be had at all clears the
//! session.
//!
//! ```no_run
//! # use leptos::prelude::*;
//! # use app::room::{SendError, use_websocket};
//! # fn page() -> Result<(), SendError> {
//! let room = Signal::derive(|| "lobby".to_owned());
//! let socket = use_websocket(room);       // ChatSocket: Copy
//! let state = socket.state();             // Signal<ConnectionState>
//! let messages = socket.messages();       // Signal<Vec<Arc<Entry>>>, in id order, each once
//! let users = socket.users();             // Signal<Vec<String>>
//! socket.send("hello")?;                  // into the outbox; Err(SendError::Invalid(..) | OutboxFull)
//! let unsent = socket.outbox();           // Signal<Outbox>: sending, queued or failed
//! # Ok(())
//! # }
//! ```
//!
//! On the server (`ssr`) the hook only creates its signals: the page renders in
//! the connecting state and the browser takes over after hydration.
//!
//! # Layout
//!
//! - `mod.rs`: [`use_websocket`];
//! - `chat_socket.rs`: [`ChatSocket`], what the page reads and sends;
//! - `state.rs`: [`ConnectionState`], [`ClosedReason`], [`SendError`];
//! - `codec.rs`: [`ChatCodec`], the protocol as the socket sees it;
//! - `handler.rs`: the socket's handler (URL, renewal, events); `frames.rs`: what
//!   each server frame changes;
//! - `saved_outbox.rs`: a room's unsent messages in the tab's `sessionStorage`;
//! - `browser.rs`: the clock, the origin, `ref`s, timers.

use std::collections::HashMap;

use chorus_protocol::ClientFrame;
use leptos::prelude::*;

use crate::model::outbox::Outbox;
use crate::model::timeline::Timeline;
use crate::model::typing::Typists;
use crate::model::unread::Unread;
use crate::session::{self};
use crate::socket::{SocketOptions, use_reconnecting_socket};

mod browser;
mod chat_socket;
mod codec;
mod frames;
mod handler;
mod saved_outbox;
mod state;

pub use chat_socket::ChatSocket;
use chat_socket::Signals;
pub use codec::ChatCodec;
use handler::RoomHandler;
pub use state::{ClosedReason, ConnectionState, SendError};

/// How many live messages [`ChatSocket::news`] keeps: enough for a screen reader
/// to catch up on a burst, few enough to keep the page small.
const NEWS_KEPT: usize = 5;

/// Connects to `room` and follows it as it changes; see the module docs.
pub fn use_websocket(room: Signal<String>) -> ChatSocket {
    let signals = Signals {
        state: RwSignal::new(ConnectionState::Connecting),
        outbox: RwSignal::new(Outbox::default()),
        socket: StoredValue::new(None),
        timeline: RwSignal::new(Timeline::new()),
        me: RwSignal::new(None),
        problem: RwSignal::new(None),
        news: RwSignal::new(Vec::new()),
        unread: RwSignal::new(Unread::default()),
        room: StoredValue::new(None::<String>),
        loading_older: RwSignal::new(false),
        mentioned: RwSignal::new(None),
        typists: RwSignal::new(Typists::default()),
        typing_sent: StoredValue::new(0),
    };
    let current = signals.room;
    // The current room's outbox is saved as it changes, so a reload finds it.
    Effect::new(move |_| {
        signals.outbox.with(|unsent| {
            if let Some(room) = current.try_get_value().flatten() {
                saved_outbox::store(&room, unsent);
            }
        });
    });
    let token = StoredValue::new(None::<String>);
    let handler = RoomHandler {
        signals,
        token,
        other_outboxes: StoredValue::new(HashMap::new()),
        current,
    };
    let socket = use_reconnecting_socket(room, SocketOptions::default(), handler);
    signals.socket.set_value(Some(socket));
    // A token renewed while connected (here or in another tab) goes to the server
    // over the open socket, so the connection outlives the token it was opened with.
    Effect::new(move |_| {
        session::track();
        if signals.state.get() != ConnectionState::Open {
            return;
        }
        let Some(renewed) = session::load().map(|session| session.token) else {
            return;
        };
        if token.with_value(|token| token.as_ref() == Some(&renewed)) {
            return;
        }
        let frame = ClientFrame::Refresh {
            token: renewed.clone(),
        };
        if socket.send(&frame) {
            token.set_value(Some(renewed));
        }
    });
    ChatSocket { signals }
}
