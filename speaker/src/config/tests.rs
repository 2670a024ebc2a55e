//! Table tests: every field, valid and each error message, through the public `parse`.

use std::net::IpAddr;
use std::time::Duration;

use bgp::wire::Family;

use super::*;

const PEER: &str = "my-asn: 64500\n  peer-asn: 64501\n  peer-address: 10.0.0.1\n";

/// A config with one peer: the base fields plus `extra` (lines indented like the base ones).
fn one_peer(extra: &str) -> String {
    format!("peers:\n- {PEER}{extra}")
}

fn peer_of(yaml: &str) -> PeerConfig {
    match parse(yaml) {
        Ok(c) => c.peers.into_iter().next().expect("one peer"),
        Err(e) => panic!("{yaml}\n=> {e}"),
    }
}

fn errors_of(yaml: &str) -> Vec<String> {
    match parse(yaml) {
        Ok(c) => panic!("{yaml}\n=> unexpectedly valid: {c:?}"),
        Err(e) => e.errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn minimal_peer_gets_every_default() {
    let p = peer_of(&one_peer(""));
    assert_eq!(p.my_asn, 64500);
    assert_eq!(p.peer_asn, 64501);
    assert_eq!(p.peer_address, "10.0.0.1".parse::<IpAddr>().unwrap());
    assert_eq!(p.peer_port, 179);
    assert_eq!(p.source_address, None);
    assert_eq!(p.hold_time, Duration::from_secs(90));
    assert_eq!(p.keepalive_time, Duration::from_secs(30));
    assert!(!p.keepalive_configured);
    assert_eq!(p.router_id, None);
    assert!(p.node_selectors.is_empty());
    assert_eq!(p.password, None);
    assert!(!p.ebgp_multihop);
    assert_eq!(
        p.ttl,
        TtlPolicy {
            outgoing: 1,
            min_incoming: None
        }
    );
    assert!(!p.passive);
    assert_eq!(p.graceful_restart, None);
    assert_eq!(p.max_prefixes, None);
    assert_eq!(p.families, vec![Family::IPV4_UNICAST]);
    assert!(!p.is_ibgp());
}

#[test]
fn every_peer_field_when_valid() {
    type Check = fn(&PeerConfig) -> bool;
    let cases: &[(&str, Check)] = &[
        ("  peer-port: 1179\n", |p| p.peer_port == 1179),
        ("  peer-port: 0\n", |p| p.peer_port == 179),
        ("  source-address: 10.0.0.2\n", |p| p.source_address == Some("10.0.0.2".parse().unwrap())),
        ("  hold-time: 3s\n", |p| p.hold_time == Duration::from_secs(3) && p.keepalive_time == Duration::from_secs(1)),
        ("  hold-time: 1m30s\n", |p| p.hold_time == Duration::from_secs(90)),
        ("  hold-time: 9.9s\n", |p| p.hold_time == Duration::from_secs(9) && p.keepalive_time == Duration::from_secs(3)),
        ("  hold-time: 0s\n", |p| p.hold_time.is_zero() && p.keepalive_time.is_zero()),
        ("  hold-time: 0\n", |p| p.hold_time.is_zero()),
        ("  hold-time: 0s\n  keepalive-time: 0s\n", |p| p.keepalive_time.is_zero()),
        ("  hold-time: 120s\n  keepalive-time: 30s\n", |p| p.keepalive_time == Duration::from_secs(30) && p.keepalive_configured),
        ("  hold-time: 65535s\n", |p| p.hold_time == Duration::from_secs(65535)),
        ("  router-id: 1.2.3.4\n", |p| p.router_id == Some("1.2.3.4".parse().unwrap())),
        ("  password: yourPassword\n", |p| p.password == Some(Password("yourPassword".into()))),
        ("  password: \"\"\n", |p| p.password.is_none()),
        ("  password: 12345\n", |p| p.password == Some(Password("12345".into()))),
        ("  ebgp-multihop: true\n", |p| p.ebgp_multihop && p.ttl.outgoing == 255),
        ("  ebgp-multihop: yes\n  ebgp-multihop-ttl: 3\n", |p| p.ttl == TtlPolicy { outgoing: 3, min_incoming: None }),
        ("  ebgp-multihop: false\n", |p| !p.ebgp_multihop && p.ttl.outgoing == 1),
        ("  gtsm: true\n", |p| p.ttl == TtlPolicy { outgoing: 255, min_incoming: Some(255) }),
        ("  gtsm: true\n  gtsm-hops: 3\n", |p| p.ttl == TtlPolicy { outgoing: 255, min_incoming: Some(253) }),
        ("  passive: true\n", |p| p.passive),
        ("  graceful-restart: true\n", |p| p.graceful_restart == Some(GracefulRestart { restart_time: Duration::from_secs(120) })),
        ("  graceful-restart: true\n  graceful-restart-time: 300s\n", |p| p.graceful_restart == Some(GracefulRestart { restart_time: Duration::from_secs(300) })),
        ("  graceful-restart: false\n", |p| p.graceful_restart.is_none()),
        ("  max-prefixes: 1000\n", |p| p.max_prefixes == Some(1000)),
        ("  families: [ipv6-unicast, ipv4-unicast]\n", |p| p.families == [Family::IPV4_UNICAST, Family::IPV6_UNICAST]),
        ("  families: [ipv6]\n", |p| p.families == [Family::IPV6_UNICAST]),
        ("  node-selectors:\n  - match-labels:\n      kubernetes.io/hostname: prod-01\n", |p| {
            p.node_selectors.len() == 1 && p.node_selectors[0].match_labels["kubernetes.io/hostname"] == "prod-01"
        }),
        ("  node-selectors:\n  - match-expressions:\n    - key: kubernetes.io/arch\n      operator: In\n      values: [amd64, arm]\n", |p| {
            p.node_selectors[0].match_expressions
                == [Requirement { key: "kubernetes.io/arch".into(), op: SelectorOp::In, values: vec!["amd64".into(), "arm".into()] }]
        }),
        ("  node-selectors:\n  - match-expressions:\n    - key: rack\n      operator: DoesNotExist\n", |p| {
            p.node_selectors[0].match_expressions[0].op == SelectorOp::DoesNotExist
        }),
        ("  node-selectors: []\n", |p| p.node_selectors.is_empty()),
    ];
    for (extra, check) in cases {
        let p = peer_of(&one_peer(extra));
        assert!(check(&p), "{extra}=> {p:?}");
    }
}

#[test]
fn ibgp_and_ipv6_and_4_octet_peers() {
    let p = peer_of("peers:\n- my-asn: 4200000001\n  peer-asn: 4200000001\n  peer-address: fd00:99::1\n  source-address: fd00:99::2\n");
    assert!(p.is_ibgp());
    assert_eq!(p.ttl.outgoing, 255, "iBGP sends TTL 255 like FRR");
    assert_eq!(
        p.families,
        [Family::IPV6_UNICAST],
        "default family is the transport's"
    );
}

#[test]
fn every_peer_error_names_field_and_line() {
    // (extra lines of the peer, expected full error; the peer starts on line 2).
    let cases: &[(&str, &str)] = &[
        ("  peer-port: 70000\n", "peers[0].peer-port: invalid value 70000: expected a TCP port in 0..=65535 (line 5, column 14)"),
        ("  peer-port: http\n", "peers[0].peer-port: invalid value \"http\": expected a TCP port in 0..=65535 (line 5, column 14)"),
        ("  source-address: fd00::2\n", "peers[0].source-address: fd00::2 and peer-address 10.0.0.1 are of different address families (line 5, column 19)"),
        ("  source-address: 10.0.0.1\n", "peers[0].source-address: 10.0.0.1 is the peer's own address (line 5, column 19)"),
        ("  source-address: 0.0.0.0\n", "peers[0].source-address: 0.0.0.0 cannot be a source address (omit the key to let the kernel choose) (line 5, column 19)"),
        ("  source-address: nope\n", "peers[0].source-address: invalid value \"nope\": expected an IP address (line 5, column 19)"),
        ("  hold-time: 2s\n", "peers[0].hold-time: invalid hold time 2s: must be 0 or >=3s (RFC 4271 §4.2) (line 5, column 14)"),
        ("  hold-time: 90\n", "peers[0].hold-time: invalid duration 90: missing unit (write e.g. \"90s\") (line 5, column 14)"),
        ("  hold-time: 1d\n", "peers[0].hold-time: invalid duration \"1d\": unknown unit \"d\" (use h, m, s, ms, us or ns) (line 5, column 14)"),
        ("  hold-time: 65536s\n", "peers[0].hold-time: invalid hold time 65536s: at most 65535s fits in an OPEN (line 5, column 14)"),
        ("  hold-time: -5s\n", "peers[0].hold-time: invalid duration \"-5s\": must not be negative (line 5, column 14)"),
        ("  hold-time: 30s\n  keepalive-time: 30s\n", "peers[0].keepalive-time: 30s must be less than hold-time (30s) (line 6, column 19)"),
        ("  hold-time: 30s\n  keepalive-time: 0s\n", "peers[0].keepalive-time: must be at least 1s when hold-time is 30s (line 6, column 19)"),
        ("  hold-time: 0s\n  keepalive-time: 10s\n", "peers[0].keepalive-time: must be 0 (or unset) when hold-time is 0: without a hold timer no keepalives are sent (line 6, column 19)"),
        ("  router-id: fd00::1\n", "peers[0].router-id: fd00::1 is IPv6: a BGP Identifier is 4 octets, written as an IPv4 address (RFC 4271 §4.2) (line 5, column 14)"),
        ("  router-id: 0.0.0.0\n", "peers[0].router-id: 0.0.0.0 is not a valid BGP Identifier (RFC 6286) (line 5, column 14)"),
        ("  password: [a]\n", "peers[0].password: expected a string (line 5, column 13)"),
        ("  ebgp-multihop: maybe\n", "peers[0].ebgp-multihop: invalid value \"maybe\": expected true or false (line 5, column 18)"),
        ("  ebgp-multihop-ttl: 3\n", "peers[0].ebgp-multihop-ttl: requires ebgp-multihop: true (line 5, column 22)"),
        ("  ebgp-multihop: true\n  ebgp-multihop-ttl: 0\n", "peers[0].ebgp-multihop-ttl: invalid value 0: expected a TTL in 1..=255 (line 6, column 22)"),
        ("  gtsm-hops: 2\n", "peers[0].gtsm-hops: requires gtsm: true (line 5, column 14)"),
        ("  gtsm: true\n  gtsm-hops: 255\n", "peers[0].gtsm-hops: invalid value 255: expected a hop count in 1..=254 (line 6, column 14)"),
        ("  gtsm: true\n  ebgp-multihop: true\n", "peers[0].gtsm: gtsm and ebgp-multihop are mutually exclusive: GTSM always sends TTL 255; set gtsm-hops for a peer several hops away (line 5, column 9)"),
        ("  passive: 1\n", "peers[0].passive: invalid value 1: expected true or false (line 5, column 12)"),
        ("  graceful-restart-time: 60s\n", "peers[0].graceful-restart-time: requires graceful-restart: true (line 5, column 26)"),
        ("  graceful-restart: true\n  graceful-restart-time: 5000s\n", "peers[0].graceful-restart-time: 5000s is out of range: the Restart Time field holds 1s..=4095s (RFC 4724) (line 6, column 26)"),
        ("  max-prefixes: 0\n", "peers[0].max-prefixes: invalid value 0: expected a prefix count (omit the key for no limit) in 1..=4294967295 (line 5, column 17)"),
        ("  families: []\n", "peers[0].families: must name at least one of ipv4-unicast, ipv6-unicast (line 5, column 13)"),
        ("  families: [ipv4-multicast]\n", "peers[0].families[0]: unknown address family \"ipv4-multicast\": expected ipv4-unicast or ipv6-unicast (line 5, column 14)"),
        ("  families: [ipv4, ipv4-unicast]\n", "peers[0].families[1]: \"ipv4-unicast\" is listed twice (line 5, column 20)"),
        ("  bfd-profile: fast\n", "peers[0].bfd-profile: \"fast\" is not defined in bfd-profiles (line 5, column 16)"),
        ("  node-selectors:\n  - match-expressions:\n    - key: rack\n      operator: in\n      values: [a]\n",
         "peers[0].node-selectors[0].match-expressions[0].operator: \"in\" is not a valid label selector operator: expected In, NotIn, Exists or DoesNotExist (line 8, column 17)"),
        ("  node-selectors:\n  - match-expressions:\n    - key: rack\n      operator: In\n",
         "peers[0].node-selectors[0].match-expressions[0].values: must not be empty for operators In and NotIn (line 7, column 7)"),
        ("  node-selectors:\n  - match-expressions:\n    - key: rack\n      operator: Exists\n      values: [a]\n",
         "peers[0].node-selectors[0].match-expressions[0].values: must be empty for operators Exists and DoesNotExist (line 9, column 15)"),
        ("  node-selectors:\n  - match-expressions:\n    - operator: Exists\n",
         "peers[0].node-selectors[0].match-expressions[0].key: missing: the label key is required (line 7, column 7)"),
        ("  node-selectors:\n  - match-labels:\n      Bad Key: x\n",
         "peers[0].node-selectors[0].match-labels.Bad Key: label key \"Bad Key\": may contain only letters, digits, '-', '_' and '.' (line 7, column 16)"),
    ];
    for (extra, want) in cases {
        let errs = errors_of(&one_peer(extra));
        assert_eq!(errs, [want.to_string()], "{extra}");
    }
}

#[test]
fn required_and_reserved_peer_values() {
    let cases: &[(&str, &str)] = &[
        ("peers:\n- peer-asn: 1\n  peer-address: 10.0.0.1\n", "peers[0].my-asn: missing: the local AS number is required (line 2, column 3)"),
        ("peers:\n- my-asn: 1\n  peer-address: 10.0.0.1\n", "peers[0].peer-asn: missing: the peer's AS number is required (line 2, column 3)"),
        ("peers:\n- my-asn: 1\n  peer-asn: 2\n", "peers[0].peer-address: missing: the peer's IP address is required (line 2, column 3)"),
        ("peers:\n- my-asn: 0\n  peer-asn: 2\n  peer-address: 10.0.0.1\n", "peers[0].my-asn: AS number 0 is reserved (RFC 7607) and cannot be used (line 2, column 11)"),
        ("peers:\n- my-asn: 1\n  peer-asn: 23456\n  peer-address: 10.0.0.1\n", "peers[0].peer-asn: AS number 23456 is AS_TRANS (RFC 6793), not a usable AS number (line 3, column 13)"),
        ("peers:\n- my-asn: 1\n  peer-asn: 4294967296\n  peer-address: 10.0.0.1\n", "peers[0].peer-asn: invalid value 4294967296: expected an AS number (1..=4294967295) (line 3, column 13)"),
        ("peers:\n- my-asn: 1\n  peer-asn: 2\n  peer-address: 224.0.0.5\n", "peers[0].peer-address: 224.0.0.5 cannot be a BGP peer address (line 4, column 17)"),
        ("peers:\n- my-asn: 1\n  peer-asn: 2\n  peer-address: fe80::1\n", "peers[0].peer-address: fe80::1 is link-local: peering needs an interface scope, which the config cannot name; use a global or ULA address (line 4, column 17)"),
        ("peers:\n- my-asn: 1\n  peer-asn: 1\n  peer-address: 10.0.0.1\n  ebgp-multihop: true\n", "peers[0].ebgp-multihop: invalid ebgp-multihop parameter set for an ibgp peer (my-asn equals peer-asn) (line 5, column 18)"),
    ];
    for (yaml, want) in cases {
        assert_eq!(errors_of(yaml), [want.to_string()], "{yaml}");
    }
}

#[test]
fn the_example_error_from_the_brief() {
    let yaml = "\
peers:
- my-asn: 64500
  peer-asn: 64501
  peer-address: 10.0.0.1
- my-asn: 64500
  peer-address: 10.0.0.2
  peer-asn: abc
";
    assert_eq!(
        errors_of(yaml),
        ["peers[1].peer-asn: invalid value \"abc\": expected an AS number (1..=4294967295) (line 7, column 13)"]
    );
}

#[test]
fn password_is_never_shown() {
    let long = "k".repeat(81);
    let errs = errors_of(&one_peer(&format!("  password: {long}\n")));
    assert_eq!(
        errs,
        ["peers[0].password: is 81 bytes: TCP MD5 keys are at most 80 bytes (line 5, column 13)"]
    );
    let p = peer_of(&one_peer("  password: s3cret\n"));
    assert!(!format!("{p:?}").contains("s3cret"));
}

#[test]
fn all_errors_are_reported_at_once() {
    let yaml = "\
peers:
- my-asn: 0
  peer-asn: 64501
  peer-address: 10.0.0.1
  hold-time: 1s
- my-asn: 64500
  peer-asn: 64501
  peer-address: 10.0.0.300
address-pools:
- name: a
  protocol: bgp
  addresses: [10.1.0.0/24]
- name: a
  protocol: ospf
  addresses: [10.1.0.128/25]
";
    let errs = errors_of(yaml);
    assert_eq!(
        errs,
        [
            "peers[0].my-asn: AS number 0 is reserved (RFC 7607) and cannot be used (line 2, column 11)",
            "peers[0].hold-time: invalid hold time 1s: must be 0 or >=3s (RFC 4271 §4.2) (line 5, column 14)",
            "peers[1].peer-address: invalid value \"10.0.0.300\": expected an IP address (line 8, column 17)",
            "address-pools[1].name: duplicate definition of pool \"a\" (also address-pools[0]) (line 13, column 9)",
            "address-pools[1].protocol: unknown protocol \"ospf\": expected bgp or layer2 (line 14, column 13)",
            "address-pools[1].addresses[0]: \"10.1.0.128/25\" overlaps with already defined CIDR 10.1.0.0/24 (address-pools[0].addresses[0], pool \"a\") (line 15, column 15)",
        ]
    );
}

#[test]
fn duplicate_peers_and_listen_rules() {
    let dup = "peers:\n- my-asn: 1\n  peer-asn: 2\n  peer-address: 10.0.0.1\n- my-asn: 1\n  peer-asn: 3\n  peer-address: 10.0.0.1\n";
    assert_eq!(
        errors_of(dup),
        ["peers[1]: duplicate peer: peers[0] already peers with 10.0.0.1 port 179 on the same nodes (line 5, column 3)"]
    );
    // Same router from different nodes, or on another port: fine.
    let by_node = format!("{dup}  node-selectors:\n  - match-labels: {{rack: r2}}\n");
    assert_eq!(parse(&by_node).unwrap().peers.len(), 2);
    let other_port = format!("{dup}  peer-port: 1179\n");
    assert_eq!(parse(&other_port).unwrap().peers.len(), 2);

    let c = parse("listen-address: 10.99.0.1\nlisten-port: 1790\n").unwrap();
    assert_eq!(
        c.listen,
        Some(ListenConfig {
            address: Some("10.99.0.1".parse().unwrap()),
            port: 1790
        })
    );
    let c = parse("peers: []\n").unwrap();
    assert_eq!(
        c.listen,
        Some(ListenConfig {
            address: None,
            port: 179
        })
    );
    let c = parse("listen-port: 0\n").unwrap();
    assert_eq!(c.listen, None);

    let passive = one_peer("  passive: true\n");
    assert_eq!(
        errors_of(&format!("listen-port: 0\n{passive}")),
        ["peers[0].passive: the peer is passive but listen-port is 0 (never listen): the session could never come up (line 6, column 12)"]
    );
    assert_eq!(
        errors_of(&format!("listen-address: fd00::1\n{passive}")),
        ["peers[0].passive: the peer is passive but listen-address fd00::1 is of another address family than peer-address 10.0.0.1 (line 6, column 12)"]
    );
    assert!(parse(&format!("listen-address: \"::\"\n{passive}")).is_ok());
    assert_eq!(
        errors_of("listen-port: 99999\n"),
        ["listen-port: invalid value 99999: expected a TCP port (0: never listen) in 0..=65535 (line 1, column 14)"]
    );
}

#[test]
fn keepalive_follows_the_negotiated_hold_time() {
    let default = peer_of(&one_peer(""));
    assert_eq!(
        default.keepalive_for(Duration::from_secs(9)),
        Duration::from_secs(3)
    );
    assert_eq!(
        default.keepalive_for(Duration::from_secs(4)),
        Duration::from_secs(1)
    );
    assert_eq!(default.keepalive_for(Duration::ZERO), Duration::ZERO);
    let explicit = peer_of(&one_peer("  hold-time: 90s\n  keepalive-time: 10s\n"));
    assert_eq!(
        explicit.keepalive_for(Duration::from_secs(90)),
        Duration::from_secs(10)
    );
    assert_eq!(
        explicit.keepalive_for(Duration::from_secs(9)),
        Duration::from_secs(3)
    );
}

#[test]
fn node_selection_at_run_time() {
    let yaml = "peers:\n- my-asn: 1\n  peer-asn: 2\n  peer-address: 10.0.0.1\n  node-selectors:\n  - match-labels: {rack: r1}\n- my-asn: 1\n  peer-asn: 2\n  peer-address: 10.0.0.2\n";
    let c = parse(yaml).unwrap();
    let r1: std::collections::BTreeMap<String, String> =
        [("rack".to_string(), "r1".to_string())].into();
    let r2: std::collections::BTreeMap<String, String> =
        [("rack".to_string(), "r2".to_string())].into();
    assert_eq!(c.peers_for_node(&r1).count(), 2);
    let on_r2: Vec<_> = c
        .peers_for_node(&r2)
        .map(|p| p.peer_address.to_string())
        .collect();
    assert_eq!(on_r2, ["10.0.0.2"]);
}

const POOL: &str = "address-pools:\n- name: p\n  protocol: bgp\n";

#[test]
fn pools_and_advertisements_when_valid() {
    let c = parse(&format!(
        "{POOL}  addresses:\n  - 192.168.1.240-192.168.1.250\n  - fd00:99::/120\n"
    ))
    .unwrap();
    let p = &c.pools[0];
    assert_eq!(p.name, "p");
    assert_eq!(p.protocol, Protocol::Bgp);
    assert!(p.auto_assign);
    assert!(!p.avoid_buggy_ips);
    let cidrs: Vec<String> = p.cidrs.iter().map(ToString::to_string).collect();
    assert_eq!(
        cidrs,
        [
            "192.168.1.240/29",
            "192.168.1.248/31",
            "192.168.1.250/32",
            "fd00:99::/120"
        ]
    );
    assert_eq!(
        p.bgp_advertisements,
        [BgpAdvertisement::default()],
        "MetalLB's default advertisement"
    );
    assert!(p.contains("192.168.1.250".parse().unwrap()));
    assert!(!p.contains("192.168.1.251".parse().unwrap()));

    let yaml = "\
bgp-communities:
  no-advertise: 65535:65282
  blue: large:64500:1:2
address-pools:
- name: p
  protocol: bgp
  avoid-buggy-ips: true
  auto-assign: false
  addresses: [198.51.100.0/24]
  bgp-advertisements:
  - aggregation-length: 32
    localpref: 100
    communities: [no-advertise, blue, 64512:1]
  - aggregation-length: 24
";
    let c = parse(yaml).unwrap();
    assert_eq!(
        c.communities["no-advertise"],
        Community::Standard(0xffff_ff02)
    );
    let p = &c.pools[0];
    assert!(p.avoid_buggy_ips && !p.auto_assign);
    assert_eq!(
        p.bgp_advertisements,
        [
            BgpAdvertisement {
                aggregation_length: 32,
                aggregation_length_v6: 128,
                local_pref: Some(100),
                communities: vec![
                    Community::Standard((64512 << 16) | 1),
                    Community::Standard(0xffff_ff02),
                    Community::Large(64500, 1, 2),
                ],
            },
            BgpAdvertisement {
                aggregation_length: 24,
                ..BgpAdvertisement::default()
            },
        ]
    );
    let l2 = parse("address-pools:\n- name: l\n  protocol: layer2\n  addresses: [10.0.0.0/28]\n")
        .unwrap();
    assert_eq!(l2.pools[0].protocol, Protocol::Layer2);
    assert!(l2.pools[0].bgp_advertisements.is_empty());
}

#[test]
fn every_pool_error_names_field_and_line() {
    let cases: &[(&str, &str)] = &[
        ("address-pools:\n- protocol: bgp\n  addresses: [10.0.0.0/24]\n", "address-pools[0].name: missing: every pool needs a name (line 2, column 3)"),
        ("address-pools:\n- name: p\n  addresses: [10.0.0.0/24]\n", "address-pools[0].protocol: missing: address pool is missing the protocol field (bgp or layer2) (line 2, column 3)"),
        (POOL, "address-pools[0].addresses: pool has no prefixes defined (line 2, column 3)"),
        ("address-pools:\n- name: p\n  protocol: bgp\n  addresses: [10.0.0.1]\n", "address-pools[0].addresses[0]: invalid CIDR \"10.0.0.1\": a prefix length is required (write 10.0.0.1/32 for one address) (line 4, column 15)"),
        ("address-pools:\n- name: p\n  protocol: bgp\n  addresses: [10.0.0.9-10.0.0.1]\n", "address-pools[0].addresses[0]: invalid IP range \"10.0.0.9-10.0.0.1\": start IP 10.0.0.9 is after the end IP 10.0.0.1 (line 4, column 15)"),
        ("address-pools:\n- name: p\n  protocol: bgp\n  addresses: [10.0.0.0/24, 10.0.0.5-10.0.0.9]\n", "address-pools[0].addresses[1]: \"10.0.0.5-10.0.0.9\" overlaps with already defined CIDR 10.0.0.0/24 (address-pools[0].addresses[0], pool \"p\") (line 4, column 28)"),
        ("address-pools:\n- name: p\n  protocol: layer2\n  addresses: [10.0.0.0/24]\n  bgp-advertisements:\n  - localpref: 1\n", "address-pools[0].bgp-advertisements: cannot have bgp-advertisements configuration element in a layer2 address pool (line 6, column 3)"),
        ("address-pools:\n- name: p\n  protocol: bgp\n  addresses: [10.0.0.0/24]\n  avoid-buggy-ips: perhaps\n", "address-pools[0].avoid-buggy-ips: invalid value \"perhaps\": expected true or false (line 5, column 20)"),
        ("address-pools:\n- name: p\n  protocol: bgp\n  addresses: [10.0.0.0/24]\n  auto-assign: 3\n", "address-pools[0].auto-assign: invalid value 3: expected true or false (line 5, column 16)"),
        ("address-pools:\n- name: p\n  protocol: bgp\n  addresses: [10.0.0.0/26]\n  bgp-advertisements:\n  - aggregation-length: 24\n",
         "address-pools[0].bgp-advertisements[0].aggregation-length: 24 is shorter than prefix 10.0.0.0/26 of address-pools[0].addresses[0] \"10.0.0.0/26\": the aggregate would cover addresses outside the pool (line 6, column 25)"),
        ("address-pools:\n- name: p\n  protocol: bgp\n  addresses: [fd00::/120]\n  bgp-advertisements:\n  - aggregation-length-v6: 64\n",
         "address-pools[0].bgp-advertisements[0].aggregation-length-v6: 64 is shorter than prefix fd00::/120 of address-pools[0].addresses[0] \"fd00::/120\": the aggregate would cover addresses outside the pool (line 6, column 28)"),
        ("address-pools:\n- name: p\n  protocol: bgp\n  addresses: [10.0.0.0/24]\n  bgp-advertisements:\n  - aggregation-length: 33\n", "address-pools[0].bgp-advertisements[0].aggregation-length: invalid value 33: expected a prefix length for IPv4 in 0..=32 (line 6, column 25)"),
        ("address-pools:\n- name: p\n  protocol: bgp\n  addresses: [10.0.0.0/24]\n  bgp-advertisements:\n  - aggregation-length: -1\n", "address-pools[0].bgp-advertisements[0].aggregation-length: invalid value -1: expected a prefix length for IPv4 in 0..=32 (line 6, column 25)"),
        ("address-pools:\n- name: p\n  protocol: bgp\n  addresses: [10.0.0.0/24]\n  bgp-advertisements:\n  - localpref: -1\n", "address-pools[0].bgp-advertisements[0].localpref: invalid value -1: expected a LOCAL_PREF value in 0..=4294967295 (line 6, column 16)"),
        ("address-pools:\n- name: p\n  protocol: bgp\n  addresses: [10.0.0.0/24]\n  bgp-advertisements:\n  - communities: [no-export]\n",
         "address-pools[0].bgp-advertisements[0].communities[0]: invalid community \"no-export\": expected <0-65535>:<0-65535> (or large:<a>:<b>:<c>) and not an alias defined in bgp-communities (line 6, column 19)"),
        ("address-pools:\n- name: p\n  protocol: bgp\n  addresses: [10.0.0.0/24]\n  bgp-advertisements:\n  - communities: [\"1:70000\"]\n",
         "address-pools[0].bgp-advertisements[0].communities[0]: invalid community \"1:70000\": second part \"70000\" is not a number in 0..=65535 (line 6, column 19)"),
        ("address-pools:\n- name: p\n  protocol: bgp\n  addresses: [10.0.0.0/24]\n  bgp-advertisements:\n  - communities: [\"1:1\", \"1:1\"]\n",
         "address-pools[0].bgp-advertisements[0].communities[1]: duplicate definition of community \"1:1\" (1:1) (line 6, column 26)"),
        ("address-pools:\n- name: p\n  protocol: bgp\n  addresses: [10.0.0.0/24]\n  bgp-advertisements:\n  - localpref: 5\n  - localpref: 5\n",
         "address-pools[0].bgp-advertisements[1]: duplicate definition of bgp-advertisements: equal to address-pools[0].bgp-advertisements[0] (line 7, column 5)"),
        ("bgp-communities:\n  x: 65536:1\n", "bgp-communities.x: invalid community \"65536:1\": first part \"65536\" is not a number in 0..=65535 (line 2, column 6)"),
    ];
    for (yaml, want) in cases {
        assert_eq!(errors_of(yaml), [want.to_string()], "{yaml}");
    }
}

#[test]
fn bfd_profiles_are_checked_like_metallb() {
    let yaml = "bfd-profiles:\n- name: fast\n  receive-interval: 300\n  detect-multiplier: 3\n  echo-mode: true\n";
    let c = parse(&format!("{yaml}{}", one_peer("  bfd-profile: fast\n"))).unwrap();
    assert_eq!(c.bfd_profiles[0].receive_interval, Some(300));
    assert!(c.bfd_profiles[0].echo_mode);
    assert_eq!(c.peers[0].bfd_profile.as_deref(), Some("fast"));
    assert_eq!(c.warnings.len(), 1);
    assert!(
        c.warnings[0]
            .to_string()
            .starts_with("peers[0].bfd-profile: bgplane does not run BFD"),
        "{}",
        c.warnings[0]
    );
    let cases: &[(&str, &str)] = &[
        ("bfd-profiles:\n- name: a\n  receive-interval: 5\n", "bfd-profiles[0].receive-interval: invalid value 5: expected milliseconds in 10..=60000 (line 3, column 21)"),
        ("bfd-profiles:\n- name: a\n  detect-multiplier: 256\n", "bfd-profiles[0].detect-multiplier: invalid value 256: expected a multiplier in 2..=255 (line 3, column 22)"),
        ("bfd-profiles:\n- name: a\n  minimum-ttl: 255\n", "bfd-profiles[0].minimum-ttl: invalid value 255: expected a TTL in 1..=254 (line 3, column 16)"),
        ("bfd-profiles:\n- name: a\n- name: a\n", "bfd-profiles[1].name: found duplicate bfd profile name a (line 3, column 9)"),
        ("bfd-profiles:\n- echo-mode: true\n", "bfd-profiles[0].name: missing bfd profile name (line 2, column 3)"),
    ];
    for (yaml, want) in cases {
        assert_eq!(errors_of(yaml), [want.to_string()], "{yaml}");
    }
}

#[test]
fn warnings_for_what_can_never_be_announced() {
    let c = parse(&format!("{}{POOL}  addresses: [10.0.0.0/24, fd00::/120]\n  bgp-advertisements:\n  - localpref: 50\n", one_peer(""))).unwrap();
    let w: Vec<String> = c.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        w,
        [
            "address-pools[0].addresses: pool \"p\" has IPv6 addresses but no peer carries ipv6-unicast: they will not be announced (see a peer's families) (line 8, column 14)",
            "address-pools[0].bgp-advertisements[0].localpref: LOCAL_PREF is only sent to iBGP peers (my-asn equal to peer-asn), and no peer is iBGP (line 10, column 16)",
        ]
    );
    let c = parse(&format!("{POOL}  addresses: [10.0.0.7/24]\n")).unwrap();
    let w: Vec<String> = c.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        w,
        [
            "address-pools[0].addresses[0]: \"10.0.0.7/24\" has host bits set: it means 10.0.0.0/24 (line 4, column 15)",
            "address-pools[0]: pool \"p\" uses protocol bgp but no peers are configured: nothing will be announced (line 2, column 3)",
        ]
    );
}

