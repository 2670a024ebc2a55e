//! The agent's configuration: a MetalLB v0.12 ConfigMap's config, parsed and validated into
//! `Config` with every default resolved.
//!
//! Input ([`parse`] / [`load`]): the config YAML itself (what the ConfigMap's `config` or
//! `config.yaml` key holds), or a whole ConfigMap manifest (detected by `kind`/`apiVersion`;
//! other documents in the same file, like a Namespace, are skipped).
//!
//! Schema: MetalLB v0.12's `peers` (my-asn, peer-asn, peer-address, peer-port, source-address,
//! hold-time, keepalive-time, router-id, node-selectors, password, bfd-profile, ebgp-multihop),
//! `bgp-communities`, `address-pools` (name, protocol, addresses, avoid-buggy-ips, auto-assign,
//! bgp-advertisements: aggregation-length, aggregation-length-v6, localpref, communities) and
//! `bfd-profiles`; plus bgplane extensions in the same style, documented in
//! `config-examples/README.md`: per peer `passive`, `graceful-restart`,
//! `graceful-restart-time`, `ebgp-multihop-ttl`, `gtsm`, `gtsm-hops`, `max-prefixes`,
//! `families`; top level `listen-address`, `listen-port`; `large:a:b:c` communities.
//!
//! Errors: unknown keys and wrongly shaped YAML stop at the first one (serde); every value and
//! cross-field check after that is reported, all at once. Each names its field path and, where
//! it can be found, the line and column in the file:
//! `peers[1].peer-asn: invalid value "abc": expected an AS number (1..=4294967295) (line 7, column 15)`.

mod community;
mod document;
mod duration;
mod error;
mod locate;
mod peer;
mod pool;
mod raw;
mod scalar;
mod selector;
mod types;

pub use community::Community;
pub use duration::parse_go_duration;
pub use error::{ConfigError, Diagnostic, FieldPath, Location, Seg};
pub use peer::{DEFAULT_HOLD_TIME, DEFAULT_RESTART_TIME};
pub use pool::parse_addresses;
pub use selector::{NodeSelector, Requirement, SelectorOp};
pub use types::{
    BfdProfile, BgpAdvertisement, Config, ConfigSource, GracefulRestart, ListenConfig, Password,
    PeerConfig, Pool, Protocol, TtlPolicy,
};

use std::path::Path;

use ipnet::IpNet;

use error::{Diags, Seg as S};
use raw::RawFile;

/// Read and validate the config file at `path`.
pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::one(Diagnostic::new(
            FieldPath::root(),
            format!("cannot read {}: {e}", path.display()),
        ))
    })?;
    parse(&text)
}

/// Parse and validate config text (either input form). On failure, every error found.
pub fn parse(file: &str) -> Result<Config, ConfigError> {
    let doc = document::open(file).map_err(ConfigError::one)?;
    let raw = read_raw(&doc)?;
    let mut d = Diags::default();
    let cfg = validate(&raw, &mut d, doc.source.clone());
    // Put positions on everything found after serde.
    for diag in d.errors.iter_mut().chain(d.warnings.iter_mut()) {
        let loc = locate::locate(&doc.text, &diag.path);
        doc.place(diag, loc);
    }
    match cfg {
        Some(mut cfg) if d.errors.is_empty() => {
            cfg.warnings = d.warnings;
            Ok(cfg)
        }
        _ => Err(ConfigError {
            errors: d.errors,
            warnings: d.warnings,
        }),
    }
}

/// serde's pass: the shape of the file and unknown keys.
fn read_raw(doc: &document::Document) -> Result<RawFile, ConfigError> {
    let is_empty = serde_yaml::from_str::<serde_yaml::Value>(&doc.text)
        .map(|v| v.is_null())
        .unwrap_or(false);
    if is_empty {
        return Ok(RawFile::default());
    }
    let de = serde_yaml::Deserializer::from_str(&doc.text);
    serde_path_to_error::deserialize::<_, RawFile>(de).map_err(|e| {
        let path = FieldPath(
            e.path()
                .iter()
                .filter_map(|s| match s {
                    serde_path_to_error::Segment::Seq { index } => Some(S::Index(*index)),
                    serde_path_to_error::Segment::Map { key } => Some(S::Key(key.clone())),
                    serde_path_to_error::Segment::Enum { variant } => Some(S::Key(variant.clone())),
                    serde_path_to_error::Segment::Unknown => None,
                })
                .collect(),
        );
        let inner = e.inner();
        let mut msg = inner.to_string();
        let loc = inner.location().map(|l| Location {
            line: l.line(),
            column: l.column(),
        });
        if let Some(l) = loc {
            if let Some(m) = msg.strip_suffix(&format!(" at line {} column {}", l.line, l.column)) {
                msg = m.to_string();
            }
        }
        // serde_yaml prefixes its own rendering of the path (ours, or its parent for an
        // unknown key); ours is kept separately.
        for len in (1..=path.0.len()).rev() {
            let prefix = format!("{}: ", FieldPath(path.0[..len].to_vec()));
            if let Some(m) = msg.strip_prefix(&prefix) {
                msg = m.to_string();
                break;
            }
        }
        let mut diag = Diagnostic::new(path, msg);
        doc.place(&mut diag, loc);
        ConfigError::one(diag)
    })
}

