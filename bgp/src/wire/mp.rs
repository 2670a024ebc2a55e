//! MP_REACH_NLRI and MP_UNREACH_NLRI (RFC 4760 §3, §4). IPv4 and IPv6 unicast and multicast
//! are decoded into prefixes; their next hop may be IPv4 (4 bytes), or IPv6 global (16 bytes)
//! or global + link-local (32 bytes) — for IPv6 NLRI (RFC 2545 §3) and, per RFC 8950 §3, for
//! IPv4 NLRI. Every other AFI/SAFI is kept as opaque bytes, after the next hop has been split
//! off by its length field.
//!
//! Error handling (RFC 7606 §7.11, §5.3, RFC 4760 §7): an attribute too short to name its
//! AFI/SAFI leaves no family to disable, so it resets the session; any later error — a next
//! hop length inconsistent with the family, a missing Reserved octet, a syntactically
//! incorrect prefix — is "AFI/SAFI disable" for the family it names. The NOTIFICATION a
//! session sends instead, if it resets, is Optional Attribute Error (RFC 4760 §7).

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, Bytes, BytesMut};

use super::attr::Malformed;
use super::error::update_sub;
use super::nlri::{decode_prefixes, encode_prefixes, Nlri};
use super::treat::Action;
use super::{Afi, Context, Family, Safi};

/// The next hop of an MP_REACH_NLRI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NextHop {
    V4(Ipv4Addr),
    /// 16 bytes (global) or 32 bytes (global then link-local).
    V6 {
        global: Ipv6Addr,
        link_local: Option<Ipv6Addr>,
    },
    /// The next hop of a family this codec keeps opaque (at most 255 bytes).
    Opaque(Bytes),
}

impl NextHop {
    fn encoded_len(&self) -> usize {
        match self {
            NextHop::V4(_) => 4,
            NextHop::V6 {
                link_local: None, ..
            } => 16,
            NextHop::V6 { .. } => 32,
            NextHop::Opaque(b) => b.len(),
        }
    }
}

/// The NLRI of an MP attribute: prefixes for IPv4/IPv6 unicast/multicast, bytes otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MpNlri {
    Prefixes(Vec<Nlri>),
    Opaque(Bytes),
}

impl MpNlri {
    pub fn is_empty(&self) -> bool {
        match self {
            MpNlri::Prefixes(v) => v.is_empty(),
            MpNlri::Opaque(b) => b.is_empty(),
        }
    }

    /// The prefixes, empty for an opaque family.
    pub fn prefixes(&self) -> &[Nlri] {
        match self {
            MpNlri::Prefixes(v) => v,
            MpNlri::Opaque(_) => &[],
        }
    }

    fn encode(&self, family: Family, cx: &Context, out: &mut BytesMut) {
        match self {
            MpNlri::Prefixes(v) => encode_prefixes(v, cx.add_path(family), out),
            MpNlri::Opaque(b) => out.put_slice(b),
        }
    }
}

/// Whether `family`'s NLRI are decoded as prefixes (`Some(is_v6)`) or kept opaque.
pub fn prefix_family(family: Family) -> Option<bool> {
    if !matches!(family.safi, Safi::UNICAST | Safi::MULTICAST) {
        return None;
    }
    match family.afi {
        Afi::IPV4 => Some(false),
        Afi::IPV6 => Some(true),
        _ => None,
    }
}

/// MP_REACH_NLRI (type 14). The Reserved octet is written as 0 and ignored on receipt
/// (RFC 4760 §3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MpReach {
    pub family: Family,
    pub next_hop: NextHop,
    pub nlri: MpNlri,
}

/// MP_UNREACH_NLRI (type 15). With no withdrawn routes (and nothing else in the UPDATE) it is
/// the End-of-RIB marker of its family (RFC 4724 §2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MpUnreach {
    pub family: Family,
    pub withdrawn: MpNlri,
}

fn family_of(v: &[u8], what: &str) -> Result<Family, Malformed> {
    match v {
        [a0, a1, safi, ..] => Ok(Family {
            afi: Afi(u16::from_be_bytes([*a0, *a1])),
            safi: Safi(*safi),
        }),
        // RFC 7606 §7.11: without AFI/SAFI there is no family to disable: session reset.
        _ => Err(Malformed::new(
            Action::SessionReset,
            update_sub::OPTIONAL_ATTRIBUTE,
            format!("{what} of {} bytes cannot hold its AFI/SAFI", v.len()),
        )),
    }
}

fn disable(family: Family, at: usize, reason: String) -> Malformed {
    Malformed {
        action: Action::AfiSafiDisable(family),
        subcode: update_sub::OPTIONAL_ATTRIBUTE,
        at,
        reason,
    }
}

