//! RIB behaviour, one test per rule: the RFC 4271 §9.1.2.2 decision steps (named after the
//! step), ADD-PATH, RFC 7606 treatment, export rules, packing, change propagation, route
//! refresh, graceful restart and max-prefix. Everything goes through the public API, the way
//! a runtime drives the RIB.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use bgp::fsm::DownReason;
use bgp::negotiate::{Negotiated, PeerGracefulRestart};
use bgp::rib::{DecisionConfig, ExportAction, PeerConfig, PeerId, Rib, RibConfig, RouteNextHop};
use bgp::wire::{
    attr_type, flag, AsPath, Attr, AttrValue, Community, Context, Family, Message, MpNlri, MpReach,
    MpUnreach, NextHop, Nlri, Notification, Origin, RefreshSubtype, RouteRefresh, Segment,
    SegmentType, Update,
};
use ipnet::IpNet;

const LOCAL_AS: u32 = 65000;
const V4: Family = Family::IPV4_UNICAST;
const V6: Family = Family::IPV6_UNICAST;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}
fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn negotiated(peer_as: u32, peer_id: &str) -> Negotiated {
    Negotiated {
        local_as: LOCAL_AS,
        peer_as,
        local_id: v4("10.99.255.1"),
        peer_id: v4(peer_id),
        hold_time: 90,
        keepalive: Some(Duration::from_secs(30)),
        families: vec![V4, V6],
        four_octet_as: true,
        route_refresh: true,
        enhanced_route_refresh: false,
        extended_message: false,
        add_path_receive: Vec::new(),
        add_path_send: Vec::new(),
        peer_graceful_restart: None,
        local_graceful_restart: false,
        peer_long_lived_gr: None,
    }
}

struct Lab {
    rib: Rib,
    now: Instant,
}

impl Lab {
    fn new() -> Lab {
        Lab::with(DecisionConfig::default())
    }
    fn with(decision: DecisionConfig) -> Lab {
        let mut cfg = RibConfig::new(v4("10.99.255.1"));
        cfg.decision = decision;
        Lab {
            rib: Rib::new(cfg),
            now: Instant::now(),
        }
    }
    /// A peer at `addr` in `asn` with BGP identifier `id`, Established.
    fn peer(&mut self, addr: &str, asn: u32, id: &str) -> PeerId {
        self.peer_with(addr, asn, negotiated(asn, id), |_| {})
    }
    fn peer_with(
        &mut self,
        addr: &str,
        asn: u32,
        n: Negotiated,
        cfg: impl FnOnce(&mut PeerConfig),
    ) -> PeerId {
        let mut c = PeerConfig::new(ip(addr), LOCAL_AS, asn);
        cfg(&mut c);
        let p = self.rib.add_peer(c).unwrap();
        self.rib
            .peer_up(self.now, p, &n, ip("10.99.255.1"))
            .unwrap();
        p
    }
    fn send(&mut self, p: PeerId, u: Update) -> bgp::rib::Applied {
        self.rib.apply_update(p, u).unwrap()
    }
    fn best_peer(&self, prefix: &str) -> Option<PeerId> {
        self.rib.best(net(prefix)).map(|r| r.peer)
    }
    /// Everything queued toward `p`.
    fn drain(&mut self, p: PeerId) -> Vec<Message> {
        let mut all = Vec::new();
        loop {
            let m = self.rib.next_messages(p, 1 << 20).unwrap();
            if m.is_empty() {
                break;
            }
            all.extend(m);
        }
        assert!(!self.rib.has_pending(p));
        all
    }
}

fn path(asns: &[u32]) -> AttrValue {
    AttrValue::AsPath(AsPath::sequence(asns.to_vec()))
}

/// An IPv4 UPDATE announcing `prefixes` with ORIGIN IGP, NEXT_HOP 192.0.2.1 and `extra`.
fn announce(prefixes: &[&str], extra: Vec<AttrValue>) -> Update {
    let mut attrs = vec![
        Attr::new(AttrValue::Origin(Origin::Igp)),
        Attr::new(AttrValue::NextHop(v4("192.0.2.1"))),
    ];
    let has_path = extra.iter().any(|a| matches!(a, AttrValue::AsPath(_)));
    if !has_path {
        attrs.push(Attr::new(path(&[])));
    }
    for e in extra {
        if let AttrValue::Origin(_) = e {
            attrs.retain(|a| a.type_code() != attr_type::ORIGIN);
        }
        attrs.push(Attr::new(e));
    }
    attrs.sort_by_key(Attr::type_code);
    Update::announce(
        attrs,
        prefixes.iter().map(|p| Nlri::new(net(p))).collect(),
        None,
    )
}

fn announce_v6(prefixes: &[&str], extra: Vec<AttrValue>) -> Update {
    let mut attrs = vec![Attr::new(AttrValue::Origin(Origin::Igp))];
    attrs.extend(extra.into_iter().map(Attr::new));
    Update::announce(
        attrs,
        Vec::new(),
        Some((
            V6,
            NextHop::V6 {
                global: "2001:db8::1".parse().unwrap(),
                link_local: None,
            },
            prefixes.iter().map(|p| Nlri::new(net(p))).collect(),
        )),
    )
}

fn withdraw(prefixes: &[&str]) -> Update {
    Update {
        withdrawn: prefixes.iter().map(|p| Nlri::new(net(p))).collect(),
        ..Update::default()
    }
}

const P: &str = "203.0.113.0/24";

// ------------------------------------------------------------------ decision process

#[test]
fn step_0_locally_originated_route_wins_over_any_learned_one() {
    let mut l = Lab::new();
    let c = l.peer("10.99.0.3", LOCAL_AS, "3.3.3.3");
    l.send(c, announce(&[P], vec![AttrValue::LocalPref(1000)]));
    assert_eq!(l.best_peer(P), Some(c));
    l.rib
        .originate(net(P), vec![Attr::new(AttrValue::LocalPref(1))], None)
        .unwrap();
    assert_eq!(l.best_peer(P), Some(PeerId::LOCAL));
    assert!(l.rib.withdraw_local(net(P)));
    assert_eq!(l.best_peer(P), Some(c));
}

#[test]
fn step_9_1_1_highest_local_pref_wins() {
    let mut l = Lab::new();
    // Higher router id and address: only LOCAL_PREF can make it win.
    let c = l.peer("10.99.0.9", LOCAL_AS, "9.9.9.9");
    let d = l.peer("10.99.0.4", LOCAL_AS, "4.4.4.4");
    l.send(c, announce(&[P], vec![AttrValue::LocalPref(200)]));
    l.send(d, announce(&[P], vec![AttrValue::LocalPref(100)]));
    assert_eq!(l.best_peer(P), Some(c));
}

#[test]
fn step_9_1_1_local_pref_from_ebgp_is_ignored_and_defaults_to_100() {
    let mut l = Lab::new();
    let a = l.peer("10.99.0.1", 65001, "1.1.1.1");
    let c = l.peer("10.99.0.9", LOCAL_AS, "9.9.9.9");
    l.send(
        a,
        announce(&[P], vec![path(&[65001]), AttrValue::LocalPref(500)]),
    );
    l.send(
        c,
        announce(&[P], vec![path(&[65001, 7, 8]), AttrValue::LocalPref(101)]),
    );
    assert_eq!(
        l.best_peer(P),
        Some(c),
        "eBGP LOCAL_PREF 500 must not count"
    );
    let r = &l.rib.received_routes(a, V4)[0];
    assert_eq!(r.attrs.local_pref(), None);
    // iBGP without LOCAL_PREF counts as 100: a 99 loses to it.
    l.send(
        c,
        announce(&[P], vec![path(&[65001, 7, 8]), AttrValue::LocalPref(99)]),
    );
    assert_eq!(l.best_peer(P), Some(a));
}

