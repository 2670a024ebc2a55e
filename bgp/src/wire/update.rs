//! UPDATE (RFC 4271 §4.3): withdrawn routes, path attributes, NLRI — with the RFC 7606 error
//! handling that lets a session survive most malformed attributes.
//!
//! `Update::decode_body` fails (`DecodeError`, the NOTIFICATION to send) only where RFC 4271 /
//! RFC 7606 require a session reset. Everything else is reported in `Update::errors`, each
//! with its RFC 7606 action, next to the routes that could be recovered; `treatment()`
//! summarises what the session must do. The decoded attributes keep their wire order and
//! flags, so a well-formed UPDATE re-encodes byte for byte.
//!
//! RFC 7606 §5.1 asks senders to put MP_REACH_NLRI / MP_UNREACH_NLRI first so a receiver can
//! find the NLRI even when a later attribute is broken. This decoder parses every attribute
//! it can reach whatever its position, so it does not depend on that; `Update::announce` and
//! `Update::end_of_rib` put MP attributes first when building an UPDATE.

use std::net::Ipv4Addr;

use bytes::{BufMut, BytesMut};
use nom::number::complete::be_u16;

use super::aspath::AsPath;
use super::attr::{attr_type as t, decode_value, expected_flags, flag, Attr, AttrValue};
use super::community::{Community, LargeCommunity};
use super::error::{code, update_sub};
use super::mp::{MpNlri, MpReach, MpUnreach};
use super::nlri::{decode_prefixes, encode_prefixes, Nlri};
use super::parse::run;
use super::treat::{treatment, Action, AttrError, Treatment};
use super::{Context, DecodeError, EncodeError, Family};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    /// Withdrawn Routes field: IPv4 unicast prefixes.
    pub withdrawn: Vec<Nlri>,
    /// Path attributes in wire order (MP_REACH_NLRI / MP_UNREACH_NLRI among them).
    pub attrs: Vec<Attr>,
    /// NLRI field: IPv4 unicast prefixes.
    pub nlri: Vec<Nlri>,
    /// Errors found while decoding that the session survives (RFC 7606). Empty for an UPDATE
    /// built locally; ignored by the encoder. Attributes that were discarded or malformed are
    /// not in `attrs`.
    pub errors: Vec<AttrError>,
}

/// A set of attribute type codes (0..=255).
#[derive(Default)]
struct TypeSet([u64; 4]);

impl TypeSet {
    fn insert(&mut self, code: u8) -> bool {
        let (w, b) = (usize::from(code >> 6), code & 63);
        let fresh = self.0[w] & (1 << b) == 0;
        self.0[w] |= 1 << b;
        fresh
    }
    fn contains(&self, code: u8) -> bool {
        self.0[usize::from(code >> 6)] & (1 << (code & 63)) != 0
    }
}

fn malformed_list(offset: usize, reason: String) -> DecodeError {
    DecodeError::new(
        code::UPDATE_MESSAGE,
        update_sub::MALFORMED_ATTRIBUTE_LIST,
        offset,
        reason,
    )
}

