//! Messages typed but not yet acknowledged: every one ends delivered (acknowledged,
//! then shown as the room's message) or failed with its text kept, never lost.
//!
//! Pure data, unit-tested natively; [`crate::chat`] drives it from socket events.
//! Each entry keeps the `ref` it was first sent with, so a resend after a reconnect
//! (the server drops repeats of a `ref`) cannot deliver it twice.

/// The most unsent messages kept; typing more is refused until some are delivered.
pub const MAX_PENDING: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Status {
    /// Waiting for a connection.
    Queued,
    /// Sent on the current connection; waiting for its `ack`.
    Sending,
    /// Refused by the server (the reason, in words); the reader may retry or discard.
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub reference: String,
    pub text: String,
    pub status: Status,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outbox {
    entries: Vec<Pending>,
}

impl Outbox {
    pub fn entries(&self) -> &[Pending] {
        &self.entries
    }

    pub fn is_full(&self) -> bool {
        self.entries.len() >= MAX_PENDING
    }

    /// A new message, queued until [`Outbox::take_unsent`] hands it to a connection.
    pub fn push(&mut self, reference: String, text: String) {
        self.entries.push(Pending {
            reference,
            text,
            status: Status::Queued,
        });
    }

    /// Everything queued, in order, now marked as sending: what to send on a connection
    /// that has just become ready (or is ready and just got a new message).
    pub fn take_unsent(&mut self) -> Vec<(String, String)> {
        self.entries
            .iter_mut()
            .filter(|entry| entry.status == Status::Queued)
            .map(|entry| {
                entry.status = Status::Sending;
                (entry.reference.clone(), entry.text.clone())
            })
            .collect()
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

    /// A failed entry goes back in the queue, keeping its `ref`.
    pub fn retry(&mut self, reference: &str) -> bool {
        match self.find(reference) {
            Some(entry) if matches!(entry.status, Status::Failed(_)) => {
                entry.status = Status::Queued;
                true
            }
            _ => false,
        }
    }

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
            outbox.take_unsent(),
            [("r1".into(), "one".into()), ("r2".into(), "two".into())]
        );
        assert_eq!(outbox.take_unsent(), [], "already sending");
        assert!(outbox.acked("r1"));
        assert_eq!(statuses(&outbox), [("r2", Status::Sending)]);
    }

    #[test]
    fn unacknowledged_sends_go_again_with_the_same_ref_after_a_reconnect() {
        let mut outbox = Outbox::default();
        outbox.push("r1".into(), "one".into());
        outbox.take_unsent();
        outbox.connection_lost();
        outbox.push("r2".into(), "two".into());
        assert_eq!(
            outbox.take_unsent(),
            [("r1".into(), "one".into()), ("r2".into(), "two".into())]
        );
        assert!(!outbox.acked("unknown"));
    }

    #[test]
    fn a_refused_message_keeps_its_text_until_retried_or_discarded() {
        let mut outbox = Outbox::default();
        outbox.push("r1".into(), "one".into());
        outbox.push("r2".into(), "two".into());
        outbox.take_unsent();
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
        assert_eq!(outbox.take_unsent().len(), 2);
        outbox.discard("r1");
        assert_eq!(outbox.entries().len(), 1);
        assert!(!outbox.failed("gone", "x".into()));
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
