//! Community values: COMMUNITIES (RFC 1997), EXTENDED COMMUNITIES (RFC 4360, kept as their 8
//! raw bytes with typed views of route-target / route-origin), LARGE_COMMUNITY (RFC 8092).

use std::fmt;
use std::net::Ipv4Addr;

/// An RFC 1997 community: two 16-bit halves, conventionally ASN:value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Community(pub u32);

impl Community {
    pub const NO_EXPORT: Community = Community(0xFFFF_FF01);
    pub const NO_ADVERTISE: Community = Community(0xFFFF_FF02);
    pub const NO_EXPORT_SUBCONFED: Community = Community(0xFFFF_FF03);
    /// RFC 8326.
    pub const GRACEFUL_SHUTDOWN: Community = Community(0xFFFF_0000);
    /// RFC 7999.
    pub const BLACKHOLE: Community = Community(0xFFFF_029A);

    pub const fn new(asn: u16, value: u16) -> Community {
        Community(((asn as u32) << 16) | value as u32)
    }
    pub fn asn(self) -> u16 {
        (self.0 >> 16) as u16
    }
    pub fn value(self) -> u16 {
        self.0 as u16
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.asn(), self.value())
    }
}

/// An RFC 8092 large community: Global Administrator : Local Data 1 : Local Data 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity {
    pub global: u32,
    pub local1: u32,
    pub local2: u32,
}

impl LargeCommunity {
    pub const fn new(global: u32, local1: u32, local2: u32) -> LargeCommunity {
        LargeCommunity {
            global,
            local1,
            local2,
        }
    }
}

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.global, self.local1, self.local2)
    }
}

/// An RFC 4360 extended community, kept as its 8 bytes (type, subtype, value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExtCommunity(pub [u8; 8]);

/// The Global/Local Administrator of a route-target or route-origin extended community.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtAdmin {
    /// Type 0x00: two-octet AS specific (RFC 4360 §3.1).
    As2 { asn: u16, local: u32 },
    /// Type 0x01: IPv4 address specific (RFC 4360 §3.2).
    Ipv4 { addr: Ipv4Addr, local: u16 },
    /// Type 0x02: four-octet AS specific (RFC 5668).
    As4 { asn: u32, local: u16 },
}

impl ExtCommunity {
    pub const SUBTYPE_ROUTE_TARGET: u8 = 0x02;
    pub const SUBTYPE_ROUTE_ORIGIN: u8 = 0x03;

    /// The type octet (high bit 0x80 = IANA authority, 0x40 = non-transitive).
    pub fn type_high(&self) -> u8 {
        self.0[0]
    }
    pub fn subtype(&self) -> u8 {
        self.0[1]
    }
    /// RFC 4360 §2: the T bit (0x40) clear means transitive across ASes.
    pub fn is_transitive(&self) -> bool {
        self.0[0] & 0x40 == 0
    }

    /// Build a route-target (subtype 2) or route-origin (subtype 3) community.
    pub fn from_admin(subtype: u8, admin: ExtAdmin) -> ExtCommunity {
        let mut b = [0u8; 8];
        b[1] = subtype;
        match admin {
            ExtAdmin::As2 { asn, local } => {
                b[0] = 0x00;
                b[2..4].copy_from_slice(&asn.to_be_bytes());
                b[4..8].copy_from_slice(&local.to_be_bytes());
            }
            ExtAdmin::Ipv4 { addr, local } => {
                b[0] = 0x01;
                b[2..6].copy_from_slice(&addr.octets());
                b[6..8].copy_from_slice(&local.to_be_bytes());
            }
            ExtAdmin::As4 { asn, local } => {
                b[0] = 0x02;
                b[2..6].copy_from_slice(&asn.to_be_bytes());
                b[6..8].copy_from_slice(&local.to_be_bytes());
            }
        }
        ExtCommunity(b)
    }

    fn admin(&self, subtype: u8) -> Option<ExtAdmin> {
        let b = &self.0;
        if b[1] != subtype {
            return None;
        }
        Some(match b[0] {
            0x00 => ExtAdmin::As2 {
                asn: u16::from_be_bytes([b[2], b[3]]),
                local: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            },
            0x01 => ExtAdmin::Ipv4 {
                addr: Ipv4Addr::new(b[2], b[3], b[4], b[5]),
                local: u16::from_be_bytes([b[6], b[7]]),
            },
            0x02 => ExtAdmin::As4 {
                asn: u32::from_be_bytes([b[2], b[3], b[4], b[5]]),
                local: u16::from_be_bytes([b[6], b[7]]),
            },
            _ => return None,
        })
    }

    /// The route target, if this is one (transitive types 0x00/0x01/0x02, subtype 0x02).
    pub fn route_target(&self) -> Option<ExtAdmin> {
        self.admin(Self::SUBTYPE_ROUTE_TARGET)
    }

    /// The route origin (site of origin), if this is one (subtype 0x03).
    pub fn route_origin(&self) -> Option<ExtAdmin> {
        self.admin(Self::SUBTYPE_ROUTE_ORIGIN)
    }
}
