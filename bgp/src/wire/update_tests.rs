//! Unit tests of the UPDATE codec: wire layouts of every attribute, round trips, and one test
//! per RFC 7606 rule (named after the section it pins).

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{Bytes, BytesMut};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::*;
use crate::wire::mp::NextHop;
use crate::wire::{
    Aggregator, Community, ExtAdmin, ExtCommunity, Message, Origin, Segment, SegmentType,
};

fn p4(s: &str) -> Nlri {
    Nlri::new(s.parse::<Ipv4Net>().unwrap())
}
fn p6(s: &str) -> Nlri {
    Nlri::new(s.parse::<Ipv6Net>().unwrap())
}
fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// An UPDATE body from its three raw parts.
fn body(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(withdrawn.len() as u16).to_be_bytes());
    b.extend_from_slice(withdrawn);
    b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    b.extend_from_slice(attrs);
    b.extend_from_slice(nlri);
    b
}

/// One raw attribute with a 1-byte length.
fn raw_attr(flags: u8, code: u8, value: &[u8]) -> Vec<u8> {
    let mut v = vec![flags, code, value.len() as u8];
    v.extend_from_slice(value);
    v
}

/// ORIGIN IGP, AS_PATH [65001] (4-octet), NEXT_HOP 192.0.2.1.
fn mandatory4() -> Vec<u8> {
    let mut v = raw_attr(0x40, 1, &[0]);
    v.extend(raw_attr(0x40, 2, &[2, 1, 0, 0, 0xfd, 0xe9]));
    v.extend(raw_attr(0x40, 3, &[192, 0, 2, 1]));
    v
}

const NLRI_10_1: [u8; 3] = [16, 10, 1];

fn decode(b: &[u8], cx: &Context) -> Update {
    Update::decode_body(b, cx).expect("decodes")
}

fn encode(u: &Update, cx: &Context) -> Vec<u8> {
    let mut out = BytesMut::new();
    u.encode_body(cx, &mut out).expect("encodes");
    out.to_vec()
}

/// Encode into a buffer holding junk; the junk must be untouched and the rest equal `want`.
fn assert_encodes_after_junk(u: &Update, cx: &Context, want: &[u8]) {
    let mut out = BytesMut::from(&[0xa5u8; 7][..]);
    u.encode_body(cx, &mut out).expect("encodes");
    assert_eq!(&out[..7], &[0xa5; 7]);
    assert_eq!(&out[7..], want);
}

fn one_attr(a: Attr) -> Update {
    Update {
        attrs: vec![a],
        ..Update::default()
    }
}

fn actions(u: &Update) -> Vec<(u8, Action)> {
    u.errors
        .iter()
        .map(|e| (e.type_code, e.action.clone()))
        .collect()
}

// ---- wire layouts of each attribute -------------------------------------------------------

