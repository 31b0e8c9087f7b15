//! A reconnecting WebSocket for any Leptos app: [`use_reconnecting_socket`].
//!
//! The socket knows nothing of chat. A [`Codec`] says how frames look on the wire,
//! which frames it answers by itself (a ping's pong), which frame means the server
//! is ready, what point to resume from, and what a close code means for the next
//! attempt ([`Codec::after_close`] → [`Next`]). A [`Handler`] supplies the URL for
//! each attempt, renews credentials when the codec asks, and receives every
//! [`SocketEvent`] (state changes, frames, failed sends, the final stop).
//!
//! Behaviour, per [`SocketOptions`]: exponential backoff with jitter between
//! attempts ([`crate::model::backoff`]), a countdown while waiting, an immediate attempt
//! when the browser comes back `online` or the tab becomes visible, and an optional
//! liveness timeout that drops a connection the server has gone silent on. The
//! socket follows a reactive key (a room name, say): a new key closes the old
//! connection with 1000 and starts over; unmounting does the same and ends every
//! timer and listener.
//!
//! Everything here but the connection task (`browser`, built with `hydrate` only)
//! is plain logic, unit-tested natively. On the server the hook only creates its
//! handle: nothing connects during server rendering.
//!
//! # Example
//!
//! ```
//! use std::future::Future;
//! use std::pin::Pin;
//! use app::socket::{Codec, Endpoint, Handler, Next, Renewal, SocketEvent, socket_url};
//!
//! /// Text frames in, text frames out; the server's "ready" starts the session.
//! struct Lines;
//!
//! impl Codec for Lines {
//!     type Incoming = String;
//!     type Outgoing = String;
//!     type Resume = ();
//!     fn encode(frame: &String) -> String { frame.clone() }
//!     fn decode(text: &str) -> Result<String, String> { Ok(text.to_owned()) }
//!     fn auto_reply(frame: &String) -> Option<String> { (frame == "ping").then(|| "pong".into()) }
//!     fn is_ready(frame: &String) -> bool { frame == "ready" }
//!     fn after_close(code: u16) -> Next { if code == 1000 { Next::Stop } else { Next::Retry } }
//! }
//!
//! struct Feed;
//!
//! impl Handler<Lines> for Feed {
//!     type Key = String;
//!     fn endpoint(&self, topic: &String, _resume: Option<&()>) -> Option<Endpoint> {
//!         Some(socket_url(false, "example.com", &["feed", topic], &[]).into())
//!     }
//!     fn renew(&self) -> Pin<Box<dyn Future<Output = Renewal>>> {
//!         Box::pin(async { Renewal::Refused })
//!     }
//!     fn on_event(&self, event: SocketEvent<Lines>) {
//!         if let SocketEvent::Frame(line) = event { println!("{line}") }
//!     }
//! }
//!
//! // In a component:
//! // let socket = use_reconnecting_socket(topic_signal, SocketOptions::default(), Feed);
//! // socket.send(&"hello".to_owned());
//! assert_eq!(Lines::auto_reply(&"ping".into()), Some("pong".into()));
//! ```

#[cfg(feature = "hydrate")]
mod browser;
#[cfg(feature = "hydrate")]
mod wire;

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_channel::mpsc::UnboundedSender;
use leptos::prelude::*;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::model::backoff::BackoffPolicy;

/// The close code a browser reports when the connection dropped without a close
/// frame (network lost, server killed); never sent on the wire.
pub const ABNORMAL_CLOSURE: u16 = 1006;
/// The close code for a deliberate, normal close.
pub const NORMAL_CLOSURE: u16 = 1000;

