//! Path attributes (RFC 4271 §4.3, §5): the attribute header (flags, type, 1- or 2-octet
//! length), every attribute this codec knows, and unknown ones kept byte for byte.
//!
//! Each decoded attribute keeps the flags octet exactly as received (Partial bit, Extended
//! Length bit, even the unused low bits), and `Update` keeps attributes in wire order, so a
//! decoded UPDATE re-encodes to the bytes it came from. Per-attribute error handling follows
//! RFC 7606 §7; the rule is quoted next to each check.

use std::net::Ipv4Addr;

use bytes::{BufMut, Bytes, BytesMut};

use super::aspath::AsPath;
use super::community::{Community, ExtCommunity, LargeCommunity};
use super::error::update_sub;
use super::mp::{MpReach, MpUnreach};
use super::treat::Action;
use super::{Context, EncodeError};

/// Attribute Flags bits (RFC 4271 §4.3).
pub mod flag {
    pub const OPTIONAL: u8 = 0x80;
    pub const TRANSITIVE: u8 = 0x40;
    pub const PARTIAL: u8 = 0x20;
    pub const EXTENDED_LENGTH: u8 = 0x10;
}

/// Attribute type codes (IANA "BGP Path Attributes").
pub mod attr_type {
    pub const ORIGIN: u8 = 1;
    pub const AS_PATH: u8 = 2;
    pub const NEXT_HOP: u8 = 3;
    pub const MULTI_EXIT_DISC: u8 = 4;
    pub const LOCAL_PREF: u8 = 5;
    pub const ATOMIC_AGGREGATE: u8 = 6;
    pub const AGGREGATOR: u8 = 7;
    pub const COMMUNITIES: u8 = 8;
    pub const ORIGINATOR_ID: u8 = 9;
    pub const CLUSTER_LIST: u8 = 10;
    pub const MP_REACH_NLRI: u8 = 14;
    pub const MP_UNREACH_NLRI: u8 = 15;
    pub const EXTENDED_COMMUNITIES: u8 = 16;
    pub const AS4_PATH: u8 = 17;
    pub const AS4_AGGREGATOR: u8 = 18;
    pub const LARGE_COMMUNITY: u8 = 32;
}

use attr_type as t;

/// The Optional and Transitive bits each known attribute must carry (RFC 4271 §5, RFC 4456,
/// RFC 4760, RFC 4360, RFC 6793, RFC 8092); `None` for a type this codec does not know.
pub fn expected_flags(type_code: u8) -> Option<u8> {
    const WELL_KNOWN: u8 = flag::TRANSITIVE;
    const OPT_TRANS: u8 = flag::OPTIONAL | flag::TRANSITIVE;
    const OPT_NON_TRANS: u8 = flag::OPTIONAL;
    Some(match type_code {
        t::ORIGIN | t::AS_PATH | t::NEXT_HOP | t::LOCAL_PREF | t::ATOMIC_AGGREGATE => WELL_KNOWN,
        t::AGGREGATOR
        | t::COMMUNITIES
        | t::EXTENDED_COMMUNITIES
        | t::AS4_PATH
        | t::AS4_AGGREGATOR
        | t::LARGE_COMMUNITY => OPT_TRANS,
        t::MULTI_EXIT_DISC
        | t::ORIGINATOR_ID
        | t::CLUSTER_LIST
        | t::MP_REACH_NLRI
        | t::MP_UNREACH_NLRI => OPT_NON_TRANS,
        _ => return None,
    })
}

/// ORIGIN values (RFC 4271 §4.3 a).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    Igp,
    Egp,
    Incomplete,
}

impl Origin {
    pub fn code(self) -> u8 {
        match self {
            Origin::Igp => 0,
            Origin::Egp => 1,
            Origin::Incomplete => 2,
        }
    }
}

/// AGGREGATOR / AS4_AGGREGATOR value. The AS is 2 or 4 octets on the wire per context
/// (AGGREGATOR) or always 4 (AS4_AGGREGATOR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Aggregator {
    pub asn: u32,
    pub addr: Ipv4Addr,
}

