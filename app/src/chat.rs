//! `use_websocket(room)`: a chat room's live connection as reactive state.
//!
//! The chat layer on top of [`crate::socket`]: [`ChatCodec`] speaks
//! [`chorus_protocol`] (pings answered, `welcome` means ready, message ids are the
//! resume point, close codes per [`CloseCode::reconnect`]), and the room's
//! [`Timeline`], member list and problems are signals the page reads. The URL
//! carries the stored guest token and `since=<last id>`; a token renewed while
//! connected ([`crate::renewal`], in this tab or another) is handed to the server in
//! a `refresh` frame; a 4002 (at connect or while connected) renews the token
//! keeping the identity ([`session::refresh`], or a new guest with the same name if
//! the server refuses); a 4001 or a renewal that cannot be had at all clears the
//! session.
//!
//! ```no_run
//! # use leptos::prelude::*;
//! # use app::chat::{SendError, use_websocket};
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

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use leptos::prelude::*;

use crate::mentions::mentions;
use crate::outbox::{self, Outbox};
use crate::session::{self, ApiFailure};
use crate::socket::{
    Codec, Endpoint, Handler, Next, ReconnectingSocket, Renewal, SendFailure, SocketEvent,
    SocketOptions, SocketState, Stopped, socket_url, use_reconnecting_socket,
};
use crate::timeline::{Entry, Timeline};
use crate::typing::Typists;
use crate::unread::Unread;
use chorus_protocol::{
    ClientFrame, CloseCode, ErrorCode, FrameError, Member, Reconnect, ServerFrame, TYPING_EVERY_MS,
    reconnect_for_code, token_subprotocols, validate_content,
};

/// Where the connection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    /// Opening the socket and waiting for the server's `welcome`.
    Connecting,
    /// Welcomed: messages flow both ways.
    Open,
    /// Lost; attempt number `attempt` starts in `retry_in_secs` seconds.
    Reconnecting {
        /// The attempt's number, from 1.
        attempt: u32,
        /// Seconds until it starts.
        retry_in_secs: u32,
    },
    /// The browser reports no network; the next attempt waits for it.
    Offline,
    /// Will not reconnect by itself.
    Closed(ClosedReason),
}

/// Why the chat socket stopped for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClosedReason {
    /// No session in this browser: sign in first.
    SignedOut,
    /// The server refused the token (4001), or a fresh one could not be had.
    Unauthorized,
    /// The server refused the room name (4004).
    InvalidRoom,
    /// This session may not join this room, or is banned for now (4003).
    Forbidden,
    /// The application removed this user (4010), saying why.
    Removed {
        /// What the application said.
        reason: String,
    },
    /// Any other close the protocol says not to retry.
    Other {
        /// The close code.
        code: u16,
        /// The close reason the server gave.
        reason: String,
    },
}

impl fmt::Display for ClosedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClosedReason::SignedOut => f.write_str("not signed in"),
            ClosedReason::Unauthorized => f.write_str("your session is no longer valid"),
            ClosedReason::InvalidRoom => f.write_str("this room name is not allowed"),
            ClosedReason::Forbidden => f.write_str("you may not join this room"),
            ClosedReason::Removed { reason }
                if reason.is_empty() || reason == CloseCode::Removed.reason() =>
            {
                f.write_str("you were removed from the chat")
            }
            ClosedReason::Removed { reason } => {
                write!(f, "you were removed from the chat: {reason}")
            }
            ClosedReason::Other { code, reason } if reason.is_empty() => {
                write!(f, "closed by the server ({code})")
            }
            ClosedReason::Other { code, reason } => write!(f, "{reason} ({code})"),
        }
    }
}

impl From<SocketState> for ConnectionState {
    fn from(state: SocketState) -> Self {
        match state {
            SocketState::Connecting => ConnectionState::Connecting,
            SocketState::Open => ConnectionState::Open,
            SocketState::Reconnecting {
                attempt,
                retry_in_secs,
            } => ConnectionState::Reconnecting {
                attempt,
                retry_in_secs,
            },
            SocketState::Offline => ConnectionState::Offline,
        }
    }
}

