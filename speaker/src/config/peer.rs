//! `peers`: MetalLB v0.12's peer rules (required ASNs and address, hold time 0 or >= 3s,
//! keepalive below hold time, no ebgp-multihop on iBGP, node selectors) plus bgplane's
//! extensions (passive, graceful restart, TTL/GTSM, max-prefixes, families) and the checks
//! that need several peers at once (duplicates, passive peers vs. the listener).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use bgp::wire::Family;
use serde_yaml::Value;

use super::error::{Diags, FieldPath};
use super::raw::{RawNodeSelector, RawPeer};
use super::scalar;
use super::selector::{check_label_key, check_label_value, NodeSelector, Requirement, SelectorOp};
use super::types::{BfdProfile, GracefulRestart, ListenConfig, Password, PeerConfig, TtlPolicy};

/// MetalLB's default hold time.
pub const DEFAULT_HOLD_TIME: Duration = Duration::from_secs(90);
/// RFC 4724 leaves it to the operator; FRR and BIRD default to 120s.
pub const DEFAULT_RESTART_TIME: Duration = Duration::from_secs(120);
/// Linux `TCP_MD5SIG_MAXKEYLEN`.
pub const MAX_MD5_KEY_LEN: usize = 80;

fn required(d: &mut Diags, path: &FieldPath, v: Option<&Value>, what: &str) -> Option<Value> {
    match v {
        Some(v) => Some(v.clone()),
        None => {
            d.error(path, format!("missing: {what} is required"));
            None
        }
    }
}

fn opt_bool(d: &mut Diags, path: &FieldPath, v: Option<&Value>) -> Option<bool> {
    v.and_then(|v| scalar::boolean(d, path, v))
}

/// Whole seconds (MetalLB truncates hold-time the same way).
fn whole_secs(dur: Duration) -> Duration {
    Duration::from_secs(dur.as_secs())
}

fn family_name(v: &str) -> Option<Family> {
    match v {
        "ipv4-unicast" | "ipv4" => Some(Family::IPV4_UNICAST),
        "ipv6-unicast" | "ipv6" => Some(Family::IPV6_UNICAST),
        _ => None,
    }
}

fn default_family(ip: IpAddr) -> Family {
    match ip {
        IpAddr::V4(_) => Family::IPV4_UNICAST,
        IpAddr::V6(_) => Family::IPV6_UNICAST,
    }
}