#[test]
fn step_a_shortest_as_path_wins() {
    let mut l = Lab::new();
    let a = l.peer("10.99.0.1", 65001, "1.1.1.1");
    let b = l.peer("10.99.0.2", 65002, "2.2.2.2");
    l.send(a, announce(&[P], vec![path(&[65001, 1, 2])]));
    l.send(b, announce(&[P], vec![path(&[65002, 3])]));
    assert_eq!(l.best_peer(P), Some(b));
}

#[test]
fn step_a_as_set_counts_as_one() {
    let mut l = Lab::new();
    let a = l.peer("10.99.0.1", 65001, "1.1.1.1");
    let b = l.peer("10.99.0.2", 65002, "2.2.2.2");
    let with_set = AttrValue::AsPath(AsPath {
        segments: vec![
            Segment::new(SegmentType::Sequence, [65001]),
            Segment::new(SegmentType::Set, [1, 2, 3, 4]),
        ],
    });
    // Higher router id for b: a wins only if its path (length 2) is shorter than b's (3).
    l.send(b, announce(&[P], vec![path(&[65002, 4, 5])]));
    l.send(a, announce(&[P], vec![with_set]));
    assert_eq!(l.best_peer(P), Some(a));
}

#[test]
fn step_a_confederation_segments_count_zero() {
    let mut l = Lab::new();
    let c = l.peer("10.99.0.9", LOCAL_AS, "9.9.9.9");
    let d = l.peer("10.99.0.4", LOCAL_AS, "4.4.4.4");
    let confed = AttrValue::AsPath(AsPath {
        segments: vec![
            Segment::new(SegmentType::ConfedSequence, [65100, 65101, 65102]),
            Segment::new(SegmentType::Sequence, [1]),
        ],
    });
    l.send(c, announce(&[P], vec![confed]));
    l.send(d, announce(&[P], vec![path(&[1, 2])]));
    assert_eq!(l.best_peer(P), Some(c));
}

#[test]
fn step_b_lowest_origin_wins() {
    let mut l = Lab::new();
    let a = l.peer("10.99.0.1", 65001, "1.1.1.1");
    let b = l.peer("10.99.0.2", 65002, "2.2.2.2");
    l.send(
        a,
        announce(
            &[P],
            vec![path(&[65001]), AttrValue::Origin(Origin::Incomplete)],
        ),
    );
    l.send(
        b,
        announce(&[P], vec![path(&[65002]), AttrValue::Origin(Origin::Egp)]),
    );
    assert_eq!(l.best_peer(P), Some(b));
    l.send(
        a,
        announce(&[P], vec![path(&[65001]), AttrValue::Origin(Origin::Igp)]),
    );
    assert_eq!(l.best_peer(P), Some(a));
}

#[test]
fn step_c_lowest_med_wins_among_routes_from_the_same_neighbour_as() {
    let mut l = Lab::new();
    let a1 = l.peer("10.99.0.1", 65001, "1.1.1.1");
    let a2 = l.peer("10.99.0.5", 65001, "5.5.5.5");
    l.send(
        a1,
        announce(&[P], vec![path(&[65001, 7]), AttrValue::MultiExitDisc(50)]),
    );
    l.send(
        a2,
        announce(&[P], vec![path(&[65001, 7]), AttrValue::MultiExitDisc(10)]),
    );
    assert_eq!(l.best_peer(P), Some(a2));
}

#[test]
fn step_c_missing_med_counts_as_zero() {
    let mut l = Lab::new();
    let a1 = l.peer("10.99.0.1", 65001, "1.1.1.1");
    let a2 = l.peer("10.99.0.5", 65001, "5.5.5.5");
    l.send(
        a1,
        announce(&[P], vec![path(&[65001, 7]), AttrValue::MultiExitDisc(5)]),
    );
    l.send(a2, announce(&[P], vec![path(&[65001, 7])]));
    assert_eq!(l.best_peer(P), Some(a2));
}

#[test]
fn step_c_med_is_not_compared_across_neighbour_ases_unless_always_compare_med() {
    for (always, want_b) in [(false, false), (true, true)] {
        let mut l = Lab::with(DecisionConfig {
            always_compare_med: always,
            ..DecisionConfig::default()
        });
        let a = l.peer("10.99.0.1", 65001, "1.1.1.1");
        let b = l.peer("10.99.0.2", 65002, "2.2.2.2");
        l.send(
            a,
            announce(&[P], vec![path(&[65001, 7]), AttrValue::MultiExitDisc(50)]),
        );
        l.send(
            b,
            announce(&[P], vec![path(&[65002, 7]), AttrValue::MultiExitDisc(10)]),
        );
        // Without MED across ASes, router id decides: a (1.1.1.1).
        assert_eq!(
            l.best_peer(P),
            Some(if want_b { b } else { a }),
            "always={always}"
        );
    }
}

