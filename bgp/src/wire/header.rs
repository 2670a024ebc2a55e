//! The 19-byte message header (RFC 4271 §4.1) and framing: splitting a byte stream into
//! messages without parsing their bodies.

use super::error::{code, header_sub, DecodeError};

pub const MARKER_LEN: usize = 16;
pub const HEADER_LEN: usize = 19;
/// RFC 4271 maximum message size.
pub const MAX_LEN: usize = 4096;
/// RFC 8654 maximum message size once extended messages are negotiated.
pub const MAX_EXTENDED_LEN: usize = 65535;

mod field {
    use std::ops::Range;
    pub const MARKER: Range<usize> = 0..16;
    pub const LENGTH: Range<usize> = 16..18;
    pub const TYPE: usize = 18;
}

/// Message types (RFC 4271 §4.1, RFC 2918).
pub mod msg_type {
    pub const OPEN: u8 = 1;
    pub const UPDATE: u8 = 2;
    pub const NOTIFICATION: u8 = 3;
    pub const KEEPALIVE: u8 = 4;
    pub const ROUTE_REFRESH: u8 = 5;
}

/// A checked header: the marker is all ones, the length within bounds, the type known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub length: usize,
    pub msg_type: u8,
}

/// Minimum length of each message type, header included (RFC 4271 §4, RFC 2918 §3).
fn min_len(msg_type: u8) -> usize {
    match msg_type {
        msg_type::OPEN => 29,
        msg_type::UPDATE => 23,
        msg_type::NOTIFICATION => 21,
        msg_type::ROUTE_REFRESH => 23,
        _ => HEADER_LEN,
    }
}

/// Check the header at the start of `buf` (at least `HEADER_LEN` bytes).
///
/// RFC 4271 §6.1: a marker that is not all ones is Connection Not Synchronized; a length
/// below 19, above the maximum, or wrong for the type is Bad Message Length with the
/// erroneous length field as data; an unknown type is Bad Message Type with the type as data.
pub fn parse_header(buf: &[u8], max_len: usize) -> Result<Header, DecodeError> {
    if buf.len() < HEADER_LEN {
        return Err(DecodeError::new(
            code::MESSAGE_HEADER,
            header_sub::BAD_MESSAGE_LENGTH,
            buf.len(),
            format!("header needs {HEADER_LEN} bytes, got {}", buf.len()),
        ));
    }
    if buf[field::MARKER].iter().any(|&b| b != 0xff) {
        return Err(DecodeError::new(
            code::MESSAGE_HEADER,
            header_sub::CONNECTION_NOT_SYNCHRONIZED,
            0,
            "marker is not all ones",
        ));
    }
    let len_bytes = [buf[field::LENGTH.start], buf[field::LENGTH.start + 1]];
    let length = usize::from(u16::from_be_bytes(len_bytes));
    let msg_type = buf[field::TYPE];
    let bad_len = |why: String| {
        DecodeError::new(
            code::MESSAGE_HEADER,
            header_sub::BAD_MESSAGE_LENGTH,
            field::LENGTH.start,
            why,
        )
        .with_data(len_bytes)
    };
    if !(msg_type::OPEN..=msg_type::ROUTE_REFRESH).contains(&msg_type) {
        return Err(DecodeError::new(
            code::MESSAGE_HEADER,
            header_sub::BAD_MESSAGE_TYPE,
            field::TYPE,
            format!("unknown message type {msg_type}"),
        )
        .with_data([msg_type]));
    }
    if length < HEADER_LEN || length > max_len {
        return Err(bad_len(format!(
            "length {length} outside {HEADER_LEN}..={max_len}"
        )));
    }
    if length < min_len(msg_type) {
        return Err(bad_len(format!(
            "length {length} below the minimum {} for message type {msg_type}",
            min_len(msg_type)
        )));
    }
    if msg_type == msg_type::KEEPALIVE && length != HEADER_LEN {
        return Err(bad_len(format!("KEEPALIVE of length {length}")));
    }
    Ok(Header { length, msg_type })
}

/// Framing: how many bytes the first message in `buf` occupies, `Ok(None)` if more bytes are
/// needed to know or to hold it all. A runtime reads until this returns `Some(n)`, hands
/// `&buf[..n]` to `Message::decode` and drops those bytes. The header is fully checked here,
/// so a stream that is out of sync fails at the first bad header rather than later.
pub fn frame_len(buf: &[u8], max_len: usize) -> Result<Option<usize>, DecodeError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let header = parse_header(buf, max_len)?;
    if buf.len() < header.length {
        return Ok(None);
    }
    Ok(Some(header.length))
}

/// Write a header with a zero length; `finish_len` fills the length once the body is written.
pub(crate) fn put_header(out: &mut bytes::BytesMut, msg_type: u8) -> usize {
    use bytes::BufMut;
    let start = out.len();
    out.put_slice(&[0xff; MARKER_LEN]);
    out.put_u16(0);
    out.put_u8(msg_type);
    start
}

/// Fill the length field of the message that starts at `start`, checking the maximum. On
/// error the partial message is removed from `out`.
pub(crate) fn finish_len(
    out: &mut bytes::BytesMut,
    start: usize,
    max_len: usize,
) -> Result<(), super::EncodeError> {
    let len = out.len() - start;
    if len > max_len {
        out.truncate(start);
        return Err(super::EncodeError::TooLong { len, max: max_len });
    }
    // len <= max_len <= 65535, so it fits in u16.
    let bytes = (len as u16).to_be_bytes();
    out[start + field::LENGTH.start] = bytes[0];
    out[start + field::LENGTH.start + 1] = bytes[1];
    Ok(())
}