/// How a protocol's frames map onto WebSocket text messages, and what its close
/// codes mean.
pub trait Codec: 'static {
    /// A frame from the server.
    type Incoming: 'static;
    /// A frame to the server.
    type Outgoing: 'static;
    /// Where to resume after a reconnect (a message id, say).
    type Resume: Clone + 'static;

    /// Writes a frame as a text message.
    fn encode(frame: &Self::Outgoing) -> String;
    /// Parses a text message; `Err` describes why it was unreadable (it is skipped).
    fn decode(text: &str) -> Result<Self::Incoming, String>;
    /// A frame the socket answers by itself, such as a ping's pong. Such frames are
    /// not passed on.
    fn auto_reply(_frame: &Self::Incoming) -> Option<Self::Outgoing> {
        None
    }
    /// Whether this frame means the server accepted the connection: the socket is
    /// then [`SocketState::Open`].
    fn is_ready(frame: &Self::Incoming) -> bool;
    /// The resume point this frame moves to, given the `current` one (`None`: none
    /// yet); `None` leaves it as it is.
    fn resume_point(
        _frame: &Self::Incoming,
        _current: Option<&Self::Resume>,
    ) -> Option<Self::Resume> {
        None
    }
    /// How long the connection may stay silent, as this frame announces (the ready
    /// frame, typically, carrying the server's heartbeat); `None`: no change.
    fn liveness_timeout(_frame: &Self::Incoming) -> Option<Duration> {
        None
    }
    /// What to do after the connection closed with `code` (1006 for a dropped one).
    fn after_close(code: u16) -> Next;
}

/// What follows a close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Reconnect after the backoff delay.
    Retry,
    /// Renew credentials ([`Handler::renew`]) and reconnect at once.
    Renew,
    /// Do not reconnect: the same request would fail again.
    Stop,
}

/// The outcome of [`Handler::renew`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// Fresh credentials are in place: reconnect now.
    Renewed,
    /// Could not renew right now (no network): retry after the backoff delay.
    Unreachable,
    /// Renewal was refused: stop.
    Refused,
}

/// Where the connection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketState {
    /// Opening the socket and waiting for the server's ready frame.
    Connecting,
    /// Ready: frames flow both ways.
    Open,
    /// Lost; the next attempt is on its way.
    Reconnecting(Retry),
    /// The browser reports no network; the next attempt waits for it.
    Offline,
}

/// The next attempt of a lost connection: attempt number `attempt` starts in
/// `retry_in_secs` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// The attempt's number, from 1.
    pub attempt: u32,
    /// Seconds until it starts.
    pub retry_in_secs: u32,
}

/// Why the socket stopped for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// Closed with a code the codec says not to retry.
    Closed {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// [`Handler::endpoint`] had no URL to connect to (no credentials, say).
    NoUrl,
    /// [`Handler::renew`] was refused.
    RenewalRefused,
}

/// Why a frame the app sent did not reach the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendFailure {
    /// The socket was not connected (waiting to reconnect, renewing).
    NotConnected,
    /// The socket failed while writing it.
    Dropped,
}

/// What the socket tells its [`Handler`].
pub enum SocketEvent<C: Codec> {
    /// A new key: a fresh session starts (clear what the previous key showed).
    Started,
    /// Where the connection stands now.
    State(SocketState),
    /// A frame from the server (those the codec answers itself included).
    Frame(C::Incoming),
    /// A frame the app sent did not reach the socket.
    SendFailed(SendFailure),
    /// The socket will not reconnect by itself.
    Stopped(Stopped),
}

/// Where to open a connection, and the subprotocols to offer (credentials among
/// them stay out of the URL, and so out of proxies' access logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The `ws://` or `wss://` URL.
    pub url: String,
    /// The subprotocols to offer, in order.
    pub protocols: Vec<String>,
}

impl From<String> for Endpoint {
    fn from(url: String) -> Self {
        Endpoint {
            url,
            protocols: Vec::new(),
        }
    }
}

/// The app's side of a socket.
pub trait Handler<C: Codec>: 'static {
    /// What the socket follows: a new value reconnects.
    type Key: Clone + PartialEq + Send + Sync + 'static;

    /// Where to connect for `key`, resuming from `resume`; `None` stops the socket
    /// ([`Stopped::NoUrl`]).
    fn endpoint(&self, key: &Self::Key, resume: Option<&C::Resume>) -> Option<Endpoint>;
    /// Gets fresh credentials, when [`Codec::after_close`] said [`Next::Renew`].
    fn renew(&self) -> Pin<Box<dyn Future<Output = Renewal>>>;
    /// The socket now follows `key` (first, or after a change); called before its
    /// [`SocketEvent::Started`].
    fn started(&self, _key: &Self::Key) {}
    /// Called with everything the socket reports.
    fn on_event(&self, event: SocketEvent<C>);
}