#[test]
fn step_c_med_elimination_does_not_depend_on_arrival_order() {
    // a1 and a2 share neighbour AS 65001 (a2 has the lower MED), b is in 65002. Pairwise
    // comparison would be intransitive (a1 < b by router id, b < a2 by router id, a2 < a1 by
    // MED); the RFC's elimination gives one answer: a1 is out, then b vs a2 by router id.
    let orders: [[usize; 3]; 6] = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    let mut winners = Vec::new();
    for order in orders {
        let mut l = Lab::new();
        let a1 = l.peer("10.99.0.1", 65001, "1.1.1.1");
        let b = l.peer("10.99.0.2", 65002, "2.2.2.2");
        let a2 = l.peer("10.99.0.3", 65001, "3.3.3.3");
        let routes = [
            (
                a1,
                announce(&[P], vec![path(&[65001, 7]), AttrValue::MultiExitDisc(20)]),
            ),
            (
                b,
                announce(&[P], vec![path(&[65002, 7]), AttrValue::MultiExitDisc(0)]),
            ),
            (
                a2,
                announce(&[P], vec![path(&[65001, 7]), AttrValue::MultiExitDisc(10)]),
            ),
        ];
        for i in order {
            l.send(routes[i].0, routes[i].1.clone());
        }
        winners.push(l.best_peer(P));
        assert_eq!(l.best_peer(P), Some(b), "order {order:?}");
    }
    assert!(winners.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn step_d_ebgp_wins_over_ibgp() {
    let mut l = Lab::new();
    // The iBGP peer has the lower router id and address.
    let c = l.peer("10.99.0.1", LOCAL_AS, "1.1.1.1");
    let a = l.peer("10.99.0.9", 65001, "9.9.9.9");
    l.send(c, announce(&[P], vec![path(&[65001, 7])]));
    l.send(a, announce(&[P], vec![path(&[65001, 7])]));
    assert_eq!(l.best_peer(P), Some(a));
}

#[test]
fn step_f_lowest_bgp_identifier_wins() {
    let mut l = Lab::new();
    // Identifier order opposite to address order.
    let a = l.peer("10.99.0.1", 65001, "9.9.9.9");
    let b = l.peer("10.99.0.2", 65002, "2.2.2.2");
    l.send(a, announce(&[P], vec![path(&[65001, 7])]));
    l.send(b, announce(&[P], vec![path(&[65002, 7])]));
    assert_eq!(l.best_peer(P), Some(b));
}

#[test]
fn step_f_originator_id_stands_in_for_the_bgp_identifier() {
    let mut l = Lab::new();
    let c = l.peer("10.99.0.3", LOCAL_AS, "3.3.3.3");
    let d = l.peer("10.99.0.4", LOCAL_AS, "4.4.4.4");
    l.send(
        c,
        announce(&[P], vec![AttrValue::OriginatorId(v4("9.9.9.9"))]),
    );
    l.send(d, announce(&[P], vec![]));
    assert_eq!(l.best_peer(P), Some(d));
}

#[test]
fn rfc4456_shortest_cluster_list_wins() {
    let mut l = Lab::new();
    let c = l.peer("10.99.0.3", LOCAL_AS, "3.3.3.3");
    let d = l.peer("10.99.0.4", LOCAL_AS, "4.4.4.4");
    let same_originator = AttrValue::OriginatorId(v4("5.5.5.5"));
    l.send(
        c,
        announce(
            &[P],
            vec![
                same_originator.clone(),
                AttrValue::ClusterList(vec![v4("1.0.0.1"), v4("1.0.0.2")]),
            ],
        ),
    );
    l.send(
        d,
        announce(
            &[P],
            vec![same_originator, AttrValue::ClusterList(vec![v4("1.0.0.1")])],
        ),
    );
    assert_eq!(l.best_peer(P), Some(d));
}

#[test]
fn step_g_lowest_peer_address_wins() {
    let mut l = Lab::new();
    // Two sessions to one router: same identifier.
    let a = l.peer("10.99.0.9", 65001, "7.7.7.7");
    let b = l.peer("10.99.0.8", 65001, "7.7.7.7");
    l.send(a, announce(&[P], vec![path(&[65001, 7])]));
    l.send(b, announce(&[P], vec![path(&[65001, 7])]));
    assert_eq!(l.best_peer(P), Some(b));
}

// ------------------------------------------------------------------ receiving

#[test]
fn add_path_keeps_one_route_per_path_id_and_withdraws_by_path_id() {
    let mut l = Lab::new();
    let mut n = negotiated(65001, "1.1.1.1");
    n.add_path_receive = vec![V4];
    let a = l.peer_with("10.99.0.1", 65001, n, |_| {});
    let mut u1 = announce(&[], vec![path(&[65001, 1, 2])]);
    u1.nlri = vec![Nlri::with_path_id(net(P), 1)];
    let mut u2 = announce(&[], vec![path(&[65001])]);
    u2.nlri = vec![Nlri::with_path_id(net(P), 2)];
    l.send(a, u1);
    l.send(a, u2);
    let got = l.rib.received_routes(a, V4);
    assert_eq!(got.len(), 2);
    let best = l.rib.best(net(P)).unwrap();
    assert_eq!((best.path_id, best.attrs.path_len()), (2, 1));
    l.send(
        a,
        Update {
            withdrawn: vec![Nlri::with_path_id(net(P), 2)],
            ..Update::default()
        },
    );
    let got = l.rib.received_routes(a, V4);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path_id, 1);
    assert!(got[0].best);
}

/// Encode with the peer's context and decode again, as the wire would.
fn through_wire(u: &Update, cx: &Context) -> Update {
    let b = Message::Update(u.clone()).to_bytes(cx).unwrap();
    match Message::decode(&b, cx).unwrap() {
        Message::Update(u) => u,
        m => panic!("{m:?}"),
    }
}

#[test]
fn rfc7606_treat_as_withdraw_removes_the_routes() {
    let mut l = Lab::new();
    let a = l.peer("10.99.0.1", 65001, "1.1.1.1");
    l.send(a, announce(&[P], vec![path(&[65001])]));
    assert_eq!(l.rib.received_routes(a, V4).len(), 1);
    // ORIGIN with an undefined value: RFC 7606 §7.1 treat-as-withdraw.
    let mut bad = announce(&[P], vec![path(&[65001])]);
    bad.attrs[0] = Attr::unknown(flag::TRANSITIVE, attr_type::ORIGIN, vec![7u8]);
    let bad = through_wire(&bad, &Context::modern());
    assert_eq!(bad.treatment(), bgp::wire::Treatment::TreatAsWithdraw);
    let r = l.send(a, bad);
    assert_eq!(r.withdrawn, 1);
    assert!(l.rib.received_routes(a, V4).is_empty());
    assert_eq!(l.best_peer(P), None);
}

#[test]
fn rfc7606_attribute_discard_keeps_the_route_without_the_attribute() {
    let mut l = Lab::new();
    let a = l.peer("10.99.0.1", 65001, "1.1.1.1");
    // ATOMIC_AGGREGATE with a length of 1: RFC 7606 §7.6 attribute discard.
    let mut u = announce(&[P], vec![path(&[65001])]);
    u.attrs.push(Attr::unknown(
        flag::TRANSITIVE,
        attr_type::ATOMIC_AGGREGATE,
        vec![1u8],
    ));
    let u = through_wire(&u, &Context::modern());
    assert_eq!(u.treatment(), bgp::wire::Treatment::AttributeDiscard);
    l.send(a, u);
    let got = l.rib.received_routes(a, V4);
    assert_eq!(got.len(), 1);
    assert!(!got[0].attrs.has(attr_type::ATOMIC_AGGREGATE));
}

#[test]
fn import_refuses_routes_with_our_as_in_the_path() {
    let mut l = Lab::new();
    let a = l.peer("10.99.0.1", 65001, "1.1.1.1");
    let r = l.send(a, announce(&[P], vec![path(&[65001, LOCAL_AS, 9])]));
    assert_eq!(r.rejected, 1);
    assert!(l.rib.received_routes(a, V4).is_empty());
}

#[test]
fn identical_attribute_sets_are_stored_once() {
    let mut l = Lab::new();
    let a = l.peer("10.99.0.1", 65001, "1.1.1.1");
    l.send(
        a,
        announce(
            &["198.51.100.0/24", "198.51.101.0/24"],
            vec![path(&[65001])],
        ),
    );
    l.send(a, announce(&["198.51.102.0/24"], vec![path(&[65001])]));
    l.send(a, announce(&["198.51.103.0/24"], vec![path(&[65001, 5])]));
    let got = l.rib.received_routes(a, V4);
    assert!(std::sync::Arc::ptr_eq(&got[0].attrs, &got[2].attrs));
    assert!(!std::sync::Arc::ptr_eq(&got[0].attrs, &got[3].attrs));
    l.rib.sweep();
    assert_eq!(l.rib.attr_sets(), 2);
}

#[test]
fn ipv4_prefixes_in_mp_reach_take_its_next_hop_and_share_one_attribute_set() {
    let mut l = Lab::new();
    let a = l.peer("10.99.0.1", 65001, "1.1.1.1");
    // IPv4 in MP_REACH_NLRI (next hop 192.0.2.9) and in the NLRI field (NEXT_HOP 192.0.2.1).
    let mut u = announce(&["198.51.102.0/24"], vec![path(&[65001])]);
    u.attrs.push(Attr::new(AttrValue::MpReach(MpReach {
        family: V4,
        next_hop: NextHop::V4(v4("192.0.2.9")),
        nlri: MpNlri::Prefixes(vec![
            Nlri::new(net("198.51.100.0/24")),
            Nlri::new(net("198.51.101.0/24")),
        ]),
    })));
    u.attrs.sort_by_key(Attr::type_code);
    assert_eq!(l.send(a, u).announced, 3);
    let got = l.rib.received_routes(a, V4);
    let route = |p: &str| {
        got.iter()
            .find(|r| r.prefix == net(p))
            .unwrap_or_else(|| panic!("{p} not received: {got:?}"))
    };
    let (m1, m2, plain) = (
        route("198.51.100.0/24"),
        route("198.51.101.0/24"),
        route("198.51.102.0/24"),
    );
    assert_eq!(m1.attrs.next_hop(), Some(RouteNextHop::V4(v4("192.0.2.9"))));
    assert_eq!(
        plain.attrs.next_hop(),
        Some(RouteNextHop::V4(v4("192.0.2.1")))
    );
    assert!(std::sync::Arc::ptr_eq(&m1.attrs, &m2.attrs));
    assert!(!std::sync::Arc::ptr_eq(&m1.attrs, &plain.attrs));
    l.rib.sweep();
    assert_eq!(l.rib.attr_sets(), 2);
}

// ------------------------------------------------------------------ export rules

/// The UPDATEs (not End-of-RIB, not route refresh) among `msgs`.
fn updates(msgs: &[Message]) -> Vec<&Update> {
    msgs.iter()
        .filter_map(|m| match m {
            Message::Update(u) if u.end_of_rib_family().is_none() => Some(u),
            _ => None,
        })
        .collect()
}

#[test]
fn ebgp_export_prepends_our_as_sets_next_hop_self_drops_local_pref_and_foreign_med() {
    let mut l = Lab::new();
    let c = l.peer("10.99.0.3", LOCAL_AS, "3.3.3.3");
    let b = l.peer("10.99.0.2", 65002, "2.2.2.2");
    l.drain(b);
    l.send(
        c,
        announce(
            &[P],
            vec![
                path(&[65001, 7]),
                AttrValue::LocalPref(300),
                AttrValue::MultiExitDisc(5),
            ],
        ),
    );
    let msgs = l.drain(b);
    let u = updates(&msgs);
    assert_eq!(u.len(), 1);
    let u = u[0];
    assert_eq!(u.as_path(), Some(&AsPath::sequence([LOCAL_AS, 65001, 7])));
    assert_eq!(u.next_hop(), Some(v4("10.99.255.1")));
    assert_eq!(u.local_pref(), None);
    assert_eq!(u.med(), None);
    assert_eq!(u.nlri, vec![Nlri::new(net(P))]);
}

#[test]
fn ebgp_export_keeps_med_when_configured_and_for_our_own_routes() {
    let mut l = Lab::new();
    let c = l.peer("10.99.0.3", LOCAL_AS, "3.3.3.3");
    let b = l.peer_with("10.99.0.2", 65002, negotiated(65002, "2.2.2.2"), |c| {
        c.send_med = true
    });
    let e = l.peer("10.99.0.5", 65005, "5.5.5.5");
    l.send(
        c,
        announce(&[P], vec![path(&[65001]), AttrValue::MultiExitDisc(5)]),
    );
    assert_eq!(updates(&l.drain(b))[0].med(), Some(5));
    assert_eq!(updates(&l.drain(e))[0].med(), None);
    l.rib
        .originate(
            net("10.99.8.0/24"),
            vec![Attr::new(AttrValue::MultiExitDisc(77))],
            None,
        )
        .unwrap();
    let msgs = l.drain(e);
    let u = updates(&msgs);
    assert_eq!(u[0].med(), Some(77));
    assert_eq!(u[0].as_path(), Some(&AsPath::sequence([LOCAL_AS])));
}

#[test]
fn ibgp_export_keeps_path_and_next_hop_and_sends_local_pref() {
    let mut l = Lab::new();
    let a = l.peer("10.99.0.1", 65001, "1.1.1.1");
    let c = l.peer("10.99.0.3", LOCAL_AS, "3.3.3.3");
    l.drain(c);
    l.send(
        a,
        announce(&[P], vec![path(&[65001, 7]), AttrValue::MultiExitDisc(9)]),
    );
    let msgs = l.drain(c);
    let u = updates(&msgs)[0];
    assert_eq!(u.as_path(), Some(&AsPath::sequence([65001, 7])));
    assert_eq!(u.next_hop(), Some(v4("192.0.2.1")));
    assert_eq!(u.local_pref(), Some(100));
    assert_eq!(u.med(), Some(9));
}

#[test]
fn ibgp_learned_routes_are_not_sent_to_ibgp_peers() {
    let mut l = Lab::new();
    let c = l.peer("10.99.0.3", LOCAL_AS, "3.3.3.3");
    let d = l.peer("10.99.0.4", LOCAL_AS, "4.4.4.4");
    let b = l.peer("10.99.0.2", 65002, "2.2.2.2");
    l.drain(d);
    l.drain(b);
    l.send(c, announce(&[P], vec![path(&[65001])]));
    assert!(updates(&l.drain(d)).is_empty());
    assert_eq!(updates(&l.drain(b)).len(), 1);
    assert!(l.rib.advertised_routes(d, V4).is_empty());
}

#[test]
fn routes_are_never_sent_back_to_the_peer_they_came_from() {
    let mut l = Lab::new();
    let a = l.peer("10.99.0.1", 65001, "1.1.1.1");
    let b = l.peer("10.99.0.2", 65002, "2.2.2.2");
    l.drain(a);
    l.send(a, announce(&[P], vec![path(&[65001])]));
    assert!(updates(&l.drain(a)).is_empty());
    assert!(l.rib.advertised_routes(a, V4).is_empty());
    assert_eq!(updates(&l.drain(b)).len(), 1);
    assert_eq!(l.rib.advertised_routes(b, V4).len(), 1);
}

#[test]
fn ebgp_export_skips_routes_whose_path_holds_the_peer_as() {
    let mut l = Lab::new();
    let a = l.peer("10.99.0.1", 65001, "1.1.1.1");
    let b = l.peer("10.99.0.2", 65002, "2.2.2.2");
    let e = l.peer("10.99.0.5", 65005, "5.5.5.5");
    l.send(a, announce(&[P], vec![path(&[65001, 65002, 9])]));
    assert!(updates(&l.drain(b)).is_empty());
    assert_eq!(updates(&l.drain(e)).len(), 1);
}

#[test]
fn no_export_community_stays_inside_the_as() {
    let mut l = Lab::new();
    let a = l.peer("10.99.0.1", 65001, "1.1.1.1");
    let b = l.peer("10.99.0.2", 65002, "2.2.2.2");
    let c = l.peer("10.99.0.3", LOCAL_AS, "3.3.3.3");
    l.send(
        a,
        announce(
            &[P],
            vec![
                path(&[65001]),
                AttrValue::Communities(vec![Community::NO_EXPORT]),
            ],
        ),
    );
    assert!(updates(&l.drain(b)).is_empty());
    assert_eq!(updates(&l.drain(c)).len(), 1);
}

#[test]
fn unknown_transitive_attributes_pass_with_partial_and_non_transitive_ones_are_dropped() {
    let mut l = Lab::new();
    let a = l.peer("10.99.0.1", 65001, "1.1.1.1");
    let b = l.peer("10.99.0.2", 65002, "2.2.2.2");
    let mut u = announce(&[P], vec![path(&[65001])]);
    u.attrs.push(Attr::unknown(
        flag::OPTIONAL | flag::TRANSITIVE,
        99,
        vec![1u8, 2],
    ));
    u.attrs.push(Attr::unknown(flag::OPTIONAL, 98, vec![3u8]));
    l.send(a, u);
    let msgs = l.drain(b);
    let out = updates(&msgs)[0];
    let t = out.attr(99).expect("transitive unknown passed on");
    assert!(t.is_partial());
    assert!(out.attr(98).is_none());
}

#[test]
fn rfc6793_two_octet_peer_gets_as_trans_and_as4_path() {
    let mut l = Lab::new();
    let a = l.peer("10.99.0.1", 65001, "1.1.1.1");
    let mut n = negotiated(65002, "2.2.2.2");
    n.four_octet_as = false;
    let b = l.peer_with("10.99.0.2", 65002, n.clone(), |_| {});
    l.send(a, announce(&[P], vec![path(&[65001, 4_200_000_001])]));
    let msgs = l.drain(b);
    let u = updates(&msgs)[0];
    let cx = n.encode_context();
    let mut back = through_wire(u, &cx);
    assert_eq!(
        back.as_path(),
        Some(&AsPath::sequence([LOCAL_AS, 65001, 23456]))
    );
    assert!(back.attr(attr_type::AS4_PATH).is_some());
    back.merge_as4();
    assert_eq!(
        back.as_path(),
        Some(&AsPath::sequence([LOCAL_AS, 65001, 4_200_000_001]))
    );
}

#[test]
fn export_policy_hook_can_reject_and_rewrite() {
    let mut l = Lab::new();
    let a = l.peer("10.99.0.1", 65001, "1.1.1.1");
    let b = l.peer("10.99.0.2", 65002, "2.2.2.2");
    l.rib
        .set_export_policy(
            b,
            Some(Box::new(|_: PeerId, prefix: IpNet, attrs: &[Attr]| {
                if prefix == net("198.51.100.0/24") {
                    return ExportAction::Reject;
                }
                let mut v = attrs.to_vec();
                v.push(Attr::new(AttrValue::Communities(vec![Community::new(
                    65000, 1,
                )])));
                ExportAction::Replace(v)
            })),
        )
        .unwrap();
    l.send(a, announce(&[P, "198.51.100.0/24"], vec![path(&[65001])]));
    let msgs = l.drain(b);
    let u = updates(&msgs);
    assert_eq!(u.len(), 1);
    assert_eq!(u[0].nlri, vec![Nlri::new(net(P))]);
    assert_eq!(u[0].communities(), &[Community::new(65000, 1)]);
}

// ------------------------------------------------------------------ packing

fn encoded(m: &Message, cx: &Context) -> Vec<u8> {
    m.to_bytes(cx).unwrap().to_vec()
}

/// `n` distinct /24s (v4) or /48s (v6).
fn many(n: usize, v6: bool) -> Vec<String> {
    (0..n)
        .map(|i| {
            if v6 {
                format!("2001:{:x}:{:x}::/48", 0xdb8 + (i >> 16), i & 0xffff)
            } else {
                format!("{}.{}.{}.0/24", 100 + (i >> 16), (i >> 8) & 0xff, i & 0xff)
            }
        })
        .collect()
}

fn check_packing(v6: bool, extended: bool) {
    const N: usize = 5000;
    let mut l = Lab::new();
    let a = l.peer("10.99.0.1", 65001, "1.1.1.1");
    let mut n = negotiated(65002, "2.2.2.2");
    n.extended_message = extended;
    let b = l.peer_with("10.99.0.2", 65002, n.clone(), |_| {});
    let eor = l.drain(b);
    assert_eq!(eor.len(), 2, "End-of-RIB for both families: {eor:?}");
    let prefixes = many(N, v6);
    let refs: Vec<&str> = prefixes.iter().map(String::as_str).collect();
    for chunk in refs.chunks(500) {
        let u = if v6 {
            announce_v6(chunk, vec![path(&[65001, 7])])
        } else {
            announce(chunk, vec![path(&[65001, 7])])
        };
        l.send(a, u);
    }
    let cx = n.encode_context();
    let max = cx.max_message_len();
    let msgs = l.drain(b);
    let us = updates(&msgs);
    // How many prefixes fit: the message without prefixes, then 4 (v4 /24) or 7 (v6 /48)
    // bytes each.
    let mut empty = us[0].clone();
    empty.nlri.clear();
    for a in &mut empty.attrs {
        if let AttrValue::MpReach(m) = &mut a.value {
            m.nlri = MpNlri::Prefixes(Vec::new());
        }
    }
    let fixed = encoded(&Message::Update(empty), &cx).len();
    let per = if v6 { 7 } else { 4 };
    let fits = (max - fixed) / per;
    assert_eq!(us.len(), N.div_ceil(fits), "fits {fits} per UPDATE");
    let mut seen = Vec::new();
    for u in &us {
        let bytes = encoded(&Message::Update((*u).clone()), &cx);
        assert!(bytes.len() <= max, "{} > {max}", bytes.len());
        let back = match Message::decode(&bytes, &cx).unwrap() {
            Message::Update(u) => u,
            m => panic!("{m:?}"),
        };
        assert!(back.errors.is_empty());
        if v6 {
            assert!(back.nlri.is_empty());
            assert_eq!(
                back.attrs[0].type_code(),
                attr_type::MP_REACH_NLRI,
                "MP_REACH first"
            );
            seen.extend(
                back.mp_reach()
                    .unwrap()
                    .nlri
                    .prefixes()
                    .iter()
                    .map(|n| n.prefix),
            );
        } else {
            seen.extend(back.nlri.iter().map(|n| n.prefix));
        }
    }
    let mut want: Vec<IpNet> = prefixes.iter().map(|p| net(p)).collect();
    want.sort();
    seen.sort();
    assert_eq!(seen, want);

    // Withdrawals pack likewise.
    for chunk in refs.chunks(700) {
        let u = if v6 {
            Update {
                attrs: vec![Attr::new(AttrValue::MpUnreach(MpUnreach {
                    family: V6,
                    withdrawn: MpNlri::Prefixes(chunk.iter().map(|p| Nlri::new(net(p))).collect()),
                }))],
                ..Update::default()
            }
        } else {
            withdraw(chunk)
        };
        l.send(a, u);
    }
    let msgs = l.drain(b);
    let fixed_w = if v6 { 19 + 4 + 4 + 3 } else { 23 };
    let fits_w = (max - fixed_w) / per;
    assert_eq!(msgs.len(), N.div_ceil(fits_w));
    let mut gone = 0;
    for m in &msgs {
        let bytes = encoded(m, &cx);
        assert!(bytes.len() <= max);
        let Message::Update(u) = Message::decode(&bytes, &cx).unwrap() else {
            panic!()
        };
        gone += if v6 {
            u.mp_unreach().unwrap().withdrawn.prefixes().len()
        } else {
            u.withdrawn.len()
        };
    }
    assert_eq!(gone, N);
    assert!(l
        .rib
        .advertised_routes(b, if v6 { V6 } else { V4 })
        .is_empty());
}

#[test]
fn packing_ipv4_fills_4096_byte_updates() {
    check_packing(false, false);
}

#[test]
fn packing_ipv6_fills_4096_byte_updates_with_mp_reach() {
    check_packing(true, false);
}

#[test]
fn packing_ipv4_fills_65535_byte_updates_with_extended_messages() {
    check_packing(false, true);
}

#[test]
fn next_messages_respects_the_byte_budget() {
    let mut l = Lab::new();
    let a = l.peer("10.99.0.1", 65001, "1.1.1.1");
    let b = l.peer("10.99.0.2", 65002, "2.2.2.2");
    l.drain(b);
    let prefixes = many(3000, false);
    let refs: Vec<&str> = prefixes.iter().map(String::as_str).collect();
    l.send(a, announce(&refs, vec![path(&[65001])]));
    let first = l.rib.next_messages(b, 1).unwrap();
    assert_eq!(
        first.len(),
        1,
        "a budget below one message still yields one"
    );
    assert!(l.rib.has_pending(b));
    let rest = l.rib.next_messages(b, 5000).unwrap();
    assert_eq!(
        rest.len(),
        2,
        "stops after the message that reaches the budget"
    );
}

// ------------------------------------------------------------------ propagation

#[test]
fn initial_dump_then_end_of_rib_per_family() {
    let mut l = Lab::new();
    let a = l.peer("10.99.0.1", 65001, "1.1.1.1");
    l.send(a, announce(&[P], vec![path(&[65001])]));
    l.send(a, announce_v6(&["2001:db8:1::/48"], vec![path(&[65001])]));
    let b = l.peer("10.99.0.2", 65002, "2.2.2.2");
    let msgs = l.drain(b);
    let kinds: Vec<String> = msgs
        .iter()
        .map(|m| match m {
            Message::Update(u) => match u.end_of_rib_family() {
                Some(f) => format!("eor {f}"),
                None if u.mp_reach().is_some() => "v6".into(),
                None => "v4".into(),
            },
            m => format!("{m:?}"),
        })
        .collect();
    assert_eq!(kinds, ["v4", "eor ipv4-unicast", "v6", "eor ipv6-unicast"]);
}

#[test]
fn only_changed_prefixes_are_re_exported() {
    let mut l = Lab::new();
    let a = l.peer("10.99.0.1", 65001, "1.1.1.1");
    let a2 = l.peer("10.99.0.5", 65005, "5.5.5.5");
    let b = l.peer("10.99.0.2", 65002, "2.2.2.2");
    let prefixes = many(100, false);
    let refs: Vec<&str> = prefixes.iter().map(String::as_str).collect();
    l.send(a, announce(&refs, vec![path(&[65001, 9, 9])]));
    l.drain(b);
    // A better path for one prefix: one UPDATE with that prefix only.
    l.send(a2, announce(&[refs[7]], vec![path(&[65005])]));
    let msgs = l.drain(b);
    let u = updates(&msgs);
    assert_eq!(u.len(), 1);
    assert_eq!(u[0].nlri, vec![Nlri::new(net(refs[7]))]);
    // A worse path for another: nothing changes.
    l.send(a2, announce(&[refs[8]], vec![path(&[65005, 1, 2, 3, 4])]));
    assert!(l.drain(b).is_empty());
    // A withdrawal: only that prefix, as a withdrawal.
    l.send(a, withdraw(&[refs[9]]));
    let msgs = l.drain(b);
    let u = updates(&msgs);
    assert_eq!(u.len(), 1);
    assert_eq!(u[0].withdrawn, vec![Nlri::new(net(refs[9]))]);
    // Peer down (no GR): a's prefixes go; 7 and 8 fall back to a2's routes.
    l.rib
        .peer_down(l.now, a, &DownReason::ConnectionClosed)
        .unwrap();
    let msgs = l.drain(b);
    let withdrawn: usize = updates(&msgs).iter().map(|u| u.withdrawn.len()).sum();
    let announced: Vec<Nlri> = updates(&msgs).iter().flat_map(|u| u.nlri.clone()).collect();
    assert_eq!(withdrawn, 97);
    assert_eq!(announced, vec![Nlri::new(net(refs[8]))]);
    assert_eq!(l.rib.advertised_routes(b, V4).len(), 2);
}

// ------------------------------------------------------------------ route refresh

#[test]
fn route_refresh_resends_the_adj_rib_out_inside_borr_eorr_when_enhanced() {
    for enhanced in [false, true] {
        let mut l = Lab::new();
        let a = l.peer("10.99.0.1", 65001, "1.1.1.1");
        let mut n = negotiated(65002, "2.2.2.2");
        n.enhanced_route_refresh = enhanced;
        let b = l.peer_with("10.99.0.2", 65002, n, |_| {});
        l.send(a, announce(&[P, "198.51.100.0/24"], vec![path(&[65001])]));
        l.send(a, announce_v6(&["2001:db8:1::/48"], vec![path(&[65001])]));
        l.drain(b);
        l.rib.route_refresh(b, &RouteRefresh::request(V4)).unwrap();
        let msgs = l.drain(b);
        let rr = |s| {
            Message::RouteRefresh(RouteRefresh {
                family: V4,
                subtype: s,
            })
        };
        let u = updates(&msgs);
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].nlri.len(), 2);
        if enhanced {
            assert_eq!(msgs.len(), 3);
            assert_eq!(msgs[0], rr(RefreshSubtype::BoRR));
            assert_eq!(msgs[2], rr(RefreshSubtype::EoRR));
        } else {
            assert_eq!(msgs.len(), 1);
        }
    }
}