impl From<Stopped> for ClosedReason {
    fn from(stopped: Stopped) -> Self {
        match stopped {
            Stopped::NoUrl => ClosedReason::SignedOut,
            Stopped::RenewalRefused => ClosedReason::Unauthorized,
            Stopped::Closed { code, reason } => match CloseCode::from_code(code) {
                Some(CloseCode::Unauthorized) => ClosedReason::Unauthorized,
                Some(CloseCode::InvalidRoom) => ClosedReason::InvalidRoom,
                Some(CloseCode::Forbidden) => ClosedReason::Forbidden,
                Some(CloseCode::Removed) => ClosedReason::Removed { reason },
                _ => ClosedReason::Other { code, reason },
            },
        }
    }
}

/// Why [`ChatSocket::send`] did not send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Too many messages wait to be sent already; the text stays with the caller.
    OutboxFull,
    /// Blank or too long; the server would refuse it.
    Invalid(FrameError),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::OutboxFull => f.write_str(
                "Too many messages are waiting to be sent; wait for them or discard some.",
            ),
            SendError::Invalid(err) => f.write_str(&err.message),
        }
    }
}

impl std::error::Error for SendError {}

/// The chat protocol as the reconnecting socket sees it.
pub struct ChatCodec;

impl Codec for ChatCodec {
    type Incoming = ServerFrame;
    type Outgoing = ClientFrame;
    /// The last message id seen: the next connection asks for `since=<id>`.
    type Resume = u64;

    fn encode(frame: &ClientFrame) -> String {
        frame.to_json()
    }

    fn decode(text: &str) -> Result<ServerFrame, String> {
        ServerFrame::from_json(text).map_err(|err| err.to_string())
    }

    fn auto_reply(frame: &ServerFrame) -> Option<ClientFrame> {
        matches!(frame, ServerFrame::Ping).then_some(ClientFrame::Pong)
    }

    fn is_ready(frame: &ServerFrame) -> bool {
        matches!(frame, ServerFrame::Welcome { .. })
    }

    fn resume_point(frame: &ServerFrame, current: Option<&u64>) -> Option<u64> {
        match frame {
            ServerFrame::Message(message) => Some(message.id),
            // Seen nothing yet: resume after whatever the room had when we joined.
            // With a resume point already, the backlog that follows moves it.
            ServerFrame::Welcome { last_id, .. } if current.is_none() => Some(*last_id),
            _ => None,
        }
    }

    /// The server pings every interval and gives up after the timeout: hearing
    /// nothing for both together means the connection is gone.
    fn liveness_timeout(frame: &ServerFrame) -> Option<Duration> {
        match frame {
            ServerFrame::Welcome {
                heartbeat_interval_ms,
                heartbeat_timeout_ms,
                ..
            } => Some(Duration::from_millis(
                heartbeat_interval_ms.saturating_add(*heartbeat_timeout_ms),
            )),
            _ => None,
        }
    }

    fn after_close(code: u16) -> Next {
        match reconnect_for_code(code) {
            Reconnect::Never => Next::Stop,
            Reconnect::WithBackoff => Next::Retry,
            Reconnect::WithFreshToken => Next::Renew,
        }
    }
}

/// A room's connection: reactive reads and a `send` function. Cheap to copy.
#[derive(Clone, Copy)]
pub struct ChatSocket {
    signals: Signals,
}

/// What the page reads, written by [`Room`] as socket events arrive.
#[derive(Clone, Copy)]
struct Signals {
    state: RwSignal<ConnectionState>,
    /// Typed messages not yet acknowledged, for the current room.
    outbox: RwSignal<Outbox>,
    /// The socket, for sending what the outbox holds once the connection is ready.
    socket: StoredValue<Option<ReconnectingSocket<ChatCodec>>>,
    timeline: RwSignal<Timeline>,
    me: RwSignal<Option<Member>>,
    problem: RwSignal<Option<String>>,
    /// Others' messages that arrived live, newest last, as `(id, "author: text")`:
    /// at most [`NEWS_KEPT`].
    news: RwSignal<Vec<(u64, String)>>,
    /// Others' live messages while the page was hidden, counted here where each
    /// arrives (`news` keeps only the last few).
    unread: RwSignal<Unread>,
    /// The room being shown.
    room: StoredValue<Option<String>>,
    /// A page of older messages is being fetched.
    loading_older: RwSignal<bool>,
    /// The latest live message of someone else that mentions this member, as
    /// `author: text`.
    mentioned: RwSignal<Option<String>>,
    /// Others typing now.
    typists: RwSignal<Typists>,
    /// When this page last said its user is typing (ms since the epoch).
    typing_sent: StoredValue<u64>,
}

