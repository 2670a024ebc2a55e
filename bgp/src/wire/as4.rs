//! RFC 6793 between a NEW (4-octet AS) speaker and an OLD (2-octet only) one: rebuilding the
//! real AS path and aggregator from AS_PATH + AS4_PATH and AGGREGATOR + AS4_AGGREGATOR of a
//! route learnt from an OLD peer (§4.2.3), and producing them toward an OLD peer (§4.2.2).
//!
//! Both work on decoded values (`AsPath` keeps AS numbers as u32 whatever the wire width), so
//! the caller runs `merge_as4` after decoding from an OLD peer and `split_for_old_speaker`
//! before encoding toward one.

use super::aspath::{AsPath, Segment, SegmentType};
use super::attr::{attr_type as t, Aggregator, Attr, AttrValue};
use super::{Update, AS_TRANS};

const TRANS: u32 = AS_TRANS as u32;

/// What `Update::merge_as4` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum As4Merge {
    /// Neither AS4_PATH nor AS4_AGGREGATOR was present: nothing to do.
    NotPresent,
    /// The 4-octet information was merged into AS_PATH / AGGREGATOR.
    Merged,
    /// §4.2.3: AGGREGATOR carries an AS other than AS_TRANS, so AS4_PATH and AS4_AGGREGATOR
    /// were ignored (an OLD speaker aggregated after the path was built).
    IgnoredAggregatorNotAsTrans,
    /// §4.2.3: AS_PATH has fewer AS numbers than AS4_PATH, so AS4_PATH was ignored.
    IgnoredAs4PathLonger,
}

fn take_attr(attrs: &mut Vec<Attr>, code: u8) -> Option<AttrValue> {
    let i = attrs.iter().position(|a| a.type_code() == code)?;
    Some(attrs.remove(i).value)
}

/// Insert keeping attributes in ascending type order (how FRR and BIRD send them).
fn insert_ordered(attrs: &mut Vec<Attr>, attr: Attr) {
    let code = attr.type_code();
    let i = attrs
        .iter()
        .position(|a| a.type_code() > code)
        .unwrap_or(attrs.len());
    attrs.insert(i, attr);
}

/// §4.2.3: "taking as many AS numbers and path segments as necessary from the leading part of
/// the AS_PATH attribute, and then prepending them to the AS4_PATH attribute so that the AS
/// path information has a number of AS numbers identical to that of the AS_PATH attribute";
/// a confederation segment is prepended if it leads or is adjacent to a prepended segment.
fn merge_paths(path: &AsPath, as4: &AsPath) -> AsPath {
    let mut need = path.path_len() - as4.path_len();
    let mut out: Vec<Segment> = Vec::with_capacity(path.segments.len() + as4.segments.len());
    let mut last_taken = false;
    for (i, s) in path.segments.iter().enumerate() {
        match s.kind {
            k if k.is_confed() => {
                if i == 0 || last_taken || need > 0 {
                    out.push(s.clone());
                    last_taken = true;
                } else {
                    break;
                }
            }
            SegmentType::Set => {
                if need == 0 {
                    break;
                }
                out.push(s.clone());
                need -= 1;
                last_taken = true;
            }
            _ => {
                if need == 0 {
                    break;
                }
                let n = need.min(s.asns.len());
                out.push(Segment::new(s.kind, &s.asns[..n]));
                need -= n;
                last_taken = true;
            }
        }
    }
    for s in &as4.segments {
        // Join a prepended AS_SEQUENCE with a following one, as the unsplit path was.
        if let (Some(prev), SegmentType::Sequence) = (out.last_mut(), s.kind) {
            if prev.kind == SegmentType::Sequence && prev.asns.len() + s.asns.len() <= 255 {
                prev.asns.extend_from_slice(&s.asns);
                continue;
            }
        }
        out.push(s.clone());
    }
    AsPath { segments: out }
}