/// How the socket behaves between connections.
#[derive(Debug, Clone, PartialEq)]
pub struct SocketOptions {
    /// How long to wait between attempts.
    pub backoff: BackoffPolicy,
    /// A connection on which nothing arrives for this long is closed and retried
    /// (as 1006). `None`: rely on the browser noticing, unless the server announces
    /// one ([`Codec::liveness_timeout`]).
    pub liveness_timeout: Option<Duration>,
    /// A connection that has not become ready this long after opening is closed and
    /// retried. `None`: wait as long as the browser does.
    pub ready_timeout: Option<Duration>,
    /// Skip the backoff wait when the browser comes back `online`.
    pub wake_on_online: bool,
    /// Skip the backoff wait when the tab becomes visible.
    pub wake_on_visible: bool,
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            backoff: BackoffPolicy::default(),
            liveness_timeout: None,
            ready_timeout: Some(Duration::from_secs(10)),
            wake_on_online: true,
            wake_on_visible: true,
        }
    }
}

/// `ws[s]://host/seg/ments?name=value`, every segment and value percent-encoded as
/// `encodeURIComponent` does. `secure` is whether the page itself is `https:`.
pub fn socket_url(secure: bool, host: &str, segments: &[&str], query: &[(&str, &str)]) -> String {
    /// What `encodeURIComponent` escapes: all but `A-Z a-z 0-9 - _ . ! ~ * ' ( )`.
    const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'!')
        .remove(b'~')
        .remove(b'*')
        .remove(b'\'')
        .remove(b'(')
        .remove(b')');
    let scheme = if secure { "wss" } else { "ws" };
    let mut url = format!("{scheme}://{host}");
    for segment in segments {
        url.push('/');
        url.extend(utf8_percent_encode(segment, COMPONENT));
    }
    for (n, (name, value)) in query.iter().enumerate() {
        url.push(if n == 0 { '?' } else { '&' });
        url.extend(utf8_percent_encode(name, COMPONENT));
        url.push('=');
        url.extend(utf8_percent_encode(value, COMPONENT));
    }
    url
}

/// One step of the countdown shown while waiting to reconnect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Countdown {
    /// Whole seconds left, rounded up: what the user sees.
    pub retry_in_secs: u32,
    /// When to look again: when the shown number next changes (or the wait ends).
    pub next_tick_ms: u32,
}

impl Countdown {
    /// The countdown with `remaining_ms` left; `None` once it is over.
    pub fn at(remaining_ms: f64) -> Option<Countdown> {
        if remaining_ms <= 0.0 || remaining_ms.is_nan() {
            return None;
        }
        let seconds = (remaining_ms / 1000.0).ceil();
        let next_tick = remaining_ms - (seconds - 1.0) * 1000.0;
        Some(Countdown {
            retry_in_secs: seconds as u32,
            next_tick_ms: next_tick.ceil().max(1.0) as u32,
        })
    }
}

/// How long a connection last heard from at `last_heard_ms` may stay silent, from
/// `now_ms`, before the liveness timeout `limit` drops it; `None` without a limit.
pub fn silence_left_ms(limit: Option<Duration>, last_heard_ms: f64, now_ms: f64) -> Option<u32> {
    let limit = limit?;
    let left = last_heard_ms + limit.as_secs_f64() * 1000.0 - now_ms;
    Some(left.max(0.0).ceil() as u32)
}

/// What the page tells the connection task.
// Only the browser runs a connection task; the server build merely renders.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
#[derive(Debug)]
enum Command {
    /// An encoded frame.
    Send(String),
    /// The network is back or the tab is visible again: skip the backoff wait.
    Wake,
    /// The reader asked to try again now: a wake that also reconnects after a close
    /// the codec said not to retry (a ban may have ended).
    Retry,
    /// Close with 1000 and end the task.
    Stop,
}