impl ChatSocket {
    /// Where the connection stands.
    pub fn state(&self) -> Signal<ConnectionState> {
        self.signals.state.into()
    }

    /// Messages, system events and gaps, in id order, each once.
    pub fn messages(&self) -> Signal<Vec<Arc<Entry>>> {
        let timeline = self.signals.timeline;
        Signal::derive(move || timeline.with(|timeline| timeline.entries().to_vec()))
    }

    /// The room's members, sorted by name.
    pub fn users(&self) -> Signal<Vec<Member>> {
        let timeline = self.signals.timeline;
        Signal::derive(move || timeline.with(|timeline| timeline.users().to_vec()))
    }

    /// This member (user id and display name), as the server's `welcome` gave it.
    pub fn me(&self) -> Signal<Option<Member>> {
        self.signals.me.into()
    }

    /// Whether the server said some messages could not be recovered.
    pub fn missed(&self) -> Signal<bool> {
        let timeline = self.signals.timeline;
        Signal::derive(move || timeline.with(Timeline::missed))
    }

    /// Whether the server may retain messages older than those shown.
    pub fn has_older(&self) -> Signal<bool> {
        let timeline = self.signals.timeline;
        Signal::derive(move || timeline.with(Timeline::may_have_older))
    }

    /// Whether older messages are being fetched.
    pub fn loading_older(&self) -> Signal<bool> {
        self.signals.loading_older.into()
    }

    /// Connects now instead of waiting out the backoff or for the network, and
    /// tries again after a close the protocol says not to retry (refused, removed).
    pub fn reconnect_now(&self) {
        if let Some(socket) = self.signals.socket.get_value() {
            socket.retry_now();
        }
    }

    /// "Alice is typing…" while others type; `None` when nobody does.
    pub fn typing(&self) -> Signal<Option<String>> {
        let typists = self.signals.typists;
        Signal::derive(move || typists.with(Typists::text))
    }

    /// The user is typing: tells the room, at most every [`TYPING_EVERY_MS`].
    pub fn user_typed(&self) {
        let signals = self.signals;
        let now = now_ms();
        if signals.state.get_untracked() != ConnectionState::Open
            || now.saturating_sub(signals.typing_sent.get_value()) < TYPING_EVERY_MS
        {
            return;
        }
        if let Some(socket) = signals.socket.get_value()
            && socket.send(&ClientFrame::Typing)
        {
            signals.typing_sent.set_value(now);
        }
    }

    /// Fetches the page of messages just older than those shown (the server API,
    /// with this member's token) and puts it before them. One fetch at a time; a
    /// room change meanwhile drops the answer.
    pub fn load_older(&self) {
        let signals = self.signals;
        if signals.loading_older.get_untracked() {
            return;
        }
        let before = signals.timeline.with_untracked(|timeline| {
            timeline
                .may_have_older()
                .then(|| timeline.oldest_id())
                .flatten()
        });
        let (Some(before), Some(room), Some(session)) =
            (before, signals.room.get_value(), session::load())
        else {
            return;
        };
        signals.loading_older.set(true);
        leptos::task::spawn_local(async move {
            let page = session::older_messages(&room, before, &session.token).await;
            signals.loading_older.try_set(false);
            if signals.room.try_get_value().flatten().as_deref() != Some(room.as_str()) {
                return;
            }
            match page {
                Ok(page) => {
                    signals
                        .timeline
                        .try_update(|timeline| timeline.older(page.messages, page.has_more));
                }
                Err(err) => {
                    signals
                        .problem
                        .try_set(Some(format!("Older messages could not be loaded: {err}")));
                }
            }
        });
    }

    /// Others' messages that arrived after this member joined, newest last, as
    /// `(id, "author: text")`, for a screen reader to read out: never the history
    /// or backlog a join brings, never the member's own. The last few only.
    pub fn news(&self) -> Signal<Vec<(u64, String)>> {
        self.signals.news.into()
    }

    /// The latest message of someone else that mentions this member by name (see
    /// [`crate::mentions::mentions`]), as `author: text`, set as each arrives live:
    /// never one from the history or backlog a join brings.
    pub fn mentioned(&self) -> Signal<Option<String>> {
        self.signals.mentioned.into()
    }

