//! The codec's one error type: every decode failure that ends a session carries the
//! NOTIFICATION (code, subcode, data) that RFC 4271 §6 prescribes, the byte offset where the
//! problem was found, and a human-readable reason. nom's errors never leave `wire`.

use std::fmt;

/// NOTIFICATION error codes (RFC 4271 §4.5, RFC 4486, RFC 7313).
pub mod code {
    pub const MESSAGE_HEADER: u8 = 1;
    pub const OPEN_MESSAGE: u8 = 2;
    pub const UPDATE_MESSAGE: u8 = 3;
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    pub const FSM: u8 = 5;
    pub const CEASE: u8 = 6;
    pub const ROUTE_REFRESH: u8 = 7;
}

/// Message Header Error subcodes (RFC 4271 §6.1).
pub mod header_sub {
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    pub const BAD_MESSAGE_TYPE: u8 = 3;
}

/// OPEN Message Error subcodes (RFC 4271 §6.2, RFC 5492).
pub mod open_sub {
    pub const UNSUPPORTED_VERSION: u8 = 1;
    pub const BAD_PEER_AS: u8 = 2;
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
}

/// UPDATE Message Error subcodes (RFC 4271 §6.3).
pub mod update_sub {
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    pub const UNRECOGNIZED_WELL_KNOWN: u8 = 2;
    pub const MISSING_WELL_KNOWN: u8 = 3;
    pub const ATTRIBUTE_FLAGS: u8 = 4;
    pub const ATTRIBUTE_LENGTH: u8 = 5;
    pub const INVALID_ORIGIN: u8 = 6;
    pub const INVALID_NEXT_HOP: u8 = 8;
    pub const OPTIONAL_ATTRIBUTE: u8 = 9;
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    pub const MALFORMED_AS_PATH: u8 = 11;
}

/// FSM Error subcodes (RFC 6608).
pub mod fsm_sub {
    pub const UNSPECIFIED: u8 = 0;
    pub const UNEXPECTED_IN_OPENSENT: u8 = 1;
    pub const UNEXPECTED_IN_OPENCONFIRM: u8 = 2;
    pub const UNEXPECTED_IN_ESTABLISHED: u8 = 3;
}

/// Cease subcodes (RFC 4486, RFC 8538).
pub mod cease_sub {
    pub const MAX_PREFIXES: u8 = 1;
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    pub const PEER_DECONFIGURED: u8 = 3;
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    pub const CONNECTION_REJECTED: u8 = 5;
    pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
    pub const OUT_OF_RESOURCES: u8 = 8;
    pub const HARD_RESET: u8 = 9;
    pub const BFD_DOWN: u8 = 10;
}

/// ROUTE-REFRESH Message Error subcodes (RFC 7313 §5).
pub mod route_refresh_sub {
    pub const INVALID_MESSAGE_LENGTH: u8 = 1;
}

/// A decode failure that ends the session: send `code`/`subcode`/`data` as a NOTIFICATION.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub code: u8,
    pub subcode: u8,
    /// The NOTIFICATION data field, filled as RFC 4271 §6 (or the extending RFC) says.
    pub data: Vec<u8>,
    /// Byte offset into the message (from the first marker byte) where the error was found.
    pub offset: usize,
    /// What was wrong, for logs.
    pub reason: String,
}

impl DecodeError {
    pub fn new(code: u8, subcode: u8, offset: usize, reason: impl Into<String>) -> Self {
        DecodeError {
            code,
            subcode,
            data: Vec::new(),
            offset,
            reason: reason.into(),
        }
    }

    pub fn with_data(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.data = data.into();
        self
    }

    /// Shift the offset by `base`: a decoder of a message part reports offsets relative to the
    /// part; the caller that knows where the part starts makes them absolute.
    pub fn at(mut self, base: usize) -> Self {
        self.offset += base;
        self
    }

    /// The NOTIFICATION this error asks for.
    pub fn notification(&self) -> super::Notification {
        super::Notification {
            code: self.code,
            subcode: self.subcode,
            data: self.data.clone().into(),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (NOTIFICATION {}/{}, at byte {})",
            self.reason, self.code, self.subcode, self.offset
        )
    }
}

impl std::error::Error for DecodeError {}

/// An encode failure: the message cannot be put on the wire under the given context (for
/// example it exceeds the negotiated maximum message size). Nothing is written on error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("message of {len} bytes exceeds the maximum of {max}")]
    TooLong { len: usize, max: usize },
    #[error("{what} of {len} bytes does not fit its {bits}-bit length field")]
    FieldTooLong {
        what: &'static str,
        len: usize,
        bits: u8,
    },
}
