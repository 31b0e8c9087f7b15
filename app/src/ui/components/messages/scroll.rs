//! Where the conversation is scrolled, and what the reader has and has not seen:
//! following new messages at the bottom, the "Jump to latest (N new)" button once
//! the reader scrolls up, and the message kept in place while an older page
//! arrives above it.

use std::sync::Arc;

use chorus_protocol::Member;
use leptos::html;
use leptos::prelude::*;
use leptos::wasm_bindgen::JsCast;
use leptos::web_sys;

use crate::model::timeline::{Entry, messages_after, newest_message};

/// How close to the bottom (in pixels) still counts as "following" the conversation.
const FOLLOW_SLACK_PX: i32 = 48;

/// How close to the top (in pixels) loads older messages.
const OLDER_SLACK_PX: i32 = 80;

/// The list's scroll state, kept out of the reactive graph: it changes on every
/// scroll event and nothing is rendered from it. `Copy`, so each handler holds it.
#[derive(Clone, Copy)]
pub(super) struct Scroll {
    entries: Signal<Vec<Arc<Entry>>>,
    pub(super) list: NodeRef<html::Ol>,
    pub(super) jump: NodeRef<html::Button>,
    following: StoredValue<bool>,
    /// Where the list was at the last scroll event, or where this code last put it.
    last_top: StoredValue<i32>,
    /// The newest message id seen, and the newest when the reader scrolled up.
    newest: StoredValue<u64>,
    left_at: StoredValue<u64>,
    /// The message at the top when older ones were asked for, and how far below
    /// the list's scroll position it was.
    anchor: StoredValue<Option<(String, i32)>>,
}

impl Scroll {
    pub(super) fn new(entries: Signal<Vec<Arc<Entry>>>) -> Self {
        Self {
            entries,
            list: NodeRef::new(),
            jump: NodeRef::new(),
            following: StoredValue::new(true),
            last_top: StoredValue::new(0),
            newest: StoredValue::new(0),
            left_at: StoredValue::new(0),
            anchor: StoredValue::new(None),
        }
    }

    /// Shows the jump button while the reader is away from the end, with how many
    /// messages arrived since. Kept up to date by hand, like `NewMessages`: a
    /// reactive view for one button that comes and goes cost more client code.
    fn show_jump(self) {
        let Some(jump) = self.jump.get_untracked() else {
            return;
        };
        let away = !self.following.get_value();
        jump.set_hidden(!away);
        if away {
            let left_at = self.left_at.get_value();
            let unseen = self
                .entries
                .with_untracked(|entries| messages_after(entries, left_at));
            let text = if unseen == 0 {
                "Jump to latest".to_owned()
            } else {
                format!("Jump to latest ({unseen} new)")
            };
            jump.set_text_content(Some(&text));
        }
    }

    /// Follows the conversation again, from its end.
    pub(super) fn to_bottom(self) {
        self.following.set_value(true);
        self.show_jump();
        // After the change being made is rendered.
        request_animation_frame(move || {
            // The page may have gone in the meantime.
            if let Some(list) = self.list.try_get_untracked().flatten() {
                list.set_scroll_top(list.scroll_height());
                // Where this put it: a scroll event for it may come late or merged
                // with the reader's own.
                self.last_top.set_value(list.scroll_top());
            }
        });
    }

    /// Remembers the message at the top, to keep it in place when older messages
    /// arrive above it.
    pub(super) fn keep_top_message(self) {
        if let Some(list) = self.list.get_untracked()
            && let Ok(Some(first)) = list.query_selector("li.message")
        {
            let first: web_sys::HtmlElement = first.unchecked_into();
            let id = first.get_attribute("data-id").unwrap_or_default();
            self.anchor
                .set_value(Some((id, first.offset_top() - list.scroll_top())));
        }
    }

    /// On a scroll event: notes whether the reader still follows the conversation,
    /// and says whether the list reached its top, where older messages load.
    pub(super) fn scrolled(self) -> bool {
        let Some(list) = self.list.get_untracked() else {
            return false;
        };
        let top = list.scroll_top();
        let distance = list.scroll_height() - top - list.client_height();
        // Only the reader scrolling up stops the following: a scroll event that
        // comes after more messages were added (it fires a frame late) finds the
        // end farther away, but the list no higher than before.
        let scrolled_up = top < self.last_top.get_value();
        self.last_top.set_value(top);
        let following = self.following.get_value();
        let now_following = distance <= FOLLOW_SLACK_PX || (following && !scrolled_up);
        if now_following != following {
            self.following.set_value(now_following);
            self.left_at.set_value(self.newest.get_value());
            self.show_jump();
        }
        top <= OLDER_SLACK_PX
    }

    /// After the entries changed: follows the reader's own message and a room
    /// starting over, keeps the top message in place under an older page, and
    /// otherwise stays at the end if following.
    pub(super) fn entries_changed(self, me: Signal<Option<Member>>) {
        let me = me.with_untracked(|me| me.as_ref().map(|me| me.user_id.clone()));
        let arrived = self
            .entries
            .with_untracked(|entries| newest_message(entries, me.as_deref()));
        match arrived {
            // A room starting over (another room, say): from its end.
            None => {
                self.newest.set_value(0);
                self.following.set_value(true);
            }
            Some((id, own)) if id > self.newest.get_value() => {
                self.newest.set_value(id);
                // The reader's own message: back to the conversation's end.
                if own {
                    self.following.set_value(true);
                }
            }
            Some(_) => {}
        }
        self.show_jump();
        if let Some((id, offset)) = self.anchor.get_value() {
            request_animation_frame(move || self.restore_top_message(&id, offset));
        } else if self.following.get_value() {
            self.to_bottom();
        }
    }

    /// Puts the message kept by [`Self::keep_top_message`] back where it was, once
    /// the older page is rendered above it.
    fn restore_top_message(self, id: &str, offset: i32) {
        let Some(list) = self.list.try_get_untracked().flatten() else {
            return;
        };
        let Ok(Some(first)) = list.query_selector("li.message") else {
            return;
        };
        // Nothing arrived above the anchor yet (a live message at the bottom).
        if first.get_attribute("data-id").as_deref() == Some(id) {
            return;
        }
        self.anchor.set_value(None);
        if let Ok(Some(kept)) = list.query_selector(&format!("li[data-id=\"{id}\"]")) {
            let kept: web_sys::HtmlElement = kept.unchecked_into();
            list.set_scroll_top(kept.offset_top() - offset);
            self.last_top.set_value(list.scroll_top());
        }
    }
}