/// A decoded attribute value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrValue {
    Origin(Origin),
    AsPath(AsPath),
    NextHop(Ipv4Addr),
    MultiExitDisc(u32),
    LocalPref(u32),
    AtomicAggregate,
    Aggregator(Aggregator),
    Communities(Vec<Community>),
    OriginatorId(Ipv4Addr),
    ClusterList(Vec<Ipv4Addr>),
    MpReach(MpReach),
    MpUnreach(MpUnreach),
    ExtCommunities(Vec<ExtCommunity>),
    As4Path(AsPath),
    As4Aggregator(Aggregator),
    LargeCommunities(Vec<LargeCommunity>),
    /// Any other type: kept as received. `Attr::flags` holds its flags.
    Unknown {
        type_code: u8,
        value: Bytes,
    },
}

impl AttrValue {
    pub fn type_code(&self) -> u8 {
        match self {
            AttrValue::Origin(_) => t::ORIGIN,
            AttrValue::AsPath(_) => t::AS_PATH,
            AttrValue::NextHop(_) => t::NEXT_HOP,
            AttrValue::MultiExitDisc(_) => t::MULTI_EXIT_DISC,
            AttrValue::LocalPref(_) => t::LOCAL_PREF,
            AttrValue::AtomicAggregate => t::ATOMIC_AGGREGATE,
            AttrValue::Aggregator(_) => t::AGGREGATOR,
            AttrValue::Communities(_) => t::COMMUNITIES,
            AttrValue::OriginatorId(_) => t::ORIGINATOR_ID,
            AttrValue::ClusterList(_) => t::CLUSTER_LIST,
            AttrValue::MpReach(_) => t::MP_REACH_NLRI,
            AttrValue::MpUnreach(_) => t::MP_UNREACH_NLRI,
            AttrValue::ExtCommunities(_) => t::EXTENDED_COMMUNITIES,
            AttrValue::As4Path(_) => t::AS4_PATH,
            AttrValue::As4Aggregator(_) => t::AS4_AGGREGATOR,
            AttrValue::LargeCommunities(_) => t::LARGE_COMMUNITY,
            AttrValue::Unknown { type_code, .. } => *type_code,
        }
    }
}

/// One path attribute: the flags octet as received (or as to be sent) and the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub flags: u8,
    pub value: AttrValue,
}

impl Attr {
    /// An attribute with the standard flags for its type (Optional/Transitive as the RFC
    /// defines them; for `Unknown`, optional transitive). The Extended Length bit is set on
    /// encode when the value needs it.
    pub fn new(value: AttrValue) -> Attr {
        let flags = expected_flags(value.type_code()).unwrap_or(flag::OPTIONAL | flag::TRANSITIVE);
        Attr { flags, value }
    }

    /// An unknown attribute with explicit flags.
    pub fn unknown(flags: u8, type_code: u8, value: impl Into<Bytes>) -> Attr {
        Attr {
            flags,
            value: AttrValue::Unknown {
                type_code,
                value: value.into(),
            },
        }
    }

    pub fn type_code(&self) -> u8 {
        self.value.type_code()
    }

    pub fn is_optional(&self) -> bool {
        self.flags & flag::OPTIONAL != 0
    }
    pub fn is_transitive(&self) -> bool {
        self.flags & flag::TRANSITIVE != 0
    }
    pub fn is_partial(&self) -> bool {
        self.flags & flag::PARTIAL != 0
    }

    /// The form in which to pass this attribute on to other peers (RFC 4271 §5 / §9.1.3):
    /// an unrecognized optional transitive attribute is kept with the Partial bit set; an
    /// unrecognized optional non-transitive one is dropped (`None`). Known attributes are
    /// returned unchanged: what to do with them (MED, LOCAL_PREF, ORIGINATOR_ID...) is
    /// export policy, not wire format.
    pub fn for_readvertisement(&self) -> Option<Attr> {
        match self.value {
            AttrValue::Unknown { .. } => {
                if !self.is_optional() || !self.is_transitive() {
                    return None;
                }
                Some(Attr {
                    flags: self.flags | flag::PARTIAL,
                    value: self.value.clone(),
                })
            }
            _ => Some(self.clone()),
        }
    }

