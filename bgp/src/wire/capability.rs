//! Capabilities advertised in OPEN (RFC 5492) and their values. Unknown capabilities — and
//! known ones whose value does not parse — are kept byte for byte as `Unknown`, so an OPEN
//! re-encodes exactly as it arrived.

use bytes::{BufMut, Bytes, BytesMut};

use super::{Afi, EncodeError, Family, Safi};

/// Capability codes (IANA "Capability Codes").
pub mod cap_code {
    pub const MULTIPROTOCOL: u8 = 1;
    pub const ROUTE_REFRESH: u8 = 2;
    pub const EXTENDED_NEXT_HOP: u8 = 5;
    pub const EXTENDED_MESSAGE: u8 = 6;
    pub const GRACEFUL_RESTART: u8 = 64;
    pub const FOUR_OCTET_AS: u8 = 65;
    pub const ADD_PATH: u8 = 69;
    pub const ENHANCED_ROUTE_REFRESH: u8 = 70;
    pub const LONG_LIVED_GR: u8 = 71;
    pub const FQDN: u8 = 73;
}

/// ADD-PATH Send/Receive field (RFC 7911 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddPathMode(pub u8);

impl AddPathMode {
    pub const RECEIVE: AddPathMode = AddPathMode(1);
    pub const SEND: AddPathMode = AddPathMode(2);
    pub const BOTH: AddPathMode = AddPathMode(3);
    pub fn receive(self) -> bool {
        self.0 & 1 != 0
    }
    pub fn send(self) -> bool {
        self.0 & 2 != 0
    }
}

/// RFC 8950 extended next hop: NLRI of (afi, safi) may carry a next hop of `next_hop_afi`.
/// The SAFI is 16 bits in this capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtendedNextHop {
    pub afi: Afi,
    pub safi: u16,
    pub next_hop_afi: Afi,
}

/// One family in the graceful restart capability (RFC 4724 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrFamily {
    pub family: Family,
    /// Flags for Address Family; bit 0x80 is Forwarding State (F).
    pub flags: u8,
}

impl GrFamily {
    pub const FORWARDING: u8 = 0x80;
    pub fn forwarding(&self) -> bool {
        self.flags & Self::FORWARDING != 0
    }
}

/// Graceful restart capability (RFC 4724 §3, N bit from RFC 8538).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GracefulRestart {
    /// The four Restart Flags bits (high nibble of the first octet): 0x8 = Restart State (R),
    /// 0x4 = Notification (N, RFC 8538).
    pub flags: u8,
    /// Restart Time in seconds (12 bits).
    pub restart_time: u16,
    pub families: Vec<GrFamily>,
}

impl GracefulRestart {
    pub const RESTART_STATE: u8 = 0x8;
    pub const NOTIFICATION: u8 = 0x4;
    pub fn restart_state(&self) -> bool {
        self.flags & Self::RESTART_STATE != 0
    }
    pub fn notification(&self) -> bool {
        self.flags & Self::NOTIFICATION != 0
    }
}

/// One family in the long-lived graceful restart capability (RFC 9494 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LlgrFamily {
    pub family: Family,
    /// 0x80 = Forwarding State.
    pub flags: u8,
    /// Long-lived Stale Time in seconds (24 bits).
    pub stale_time: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    /// 1: Multiprotocol Extensions (RFC 4760).
    Multiprotocol(Family),
    /// 2: Route Refresh (RFC 2918).
    RouteRefresh,
    /// 5: Extended Next Hop Encoding (RFC 8950).
    ExtendedNextHop(Vec<ExtendedNextHop>),
    /// 6: Extended Message (RFC 8654).
    ExtendedMessage,
    /// 64: Graceful Restart (RFC 4724).
    GracefulRestart(GracefulRestart),
    /// 65: Support for 4-octet AS number (RFC 6793).
    FourOctetAs(u32),
    /// 69: ADD-PATH (RFC 7911).
    AddPath(Vec<(Family, AddPathMode)>),
    /// 70: Enhanced Route Refresh (RFC 7313).
    EnhancedRouteRefresh,
    /// 71: Long-Lived Graceful Restart (RFC 9494).
    LongLivedGr(Vec<LlgrFamily>),
    /// 73: FQDN (draft-walton-bgp-hostname-capability), sent by FRR.
    Fqdn { hostname: String, domain: String },
    /// Anything else, or a known capability whose value did not parse: kept as it came.
    Unknown { code: u8, value: Bytes },
}

