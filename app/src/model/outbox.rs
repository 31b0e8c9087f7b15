//! Messages typed but not yet acknowledged: every one ends delivered (acknowledged,
//! then shown as the room's message) or failed with its text kept, never lost.
//!
//! Pure data, unit-tested natively; [`crate::room`] drives it from socket events.
//! Each entry keeps the `ref` it was first sent with, so a resend after a reconnect
//! or a page reload (the server drops repeats of a `ref` for
//! [`REF_WINDOW_SECS`]) cannot deliver it twice;
//! past that window an unconfirmed entry is not resent by itself but shown as
//! failed, since it may have been delivered. [`crate::room`] keeps a room's outbox
//! in the tab's `sessionStorage` so it outlives a reload ([`Outbox::restored`]).

use chorus_protocol::REF_WINDOW_SECS;
use serde::{Deserialize, Serialize};

/// The most unsent messages kept; typing more is refused until some are delivered.
pub const MAX_PENDING: usize = 100;

/// How long after its first send an unconfirmed entry is still resent by itself: the
/// server's `ref` window, less a margin for clock drift and time in flight.
pub const RESEND_WINDOW_MS: u64 = (REF_WINDOW_SECS - 30) * 1000;

/// Why an entry is not resent by itself once [`RESEND_WINDOW_MS`] has passed.
pub const UNCONFIRMED: &str =
    "not confirmed for minutes, so it may have been delivered; Retry sends it again";

/// Where an unsent message stands.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Status {
    /// Waiting for a connection.
    Queued,
    /// Sent on the current connection; waiting for its `ack`.
    Sending,
    /// Refused by the server (the reason, in words); the reader may retry or discard.
    Failed(String),
}

/// A message typed and not yet acknowledged by the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The `ref` it keeps across resends, so the server stores it once.
    pub reference: String,
    /// What the reader typed.
    pub text: String,
    /// Where it stands.
    pub status: Status,
    /// When it was first handed to a connection (Unix ms): resends within the
    /// server's `ref` window are safe, later ones are not.
    #[serde(default)]
    pub first_sent_ms: Option<u64>,
}

/// A room's unsent messages, in the order they were typed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outbox {
    entries: Vec<Pending>,
}

impl Outbox {
    /// Every unsent message, oldest first.
    pub fn entries(&self) -> &[Pending] {
        &self.entries
    }

    /// Whether it holds as many as it may ([`MAX_PENDING`]).
    pub fn is_full(&self) -> bool {
        self.entries.len() >= MAX_PENDING
    }

    /// A new message, queued until [`Outbox::take_unsent`] hands it to a connection.
    pub fn push(&mut self, reference: String, text: String) {
        self.entries.push(Pending {
            reference,
            text,
            status: Status::Queued,
            first_sent_ms: None,
        });
    }

    /// Everything queued, in order, now marked as sending: what to send on a connection
    /// that has just become ready (or is ready and just got a new message). An entry
    /// first sent longer than [`RESEND_WINDOW_MS`] before `now_ms` fails instead.
    pub fn take_unsent(&mut self, now_ms: u64) -> Vec<(String, String)> {
        let mut unsent = Vec::new();
        for entry in &mut self.entries {
            if entry.status != Status::Queued {
                continue;
            }
            let first_sent = *entry.first_sent_ms.get_or_insert(now_ms);
            if now_ms.saturating_sub(first_sent) > RESEND_WINDOW_MS {
                entry.status = Status::Failed(UNCONFIRMED.to_owned());
            } else {
                entry.status = Status::Sending;
                unsent.push((entry.reference.clone(), entry.text.clone()));
            }
        }
        unsent
    }

    /// The connection is gone: what was sent without an `ack` goes out again (with
    /// the same `ref`) on the next one.
    pub fn connection_lost(&mut self) {
        for entry in &mut self.entries {
            if entry.status == Status::Sending {
                entry.status = Status::Queued;
            }
        }
    }

    /// An outbox read back from storage, as it may be resumed: at most
    /// [`MAX_PENDING`] entries (storage is the browser's, and anyone's to edit), and
    /// what was being sent when the page went queued to go again.
    pub fn restored(mut self) -> Self {
        self.entries.truncate(MAX_PENDING);
        self.connection_lost();
        self
    }