#[test]
fn every_attribute_has_its_rfc_layout() {
    let m = Context::modern();
    let old = Context::default();
    let agg = Aggregator {
        asn: 65010,
        addr: ip("198.51.100.7"),
    };
    let cases: Vec<(Context, AttrValue, Vec<u8>)> = vec![
        (
            m.clone(),
            AttrValue::Origin(Origin::Egp),
            vec![0x40, 1, 1, 1],
        ),
        (
            m.clone(),
            AttrValue::AsPath(AsPath {
                segments: vec![
                    Segment::new(SegmentType::Sequence, [65001, 4_200_000_000]),
                    Segment::new(SegmentType::Set, [7]),
                ],
            }),
            vec![
                0x40, 2, 16, 2, 2, 0, 0, 0xfd, 0xe9, 0xfa, 0x56, 0xea, 0, 1, 1, 0, 0, 0, 7,
            ],
        ),
        (
            old.clone(),
            AttrValue::AsPath(AsPath {
                segments: vec![
                    Segment::new(SegmentType::ConfedSequence, [65001]),
                    Segment::new(SegmentType::ConfedSet, [3, 4]),
                ],
            }),
            vec![0x40, 2, 10, 3, 1, 0xfd, 0xe9, 4, 2, 0, 3, 0, 4],
        ),
        (
            m.clone(),
            AttrValue::NextHop(ip("192.0.2.1")),
            vec![0x40, 3, 4, 192, 0, 2, 1],
        ),
        (
            m.clone(),
            AttrValue::MultiExitDisc(0x01020304),
            vec![0x80, 4, 4, 1, 2, 3, 4],
        ),
        (
            m.clone(),
            AttrValue::LocalPref(100),
            vec![0x40, 5, 4, 0, 0, 0, 100],
        ),
        (m.clone(), AttrValue::AtomicAggregate, vec![0x40, 6, 0]),
        (
            m.clone(),
            AttrValue::Aggregator(agg),
            vec![0xc0, 7, 8, 0, 0, 0xfd, 0xf2, 198, 51, 100, 7],
        ),
        (
            old.clone(),
            AttrValue::Aggregator(agg),
            vec![0xc0, 7, 6, 0xfd, 0xf2, 198, 51, 100, 7],
        ),
        (
            m.clone(),
            AttrValue::Communities(vec![Community::new(65001, 100), Community::NO_EXPORT]),
            vec![0xc0, 8, 8, 0xfd, 0xe9, 0, 100, 0xff, 0xff, 0xff, 0x01],
        ),
        (
            m.clone(),
            AttrValue::OriginatorId(ip("10.0.0.1")),
            vec![0x80, 9, 4, 10, 0, 0, 1],
        ),
        (
            m.clone(),
            AttrValue::ClusterList(vec![ip("10.0.0.1"), ip("10.0.0.2")]),
            vec![0x80, 10, 8, 10, 0, 0, 1, 10, 0, 0, 2],
        ),
        (
            m.clone(),
            AttrValue::ExtCommunities(vec![ExtCommunity::from_admin(
                ExtCommunity::SUBTYPE_ROUTE_TARGET,
                ExtAdmin::As2 {
                    asn: 65001,
                    local: 7,
                },
            )]),
            vec![0xc0, 16, 8, 0, 2, 0xfd, 0xe9, 0, 0, 0, 7],
        ),
        (
            old.clone(),
            AttrValue::As4Path(AsPath::sequence([4_200_000_000])),
            vec![0xc0, 17, 6, 2, 1, 0xfa, 0x56, 0xea, 0],
        ),
        (
            old.clone(),
            AttrValue::As4Aggregator(agg),
            vec![0xc0, 18, 8, 0, 0, 0xfd, 0xf2, 198, 51, 100, 7],
        ),
        (
            m.clone(),
            AttrValue::LargeCommunities(vec![LargeCommunity::new(4_200_000_000, 1, 2)]),
            vec![0xc0, 32, 12, 0xfa, 0x56, 0xea, 0, 0, 0, 0, 1, 0, 0, 0, 2],
        ),
    ];
    for (cx, value, want) in cases {
        let u = one_attr(Attr::new(value.clone()));
        let full = body(&[], &want, &[]);
        assert_encodes_after_junk(&u, &cx, &full);
        let back = decode(&full, &cx);
        assert_eq!(back, u, "decoding {value:?}");
    }
}

#[test]
fn mp_reach_ipv6_with_link_local_and_rfc8950_ipv4_over_ipv6() {
    let cx = Context::modern();
    let global: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let ll: Ipv6Addr = "fe80::1".parse().unwrap();
    let v6 = MpReach {
        family: Family::IPV6_UNICAST,
        next_hop: NextHop::V6 {
            global,
            link_local: Some(ll),
        },
        nlri: MpNlri::Prefixes(vec![p6("2001:db8:1::/48")]),
    };
    let mut want = vec![0x80, 14, 0, 0, 2, 1, 32];
    want.extend(global.octets());
    want.extend(ll.octets());
    want.extend([0, 48, 0x20, 0x01, 0x0d, 0xb8, 0, 1]);
    want[2] = (want.len() - 3) as u8;
    let u = one_attr(Attr::new(AttrValue::MpReach(v6)));
    assert_encodes_after_junk(&u, &cx, &body(&[], &want, &[]));
    let back = decode(&body(&[], &want, &[]), &cx);
    assert_eq!(back.attrs, u.attrs);
    // Alone, an MP_REACH_NLRI lacks ORIGIN and AS_PATH (RFC 7606 §3 (d)).
    assert_eq!(back.treatment(), Treatment::TreatAsWithdraw);

    // RFC 8950: IPv4 NLRI with a 16-byte IPv6 next hop.
    let v4 = MpReach {
        family: Family::IPV4_UNICAST,
        next_hop: NextHop::V6 {
            global,
            link_local: None,
        },
        nlri: MpNlri::Prefixes(vec![p4("10.1.0.0/16")]),
    };
    let mut want = vec![0x80, 14, 0, 0, 1, 1, 16];
    want.extend(global.octets());
    want.extend([0, 16, 10, 1]);
    want[2] = (want.len() - 3) as u8;
    let u = one_attr(Attr::new(AttrValue::MpReach(v4)));
    assert_encodes_after_junk(&u, &cx, &body(&[], &want, &[]));
    assert_eq!(decode(&body(&[], &want, &[]), &cx).attrs, u.attrs);
}