#[test]
fn shape_errors_from_serde_keep_path_and_line() {
    let cases: &[(&str, &str)] = &[
        (
            "peers:\n- my-asn: 1\n  bogus: 1\n",
            "peers[0].bogus: unknown field `bogus`, expected one of `my-asn`",
        ),
        (
            "peers: {}\n",
            "peers: invalid type: map, expected a sequence (line 1, column 8)",
        ),
        (
            "- 1\n",
            "invalid type: sequence, expected the bgplane/MetalLB config: a mapping with peers",
        ),
        (
            "address-pools:\n- name: p\n  cidr: [10.0.0.0/24]\n",
            "address-pools[0].cidr: unknown field `cidr`",
        ),
        (
            "address-pools:\n- name: p\n  bgp-advertisements:\n  - local-pref: 1\n",
            "address-pools[0].bgp-advertisements[0].local-pref: unknown field `local-pref`",
        ),
        (
            "peers:\n- my-asn: 1\n  my-asn: 2\n",
            "duplicate entry with key \"my-asn\" (line 2, column 3)",
        ),
        ("protocol: bgp\n", "protocol: unknown field `protocol`"),
    ];
    for (yaml, want) in cases {
        let errs = errors_of(yaml);
        assert_eq!(errs.len(), 1, "{yaml}: {errs:?}");
        assert!(
            errs[0].contains(want),
            "{yaml}\n got: {}\nwant: {want}",
            errs[0]
        );
    }
}