    /// Delivered: the entry leaves the outbox (the message itself is in the room).
    pub fn acked(&mut self, reference: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|entry| entry.reference != reference);
        self.entries.len() != before
    }

    /// Refused by the server; kept with `reason` until retried or discarded.
    pub fn failed(&mut self, reference: &str, reason: String) -> bool {
        match self.find(reference) {
            Some(entry) => {
                entry.status = Status::Failed(reason);
                true
            }
            None => false,
        }
    }

    /// A failed entry goes back in the queue, keeping its `ref`; the reader asked
    /// for it, so it is sent even if an earlier send may have been delivered.
    pub fn retry(&mut self, reference: &str) -> bool {
        match self.find(reference) {
            Some(entry) if matches!(entry.status, Status::Failed(_)) => {
                entry.status = Status::Queued;
                entry.first_sent_ms = None;
                true
            }
            _ => false,
        }
    }

    /// Forgets the message with this `ref` (the reader discarded it).
    pub fn discard(&mut self, reference: &str) {
        self.entries.retain(|entry| entry.reference != reference);
    }

    fn find(&mut self, reference: &str) -> Option<&mut Pending> {
        self.entries
            .iter_mut()
            .find(|entry| entry.reference == reference)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statuses(outbox: &Outbox) -> Vec<(&str, Status)> {
        outbox
            .entries()
            .iter()
            .map(|entry| (entry.reference.as_str(), entry.status.clone()))
            .collect()
    }

    #[test]
    fn typed_while_away_is_sent_in_order_once_connected() {
        let mut outbox = Outbox::default();
        outbox.push("r1".into(), "one".into());
        outbox.push("r2".into(), "two".into());
        assert_eq!(
            outbox.take_unsent(NOW),
            [("r1".into(), "one".into()), ("r2".into(), "two".into())]
        );
        assert_eq!(outbox.take_unsent(NOW), [], "already sending");
        assert!(outbox.acked("r1"));
        assert_eq!(statuses(&outbox), [("r2", Status::Sending)]);
    }

    #[test]
    fn unacknowledged_sends_go_again_with_the_same_ref_after_a_reconnect() {
        let mut outbox = Outbox::default();
        outbox.push("r1".into(), "one".into());
        outbox.take_unsent(NOW);
        outbox.connection_lost();
        outbox.push("r2".into(), "two".into());
        assert_eq!(
            outbox.take_unsent(NOW),
            [("r1".into(), "one".into()), ("r2".into(), "two".into())]
        );
        assert!(!outbox.acked("unknown"));
    }

    #[test]
    fn a_refused_message_keeps_its_text_until_retried_or_discarded() {
        let mut outbox = Outbox::default();
        outbox.push("r1".into(), "one".into());
        outbox.push("r2".into(), "two".into());
        outbox.take_unsent(NOW);
        assert!(outbox.failed("r2", "too fast".into()));
        outbox.connection_lost();
        assert_eq!(
            statuses(&outbox),
            [
                ("r1", Status::Queued),
                ("r2", Status::Failed("too fast".into()))
            ],
            "a failed entry is not resent by itself"
        );
        assert!(!outbox.retry("r1"), "only failed entries are retried");
        assert!(outbox.retry("r2"));
        assert_eq!(outbox.take_unsent(NOW).len(), 2);
        outbox.discard("r1");
        assert_eq!(outbox.entries().len(), 1);
        assert!(!outbox.failed("gone", "x".into()));
    }

    const NOW: u64 = 1_800_000_000_000;

    #[test]
    fn an_entry_unconfirmed_past_the_ref_window_fails_instead_of_going_again() {
        let mut outbox = Outbox::default();
        outbox.push("r1".into(), "one".into());
        outbox.take_unsent(NOW);
        outbox.connection_lost();
        outbox.push("r2".into(), "two".into());
        assert_eq!(
            outbox.take_unsent(NOW + RESEND_WINDOW_MS + 1),
            [("r2".into(), "two".into())],
            "r1 may have been delivered; r2 was never sent"
        );
        assert_eq!(
            statuses(&outbox),
            [
                ("r1", Status::Failed(UNCONFIRMED.into())),
                ("r2", Status::Sending)
            ]
        );
        assert!(outbox.retry("r1"), "the reader may still send it");
        assert_eq!(
            outbox.take_unsent(NOW + 2 * RESEND_WINDOW_MS),
            [("r1".into(), "one".into())]
        );
    }

    #[test]
    fn resends_within_the_window_keep_going() {
        let mut outbox = Outbox::default();
        outbox.push("r1".into(), "one".into());
        outbox.take_unsent(NOW);
        outbox.connection_lost();
        assert_eq!(outbox.take_unsent(NOW + RESEND_WINDOW_MS).len(), 1);
    }

    #[test]
    fn a_saved_outbox_reads_back_the_same() {
        let mut outbox = Outbox::default();
        outbox.push("r1".into(), "one".into());
        outbox.push("r2".into(), "two".into());
        outbox.take_unsent(NOW);
        outbox.failed("r2", "too fast".into());
        let text = serde_json::to_string(&outbox).unwrap();
        assert_eq!(serde_json::from_str::<Outbox>(&text).unwrap(), outbox);
    }

    #[test]
    fn a_restored_outbox_sends_again_and_keeps_at_most_max_pending() {
        let mut outbox = Outbox::default();
        for n in 0..MAX_PENDING {
            outbox.push(n.to_string(), "x".into());
        }
        outbox.take_unsent(NOW);
        // Pushed past the bound, as edited storage could hold.
        outbox.entries.push(outbox.entries[0].clone());
        let restored = outbox.restored();
        assert_eq!(restored.entries().len(), MAX_PENDING);
        assert!(
            restored
                .entries()
                .iter()
                .all(|entry| entry.status == Status::Queued),
            "what was being sent goes again"
        );
    }

    #[test]
    fn the_outbox_is_bounded() {
        let mut outbox = Outbox::default();
        for n in 0..MAX_PENDING {
            assert!(!outbox.is_full());
            outbox.push(n.to_string(), "x".into());
        }
        assert!(outbox.is_full());
    }
}
