//! UPDATE (RFC 4271 §4.3). Placeholder until the UPDATE codec lands: keeps the body bytes.

use bytes::{BufMut, Bytes, BytesMut};

use super::{Context, DecodeError, EncodeError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub raw: Bytes,
}

impl Update {
    pub(crate) fn decode_body(body: &[u8], _cx: &Context) -> Result<Update, DecodeError> {
        Ok(Update {
            raw: Bytes::copy_from_slice(body),
        })
    }

    pub(crate) fn encode_body(&self, _cx: &Context, out: &mut BytesMut) -> Result<(), EncodeError> {
        out.put_slice(&self.raw);
        Ok(())
    }
}