impl Update {
    /// Decode an UPDATE body (the message after its 19-byte header). Offsets in the error and
    /// in `errors` are relative to the body.
    pub fn decode_body(body: &[u8], cx: &Context) -> Result<Update, DecodeError> {
        let sub = update_sub::MALFORMED_ATTRIBUTE_LIST;
        let (rest, wl) = run(
            body,
            body,
            be_u16,
            code::UPDATE_MESSAGE,
            sub,
            "withdrawn routes length",
        )?;
        let wl = usize::from(wl);
        // RFC 4271 §6.3, which RFC 7606 leaves in force: Withdrawn Routes Length or Total Attribute
        // Length too large for the message -> Malformed Attribute List, session reset.
        let Some((withdrawn_buf, rest)) = rest.split_at_checked(wl) else {
            return Err(malformed_list(
                0,
                format!(
                    "withdrawn routes length {wl} exceeds the {} bytes that follow",
                    rest.len()
                ),
            ));
        };
        let (rest, al) = run(
            body,
            rest,
            be_u16,
            code::UPDATE_MESSAGE,
            sub,
            "total path attribute length",
        )?;
        let al = usize::from(al);
        let attrs_at = 4 + wl;
        let Some((attrs_buf, nlri_buf)) = rest.split_at_checked(al) else {
            return Err(malformed_list(
                2 + wl,
                format!(
                    "total path attribute length {al} exceeds the {} bytes that follow",
                    rest.len()
                ),
            ));
        };
        let nlri_at = attrs_at + al;
        // RFC 7606 §5.3: a syntactically incorrect Withdrawn Routes or NLRI field -> "session
        // reset" (or AFI/SAFI disable). The IPv4 fields are reset: RFC 4271 §6.3 names the
        // NOTIFICATION, Invalid Network Field.
        let add_path = cx.add_path(Family::IPV4_UNICAST);
        let field_err = |base: usize, what: &'static str| {
            move |e: super::nlri::NlriError| {
                DecodeError::new(
                    code::UPDATE_MESSAGE,
                    update_sub::INVALID_NETWORK_FIELD,
                    base + e.at,
                    format!("{what}: {}", e.reason),
                )
            }
        };
        let withdrawn = decode_prefixes(withdrawn_buf, false, add_path)
            .map_err(field_err(2, "withdrawn routes"))?;
        let nlri =
            decode_prefixes(nlri_buf, false, add_path).map_err(field_err(nlri_at, "NLRI"))?;

        let mut errors = Vec::new();
        let mut seen = TypeSet::default();
        let attrs = decode_attrs(attrs_buf, attrs_at, cx, &mut seen, &mut errors)?;