fn decode_nlri(
    family: Family,
    buf: &[u8],
    base: usize,
    cx: &Context,
    what: &str,
) -> Result<MpNlri, Malformed> {
    match prefix_family(family) {
        // RFC 7606 §5.3: a syntactically incorrect prefix in MP_REACH/MP_UNREACH ->
        // "session reset" or "AFI/SAFI disable"; the family is known, so disable it.
        Some(v6) => decode_prefixes(buf, v6, cx.add_path(family))
            .map(MpNlri::Prefixes)
            .map_err(|e| {
                disable(
                    family,
                    base + e.at,
                    format!("{what} {family}: {}", e.reason),
                )
            }),
        None => Ok(MpNlri::Opaque(Bytes::copy_from_slice(buf))),
    }
}

impl MpReach {
    pub(crate) fn decode(v: &[u8], cx: &Context) -> Result<MpReach, Malformed> {
        let family = family_of(v, "MP_REACH_NLRI")?;
        let Some(&nh_len) = v.get(3) else {
            return Err(disable(
                family,
                3,
                "MP_REACH_NLRI ends before the next hop length".into(),
            ));
        };
        let nh_len = usize::from(nh_len);
        let Some(nh) = v.get(4..4 + nh_len) else {
            return Err(disable(
                family,
                3,
                format!(
                    "next hop of {nh_len} bytes overruns the {}-byte attribute",
                    v.len()
                ),
            ));
        };
        // The Reserved octet must be there; its value is ignored.
        let Some(nlri) = v.get(5 + nh_len..) else {
            return Err(disable(
                family,
                4 + nh_len,
                "MP_REACH_NLRI ends before the Reserved octet".into(),
            ));
        };
        let next_hop = match (prefix_family(family), nh_len) {
            (None, _) => NextHop::Opaque(Bytes::copy_from_slice(nh)),
            (Some(false), 4) => NextHop::V4(Ipv4Addr::from(
                nh.first_chunk::<4>().copied().unwrap_or_default(),
            )),
            // RFC 2545 §3 (IPv6) and RFC 8950 §3 (IPv4 NLRI over an IPv6 next hop).
            (Some(_), 16 | 32) => {
                let g = nh.first_chunk::<16>().copied().unwrap_or_default();
                let ll = nh
                    .get(16..)
                    .and_then(|r| r.first_chunk::<16>())
                    .map(|b| Ipv6Addr::from(*b));
                NextHop::V6 {
                    global: Ipv6Addr::from(g),
                    link_local: ll,
                }
            }
            // RFC 7606 §7.11: a next hop length inconsistent with the family makes the NLRI
            // impossible to locate reliably -> session reset or AFI/SAFI disable.
            (Some(_), n) => {
                return Err(disable(
                    family,
                    3,
                    format!("next hop length {n} is not valid for {family}"),
                ))
            }
        };
        Ok(MpReach {
            family,
            next_hop,
            nlri: decode_nlri(family, nlri, 5 + nh_len, cx, "MP_REACH_NLRI")?,
        })
    }

    pub(crate) fn encode(&self, cx: &Context, out: &mut BytesMut) {
        out.put_u16(self.family.afi.0);
        out.put_u8(self.family.safi.0);
        // An opaque next hop longer than 255 bytes cannot be expressed; it is cut (the
        // decoder never produces one).
        let nh_len = self.next_hop.encoded_len().min(255);
        out.put_u8(nh_len as u8);
        match &self.next_hop {
            NextHop::V4(a) => out.put_slice(&a.octets()),
            NextHop::V6 { global, link_local } => {
                out.put_slice(&global.octets());
                if let Some(ll) = link_local {
                    out.put_slice(&ll.octets());
                }
            }
            NextHop::Opaque(b) => out.put_slice(&b[..nh_len]),
        }
        out.put_u8(0);
        self.nlri.encode(self.family, cx, out);
    }
}

impl MpUnreach {
    /// The End-of-RIB marker's attribute for `family`.
    pub fn end_of_rib(family: Family) -> MpUnreach {
        MpUnreach {
            family,
            withdrawn: match prefix_family(family) {
                Some(_) => MpNlri::Prefixes(Vec::new()),
                None => MpNlri::Opaque(Bytes::new()),
            },
        }
    }

    pub(crate) fn decode(v: &[u8], cx: &Context) -> Result<MpUnreach, Malformed> {
        let family = family_of(v, "MP_UNREACH_NLRI")?;
        Ok(MpUnreach {
            family,
            withdrawn: decode_nlri(family, &v[3..], 3, cx, "MP_UNREACH_NLRI")?,
        })
    }

    pub(crate) fn encode(&self, cx: &Context, out: &mut BytesMut) {
        out.put_u16(self.family.afi.0);
        out.put_u8(self.family.safi.0);
        self.withdrawn.encode(self.family, cx, out);
    }
}