    /// Append flags, type, length and value. The length field is one octet unless the flags
    /// ask for two or the value is longer than 255 bytes (then the Extended Length bit is set).
    pub fn encode(&self, cx: &Context, out: &mut BytesMut) -> Result<(), EncodeError> {
        let start = out.len();
        let extended = self.flags & flag::EXTENDED_LENGTH != 0;
        out.put_u8(self.flags);
        out.put_u8(self.type_code());
        if extended {
            out.put_u16(0);
        } else {
            out.put_u8(0);
        }
        let value_at = out.len();
        if let Err(e) = encode_value(&self.value, cx, out) {
            out.truncate(start);
            return Err(e);
        }
        let len = out.len() - value_at;
        if extended || len > 255 {
            let Ok(len16) = u16::try_from(len) else {
                out.truncate(start);
                return Err(EncodeError::FieldTooLong {
                    what: "path attribute",
                    len,
                    bits: 16,
                });
            };
            if !extended {
                // Make room for the second length octet.
                out.put_u8(0);
                out.copy_within(value_at..value_at + len, value_at + 1);
                out[start] |= flag::EXTENDED_LENGTH;
            }
            out[start + 2..start + 4].copy_from_slice(&len16.to_be_bytes());
        } else {
            out[start + 2] = len as u8;
        }
        Ok(())
    }
}

/// Why an attribute value did not decode and what RFC 7606 says to do about it. `at` is the
/// offset inside the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed {
    pub action: Action,
    pub subcode: u8,
    pub at: usize,
    pub reason: String,
}

impl Malformed {
    pub(crate) fn new(action: Action, subcode: u8, reason: impl Into<String>) -> Malformed {
        Malformed {
            action,
            subcode,
            at: 0,
            reason: reason.into(),
        }
    }
}

fn be_u32(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(*v.first_chunk::<4>()?))
}

fn fixed_len(v: &[u8], len: usize, name: &str, action: Action) -> Result<(), Malformed> {
    if v.len() == len {
        Ok(())
    } else {
        Err(Malformed::new(
            action,
            update_sub::ATTRIBUTE_LENGTH,
            format!("{name} of length {} (must be {len})", v.len()),
        ))
    }
}

/// A "non-zero multiple of `unit`" length check (RFC 7606 §7.8, §7.10, §7.14, RFC 8092 §6).
fn multiple_len(v: &[u8], unit: usize, name: &str) -> Result<(), Malformed> {
    if !v.is_empty() && v.len().is_multiple_of(unit) {
        Ok(())
    } else {
        Err(Malformed::new(
            Action::TreatAsWithdraw,
            update_sub::ATTRIBUTE_LENGTH,
            format!(
                "{name} of length {} (must be a non-zero multiple of {unit})",
                v.len()
            ),
        ))
    }
}

fn ipv4(v: &[u8]) -> Ipv4Addr {
    Ipv4Addr::from(be_u32(v).unwrap_or(0))
}

