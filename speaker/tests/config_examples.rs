//! Every file in config-examples/config/ parses, without errors and without warnings (except
//! the ones a file exists to show), and a few per-file facts hold.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bgp::wire::Family;
use speaker::config::{self, Community, Config, ConfigSource, Protocol, TtlPolicy};

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config-examples/config")
}

fn load(name: &str) -> Config {
    let path = examples_dir().join(name);
    config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_example_parses_cleanly() {
    let mut names: Vec<String> = std::fs::read_dir(examples_dir())
        .expect("config-examples/config exists")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
        .collect();
    names.sort();
    assert!(names.len() >= 10, "examples found: {names:?}");
    // Files whose point is a warning.
    let expect_warnings: BTreeMap<&str, &str> =
        [("bfd-profiles.yaml", "bgplane does not run BFD")].into();
    for name in &names {
        let cfg = load(name);
        match expect_warnings.get(name.as_str()) {
            Some(want) => {
                assert_eq!(cfg.warnings.len(), 1, "{name}: {:?}", cfg.warnings);
                assert!(
                    cfg.warnings[0].message.contains(want),
                    "{name}: {}",
                    cfg.warnings[0]
                );
            }
            None => assert!(cfg.warnings.is_empty(), "{name}: {:?}", cfg.warnings),
        }
        assert!(
            !cfg.peers.is_empty() || !cfg.pools.is_empty(),
            "{name} configures nothing"
        );
    }
}

#[test]
fn metallb_configmap_example() {
    let c = load("metallb-configmap.yaml");
    assert!(matches!(&c.source, ConfigSource::ConfigMap { key, .. } if key == "config"));
    let p = &c.peers[0];
    assert_eq!((p.my_asn, p.peer_asn, p.peer_port), (64500, 64501, 179));
    assert_eq!(p.hold_time, Duration::from_secs(120));
    assert_eq!(p.keepalive_time, Duration::from_secs(30));
    assert_eq!(p.source_address, Some("10.0.0.2".parse().unwrap()));
    assert_eq!(p.router_id, Some("10.0.0.2".parse().unwrap()));
    assert!(p.password.is_some());
    let prod01: BTreeMap<String, String> = [
        ("kubernetes.io/hostname".to_string(), "prod-01".to_string()),
        ("kubernetes.io/arch".to_string(), "arm64".to_string()),
    ]
    .into();
    assert!(p.selects_node(&prod01));
    assert!(!p.selects_node(&BTreeMap::new()));
    assert_eq!(c.pools.len(), 2);
    assert_eq!(c.pools[0].bgp_advertisements.len(), 2);
    assert!(c.pools[0].bgp_advertisements[0]
        .communities
        .contains(&Community::Standard(0xffff_ff02)));
    assert!(c.pools[1].contains("192.0.2.20".parse().unwrap()));
    assert!(!c.pools[1].contains("192.0.2.21".parse().unwrap()));
    assert!(!c.pools[1].auto_assign);
}

#[test]
fn extension_examples_resolve_as_documented() {
    let c = load("peer-passive-listen.yaml");
    assert!(c.peers[0].passive);
    let listen = c.listen.expect("listens");
    assert_eq!(
        (listen.address, listen.port),
        (Some("10.0.0.2".parse().unwrap()), 1179)
    );

    assert_eq!(load("no-listen.yaml").listen, None);

    let gr = load("peer-graceful-restart.yaml").peers[0]
        .graceful_restart
        .expect("enabled");
    assert_eq!(gr.restart_time, Duration::from_secs(180));

    let ttl: Vec<TtlPolicy> = load("peer-multihop-gtsm.yaml")
        .peers
        .iter()
        .map(|p| p.ttl)
        .collect();
    assert_eq!(
        ttl,
        [
            TtlPolicy {
                outgoing: 3,
                min_incoming: None
            },
            TtlPolicy {
                outgoing: 255,
                min_incoming: Some(255)
            },
            TtlPolicy {
                outgoing: 255,
                min_incoming: Some(254)
            },
        ]
    );

    let fam = &load("peer-families-max-prefixes.yaml").peers[0];
    assert_eq!(fam.families, [Family::IPV4_UNICAST, Family::IPV6_UNICAST]);
    assert_eq!(fam.max_prefixes, Some(1000));

    let pools = load("pools-ipv6-ranges-communities.yaml");
    assert_eq!(
        pools.communities["customer-blue"],
        Community::Large(64500, 1, 2)
    );
    let v6: Vec<String> = pools.pools[1]
        .cidrs
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(v6, ["fd00:99:2::/112", "fd00:99:3::10/124"]);

    assert_eq!(load("layer2.yaml").pools[0].protocol, Protocol::Layer2);
    let ibgp = load("peer-ibgp-4-octet-asn.yaml");
    assert!(ibgp.peers[0].is_ibgp() && ibgp.peers[0].my_asn == 4_200_000_001);
    assert!(matches!(
        load("configmap-config-yaml-key.yaml").source,
        ConfigSource::ConfigMap { ref key, ref namespace, .. }
            if key == "config.yaml" && namespace.as_deref() == Some("bgplane-system")
    ));
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let e = config::load("/nonexistent/bgplane.yaml").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("invalid config: cannot read /nonexistent/bgplane.yaml:"),
        "{e}"
    );
}
