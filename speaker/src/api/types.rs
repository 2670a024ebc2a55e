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

/// `GET /v1/services`: the service load balancer's state and one entry per frontend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicesJson {
    pub datapath: DatapathJson,
    /// Sorted by Service, then frontend kind, address, port, protocol.
    pub services: Vec<ServiceJson>,
}

/// The datapath as a whole: where it runs and what the last reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatapathJson {
    pub node: String,
    /// The `--objects` path.
    pub objects: String,
    pub bpffs: String,
    pub devices: Vec<String>,
    /// The cgroup2 directory the socket programs are attached to.
    pub cgroup2: Option<String>,
    /// Programs attached and maps open (false until objects planned cleanly once).
    pub loaded: bool,
    /// Program links this agent attached, and links an earlier agent left pinned and this one
    /// kept as they were.
    pub links_attached: usize,
    pub links_adopted: usize,
    /// Successful applies since the agent started.
    pub applies: u64,
    /// Map writes since the agent started: 0 after a restart that found the maps as wanted.
    pub writes_total: u64,
    pub last_apply: Option<ApplyJson>,
    /// What the planner left out and why (headless Services, SCTP ports, conflicts, ...).
    pub notes: Vec<String>,
    /// The most recent failure (objects that do not parse or plan, a kernel error). While
    /// `current` is true the previous state keeps serving.
    pub last_error: Option<DatapathErrorJson>,
}

/// What one apply wrote (`datapath::writer::ApplyStats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyJson {
    pub at_unix_seconds: u64,
    /// Every plan went to the writer (the first apply after loading or adopting, or after a
    /// failure); false: only the frontends that changed since the last apply.
    #[serde(default)]
    pub full: bool,
    /// Frontends given to the writer as changed (all of them when `full`), and as removed.
    #[serde(default)]
    pub frontends_changed: u64,
    #[serde(default)]
    pub frontends_removed: u64,
    /// Frontends of the first apply after a restart found in the adopted maps as planned
    /// (claimed by comparison, nothing written).
    #[serde(default)]
    pub frontends_adopted: u64,
    /// Time to diff the plans against the last applied ones, and time in the writer.
    #[serde(default)]
    pub diff_micros: u64,
    #[serde(default)]
    pub writer_micros: u64,
    pub writes: u64,
    pub services_written: u64,
    pub services_deleted: u64,
    pub backends_written: u64,
    pub backends_deleted: u64,
    pub slots_written: u64,
    pub slots_deleted: u64,
    pub maglev_tables: u64,
    pub ranges_written: u64,
    pub ranges_deleted: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatapathErrorJson {
    pub message: String,
    pub at_unix_seconds: u64,
    /// The latest reload failed (true) or a later one succeeded (false).
    pub current: bool,
}

/// One frontend (address:port/protocol) of a Service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceJson {
    /// `namespace/name`.
    pub service: String,
    /// The service entry's id in the BPF maps.
    pub id: Option<u32>,
    pub frontend: FrontendJson,
    /// `random`, or `maglev` with `maglev_table_size`.
    pub selection: String,
    pub maglev_table_size: Option<u32>,
    pub affinity_timeout_seconds: Option<u32>,
    pub source_ranges: Vec<String>,
    /// What a new connection gets with no active backend: `reject` or `drop`.
    pub no_backends: String,
    /// Active backends first, then terminating ones.
    pub backends: Vec<BackendJson>,
    /// Summed over CPUs, when the datapath counts.
    pub counters: Option<CountersJson>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrontendJson {
    pub address: String,
    pub port: u16,
    /// `TCP` or `UDP`.
    pub protocol: String,
    /// `ClusterIP`, `NodePort`, `LoadBalancer` or `ExternalIP`.
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendJson {
    pub address: String,
    pub port: u16,
    /// `active` (takes new connections) or `terminating` (keeps its established ones only).
    pub state: String,
    /// Runs on this node (reached without SNAT).
    pub local: bool,
    pub node: Option<String>,
    pub zone: Option<String>,
    pub id: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountersJson {
    pub packets: u64,
    pub bytes: u64,
    pub connections: u64,
    pub dropped: u64,
}