/// Decode the value of a known attribute type (`expected_flags(type_code).is_some()`).
pub(crate) fn decode_value(type_code: u8, v: &[u8], cx: &Context) -> Result<AttrValue, Malformed> {
    use Action::*;
    Ok(match type_code {
        t::ORIGIN => {
            // RFC 7606 §7.1: "The attribute is considered malformed if its length is not 1
            // or it has an undefined value" -> treat-as-withdraw.
            fixed_len(v, 1, "ORIGIN", TreatAsWithdraw)?;
            AttrValue::Origin(match v[0] {
                0 => Origin::Igp,
                1 => Origin::Egp,
                2 => Origin::Incomplete,
                o => {
                    return Err(Malformed::new(
                        TreatAsWithdraw,
                        update_sub::INVALID_ORIGIN,
                        format!("undefined ORIGIN value {o}"),
                    ))
                }
            })
        }
        t::AS_PATH => {
            // RFC 7606 §7.2: a malformed AS_PATH (unknown segment type, zero-length segment,
            // overrun, lone trailing octet) -> treat-as-withdraw.
            AttrValue::AsPath(AsPath::decode(v, cx.four_octet_as).map_err(|(at, why)| {
                Malformed {
                    action: TreatAsWithdraw,
                    subcode: update_sub::MALFORMED_AS_PATH,
                    at,
                    reason: format!("AS_PATH: {why}"),
                }
            })?)
        }
        t::NEXT_HOP => {
            // RFC 7606 §7.3: length other than 4 -> treat-as-withdraw. (Semantic checks of
            // the address belong to the session, which knows its own addresses.)
            fixed_len(v, 4, "NEXT_HOP", TreatAsWithdraw)?;
            AttrValue::NextHop(ipv4(v))
        }
        t::MULTI_EXIT_DISC => {
            // RFC 7606 §7.4: length other than 4 -> treat-as-withdraw.
            fixed_len(v, 4, "MULTI_EXIT_DISC", TreatAsWithdraw)?;
            AttrValue::MultiExitDisc(be_u32(v).unwrap_or(0))
        }
        t::LOCAL_PREF => {
            // RFC 7606 §7.5: length other than 4 -> treat-as-withdraw. (Its "received from an
            // external neighbor -> discard" rule is the session's: it knows eBGP from iBGP.)
            fixed_len(v, 4, "LOCAL_PREF", TreatAsWithdraw)?;
            AttrValue::LocalPref(be_u32(v).unwrap_or(0))
        }
        t::ATOMIC_AGGREGATE => {
            // RFC 7606 §7.6: length other than 0 -> attribute discard.
            fixed_len(v, 0, "ATOMIC_AGGREGATE", AttributeDiscard)?;
            AttrValue::AtomicAggregate
        }
        t::AGGREGATOR => {
            // RFC 7606 §7.7: length other than 6 (2-octet AS) or 8 (4-octet AS session)
            // -> attribute discard.
            AttrValue::Aggregator(decode_aggregator(
                v,
                cx.four_octet_as,
                "AGGREGATOR",
                AttributeDiscard,
            )?)
        }
        t::COMMUNITIES => {
            // RFC 7606 §7.8: length not a non-zero multiple of 4 -> treat-as-withdraw.
            multiple_len(v, 4, "COMMUNITIES")?;
            AttrValue::Communities(
                v.chunks_exact(4)
                    .map(|c| Community(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                    .collect(),
            )
        }
        t::ORIGINATOR_ID => {
            // RFC 7606 §7.9: length other than 4 -> treat-as-withdraw.
            fixed_len(v, 4, "ORIGINATOR_ID", TreatAsWithdraw)?;
            AttrValue::OriginatorId(ipv4(v))
        }
        t::CLUSTER_LIST => {
            // RFC 7606 §7.10: length not a non-zero multiple of 4 -> treat-as-withdraw.
            multiple_len(v, 4, "CLUSTER_LIST")?;
            AttrValue::ClusterList(v.chunks_exact(4).map(ipv4).collect())
        }
        t::MP_REACH_NLRI => AttrValue::MpReach(MpReach::decode(v, cx)?),
        t::MP_UNREACH_NLRI => AttrValue::MpUnreach(MpUnreach::decode(v, cx)?),
        t::EXTENDED_COMMUNITIES => {
            // RFC 7606 §7.14: length not a non-zero multiple of 8 -> treat-as-withdraw.
            multiple_len(v, 8, "EXTENDED_COMMUNITIES")?;
            AttrValue::ExtCommunities(
                v.chunks_exact(8)
                    .map(|c| {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(c);
                        ExtCommunity(b)
                    })
                    .collect(),
            )
        }
        t::AS4_PATH => {
            // RFC 6793 §6: malformed when the length is odd or below 6, a segment length is
            // zero or inconsistent, or a segment type is unknown -> attribute discard.
            if v.len() < 6 || !v.len().is_multiple_of(2) {
                return Err(Malformed::new(
                    AttributeDiscard,
                    update_sub::OPTIONAL_ATTRIBUTE,
                    format!(
                        "AS4_PATH of length {} (must be even and at least 6)",
                        v.len()
                    ),
                ));
            }
            AttrValue::As4Path(AsPath::decode(v, true).map_err(|(at, why)| Malformed {
                action: AttributeDiscard,
                subcode: update_sub::OPTIONAL_ATTRIBUTE,
                at,
                reason: format!("AS4_PATH: {why}"),
            })?)
        }
        t::AS4_AGGREGATOR => {
            // RFC 6793 §6: a malformed AS4_AGGREGATOR (length other than 8) -> attribute
            // discard.
            AttrValue::As4Aggregator(decode_aggregator(
                v,
                true,
                "AS4_AGGREGATOR",
                AttributeDiscard,
            )?)
        }
        t::LARGE_COMMUNITY => {
            // RFC 8092 §6: length not a non-zero multiple of 12 -> treat-as-withdraw.
            multiple_len(v, 12, "LARGE_COMMUNITY")?;
            AttrValue::LargeCommunities(
                v.chunks_exact(12)
                    .map(|c| LargeCommunity {
                        global: be_u32(&c[0..4]).unwrap_or(0),
                        local1: be_u32(&c[4..8]).unwrap_or(0),
                        local2: be_u32(&c[8..12]).unwrap_or(0),
                    })
                    .collect(),
            )
        }
        _ => AttrValue::Unknown {
            type_code,
            value: Bytes::copy_from_slice(v),
        },
    })
}

fn decode_aggregator(
    v: &[u8],
    four_octet: bool,
    name: &str,
    action: Action,
) -> Result<Aggregator, Malformed> {
    if four_octet {
        fixed_len(v, 8, name, action)?;
        Ok(Aggregator {
            asn: be_u32(v).unwrap_or(0),
            addr: ipv4(&v[4..]),
        })
    } else {
        fixed_len(v, 6, name, action)?;
        Ok(Aggregator {
            asn: u32::from(u16::from_be_bytes([v[0], v[1]])),
            addr: ipv4(&v[2..]),
        })
    }
}

fn encode_value(value: &AttrValue, cx: &Context, out: &mut BytesMut) -> Result<(), EncodeError> {
    match value {
        AttrValue::Origin(o) => out.put_u8(o.code()),
        AttrValue::AsPath(p) => p.encode(cx.four_octet_as, out)?,
        AttrValue::NextHop(a) | AttrValue::OriginatorId(a) => out.put_slice(&a.octets()),
        AttrValue::MultiExitDisc(v) | AttrValue::LocalPref(v) => out.put_u32(*v),
        AttrValue::AtomicAggregate => {}
        AttrValue::Aggregator(a) => {
            if cx.four_octet_as {
                out.put_u32(a.asn);
            } else {
                // RFC 6793 §4.2.2: AS_TRANS stands in for an AS that needs 4 octets.
                out.put_u16(u16::try_from(a.asn).unwrap_or(super::AS_TRANS));
            }
            out.put_slice(&a.addr.octets());
        }
        AttrValue::Communities(cs) => cs.iter().for_each(|c| out.put_u32(c.0)),
        AttrValue::ClusterList(ids) => ids.iter().for_each(|a| out.put_slice(&a.octets())),
        AttrValue::MpReach(m) => m.encode(cx, out),
        AttrValue::MpUnreach(m) => m.encode(cx, out),
        AttrValue::ExtCommunities(cs) => cs.iter().for_each(|c| out.put_slice(&c.0)),
        AttrValue::As4Path(p) => p.encode(true, out)?,
        AttrValue::As4Aggregator(a) => {
            out.put_u32(a.asn);
            out.put_slice(&a.addr.octets());
        }
        AttrValue::LargeCommunities(cs) => cs.iter().for_each(|c| {
            out.put_u32(c.global);
            out.put_u32(c.local1);
            out.put_u32(c.local2);
        }),
        AttrValue::Unknown { value, .. } => out.put_slice(value),
    }
    Ok(())
}
