//! What a reader missed while the tab was hidden: how many messages (for the tab's
//! title) and which was the first (where the "New messages" divider goes).
//!
//! Pure data: the chat layer feeds it each live message of others as it arrives
//! ([`crate::room::ChatSocket::unread`]), the room page the page's visibility
//! ([`crate::room::ChatSocket::page_hidden`]).

/// Unread messages since the tab was hidden, and the first of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unread {
    hidden: bool,
    /// Counted while hidden; shown in the title, cleared on return.
    count: u32,
    /// The first message that arrived while hidden: the divider stays above it
    /// after the reader returns, until messages arrive in another absence.
    first_unseen: Option<u64>,
    /// Whether `first_unseen` belongs to the current absence.
    marked_this_absence: bool,
}

impl Unread {
    /// Others' messages that arrived while the page was hidden.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The first of them, for the "New messages" divider.
    pub fn first_unseen(&self) -> Option<u64> {
        self.first_unseen
    }

    /// The page was hidden (`true`) or shown again (`false`).
    pub fn visibility(&mut self, hidden: bool) {
        if hidden && !self.hidden {
            self.marked_this_absence = false;
        }
        if !hidden {
            self.count = 0;
        }
        self.hidden = hidden;
    }

    /// Another room: nothing in it is unread yet.
    pub fn new_room(&mut self) {
        *self = Unread {
            hidden: self.hidden,
            ..Unread::default()
        };
    }

    /// Someone else's message `id` arrived live.
    pub fn arrived(&mut self, id: u64) {
        if !self.hidden {
            return;
        }
        self.count = self.count.saturating_add(1);
        if !self.marked_this_absence {
            self.first_unseen = Some(id);
            self.marked_this_absence = true;
        }
    }
}

/// The tab's title with `count` unread messages in front, as chat apps show it.
pub fn with_count(title: &str, count: u32) -> String {
    match count {
        0 => title.to_owned(),
        count => format!("({count}) {title}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_counted_only_while_hidden_and_the_divider_marks_the_first() {
        let mut unread = Unread::default();
        unread.arrived(1);
        assert_eq!((unread.count(), unread.first_unseen()), (0, None));
        unread.visibility(true);
        unread.arrived(2);
        unread.arrived(3);
        assert_eq!((unread.count(), unread.first_unseen()), (2, Some(2)));
        // Back: the count goes, the divider stays where the reader left off.
        unread.visibility(false);
        assert_eq!((unread.count(), unread.first_unseen()), (0, Some(2)));
        unread.arrived(4);
        assert_eq!((unread.count(), unread.first_unseen()), (0, Some(2)));
        // Away again with nothing new: the divider stays; with news, it moves.
        unread.visibility(true);
        unread.visibility(false);
        assert_eq!(unread.first_unseen(), Some(2));
        unread.visibility(true);
        unread.visibility(true);
        unread.arrived(5);
        unread.arrived(6);
        assert_eq!((unread.count(), unread.first_unseen()), (2, Some(5)));
    }

    #[test]
    fn another_room_starts_with_nothing_unread() {
        let mut unread = Unread::default();
        unread.visibility(true);
        unread.arrived(7);
        unread.new_room();
        assert_eq!((unread.count(), unread.first_unseen()), (0, None));
        // Still hidden: the new room's messages count.
        unread.arrived(1);
        assert_eq!((unread.count(), unread.first_unseen()), (1, Some(1)));
    }

    #[test]
    fn the_title_carries_the_count() {
        assert_eq!(with_count("#general · Chorus", 0), "#general · Chorus");
        assert_eq!(with_count("#general · Chorus", 3), "(3) #general · Chorus");
    }
}