#[test]
fn unknown_family_is_kept_opaque_byte_for_byte() {
    let cx = Context::modern();
    // L2VPN EVPN (25/70): next hop 4 bytes, then NLRI bytes the codec does not interpret.
    let value = [0, 25, 70, 4, 10, 0, 0, 1, 0, 2, 3, 0xaa, 0xbb, 0xcc];
    let raw = raw_attr(0x90, 14, &value);
    let mut raw_ext = vec![0x90, 14, 0, value.len() as u8];
    raw_ext.extend(value);
    let b = body(&[], &raw_ext, &[]);
    let u = decode(&b, &cx);
    let m = u.mp_reach().unwrap();
    assert_eq!(m.family, Family::new(25, 70));
    assert_eq!(
        m.next_hop,
        NextHop::Opaque(Bytes::from_static(&[10, 0, 0, 1]))
    );
    assert_eq!(
        m.nlri,
        MpNlri::Opaque(Bytes::from_static(&[2, 3, 0xaa, 0xbb, 0xcc]))
    );
    assert_eq!(encode(&u, &cx), b);
    assert_ne!(raw, raw_ext);
}

#[test]
fn extended_length_flag_is_kept_and_set_when_needed() {
    let cx = Context::modern();
    // A short ORIGIN with the Extended Length bit, as some speakers send: kept.
    let mut a = vec![0x50, 1, 0, 1, 2];
    let mut all = a.clone();
    all.extend(raw_attr(0x40, 2, &[]));
    let b = body(&[], &all, &[]);
    let u = decode(&b, &cx);
    assert_eq!(u.attrs[0].flags, 0x50);
    assert_eq!(encode(&u, &cx), b);
    // A value over 255 bytes gets the bit even if the flags lack it.
    let cs: Vec<Community> = (0..70).map(Community).collect();
    let u = one_attr(Attr::new(AttrValue::Communities(cs)));
    let enc = encode(&u, &cx);
    assert_eq!(&enc[4..8], &[0xd0, 8, 1, 24]);
    a.clear();
    let back = decode(&enc, &cx);
    assert_eq!(back.attrs[0].flags, 0xd0);
    assert_eq!(back.communities().len(), 70);
}

#[test]
fn unknown_attributes_round_trip_and_readvertise_per_rfc4271_section5() {
    let cx = Context::modern();
    let mut attrs = mandatory4();
    attrs.extend(raw_attr(0xc0 | 0x0f, 99, &[1, 2, 3])); // optional transitive, low bits set
    attrs.extend(raw_attr(0x80, 98, &[4])); // optional non-transitive
    let b = body(&[], &attrs, &NLRI_10_1);
    let u = decode(&b, &cx);
    assert!(u.errors.is_empty());
    assert_eq!(encode(&u, &cx), b);
    let re = u.attrs_for_readvertisement();
    assert_eq!(re.len(), 4);
    assert_eq!(
        re[3],
        Attr::unknown(0xef, 99, Bytes::from_static(&[1, 2, 3]))
    );
    assert!(re.iter().all(|a| a.type_code() != 98));
}

#[test]
fn add_path_ids_per_family() {
    let cx = Context {
        four_octet_as: true,
        add_path: vec![Family::IPV4_UNICAST],
        extended_message: false,
    };
    let mut attrs = mandatory4();
    let wd = [0, 0, 0, 9, 24, 10, 2, 3];
    let nlri = [0, 0, 0, 1, 16, 10, 1, 0, 0, 0, 2, 16, 10, 1];
    let b = body(&wd, &attrs, &nlri);
    let u = decode(&b, &cx);
    assert_eq!(
        u.nlri,
        vec![
            Nlri::with_path_id("10.1.0.0/16".parse::<Ipv4Net>().unwrap(), 1),
            Nlri::with_path_id("10.1.0.0/16".parse::<Ipv4Net>().unwrap(), 2),
        ]
    );
    assert_eq!(u.withdrawn[0].path_id, Some(9));
    assert_eq!(encode(&u, &cx), b);
    // Without ADD-PATH for IPv4 the same bytes are a different (invalid) NLRI.
    attrs.clear();
    assert!(Update::decode_body(&b, &Context::modern()).is_err());
}