        // RFC 7606 §3 (d): "If any of the well-known mandatory attributes are not present in
        // an UPDATE message, then 'treat-as-withdraw' MUST be used." They are mandatory only
        // when the UPDATE announces something; NEXT_HOP only for the NLRI field (RFC 4760 §3).
        if !nlri.is_empty() || seen.contains(t::MP_REACH_NLRI) {
            let next_hop = if nlri.is_empty() {
                None
            } else {
                Some(t::NEXT_HOP)
            };
            for code in [Some(t::ORIGIN), Some(t::AS_PATH), next_hop]
                .into_iter()
                .flatten()
            {
                if !seen.contains(code) {
                    errors.push(AttrError {
                        type_code: code,
                        action: Action::TreatAsWithdraw,
                        subcode: update_sub::MISSING_WELL_KNOWN,
                        reason: format!("missing well-known mandatory attribute {code}"),
                        offset: attrs_at,
                        // RFC 4271 §6.3: the data is the type code of the missing attribute.
                        data: vec![code],
                    });
                }
            }
        }
        Ok(Update {
            withdrawn,
            attrs,
            nlri,
            errors,
        })
    }

    /// Append the UPDATE body. On error nothing is appended.
    pub fn encode_body(&self, cx: &Context, out: &mut BytesMut) -> Result<(), EncodeError> {
        let start = out.len();
        let r = self.encode_inner(cx, out);
        if r.is_err() {
            out.truncate(start);
        }
        r
    }

    fn encode_inner(&self, cx: &Context, out: &mut BytesMut) -> Result<(), EncodeError> {
        let add_path = cx.add_path(Family::IPV4_UNICAST);
        let put_len = |out: &mut BytesMut, at: usize, what: &'static str| {
            let len = out.len() - at - 2;
            let l = u16::try_from(len).map_err(|_| EncodeError::FieldTooLong {
                what,
                len,
                bits: 16,
            })?;
            out[at..at + 2].copy_from_slice(&l.to_be_bytes());
            Ok::<(), EncodeError>(())
        };
        let at = out.len();
        out.put_u16(0);
        encode_prefixes(&self.withdrawn, add_path, out);
        put_len(out, at, "withdrawn routes")?;
        let at = out.len();
        out.put_u16(0);
        for a in &self.attrs {
            a.encode(cx, out)?;
        }
        put_len(out, at, "path attributes")?;
        encode_prefixes(&self.nlri, add_path, out);
        Ok(())
    }

    /// The End-of-RIB marker for `family` (RFC 4724 §2): an empty UPDATE for IPv4 unicast,
    /// otherwise an UPDATE with only an empty MP_UNREACH_NLRI.
    pub fn end_of_rib(family: Family) -> Update {
        if family == Family::IPV4_UNICAST {
            return Update::default();
        }
        Update {
            attrs: vec![Attr::new(AttrValue::MpUnreach(MpUnreach::end_of_rib(
                family,
            )))],
            ..Update::default()
        }
    }

    /// The family this UPDATE is the End-of-RIB marker of, if it is one.
    pub fn end_of_rib_family(&self) -> Option<Family> {
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() {
            return None;
        }
        match self.attrs.as_slice() {
            [] => Some(Family::IPV4_UNICAST),
            [Attr {
                value: AttrValue::MpUnreach(m),
                ..
            }] if m.withdrawn.is_empty() => Some(m.family),
            _ => None,
        }
    }

    /// An UPDATE announcing `nlri` with `attrs` (which should hold ORIGIN, AS_PATH and, for
    /// IPv4 unicast, NEXT_HOP). IPv4 unicast prefixes go in the NLRI field; any others in
    /// an MP_REACH_NLRI with `mp_next_hop`, put first as RFC 7606 §5.1 asks.
    pub fn announce(
        attrs: Vec<Attr>,
        nlri: Vec<Nlri>,
        mp: Option<(Family, super::mp::NextHop, Vec<Nlri>)>,
    ) -> Update {
        let mut all = Vec::with_capacity(attrs.len() + 1);
        if let Some((family, next_hop, prefixes)) = mp {
            all.push(Attr::new(AttrValue::MpReach(MpReach {
                family,
                next_hop,
                nlri: MpNlri::Prefixes(prefixes),
            })));
        }
        all.extend(attrs);
        Update {
            attrs: all,
            nlri,
            ..Update::default()
        }
    }

    /// What the session must do with this UPDATE (RFC 7606), from `errors`.
    pub fn treatment(&self) -> Treatment {
        treatment(&self.errors)
    }

    /// The first attribute of `type_code`.
    pub fn attr(&self, type_code: u8) -> Option<&Attr> {
        self.attrs.iter().find(|a| a.type_code() == type_code)
    }

    pub fn origin(&self) -> Option<super::attr::Origin> {
        self.attrs.iter().find_map(|a| match a.value {
            AttrValue::Origin(o) => Some(o),
            _ => None,
        })
    }

    pub fn as_path(&self) -> Option<&AsPath> {
        self.attrs.iter().find_map(|a| match &a.value {
            AttrValue::AsPath(p) => Some(p),
            _ => None,
        })
    }

    pub fn next_hop(&self) -> Option<Ipv4Addr> {
        self.attrs.iter().find_map(|a| match a.value {
            AttrValue::NextHop(n) => Some(n),
            _ => None,
        })
    }

    pub fn med(&self) -> Option<u32> {
        self.attrs.iter().find_map(|a| match a.value {
            AttrValue::MultiExitDisc(n) => Some(n),
            _ => None,
        })
    }

    pub fn local_pref(&self) -> Option<u32> {
        self.attrs.iter().find_map(|a| match a.value {
            AttrValue::LocalPref(n) => Some(n),
            _ => None,
        })
    }

    pub fn communities(&self) -> &[Community] {
        self.attrs
            .iter()
            .find_map(|a| match &a.value {
                AttrValue::Communities(c) => Some(c.as_slice()),
                _ => None,
            })
            .unwrap_or(&[])
    }

    pub fn large_communities(&self) -> &[LargeCommunity] {
        self.attrs
            .iter()
            .find_map(|a| match &a.value {
                AttrValue::LargeCommunities(c) => Some(c.as_slice()),
                _ => None,
            })
            .unwrap_or(&[])
    }

    pub fn mp_reach(&self) -> Option<&MpReach> {
        self.attrs.iter().find_map(|a| match &a.value {
            AttrValue::MpReach(m) => Some(m),
            _ => None,
        })
    }

    pub fn mp_unreach(&self) -> Option<&MpUnreach> {
        self.attrs.iter().find_map(|a| match &a.value {
            AttrValue::MpUnreach(m) => Some(m),
            _ => None,
        })
    }

    /// The attributes in the form to pass on to other peers: unknown optional transitive
    /// attributes with the Partial bit set, unknown optional non-transitive ones dropped
    /// (RFC 4271 §5, §9.1.3). See `Attr::for_readvertisement`.
    pub fn attrs_for_readvertisement(&self) -> Vec<Attr> {
        self.attrs
            .iter()
            .filter_map(Attr::for_readvertisement)
            .collect()
    }
}