    /// What arrived while the page was hidden (see [`ChatSocket::page_hidden`]).
    pub fn unread(&self) -> Signal<Unread> {
        self.signals.unread.into()
    }

    /// The page was hidden (`true`) or shown again: while hidden, others' live
    /// messages count as unread.
    pub fn page_hidden(&self, hidden: bool) {
        self.signals
            .unread
            .try_update(|unread| unread.visibility(hidden));
    }

    /// The latest thing that went wrong with sending (an `error` frame, a lost send).
    pub fn problem(&self) -> Signal<Option<String>> {
        self.signals.problem.into()
    }

    /// Hides the problem shown (the reader closed it).
    pub fn dismiss_problem(&self) {
        self.signals.problem.set(None);
    }

    /// Messages typed but not yet delivered, in order: sending, waiting for a
    /// connection, or failed (with Retry and Discard).
    pub fn outbox(&self) -> Signal<Outbox> {
        self.signals.outbox.into()
    }

    /// Puts a chat message in the outbox, which sends it now if connected or as soon
    /// as the connection is back; refuses only what the server would never accept.
    pub fn send(&self, content: &str) -> Result<(), SendError> {
        validate_content(content).map_err(SendError::Invalid)?;
        if self.signals.outbox.with_untracked(Outbox::is_full) {
            return Err(SendError::OutboxFull);
        }
        self.signals
            .outbox
            .update(|outbox| outbox.push(fresh_ref(), content.to_owned()));
        self.signals.problem.set(None);
        self.signals.flush();
        Ok(())
    }

    /// Sends a failed message again, with its original `ref`.
    pub fn retry(&self, reference: &str) {
        self.signals.outbox.update(|outbox| {
            outbox.retry(reference);
        });
        self.signals.flush();
    }

    /// Gives up on a failed message.
    pub fn discard(&self, reference: &str) {
        self.signals
            .outbox
            .update(|outbox| outbox.discard(reference));
    }
}

impl Signals {
    /// Sends whatever the outbox has queued, if the connection is ready.
    fn flush(self) {
        if self.state.try_get_untracked() != Some(ConnectionState::Open) {
            return;
        }
        let Some(socket) = self.socket.try_get_value().flatten() else {
            return;
        };
        let now = now_ms();
        let unsent = self
            .outbox
            .try_update(|outbox| outbox.take_unsent(now))
            .unwrap_or_default();
        for (reference, content) in unsent {
            let frame = ClientFrame::Message {
                content,
                reference: Some(reference),
            };
            if !socket.send(&frame) {
                // No connection task: they go out on the next connection.
                self.outbox.try_update(Outbox::connection_lost);
                return;
            }
        }
    }
}

/// The chat's [`Handler`]: builds the room's URL, renews guest tokens, and turns
/// socket events into the page's signals.
struct Room {
    signals: Signals,
    /// The token the connection was opened with, or last handed over with `refresh`.
    token: StoredValue<Option<String>>,
    /// Unsent messages of the rooms this page left, kept until it comes back.
    other_outboxes: StoredValue<HashMap<String, Outbox>>,
    current: StoredValue<Option<String>>,
}

impl Handler<ChatCodec> for Room {
    type Key = String;

    /// Each room keeps its own outbox: what was typed for one room is never sent to
    /// another, and is still there (queued again) when the reader returns, in this
    /// page or after a reload of the tab.
    fn started(&self, room: &String) {
        let mut leaving = self.signals.outbox.try_get_untracked().unwrap_or_default();
        leaving.connection_lost();
        let previous = self.current.try_get_value().flatten();
        if let Some(previous) = &previous {
            outbox::saved::store(previous, &leaving);
        }
        let arriving = self
            .other_outboxes
            .try_update_value(|outboxes| {
                if let Some(previous) = previous
                    && !leaving.entries().is_empty()
                {
                    outboxes.insert(previous, leaving);
                }
                outboxes.remove(room)
            })
            .flatten()
            .or_else(|| outbox::saved::load(room))
            .unwrap_or_default();
        self.current.try_set_value(Some(room.clone()));
        self.signals.outbox.try_set(arriving);
    }