fn validate(raw: &RawFile, d: &mut Diags, source: ConfigSource) -> Option<Config> {
    let root = FieldPath::root();

    // listen-address / listen-port (bgplane).
    let listen_address = raw
        .listen_address
        .as_ref()
        .and_then(|v| scalar::ip(d, &root.key("listen-address"), v));
    let listen_port = raw
        .listen_port
        .as_ref()
        .and_then(|v| {
            scalar::uint(
                d,
                &root.key("listen-port"),
                v,
                0,
                65535,
                "a TCP port (0: never listen)",
            )
        })
        .map_or(179, |n| n as u16);
    let listen = (listen_port != 0).then_some(ListenConfig {
        address: listen_address,
        port: listen_port,
    });
    if listen.is_none() && listen_address.is_some() {
        d.warn(
            &root.key("listen-address"),
            "is ignored: listen-port is 0, so bgplane never listens",
        );
    }

    let bfd_profiles = pool::bfd_profiles(
        d,
        &root.key("bfd-profiles"),
        raw.bfd_profiles.as_deref().unwrap_or_default(),
    );

    let peers_path = root.key("peers");
    let peers: Vec<Option<PeerConfig>> = raw
        .peers
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, r)| peer::peer(d, &peers_path.index(i), r, &bfd_profiles))
        .collect();
    peer::cross_check(
        d,
        &peers_path,
        &peers,
        listen.as_ref(),
        &root.key("listen-address"),
    );

    let communities = raw
        .bgp_communities
        .as_ref()
        .map(|m| pool::communities(d, &root.key("bgp-communities"), m))
        .unwrap_or_default();

    let pools_path = root.key("address-pools");
    let pools = pool::pools(
        d,
        &pools_path,
        raw.address_pools.as_deref().unwrap_or_default(),
        &communities,
    );

    let peers: Vec<PeerConfig> = peers.into_iter().flatten().collect();
    let pools: Vec<Pool> = pools.into_iter().flatten().collect();
    if d.errors.is_empty() {
        warn_unreachable(d, &pools_path, &peers, &pools);
    }
    Some(Config {
        source,
        peers,
        pools,
        communities,
        bfd_profiles,
        listen,
        warnings: Vec::new(),
    })
}

/// Valid but probably unintended: advertisements no peer can ever carry.
fn warn_unreachable(d: &mut Diags, base: &FieldPath, peers: &[PeerConfig], pools: &[Pool]) {
    let any_ibgp = peers.iter().any(PeerConfig::is_ibgp);
    for (i, pool) in pools.iter().enumerate() {
        if pool.protocol != Protocol::Bgp {
            continue;
        }
        let path = base.index(i);
        if peers.is_empty() {
            d.warn(&path, format!("pool {:?} uses protocol bgp but no peers are configured: nothing will be announced", pool.name));
            continue;
        }
        for (fam, is_v6, name) in [
            (bgp::wire::Family::IPV4_UNICAST, false, "IPv4"),
            (bgp::wire::Family::IPV6_UNICAST, true, "IPv6"),
        ] {
            let has = pool
                .cidrs
                .iter()
                .any(|n| matches!(n, IpNet::V6(_)) == is_v6);
            if has && !peers.iter().any(|p| p.families.contains(&fam)) {
                d.warn(
                    &path.key("addresses"),
                    format!("pool {:?} has {name} addresses but no peer carries {fam}: they will not be announced (see a peer's families)", pool.name),
                );
            }
        }
        if !any_ibgp {
            for (j, ad) in pool.bgp_advertisements.iter().enumerate() {
                if ad.local_pref.is_some() {
                    d.warn(
                        &path.key("bgp-advertisements").index(j).key("localpref"),
                        "LOCAL_PREF is only sent to iBGP peers (my-asn equal to peer-asn), and no peer is iBGP",
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
