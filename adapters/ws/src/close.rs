//! Why a connection closes: one code and reason per cause, in one place
//! (RFC 6455 codes; the reason is what a client shows or logs).

use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// The client said goodbye, or its connection dropped.
    Normal,
    /// The server is shutting down; reconnect elsewhere or later.
    ShuttingDown,
    /// The room was closed; do not reconnect to it.
    RoomClosed,
    /// The member's outbound queue overflowed.
    TooSlow,
    /// Two ping intervals without a pong.
    Unresponsive,
    Binary,
    TooBig,
    /// A message with a control character other than tab, CR and LF.
    ControlCharacter,
    InvalidUtf8,
    ProtocolError,
    RateLimited,
    /// A guest asked for a registered user's name (`PARLEY_RESERVE_USERNAMES`).
    ReservedName,
    /// The fan-out or the log is down; retry later.
    Unavailable,
}

impl Close {
    pub fn frame(self) -> CloseFrame {
        let (code, reason) = match self {
            Close::Normal => (CloseCode::Normal, ""),
            Close::ShuttingDown => (CloseCode::Away, "server shutting down"),
            Close::RoomClosed => (CloseCode::Normal, "the room was closed"),
            Close::TooSlow => (CloseCode::Policy, "too slow: outbound queue overflowed"),
            Close::Unresponsive => (CloseCode::Away, "no pong received"),
            Close::Binary => (CloseCode::Unsupported, "binary frames are not supported"),
            Close::TooBig => (CloseCode::Size, "message too big"),
            Close::ControlCharacter => (CloseCode::Invalid, "control characters are not allowed in messages"),
            Close::InvalidUtf8 => (CloseCode::Invalid, "invalid UTF-8"),
            Close::ProtocolError => (CloseCode::Protocol, "protocol error"),
            Close::RateLimited => (CloseCode::Policy, "rate limit exceeded"),
            Close::ReservedName => (CloseCode::Policy, "this name belongs to a registered user: sign in to use it"),
            Close::Unavailable => (CloseCode::Again, "service unavailable, try again later"),
        };
        CloseFrame { code, reason: reason.into() }
    }
}