#[test]
fn enhanced_refresh_from_the_peer_removes_what_it_did_not_readvertise() {
    let mut l = Lab::new();
    let a = l.peer("10.99.0.1", 65001, "1.1.1.1");
    l.send(a, announce(&[P, "198.51.100.0/24"], vec![path(&[65001])]));
    let rr = |s| RouteRefresh {
        family: V4,
        subtype: s,
    };
    l.rib.route_refresh(a, &rr(RefreshSubtype::BoRR)).unwrap();
    l.send(a, announce(&[P], vec![path(&[65001])]));
    l.rib.route_refresh(a, &rr(RefreshSubtype::EoRR)).unwrap();
    let got = l.rib.received_routes(a, V4);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].prefix, net(P));
    assert!(!got[0].stale);
}

// ------------------------------------------------------------------ graceful restart

fn gr_negotiated(asn: u32, id: &str, fwd: bool) -> Negotiated {
    let mut n = negotiated(asn, id);
    n.peer_graceful_restart = Some(PeerGracefulRestart {
        restart_time: 120,
        restart_state: false,
        notification: false,
        families: vec![(V4, fwd), (V6, fwd)],
    });
    n
}

#[test]
fn graceful_restart_keeps_routes_stale_until_the_restart_time() {
    let mut l = Lab::new();
    let a = l.peer_with(
        "10.99.0.1",
        65001,
        gr_negotiated(65001, "1.1.1.1", true),
        |_| {},
    );
    let b = l.peer("10.99.0.2", 65002, "2.2.2.2");
    l.send(a, announce(&[P], vec![path(&[65001])]));
    l.drain(b);
    let out = l
        .rib
        .peer_down(l.now, a, &DownReason::ConnectionClosed)
        .unwrap();
    assert_eq!(out.stale, 1);
    let deadline = l.now + Duration::from_secs(120);
    assert_eq!(out.stale_until, Some(deadline));
    assert_eq!(l.rib.poll_timeout(), Some(deadline));
    let got = l.rib.received_routes(a, V4);
    assert!(got[0].stale && got[0].best);
    assert!(l.drain(b).is_empty(), "no withdrawal while stale");
    l.rib.handle_timeout(deadline - Duration::from_secs(1));
    assert_eq!(l.rib.received_routes(a, V4).len(), 1);
    l.rib.handle_timeout(deadline);
    assert!(l.rib.received_routes(a, V4).is_empty());
    assert_eq!(l.rib.poll_timeout(), None);
    assert_eq!(updates(&l.drain(b))[0].withdrawn, vec![Nlri::new(net(P))]);
}

