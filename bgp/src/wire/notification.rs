//! NOTIFICATION (RFC 4271 §4.5) with the RFC 9003 shutdown communication carried by Cease /
//! Administrative Shutdown and Administrative Reset.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::{cease_sub, code, header_sub, DecodeError};

/// A NOTIFICATION: error code, subcode and data, kept byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Bytes,
}

/// RFC 9003 §2: the shutdown communication is at most 255 octets of UTF-8.
pub const MAX_SHUTDOWN_COMMUNICATION: usize = 255;

impl Notification {
    pub fn new(code: u8, subcode: u8, data: impl Into<Bytes>) -> Notification {
        Notification {
            code,
            subcode,
            data: data.into(),
        }
    }

    /// Cease with a shutdown communication (RFC 9003): `subcode` is Administrative Shutdown or
    /// Administrative Reset. A message longer than 255 bytes is cut at a UTF-8 boundary.
    pub fn cease_with_message(subcode: u8, message: &str) -> Notification {
        let mut end = message.len().min(MAX_SHUTDOWN_COMMUNICATION);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let mut data = Vec::with_capacity(end + 1);
        data.push(end as u8);
        data.extend_from_slice(&message.as_bytes()[..end]);
        Notification::new(code::CEASE, subcode, data)
    }

    /// The RFC 9003 shutdown communication, if this is a Cease / Administrative Shutdown or
    /// Reset whose data is a well-formed one. RFC 9003 §3: a malformed one is not an error;
    /// it is simply not shown as text (the caller may log the data as hex).
    pub fn shutdown_communication(&self) -> Option<&str> {
        if self.code != code::CEASE
            || !matches!(
                self.subcode,
                cease_sub::ADMINISTRATIVE_SHUTDOWN | cease_sub::ADMINISTRATIVE_RESET
            )
        {
            return None;
        }
        let (&len, rest) = self.data.split_first()?;
        let text = rest.get(..usize::from(len))?;
        std::str::from_utf8(text).ok()
    }

    /// A short English name for the code/subcode pair, for logs and the CLI.
    pub fn describe(&self) -> String {
        let code_name = match self.code {
            code::MESSAGE_HEADER => "Message Header Error",
            code::OPEN_MESSAGE => "OPEN Message Error",
            code::UPDATE_MESSAGE => "UPDATE Message Error",
            code::HOLD_TIMER_EXPIRED => "Hold Timer Expired",
            code::FSM => "Finite State Machine Error",
            code::CEASE => "Cease",
            code::ROUTE_REFRESH => "ROUTE-REFRESH Message Error",
            _ => "Unknown error code",
        };
        let sub_name = subcode_name(self.code, self.subcode);
        let mut s = format!("{code_name} ({}/{})", self.code, self.subcode);
        if let Some(n) = sub_name {
            s = format!("{code_name} / {n} ({}/{})", self.code, self.subcode);
        }
        if let Some(msg) = self.shutdown_communication() {
            s.push_str(&format!(": \"{msg}\""));
        }
        s
    }

    pub(crate) fn decode_body(body: &[u8]) -> Result<Notification, DecodeError> {
        match body {
            [code, subcode, data @ ..] => Ok(Notification {
                code: *code,
                subcode: *subcode,
                data: Bytes::copy_from_slice(data),
            }),
            _ => Err(DecodeError::new(
                code::MESSAGE_HEADER,
                header_sub::BAD_MESSAGE_LENGTH,
                0,
                "NOTIFICATION shorter than code and subcode",
            )),
        }
    }

    pub(crate) fn encode_body(&self, out: &mut BytesMut) {
        out.put_u8(self.code);
        out.put_u8(self.subcode);
        out.put_slice(&self.data);
    }
}

