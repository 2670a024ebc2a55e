//! What a session negotiated, as far as the byte layout of its messages depends on it. The
//! same context type serves decoding (what the peer sends us) and encoding (what we send).

use super::Family;

/// Negotiated session parameters that change the wire format of messages in one direction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// 4-octet AS numbers in AS_PATH/AGGREGATOR (RFC 6793): both sides sent capability 65.
    pub four_octet_as: bool,
    /// Families whose NLRI carry ADD-PATH path identifiers in this direction (RFC 7911).
    pub add_path: Vec<Family>,
    /// RFC 8654 extended messages (maximum length 65535 instead of 4096).
    pub extended_message: bool,
}

impl Context {
    /// The context of a session where both sides speak 4-octet AS and nothing else was
    /// negotiated — what every modern peer ends up with.
    pub fn modern() -> Context {
        Context {
            four_octet_as: true,
            ..Context::default()
        }
    }

    /// Whether NLRI of `family` carry a 4-byte path identifier before each prefix.
    pub fn add_path(&self, family: Family) -> bool {
        self.add_path.contains(&family)
    }

    /// Largest message allowed on this session, header included.
    pub fn max_message_len(&self) -> usize {
        if self.extended_message {
            super::header::MAX_EXTENDED_LEN
        } else {
            super::header::MAX_LEN
        }
    }
}
