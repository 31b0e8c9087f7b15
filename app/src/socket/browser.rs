//! The connection task behind [`super::use_reconnecting_socket`], in the browser only.
//!
//! One task per key: connect, read frames until the socket closes, decide from the
//! close code whether and when to try again. Commands from the page (send, wake,
//! stop) arrive on one channel, which the task always reads first, so a stop is
//! never overtaken by a frame for the old key.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use futures_util::{FutureExt, StreamExt, pin_mut, select_biased};
use gloo_events::EventListener;
use gloo_timers::future::TimeoutFuture;
use leptos::prelude::*;
use web_sys::VisibilityState;

use super::wire::{Wire, WireEvent};
use super::{
    ABNORMAL_CLOSURE, Codec, Command, Control, Countdown, Endpoint, Handler, NORMAL_CLOSURE, Next,
    Renewal, Retry, SendFailure, SocketEvent, SocketOptions, SocketState, Stopped, silence_left_ms,
};
use crate::model::backoff::Backoff;

/// Starts a task for the current key, replaces it whenever the key changes, and
/// stops it when the owning component goes away.
pub(super) fn drive<C: Codec, H: Handler<C>>(
    key: Signal<H::Key>,
    options: SocketOptions,
    handler: H,
    control: Control,
) {
    let handler = Rc::new(handler);
    let cleanup = control.clone();
    // Only a different key reconnects, not every change upstream of it.
    let key = Memo::new(move |_| key.get());
    Effect::new(move |_| {
        let key = key.get();
        let generation = control.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let (commands, inbox) = unbounded();
        control.replace(Some(commands.clone()));
        let link = Link {
            handler: handler.clone(),
            control: control.clone(),
            generation,
            codec: std::marker::PhantomData,
        };
        link.handler.started(&key);
        link.emit(SocketEvent::Started);
        link.emit(SocketEvent::State(SocketState::Connecting));
        leptos::task::spawn_local(run(key, options.clone(), link, commands, inbox));
    });
    on_cleanup(move || cleanup.replace(None));
}

/// The task's handle on the app; events stop once a newer task exists.
struct Link<C: Codec, H: Handler<C>> {
    handler: Rc<H>,
    control: Control,
    generation: u64,
    // `C` only appears in `H`'s bounds.
    #[allow(dead_code)]
    codec: std::marker::PhantomData<fn() -> C>,
}

impl<C: Codec, H: Handler<C>> Link<C, H> {
    /// Whether this task still belongs to the current key.
    fn current(&self) -> bool {
        self.control.generation.load(Ordering::SeqCst) == self.generation
    }

    fn emit(&self, event: SocketEvent<C>) {
        if self.current() {
            self.handler.on_event(event);
        }
    }
}

/// What woke a connected task.
enum Event {
    /// A command from the page; `None` once the page dropped its sender.
    Command(Option<Command>),
    /// A frame or the close from the socket; `None` if its events ended otherwise.
    Socket(Option<WireEvent>),
    /// Nothing arrived within the liveness timeout.
    Silent,
}

/// How one connection ended.
enum Ended {
    /// The page asked to stop; the socket is closed with 1000.
    Stopped,
    Closed {
        code: u16,
        reason: String,
        /// How long the connection stayed ready.
        open_for: Duration,
    },
}