#[test]
fn end_of_rib_markers() {
    let cx = Context::modern();
    let eor4 = Update::end_of_rib(Family::IPV4_UNICAST);
    assert_eq!(encode(&eor4, &cx), vec![0, 0, 0, 0]);
    assert_eq!(
        decode(&[0, 0, 0, 0], &cx).end_of_rib_family(),
        Some(Family::IPV4_UNICAST)
    );
    let eor6 = Update::end_of_rib(Family::IPV6_UNICAST);
    let b = encode(&eor6, &cx);
    assert_eq!(b, vec![0, 0, 0, 6, 0x80, 15, 3, 0, 2, 1]);
    assert_eq!(
        decode(&b, &cx).end_of_rib_family(),
        Some(Family::IPV6_UNICAST)
    );
    // A withdrawal is not an End-of-RIB.
    let mut w = Update::end_of_rib(Family::IPV6_UNICAST);
    w.attrs[0] = Attr::new(AttrValue::MpUnreach(MpUnreach {
        family: Family::IPV6_UNICAST,
        withdrawn: MpNlri::Prefixes(vec![p6("2001:db8::/32")]),
    }));
    assert_eq!(w.end_of_rib_family(), None);
    let w4 = Update {
        withdrawn: vec![p4("10.0.0.0/8")],
        ..Update::default()
    };
    assert_eq!(w4.end_of_rib_family(), None);
}

#[test]
fn trailing_host_bits_are_cleared_per_rfc4271_section4_3() {
    let cx = Context::modern();
    let b = body(&[], &mandatory4(), &[20, 10, 1, 0xff, 32, 1, 2, 3, 4, 0]);
    let u = decode(&b, &cx);
    assert_eq!(u.nlri[0].prefix, "10.1.240.0/20".parse::<IpNet>().unwrap());
    assert_eq!(u.nlri[1].prefix, "1.2.3.4/32".parse::<IpNet>().unwrap());
    assert_eq!(u.nlri[2].prefix, "0.0.0.0/0".parse::<IpNet>().unwrap());
    // Re-encoded with the host bits zero.
    assert_eq!(
        &encode(&u, &cx)[4 + mandatory4().len()..],
        &[20, 10, 1, 0xf0, 32, 1, 2, 3, 4, 0]
    );
}

#[test]
fn full_update_round_trips_and_decodes_through_message() {
    for cx in [Context::modern(), Context::default()] {
        let u = Update {
            withdrawn: vec![p4("192.0.2.0/24")],
            attrs: vec![
                Attr::new(AttrValue::MpReach(MpReach {
                    family: Family::IPV6_UNICAST,
                    next_hop: NextHop::V6 {
                        global: "2001:db8::1".parse().unwrap(),
                        link_local: None,
                    },
                    nlri: MpNlri::Prefixes(vec![p6("2001:db8:5::/48"), p6("::/0")]),
                })),
                Attr::new(AttrValue::Origin(Origin::Incomplete)),
                Attr::new(AttrValue::AsPath(AsPath::sequence([65001, 65002]))),
                Attr::new(AttrValue::NextHop(ip("192.0.2.1"))),
                Attr::new(AttrValue::MultiExitDisc(5)),
                Attr::new(AttrValue::LocalPref(200)),
                Attr::new(AttrValue::Communities(vec![Community::new(1, 2)])),
                Attr::new(AttrValue::LargeCommunities(vec![LargeCommunity::new(
                    1, 2, 3,
                )])),
            ],
            nlri: vec![p4("10.0.0.0/8"), p4("10.1.2.0/24")],
            errors: vec![],
        };
        let msg = Message::Update(u.clone()).to_bytes(&cx).unwrap();
        assert_eq!(
            usize::from(u16::from_be_bytes([msg[16], msg[17]])),
            msg.len()
        );
        assert_eq!(Message::decode(&msg, &cx).unwrap(), Message::Update(u));
    }
}

#[test]
fn encode_error_leaves_buffer_untouched() {
    let cx = Context::modern();
    let seg = Segment::new(SegmentType::Sequence, vec![1u32; 300]);
    let u = one_attr(Attr::new(AttrValue::AsPath(AsPath {
        segments: vec![seg],
    })));
    let mut out = BytesMut::from(&[0xa5u8; 3][..]);
    assert!(u.encode_body(&cx, &mut out).is_err());
    assert_eq!(&out[..], &[0xa5; 3]);
}

// ---- RFC 7606 ---------------------------------------------------------------------------

#[test]
fn rfc7606_3_withdrawn_routes_length_too_large_is_still_session_reset() {
    let e = Update::decode_body(&[0, 9, 24, 10, 0, 0, 0, 0], &Context::modern()).unwrap_err();
    assert_eq!((e.code, e.subcode), (3, 1));
}