impl Update {
    /// RFC 6793 §4.2.3, for an UPDATE received from an OLD (2-octet) speaker: replace AS_PATH
    /// and AGGREGATOR with the 4-octet information of AS4_PATH / AS4_AGGREGATOR, and remove
    /// those two attributes. AS_CONFED segments in AS4_PATH are dropped (§6).
    pub fn merge_as4(&mut self) -> As4Merge {
        let as4_path = take_attr(&mut self.attrs, t::AS4_PATH);
        let as4_agg = take_attr(&mut self.attrs, t::AS4_AGGREGATOR);
        if as4_path.is_none() && as4_agg.is_none() {
            return As4Merge::NotPresent;
        }
        let agg = self.attrs.iter_mut().find_map(|a| match &mut a.value {
            AttrValue::Aggregator(g) => Some(g),
            _ => None,
        });
        // "If the AGGREGATOR attribute ... contains an AS number other than AS_TRANS, then
        // the AS4_AGGREGATOR attribute and the AS4_PATH attribute SHALL be ignored."
        match (agg, as4_agg) {
            (Some(g), _) if g.asn != TRANS => return As4Merge::IgnoredAggregatorNotAsTrans,
            (Some(g), Some(AttrValue::As4Aggregator(a4))) => *g = a4,
            _ => {}
        }
        let Some(AttrValue::As4Path(mut p4)) = as4_path else {
            return As4Merge::Merged;
        };
        p4.segments.retain(|s| !s.kind.is_confed());
        let Some(path) = self.attrs.iter_mut().find_map(|a| match &mut a.value {
            AttrValue::AsPath(p) => Some(p),
            _ => None,
        }) else {
            return As4Merge::Merged;
        };
        // "If the number of AS numbers in the AS_PATH attribute is less than the number of AS
        // numbers in the AS4_PATH attribute, then the AS4_PATH attribute SHALL be ignored."
        if path.path_len() < p4.path_len() {
            return As4Merge::IgnoredAs4PathLonger;
        }
        *path = merge_paths(path, &p4);
        As4Merge::Merged
    }