impl Capability {
    pub fn code(&self) -> u8 {
        use cap_code::*;
        match self {
            Capability::Multiprotocol(_) => MULTIPROTOCOL,
            Capability::RouteRefresh => ROUTE_REFRESH,
            Capability::ExtendedNextHop(_) => EXTENDED_NEXT_HOP,
            Capability::ExtendedMessage => EXTENDED_MESSAGE,
            Capability::GracefulRestart(_) => GRACEFUL_RESTART,
            Capability::FourOctetAs(_) => FOUR_OCTET_AS,
            Capability::AddPath(_) => ADD_PATH,
            Capability::EnhancedRouteRefresh => ENHANCED_ROUTE_REFRESH,
            Capability::LongLivedGr(_) => LONG_LIVED_GR,
            Capability::Fqdn { .. } => FQDN,
            Capability::Unknown { code, .. } => *code,
        }
    }

    /// Decode one capability value. A value that does not fit its code's format is kept as
    /// `Unknown` rather than failing the OPEN: the FSM decides whether it can live without it.
    pub(crate) fn decode(code: u8, value: &[u8]) -> Capability {
        Self::decode_known(code, value).unwrap_or_else(|| Capability::Unknown {
            code,
            value: Bytes::copy_from_slice(value),
        })
    }

    fn decode_known(code: u8, v: &[u8]) -> Option<Capability> {
        use cap_code::*;
        let u16_at = |i: usize| Some(u16::from_be_bytes([*v.get(i)?, *v.get(i + 1)?]));
        Some(match code {
            MULTIPROTOCOL if v.len() == 4 && v[2] == 0 => {
                Capability::Multiprotocol(Family::new(u16_at(0)?, v[3]))
            }
            ROUTE_REFRESH if v.is_empty() => Capability::RouteRefresh,
            EXTENDED_NEXT_HOP if !v.is_empty() && v.len().is_multiple_of(6) => {
                Capability::ExtendedNextHop(
                    v.chunks_exact(6)
                        .map(|c| ExtendedNextHop {
                            afi: Afi(u16::from_be_bytes([c[0], c[1]])),
                            safi: u16::from_be_bytes([c[2], c[3]]),
                            next_hop_afi: Afi(u16::from_be_bytes([c[4], c[5]])),
                        })
                        .collect(),
                )
            }
            EXTENDED_MESSAGE if v.is_empty() => Capability::ExtendedMessage,
            GRACEFUL_RESTART if v.len() >= 2 && (v.len() - 2).is_multiple_of(4) => {
                let head = u16_at(0)?;
                Capability::GracefulRestart(GracefulRestart {
                    flags: (head >> 12) as u8,
                    restart_time: head & 0x0fff,
                    families: v[2..]
                        .chunks_exact(4)
                        .map(|c| GrFamily {
                            family: Family::new(u16::from_be_bytes([c[0], c[1]]), c[2]),
                            flags: c[3],
                        })
                        .collect(),
                })
            }
            FOUR_OCTET_AS if v.len() == 4 => {
                Capability::FourOctetAs(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
            }
            ADD_PATH if !v.is_empty() && v.len().is_multiple_of(4) => Capability::AddPath(
                v.chunks_exact(4)
                    .map(|c| {
                        (
                            Family::new(u16::from_be_bytes([c[0], c[1]]), c[2]),
                            AddPathMode(c[3]),
                        )
                    })
                    .collect(),
            ),
            ENHANCED_ROUTE_REFRESH if v.is_empty() => Capability::EnhancedRouteRefresh,
            LONG_LIVED_GR if v.len().is_multiple_of(7) => Capability::LongLivedGr(
                v.chunks_exact(7)
                    .map(|c| LlgrFamily {
                        family: Family::new(u16::from_be_bytes([c[0], c[1]]), c[2]),
                        flags: c[3],
                        stale_time: u32::from_be_bytes([0, c[4], c[5], c[6]]),
                    })
                    .collect(),
            ),
            FQDN => {
                let (&hlen, rest) = v.split_first()?;
                let host = rest.get(..usize::from(hlen))?;
                let rest = &rest[usize::from(hlen)..];
                let (&dlen, rest) = rest.split_first()?;
                if rest.len() != usize::from(dlen) {
                    return None;
                }
                Capability::Fqdn {
                    hostname: String::from_utf8(host.to_vec()).ok()?,
                    domain: String::from_utf8(rest.to_vec()).ok()?,
                }
            }
            _ => return None,
        })
    }

    /// Encoded value length (without code and length octets).
    pub(crate) fn value_len(&self) -> usize {
        match self {
            Capability::Multiprotocol(_) | Capability::FourOctetAs(_) => 4,
            Capability::RouteRefresh
            | Capability::ExtendedMessage
            | Capability::EnhancedRouteRefresh => 0,
            Capability::ExtendedNextHop(v) => 6 * v.len(),
            Capability::GracefulRestart(gr) => 2 + 4 * gr.families.len(),
            Capability::AddPath(v) => 4 * v.len(),
            Capability::LongLivedGr(v) => 7 * v.len(),
            Capability::Fqdn { hostname, domain } => 2 + hostname.len() + domain.len(),
            Capability::Unknown { value, .. } => value.len(),
        }
    }

    /// Append code, length and value.
    pub(crate) fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        let len = self.value_len();
        if len > 255 {
            return Err(EncodeError::FieldTooLong {
                what: "capability value",
                len,
                bits: 8,
            });
        }
        if let Capability::Fqdn { hostname, domain } = self {
            if hostname.len() > 255 || domain.len() > 255 {
                return Err(EncodeError::FieldTooLong {
                    what: "FQDN capability name",
                    len: hostname.len().max(domain.len()),
                    bits: 8,
                });
            }
        }
        out.put_u8(self.code());
        out.put_u8(len as u8);
        match self {
            Capability::Multiprotocol(f) => {
                out.put_u16(f.afi.0);
                out.put_u8(0);
                out.put_u8(f.safi.0);
            }
            Capability::RouteRefresh
            | Capability::ExtendedMessage
            | Capability::EnhancedRouteRefresh => {}
            Capability::ExtendedNextHop(v) => {
                for e in v {
                    out.put_u16(e.afi.0);
                    out.put_u16(e.safi);
                    out.put_u16(e.next_hop_afi.0);
                }
            }
            Capability::GracefulRestart(gr) => {
                out.put_u16((u16::from(gr.flags & 0xf) << 12) | (gr.restart_time & 0x0fff));
                for f in &gr.families {
                    out.put_u16(f.family.afi.0);
                    out.put_u8(f.family.safi.0);
                    out.put_u8(f.flags);
                }
            }
            Capability::FourOctetAs(asn) => out.put_u32(*asn),
            Capability::AddPath(v) => {
                for (f, mode) in v {
                    out.put_u16(f.afi.0);
                    out.put_u8(f.safi.0);
                    out.put_u8(mode.0);
                }
            }
            Capability::LongLivedGr(v) => {
                for f in v {
                    out.put_u16(f.family.afi.0);
                    out.put_u8(f.family.safi.0);
                    out.put_u8(f.flags);
                    out.put_slice(&(f.stale_time & 0x00ff_ffff).to_be_bytes()[1..]);
                }
            }
            Capability::Fqdn { hostname, domain } => {
                out.put_u8(hostname.len() as u8);
                out.put_slice(hostname.as_bytes());
                out.put_u8(domain.len() as u8);
                out.put_slice(domain.as_bytes());
            }
            Capability::Unknown { value, .. } => out.put_slice(value),
        }
        Ok(())
    }
}

/// Shorthand so callers can match on families without importing `Safi`.
pub fn unicast(afi: Afi) -> Family {
    Family {
        afi,
        safi: Safi::UNICAST,
    }
}