/// Validate one peer; `None` if it has any error (all of them are recorded in `d`).
pub fn peer(
    d: &mut Diags,
    path: &FieldPath,
    r: &RawPeer,
    bfd_profiles: &[BfdProfile],
) -> Option<PeerConfig> {
    let errors_before = d.errors.len();
    let p = |k: &str| path.key(k);

    let my_asn = required(d, &p("my-asn"), r.my_asn.as_ref(), "the local AS number")
        .and_then(|v| scalar::asn(d, &p("my-asn"), &v));
    let peer_asn = required(
        d,
        &p("peer-asn"),
        r.peer_asn.as_ref(),
        "the peer's AS number",
    )
    .and_then(|v| scalar::asn(d, &p("peer-asn"), &v));
    let ibgp = match (my_asn, peer_asn) {
        (Some(a), Some(b)) => Some(a == b),
        _ => None,
    };

    let peer_address = required(
        d,
        &p("peer-address"),
        r.peer_address.as_ref(),
        "the peer's IP address",
    )
    .and_then(|v| scalar::ip(d, &p("peer-address"), &v));
    if let Some(ip) = peer_address {
        if ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::from([255, 255, 255, 255]) {
            d.error(
                &p("peer-address"),
                format!("{ip} cannot be a BGP peer address"),
            );
        } else if let IpAddr::V6(v6) = ip {
            if v6.is_unicast_link_local() {
                d.error(
                    &p("peer-address"),
                    format!("{ip} is link-local: peering needs an interface scope, which the config cannot name; use a global or ULA address"),
                );
            }
        }
    }

    let peer_port =
        match r.peer_port.as_ref() {
            None => 179,
            Some(v) => scalar::uint(d, &p("peer-port"), v, 0, 65535, "a TCP port")
                .map_or(179, |n| if n == 0 { 179 } else { n as u16 }),
        };

    let source_address = r
        .source_address
        .as_ref()
        .and_then(|v| scalar::ip(d, &p("source-address"), v));
    if let (Some(src), Some(dst)) = (source_address, peer_address) {
        if src.is_ipv4() != dst.is_ipv4() {
            d.error(
                &p("source-address"),
                format!("{src} and peer-address {dst} are of different address families"),
            );
        } else if src == dst {
            d.error(
                &p("source-address"),
                format!("{src} is the peer's own address"),
            );
        }
    }
    if let Some(src) = source_address {
        if src.is_unspecified() || src.is_multicast() {
            d.error(
                &p("source-address"),
                format!("{src} cannot be a source address (omit the key to let the kernel choose)"),
            );
        }
    }

    // Timers.
    let hold_time = match r.hold_time.as_ref() {
        None => Some(DEFAULT_HOLD_TIME),
        Some(v) => scalar::duration(d, &p("hold-time"), v).and_then(|raw| {
            let t = whole_secs(raw);
            if !t.is_zero() && t < Duration::from_secs(3) {
                d.error(
                    &p("hold-time"),
                    format!("invalid hold time {raw:?}: must be 0 or >=3s (RFC 4271 §4.2)"),
                );
                None
            } else if t > Duration::from_secs(65535) {
                d.error(
                    &p("hold-time"),
                    format!("invalid hold time {raw:?}: at most 65535s fits in an OPEN"),
                );
                None
            } else {
                Some(t)
            }
        }),
    };
    let keepalive_given = r
        .keepalive_time
        .as_ref()
        .and_then(|v| scalar::duration(d, &p("keepalive-time"), v).map(whole_secs));
    let keepalive_time = match (hold_time, keepalive_given) {
        (Some(h), None) => Some(if h.is_zero() {
            Duration::ZERO
        } else {
            Duration::from_secs((h.as_secs() / 3).max(1))
        }),
        (Some(h), Some(k)) if h.is_zero() && !k.is_zero() => {
            d.error(
                &p("keepalive-time"),
                "must be 0 (or unset) when hold-time is 0: without a hold timer no keepalives are sent",
            );
            None
        }
        (Some(h), Some(k)) if !h.is_zero() && k.is_zero() => {
            d.error(
                &p("keepalive-time"),
                format!("must be at least 1s when hold-time is {}s", h.as_secs()),
            );
            None
        }
        (Some(h), Some(k)) if !h.is_zero() && k >= h => {
            d.error(
                &p("keepalive-time"),
                format!(
                    "{}s must be less than hold-time ({}s)",
                    k.as_secs(),
                    h.as_secs()
                ),
            );
            None
        }
        (Some(_), Some(k)) => Some(k),
        (None, _) => None,
    };

    let router_id = r.router_id.as_ref().and_then(|v| {
        match scalar::ip(d, &p("router-id"), v)? {
            IpAddr::V4(v4) if v4.is_unspecified() => {
                d.error(&p("router-id"), "0.0.0.0 is not a valid BGP Identifier (RFC 6286)");
                None
            }
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(v6) => {
                d.error(
                    &p("router-id"),
                    format!("{v6} is IPv6: a BGP Identifier is 4 octets, written as an IPv4 address (RFC 4271 §4.2)"),
                );
                None
            }
        }
    });

    let node_selectors: Vec<NodeSelector> = r
        .node_selectors
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, s)| node_selector(d, &p("node-selectors").index(i), s))
        .collect();

    let password = r.password.as_ref().and_then(|v| {
        let pp = p("password");
        let s = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => {
                d.error(&pp, "expected a string");
                return None;
            }
        };
        if s.is_empty() {
            None
        } else if s.len() > MAX_MD5_KEY_LEN {
            d.error(
                &pp,
                format!(
                    "is {} bytes: TCP MD5 keys are at most {MAX_MD5_KEY_LEN} bytes",
                    s.len()
                ),
            );
            None
        } else if s.contains(['\n', '\r']) {
            d.error(&pp, "must not contain line breaks");
            None
        } else {
            Some(Password(s))
        }
    });

    let bfd_profile = r.bfd_profile.as_ref().and_then(|v| {
        let name = scalar::string(d, &p("bfd-profile"), v, "a bfd-profiles name")?;
        if name.is_empty() {
            return None;
        }
        if bfd_profiles.iter().any(|b| b.name == name) {
            d.warn(
                &p("bfd-profile"),
                "bgplane does not run BFD: the profile is accepted for MetalLB compatibility and ignored",
            );
        } else {
            d.error(
                &p("bfd-profile"),
                format!("{name:?} is not defined in bfd-profiles"),
            );
        }
        Some(name)
    });

    // TTL handling.
    let ebgp_multihop = opt_bool(d, &p("ebgp-multihop"), r.ebgp_multihop.as_ref()).unwrap_or(false);
    if ebgp_multihop && ibgp == Some(true) {
        d.error(
            &p("ebgp-multihop"),
            "invalid ebgp-multihop parameter set for an ibgp peer (my-asn equals peer-asn)",
        );
    }
    let multihop_ttl = r.ebgp_multihop_ttl.as_ref().and_then(|v| {
        let n = scalar::uint(d, &p("ebgp-multihop-ttl"), v, 1, 255, "a TTL")? as u8;
        if !ebgp_multihop {
            d.error(&p("ebgp-multihop-ttl"), "requires ebgp-multihop: true");
        }
        Some(n)
    });
    let gtsm = opt_bool(d, &p("gtsm"), r.gtsm.as_ref()).unwrap_or(false);
    let gtsm_hops = r.gtsm_hops.as_ref().and_then(|v| {
        let n = scalar::uint(d, &p("gtsm-hops"), v, 1, 254, "a hop count")? as u8;
        if !gtsm {
            d.error(&p("gtsm-hops"), "requires gtsm: true");
        }
        Some(n)
    });
    if gtsm && ebgp_multihop {
        d.error(
            &p("gtsm"),
            "gtsm and ebgp-multihop are mutually exclusive: GTSM always sends TTL 255; set gtsm-hops for a peer several hops away",
        );
    }
    let ttl = if gtsm {
        TtlPolicy {
            outgoing: 255,
            min_incoming: Some((256 - u16::from(gtsm_hops.unwrap_or(1))) as u8),
        }
    } else if ibgp == Some(true) {
        TtlPolicy {
            outgoing: 255,
            min_incoming: None,
        }
    } else if ebgp_multihop {
        TtlPolicy {
            outgoing: multihop_ttl.unwrap_or(255),
            min_incoming: None,
        }
    } else {
        TtlPolicy {
            outgoing: 1,
            min_incoming: None,
        }
    };

    let passive = opt_bool(d, &p("passive"), r.passive.as_ref()).unwrap_or(false);

    let gr_enabled =
        opt_bool(d, &p("graceful-restart"), r.graceful_restart.as_ref()).unwrap_or(false);
    let gr_time = r.graceful_restart_time.as_ref().and_then(|v| {
        let t = whole_secs(scalar::duration(d, &p("graceful-restart-time"), v)?);
        if t.is_zero() || t > Duration::from_secs(4095) {
            d.error(
                &p("graceful-restart-time"),
                format!(
                    "{}s is out of range: the Restart Time field holds 1s..=4095s (RFC 4724)",
                    t.as_secs()
                ),
            );
            return None;
        }
        if !gr_enabled {
            d.error(
                &p("graceful-restart-time"),
                "requires graceful-restart: true",
            );
        }
        Some(t)
    });
    let graceful_restart = gr_enabled.then(|| GracefulRestart {
        restart_time: gr_time.unwrap_or(DEFAULT_RESTART_TIME),
    });

    let max_prefixes = r.max_prefixes.as_ref().and_then(|v| {
        scalar::uint(
            d,
            &p("max-prefixes"),
            v,
            1,
            u64::from(u32::MAX),
            "a prefix count (omit the key for no limit)",
        )
        .map(|n| n as u32)
    });

    let families = match &r.families {
        None => peer_address.map(|ip| vec![default_family(ip)]),
        Some(list) => {
            let fp = p("families");
            if list.is_empty() {
                d.error(&fp, "must name at least one of ipv4-unicast, ipv6-unicast");
            }
            let mut out: Vec<Family> = Vec::new();
            for (i, v) in list.iter().enumerate() {
                let ip_ = fp.index(i);
                let Some(name) = scalar::string(d, &ip_, v, "ipv4-unicast or ipv6-unicast") else {
                    continue;
                };
                match family_name(&name) {
                    Some(f) if out.contains(&f) => d.error(&ip_, format!("{name:?} is listed twice")),
                    Some(f) => out.push(f),
                    None => d.error(
                        &ip_,
                        format!("unknown address family {name:?}: expected ipv4-unicast or ipv6-unicast"),
                    ),
                }
            }
            out.sort();
            Some(out)
        }
    };

    if d.errors.len() != errors_before {
        return None;
    }
    Some(PeerConfig {
        my_asn: my_asn?,
        peer_asn: peer_asn?,
        peer_address: peer_address?,
        peer_port,
        source_address,
        hold_time: hold_time?,
        keepalive_time: keepalive_time?,
        keepalive_configured: keepalive_given.is_some(),
        router_id,
        node_selectors,
        password,
        bfd_profile,
        ebgp_multihop,
        ttl,
        passive,
        graceful_restart,
        max_prefixes,
        families: families?,
    })
}

