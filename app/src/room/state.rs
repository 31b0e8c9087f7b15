//! What the page shows of the connection: where it stands, why it stopped, why a
//! message was not sent.

use std::fmt;

use chorus_protocol::{CloseCode, FrameError};

use crate::socket::{Retry, SocketState, Stopped};

/// Where the connection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    /// Opening the socket and waiting for the server's `welcome`.
    Connecting,
    /// Welcomed: messages flow both ways.
    Open,
    /// Lost; the next attempt is on its way.
    Reconnecting(Retry),
    /// The browser reports no network; the next attempt waits for it.
    Offline,
    /// Will not reconnect by itself.
    Closed(ClosedReason),
}

/// Why the chat socket stopped for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClosedReason {
    /// No session in this browser: sign in first.
    SignedOut,
    /// The server refused the token (4001), or a fresh one could not be had.
    Unauthorized,
    /// The server refused the room name (4004).
    InvalidRoom,
    /// This session may not join this room, or is banned for now (4003).
    Forbidden,
    /// The application removed this user (4010), saying why.
    Removed {
        /// What the application said.
        reason: String,
    },
    /// Any other close the protocol says not to retry.
    Other {
        /// The close code.
        code: u16,
        /// The close reason the server gave.
        reason: String,
    },
}

impl fmt::Display for ClosedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClosedReason::SignedOut => f.write_str("not signed in"),
            ClosedReason::Unauthorized => f.write_str("your session is no longer valid"),
            ClosedReason::InvalidRoom => f.write_str("this room name is not allowed"),
            ClosedReason::Forbidden => f.write_str("you may not join this room"),
            ClosedReason::Removed { reason }
                if reason.is_empty() || reason == CloseCode::Removed.reason() =>
            {
                f.write_str("you were removed from the chat")
            }
            ClosedReason::Removed { reason } => {
                write!(f, "you were removed from the chat: {reason}")
            }
            ClosedReason::Other { code, reason } if reason.is_empty() => {
                write!(f, "closed by the server ({code})")
            }
            ClosedReason::Other { code, reason } => write!(f, "{reason} ({code})"),
        }
    }
}

impl From<SocketState> for ConnectionState {
    fn from(state: SocketState) -> Self {
        match state {
            SocketState::Connecting => ConnectionState::Connecting,
            SocketState::Open => ConnectionState::Open,
            SocketState::Reconnecting(retry) => ConnectionState::Reconnecting(retry),
            SocketState::Offline => ConnectionState::Offline,
        }
    }
}

impl From<Stopped> for ClosedReason {
    fn from(stopped: Stopped) -> Self {
        match stopped {
            Stopped::NoUrl => ClosedReason::SignedOut,
            Stopped::RenewalRefused => ClosedReason::Unauthorized,
            Stopped::Closed { code, reason } => match CloseCode::from_code(code) {
                Some(CloseCode::Unauthorized) => ClosedReason::Unauthorized,
                Some(CloseCode::InvalidRoom) => ClosedReason::InvalidRoom,
                Some(CloseCode::Forbidden) => ClosedReason::Forbidden,
                Some(CloseCode::Removed) => ClosedReason::Removed { reason },
                _ => ClosedReason::Other { code, reason },
            },
        }
    }
}

/// Why [`ChatSocket::send`](super::ChatSocket::send) did not send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Too many messages wait to be sent already; the text stays with the caller.
    OutboxFull,
    /// Blank or too long; the server would refuse it.
    Invalid(FrameError),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::OutboxFull => f.write_str(
                "Too many messages are waiting to be sent; wait for them or discard some.",
            ),
            SendError::Invalid(err) => f.write_str(&err.message),
        }
    }
}

impl std::error::Error for SendError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_becomes_the_reason_the_page_shows() {
        let closed = |code: u16, reason: &str| {
            ClosedReason::from(Stopped::Closed {
                code,
                reason: reason.into(),
            })
        };
        assert_eq!(closed(4001, "Unauthorized"), ClosedReason::Unauthorized);
        assert_eq!(closed(4004, "Invalid room name"), ClosedReason::InvalidRoom);
        assert_eq!(closed(4003, "Not allowed"), ClosedReason::Forbidden);
        assert_eq!(
            closed(4010, "spamming").to_string(),
            "you were removed from the chat: spamming"
        );
        assert_eq!(
            closed(4010, CloseCode::Removed.reason()).to_string(),
            "you were removed from the chat"
        );
        assert_eq!(
            closed(1000, "bye"),
            ClosedReason::Other {
                code: 1000,
                reason: "bye".into()
            }
        );
        assert_eq!(ClosedReason::from(Stopped::NoUrl), ClosedReason::SignedOut);
        assert_eq!(
            ClosedReason::from(Stopped::RenewalRefused),
            ClosedReason::Unauthorized
        );
    }
}
