//! The validated config the rest of bgplane uses. Every default is already resolved here, so
//! session, announce and IPAM code never re-derive one.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use bgp::wire::Family;
use ipnet::IpNet;

use super::community::Community;
use super::error::Diagnostic;
use super::selector::{self, NodeSelector};

/// A whole validated config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where the config text came from.
    pub source: ConfigSource,
    /// BGP peers, in file order.
    pub peers: Vec<PeerConfig>,
    /// Address pools, in file order; their CIDRs never overlap (within or across pools).
    pub pools: Vec<Pool>,
    /// `bgp-communities`: alias name -> value, as defined (advertisements hold resolved values).
    pub communities: BTreeMap<String, Community>,
    /// `bfd-profiles` (parsed and checked as MetalLB does; bgplane does not run BFD).
    pub bfd_profiles: Vec<BfdProfile>,
    /// Where to accept BGP connections; `None` when `listen-port: 0` (never listen).
    pub listen: Option<ListenConfig>,
    /// Things that are valid but probably not what was meant.
    pub warnings: Vec<Diagnostic>,
}

impl Config {
    /// The peers that apply to a node with these labels (node selectors evaluated).
    pub fn peers_for_node<'a>(
        &'a self,
        labels: &'a BTreeMap<String, String>,
    ) -> impl Iterator<Item = &'a PeerConfig> + 'a {
        self.peers.iter().filter(move |p| p.selects_node(labels))
    }

    /// The pool with this name.
    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name == name)
    }
}

/// The form the config was given in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// The config YAML itself (what a ConfigMap's `config` key holds).
    Bare,
    /// A `kind: ConfigMap` manifest; `key` is the data key the config was read from.
    ConfigMap {
        namespace: Option<String>,
        name: Option<String>,
        key: String,
    },
}

/// Where the agent listens for BGP connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenConfig {
    /// `None`: every local address of both families (bind `[::]` dual-stack, or `0.0.0.0`
    /// where IPv6 is off).
    pub address: Option<IpAddr>,
    /// Never 0 here (0 means "never listen" and gives `Config::listen == None`).
    pub port: u16,
}

/// The TCP MD5 (RFC 2385) key of a peer. Its `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// How the IP TTL of a session is set and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlPolicy {
    /// The TTL (IPv6 hop limit) of packets we send: 1 for single-hop eBGP, the
    /// `ebgp-multihop-ttl` (default 255) for multihop eBGP, 255 for iBGP and GTSM.
    pub outgoing: u8,
    /// GTSM (RFC 5082): drop packets that arrive with a lower TTL (`IP_MINTTL` /
    /// `IPV6_MINHOPCOUNT`); `256 - gtsm-hops`. `None` when GTSM is off.
    pub min_incoming: Option<u8>,
}

/// Graceful restart (RFC 4724), when enabled for a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GracefulRestart {
    /// The Restart Time we advertise (whole seconds, 1..=4095).
    pub restart_time: Duration,
}