fn subcode_name(code: u8, sub: u8) -> Option<&'static str> {
    use super::error::{fsm_sub, open_sub, update_sub};
    Some(match (code, sub) {
        (code::MESSAGE_HEADER, header_sub::CONNECTION_NOT_SYNCHRONIZED) => {
            "Connection Not Synchronized"
        }
        (code::MESSAGE_HEADER, header_sub::BAD_MESSAGE_LENGTH) => "Bad Message Length",
        (code::MESSAGE_HEADER, header_sub::BAD_MESSAGE_TYPE) => "Bad Message Type",
        (code::OPEN_MESSAGE, open_sub::UNSUPPORTED_VERSION) => "Unsupported Version Number",
        (code::OPEN_MESSAGE, open_sub::BAD_PEER_AS) => "Bad Peer AS",
        (code::OPEN_MESSAGE, open_sub::BAD_BGP_IDENTIFIER) => "Bad BGP Identifier",
        (code::OPEN_MESSAGE, open_sub::UNSUPPORTED_OPTIONAL_PARAMETER) => {
            "Unsupported Optional Parameter"
        }
        (code::OPEN_MESSAGE, open_sub::UNACCEPTABLE_HOLD_TIME) => "Unacceptable Hold Time",
        (code::OPEN_MESSAGE, open_sub::UNSUPPORTED_CAPABILITY) => "Unsupported Capability",
        (code::UPDATE_MESSAGE, update_sub::MALFORMED_ATTRIBUTE_LIST) => "Malformed Attribute List",
        (code::UPDATE_MESSAGE, update_sub::UNRECOGNIZED_WELL_KNOWN) => {
            "Unrecognized Well-known Attribute"
        }
        (code::UPDATE_MESSAGE, update_sub::MISSING_WELL_KNOWN) => "Missing Well-known Attribute",
        (code::UPDATE_MESSAGE, update_sub::ATTRIBUTE_FLAGS) => "Attribute Flags Error",
        (code::UPDATE_MESSAGE, update_sub::ATTRIBUTE_LENGTH) => "Attribute Length Error",
        (code::UPDATE_MESSAGE, update_sub::INVALID_ORIGIN) => "Invalid ORIGIN Attribute",
        (code::UPDATE_MESSAGE, update_sub::INVALID_NEXT_HOP) => "Invalid NEXT_HOP Attribute",
        (code::UPDATE_MESSAGE, update_sub::OPTIONAL_ATTRIBUTE) => "Optional Attribute Error",
        (code::UPDATE_MESSAGE, update_sub::INVALID_NETWORK_FIELD) => "Invalid Network Field",
        (code::UPDATE_MESSAGE, update_sub::MALFORMED_AS_PATH) => "Malformed AS_PATH",
        (code::FSM, fsm_sub::UNSPECIFIED) => "Unspecified Error",
        (code::FSM, fsm_sub::UNEXPECTED_IN_OPENSENT) => "Unexpected Message in OpenSent",
        (code::FSM, fsm_sub::UNEXPECTED_IN_OPENCONFIRM) => "Unexpected Message in OpenConfirm",
        (code::FSM, fsm_sub::UNEXPECTED_IN_ESTABLISHED) => "Unexpected Message in Established",
        (code::CEASE, cease_sub::MAX_PREFIXES) => "Maximum Number of Prefixes Reached",
        (code::CEASE, cease_sub::ADMINISTRATIVE_SHUTDOWN) => "Administrative Shutdown",
        (code::CEASE, cease_sub::PEER_DECONFIGURED) => "Peer De-configured",
        (code::CEASE, cease_sub::ADMINISTRATIVE_RESET) => "Administrative Reset",
        (code::CEASE, cease_sub::CONNECTION_REJECTED) => "Connection Rejected",
        (code::CEASE, cease_sub::OTHER_CONFIGURATION_CHANGE) => "Other Configuration Change",
        (code::CEASE, cease_sub::CONNECTION_COLLISION_RESOLUTION) => {
            "Connection Collision Resolution"
        }
        (code::CEASE, cease_sub::OUT_OF_RESOURCES) => "Out of Resources",
        (code::CEASE, cease_sub::HARD_RESET) => "Hard Reset",
        (code::CEASE, cease_sub::BFD_DOWN) => "BFD Down",
        (code::ROUTE_REFRESH, 1) => "Invalid Message Length",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_communication_round_trips_and_is_cut_at_255_bytes() {
        let n = Notification::cease_with_message(cease_sub::ADMINISTRATIVE_SHUTDOWN, "maint");
        assert_eq!(&n.data[..], b"\x05maint");
        assert_eq!(n.shutdown_communication(), Some("maint"));
        let long = "é".repeat(200); // 400 bytes, 2 per char
        let n = Notification::cease_with_message(cease_sub::ADMINISTRATIVE_RESET, &long);
        assert_eq!(n.data[0], 254, "cut at a char boundary below 255");
        assert_eq!(n.shutdown_communication().map(str::len), Some(254));
    }

    #[test]
    fn malformed_shutdown_communication_is_not_text() {
        let n = Notification::new(
            code::CEASE,
            cease_sub::ADMINISTRATIVE_SHUTDOWN,
            &b"\x09ab"[..],
        );
        assert_eq!(n.shutdown_communication(), None);
        let n = Notification::new(
            code::CEASE,
            cease_sub::ADMINISTRATIVE_SHUTDOWN,
            &b"\x02\xff\xfe"[..],
        );
        assert_eq!(n.shutdown_communication(), None);
        let n = Notification::new(code::CEASE, cease_sub::PEER_DECONFIGURED, &b"\x02ok"[..]);
        assert_eq!(
            n.shutdown_communication(),
            None,
            "only subcodes 2 and 4 carry text"
        );
    }
}