/// Walk the path attributes. `base` is the offset of `buf` in the body.
fn decode_attrs(
    buf: &[u8],
    base: usize,
    cx: &Context,
    seen: &mut TypeSet,
    errors: &mut Vec<AttrError>,
) -> Result<Vec<Attr>, DecodeError> {
    let mut attrs = Vec::with_capacity(count_attrs(buf));
    let mut pos = 0;
    while pos < buf.len() {
        let at = base + pos;
        let rem = &buf[pos..];
        let flags = rem[0];
        let hdr = if flags & flag::EXTENDED_LENGTH != 0 {
            4
        } else {
            3
        };
        // RFC 7606 §4: "fewer than three octets remain (or fewer than four octets, if the
        // Attribute Flags field has the Extended Length bit set)" -> treat-as-withdraw, the
        // Total Attribute Length locating the NLRI.
        if rem.len() < hdr {
            errors.push(AttrError {
                type_code: rem.get(1).copied().unwrap_or(0),
                action: Action::TreatAsWithdraw,
                subcode: update_sub::MALFORMED_ATTRIBUTE_LIST,
                reason: format!(
                    "{} bytes left in the path attributes, too few for an attribute header",
                    rem.len()
                ),
                offset: at,
                data: Vec::new(),
            });
            break;
        }
        let type_code = rem[1];
        let len = if hdr == 4 {
            usize::from(u16::from_be_bytes([rem[2], rem[3]]))
        } else {
            usize::from(rem[2])
        };
        let Some(raw) = rem.get(..hdr + len) else {
            // RFC 7606 §4: an attribute whose length overruns the Total Attribute Length ->
            // treat-as-withdraw. Exception: if it is MP_REACH_NLRI or MP_UNREACH_NLRI, the
            // routes it carries cannot be located, so no approach short of a session reset
            // covers them ("unless some other, more severe error is encountered").
            if matches!(type_code, t::MP_REACH_NLRI | t::MP_UNREACH_NLRI) {
                return Err(malformed_list(
                    at,
                    format!(
                        "MP attribute {type_code} of length {len} overruns the path attributes"
                    ),
                ));
            }
            errors.push(AttrError {
                type_code,
                action: Action::TreatAsWithdraw,
                subcode: update_sub::ATTRIBUTE_LENGTH,
                reason: format!(
                    "attribute {type_code} of length {len} overruns the {} bytes left",
                    rem.len() - hdr
                ),
                offset: at,
                data: rem.to_vec(),
            });
            break;
        };
        let value = &raw[hdr..];
        pos += hdr + len;

        let err = |action: Action, subcode: u8, reason: String| AttrError {
            type_code,
            action,
            subcode,
            reason,
            offset: at,
            // RFC 4271 §6.3: the data of attribute errors is the erroneous attribute
            // (type, length and value).
            data: raw.to_vec(),
        };

        // RFC 7606 §3 (g): MP_REACH_NLRI or MP_UNREACH_NLRI more than once -> Malformed
        // Attribute List (session reset); any other attribute more than once -> all but the
        // first discarded, processing continues.
        if !seen.insert(type_code) {
            if matches!(type_code, t::MP_REACH_NLRI | t::MP_UNREACH_NLRI) {
                return Err(malformed_list(
                    at,
                    format!("attribute {type_code} appears more than once"),
                )
                .with_data(raw.to_vec()));
            }
            errors.push(err(
                Action::AttributeDiscard,
                update_sub::MALFORMED_ATTRIBUTE_LIST,
                format!("duplicate attribute {type_code} discarded"),
            ));
            continue;
        }

        let Some(expected) = expected_flags(type_code) else {
            // RFC 4271 §6.3: an unrecognized well-known attribute -> Unrecognized Well-known
            // Attribute, data the attribute (RFC 7606 does not revise this).
            if flags & flag::OPTIONAL == 0 {
                return Err(DecodeError::new(
                    code::UPDATE_MESSAGE,
                    update_sub::UNRECOGNIZED_WELL_KNOWN,
                    at,
                    format!("unrecognized well-known attribute {type_code}"),
                )
                .with_data(raw.to_vec()));
            }
            attrs.push(Attr::unknown(
                flags,
                type_code,
                bytes::Bytes::copy_from_slice(value),
            ));
            continue;
        };

        // RFC 7606 §3 (c): Optional or Transitive bits in conflict with the attribute's
        // definition -> the attribute is malformed, treat-as-withdraw. The MP attributes are
        // still parsed (and kept), since their NLRI are the routes to withdraw.
        let bad_flags = flags & (flag::OPTIONAL | flag::TRANSITIVE) != expected;
        if bad_flags {
            errors.push(err(
                Action::TreatAsWithdraw,
                update_sub::ATTRIBUTE_FLAGS,
                format!("attribute {type_code} has flags {flags:#04x}, expected O/T bits {expected:#04x}"),
            ));
            if !matches!(type_code, t::MP_REACH_NLRI | t::MP_UNREACH_NLRI) {
                continue;
            }
        }

        // RFC 6793 §6: AS4_PATH / AS4_AGGREGATOR between NEW speakers "MUST discard the path
        // attribute and continue processing the UPDATE message".
        if cx.four_octet_as && matches!(type_code, t::AS4_PATH | t::AS4_AGGREGATOR) {
            errors.push(err(
                Action::AttributeDiscard,
                update_sub::OPTIONAL_ATTRIBUTE,
                format!("attribute {type_code} received on a 4-octet-AS session, discarded"),
            ));
            continue;
        }

        match decode_value(type_code, value, cx) {
            Ok(v) => attrs.push(Attr { flags, value: v }),
            Err(m) if m.action == Action::SessionReset => {
                return Err(DecodeError::new(
                    code::UPDATE_MESSAGE,
                    m.subcode,
                    at + hdr + m.at,
                    m.reason,
                )
                .with_data(raw.to_vec()));
            }
            Err(m) => {
                let mut e = err(m.action, m.subcode, m.reason);
                e.offset = at + hdr + m.at;
                errors.push(e);
            }
        }
    }
    Ok(attrs)
}

/// How many attribute headers `buf` holds (up to the first one that does not fit).
fn count_attrs(buf: &[u8]) -> usize {
    let mut n = 0;
    let mut pos = 0;
    while let Some(rem) = buf.get(pos..).filter(|r| r.len() >= 3) {
        let len = if rem[0] & flag::EXTENDED_LENGTH != 0 {
            match rem.get(2..4) {
                Some(l) => 4 + usize::from(u16::from_be_bytes([l[0], l[1]])),
                None => break,
            }
        } else {
            3 + usize::from(rem[2])
        };
        pos += len;
        n += 1;
    }
    n
}

#[cfg(test)]
#[path = "update_tests.rs"]
mod tests;
