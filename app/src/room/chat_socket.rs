//! [`ChatSocket`]: the page's handle on a room, its reactive reads and its sends.

use std::sync::Arc;

use chorus_protocol::{ClientFrame, Member, TYPING_EVERY_MS, validate_content};
use leptos::prelude::*;

use super::browser::{fresh_ref, now_ms};
use super::codec::ChatCodec;
use super::state::{ConnectionState, SendError};
use crate::model::outbox::Outbox;
use crate::model::timeline::{Entry, Timeline};
use crate::model::typing::Typists;
use crate::model::unread::Unread;
use crate::session::{self};
use crate::socket::ReconnectingSocket;

/// A room's connection: reactive reads and a `send` function. Cheap to copy.
#[derive(Clone, Copy)]
pub struct ChatSocket {
    pub(super) signals: Signals,
}

/// What the page reads, written by [`RoomHandler`] as socket events arrive.
#[derive(Clone, Copy)]
pub(super) struct Signals {
    pub(super) state: RwSignal<ConnectionState>,
    /// Typed messages not yet acknowledged, for the current room.
    pub(super) outbox: RwSignal<Outbox>,
    /// The socket, for sending what the outbox holds once the connection is ready.
    pub(super) socket: StoredValue<Option<ReconnectingSocket<ChatCodec>>>,
    pub(super) timeline: RwSignal<Timeline>,
    pub(super) me: RwSignal<Option<Member>>,
    pub(super) problem: RwSignal<Option<String>>,
    /// Others' messages that arrived live, newest last, as `(id, "author: text")`:
    /// at most [`NEWS_KEPT`].
    pub(super) news: RwSignal<Vec<(u64, String)>>,
    /// Others' live messages while the page was hidden, counted here where each
    /// arrives (`news` keeps only the last few).
    pub(super) unread: RwSignal<Unread>,
    /// The room being shown.
    pub(super) room: StoredValue<Option<String>>,
    /// A page of older messages is being fetched.
    pub(super) loading_older: RwSignal<bool>,
    /// The latest live message of someone else that mentions this member, as
    /// `author: text`.
    pub(super) mentioned: RwSignal<Option<String>>,
    /// Others typing now.
    pub(super) typists: RwSignal<Typists>,
    /// When this page last said its user is typing (ms since the epoch).
    pub(super) typing_sent: StoredValue<u64>,
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
    /// [`crate::model::mentions::mentions`]), as `author: text`, set as each arrives live:
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
    pub(super) fn flush(self) {
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