fn node_selector(d: &mut Diags, path: &FieldPath, r: &RawNodeSelector) -> Option<NodeSelector> {
    let errors_before = d.errors.len();
    let mut match_labels = BTreeMap::new();
    if let Some(m) = &r.match_labels {
        let mp = path.key("match-labels");
        for (k, v) in m {
            let Some(key) = scalar::string(d, &mp, k, "a label key") else {
                continue;
            };
            let kp = mp.key(&key);
            if let Err(why) = check_label_key(&key) {
                d.error(&kp, why);
            }
            let Some(val) = scalar::string(d, &kp, v, "a label value") else {
                continue;
            };
            if let Err(why) = check_label_value(&val) {
                d.error(&kp, why);
            }
            match_labels.insert(key, val);
        }
    }
    let mut match_expressions = Vec::new();
    for (i, e) in r
        .match_expressions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let ep = path.key("match-expressions").index(i);
        let key = required(d, &ep.key("key"), e.key.as_ref(), "the label key")
            .and_then(|v| scalar::string(d, &ep.key("key"), &v, "a label key"));
        if let Some(k) = &key {
            if let Err(why) = check_label_key(k) {
                d.error(&ep.key("key"), why);
            }
        }
        let op = required(
            d,
            &ep.key("operator"),
            e.operator.as_ref(),
            "the operator (In, NotIn, Exists or DoesNotExist)",
        )
        .and_then(|v| {
            let s = scalar::string(d, &ep.key("operator"), &v, "an operator")?;
            let op = SelectorOp::parse(&s);
            if op.is_none() {
                d.error(
                    &ep.key("operator"),
                    format!("{s:?} is not a valid label selector operator: expected In, NotIn, Exists or DoesNotExist"),
                );
            }
            op
        });
        let mut values = Vec::new();
        for (j, v) in e.values.as_deref().unwrap_or_default().iter().enumerate() {
            let vp = ep.key("values").index(j);
            if let Some(s) = scalar::string(d, &vp, v, "a label value") {
                if let Err(why) = check_label_value(&s) {
                    d.error(&vp, why);
                }
                values.push(s);
            }
        }
        match op {
            Some(SelectorOp::In | SelectorOp::NotIn) if values.is_empty() => d.error(
                &ep.key("values"),
                "must not be empty for operators In and NotIn",
            ),
            Some(SelectorOp::Exists | SelectorOp::DoesNotExist) if !values.is_empty() => d.error(
                &ep.key("values"),
                "must be empty for operators Exists and DoesNotExist",
            ),
            _ => {}
        }
        if let (Some(key), Some(op)) = (key, op) {
            match_expressions.push(Requirement { key, op, values });
        }
    }
    (d.errors.len() == errors_before).then_some(NodeSelector {
        match_labels,
        match_expressions,
    })
}

