//! `use_websocket(room)`: a room's live connection as reactive state.
//!
//! The hook owns one background task per room (see `browser`): it opens the
//! socket with the stored token and the last id seen as `since`, answers pings,
//! feeds frames into a [`Timeline`], and reconnects with [`Backoff`] after any
//! close the protocol marks as reconnectable. Changing the room or unmounting
//! closes the socket with 1000 and ends the task, and with it every timer and
//! listener it holds.
//!
//! On the server (`ssr`) the hook only creates its signals: the page renders in
//! the connecting state and the browser takes over after hydration.

#[cfg(feature = "hydrate")]
mod browser;

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};

use futures_channel::mpsc::UnboundedSender;
use leptos::prelude::*;

use crate::protocol::{ClientFrame, FrameError, validate_content};
use crate::timeline::{Entry, Timeline};

/// Where the connection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    /// Opening the socket and waiting for the server's `welcome`.
    Connecting,
    /// Welcomed: messages flow both ways.
    Open,
    /// Lost; attempt number `attempt` starts in `retry_in_secs` seconds.
    Reconnecting { attempt: u32, retry_in_secs: u32 },
    /// The browser reports no network; the next attempt waits for it.
    Offline,
    /// Will not reconnect by itself.
    Closed(ClosedReason),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClosedReason {
    /// No session in this browser: sign in first.
    SignedOut,
    /// The server refused the token (4001), or a fresh one could not be had.
    Unauthorized,
    /// The server refused the room name (4004).
    InvalidRoom,
    /// Any other close the protocol says not to retry.
    Other { code: u16, reason: String },
}

impl fmt::Display for ClosedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClosedReason::SignedOut => f.write_str("not signed in"),
            ClosedReason::Unauthorized => f.write_str("your session is no longer valid"),
            ClosedReason::InvalidRoom => f.write_str("this room name is not allowed"),
            ClosedReason::Other { code, reason } if reason.is_empty() => {
                write!(f, "closed by the server ({code})")
            }
            ClosedReason::Other { code, reason } => write!(f, "{reason} ({code})"),
        }
    }
}

/// Why [`ChatSocket::send`] did not send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The socket is not open; the text stays with the caller.
    NotConnected,
    /// Blank or too long; the server would refuse it.
    Invalid(FrameError),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::NotConnected => f.write_str("Not connected: the message was not sent."),
            SendError::Invalid(err) => f.write_str(&err.message),
        }
    }
}

impl std::error::Error for SendError {}

/// What the page tells the connection task.
// Only the browser runs a connection task; the server build merely renders.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
#[derive(Debug)]
enum Command {
    /// A serialized `message` frame.
    Send(String),
    /// The network is back or the tab is visible again: skip the backoff wait.
    Wake,
    /// Close with 1000 and end the task.
    Stop,
}

/// The sender of the current room's task, shared with cleanup (which must be `Send`).
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
#[derive(Clone, Default)]
struct Control {
    commands: Arc<Mutex<Option<UnboundedSender<Command>>>>,
    /// Bumped on every room change so a stopping task cannot write into the new room.
    generation: Arc<AtomicU64>,
}

impl Control {
    fn send(&self, command: Command) -> bool {
        let commands = self.commands.lock().unwrap_or_else(PoisonError::into_inner);
        commands
            .as_ref()
            .is_some_and(|commands| commands.unbounded_send(command).is_ok())
    }

    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    fn replace(&self, next: Option<UnboundedSender<Command>>) {
        let mut commands = self.commands.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(previous) = std::mem::replace(&mut *commands, next) {
            // Ignored if the task has already ended.
            let _ = previous.unbounded_send(Command::Stop);
        }
    }
}

/// A room's connection: reactive reads and a `send` function. Cheap to copy.
#[derive(Clone, Copy)]
pub struct ChatSocket {
    state: RwSignal<ConnectionState>,
    timeline: RwSignal<Timeline>,
    me: RwSignal<Option<String>>,
    problem: RwSignal<Option<String>>,
    control: StoredValue<Control>,
}

impl ChatSocket {
    fn new() -> Self {
        ChatSocket {
            state: RwSignal::new(ConnectionState::Connecting),
            timeline: RwSignal::new(Timeline::new()),
            me: RwSignal::new(None),
            problem: RwSignal::new(None),
            control: StoredValue::new(Control::default()),
        }
    }

    pub fn state(&self) -> Signal<ConnectionState> {
        self.state.into()
    }

    /// Messages, system events and gaps, in id order, each once.
    pub fn messages(&self) -> Signal<Vec<Arc<Entry>>> {
        let timeline = self.timeline;
        Signal::derive(move || timeline.with(|timeline| timeline.entries().to_vec()))
    }

    /// The room's members, sorted.
    pub fn users(&self) -> Signal<Vec<String>> {
        let timeline = self.timeline;
        Signal::derive(move || timeline.with(|timeline| timeline.users().to_vec()))
    }

    /// This member's display name, as the server's `welcome` gave it.
    pub fn me(&self) -> Signal<Option<String>> {
        self.me.into()
    }

    /// Whether the server said some messages could not be recovered.
    pub fn missed(&self) -> Signal<bool> {
        let timeline = self.timeline;
        Signal::derive(move || timeline.with(Timeline::missed))
    }

    /// The latest thing that went wrong with sending (an `error` frame, a lost send).
    pub fn problem(&self) -> Signal<Option<String>> {
        self.problem.into()
    }

    pub fn dismiss_problem(&self) {
        self.problem.set(None);
    }

    /// Sends a chat message, or says why it cannot.
    pub fn send(&self, content: &str) -> Result<(), SendError> {
        validate_content(content).map_err(SendError::Invalid)?;
        if self.state.get_untracked() != ConnectionState::Open {
            return Err(SendError::NotConnected);
        }
        let frame = ClientFrame::Message {
            content: content.to_owned(),
        };
        let text = serde_json::to_string(&frame).expect("client frames always serialize");
        let sent = self
            .control
            .try_with_value(|control| control.send(Command::Send(text)))
            .unwrap_or(false);
        if sent {
            self.problem.set(None);
            Ok(())
        } else {
            Err(SendError::NotConnected)
        }
    }
}

/// Connects to `room` and follows it as it changes; see the module docs.
pub fn use_websocket(room: Signal<String>) -> ChatSocket {
    let socket = ChatSocket::new();
    #[cfg(feature = "hydrate")]
    browser::drive(room, socket);
    #[cfg(not(feature = "hydrate"))]
    let _ = room;
    socket
}
