//! What the client knows, as plain data: no Leptos, no browser, so every rule is
//! unit-tested natively. The room layer feeds these from server frames and
//! publishes them through signals; the UI reads them.
//!
//! - [`timeline`]: what a member has seen of a room (messages in id order, each
//!   once; system events, gaps, the member list);
//! - [`outbox`]: messages typed and not yet acknowledged;
//! - [`grouping`]: day headings and author groups; [`links`]: addresses made links;
//! - [`typing`]: who else is typing; [`unread`]: what arrived while the tab was
//!   hidden; [`mentions`]: what counts as a mention;
//! - [`backoff`]: when to try a lost connection again.

pub mod backoff;
pub mod grouping;
pub mod links;
pub mod mentions;
pub mod outbox;
pub mod timeline;
pub mod typing;
pub mod unread;
