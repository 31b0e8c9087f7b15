//! One component per route.

mod home;
mod room;

pub use home::HomePage;
pub use room::RoomPage;
