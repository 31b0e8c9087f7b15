//! Pieces of the room and home pages.

mod badge;
mod members;
mod messages;
mod rooms;

pub use badge::ConnectionBadge;
pub use members::MemberList;
pub use messages::MessageList;
pub use rooms::{RoomPicker, capitalize, room_path};