#[test]
fn rfc7606_3_total_attribute_length_too_large_is_still_session_reset() {
    let e = Update::decode_body(&[0, 0, 0, 9, 0x40, 1, 1, 0], &Context::modern()).unwrap_err();
    assert_eq!((e.code, e.subcode, e.offset), (3, 1, 2));
}

#[test]
fn rfc7606_3c_optional_transitive_flag_conflict_is_treat_as_withdraw() {
    let cx = Context::modern();
    // ORIGIN marked optional.
    let mut attrs = raw_attr(0xc0, 1, &[0]);
    attrs.extend(raw_attr(0x40, 2, &[]));
    attrs.extend(raw_attr(0x40, 3, &[192, 0, 2, 1]));
    let u = decode(&body(&[], &attrs, &NLRI_10_1), &cx);
    assert_eq!(actions(&u), vec![(1, Action::TreatAsWithdraw)]);
    assert_eq!(u.errors[0].subcode, 4);
    assert_eq!(u.errors[0].data, vec![0xc0, 1, 1, 0]);
    assert_eq!(u.errors[0].offset, 4);
    assert_eq!(u.treatment(), Treatment::TreatAsWithdraw);
    // The routes are still there for the session to withdraw.
    assert_eq!(u.nlri, vec![p4("10.1.0.0/16")]);
    // The Partial bit alone is not a conflict.
    let mut attrs = raw_attr(0x60, 1, &[0]);
    attrs.extend(raw_attr(0x40, 2, &[]));
    attrs.extend(raw_attr(0x40, 3, &[192, 0, 2, 1]));
    assert_eq!(decode(&body(&[], &attrs, &NLRI_10_1), &cx).errors, vec![]);
}

#[test]
fn rfc7606_3d_missing_well_known_mandatory_is_treat_as_withdraw() {
    let cx = Context::modern();
    let attrs = raw_attr(0x40, 1, &[0]);
    let u = decode(&body(&[], &attrs, &NLRI_10_1), &cx);
    assert_eq!(
        actions(&u),
        vec![(2, Action::TreatAsWithdraw), (3, Action::TreatAsWithdraw)]
    );
    assert_eq!(u.errors[0].subcode, 3);
    assert_eq!(u.errors[0].data, vec![2]);
    // Withdraw-only UPDATEs need no attributes.
    let u = decode(&body(&NLRI_10_1, &[], &[]), &cx);
    assert_eq!(u.treatment(), Treatment::Normal);
    // With only MP_REACH_NLRI, NEXT_HOP is not required (RFC 4760 §3), ORIGIN/AS_PATH are.
    let mut attrs = raw_attr(
        0x80,
        14,
        &[
            0, 2, 1, 16, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 32, 0x20, 1,
            0xd, 0xb8,
        ],
    );
    attrs.extend(raw_attr(0x40, 1, &[0]));
    attrs.extend(raw_attr(0x40, 2, &[]));
    let u = decode(&body(&[], &attrs, &[]), &cx);
    assert_eq!(u.errors, vec![]);
    assert_eq!(
        u.mp_reach().unwrap().nlri.prefixes(),
        &[p6("2001:db8::/32")]
    );
}

#[test]
fn rfc7606_3g_duplicate_attribute_keeps_the_first() {
    let cx = Context::modern();
    let mut attrs = mandatory4();
    attrs.extend(raw_attr(0xc0, 8, &[0, 1, 0, 1]));
    attrs.extend(raw_attr(0xc0, 8, &[0, 2, 0, 2]));
    let u = decode(&body(&[], &attrs, &NLRI_10_1), &cx);
    assert_eq!(u.communities(), &[Community::new(1, 1)]);
    assert_eq!(actions(&u), vec![(8, Action::AttributeDiscard)]);
    assert_eq!(u.treatment(), Treatment::AttributeDiscard);
}

#[test]
fn rfc7606_3g_duplicate_mp_reach_or_unreach_is_session_reset() {
    let cx = Context::modern();
    for code in [14u8, 15] {
        let value: &[u8] = if code == 14 {
            &[
                0, 2, 1, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0,
            ]
        } else {
            &[0, 2, 1]
        };
        let mut attrs = raw_attr(0x80, code, value);
        attrs.extend(raw_attr(0x80, code, value));
        let e = Update::decode_body(&body(&[], &attrs, &[]), &cx).unwrap_err();
        assert_eq!((e.code, e.subcode), (3, 1), "type {code}");
    }
}

