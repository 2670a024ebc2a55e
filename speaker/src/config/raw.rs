//! The config file's shape, as serde reads it: every key MetalLB v0.12 knows (its
//! `configFile`, `peer`, `addressPool`, `bgpAdvertisement`, `bfdProfile` structs, keys spelled as
//! yaml.v2 derived them) plus bgplane's extensions. Unknown keys are an error here. Leaf values
//! stay `serde_yaml::Value` so that validation can report every bad value at once, with its
//! own message, instead of stopping at serde's first type error.

use serde::Deserialize;
use serde_yaml::{Mapping, Value};

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "the bgplane/MetalLB config: a mapping with peers, address-pools, bgp-communities, ..."
)]
pub struct RawFile {
    pub peers: Option<Vec<RawPeer>>,
    #[serde(rename = "bgp-communities")]
    pub bgp_communities: Option<Mapping>,
    #[serde(rename = "address-pools")]
    pub address_pools: Option<Vec<RawPool>>,
    #[serde(rename = "bfd-profiles")]
    pub bfd_profiles: Option<Vec<RawBfdProfile>>,
    // bgplane extensions.
    #[serde(rename = "listen-address")]
    pub listen_address: Option<Value>,
    #[serde(rename = "listen-port")]
    pub listen_port: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a peer: a mapping with my-asn, peer-asn, peer-address, ..."
)]
pub struct RawPeer {
    #[serde(rename = "my-asn")]
    pub my_asn: Option<Value>,
    #[serde(rename = "peer-asn")]
    pub peer_asn: Option<Value>,
    #[serde(rename = "peer-address")]
    pub peer_address: Option<Value>,
    #[serde(rename = "source-address")]
    pub source_address: Option<Value>,
    #[serde(rename = "peer-port")]
    pub peer_port: Option<Value>,
    #[serde(rename = "hold-time")]
    pub hold_time: Option<Value>,
    #[serde(rename = "keepalive-time")]
    pub keepalive_time: Option<Value>,
    #[serde(rename = "router-id")]
    pub router_id: Option<Value>,
    #[serde(rename = "node-selectors")]
    pub node_selectors: Option<Vec<RawNodeSelector>>,
    pub password: Option<Value>,
    #[serde(rename = "bfd-profile")]
    pub bfd_profile: Option<Value>,
    #[serde(rename = "ebgp-multihop")]
    pub ebgp_multihop: Option<Value>,
    // bgplane extensions.
    #[serde(rename = "ebgp-multihop-ttl")]
    pub ebgp_multihop_ttl: Option<Value>,
    pub gtsm: Option<Value>,
    #[serde(rename = "gtsm-hops")]
    pub gtsm_hops: Option<Value>,
    pub passive: Option<Value>,
    #[serde(rename = "graceful-restart")]
    pub graceful_restart: Option<Value>,
    #[serde(rename = "graceful-restart-time")]
    pub graceful_restart_time: Option<Value>,
    #[serde(rename = "max-prefixes")]
    pub max_prefixes: Option<Value>,
    pub families: Option<Vec<Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a node selector: a mapping with match-labels and/or match-expressions"
)]
pub struct RawNodeSelector {
    #[serde(rename = "match-labels")]
    pub match_labels: Option<Mapping>,
    #[serde(rename = "match-expressions")]
    pub match_expressions: Option<Vec<RawRequirement>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a match expression: a mapping with key, operator and values"
)]
pub struct RawRequirement {
    pub key: Option<Value>,
    pub operator: Option<Value>,
    pub values: Option<Vec<Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an address pool: a mapping with name, protocol, addresses, ..."
)]
pub struct RawPool {
    pub name: Option<Value>,
    pub protocol: Option<Value>,
    pub addresses: Option<Vec<Value>>,
    #[serde(rename = "avoid-buggy-ips")]
    pub avoid_buggy_ips: Option<Value>,
    #[serde(rename = "auto-assign")]
    pub auto_assign: Option<Value>,
    #[serde(rename = "bgp-advertisements")]
    pub bgp_advertisements: Option<Vec<RawAdvertisement>>,
}

#[derive(Debug, Default, PartialEq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a BGP advertisement: a mapping with aggregation-length, localpref, communities, ..."
)]
pub struct RawAdvertisement {
    #[serde(rename = "aggregation-length")]
    pub aggregation_length: Option<Value>,
    #[serde(rename = "aggregation-length-v6")]
    pub aggregation_length_v6: Option<Value>,
    pub localpref: Option<Value>,
    pub communities: Option<Vec<Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a BFD profile: a mapping with name, receive-interval, ..."
)]
pub struct RawBfdProfile {
    pub name: Option<Value>,
    #[serde(rename = "receive-interval")]
    pub receive_interval: Option<Value>,
    #[serde(rename = "transmit-interval")]
    pub transmit_interval: Option<Value>,
    #[serde(rename = "detect-multiplier")]
    pub detect_multiplier: Option<Value>,
    #[serde(rename = "echo-interval")]
    pub echo_interval: Option<Value>,
    #[serde(rename = "echo-mode")]
    pub echo_mode: Option<Value>,
    #[serde(rename = "passive-mode")]
    pub passive_mode: Option<Value>,
    #[serde(rename = "minimum-ttl")]
    pub minimum_ttl: Option<Value>,
}