    /// The token travels as a subprotocol, not in the URL.
    fn endpoint(&self, room: &String, since: Option<&u64>) -> Option<Endpoint> {
        let session = session::load()?;
        let since = since.map(u64::to_string);
        let query: Vec<(&str, &str)> = since
            .iter()
            .map(|since| ("since", since.as_str()))
            .collect();
        let (secure, host) = page_origin();
        let endpoint = Endpoint {
            url: socket_url(secure, &host, &["ws", "chat", room], &query),
            protocols: token_subprotocols(&session.token).into(),
        };
        self.token.try_set_value(Some(session.token));
        Some(endpoint)
    }

    fn renew(&self) -> Pin<Box<dyn Future<Output = Renewal>>> {
        Box::pin(async {
            let Some(current) = session::load() else {
                return Renewal::Refused;
            };
            // The same identity if the server still honours the token; otherwise a
            // new guest with the same name, rather than signing the user out.
            let renewed = match session::refresh(&current).await {
                Err(ApiFailure::Rejected { .. }) => session::sign_in(&current.name).await,
                other => other,
            };
            match renewed {
                Ok(_) => Renewal::Renewed,
                Err(ApiFailure::Rejected { .. }) => {
                    session::clear();
                    Renewal::Refused
                }
                Err(ApiFailure::Unreachable(_)) => Renewal::Unreachable,
            }
        })
    }

    fn on_event(&self, event: SocketEvent<ChatCodec>) {
        let signals = self.signals;
        match event {
            SocketEvent::Started => {
                signals.timeline.try_set(Timeline::new());
                signals.news.try_set(Vec::new());
                signals.mentioned.try_set(None);
                signals.typists.try_set(Typists::default());
                signals.unread.try_update(Unread::new_room);
                signals.me.try_set(None);
                signals.problem.try_set(None);
            }
            SocketEvent::State(state) => {
                let open = state == SocketState::Open;
                signals.state.try_set(state.into());
                if open {
                    signals.flush();
                } else {
                    signals.outbox.try_update(Outbox::connection_lost);
                }
            }
            SocketEvent::Frame(frame) => self.apply(frame),
            // Whatever was being sent goes out again (same refs) on the next connection.
            SocketEvent::SendFailed(SendFailure::Dropped | SendFailure::NotConnected) => {
                signals.outbox.try_update(Outbox::connection_lost);
            }
            SocketEvent::Stopped(stopped) => {
                signals.outbox.try_update(Outbox::connection_lost);
                let reason = ClosedReason::from(stopped);
                if reason == ClosedReason::Unauthorized {
                    session::clear();
                }
                signals.state.try_set(ConnectionState::Closed(reason));
            }
        }
    }
}

