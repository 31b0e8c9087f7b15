//! WebSocket close codes and what a client should do after each.

/// How a client should react to a close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconnect {
    /// Do not reconnect: the same request would fail again.
    Never,
    /// Reconnect (with backoff), passing `since` to recover missed messages.
    WithBackoff,
    /// Fetch a fresh token first, then reconnect.
    WithFreshToken,
}

/// WebSocket close codes the server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum CloseCode {
    /// The client left, or the server closed on purpose.
    Normal = 1000,
    /// The server is shutting down.
    GoingAway = 1001,
    /// Pings (or pongs) faster than any keepalive needs: a flood.
    PolicyViolation = 1008,
    /// A frame over `--max-message-bytes`.
    TooBig = 1009,
    /// As many sockets as the server allows are open.
    ServerFull = 1013,
    /// A token missing, forged or malformed.
    Unauthorized = 4001,
    /// The token expired (at connect, or while connected).
    TokenExpired = 4002,
    /// The token may not join this room (its `rooms` claim, `--guest-rooms`), or the
    /// user is banned for now.
    Forbidden = 4003,
    /// Not a valid room name.
    InvalidRoom = 4004,
    /// The member's queue filled up: it could not keep up with the room.
    TooSlow = 4008,
    /// Silent past the heartbeat interval and timeout.
    HeartbeatTimeout = 4009,
    /// Removed by the application's backend (server API `disconnect`).
    Removed = 4010,
    /// More open sockets for one user than the server allows.
    TooManyConnections = 4029,
}

impl CloseCode {
    /// Every code the server sends.
    pub const ALL: [CloseCode; 13] = [
        CloseCode::Normal,
        CloseCode::GoingAway,
        CloseCode::PolicyViolation,
        CloseCode::TooBig,
        CloseCode::ServerFull,
        CloseCode::Unauthorized,
        CloseCode::TokenExpired,
        CloseCode::Forbidden,
        CloseCode::InvalidRoom,
        CloseCode::TooSlow,
        CloseCode::HeartbeatTimeout,
        CloseCode::Removed,
        CloseCode::TooManyConnections,
    ];

    /// The code's number on the wire.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// The code with this number, if the server sends it.
    pub fn from_code(code: u16) -> Option<CloseCode> {
        CloseCode::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The close reason the server sends with this code.
    pub fn reason(self) -> &'static str {
        match self {
            CloseCode::Normal => "Normal closure",
            CloseCode::GoingAway => "Server shutting down",
            CloseCode::PolicyViolation => "Too many pings",
            CloseCode::TooBig => "Frame too big",
            CloseCode::ServerFull => "Server full, try again later",
            CloseCode::Unauthorized => "Unauthorized",
            CloseCode::TokenExpired => "Token expired",
            CloseCode::Forbidden => "Not allowed in this room",
            CloseCode::Removed => "Removed by the server",
            CloseCode::InvalidRoom => "Invalid room name",
            CloseCode::TooSlow => "Too slow to keep up",
            CloseCode::HeartbeatTimeout => "Heartbeat timeout",
            CloseCode::TooManyConnections => "Too many connections for this user",
        }
    }

    /// What a client should do after this close.
    pub fn reconnect(self) -> Reconnect {
        match self {
            // Retrying these would fail the same way, or undo a deliberate close.
            CloseCode::Normal
            | CloseCode::Unauthorized
            | CloseCode::InvalidRoom
            | CloseCode::Forbidden
            | CloseCode::Removed
            | CloseCode::PolicyViolation => Reconnect::Never,
            CloseCode::TokenExpired => Reconnect::WithFreshToken,
            // 1009 only drops the oversized frame; the room itself is still usable.
            CloseCode::GoingAway
            | CloseCode::TooBig
            | CloseCode::ServerFull
            | CloseCode::TooSlow
            | CloseCode::HeartbeatTimeout
            // Other sockets of the user may close meanwhile.
            | CloseCode::TooManyConnections => Reconnect::WithBackoff,
        }
    }

    /// Whether a client should connect again at all.
    pub fn should_reconnect(self) -> bool {
        self.reconnect() != Reconnect::Never
    }
}

/// Policy for any close code a client observes, including ones the server never
/// sends itself (1006 for a dropped connection, 1011 for a server error, ...).
pub fn reconnect_for_code(code: u16) -> Reconnect {
    match CloseCode::from_code(code) {
        Some(known) => known.reconnect(),
        None => Reconnect::WithBackoff,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_and_reconnect_policy() {
        let expected = [
            (1000, Reconnect::Never),
            (1001, Reconnect::WithBackoff),
            (1008, Reconnect::Never),
            (1009, Reconnect::WithBackoff),
            (1013, Reconnect::WithBackoff),
            (4001, Reconnect::Never),
            (4002, Reconnect::WithFreshToken),
            (4003, Reconnect::Never),
            (4004, Reconnect::Never),
            (4008, Reconnect::WithBackoff),
            (4009, Reconnect::WithBackoff),
            (4010, Reconnect::Never),
            (4029, Reconnect::WithBackoff),
        ];
        assert_eq!(
            expected.len(),
            CloseCode::ALL.len(),
            "every code has a policy here"
        );
        for (code, policy) in expected {
            let close = CloseCode::from_code(code).unwrap();
            assert_eq!(close.code(), code);
            assert_eq!(close.reconnect(), policy, "close code {code}");
            assert_eq!(close.should_reconnect(), policy != Reconnect::Never);
        }
        assert_eq!(reconnect_for_code(1006), Reconnect::WithBackoff);
        assert_eq!(CloseCode::from_code(4005), None);
    }
}