/// Checks across peers, and against the listener. `peers[i]` is `Some` when peer i was valid.
pub fn cross_check(
    d: &mut Diags,
    base: &FieldPath,
    peers: &[Option<PeerConfig>],
    listen: Option<&ListenConfig>,
    listen_path: &FieldPath,
) {
    for (i, p) in peers.iter().enumerate() {
        let Some(p) = p else { continue };
        let path = base.index(i);
        if let Some(j) = peers[..i].iter().position(|q| {
            q.as_ref().is_some_and(|q| {
                q.peer_address == p.peer_address
                    && q.peer_port == p.peer_port
                    && q.node_selectors == p.node_selectors
            })
        }) {
            d.error(
                &path,
                format!(
                    "duplicate peer: {}[{j}] already peers with {} port {} on the same nodes",
                    base, p.peer_address, p.peer_port
                ),
            );
        }
        if p.passive {
            match listen {
                None => d.error(
                    &path.key("passive"),
                    "the peer is passive but listen-port is 0 (never listen): the session could never come up",
                ),
                Some(ListenConfig {
                    address: Some(a), ..
                }) if *a != IpAddr::from([0u16; 8]) && a.is_ipv4() != p.peer_address.is_ipv4() => {
                    d.error(
                        &path.key("passive"),
                        format!(
                            "the peer is passive but {listen_path} {a} is of another address family than peer-address {}",
                            p.peer_address
                        ),
                    )
                }
                _ => {}
            }
        }
    }
}
