//! Pieces of the room and home pages, each taking signals as props and owning no
//! connection: `badge` (where the connection stands), `messages` (the timeline,
//! auto-scrolling unless the reader scrolled up), `members`, `outbox` (unsent messages, with Retry and Discard), and `rooms` (the active
//! rooms list and the join-by-name form), and `storage_note` (a session that will not
//! survive a reload).

mod badge;
mod members;
mod messages;
mod outbox;
mod rooms;
mod storage_note;

pub use badge::ConnectionBadge;
pub use members::MemberList;
pub use messages::MessageList;
pub use outbox::OutboxList;
pub use rooms::{RoomPicker, capitalize, room_path};
pub use storage_note::StorageNote;
