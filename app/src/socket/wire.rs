//! A browser WebSocket as a channel of events, written on `web_sys` and
//! `gloo-events` (already in the page for the connection's other listeners). A
//! WebSocket crate's stream and sink wrapper, its error types and message enum cost
//! the page more than the four calls the connection task makes.

use std::cell::RefCell;
use std::rc::Rc;

use futures_channel::mpsc::{UnboundedReceiver, unbounded};
use gloo_events::EventListener;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{CloseEvent, MessageEvent, WebSocket};

use super::{ABNORMAL_CLOSURE, NORMAL_CLOSURE};

/// What the socket says, in order.
pub(super) enum WireEvent {
    /// A text frame (binary frames are not passed on: every codec here speaks text).
    Text(String),
    /// The close event: the socket is done.
    Closed { code: u16, reason: String },
}

/// One WebSocket; closed (if still open) when dropped.
pub(super) struct Wire {
    socket: WebSocket,
    pub(super) events: UnboundedReceiver<WireEvent>,
    /// Frames sent while it was still connecting, sent once it opens.
    early: Rc<RefCell<Vec<String>>>,
    _listeners: [EventListener; 3],
}

impl Wire {
    /// Opens a socket to `url`, offering `protocols` (if any); the error is the
    /// browser's reason (a malformed URL, say).
    pub(super) fn open(url: &str, protocols: &[String]) -> Result<Wire, String> {
        let opened = if protocols.is_empty() {
            WebSocket::new(url)
        } else {
            let offered: js_sys::Array = protocols.iter().map(|p| JsValue::from_str(p)).collect();
            WebSocket::new_with_str_sequence(url, &offered)
        };
        let socket = opened.map_err(|err| {
            err.dyn_ref::<js_sys::Error>().map_or_else(
                || "cannot open a WebSocket".to_owned(),
                |err| err.message().into(),
            )
        })?;
        let (sender, events) = unbounded();
        let early: Rc<RefCell<Vec<String>>> = Rc::default();
        let on_open = {
            let (socket, early) = (socket.clone(), early.clone());
            EventListener::new(&socket.clone(), "open", move |_| {
                for text in early.take() {
                    let _ = socket.send_with_str(&text);
                }
            })
        };
        let on_message = {
            let sender = sender.clone();
            EventListener::new(&socket, "message", move |event| {
                if let Some(text) = event
                    .dyn_ref::<MessageEvent>()
                    .and_then(|e| e.data().as_string())
                {
                    let _ = sender.unbounded_send(WireEvent::Text(text));
                }
            })
        };
        let on_close = EventListener::new(&socket, "close", move |event| {
            let (code, reason) = event
                .dyn_ref::<CloseEvent>()
                .map_or((ABNORMAL_CLOSURE, String::new()), |close| {
                    (close.code(), close.reason())
                });
            let _ = sender.unbounded_send(WireEvent::Closed { code, reason });
        });
        Ok(Wire {
            socket,
            events,
            early,
            _listeners: [on_open, on_message, on_close],
        })
    }

    /// Sends `text`, once open if it is still connecting; `false` when the socket is
    /// closing or closed (or refused it).
    pub(super) fn send(&self, text: String) -> bool {
        match self.socket.ready_state() {
            WebSocket::CONNECTING => {
                self.early.borrow_mut().push(text);
                true
            }
            WebSocket::OPEN => self.socket.send_with_str(&text).is_ok(),
            _ => false,
        }
    }

    /// Closes with `code` and `reason` (at most 123 bytes).
    pub(super) fn close(&self, code: u16, reason: &str) {
        let _ = self.socket.close_with_code_and_reason(code, reason);
    }
}

impl Drop for Wire {
    /// The listeners go with it; a socket still open is closed, never left behind.
    fn drop(&mut self) {
        if matches!(
            self.socket.ready_state(),
            WebSocket::CONNECTING | WebSocket::OPEN
        ) {
            self.close(NORMAL_CLOSURE, "");
        }
    }
}
