//! The soak's rules, apart from its IO: what a member's messages must look like
//! across its reconnects, and how a memory trend is measured.

/// One member's view of its room across all its connections: every message from
/// the first it saw, once and in order. The room's sender numbers its messages, so
/// a message published twice (a resend the server did not recognise) shows as a
/// number seen again under a new id, and a lost one as a number skipped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Continuity {
    newest_id: Option<u64>,
    /// The first welcome's `last_id`: where a member that has seen no message yet
    /// resumes.
    joined_at: Option<u64>,
    next_seq: Option<u64>,
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    /// The numbers skipped, as `(first, last)`, for `SOAK_DEBUG`.
    pub gaps: Vec<(u64, u64)>,
}

impl Continuity {
    pub(crate) fn welcome(&mut self, last_id: u64) {
        self.joined_at.get_or_insert(last_id);
    }

    /// The `since` of the next connection, if any.
    pub(crate) fn since(&self) -> Option<u64> {
        self.newest_id.or(self.joined_at)
    }

    pub(crate) fn message(&mut self, id: u64, seq: u64) {
        if self.newest_id.is_some_and(|newest| id <= newest) {
            // Delivered again, or out of order.
            self.duplicates += 1;
            return;
        }
        self.newest_id = Some(id);
        match self.next_seq {
            // Published again under a new id.
            Some(next) if seq < next => {
                self.duplicates += 1;
                return;
            }
            Some(next) if seq > next => {
                self.lost += seq - next;
                self.gaps.push((next, seq - 1));
            }
            _ => {}
        }
        self.next_seq = Some(seq + 1);
        self.received += 1;
    }

    /// Whether it has every one of the room's `published` messages up to the last.
    pub(crate) fn has_all(&self, published: u64) -> bool {
        self.next_seq == Some(published)
    }

    /// At the end of the run: what the room published after the last one it got.
    pub(crate) fn finish(&mut self, published: u64) {
        let next = self.next_seq.unwrap_or(0);
        if next < published {
            self.lost += published - next;
            self.gaps.push((next, published - 1));
        }
    }
}

/// A least-squares slope of `(minutes, value)` points, per minute.
pub(crate) fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mean_x = points.iter().map(|(x, _)| x).sum::<f64>() / n;
    let mean_y = points.iter().map(|(_, y)| y).sum::<f64>() / n;
    let covariance: f64 = points
        .iter()
        .map(|(x, y)| (x - mean_x) * (y - mean_y))
        .sum();
    let variance: f64 = points.iter().map(|(x, _)| (x - mean_x).powi(2)).sum();
    if variance == 0.0 {
        0.0
    } else {
        covariance / variance
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_in_order_lose_nothing() {
        let mut log = Continuity::default();
        log.welcome(100);
        assert_eq!(log.since(), Some(100));
        for seq in 0..3 {
            log.message(101 + seq, seq);
        }
        log.finish(3);
        assert_eq!((log.received, log.lost, log.duplicates), (3, 0, 0));
        assert_eq!(log.since(), Some(103));
    }

    #[test]
    fn a_skipped_number_is_lost_and_a_repeated_one_duplicated() {
        let mut log = Continuity::default();
        log.message(10, 0);
        log.message(12, 2);
        assert_eq!(log.lost, 1);
        // Redelivered after a reconnect.
        log.message(12, 2);
        // Published again under a new id.
        log.message(13, 2);
        assert_eq!(log.duplicates, 2);
        log.message(14, 3);
        assert!(log.has_all(4));
        log.finish(6);
        assert_eq!((log.received, log.lost), (3, 3));
    }

    #[test]
    fn only_the_first_welcome_sets_where_a_silent_member_resumes() {
        let mut log = Continuity::default();
        log.welcome(5);
        log.welcome(9);
        assert_eq!(log.since(), Some(5));
    }

    #[test]
    fn the_slope_is_per_unit_of_x() {
        assert_eq!(slope(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]), 2.0);
        assert_eq!(slope(&[(0.0, 4.0), (1.0, 4.0)]), 0.0);
        assert_eq!(slope(&[(1.0, 4.0)]), 0.0);
    }
}
