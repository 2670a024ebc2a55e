//! proptest strategies for UPDATE values (feature `arbitrary`, always on in this crate's
//! tests). Every generated `Update` is consistent with the `Context` it was generated for —
//! path ids exactly where ADD-PATH is negotiated, 2-octet AS numbers on 2-octet sessions,
//! AS4_* attributes only there, well-known mandatory attributes whenever routes are announced,
//! flags with the Extended Length bit where the value needs it — so that
//! `decode(encode(x)) == x` is the property to check.
//!
//! Entry points: `context()`, `update(&cx)`, and `context_and_update()`.

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{Bytes, BytesMut};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::collection::vec;
use proptest::prelude::*;

use super::aspath::{AsPath, Segment, SegmentType};
use super::attr::{attr_type as t, expected_flags, flag, Aggregator, Attr, AttrValue, Origin};
use super::community::{Community, ExtCommunity, LargeCommunity};
use super::mp::{MpNlri, MpReach, MpUnreach, NextHop};
use super::nlri::Nlri;
use super::{Context, Family, Update};

/// An opaque family (L2VPN EVPN) to exercise the kept-as-bytes path.
const EVPN: Family = Family::new(25, 70);

/// Any session context: 2- or 4-octet AS, ADD-PATH for any subset of IPv4/IPv6 unicast,
/// extended messages or not.
pub fn context() -> impl Strategy<Value = Context> {
    (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
        |(four_octet_as, ap4, ap6, extended_message)| Context {
            four_octet_as,
            add_path: [
                ap4.then_some(Family::IPV4_UNICAST),
                ap6.then_some(Family::IPV6_UNICAST),
            ]
            .into_iter()
            .flatten()
            .collect(),
            extended_message,
        },
    )
}

pub fn ipv4_net() -> impl Strategy<Value = Ipv4Net> {
    (any::<u32>(), 0u8..=32).prop_map(|(a, l)| Ipv4Net::new_assert(Ipv4Addr::from(a), l).trunc())
}

pub fn ipv6_net() -> impl Strategy<Value = Ipv6Net> {
    (any::<u128>(), 0u8..=128).prop_map(|(a, l)| Ipv6Net::new_assert(Ipv6Addr::from(a), l).trunc())
}

/// One prefix of the family, with a path id iff `add_path`.
pub fn nlri(v6: bool, add_path: bool) -> BoxedStrategy<Nlri> {
    let prefix: BoxedStrategy<IpNet> = if v6 {
        ipv6_net().prop_map(IpNet::V6).boxed()
    } else {
        ipv4_net().prop_map(IpNet::V4).boxed()
    };
    (prefix, any::<u32>())
        .prop_map(move |(prefix, id)| Nlri {
            prefix,
            path_id: add_path.then_some(id),
        })
        .boxed()
}

pub fn asn(four_octet: bool) -> BoxedStrategy<u32> {
    if four_octet {
        any::<u32>().boxed()
    } else {
        (0u32..=0xffff).boxed()
    }
}

pub fn segment(four_octet: bool) -> impl Strategy<Value = Segment> {
    (
        prop_oneof![
            Just(SegmentType::Set),
            Just(SegmentType::Sequence),
            Just(SegmentType::ConfedSequence),
            Just(SegmentType::ConfedSet),
        ],
        vec(asn(four_octet), 1..12),
    )
        .prop_map(|(kind, asns)| Segment { kind, asns })
}

pub fn as_path(four_octet: bool, min_segments: usize) -> impl Strategy<Value = AsPath> {
    vec(segment(four_octet), min_segments..4).prop_map(|segments| AsPath { segments })
}

fn ipv4() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}

fn ipv6() -> impl Strategy<Value = Ipv6Addr> {
    any::<u128>().prop_map(Ipv6Addr::from)
}

fn aggregator(four_octet: bool) -> impl Strategy<Value = Aggregator> {
    (asn(four_octet), ipv4()).prop_map(|(asn, addr)| Aggregator { asn, addr })
}

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn mp_family() -> impl Strategy<Value = Family> {
    prop_oneof![
        Just(Family::IPV4_UNICAST),
        Just(Family::IPV6_UNICAST),
        Just(Family::new(1, 2)),
        Just(Family::new(2, 2)),
        Just(EVPN),
    ]
}

fn mp_nlri(family: Family, cx: &Context) -> BoxedStrategy<MpNlri> {
    match super::mp::prefix_family(family) {
        Some(v6) => vec(nlri(v6, cx.add_path(family)), 0..6)
            .prop_map(MpNlri::Prefixes)
            .boxed(),
        None => bytes(24).prop_map(MpNlri::Opaque).boxed(),
    }
}

pub fn mp_reach(cx: &Context) -> BoxedStrategy<MpReach> {
    let cx = cx.clone();
    mp_family()
        .prop_flat_map(move |family| {
            let v6_hop = (ipv6(), proptest::option::of(ipv6()))
                .prop_map(|(global, link_local)| NextHop::V6 { global, link_local });
            let next_hop: BoxedStrategy<NextHop> = match super::mp::prefix_family(family) {
                // RFC 8950: IPv4 NLRI may have an IPv6 next hop.
                Some(false) => prop_oneof![ipv4().prop_map(NextHop::V4), v6_hop].boxed(),
                Some(true) => v6_hop.boxed(),
                None => bytes(20).prop_map(NextHop::Opaque).boxed(),
            };
            (Just(family), next_hop, mp_nlri(family, &cx))
        })
        .prop_map(|(family, next_hop, nlri)| MpReach {
            family,
            next_hop,
            nlri,
        })
        .boxed()
}