#[test]
fn graceful_restart_end_of_rib_removes_stale_routes_not_refreshed() {
    let mut l = Lab::new();
    let n = gr_negotiated(65001, "1.1.1.1", true);
    let a = l.peer_with("10.99.0.1", 65001, n.clone(), |_| {});
    l.send(a, announce(&[P, "198.51.100.0/24"], vec![path(&[65001])]));
    l.rib
        .peer_down(l.now, a, &DownReason::ConnectionClosed)
        .unwrap();
    l.rib.peer_up(l.now, a, &n, ip("10.99.255.1")).unwrap();
    assert_eq!(l.rib.counts(a)[0].stale, 2);
    l.send(a, announce(&[P], vec![path(&[65001])]));
    assert_eq!(l.rib.counts(a)[0].stale, 1);
    let r = l.send(a, Update::end_of_rib(V4));
    assert_eq!(r.end_of_rib, Some(V4));
    let got = l.rib.received_routes(a, V4);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].prefix, net(P));
    assert!(!got[0].stale);
}

#[test]
fn graceful_restart_does_not_apply_after_a_notification() {
    let mut l = Lab::new();
    let a = l.peer_with(
        "10.99.0.1",
        65001,
        gr_negotiated(65001, "1.1.1.1", true),
        |_| {},
    );
    l.send(a, announce(&[P], vec![path(&[65001])]));
    let out = l
        .rib
        .peer_down(
            l.now,
            a,
            &DownReason::NotificationReceived(Notification::new(6, 2, Vec::new())),
        )
        .unwrap();
    assert_eq!((out.removed, out.stale), (1, 0));
    assert!(l.rib.received_routes(a, V4).is_empty());
}