    /// RFC 6793 §4.2.2, before sending to an OLD (2-octet) speaker: AS numbers that do not
    /// fit 2 octets become AS_TRANS in AS_PATH / AGGREGATOR, and the real ones travel in
    /// AS4_PATH (without confederation segments) / AS4_AGGREGATOR — only when needed. Any
    /// AS4_PATH / AS4_AGGREGATOR already present is replaced.
    pub fn split_for_old_speaker(&mut self) {
        take_attr(&mut self.attrs, t::AS4_PATH);
        take_attr(&mut self.attrs, t::AS4_AGGREGATOR);
        let mut as4_path = None;
        let mut as4_agg = None;
        for a in &mut self.attrs {
            match &mut a.value {
                AttrValue::AsPath(p) if p.asns().any(|n| n > 0xffff) => {
                    let mut four = p.clone();
                    four.segments.retain(|s| !s.kind.is_confed());
                    if !four.segments.is_empty() {
                        as4_path = Some(four);
                    }
                    for s in &mut p.segments {
                        for n in &mut s.asns {
                            if *n > 0xffff {
                                *n = TRANS;
                            }
                        }
                    }
                }
                AttrValue::Aggregator(g) if g.asn > 0xffff => {
                    as4_agg = Some(Aggregator {
                        asn: g.asn,
                        addr: g.addr,
                    });
                    g.asn = TRANS;
                }
                _ => {}
            }
        }
        if let Some(p) = as4_path {
            insert_ordered(&mut self.attrs, Attr::new(AttrValue::As4Path(p)));
        }
        if let Some(g) = as4_agg {
            insert_ordered(&mut self.attrs, Attr::new(AttrValue::As4Aggregator(g)));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::wire::Context;

    fn seq(v: &[u32]) -> Segment {
        Segment::new(SegmentType::Sequence, v)
    }

    fn upd(attrs: Vec<AttrValue>) -> Update {
        Update {
            attrs: attrs.into_iter().map(Attr::new).collect(),
            ..Update::default()
        }
    }

    fn agg(asn: u32) -> Aggregator {
        Aggregator {
            asn,
            addr: Ipv4Addr::new(10, 0, 0, 1),
        }
    }

    #[test]
    fn rfc6793_4_2_3_merges_leading_2_octet_ases_with_as4_path() {
        let mut u = upd(vec![
            AttrValue::AsPath(AsPath::sequence([65001, TRANS, 65002, TRANS])),
            AttrValue::As4Path(AsPath::sequence([4_200_000_001, 65002, 4_200_000_002])),
        ]);
        assert_eq!(u.merge_as4(), As4Merge::Merged);
        assert_eq!(
            u.as_path(),
            Some(&AsPath::sequence([
                65001,
                4_200_000_001,
                65002,
                4_200_000_002
            ]))
        );
        assert!(u.attr(t::AS4_PATH).is_none());
    }

    #[test]
    fn rfc6793_4_2_3_aggregator_not_as_trans_ignores_as4_attributes() {
        let mut u = upd(vec![
            AttrValue::AsPath(AsPath::sequence([65001, TRANS])),
            AttrValue::Aggregator(agg(65009)),
            AttrValue::As4Path(AsPath::sequence([4_200_000_001])),
            AttrValue::As4Aggregator(agg(4_200_000_009)),
        ]);
        assert_eq!(u.merge_as4(), As4Merge::IgnoredAggregatorNotAsTrans);
        assert_eq!(u.as_path(), Some(&AsPath::sequence([65001, TRANS])));
        assert!(u.attr(t::AS4_PATH).is_none() && u.attr(t::AS4_AGGREGATOR).is_none());
    }

    #[test]
    fn rfc6793_4_2_3_as_trans_aggregator_takes_as4_aggregator() {
        let mut u = upd(vec![
            AttrValue::AsPath(AsPath::sequence([TRANS])),
            AttrValue::Aggregator(agg(TRANS)),
            AttrValue::As4Path(AsPath::sequence([4_200_000_001])),
            AttrValue::As4Aggregator(agg(4_200_000_009)),
        ]);
        assert_eq!(u.merge_as4(), As4Merge::Merged);
        assert_eq!(u.as_path(), Some(&AsPath::sequence([4_200_000_001])));
        assert_eq!(u.attrs[1].value, AttrValue::Aggregator(agg(4_200_000_009)));
    }

    #[test]
    fn rfc6793_4_2_3_longer_as4_path_is_ignored() {
        let mut u = upd(vec![
            AttrValue::AsPath(AsPath::sequence([TRANS])),
            AttrValue::As4Path(AsPath::sequence([4_200_000_001, 4_200_000_002])),
        ]);
        assert_eq!(u.merge_as4(), As4Merge::IgnoredAs4PathLonger);
        assert_eq!(u.as_path(), Some(&AsPath::sequence([TRANS])));
    }

    #[test]
    fn rfc6793_confed_segments_lead_and_are_dropped_from_as4_path() {
        let confed = Segment::new(SegmentType::ConfedSequence, [65100]);
        let set = Segment::new(SegmentType::Set, [1, 2]);
        let mut u = upd(vec![
            AttrValue::AsPath(AsPath {
                segments: vec![confed.clone(), seq(&[65001, TRANS]), set.clone()],
            }),
            AttrValue::As4Path(AsPath {
                segments: vec![
                    Segment::new(SegmentType::ConfedSet, [9]),
                    seq(&[4_200_000_001]),
                    set.clone(),
                ],
            }),
        ]);
        assert_eq!(u.merge_as4(), As4Merge::Merged);
        assert_eq!(
            u.as_path(),
            Some(&AsPath {
                segments: vec![confed, seq(&[65001, 4_200_000_001]), set],
            })
        );
    }

    #[test]
    fn rfc6793_4_2_2_split_then_wire_then_merge_gives_the_path_back() {
        let path = AsPath {
            segments: vec![
                Segment::new(SegmentType::ConfedSequence, [65100]),
                seq(&[65001, 4_200_000_001, 65002]),
                Segment::new(SegmentType::Set, [4_200_000_002, 7]),
            ],
        };
        let orig = upd(vec![
            AttrValue::Origin(crate::wire::Origin::Igp),
            AttrValue::AsPath(path.clone()),
            AttrValue::NextHop(Ipv4Addr::new(192, 0, 2, 1)),
            AttrValue::Aggregator(agg(4_200_000_009)),
        ]);
        let mut out = orig.clone();
        out.split_for_old_speaker();
        let codes: Vec<u8> = out.attrs.iter().map(Attr::type_code).collect();
        assert_eq!(codes, vec![1, 2, 3, 7, 17, 18]);
        assert!(out.as_path().unwrap().asns().all(|n| n <= 0xffff));
        // Through the wire of a 2-octet session, then merged by the receiver.
        let old = Context::default();
        let mut b = bytes::BytesMut::new();
        out.encode_body(&old, &mut b).unwrap();
        let mut back = Update::decode_body(&b, &old).unwrap();
        assert_eq!(back.errors, vec![]);
        assert_eq!(back.merge_as4(), As4Merge::Merged);
        assert_eq!(back, orig);
    }

    #[test]
    fn rfc6793_4_2_2_mappable_path_needs_no_as4_path() {
        let mut u = upd(vec![AttrValue::AsPath(AsPath::sequence([65001, 65002]))]);
        let before = u.clone();
        u.split_for_old_speaker();
        assert_eq!(u, before);
        assert_eq!(u.merge_as4(), As4Merge::NotPresent);
    }
}