#[test]
fn rfc7606_3_the_most_severe_action_wins() {
    let cx = Context::modern();
    let mut attrs = mandatory4();
    attrs.extend(raw_attr(0x40, 6, &[1])); // ATOMIC_AGGREGATE with a value: discard
    attrs.extend(raw_attr(0x80, 4, &[1, 2])); // MED of 2 bytes: treat-as-withdraw
    let u = decode(&body(&[], &attrs, &NLRI_10_1), &cx);
    assert_eq!(
        actions(&u),
        vec![(6, Action::AttributeDiscard), (4, Action::TreatAsWithdraw)]
    );
    assert_eq!(u.treatment(), Treatment::TreatAsWithdraw);
}

#[test]
fn rfc7606_4_attribute_overrunning_total_length_is_treat_as_withdraw() {
    let cx = Context::modern();
    let mut attrs = mandatory4();
    attrs.extend([0xc0, 8, 9, 0, 1]); // says 9 bytes, 2 left
    let u = decode(&body(&[], &attrs, &NLRI_10_1), &cx);
    assert_eq!(actions(&u), vec![(8, Action::TreatAsWithdraw)]);
    assert_eq!(u.errors[0].offset, 4 + mandatory4().len());
    // The Total Attribute Length located the NLRI.
    assert_eq!(u.nlri, vec![p4("10.1.0.0/16")]);
    assert_eq!(u.attrs.len(), 3);
}

#[test]
fn rfc7606_4_too_few_octets_for_an_attribute_header_is_treat_as_withdraw() {
    let cx = Context::modern();
    for tail in [&[0x40u8, 1][..], &[0x50, 8, 0][..]] {
        let mut attrs = mandatory4();
        attrs.extend(tail);
        let u = decode(&body(&[], &attrs, &NLRI_10_1), &cx);
        assert_eq!(u.errors.len(), 1, "{tail:?}");
        assert_eq!(u.errors[0].action, Action::TreatAsWithdraw);
        assert_eq!(u.nlri, vec![p4("10.1.0.0/16")]);
    }
}

#[test]
fn rfc7606_4_overrunning_mp_attribute_is_session_reset() {
    let mut attrs = mandatory4();
    attrs.extend([0x80, 14, 40, 0, 2, 1]);
    let e = Update::decode_body(&body(&[], &attrs, &[]), &Context::modern()).unwrap_err();
    assert_eq!((e.code, e.subcode), (3, 1));
}

#[test]
fn rfc7606_5_3_bad_prefix_in_nlri_or_withdrawn_field_is_session_reset() {
    let cx = Context::modern();
    // Prefix length 33.
    let e = Update::decode_body(&body(&[], &mandatory4(), &[33, 1, 2, 3, 4, 5]), &cx).unwrap_err();
    assert_eq!((e.code, e.subcode), (3, 10));
    assert_eq!(e.offset, 4 + mandatory4().len());
    // Prefix overruns the field.
    let e = Update::decode_body(&body(&[24, 10, 1], &[], &[]), &cx).unwrap_err();
    assert_eq!((e.code, e.subcode, e.offset), (3, 10, 2));
}

#[test]
fn rfc7606_5_3_bad_prefix_in_mp_attribute_is_afi_safi_disable() {
    let cx = Context::modern();
    let mut attrs = mandatory4();
    // MP_UNREACH IPv6 with prefix length 129.
    attrs.extend(raw_attr(0x80, 15, &[0, 2, 1, 129, 0]));
    let u = decode(&body(&[], &attrs, &NLRI_10_1), &cx);
    assert_eq!(
        actions(&u),
        vec![(15, Action::AfiSafiDisable(Family::IPV6_UNICAST))]
    );
    assert_eq!(
        u.treatment(),
        Treatment::AfiSafiDisable(vec![Family::IPV6_UNICAST])
    );
    assert_eq!(u.errors[0].notification().subcode, 9);
    assert!(u.mp_unreach().is_none());
}

#[test]
fn rfc7606_7_1_origin_malformed_is_treat_as_withdraw() {
    for v in [&[3u8][..], &[0, 0][..]] {
        let mut attrs = raw_attr(0x40, 1, v);
        attrs.extend(&mandatory4()[4..]);
        let u = decode(&body(&[], &attrs, &NLRI_10_1), &Context::modern());
        assert_eq!(actions(&u), vec![(1, Action::TreatAsWithdraw)], "{v:?}");
        assert!(u.origin().is_none());
    }
}