/// The sender of the current key's task, shared with cleanup (which must be `Send`).
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
#[derive(Clone, Default)]
struct Control {
    commands: Arc<Mutex<Option<UnboundedSender<Command>>>>,
    /// Bumped on every key change so a stopping task cannot report into the new one.
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

/// The handle on a reconnecting socket. Cheap to copy.
pub struct ReconnectingSocket<C: Codec> {
    control: StoredValue<Control>,
    codec: PhantomData<fn() -> C>,
}

impl<C: Codec> Clone for ReconnectingSocket<C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C: Codec> Copy for ReconnectingSocket<C> {}

impl<C: Codec> ReconnectingSocket<C> {
    /// Queues `frame` for the connection task. `false` if there is no task (server
    /// rendering, or after unmount); the task reports a frame it cannot write as
    /// [`SocketEvent::SendFailed`].
    pub fn send(&self, frame: &C::Outgoing) -> bool {
        let text = C::encode(frame);
        self.control
            .try_with_value(|control| control.send(Command::Send(text)))
            .unwrap_or(false)
    }

    /// Connects now, as the reader asked: ends a wait before the next attempt (the
    /// backoff's, or for the network to come back), and tries again after a close
    /// that [`Codec::after_close`] said not to retry. Nothing happens while
    /// connected.
    pub fn retry_now(&self) {
        self.control
            .try_with_value(|control| control.send(Command::Retry));
    }
}

/// Connects for the current value of `key`, reconnects per `C`'s close policy, and
/// follows `key` as it changes; see the module docs.
pub fn use_reconnecting_socket<C: Codec, H: Handler<C>>(
    key: Signal<H::Key>,
    options: SocketOptions,
    handler: H,
) -> ReconnectingSocket<C> {
    let socket = ReconnectingSocket {
        control: StoredValue::new(Control::default()),
        codec: PhantomData,
    };
    #[cfg(feature = "hydrate")]
    browser::drive(key, options, handler, socket.control.get_value());
    #[cfg(not(feature = "hydrate"))]
    let _ = (key, options, handler);
    socket
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_encoded_like_encode_uri_component() {
        assert_eq!(
            socket_url(
                false,
                "localhost:3000",
                &["ws", "chat", "lobby"],
                &[("token", "a.b-c_d")]
            ),
            "ws://localhost:3000/ws/chat/lobby?token=a.b-c_d"
        );
        assert_eq!(
            socket_url(
                true,
                "example.com",
                &["ws", "a b/c"],
                &[("t", "x+y=z&"), ("since", "7")]
            ),
            "wss://example.com/ws/a%20b%2Fc?t=x%2By%3Dz%26&since=7"
        );
        assert_eq!(socket_url(false, "h", &["é"], &[]), "ws://h/%C3%A9");
        assert_eq!(socket_url(false, "h", &["!~*'()"], &[]), "ws://h/!~*'()");
    }

    #[test]
    fn the_countdown_shows_whole_seconds_and_ticks_when_they_change() {
        assert_eq!(
            Countdown::at(2500.0),
            Some(Countdown {
                retry_in_secs: 3,
                next_tick_ms: 500
            })
        );
        assert_eq!(
            Countdown::at(2000.0),
            Some(Countdown {
                retry_in_secs: 2,
                next_tick_ms: 1000
            })
        );
        assert_eq!(
            Countdown::at(0.4),
            Some(Countdown {
                retry_in_secs: 1,
                next_tick_ms: 1
            })
        );
        assert_eq!(Countdown::at(0.0), None);
        assert_eq!(Countdown::at(-5.0), None);
        assert_eq!(Countdown::at(f64::NAN), None);
    }

    #[test]
    fn silence_is_measured_from_the_last_frame_heard() {
        let limit = Some(Duration::from_secs(45));
        assert_eq!(silence_left_ms(None, 0.0, 1e9), None);
        assert_eq!(silence_left_ms(limit, 1000.0, 1000.0), Some(45_000));
        assert_eq!(silence_left_ms(limit, 1000.0, 31_000.5), Some(15_000));
        assert_eq!(silence_left_ms(limit, 1000.0, 46_000.0), Some(0));
        assert_eq!(
            silence_left_ms(limit, 1000.0, 99_000.0),
            Some(0),
            "overdue: at once"
        );
    }

    #[test]
    fn options_default_to_waking_on_return_and_a_ready_timeout() {
        let options = SocketOptions::default();
        assert!(options.wake_on_online && options.wake_on_visible);
        assert_eq!(options.liveness_timeout, None);
        assert_eq!(options.ready_timeout, Some(Duration::from_secs(10)));
        assert_eq!(options.backoff, BackoffPolicy::default());
    }
}
