//! Fan-out: a broadcast's bytes, from the room to every member's bounded queue.
//!
//! - `seats.rs`: a room's members and the one loop that pushes a frame to each;
//! - `queue.rs`: a member's queue, bounded in bytes (full: the member is evicted);
//! - `pacing.rs`: when a busy room gathers its frames into batches;
//! - `framed.rs`: a batch framed once as WebSocket frames every member's socket
//!   takes as it is.

pub(crate) mod framed;
pub(crate) mod pacing;
pub(crate) mod queue;
pub(crate) mod seats;

use tungstenite::Utf8Bytes;

/// Bytes of one serialized server frame, shared by every queue it is pushed into.
pub type FrameBytes = Utf8Bytes;
