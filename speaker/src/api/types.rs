//! The JSON documents of the local API, shared by the server and the CLI. Field names are the
//! contract (`bgplane peers -o json` prints exactly these).

use std::collections::BTreeMap;

use bgp::wire::{Attr, AttrValue, Family, Nlri, Origin};
use serde::{Deserialize, Serialize};

/// Prefix counts: the sum over families and the per-family breakdown (`ipv4-unicast`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub total: u64,
    pub families: BTreeMap<String, u64>,
}

impl Counts {
    pub fn from_families(per: impl IntoIterator<Item = (Family, u64)>) -> Counts {
        let mut c = Counts::default();
        for (f, n) in per {
            c.total += n;
            *c.families.entry(f.to_string()).or_default() += n;
        }
        c
    }
}

/// One element of `GET /v1/peers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerJson {
    pub peer_address: String,
    pub peer_port: u16,
    pub peer_asn: u32,
    pub local_asn: u32,
    /// RFC 4271 state name: Idle, Connect, Active, OpenSent, OpenConfirm, Established.
    pub state: String,
    /// Seconds since the session became Established; 0 when it is not.
    pub uptime_seconds: u64,
    pub received: Counts,
    pub advertised: Counts,
    pub last_error: Option<String>,
    /// The peer's BGP identifier, while Established.
    pub peer_router_id: Option<String>,
    pub local_address: Option<String>,
    /// Negotiated hold time, while Established.
    pub hold_time: Option<u16>,
    /// Negotiated families while Established, configured ones otherwise.
    pub families: Vec<String>,
    pub passive: bool,
    /// How many times an Established session went down.
    pub flaps: u32,
}

/// One route of `GET /v1/routes/received|advertised`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteJson {
    pub peer_address: String,
    pub family: String,
    pub prefix: String,
    pub path_id: Option<u32>,
    pub next_hop: Option<String>,
    pub as_path: Vec<u32>,
    pub origin: String,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub communities: Vec<String>,
    pub large_communities: Vec<String>,
    /// Received routes: kept as stale by graceful restart (RFC 4724).
    pub stale: bool,
    /// Received routes: selected as best in the Loc-RIB.
    pub best: bool,
}

impl RouteJson {
    /// A route from its NLRI and decoded attributes.
    pub fn new(
        peer: std::net::IpAddr,
        family: Family,
        nlri: &Nlri,
        attrs: &[Attr],
        next_hop: Option<String>,
    ) -> RouteJson {
        let mut r = RouteJson {
            peer_address: peer.to_string(),
            family: family.to_string(),
            prefix: nlri.prefix.to_string(),
            path_id: nlri.path_id,
            next_hop,
            as_path: Vec::new(),
            origin: "incomplete".into(),
            med: None,
            local_pref: None,
            communities: Vec::new(),
            large_communities: Vec::new(),
            stale: false,
            best: false,
        };
        for a in attrs {
            match &a.value {
                AttrValue::Origin(o) => {
                    r.origin = match o {
                        Origin::Igp => "igp",
                        Origin::Egp => "egp",
                        Origin::Incomplete => "incomplete",
                    }
                    .into()
                }
                AttrValue::AsPath(p) => r.as_path = p.asns().collect(),
                AttrValue::MultiExitDisc(m) => r.med = Some(*m),
                AttrValue::LocalPref(l) => r.local_pref = Some(*l),
                AttrValue::Communities(c) => {
                    r.communities = c.iter().map(|c| c.to_string()).collect()
                }
                AttrValue::LargeCommunities(c) => {
                    r.large_communities = c.iter().map(|c| c.to_string()).collect()
                }
                AttrValue::NextHop(n) if r.next_hop.is_none() => r.next_hop = Some(n.to_string()),
                _ => {}
            }
        }
        r
    }
}

/// An API error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorJson {
    pub error: String,
}

/// `family=` query values: `ipv4` / `ipv6` (or the full names).
pub fn parse_family(s: &str) -> Option<Family> {
    match s {
        "ipv4" | "ipv4-unicast" => Some(Family::IPV4_UNICAST),
        "ipv6" | "ipv6-unicast" => Some(Family::IPV6_UNICAST),
        _ => None,
    }
}
