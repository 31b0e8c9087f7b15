//! What each server frame changes on the page.

use chorus_protocol::{ChatMessage, ErrorCode, Member, ServerFrame};
use leptos::prelude::*;

use super::NEWS_KEPT;
use super::browser::{forget_typists_later, lowercase, now_ms};
use super::handler::RoomHandler;
use crate::model::mentions::mentions;

impl RoomHandler {
    /// What `frame` changes: one method per kind of frame below.
    pub(super) fn apply(&self, frame: ServerFrame) {
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
            ServerFrame::Message(message) => self.message(message),
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
            ServerFrame::Error {
                code,
                message,
                reference,
            } => self.error(code, &message, reference),
            // The connection now lasts as long as the renewed token.
            ServerFrame::Refreshed => {}
            ServerFrame::Typing { user_id, user } => self.typing(user_id, user),
            // Answered by the socket itself.
            ServerFrame::Ping => {}
            ServerFrame::Unknown => {}
        }
    }

    /// A message: into the timeline, ending its author's typing; someone else's
    /// that arrives live is also news for screen readers, counts as unread, and may
    /// mention the reader.
    fn message(&self, message: ChatMessage) {
        let signals = self.signals;
        signals
            .typists
            .try_update(|typists| typists.sent(&message.user_id));
        // Someone else's message, arrived live: read out to screen readers.
        let (news, mention) = signals.me.with_untracked(|me| {
            let others = me.as_ref().is_none_or(|me| me.user_id != message.user_id);
            let news =
                others.then(|| (message.id, format!("{}: {}", message.user, message.content)));
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

    /// A refused frame: a refused message of the outbox fails with the reason; a
    /// refused token changes nothing; anything else is shown as the room's problem.
    fn error(&self, code: ErrorCode, message: &str, reference: Option<String>) {
        let signals = self.signals;
        // The connection keeps its old token: when that expires the server closes
        // with 4002, and the room renews before it reconnects. Nothing to show.
        if code == ErrorCode::InvalidToken {
            leptos::logging::log!("the server kept the old token: {message}");
            return;
        }
        let pending = reference.filter(|reference| {
            signals
                .outbox
                .with_untracked(|outbox| outbox.entries().iter().any(|e| &e.reference == reference))
        });
        match pending {
            Some(reference) => {
                let reason = describe_error(code, message);
                signals
                    .outbox
                    .try_update(|outbox| outbox.failed(&reference, reason));
            }
            None => {
                signals.problem.try_set(Some(describe_error(code, message)));
            }
        }
    }

    /// Someone else typing: shown until it runs out.
    fn typing(&self, user_id: String, user: String) {
        let signals = self.signals;
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
}

pub(super) fn describe_error(code: ErrorCode, message: &str) -> String {
    match code {
        ErrorCode::RateLimited => "You are sending too fast; that message was not sent.".into(),
        ErrorCode::Forbidden => "You may only read this room; that message was not sent.".into(),
        ErrorCode::Unavailable => {
            "The server cannot store messages right now; that message was not sent.".into()
        }
        _ => format!("The server refused a message: {message}"),
    }
}
