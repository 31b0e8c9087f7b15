//! The connection task behind [`super::use_websocket`], in the browser only.
//!
//! One task per room: connect, read frames until the socket closes, decide from
//! the close code whether and when to try again. Commands from the page (send,
//! wake, stop) arrive on one channel, which the task always reads first, so a
//! stop is never overtaken by a frame from the old room.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use futures_util::{FutureExt, SinkExt, StreamExt, pin_mut, select_biased};
use gloo_events::EventListener;
use gloo_net::websocket::{Message, WebSocketError, futures::WebSocket};
use gloo_timers::future::TimeoutFuture;
use leptos::prelude::*;
use web_sys::VisibilityState;

use super::{ChatSocket, ClosedReason, Command, ConnectionState, Control};
use crate::backoff::Backoff;
use crate::protocol::{
    ClientFrame, CloseCode, ErrorCode, Reconnect, ServerFrame, reconnect_for_code,
};
use crate::session::{self, ApiFailure};
use crate::timeline::Timeline;

/// Starts a task for the current room, replaces it whenever the room changes,
/// and stops it when the owning component goes away.
pub(super) fn drive(room: Signal<String>, socket: ChatSocket) {
    let control = socket.control.get_value();
    let cleanup = control.clone();
    // Only a different room name reconnects, not every change upstream of it.
    let room = Memo::new(move |_| room.get());
    Effect::new(move |_| {
        let room = room.get();
        let generation = control.generation.fetch_add(1, Ordering::SeqCst) + 1;
        socket.state.set(ConnectionState::Connecting);
        socket.timeline.set(Timeline::new());
        socket.me.set(None);
        socket.problem.set(None);
        let (commands, inbox) = unbounded();
        control.replace(Some(commands.clone()));
        let link = Link {
            socket,
            control: control.clone(),
            generation,
        };
        leptos::task::spawn_local(run(room, link, commands, inbox));
    });
    on_cleanup(move || cleanup.replace(None));
}

/// The task's handle on the page's signals; writes stop once a newer task exists.
struct Link {
    socket: ChatSocket,
    control: Control,
    generation: u64,
}

impl Link {
    fn current(&self) -> bool {
        self.control.generation.load(Ordering::SeqCst) == self.generation
    }

    fn set_state(&self, state: ConnectionState) {
        if self.current() {
            self.socket.state.try_set(state);
        }
    }

    fn update_timeline(&self, change: impl FnOnce(&mut Timeline)) {
        if self.current() {
            self.socket.timeline.try_update(change);
        }
    }

    fn report(&self, problem: String) {
        if self.current() {
            self.socket.problem.try_set(Some(problem));
        }
    }

    fn last_id(&self) -> Option<u64> {
        self.socket
            .timeline
            .try_with_untracked(Timeline::last_id)
            .flatten()
    }

    fn apply(&self, frame: ServerFrame) {
        match frame {
            ServerFrame::Welcome {
                user,
                users,
                recovered,
                ..
            } => {
                if self.current() {
                    self.socket.me.try_set(Some(user));
                }
                self.update_timeline(|timeline| timeline.welcome(users, recovered));
                self.set_state(ConnectionState::Open);
            }
            ServerFrame::Message(message) => self.update_timeline(|timeline| {
                timeline.message(message);
            }),
            ServerFrame::System {
                message,
                event,
                user,
            } => self.update_timeline(|timeline| timeline.system(event, user, message)),
            ServerFrame::Error { code, message } => self.report(describe_error(code, &message)),
            // Answered by the caller, which owns the socket.
            ServerFrame::Ping => {}
            ServerFrame::Unknown => {}
        }
    }
}

fn describe_error(code: ErrorCode, message: &str) -> String {
    match code {
        ErrorCode::RateLimited => "You are sending too fast; that message was not sent.".into(),
        ErrorCode::Unavailable => {
            "The server cannot store messages right now; that message was not sent.".into()
        }
        _ => format!("The server refused a message: {message}"),
    }
}