#[test]
fn configmap_errors_point_at_file_lines() {
    let yaml = "\
apiVersion: v1
kind: ConfigMap
metadata:
  namespace: metallb-system
  name: config
data:
  config: |
    peers:
    - my-asn: 64500
      peer-asn: abc
      peer-address: 10.0.0.1
";
    assert_eq!(
        errors_of(yaml),
        ["peers[0].peer-asn: invalid value \"abc\": expected an AS number (1..=4294967295) (line 10, column 17)"]
    );
    let unknown = yaml.replace("peer-asn: abc", "peer-asm: 1");
    let errs = errors_of(&unknown);
    assert!(
        errs[0].starts_with("peers[0].peer-asm: unknown field `peer-asm`"),
        "{}",
        errs[0]
    );
    assert!(errs[0].ends_with("(line 10, column 7)"), "{}", errs[0]);
    let ok = parse(&yaml.replace("abc", "64501")).unwrap();
    assert_eq!(
        ok.source,
        ConfigSource::ConfigMap {
            namespace: Some("metallb-system".into()),
            name: Some("config".into()),
            key: "config".into()
        }
    );
}

#[test]
fn empty_configs_are_valid() {
    for yaml in ["", "\n", "# nothing\n", "peers:\n", "{}\n"] {
        let c = parse(yaml).unwrap_or_else(|e| panic!("{yaml:?}: {e}"));
        assert!(c.peers.is_empty() && c.pools.is_empty());
    }
}

/// The ConfigMap of MetalLB's "Migration to CRDs" page (a v0.12-format config).
#[test]
fn metallb_docs_example_configmap_parses() {
    let yaml = "\
apiVersion: v1
kind: ConfigMap
metadata:
  namespace: metallb-system
  name: config
data:
  config: |
    peers:
    - my-asn: 64512
      peer-asn: 64512
      peer-address: 10.96.0.100
    address-pools:
    - name: my-ip-space
      protocol: bgp
      addresses:
      - 198.51.100.0/24
      bgp-advertisements:
      - aggregation-length: 32
        localpref: 100
        communities:
        - 64512:1234
";
    let c = parse(yaml).unwrap();
    assert_eq!(c.peers.len(), 1);
    assert!(c.peers[0].is_ibgp());
    assert_eq!(c.peers[0].hold_time, Duration::from_secs(90));
    assert_eq!(c.pools[0].name, "my-ip-space");
    assert_eq!(c.pools[0].bgp_advertisements[0].local_pref, Some(100));
    assert_eq!(
        c.pools[0].bgp_advertisements[0].communities,
        [Community::Standard((64512 << 16) | 1234)]
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}