impl Room {
    fn apply(&self, frame: ServerFrame) {
        let signals = self.signals;
        match frame {
            ServerFrame::Welcome {
                user_id,
                user,
                users,
                recovered,
                last_id,
                ..
            } => {
                signals.me.try_set(Some(Member {
                    user_id,
                    name: user,
                }));
                signals.timeline.try_update(|timeline| {
                    timeline.welcome(users, recovered);
                    timeline.joined_at(last_id);
                });
            }
            ServerFrame::Message(message) => {
                signals
                    .typists
                    .try_update(|typists| typists.sent(&message.user_id));
                // Someone else's message, arrived live: read out to screen readers.
                let (news, mention) = signals.me.with_untracked(|me| {
                    let others = me.as_ref().is_none_or(|me| me.user_id != message.user_id);
                    let news = others
                        .then(|| (message.id, format!("{}: {}", message.user, message.content)));
                    let mention = others
                        && me
                            .as_ref()
                            .is_some_and(|me| mentions(&message.content, &me.name, lowercase));
                    (news, mention)
                });
                let shown = signals.timeline.try_update(|timeline| {
                    let live = timeline.is_live(message.id);
                    timeline.message(message) && live
                });
                if let (Some(true), Some(news)) = (shown, news) {
                    if mention {
                        signals.mentioned.try_set(Some(news.1.clone()));
                    }
                    signals.unread.try_update(|unread| unread.arrived(news.0));
                    signals.news.try_update(|items| {
                        if items.len() == NEWS_KEPT {
                            items.remove(0);
                        }
                        items.push(news);
                    });
                }
            }
            ServerFrame::System {
                message,
                event,
                user_id,
                user,
            } => {
                signals
                    .timeline
                    .try_update(|timeline| timeline.system(event, user_id, user, message));
            }
            ServerFrame::Users { users } => {
                signals
                    .timeline
                    .try_update(|timeline| timeline.more_users(users));
            }
            ServerFrame::Presence { joins, leaves } => {
                signals
                    .timeline
                    .try_update(|timeline| timeline.presence(joins, leaves));
            }
            // Acknowledged: the message itself arrives as a broadcast.
            ServerFrame::Ack { reference, .. } => {
                signals.outbox.try_update(|outbox| outbox.acked(&reference));
            }
            // The connection keeps its old token: when that expires the server closes
            // with 4002, and the room renews before it reconnects. Nothing to show.
            ServerFrame::Error {
                code: ErrorCode::InvalidToken,
                message,
                ..
            } => {
                leptos::logging::log!("the server kept the old token: {message}");
            }
            ServerFrame::Error {
                code,
                message,
                reference: Some(reference),
            } if signals.outbox.with_untracked(|outbox| {
                outbox.entries().iter().any(|e| e.reference == reference)
            }) =>
            {
                let reason = describe_error(code, &message);
                signals
                    .outbox
                    .try_update(|outbox| outbox.failed(&reference, reason));
            }
            ServerFrame::Error { code, message, .. } => {
                signals
                    .problem
                    .try_set(Some(describe_error(code, &message)));
            }
            // The connection now lasts as long as the renewed token.
            ServerFrame::Refreshed => {}
            ServerFrame::Typing { user_id, user } => {
                let mine = signals
                    .me
                    .with_untracked(|me| me.as_ref().is_some_and(|me| me.user_id == user_id));
                if !mine {
                    let now = now_ms() as f64;
                    signals
                        .typists
                        .try_update(|typists| typists.saw(user_id, user, now));
                    forget_typists_later(signals.typists);
                }
            }
            // Answered by the socket itself.
            ServerFrame::Ping => {}
            ServerFrame::Unknown => {}
        }
    }
}

