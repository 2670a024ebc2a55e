//! ROUTE-REFRESH (RFC 2918) with the RFC 7313 enhanced route refresh subtypes (BoRR/EoRR).

use bytes::{BufMut, BytesMut};

use super::error::{code, route_refresh_sub, DecodeError};
use super::{Afi, Family, Safi};

/// The "Reserved" octet of RFC 2918, which RFC 7313 §3.2 turned into a message subtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshSubtype {
    /// A request to re-send the Adj-RIB-Out (0).
    Normal,
    /// Beginning of Route Refresh (1).
    BoRR,
    /// End of Route Refresh (2).
    EoRR,
    /// Any other value; RFC 7313 §5 says to ignore such a message.
    Reserved(u8),
}

impl RefreshSubtype {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => RefreshSubtype::Normal,
            1 => RefreshSubtype::BoRR,
            2 => RefreshSubtype::EoRR,
            v => RefreshSubtype::Reserved(v),
        }
    }
    fn to_u8(self) -> u8 {
        match self {
            RefreshSubtype::Normal => 0,
            RefreshSubtype::BoRR => 1,
            RefreshSubtype::EoRR => 2,
            RefreshSubtype::Reserved(v) => v,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRefresh {
    pub family: Family,
    pub subtype: RefreshSubtype,
}

impl RouteRefresh {
    pub fn request(family: Family) -> RouteRefresh {
        RouteRefresh {
            family,
            subtype: RefreshSubtype::Normal,
        }
    }

    /// `body` is the message after the header. RFC 7313 §5: a length other than 23 is a
    /// ROUTE-REFRESH Message Error / Invalid Message Length with the whole message as data
    /// (`whole` is the message including the header).
    pub(crate) fn decode_body(body: &[u8], whole: &[u8]) -> Result<RouteRefresh, DecodeError> {
        match body {
            [a0, a1, subtype, safi] => Ok(RouteRefresh {
                family: Family {
                    afi: Afi(u16::from_be_bytes([*a0, *a1])),
                    safi: Safi(*safi),
                },
                subtype: RefreshSubtype::from_u8(*subtype),
            }),
            _ => Err(DecodeError::new(
                code::ROUTE_REFRESH,
                route_refresh_sub::INVALID_MESSAGE_LENGTH,
                16,
                format!("ROUTE-REFRESH body of {} bytes, expected 4", body.len()),
            )
            .with_data(whole.to_vec())),
        }
    }

    pub(crate) fn encode_body(&self, out: &mut BytesMut) {
        out.put_u16(self.family.afi.0);
        out.put_u8(self.subtype.to_u8());
        out.put_u8(self.family.safi.0);
    }
}
