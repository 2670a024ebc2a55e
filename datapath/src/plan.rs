//! The boundary between the pure planner (model + select + maglev) and the kernel side (maps,
//! loader): what one frontend should do, fully resolved. The planner produces `ServicePlan`s from
//! Kubernetes objects; the map writer turns them into BPF map entries and never looks back at
//! the Kubernetes objects.

use std::net::IpAddr;

use ipnet::IpNet;

/// L4 protocol of a frontend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
}

/// How a frontend is reached; decides which BPF hook serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FrontendKind {
    /// Served by the socket hooks (east-west).
    ClusterIp,
    /// Served on the node's devices (tc) on every node address, and by the socket hooks when
    /// dialled from the node itself.
    NodePort,
    LoadBalancer,
    ExternalIp,
}

/// One address:port:protocol a service listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frontend {
    pub addr: IpAddr,
    pub port: u16,
    pub proto: Protocol,
    pub kind: FrontendKind,
}

/// One backend endpoint as the datapath sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendAddr {
    pub addr: IpAddr,
    pub port: u16,
    /// Whether the backend runs on this node (no SNAT needed toward it).
    pub local: bool,
}

/// Backend selection algorithm for new connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    Random,
    /// Maglev consistent hashing with a prime table size (default 16381, at most 131071).
    Maglev {
        table_size: u32,
    },
}

/// What one frontend should do, fully resolved by the planner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePlan {
    /// `namespace/name` of the Kubernetes Service, for display and counters.
    pub service: String,
    pub frontend: Frontend,
    /// Backends that take new connections (after topology and graceful-termination rules).
    /// Empty means new connections are refused or dropped as `no_backends` says.
    pub active: Vec<BackendAddr>,
    /// Backends that take no new connections but whose established flows are kept
    /// (terminating, still present in the EndpointSlice).
    pub terminating: Vec<BackendAddr>,
    pub selection: Selection,
    /// ClientIP session affinity timeout in seconds.
    pub affinity_timeout: Option<u32>,
    /// loadBalancerSourceRanges: when non-empty, only these client prefixes are served.
    pub source_ranges: Vec<IpNet>,
    /// What a new connection gets while `active` is empty (kube-proxy's REJECT vs DROP).
    pub no_backends: NoBackends,
}

/// kube-proxy's two answers for a frontend with no usable backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoBackends {
    /// The service has no usable endpoint anywhere: refuse (TCP RST / ICMP unreachable).
    Reject,
    /// Traffic policy Local and usable endpoints exist only on other nodes: drop silently,
    /// as kube-proxy does ("has no local endpoints"), so external load balancers and clients
    /// see this node as not serving rather than as refusing.
    Drop,
}