/// How one connection ended.
enum Ended {
    /// The page asked to stop; the socket is closed with 1000.
    Stopped,
    Closed {
        code: u16,
        reason: String,
        /// How long the connection stayed welcomed.
        open_for: Duration,
    },
}

async fn run(
    room: String,
    link: Link,
    wake: UnboundedSender<Command>,
    mut inbox: UnboundedReceiver<Command>,
) {
    let _wake_listeners = wake_on_return(wake);
    let mut backoff = Backoff::new();
    loop {
        let Some(current) = session::load() else {
            link.set_state(ConnectionState::Closed(ClosedReason::SignedOut));
            return;
        };
        link.set_state(ConnectionState::Connecting);
        let url = chat_url(&room, &current.token, link.last_id());
        let (code, reason) = match connect(&url, &link, &mut inbox).await {
            Ended::Stopped => return,
            Ended::Closed {
                code,
                reason,
                open_for,
            } => {
                backoff.connected_for(open_for);
                (code, reason)
            }
        };
        match reconnect_for_code(code) {
            Reconnect::Never => {
                let reason = match CloseCode::from_code(code) {
                    Some(CloseCode::Unauthorized) => {
                        session::clear();
                        ClosedReason::Unauthorized
                    }
                    Some(CloseCode::InvalidRoom) => ClosedReason::InvalidRoom,
                    _ => ClosedReason::Other { code, reason },
                };
                link.set_state(ConnectionState::Closed(reason));
                return;
            }
            Reconnect::WithFreshToken => {
                match until_stopped(&mut inbox, &link, session::sign_in(&current.name)).await {
                    None => return,
                    Some(Ok(_fresh)) => continue,
                    Some(Err(ApiFailure::Rejected { .. })) => {
                        session::clear();
                        link.set_state(ConnectionState::Closed(ClosedReason::Unauthorized));
                        return;
                    }
                    // The server is unreachable: retry later like any lost connection.
                    Some(Err(ApiFailure::Unreachable(_))) => {}
                }
            }
            Reconnect::WithBackoff => {}
        }
        let delay = backoff.next_delay(js_sys::Math::random());
        if !wait_to_retry(delay, backoff.attempt(), &link, &mut inbox).await {
            return;
        }
    }
}

/// `ws://host/ws/chat/{room}?token=..[&since=..]` on the page's own origin.
fn chat_url(room: &str, token: &str, since: Option<u64>) -> String {
    let location = window().location();
    let secure = location
        .protocol()
        .is_ok_and(|protocol| protocol == "https:");
    let host = location.host().unwrap_or_default();
    let scheme = if secure { "wss" } else { "ws" };
    let room = String::from(js_sys::encode_uri_component(room));
    let token = String::from(js_sys::encode_uri_component(token));
    let mut url = format!("{scheme}://{host}/ws/chat/{room}?token={token}");
    if let Some(since) = since {
        url.push_str(&format!("&since={since}"));
    }
    url
}

