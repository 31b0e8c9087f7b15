//! The chat's [`Handler`](crate::socket::Handler): the room's URL, renewing the
//! guest token, and socket events into the page's signals.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use chorus_protocol::token_subprotocols;
use leptos::prelude::*;

use super::browser::page_origin;
use super::chat_socket::Signals;
use super::codec::ChatCodec;
use super::saved_outbox;
use super::state::{ClosedReason, ConnectionState};
use crate::model::outbox::Outbox;
use crate::model::timeline::Timeline;
use crate::model::typing::Typists;
use crate::model::unread::Unread;
use crate::session::{self, ApiFailure};
use crate::socket::{
    Endpoint, Handler, Renewal, SendFailure, SocketEvent, SocketState, socket_url,
};

/// The chat's [`Handler`]: builds the room's URL, renews guest tokens, and turns
/// socket events into the page's signals.
pub(super) struct RoomHandler {
    pub(super) signals: Signals,
    /// The token the connection was opened with, or last handed over with `refresh`.
    pub(super) token: StoredValue<Option<String>>,
    /// Unsent messages of the rooms this page left, kept until it comes back.
    pub(super) other_outboxes: StoredValue<HashMap<String, Outbox>>,
    pub(super) current: StoredValue<Option<String>>,
}

impl Handler<ChatCodec> for RoomHandler {
    type Key = String;

    /// Each room keeps its own outbox: what was typed for one room is never sent to
    /// another, and is still there (queued again) when the reader returns, in this
    /// page or after a reload of the tab.
    fn started(&self, room: &String) {
        let mut leaving = self.signals.outbox.try_get_untracked().unwrap_or_default();
        leaving.connection_lost();
        let previous = self.current.try_get_value().flatten();
        if let Some(previous) = &previous {
            saved_outbox::store(previous, &leaving);
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
            .or_else(|| saved_outbox::load(room))
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
