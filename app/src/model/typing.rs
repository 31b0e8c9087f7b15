//! Who else is typing, from the `typing` frames of the room: plain data, tested
//! natively. A user is shown for [`TYPING_SHOWN_MS`] after its last `typing`, or
//! until its message arrives.

use chorus_protocol::TYPING_SHOWN_MS;

/// Users typing now, in the order they began.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Typists {
    /// (user id, name, shown until this many ms since the epoch)
    typing: Vec<(String, String, f64)>,
}

impl Typists {
    /// `user_id` (called `name`) said it is typing at `now`.
    pub fn saw(&mut self, user_id: String, name: String, now: f64) {
        let until = now + TYPING_SHOWN_MS as f64;
        match self.typing.iter_mut().find(|(id, ..)| *id == user_id) {
            Some(typist) => typist.2 = until,
            None => self.typing.push((user_id, name, until)),
        }
    }

    /// `user_id`'s message arrived: it is done typing it.
    pub fn sent(&mut self, user_id: &str) {
        self.typing.retain(|(id, ..)| id != user_id);
    }

    /// Forgets whoever has been quiet too long by `now`.
    pub fn expire(&mut self, now: f64) {
        self.typing.retain(|(.., until)| *until > now);
    }

    /// "Alice is typing…", "Alice and Bob are typing…", "Alice, Bob and 2 others
    /// are typing…"; `None` when nobody is.
    pub fn text(&self) -> Option<String> {
        let names: Vec<&str> = self
            .typing
            .iter()
            .map(|(_, name, _)| name.as_str())
            .collect();
        Some(match names[..] {
            [] => return None,
            [one] => format!("{one} is typing…"),
            [one, two] => format!("{one} and {two} are typing…"),
            [one, two, three] => format!("{one}, {two} and {three} are typing…"),
            [one, two, ref rest @ ..] => {
                format!("{one}, {two} and {} others are typing…", rest.len())
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typists(names: &[&str]) -> Typists {
        let mut typists = Typists::default();
        for name in names {
            typists.saw(format!("id-{name}"), (*name).to_owned(), 0.0);
        }
        typists
    }

    #[test]
    fn the_text_names_up_to_three_then_counts() {
        assert_eq!(typists(&[]).text(), None);
        assert_eq!(typists(&["Alice"]).text().unwrap(), "Alice is typing…");
        assert_eq!(
            typists(&["Alice", "Bob"]).text().unwrap(),
            "Alice and Bob are typing…"
        );
        assert_eq!(
            typists(&["Alice", "Bob", "Carol"]).text().unwrap(),
            "Alice, Bob and Carol are typing…"
        );
        assert_eq!(
            typists(&["Alice", "Bob", "Carol", "Dan", "Eve"])
                .text()
                .unwrap(),
            "Alice, Bob and 3 others are typing…"
        );
    }

    #[test]
    fn a_typist_goes_after_five_quiet_seconds_or_with_its_message() {
        let mut typists = typists(&["Alice", "Bob"]);
        typists.saw("id-Alice".into(), "Alice".into(), 4000.0);
        typists.expire(4999.0);
        assert_eq!(typists.text().unwrap(), "Alice and Bob are typing…");
        typists.expire(5000.0);
        assert_eq!(typists.text().unwrap(), "Alice is typing…", "Bob was quiet");
        typists.sent("id-Alice");
        assert_eq!(typists.text(), None);
    }

    #[test]
    fn typing_again_keeps_the_place_and_one_entry() {
        let mut typists = typists(&["Alice", "Bob"]);
        typists.saw("id-Alice".into(), "Alice".into(), 100.0);
        assert_eq!(typists.text().unwrap(), "Alice and Bob are typing…");
    }
}
