//! Presence as members see it: announcements of joins and leaves (one by one, or
//! gathered during a burst) and the member list a welcome carries, kept serialized.

pub(crate) mod announcements;
pub(crate) mod user_list;