#[test]
fn graceful_restart_without_forwarding_bit_in_the_new_open_drops_stale_routes() {
    let mut l = Lab::new();
    let a = l.peer_with(
        "10.99.0.1",
        65001,
        gr_negotiated(65001, "1.1.1.1", true),
        |_| {},
    );
    l.send(a, announce(&[P], vec![path(&[65001])]));
    l.rib
        .peer_down(l.now, a, &DownReason::ConnectionClosed)
        .unwrap();
    l.rib
        .peer_up(
            l.now,
            a,
            &gr_negotiated(65001, "1.1.1.1", false),
            ip("10.99.255.1"),
        )
        .unwrap();
    assert!(l.rib.received_routes(a, V4).is_empty());
}

#[test]
fn stale_routes_compete_on_their_attributes_only() {
    let mut l = Lab::new();
    let a = l.peer_with(
        "10.99.0.1",
        65001,
        gr_negotiated(65001, "1.1.1.1", true),
        |_| {},
    );
    let b = l.peer("10.99.0.2", 65002, "2.2.2.2");
    l.send(a, announce(&[P], vec![path(&[65001])]));
    l.rib
        .peer_down(l.now, a, &DownReason::ConnectionClosed)
        .unwrap();
    l.send(b, announce(&[P], vec![path(&[65002, 1, 2])]));
    let best = l.rib.best(net(P)).unwrap();
    assert_eq!((best.peer, best.stale), (a, true));
}