/// One connection, from open to close.
async fn connect(url: &str, link: &Link, inbox: &mut UnboundedReceiver<Command>) -> Ended {
    let mut socket = match WebSocket::open(url) {
        Ok(socket) => socket,
        Err(err) => {
            return Ended::Closed {
                code: 1006,
                reason: err.to_string(),
                open_for: Duration::ZERO,
            };
        }
    };
    let mut welcomed_at = None;
    loop {
        let event = select_biased! {
            command = inbox.next() => Err(command),
            frame = socket.next().fuse() => Ok(frame),
        };
        match event {
            Err(None | Some(Command::Stop)) => {
                let _ = socket.close(Some(CloseCode::Normal.code()), Some("left the room"));
                return Ended::Stopped;
            }
            Err(Some(Command::Wake)) => {}
            Err(Some(Command::Send(text))) => {
                if socket.send(Message::Text(text)).await.is_err() {
                    link.report("The connection dropped; that message was not sent.".into());
                }
            }
            Ok(Some(Ok(Message::Text(text)))) => match serde_json::from_str::<ServerFrame>(&text) {
                Ok(ServerFrame::Ping) => {
                    let pong = serde_json::to_string(&ClientFrame::Pong)
                        .expect("client frames always serialize");
                    let _ = socket.send(Message::Text(pong)).await;
                }
                Ok(frame) => {
                    if matches!(frame, ServerFrame::Welcome { .. }) {
                        welcomed_at = Some(now_ms());
                    }
                    link.apply(frame);
                }
                Err(err) => leptos::logging::warn!("ignoring an unreadable frame: {err}"),
            },
            // Binary frames are not part of the protocol.
            Ok(Some(Ok(Message::Bytes(_)))) => {}
            Ok(Some(Err(WebSocketError::ConnectionClose(close)))) => {
                return Ended::Closed {
                    code: close.code,
                    reason: close.reason,
                    open_for: since_ms(welcomed_at),
                };
            }
            // An error event; the close event follows.
            Ok(Some(Err(_))) => {}
            Ok(None) => {
                return Ended::Closed {
                    code: 1006,
                    reason: String::new(),
                    open_for: since_ms(welcomed_at),
                };
            }
        }
    }
}

/// Waits out a backoff delay, showing the countdown; `false` if told to stop.
async fn wait_to_retry(
    delay: Duration,
    attempt: u32,
    link: &Link,
    inbox: &mut UnboundedReceiver<Command>,
) -> bool {
    let deadline = now_ms() + delay.as_secs_f64() * 1000.0;
    loop {
        let offline = !window().navigator().on_line();
        let remaining = deadline - now_ms();
        if !offline && remaining <= 0.0 {
            return true;
        }
        let tick = if offline {
            link.set_state(ConnectionState::Offline);
            None
        } else {
            let seconds = (remaining / 1000.0).ceil();
            link.set_state(ConnectionState::Reconnecting {
                attempt,
                retry_in_secs: seconds as u32,
            });
            // Wake at the next whole second of the countdown.
            Some(remaining - (seconds - 1.0) * 1000.0)
        };
        let sleep = match tick {
            Some(millis) => TimeoutFuture::new(millis.ceil() as u32).left_future(),
            // Offline: only the `online` event (a wake) ends the wait.
            None => futures_util::future::pending().right_future(),
        };
        select_biased! {
            command = inbox.next() => match command {
                None | Some(Command::Stop) => return false,
                Some(Command::Wake) => return true,
                Some(Command::Send(_)) => not_connected(link),
            },
            () = sleep.fuse() => {}
        }
    }
}

/// Runs `work` unless the page says stop first (`None`).
async fn until_stopped<T>(
    inbox: &mut UnboundedReceiver<Command>,
    link: &Link,
    work: impl Future<Output = T>,
) -> Option<T> {
    let work = work.fuse();
    pin_mut!(work);
    loop {
        select_biased! {
            command = inbox.next() => match command {
                None | Some(Command::Stop) => return None,
                Some(Command::Wake) => {}
                Some(Command::Send(_)) => not_connected(link),
            },
            done = work => return Some(done),
        }
    }
}

fn not_connected(link: &Link) {
    link.report(super::SendError::NotConnected.to_string());
}

/// Wakes the task when the network comes back or the tab becomes visible.
fn wake_on_return(wake: UnboundedSender<Command>) -> [EventListener; 2] {
    let online = {
        let wake = wake.clone();
        EventListener::new(&window(), "online", move |_| {
            let _ = wake.unbounded_send(Command::Wake);
        })
    };
    let visible = EventListener::new(&document(), "visibilitychange", move |_| {
        if document().visibility_state() == VisibilityState::Visible {
            let _ = wake.unbounded_send(Command::Wake);
        }
    });
    [online, visible]
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

fn since_ms(start: Option<f64>) -> Duration {
    start.map_or(Duration::ZERO, |start| {
        Duration::from_secs_f64(((now_ms() - start) / 1000.0).max(0.0))
    })
}