/// One BGP peer, every default resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// `my-asn`: 1..=4294967295, never 23456 (AS_TRANS).
    pub my_asn: u32,
    /// `peer-asn`: same range.
    pub peer_asn: u32,
    pub peer_address: IpAddr,
    /// `peer-port`, default 179 (an explicit 0 also means 179, as in MetalLB).
    pub peer_port: u16,
    /// `source-address`: same family as `peer_address` when set.
    pub source_address: Option<IpAddr>,
    /// `hold-time` we propose: whole seconds, 0 (no keepalives) or 3..=65535; default 90s.
    pub hold_time: Duration,
    /// `keepalive-time`: whole seconds; default `hold_time / 3`; 0 exactly when `hold_time` is 0.
    pub keepalive_time: Duration,
    /// Whether `keepalive-time` was written in the file (then it caps the negotiated value).
    pub keepalive_configured: bool,
    /// `router-id`: `None` means "the node's IPv4 address" (known only at run time).
    pub router_id: Option<Ipv4Addr>,
    /// `node-selectors`: empty selects every node.
    pub node_selectors: Vec<NodeSelector>,
    /// `password`: TCP MD5 key (1..=80 bytes); `None` when absent or empty.
    pub password: Option<Password>,
    /// `bfd-profile`: names an entry of `Config::bfd_profiles` (not run by bgplane).
    pub bfd_profile: Option<String>,
    /// `ebgp-multihop` (MetalLB): the peer is more than one hop away.
    pub ebgp_multihop: bool,
    /// Resolved from `ebgp-multihop`, `ebgp-multihop-ttl`, `gtsm`, `gtsm-hops` and iBGP/eBGP.
    pub ttl: TtlPolicy,
    /// `passive` (bgplane): never connect, only accept.
    pub passive: bool,
    /// `graceful-restart` + `graceful-restart-time` (bgplane).
    pub graceful_restart: Option<GracefulRestart>,
    /// `max-prefixes` (bgplane): per address family; exceeding it sends Cease/1 (RFC 4486).
    pub max_prefixes: Option<u32>,
    /// `families` (bgplane): AFI/SAFIs we offer, sorted, never empty. Default: the family of
    /// `peer_address` only (MetalLB's later `dualStackAddressFamily: false` behaviour).
    pub families: Vec<Family>,
}

impl PeerConfig {
    /// iBGP when both ends share an AS.
    pub fn is_ibgp(&self) -> bool {
        self.my_asn == self.peer_asn
    }

    pub fn selects_node(&self, labels: &BTreeMap<String, String>) -> bool {
        selector::selects(&self.node_selectors, labels)
    }

    /// The keepalive interval to use once the hold time is negotiated (the smaller of both
    /// OPENs' values): 0 when it is 0; else a third of it (at least 1s), capped by an explicit
    /// `keepalive-time`.
    pub fn keepalive_for(&self, negotiated_hold: Duration) -> Duration {
        if negotiated_hold.is_zero() {
            return Duration::ZERO;
        }
        let third = Duration::from_secs((negotiated_hold.as_secs() / 3).max(1));
        if self.keepalive_configured {
            third.min(self.keepalive_time)
        } else {
            third
        }
    }
}

/// `protocol` of an address pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Bgp,
    Layer2,
}

/// One address pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub name: String,
    pub protocol: Protocol,
    /// `addresses`, with `a-b` ranges summarized into CIDRs (host bits zero), in file order.
    pub cidrs: Vec<IpNet>,
    pub avoid_buggy_ips: bool,
    /// `auto-assign`, default true.
    pub auto_assign: bool,
    /// Empty for layer2 pools. A bgp pool without `bgp-advertisements` gets one default
    /// advertisement (/32 and /128, no local-pref, no communities), as in MetalLB.
    pub bgp_advertisements: Vec<BgpAdvertisement>,
}

impl Pool {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.cidrs.iter().any(|n| n.contains(&ip))
    }
}

/// How an allocated address turns into a BGP announcement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpAdvertisement {
    /// Prefix length for IPv4 addresses, default 32.
    pub aggregation_length: u8,
    /// Prefix length for IPv6 addresses, default 128.
    pub aggregation_length_v6: u8,
    /// LOCAL_PREF, sent to iBGP peers only; `None` when not set.
    pub local_pref: Option<u32>,
    /// Aliases resolved; sorted, no duplicates.
    pub communities: Vec<Community>,
}

impl Default for BgpAdvertisement {
    fn default() -> BgpAdvertisement {
        BgpAdvertisement {
            aggregation_length: 32,
            aggregation_length_v6: 128,
            local_pref: None,
            communities: Vec::new(),
        }
    }
}

/// A MetalLB `bfd-profiles` entry (FRR-mode only in MetalLB; kept so such configs load).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdProfile {
    pub name: String,
    pub receive_interval: Option<u32>,
    pub transmit_interval: Option<u32>,
    pub detect_multiplier: Option<u32>,
    pub echo_interval: Option<u32>,
    pub echo_mode: bool,
    pub passive_mode: bool,
    pub minimum_ttl: Option<u32>,
}