pub fn mp_unreach(cx: &Context) -> BoxedStrategy<MpUnreach> {
    let cx = cx.clone();
    mp_family()
        .prop_flat_map(move |family| (Just(family), mp_nlri(family, &cx)))
        .prop_map(|(family, withdrawn)| MpUnreach { family, withdrawn })
        .boxed()
}

/// Type codes this codec does not know.
fn unknown_type() -> impl Strategy<Value = u8> {
    prop_oneof![11u8..=13, 19u8..=31, 33u8..=255]
}

/// Any attribute value valid under `cx` (AS4_* only on 2-octet sessions, RFC 6793 §6).
pub fn attr_value(cx: &Context) -> BoxedStrategy<AttrValue> {
    let four = cx.four_octet_as;
    let mut options: Vec<BoxedStrategy<AttrValue>> = vec![
        prop_oneof![
            Just(Origin::Igp),
            Just(Origin::Egp),
            Just(Origin::Incomplete)
        ]
        .prop_map(AttrValue::Origin)
        .boxed(),
        as_path(four, 0).prop_map(AttrValue::AsPath).boxed(),
        ipv4().prop_map(AttrValue::NextHop).boxed(),
        any::<u32>().prop_map(AttrValue::MultiExitDisc).boxed(),
        any::<u32>().prop_map(AttrValue::LocalPref).boxed(),
        Just(AttrValue::AtomicAggregate).boxed(),
        aggregator(four).prop_map(AttrValue::Aggregator).boxed(),
        vec(any::<u32>().prop_map(Community), 1..8)
            .prop_map(AttrValue::Communities)
            .boxed(),
        ipv4().prop_map(AttrValue::OriginatorId).boxed(),
        vec(ipv4(), 1..5).prop_map(AttrValue::ClusterList).boxed(),
        mp_reach(cx).prop_map(AttrValue::MpReach).boxed(),
        mp_unreach(cx).prop_map(AttrValue::MpUnreach).boxed(),
        vec(any::<[u8; 8]>().prop_map(ExtCommunity), 1..5)
            .prop_map(AttrValue::ExtCommunities)
            .boxed(),
        vec(
            (any::<u32>(), any::<u32>(), any::<u32>())
                .prop_map(|(g, a, b)| LargeCommunity::new(g, a, b)),
            1..5,
        )
        .prop_map(AttrValue::LargeCommunities)
        .boxed(),
        (unknown_type(), prop_oneof![4 => bytes(24), 1 => bytes(300)])
            .prop_map(|(type_code, value)| AttrValue::Unknown { type_code, value })
            .boxed(),
    ];
    if !four {
        options.push(as_path(true, 1).prop_map(AttrValue::As4Path).boxed());
        options.push(aggregator(true).prop_map(AttrValue::As4Aggregator).boxed());
    }
    proptest::strategy::Union::new(options).boxed()
}

/// Flags for `value`: the Optional/Transitive bits its type requires (any, with Optional, for
/// unknown types) plus random Partial, Extended Length and unused low bits — with Extended
/// Length forced on when the encoded value exceeds 255 bytes, as the encoder does.
fn with_flags(value: AttrValue, noise: u8, cx: &Context) -> Attr {
    let flags = match expected_flags(value.type_code()) {
        Some(ot) => ot | (noise & (flag::PARTIAL | flag::EXTENDED_LENGTH | 0x0f)),
        None => flag::OPTIONAL | (noise & !flag::OPTIONAL),
    };
    let mut a = Attr { flags, value };
    let mut scratch = BytesMut::new();
    if a.encode(cx, &mut scratch).is_ok() {
        a.flags = scratch[0];
    }
    a
}

/// Any UPDATE valid under `cx`: up to 8 withdrawn and 8 announced IPv4 prefixes and up to
/// 10 distinct attributes in random order.
pub fn update(cx: &Context) -> BoxedStrategy<Update> {
    let cx = cx.clone();
    let ap4 = cx.add_path(Family::IPV4_UNICAST);
    (
        vec(nlri(false, ap4), 0..8),
        vec((attr_value(&cx), any::<u8>()), 0..10),
        vec(nlri(false, ap4), 0..8),
        any::<(u8, u8, u8)>(),
    )
        .prop_map(move |(withdrawn, values, nlri, noise)| {
            let mut attrs: Vec<Attr> = Vec::new();
            for (v, n) in values {
                if attrs.iter().all(|a| a.type_code() != v.type_code()) {
                    attrs.push(with_flags(v, n, &cx));
                }
            }
            // RFC 7606 §3 (d): announcing routes needs ORIGIN and AS_PATH (and NEXT_HOP for
            // the NLRI field), or the decoder reports treat-as-withdraw.
            let has = |attrs: &[Attr], code| attrs.iter().any(|a| a.type_code() == code);
            if !nlri.is_empty() || has(&attrs, t::MP_REACH_NLRI) {
                if !has(&attrs, t::ORIGIN) {
                    attrs.insert(0, with_flags(AttrValue::Origin(Origin::Igp), noise.0, &cx));
                }
                if !has(&attrs, t::AS_PATH) {
                    let p = AttrValue::AsPath(AsPath::sequence([64_512]));
                    attrs.insert(0, with_flags(p, noise.1, &cx));
                }
                if !nlri.is_empty() && !has(&attrs, t::NEXT_HOP) {
                    let nh = AttrValue::NextHop(Ipv4Addr::new(192, 0, 2, 1));
                    attrs.push(with_flags(nh, noise.2, &cx));
                }
            }
            Update {
                withdrawn,
                attrs,
                nlri,
                errors: Vec::new(),
            }
        })
        .boxed()
}

/// A context and an UPDATE valid under it.
pub fn context_and_update() -> impl Strategy<Value = (Context, Update)> {
    context().prop_flat_map(|cx| {
        let u = update(&cx);
        (Just(cx), u)
    })
}