#[test]
fn rfc7606_7_2_as_path_malformed_is_treat_as_withdraw() {
    let cx = Context::modern();
    for v in [
        &[2u8, 0][..],              // zero-length segment
        &[5, 1, 0, 0, 0, 1][..],    // unknown segment type
        &[2, 1, 0, 0, 0, 1, 2][..], // lone trailing octet
        &[2, 2, 0, 0, 0, 1][..],    // overrun
        &[2, 1, 0, 1][..],          // 2-octet path on a 4-octet session
    ] {
        let mut attrs = raw_attr(0x40, 1, &[0]);
        attrs.extend(raw_attr(0x40, 2, v));
        attrs.extend(raw_attr(0x40, 3, &[192, 0, 2, 1]));
        let u = decode(&body(&[], &attrs, &NLRI_10_1), &cx);
        assert_eq!(actions(&u), vec![(2, Action::TreatAsWithdraw)], "{v:?}");
        assert_eq!(u.errors[0].subcode, 11);
    }
}

#[test]
fn rfc7606_7_3_to_7_10_fixed_and_multiple_lengths() {
    let cx = Context::modern();
    let cases: &[(u8, u8, &[u8], Action)] = &[
        (0x40, 3, &[1, 2, 3], Action::TreatAsWithdraw), // 7.3 NEXT_HOP
        (0x80, 4, &[1, 2, 3, 4, 5], Action::TreatAsWithdraw), // 7.4 MED
        (0x40, 5, &[1], Action::TreatAsWithdraw),       // 7.5 LOCAL_PREF
        (0x40, 6, &[0], Action::AttributeDiscard),      // 7.6 ATOMIC_AGGREGATE
        (0xc0, 7, &[0, 1, 10, 0, 0, 1], Action::AttributeDiscard), // 7.7 AGGREGATOR (6 on 4-octet)
        (0xc0, 8, &[], Action::TreatAsWithdraw),        // 7.8 COMMUNITIES empty
        (0xc0, 8, &[1, 2, 3], Action::TreatAsWithdraw), // 7.8 not a multiple of 4
        (0x80, 9, &[1, 2, 3], Action::TreatAsWithdraw), // 7.9 ORIGINATOR_ID
        (0x80, 10, &[1, 2, 3, 4, 5], Action::TreatAsWithdraw), // 7.10 CLUSTER_LIST
        (0xc0, 16, &[1, 2, 3, 4], Action::TreatAsWithdraw), // 7.14 EXTENDED COMMUNITIES
        (0xc0, 32, &[0; 8], Action::TreatAsWithdraw),   // RFC 8092 §6 LARGE_COMMUNITY
    ];
    for &(flags, code, v, ref action) in cases {
        let mut attrs = if code == 3 {
            let mut a = raw_attr(0x40, 1, &[0]);
            a.extend(raw_attr(0x40, 2, &[]));
            a
        } else {
            mandatory4()
        };
        attrs.extend(raw_attr(flags, code, v));
        let u = decode(&body(&[], &attrs, &NLRI_10_1), &cx);
        assert_eq!(
            actions(&u),
            vec![(code, action.clone())],
            "type {code} {v:?}"
        );
        assert!(u.attr(code).is_none(), "type {code} dropped");
        assert_eq!(u.errors[0].data, raw_attr(flags, code, v));
    }
}

#[test]
fn rfc7606_7_11_mp_reach_next_hop_length_is_afi_safi_disable() {
    let cx = Context::modern();
    for nh_len in [4u8, 8, 20] {
        let mut v = vec![0, 2, 1, nh_len];
        v.extend(vec![0; usize::from(nh_len)]);
        v.extend([0, 32, 0x20, 1, 0xd, 0xb8]);
        let mut attrs = raw_attr(0x80, 14, &v);
        attrs.extend(&mandatory4()[..4 + 9]);
        let u = decode(&body(&[], &attrs, &[]), &cx);
        assert_eq!(
            actions(&u),
            vec![(14, Action::AfiSafiDisable(Family::IPV6_UNICAST))],
            "next hop length {nh_len}"
        );
    }
    // Next hop longer than the attribute; Reserved octet missing.
    for v in [&[0u8, 2, 1, 16, 0][..], &[0, 1, 1, 4, 1, 2, 3, 4][..]] {
        let u = decode(&body(&[], &raw_attr(0x80, 14, v), &[]), &cx);
        assert!(
            matches!(u.errors[0].action, Action::AfiSafiDisable(_)),
            "{v:?}"
        );
    }
}

#[test]
fn rfc7606_7_11_mp_attribute_too_short_for_afi_safi_is_session_reset() {
    for code in [14u8, 15] {
        let attrs = raw_attr(0x80, code, &[0, 2]);
        let e = Update::decode_body(&body(&[], &attrs, &[]), &Context::modern()).unwrap_err();
        assert_eq!((e.code, e.subcode), (3, 9), "type {code}");
        assert_eq!(e.data, attrs);
    }
}

