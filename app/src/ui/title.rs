//! The document's title: `#room · Chorus` in a room, `Chorus` elsewhere.
//!
//! The server writes it into the page it renders (from the request's path, since
//! the `<head>` comes before the routes run), and each page sets it in the browser
//! as it shows. Plain strings and one effect, instead of `leptos_meta`'s `Title`,
//! whose machinery was about 11 KB of the client's WASM for one line of text.

use leptos::prelude::*;

/// The title of every page outside a room.
pub const SITE_TITLE: &str = "Chorus";

/// The title of a room's page.
pub fn room_title(room: &str) -> String {
    format!("#{room} · {SITE_TITLE}")
}

/// The title of the page at `path` (a request's path, perhaps with a query), as
/// the router will show it.
pub fn title_for_path(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    match path.strip_prefix("/room/") {
        Some(room) if !room.is_empty() && !room.contains('/') => room_title(room),
        _ => SITE_TITLE.to_owned(),
    }
}

/// Keeps the browser's title at `title` while the calling page is shown.
pub fn use_title(title: impl Fn() -> String + 'static) {
    Effect::new(move |_| document().set_title(&title()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_page_is_titled_by_its_room_and_every_other_page_by_the_site() {
        assert_eq!(title_for_path("/room/general"), "#general · Chorus");
        assert_eq!(title_for_path("/room/general?since=4"), "#general · Chorus");
        assert_eq!(title_for_path("/"), "Chorus");
        assert_eq!(title_for_path("/?room=general"), "Chorus");
        assert_eq!(title_for_path("/room/"), "Chorus");
        assert_eq!(title_for_path("/room/a/b"), "Chorus");
        assert_eq!(title_for_path("/no/such/page"), "Chorus");
        assert_eq!(room_title("x"), "#x · Chorus");
    }
}
