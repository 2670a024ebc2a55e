//! The BGP-4 wire codec: every message of RFC 4271 and its extensions, decoded from bytes with
//! nom (kept inside this module) and encoded with `bytes::BufMut`.
//!
//! `frame_len` splits a byte stream into messages; `Message::decode` turns one message into a
//! value, or into the `DecodeError` that says which NOTIFICATION to send. UPDATE attribute
//! errors that RFC 7606 lets a session survive are not errors here: they are reported inside
//! the decoded `Update` together with the routes that could still be recovered.

mod capability;
mod context;
pub mod error;
mod family;
pub mod header;
mod notification;
mod parse;
mod route_refresh;

pub use context::Context;
pub use error::{DecodeError, EncodeError};
pub use family::{Afi, Family, Safi};
pub use header::{frame_len, Header, HEADER_LEN, MAX_EXTENDED_LEN, MAX_LEN};
pub use notification::Notification;
pub use route_refresh::{RefreshSubtype, RouteRefresh};

use bytes::BytesMut;
use error::{code, header_sub};
use header::msg_type;

/// One BGP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Open(Open),
    Update(Update),
    Notification(Notification),
    Keepalive,
    RouteRefresh(RouteRefresh),
}

impl Message {
    /// Decode exactly one whole message (header included), as `frame_len` delimited it.
    pub fn decode(buf: &[u8], cx: &Context) -> Result<Message, DecodeError> {
        let header = header::parse_header(buf, cx.max_message_len())?;
        if buf.len() != header.length {
            return Err(DecodeError::new(
                code::MESSAGE_HEADER,
                header_sub::BAD_MESSAGE_LENGTH,
                16,
                format!(
                    "length field says {} bytes but the message has {}",
                    header.length,
                    buf.len()
                ),
            )
            .with_data(buf[16..18].to_vec()));
        }
        let body = &buf[HEADER_LEN..];
        let at = |e: DecodeError| e.at(HEADER_LEN);
        Ok(match header.msg_type {
            msg_type::OPEN => Message::Open(Open::decode_body(body).map_err(at)?),
            msg_type::UPDATE => Message::Update(Update::decode_body(body, cx).map_err(at)?),
            msg_type::NOTIFICATION => {
                Message::Notification(Notification::decode_body(body).map_err(at)?)
            }
            msg_type::KEEPALIVE => Message::Keepalive,
            // parse_header admits only types 1..=5.
            _ => Message::RouteRefresh(RouteRefresh::decode_body(body, buf).map_err(at)?),
        })
    }

    /// Append the encoded message to `out`. On error nothing is appended.
    pub fn encode(&self, cx: &Context, out: &mut BytesMut) -> Result<(), EncodeError> {
        let start = header::put_header(out, self.msg_type());
        let body = match self {
            Message::Open(m) => m.encode_body(out),
            Message::Update(m) => m.encode_body(cx, out),
            Message::Notification(m) => {
                m.encode_body(out);
                Ok(())
            }
            Message::Keepalive => Ok(()),
            Message::RouteRefresh(m) => {
                m.encode_body(out);
                Ok(())
            }
        };
        if let Err(e) = body {
            out.truncate(start);
            return Err(e);
        }
        // RFC 8654 §3: OPEN and KEEPALIVE never exceed 4096 bytes, even when extended
        // messages are negotiated (the OPEN is sent before they are).
        let max = match self {
            Message::Open(_) | Message::Keepalive => MAX_LEN,
            _ => cx.max_message_len(),
        };
        header::finish_len(out, start, max)
    }

    /// Convenience: encode into a fresh buffer.
    pub fn to_bytes(&self, cx: &Context) -> Result<BytesMut, EncodeError> {
        let mut out = BytesMut::new();
        self.encode(cx, &mut out)?;
        Ok(out)
    }

    pub fn msg_type(&self) -> u8 {
        match self {
            Message::Open(_) => msg_type::OPEN,
            Message::Update(_) => msg_type::UPDATE,
            Message::Notification(_) => msg_type::NOTIFICATION,
            Message::Keepalive => msg_type::KEEPALIVE,
            Message::RouteRefresh(_) => msg_type::ROUTE_REFRESH,
        }
    }
}

#[cfg(test)]
mod properties;
#[cfg(any(test, feature = "fuzzing"))]
pub mod selfcheck;

mod open;
mod update;

pub use open::*;
pub use update::*;

mod as4;
pub mod aspath;
pub mod attr;
pub mod community;
pub mod mp;
pub mod nlri;
pub mod treat;

pub use as4::As4Merge;
pub use aspath::{AsPath, Segment, SegmentType};
pub use attr::{attr_type, flag, Aggregator, Attr, AttrValue, Origin};
pub use community::{Community, ExtAdmin, ExtCommunity, LargeCommunity};
pub use mp::{MpNlri, MpReach, MpUnreach, NextHop};
pub use nlri::Nlri;
pub use treat::{Action, AttrError, Treatment};

#[cfg(any(test, feature = "arbitrary"))]
pub mod arbitrary;