async fn run<C: Codec, H: Handler<C>>(
    key: H::Key,
    options: SocketOptions,
    link: Link<C, H>,
    wake: UnboundedSender<Command>,
    mut inbox: UnboundedReceiver<Command>,
) {
    let _wake_listeners = wake_on_return(wake, &options);
    let mut backoff = Backoff::with_policy(options.backoff);
    let mut resume: Option<C::Resume> = None;
    loop {
        // A task that was replaced (the key changed, the page went away) must never
        // open another socket, whatever it was waiting for when that happened.
        if !link.current() {
            return;
        }
        let Some(endpoint) = link.handler.endpoint(&key, resume.as_ref()) else {
            link.emit(SocketEvent::Stopped(Stopped::NoUrl));
            return;
        };
        link.emit(SocketEvent::State(SocketState::Connecting));
        let ended = connect(&endpoint, &link, &mut resume, &options, &mut inbox).await;
        let (code, reason) = match ended {
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
        match C::after_close(code) {
            Next::Stop => {
                link.emit(SocketEvent::Stopped(Stopped::Closed { code, reason }));
                // Closed for good, unless the reader asks to try again.
                if !until_retry(&mut inbox, &link).await {
                    return;
                }
                backoff = Backoff::with_policy(options.backoff);
                continue;
            }
            Next::Renew => match until_stopped(&mut inbox, &link, link.handler.renew()).await {
                None => return,
                Some(Renewal::Renewed) => continue,
                Some(Renewal::Refused) => {
                    link.emit(SocketEvent::Stopped(Stopped::RenewalRefused));
                    return;
                }
                // Unreachable: retry later like any lost connection.
                Some(Renewal::Unreachable) => {}
            },
            Next::Retry => {}
        }
        let delay = backoff.next_delay(js_sys::Math::random());
        if !wait_to_retry(delay, backoff.attempt(), &link, &mut inbox).await {
            return;
        }
    }
}

/// One connection, from open to close.
async fn connect<C: Codec, H: Handler<C>>(
    endpoint: &Endpoint,
    link: &Link<C, H>,
    resume: &mut Option<C::Resume>,
    options: &SocketOptions,
    inbox: &mut UnboundedReceiver<Command>,
) -> Ended {
    let mut socket = match Wire::open(&endpoint.url, &endpoint.protocols) {
        Ok(socket) => socket,
        Err(reason) => {
            return Ended::Closed {
                code: ABNORMAL_CLOSURE,
                reason,
                open_for: Duration::ZERO,
            };
        }
    };
    let mut ready_at = None;
    let mut last_heard = now_ms();
    // Until ready, the ready timeout bounds the silence; then the liveness timeout
    // (the options', or what the server announced).
    let ready_limit = options.ready_timeout;
    let mut liveness = options.liveness_timeout;
    loop {
        let limit = if ready_at.is_some() {
            liveness
        } else {
            ready_limit
        };
        let silence = match silence_left_ms(limit, last_heard, now_ms()) {
            Some(left) => TimeoutFuture::new(left).left_future(),
            None => futures_util::future::pending().right_future(),
        };
        let event = select_biased! {
            command = inbox.next() => Event::Command(command),
            message = socket.events.next() => Event::Socket(message),
            () = silence.fuse() => Event::Silent,
        };
        if matches!(event, Event::Socket(_)) {
            last_heard = now_ms();
        }
        match event {
            Event::Command(None | Some(Command::Stop)) => {
                socket.close(NORMAL_CLOSURE, "closed by the client");
                return Ended::Stopped;
            }
            // Back online or visible: timers may have been throttled meanwhile, so
            // check at once whether the server has been silent too long.
            Event::Command(Some(Command::Wake | Command::Retry)) => {
                if silence_left_ms(limit, last_heard, now_ms()) == Some(0) {
                    return dead(socket, ready_at);
                }
            }
            Event::Command(Some(Command::Send(text))) => {
                if !socket.send(text) {
                    link.emit(SocketEvent::SendFailed(SendFailure::Dropped));
                }
            }
            Event::Socket(Some(WireEvent::Text(text))) => match C::decode(&text) {
                Ok(frame) => {
                    if let Some(reply) = C::auto_reply(&frame) {
                        socket.send(C::encode(&reply));
                        continue;
                    }
                    if let Some(point) = C::resume_point(&frame, resume.as_ref()) {
                        *resume = Some(point);
                    }
                    if let Some(limit) = C::liveness_timeout(&frame) {
                        liveness = Some(limit);
                    }
                    let ready = C::is_ready(&frame);
                    link.emit(SocketEvent::Frame(frame));
                    if ready {
                        ready_at = Some(now_ms());
                        link.emit(SocketEvent::State(SocketState::Open));
                    }
                }
                Err(err) => leptos::logging::warn!("ignoring an unreadable frame: {err}"),
            },
            Event::Socket(Some(WireEvent::Closed { code, reason })) => {
                return Ended::Closed {
                    code,
                    reason,
                    open_for: since_ms(ready_at),
                };
            }
            Event::Socket(None) => {
                return Ended::Closed {
                    code: ABNORMAL_CLOSURE,
                    reason: String::new(),
                    open_for: since_ms(ready_at),
                };
            }
            Event::Silent => return dead(socket, ready_at),
        }
    }
}

/// Gives up on a connection the server has gone silent on (or that never became
/// ready): closed here, and retried like a dropped one.
fn dead(socket: Wire, ready_at: Option<f64>) -> Ended {
    // The close frame may never arrive (a frozen server); the browser tears the
    // connection down either way.
    socket.close(NORMAL_CLOSURE, "no sign of life");
    Ended::Closed {
        code: ABNORMAL_CLOSURE,
        reason: "no sign of life from the server".into(),
        open_for: since_ms(ready_at),
    }
}

/// Waits out a backoff delay, showing the countdown; `false` if told to stop.
async fn wait_to_retry<C: Codec, H: Handler<C>>(
    delay: Duration,
    attempt: u32,
    link: &Link<C, H>,
    inbox: &mut UnboundedReceiver<Command>,
) -> bool {
    let deadline = now_ms() + delay.as_secs_f64() * 1000.0;
    loop {
        let offline = !window().navigator().on_line();
        let countdown = Countdown::at(deadline - now_ms());
        let sleep = match (offline, countdown) {
            (false, None) => return true,
            (true, _) => {
                link.emit(SocketEvent::State(SocketState::Offline));
                // Only the `online` event (a wake) ends the wait.
                futures_util::future::pending().right_future()
            }
            (false, Some(countdown)) => {
                link.emit(SocketEvent::State(SocketState::Reconnecting(Retry {
                    attempt,
                    retry_in_secs: countdown.retry_in_secs,
                })));
                TimeoutFuture::new(countdown.next_tick_ms).left_future()
            }
        };
        select_biased! {
            command = inbox.next() => match command {
                None | Some(Command::Stop) => return false,
                Some(Command::Wake | Command::Retry) => return true,
                Some(Command::Send(_)) => link.emit(SocketEvent::SendFailed(SendFailure::NotConnected)),
            },
            () = sleep.fuse() => {}
        }
    }
}

/// Runs `work` unless the page says stop first (`None`).
async fn until_stopped<C: Codec, H: Handler<C>, T>(
    inbox: &mut UnboundedReceiver<Command>,
    link: &Link<C, H>,
    work: impl Future<Output = T>,
) -> Option<T> {
    let work = work.fuse();
    pin_mut!(work);
    loop {
        select_biased! {
            command = inbox.next() => match command {
                None | Some(Command::Stop) => return None,
                Some(Command::Wake | Command::Retry) => {}
                Some(Command::Send(_)) => link.emit(SocketEvent::SendFailed(SendFailure::NotConnected)),
            },
            done = work => return Some(done),
        }
    }
}

/// Waits, after a close not to be retried, for the reader to ask for another try
/// (`true`) or for the page to stop the task (`false`); the network coming back
/// or the tab being shown again is no reason to.
async fn until_retry<C: Codec, H: Handler<C>>(
    inbox: &mut UnboundedReceiver<Command>,
    link: &Link<C, H>,
) -> bool {
    loop {
        match inbox.next().await {
            None | Some(Command::Stop) => return false,
            Some(Command::Retry) => return true,
            Some(Command::Wake) => {}
            Some(Command::Send(_)) => link.emit(SocketEvent::SendFailed(SendFailure::NotConnected)),
        }
    }
}

/// Wakes the task when the network comes back or the tab becomes visible, as the
/// options ask.
fn wake_on_return(wake: UnboundedSender<Command>, options: &SocketOptions) -> Vec<EventListener> {
    let mut listeners = Vec::new();
    if options.wake_on_online {
        let wake = wake.clone();
        listeners.push(EventListener::new(&window(), "online", move |_| {
            let _ = wake.unbounded_send(Command::Wake);
        }));
    }
    if options.wake_on_visible {
        listeners.push(EventListener::new(
            &document(),
            "visibilitychange",
            move |_| {
                if document().visibility_state() == VisibilityState::Visible {
                    let _ = wake.unbounded_send(Command::Wake);
                }
            },
        ));
    }
    listeners
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

fn since_ms(start: Option<f64>) -> Duration {
    start.map_or(Duration::ZERO, |start| {
        Duration::from_secs_f64(((now_ms() - start) / 1000.0).max(0.0))
    })
}