// ------------------------------------------------------------------ max-prefix

#[test]
fn max_prefix_signals_the_limit_and_drops_the_peers_routes() {
    let mut l = Lab::new();
    let a = l.peer_with("10.99.0.1", 65001, negotiated(65001, "1.1.1.1"), |c| {
        c.max_prefix = Some(3)
    });
    let b = l.peer("10.99.0.2", 65002, "2.2.2.2");
    let prefixes = many(3, false);
    let refs: Vec<&str> = prefixes.iter().map(String::as_str).collect();
    let r = l.send(a, announce(&refs, vec![path(&[65001])]));
    assert_eq!(r.max_prefix_exceeded, None);
    // Re-announcing the same prefixes does not count twice.
    let r = l.send(a, announce(&refs, vec![path(&[65001, 2])]));
    assert_eq!(r.max_prefix_exceeded, None);
    let r = l.send(a, announce(&[P], vec![path(&[65001])]));
    assert_eq!(r.max_prefix_exceeded, Some((V4, 3)));
    assert!(l.rib.received_routes(a, V4).is_empty());
    assert_eq!(l.rib.counts(a)[0].received, 0);
    assert!(updates(&l.drain(b)).iter().all(|u| u.nlri.is_empty()));
    assert!(l.rib.advertised_routes(b, V4).is_empty());
    // Ignored until the session ends.
    let r = l.send(a, announce(&[P], vec![path(&[65001])]));
    assert_eq!(r.announced, 0);
}

// ------------------------------------------------------------------ queries

#[test]
fn counts_and_views_agree() {
    let mut l = Lab::new();
    let a = l.peer("10.99.0.1", 65001, "1.1.1.1");
    let b = l.peer("10.99.0.2", 65002, "2.2.2.2");
    l.send(a, announce(&[P, "198.51.100.0/24"], vec![path(&[65001])]));
    l.send(a, announce_v6(&["2001:db8:1::/48"], vec![path(&[65001])]));
    l.send(b, announce(&[P], vec![path(&[65002, 3])]));
    l.drain(a);
    l.drain(b);
    let ca = l.rib.counts(a);
    assert_eq!((ca[0].received, ca[1].received), (2, 1));
    assert_eq!((ca[0].advertised, ca[1].advertised), (0, 0));
    let cb = l.rib.counts(b);
    assert_eq!(
        (cb[0].received, cb[0].advertised, cb[1].advertised),
        (1, 2, 1)
    );
    assert_eq!(l.rib.loc_rib_len(V4), 2);
    let loc = l.rib.loc_rib(V4);
    assert_eq!(
        loc.iter().map(|r| r.prefix).collect::<Vec<_>>(),
        vec![net("198.51.100.0/24"), net(P)]
    );
    let rb = l.rib.received_routes(b, V4);
    assert!(!rb[0].best);
    let adv = l.rib.advertised_routes(b, V6);
    assert_eq!(
        adv[0].attrs.next_hop(),
        Some(RouteNextHop::V6 {
            global: "10.99.255.1".parse::<Ipv4Addr>().unwrap().to_ipv6_mapped(),
            link_local: None
        })
    );
}

// ------------------------------------------------------------------ Adj-RIB-Out bookkeeping

