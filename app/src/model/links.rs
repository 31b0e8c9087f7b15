//! Web addresses in a message's text, made into links.
//!
//! Only `http://` and `https://` addresses become links (never `javascript:` or
//! anything else a browser would run), and the text around them stays text: a
//! message is never HTML. An address ends at white space; punctuation that ends a
//! sentence after it (`.`, `,`, `!`, a closing bracket it did not open…) is not part
//! of it. Pure, unit-tested natively.

/// A run of a message's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Plain text.
    Text(&'a str),
    /// An `http`/`https` address, to be shown as a link.
    Link(&'a str),
}

/// `text` cut into plain runs and addresses, in order; together they are `text`.
pub fn pieces(text: &str) -> Vec<Piece<'_>> {
    let mut pieces = Vec::new();
    let mut plain_from = 0;
    let mut at = 0;
    while let Some(found) = next_scheme(&text[at..]) {
        let start = at + found;
        let end = start + link_length(&text[start..]);
        // "https://" alone is not an address.
        if end - start <= scheme_length(&text[start..]) {
            at = end.max(start + 1);
            continue;
        }
        if plain_from < start {
            pieces.push(Piece::Text(&text[plain_from..start]));
        }
        pieces.push(Piece::Link(&text[start..end]));
        plain_from = end;
        at = end;
    }
    if plain_from < text.len() {
        pieces.push(Piece::Text(&text[plain_from..]));
    }
    pieces
}

const SCHEMES: [&str; 2] = ["https://", "http://"];

/// Where the next address starts: a scheme (any case) at the start of a word.
fn next_scheme(text: &str) -> Option<usize> {
    let mut previous: Option<char> = None;
    for (at, c) in text.char_indices() {
        let at_word_start = previous.is_none_or(|before| !before.is_alphanumeric());
        if at_word_start && matches!(c, 'h' | 'H') && scheme_length(&text[at..]) > 0 {
            return Some(at);
        }
        previous = Some(c);
    }
    None
}

fn scheme_length(text: &str) -> usize {
    SCHEMES
        .iter()
        .find(|scheme| {
            text.get(..scheme.len())
                .is_some_and(|start| start.eq_ignore_ascii_case(scheme))
        })
        .map_or(0, |scheme| scheme.len())
}

/// How long the address at the start of `text` is.
fn link_length(text: &str) -> usize {
    let mut end = text.find(char::is_whitespace).unwrap_or(text.len());
    // Trailing punctuation belongs to the sentence, and a closing bracket to the
    // sentence too unless the address opened one.
    while let Some(last) = text[..end].chars().next_back() {
        let belongs = match last {
            '.' | ',' | ':' | ';' | '!' | '?' | '\'' | '"' | '<' | '>' => false,
            ')' => text[..end].matches('(').count() >= text[..end].matches(')').count(),
            ']' => text[..end].matches('[').count() >= text[..end].matches(']').count(),
            _ => true,
        };
        if belongs {
            break;
        }
        end -= last.len_utf8();
    }
    end
}

#[cfg(test)]
mod tests {
    use super::Piece::{Link, Text};
    use super::*;

    #[test]
    fn addresses_become_links_and_the_rest_stays_text() {
        assert_eq!(pieces("no links here"), [Text("no links here")]);
        assert_eq!(pieces(""), []);
        assert_eq!(
            pieces("see https://example.com/a?b=1#c now"),
            [
                Text("see "),
                Link("https://example.com/a?b=1#c"),
                Text(" now")
            ]
        );
        assert_eq!(
            pieces("http://a.test and HTTPS://B.TEST"),
            [Link("http://a.test"), Text(" and "), Link("HTTPS://B.TEST")]
        );
        assert_eq!(
            pieces("two\nhttps://x.test/1\nlines"),
            [Text("two\n"), Link("https://x.test/1"), Text("\nlines")]
        );
    }

    #[test]
    fn sentence_punctuation_after_an_address_is_not_part_of_it() {
        assert_eq!(
            pieces("Look: https://x.test/page."),
            [Text("Look: "), Link("https://x.test/page"), Text(".")]
        );
        assert_eq!(
            pieces("(see https://x.test/a)"),
            [Text("(see "), Link("https://x.test/a"), Text(")")]
        );
        assert_eq!(
            pieces("https://en.wikipedia.org/wiki/Rust_(language)!"),
            [
                Link("https://en.wikipedia.org/wiki/Rust_(language)"),
                Text("!")
            ]
        );
        assert_eq!(
            pieces("\"https://x.test\","),
            [Text("\""), Link("https://x.test"), Text("\",")]
        );
    }

    #[test]
    fn only_http_addresses_at_a_word_start_are_links() {
        assert_eq!(pieces("javascript:alert(1)"), [Text("javascript:alert(1)")]);
        assert_eq!(pieces("xhttps://x.test"), [Text("xhttps://x.test")]);
        assert_eq!(pieces("https:// alone"), [Text("https:// alone")]);
        assert_eq!(pieces("https://"), [Text("https://")]);
        assert_eq!(pieces("http is a word"), [Text("http is a word")]);
        assert_eq!(
            pieces("<a href=\"https://x.test\">"),
            [Text("<a href=\""), Link("https://x.test"), Text("\">")]
        );
        assert_eq!(
            pieces("é https://é.test é"),
            [Text("é "), Link("https://é.test"), Text(" é")]
        );
    }
}