#[test]
fn rfc6793_6_malformed_as4_attributes_are_discarded() {
    let cx = Context::default();
    let mut base = raw_attr(0x40, 1, &[0]);
    base.extend(raw_attr(0x40, 2, &[2, 1, 0x5b, 0xa0]));
    base.extend(raw_attr(0x40, 3, &[192, 0, 2, 1]));
    for (code, v) in [
        (17u8, &[2u8, 1, 0, 0][..]),    // shorter than 6
        (17, &[2, 0, 0, 0, 0, 0][..]),  // zero-length segment
        (17, &[9, 1, 0, 0, 0, 1][..]),  // unknown segment type
        (18, &[0, 0, 1, 0, 10, 0][..]), // AS4_AGGREGATOR not 8 bytes
    ] {
        let mut attrs = base.clone();
        attrs.extend(raw_attr(0xc0, code, v));
        let u = decode(&body(&[], &attrs, &NLRI_10_1), &cx);
        assert_eq!(actions(&u), vec![(code, Action::AttributeDiscard)], "{v:?}");
    }
}

#[test]
fn rfc6793_6_as4_attributes_between_new_speakers_are_discarded() {
    let mut attrs = mandatory4();
    attrs.extend(raw_attr(0xc0, 17, &[2, 1, 0, 0, 0, 1]));
    let u = decode(&body(&[], &attrs, &NLRI_10_1), &Context::modern());
    assert_eq!(actions(&u), vec![(17, Action::AttributeDiscard)]);
    assert!(u.attr(17).is_none());
}

#[test]
fn rfc4271_6_3_unrecognized_well_known_attribute_is_session_reset() {
    let mut attrs = mandatory4();
    let bad = raw_attr(0x40, 99, &[1]);
    attrs.extend(&bad);
    let e = Update::decode_body(&body(&[], &attrs, &NLRI_10_1), &Context::modern()).unwrap_err();
    assert_eq!((e.code, e.subcode), (3, 2));
    assert_eq!(e.data, bad);
    assert_eq!(e.offset, 4 + mandatory4().len());
}

#[test]
fn errors_through_message_decode_have_message_offsets() {
    let cx = Context::modern();
    let b = body(&[], &mandatory4(), &[33, 1, 2, 3, 4, 5]);
    let mut msg = vec![0xff; 16];
    msg.extend(((19 + b.len()) as u16).to_be_bytes());
    msg.push(2);
    msg.extend(&b);
    let e = Message::decode(&msg, &cx).unwrap_err();
    assert_eq!(e.offset, 19 + 4 + mandatory4().len());
}

// ---- properties ---------------------------------------------------------------------------

mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::wire::arbitrary::{context, context_and_update};
    use crate::wire::EncodeError;

    proptest! {
        #[test]
        fn decode_of_encode_is_identity_and_lengths_match((cx, u) in context_and_update()) {
            let msg = Message::Update(u.clone());
            let bytes = match msg.to_bytes(&cx) {
                Ok(b) => b,
                Err(EncodeError::TooLong { .. }) => return Err(TestCaseError::reject("too long")),
                Err(e) => return Err(TestCaseError::fail(format!("encode: {e}"))),
            };
            prop_assert_eq!(usize::from(u16::from_be_bytes([bytes[16], bytes[17]])), bytes.len());
            prop_assert_eq!(crate::wire::frame_len(&bytes, cx.max_message_len()), Ok(Some(bytes.len())));
            let back = Message::decode(&bytes, &cx).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(back, msg);
        }

        #[test]
        fn arbitrary_bytes_never_panic(cx in context(), b in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(u) = Update::decode_body(&b, &cx) {
                // Whatever decoded re-encodes and decodes to the same value.
                let mut out = BytesMut::new();
                if u.encode_body(&cx, &mut out).is_ok() {
                    let again = Update::decode_body(&out, &cx).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(&again.attrs, &u.attrs);
                    prop_assert_eq!(&again.nlri, &u.nlri);
                    prop_assert_eq!(&again.withdrawn, &u.withdrawn);
                }
                let _ = u.treatment();
            }
        }

        #[test]
        fn corrupted_updates_never_panic((cx, u) in context_and_update(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4)) {
            let mut out = BytesMut::new();
            if u.encode_body(&cx, &mut out).is_ok() && !out.is_empty() {
                let mut b = out.to_vec();
                for (i, x) in flips {
                    let n = b.len();
                    b[i % n] ^= x | 1;
                }
                let _ = Update::decode_body(&b, &cx).map(|u| u.treatment());
                let _ = Update::decode_body(&b[..b.len() / 2], &cx);
            }
        }
    }
}