/// (announced, withdrawn) IPv4 prefixes of `msgs`, in order.
fn v4_changes(msgs: &[Message]) -> (Vec<IpNet>, Vec<IpNet>) {
    let u = updates(msgs);
    (
        u.iter()
            .flat_map(|u| u.nlri.iter().map(|n| n.prefix))
            .collect(),
        u.iter()
            .flat_map(|u| u.withdrawn.iter().map(|n| n.prefix))
            .collect(),
    )
}

#[test]
fn a_freed_prefix_slot_reused_by_another_prefix_withdraws_the_right_one() {
    let mut l = Lab::new();
    let a = l.peer("10.99.0.1", 65001, "1.1.1.1");
    let b = l.peer("10.99.0.2", 65002, "2.2.2.2");
    l.drain(b);
    let (x, y, z) = ("198.51.100.0/24", "192.0.2.0/24", "203.0.113.0/25");
    l.send(a, announce(&[x], vec![path(&[65001])]));
    assert_eq!(v4_changes(&l.drain(b)), (vec![net(x)], vec![]));
    // Withdrawn and exported: x's storage is free; y takes it.
    l.send(a, withdraw(&[x]));
    assert_eq!(v4_changes(&l.drain(b)), (vec![], vec![net(x)]));
    l.send(a, announce(&[y], vec![path(&[65001])]));
    assert_eq!(v4_changes(&l.drain(b)), (vec![net(y)], vec![]));
    // Withdrawn but not yet exported when z arrives: y's withdrawal still goes out.
    l.send(a, withdraw(&[y]));
    l.send(a, announce(&[z], vec![path(&[65001])]));
    let (ann, wd) = v4_changes(&l.drain(b));
    assert_eq!((ann, wd), (vec![net(z)], vec![net(y)]));
    let adv: Vec<IpNet> = l
        .rib
        .advertised_routes(b, V4)
        .iter()
        .map(|r| r.prefix)
        .collect();
    assert_eq!(adv, vec![net(z)]);
    assert_eq!(l.rib.counts(b)[0].advertised, 1);
}

#[test]
fn withdrawn_then_reannounced_before_export_sends_only_the_new_route() {
    let mut l = Lab::new();
    let a = l.peer("10.99.0.1", 65001, "1.1.1.1");
    let b = l.peer("10.99.0.2", 65002, "2.2.2.2");
    l.send(a, announce(&[P], vec![path(&[65001])]));
    l.drain(b);
    l.send(a, withdraw(&[P]));
    l.send(a, announce(&[P], vec![path(&[65001, 9])]));
    let msgs = l.drain(b);
    let u = updates(&msgs);
    assert_eq!(u.len(), 1);
    assert!(u[0].withdrawn.is_empty());
    assert_eq!(
        u[0].as_path(),
        Some(&AsPath::sequence([LOCAL_AS, 65001, 9]))
    );
    // A peer that was never sent a prefix gets no withdrawal for it.
    l.send(a, withdraw(&[P]));
    assert_eq!(updates(&l.drain(a)).len(), 0);
}

#[test]
fn end_of_rib_and_eorr_follow_the_whole_table_however_it_is_staged() {
    // More prefixes than one staging pass takes (32768), from many attribute sets.
    const N: usize = 40_000;
    let mut l = Lab::new();
    let a = l.peer("10.99.0.1", 65001, "1.1.1.1");
    let prefixes = many(N, false);
    let refs: Vec<&str> = prefixes.iter().map(String::as_str).collect();
    for (i, chunk) in refs.chunks(10).enumerate() {
        l.send(
            a,
            announce(
                chunk,
                vec![path(&[65001]), AttrValue::MultiExitDisc(i as u32)],
            ),
        );
    }
    let mut n = negotiated(65002, "2.2.2.2");
    n.enhanced_route_refresh = true;
    let b = l.peer_with("10.99.0.2", 65002, n, |_| {});
    let check = |msgs: &[Message], first: Option<Message>, last: Message| {
        let mut seen = 0;
        for (i, m) in msgs.iter().enumerate() {
            match m {
                Message::Update(u) if u.end_of_rib_family().is_none() => seen += u.nlri.len(),
                m if i == 0 && Some(m) == first.as_ref() => {}
                m => {
                    assert_eq!(*m, last, "message {i} of {}", msgs.len());
                    assert_eq!(seen, N, "all prefixes before {m:?}");
                    return i;
                }
            }
        }
        panic!("no {last:?}");
    };
    let msgs = l.drain(b);
    let eor = Message::Update(Update::end_of_rib(V4));
    check(&msgs, None, eor);
    l.rib.route_refresh(b, &RouteRefresh::request(V4)).unwrap();
    let msgs = l.drain(b);
    let rr = |s| {
        Message::RouteRefresh(RouteRefresh {
            family: V4,
            subtype: s,
        })
    };
    let at = check(
        &msgs,
        Some(rr(RefreshSubtype::BoRR)),
        rr(RefreshSubtype::EoRR),
    );
    assert_eq!(msgs[0], rr(RefreshSubtype::BoRR));
    assert_eq!(at, msgs.len() - 1);
    assert_eq!(l.rib.counts(b)[0].advertised, N);
}

#[test]
fn a_peer_whose_own_route_becomes_best_gets_the_earlier_one_withdrawn() {
    let mut l = Lab::new();
    let a = l.peer("10.99.0.1", 65001, "1.1.1.1");
    let b = l.peer("10.99.0.2", 65002, "2.2.2.2");
    l.send(b, announce(&[P], vec![path(&[65002, 7, 8])]));
    assert_eq!(v4_changes(&l.drain(a)), (vec![net(P)], vec![]));
    // a's own, shorter path wins: a must not keep b's route, and is never sent its own.
    l.send(a, announce(&[P], vec![path(&[65001])]));
    assert_eq!(l.best_peer(P), Some(a));
    assert_eq!(v4_changes(&l.drain(a)), (vec![], vec![net(P)]));
    assert_eq!(v4_changes(&l.drain(b)), (vec![net(P)], vec![]));
    assert!(l.rib.advertised_routes(a, V4).is_empty());
    // A route of a that a was never sent anything for: nothing at all toward a.
    l.send(a, announce(&["198.51.100.0/24"], vec![path(&[65001])]));
    assert!(l.drain(a).is_empty());
    assert!(!l.rib.has_pending(a));
}

#[test]
fn peers_alike_but_for_their_as_share_exports_yet_keep_their_own_loop_check() {
    let mut l = Lab::new();
    let a = l.peer("10.99.0.1", 65001, "1.1.1.1");
    let e = l.peer("10.99.0.5", 65005, "5.5.5.5");
    let b = l.peer("10.99.0.2", 65002, "2.2.2.2");
    let f = l.peer("10.99.0.6", 65006, "6.6.6.6");
    l.send(a, announce(&[P], vec![path(&[65001, 65002, 9])]));
    // e's export is computed (and shared) first; b must still refuse it, f gets the same.
    let to_e = l.drain(e);
    assert!(updates(&l.drain(b)).is_empty());
    let to_f = l.drain(f);
    assert_eq!(updates(&to_e).len(), 1);
    assert_eq!(updates(&to_e), updates(&to_f));
    assert_eq!(
        updates(&to_f)[0].as_path(),
        Some(&AsPath::sequence([LOCAL_AS, 65001, 65002, 9]))
    );
}
