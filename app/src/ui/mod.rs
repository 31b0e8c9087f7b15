//! What the reader sees: one page per route (`pages`), the pieces they are made
//! of (`components`), the document's title ([`title`]), shared hooks (`hooks`: hydrated yet, focus next), and how views are erased
//! without pulling in async hydration (`eager`).

pub(crate) mod components;
pub(crate) mod eager;
pub(crate) mod hooks;
pub(crate) mod pages;
pub mod title;