/// A `ref` for a message, unique within this page: a random prefix per page load and
/// a counter.
fn fresh_ref() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static SALT: OnceLock<u64> = OnceLock::new();
    let salt = SALT.get_or_init(|| {
        #[cfg(feature = "hydrate")]
        return (js_sys::Math::random() * 2f64.powi(48)) as u64;
        #[cfg(not(feature = "hydrate"))]
        0
    });
    format!("{salt:012x}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Looks again once a `typing` just seen has run out.
fn forget_typists_later(typists: RwSignal<Typists>) {
    #[cfg(feature = "hydrate")]
    gloo_timers::callback::Timeout::new(chorus_protocol::TYPING_SHOWN_MS as u32, move || {
        typists.try_update(|typists| typists.expire(now_ms() as f64));
    })
    .forget();
    #[cfg(not(feature = "hydrate"))]
    let _ = typists;
}

/// The browser's clock, in Unix milliseconds.
fn now_ms() -> u64 {
    #[cfg(feature = "hydrate")]
    return js_sys::Date::now() as u64;
    #[cfg(not(feature = "hydrate"))]
    0
}

/// Whether the page is `https:`, and its `host:port`.
fn page_origin() -> (bool, String) {
    #[cfg(feature = "hydrate")]
    {
        let location = window().location();
        let secure = location
            .protocol()
            .is_ok_and(|protocol| protocol == "https:");
        (secure, location.host().unwrap_or_default())
    }
    #[cfg(not(feature = "hydrate"))]
    (false, String::new())
}

fn describe_error(code: ErrorCode, message: &str) -> String {
    match code {
        ErrorCode::RateLimited => "You are sending too fast; that message was not sent.".into(),
        ErrorCode::Forbidden => "You may only read this room; that message was not sent.".into(),
        ErrorCode::Unavailable => {
            "The server cannot store messages right now; that message was not sent.".into()
        }
        _ => format!("The server refused a message: {message}"),
    }
}

/// Lower case as the browser folds it (see [`mentions`]).
fn lowercase(text: &str) -> String {
    #[cfg(feature = "hydrate")]
    return js_sys::JsString::from(text).to_lower_case().into();
    #[cfg(not(feature = "hydrate"))]
    text.to_lowercase()
}

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
                outbox::saved::store(&room, unsent);
            }
        });
    });
    let token = StoredValue::new(None::<String>);
    let handler = Room {
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

#[cfg(test)]
mod tests {
    use super::*;
    use chorus_protocol::ChatMessage;

    #[test]
    fn the_codec_answers_pings_and_is_ready_on_welcome() {
        let ping = ChatCodec::decode(r#"{"type":"ping"}"#).unwrap();
        assert_eq!(ChatCodec::auto_reply(&ping), Some(ClientFrame::Pong));
        assert_eq!(ChatCodec::encode(&ClientFrame::Pong), r#"{"type":"pong"}"#);
        let welcome = ChatCodec::decode(WELCOME).unwrap();
        assert!(ChatCodec::is_ready(&welcome));
        assert_eq!(ChatCodec::auto_reply(&welcome), None);
        assert!(!ChatCodec::is_ready(&ping));
        assert!(ChatCodec::decode("not json").is_err());
    }

    const WELCOME: &str = r#"{"type":"welcome","room":"r","user_id":"u1","user":"u","users":[],"recovered":true,
        "last_id":41,"heartbeat_interval_ms":30000,"heartbeat_timeout_ms":10000}"#;

    #[test]
    fn messages_and_a_first_welcome_are_the_resume_points() {
        let message = ServerFrame::Message(ChatMessage {
            id: 42,
            user_id: "u-a".into(),
            user: "a".into(),
            content: "hi".into(),
            timestamp: "2026-11-28T00:00:00.000Z".into(),
        });
        assert_eq!(ChatCodec::resume_point(&message, None), Some(42));
        assert_eq!(ChatCodec::resume_point(&message, Some(&7)), Some(42));
        assert_eq!(
            ChatCodec::resume_point(&ServerFrame::joined("u-a", "a"), None),
            None
        );
        let welcome = ChatCodec::decode(WELCOME).unwrap();
        assert_eq!(
            ChatCodec::resume_point(&welcome, None),
            Some(41),
            "seen nothing yet"
        );
        assert_eq!(
            ChatCodec::resume_point(&welcome, Some(&7)),
            None,
            "keeps since=7"
        );
    }

    #[test]
    fn the_welcome_sets_the_liveness_timeout() {
        let welcome = ChatCodec::decode(WELCOME).unwrap();
        assert_eq!(
            ChatCodec::liveness_timeout(&welcome),
            Some(Duration::from_secs(40))
        );
        assert_eq!(ChatCodec::liveness_timeout(&ServerFrame::Ping), None);
    }

    #[test]
    fn close_codes_decide_what_follows() {
        let expected = [
            (1000, Next::Stop),
            (1001, Next::Retry),
            (1006, Next::Retry),
            (1009, Next::Retry),
            (1011, Next::Retry),
            (1013, Next::Retry),
            (4001, Next::Stop),
            (4002, Next::Renew),
            (4003, Next::Stop),
            (4004, Next::Stop),
            (4008, Next::Retry),
            (4010, Next::Stop),
            (4009, Next::Retry),
            (1008, Next::Stop),
            (4029, Next::Retry),
        ];
        for (code, next) in expected {
            assert_eq!(ChatCodec::after_close(code), next, "close code {code}");
        }
    }

    #[test]
    fn a_stop_becomes_the_reason_the_page_shows() {
        let closed = |code: u16, reason: &str| {
            ClosedReason::from(Stopped::Closed {
                code,
                reason: reason.into(),
            })
        };
        assert_eq!(closed(4001, "Unauthorized"), ClosedReason::Unauthorized);
        assert_eq!(closed(4004, "Invalid room name"), ClosedReason::InvalidRoom);
        assert_eq!(closed(4003, "Not allowed"), ClosedReason::Forbidden);
        assert_eq!(
            closed(4010, "spamming").to_string(),
            "you were removed from the chat: spamming"
        );
        assert_eq!(
            closed(4010, CloseCode::Removed.reason()).to_string(),
            "you were removed from the chat"
        );
        assert_eq!(
            closed(1000, "bye"),
            ClosedReason::Other {
                code: 1000,
                reason: "bye".into()
            }
        );
        assert_eq!(ClosedReason::from(Stopped::NoUrl), ClosedReason::SignedOut);
        assert_eq!(
            ClosedReason::from(Stopped::RenewalRefused),
            ClosedReason::Unauthorized
        );
    }
}
