//! Which endpoints a frontend uses on this node: kube-proxy's CategorizeEndpoints
//! (pkg/proxy/topology.go) — topology hints, internal/externalTrafficPolicy Local, and the
//! KEP-1669 fallback to serving+terminating endpoints — plus what happens to the terminating
//! endpoints that take no new connections. Pure functions over `model::Endpoint`s.

use crate::model::Endpoint;
use crate::plan::NoBackends;

/// The per-service-port facts CategorizeEndpoints reads (kube-proxy's ServicePort).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortPolicy {
    pub internal_local: bool,
    /// externalTrafficPolicy Local on a NodePort/LoadBalancer Service.
    pub external_local: bool,
    /// Reachable other than by ClusterIP: a nodePort, a LoadBalancer VIP or an externalIP.
    pub externally_accessible: bool,
    /// The Service asks for topology-aware routing (annotation or trafficDistribution).
    pub topology_aware: bool,
}

impl PortPolicy {
    /// kube-proxy: Cluster endpoints are needed if iTP is Cluster or the port takes external
    /// traffic at all (even with eTP Local, for short-circuiting in-cluster traffic).
    pub fn uses_cluster_endpoints(&self) -> bool {
        !self.internal_local || self.externally_accessible
    }

    pub fn uses_local_endpoints(&self) -> bool {
        self.internal_local || (self.external_local && self.externally_accessible)
    }
}

/// This node as the rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeView<'a> {
    pub name: &'a str,
    /// `topology.kubernetes.io/zone`, if set.
    pub zone: Option<&'a str>,
}

impl Endpoint {
    /// kube-proxy's IsLocal: the endpoint's nodeName is this node.
    pub fn is_local(&self, node: &NodeView<'_>) -> bool {
        self.node_name.as_deref() == Some(node.name)
    }
}

/// Which hints, if any, restrict the Cluster endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopologyMode {
    /// No topology: every ready endpoint.
    None,
    /// hints.forNodes (trafficDistribution PreferSameNode).
    SameNode,
    /// hints.forZones.
    SameZone,
}

/// CategorizeEndpoints' result, as indices into the input slice (input order kept).
/// `None` means "this port never uses that kind of endpoint", `Some(empty)` "it does and there
/// are none" (kube-proxy's nil vs empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Categorized {
    pub cluster: Option<Vec<usize>>,
    pub local: Option<Vec<usize>>,
    /// Union of the two (kube-proxy's allReachableEndpoints), sorted.
    pub all_reachable: Vec<usize>,
    /// Some usable endpoint exists somewhere in the cluster (even if none is reachable here).
    pub has_any: bool,
    pub topology: TopologyMode,
}

/// kube-proxy's topologyModeFromHints behind canUseTopology's gate (the Service must ask for
/// topology): node hints if every ready endpoint has one and one names this node; else zone
/// hints if every ready endpoint has one and one names this node's zone; else none.
pub fn topology_mode(
    endpoints: &[Endpoint],
    policy: &PortPolicy,
    node: &NodeView<'_>,
) -> TopologyMode {
    if !policy.topology_aware {
        return TopologyMode::None;
    }
    let zone = node.zone.filter(|z| !z.is_empty());
    let mut has_ready = false;
    let (mut all_node_hints, mut for_node) = (true, false);
    let (mut all_zone_hints, mut for_zone) = (true, false);
    for e in endpoints.iter().filter(|e| e.ready) {
        has_ready = true;
        if e.node_hints.is_empty() {
            all_node_hints = false;
        } else if e.node_hints.contains(node.name) {
            for_node = true;
        }
        if e.zone_hints.is_empty() {
            all_zone_hints = false;
        } else if zone.is_some_and(|z| e.zone_hints.contains(z)) {
            for_zone = true;
        }
    }
    if !has_ready {
        TopologyMode::None
    } else if all_node_hints && for_node {
        TopologyMode::SameNode
    } else if all_zone_hints && for_zone {
        TopologyMode::SameZone
    } else {
        TopologyMode::None
    }
}

fn available_for_topology(e: &Endpoint, mode: TopologyMode, node: &NodeView<'_>) -> bool {
    match mode {
        TopologyMode::None => true,
        TopologyMode::SameNode => e.node_hints.contains(node.name),
        TopologyMode::SameZone => node.zone.is_some_and(|z| e.zone_hints.contains(z)),
    }
}

fn filter(endpoints: &[Endpoint], pred: impl Fn(&Endpoint) -> bool) -> Vec<usize> {
    (0..endpoints.len())
        .filter(|&i| pred(&endpoints[i]))
        .collect()
}

/// kube-proxy's CategorizeEndpoints, rule for rule.
pub fn categorize(endpoints: &[Endpoint], policy: &PortPolicy, node: &NodeView<'_>) -> Categorized {
    let mut out = Categorized {
        cluster: None,
        local: None,
        all_reachable: Vec::new(),
        has_any: false,
        topology: TopologyMode::None,
    };
    if policy.uses_cluster_endpoints() {
        let mode = topology_mode(endpoints, policy, node);
        out.topology = mode;
        let mut cluster = filter(endpoints, |e| {
            e.ready && available_for_topology(e, mode, node)
        });
        // No ready endpoint for this topology means none anywhere (topology is only chosen when
        // one matches), so fall back to serving+terminating ones, ignoring topology (KEP-1669).
        if cluster.is_empty() {
            cluster = filter(endpoints, |e| e.serving && e.terminating);
        }
        out.has_any = !cluster.is_empty();
        out.cluster = Some(cluster);
    }
    if policy.uses_local_endpoints() {
        let (mut local_ready, mut local_serving_terminating) = (false, false);
        for e in endpoints {
            if e.ready {
                out.has_any = true;
                local_ready |= e.is_local(node);
            } else if e.serving && e.terminating {
                out.has_any = true;
                local_serving_terminating |= e.is_local(node);
            }
        }
        let local = if local_ready {
            filter(endpoints, |e| e.is_local(node) && e.ready)
        } else if local_serving_terminating {
            filter(endpoints, |e| {
                e.is_local(node) && e.serving && e.terminating
            })
        } else {
            Vec::new()
        };
        out.local = Some(local);
    }
    let mut all: Vec<usize> = out
        .cluster
        .iter()
        .chain(out.local.iter())
        .flatten()
        .copied()
        .collect();
    all.sort_unstable();
    all.dedup();
    out.all_reachable = all;
    out
}

/// Which side of the Service a frontend is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traffic {
    /// ClusterIP: internalTrafficPolicy applies.
    Internal,
    /// NodePort, LoadBalancer VIP, externalIP: externalTrafficPolicy applies.
    External,
}

/// The endpoints one frontend uses, as indices into the input slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontendBackends {
    /// Take new connections.
    pub active: Vec<usize>,
    /// Terminating, not taking new connections, kept for established flows: every terminating
    /// endpoint not in `active` that this frontend could have sent flows to (only local ones
    /// under a Local policy), as long as it is still listed in the slice.
    pub terminating: Vec<usize>,
    pub no_backends: NoBackends,
}

/// Picks the Cluster or Local list for `traffic` and adds the terminating set and kube-proxy's
/// REJECT/DROP choice (iptables proxier: no endpoints anywhere → REJECT; policy Local with none
/// here but some elsewhere → DROP, "has no local endpoints").
pub fn frontend_backends(
    endpoints: &[Endpoint],
    cat: &Categorized,
    policy: &PortPolicy,
    traffic: Traffic,
    node: &NodeView<'_>,
) -> FrontendBackends {
    let local_policy = match traffic {
        Traffic::Internal => policy.internal_local,
        Traffic::External => policy.external_local && policy.externally_accessible,
    };
    let list = if local_policy {
        &cat.local
    } else {
        &cat.cluster
    };
    let active = list.clone().unwrap_or_default();
    let terminating = filter(endpoints, |e| {
        e.terminating && (!local_policy || e.is_local(node))
    })
    .into_iter()
    .filter(|i| !active.contains(i))
    .collect();
    let no_backends = if cat.has_any {
        NoBackends::Drop
    } else {
        NoBackends::Reject
    };
    FrontendBackends {
        active,
        terminating,
        no_backends,
    }
}

#[cfg(test)]
mod tests {
    //! Table tests pinning kube-proxy's TestCategorizeEndpoints (pkg/proxy/topology_test.go);
    //! each case carries kube-proxy's case name. Feature gates are as in Kubernetes 1.31 (all of
    //! TopologyAwareHints, ProxyTerminatingEndpoints GA/on), so the "PTE disabled" and
    //! "hints disabled" cases do not apply. Where kube-proxy's expectations changed across
    //! versions the comment says which rule is pinned.
    use super::*;
    use std::collections::BTreeSet;

    const NODE: &str = "node-1";

    /// kube-proxy's BaseEndpointInfo, in test shorthand.
    #[derive(Clone, Copy, Default)]
    struct Ep {
        ip: &'static str,
        zones: &'static [&'static str],
        nodes: &'static [&'static str],
        ready: bool,
        serving: bool,
        terminating: bool,
        local: bool,
    }

    fn ready(ip: &'static str, zones: &'static [&'static str]) -> Ep {
        Ep {
            ip,
            zones,
            ready: true,
            serving: true,
            ..Ep::default()
        }
    }

    fn endpoints(eps: &[Ep]) -> Vec<Endpoint> {
        eps.iter()
            .map(|e| Endpoint {
                addr: e.ip.parse().unwrap(),
                port: 80,
                ready: e.ready,
                serving: e.serving,
                terminating: e.terminating,
                node_name: Some(if e.local { NODE } else { "node-other" }.to_string()),
                zone: None,
                zone_hints: e.zones.iter().map(|z| z.to_string()).collect(),
                node_hints: e.nodes.iter().map(|n| n.to_string()).collect(),
            })
            .collect()
    }

    struct Case {
        name: &'static str,
        zone: Option<&'static str>,
        policy: PortPolicy,
        eps: Vec<Ep>,
        cluster: Option<&'static [&'static str]>,
        local: Option<&'static [&'static str]>,
        /// Only when both lists are set (otherwise all = the set one).
        all: Option<&'static [&'static str]>,
        only_remote: bool,
    }

    fn ips(eps: &[Endpoint], idx: &[usize]) -> BTreeSet<String> {
        idx.iter().map(|&i| eps[i].addr.to_string()).collect()
    }

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn run(cases: Vec<Case>) {
        for c in cases {
            let eps = endpoints(&c.eps);
            let node = NodeView {
                name: NODE,
                zone: c.zone,
            };
            let got = categorize(&eps, &c.policy, &node);
            assert_eq!(
                got.cluster.as_ref().map(|v| ips(&eps, v)),
                c.cluster.map(set),
                "{}: cluster endpoints",
                c.name
            );
            assert_eq!(
                got.local.as_ref().map(|v| ips(&eps, v)),
                c.local.map(set),
                "{}: local endpoints",
                c.name
            );
            let want_all = match (c.cluster, c.local) {
                (Some(cl), None) => set(cl),
                (None, Some(l)) => set(l),
                _ => set(c.all.unwrap_or(&[])),
            };
            assert_eq!(ips(&eps, &got.all_reachable), want_all, "{}: all", c.name);
            assert_eq!(
                got.has_any,
                !want_all.is_empty() || c.only_remote,
                "{}: hasAnyEndpoints",
                c.name
            );
        }
    }

    fn hints() -> PortPolicy {
        PortPolicy {
            topology_aware: true,
            ..PortPolicy::default()
        }
    }

    fn four_zoned() -> Vec<Ep> {
        vec![
            ready("10.1.2.3", &["zone-a"]),
            ready("10.1.2.4", &["zone-b"]),
            ready("10.1.2.5", &["zone-c"]),
            ready("10.1.2.6", &["zone-a"]),
        ]
    }

    const ALL_FOUR: &[&str] = &["10.1.2.3", "10.1.2.4", "10.1.2.5", "10.1.2.6"];

    #[test]
    fn topology_hints_used_only_when_requested_and_matching_this_zone() {
        run(vec![
            Case {
                name: "hints enabled, hints annotation == auto",
                zone: Some("zone-a"),
                policy: hints(),
                eps: four_zoned(),
                cluster: Some(&["10.1.2.3", "10.1.2.6"]),
                local: None,
                all: None,
                only_remote: false,
            },
            Case {
                // "hints, hints annotation == disabled, hints ignored" and "hints annotation
                // empty": the model turns both into topology_aware = false.
                name: "hints, hints annotation == disabled, hints ignored",
                zone: Some("zone-a"),
                policy: PortPolicy::default(),
                eps: four_zoned(),
                cluster: Some(ALL_FOUR),
                local: None,
                all: None,
                only_remote: false,
            },
            Case {
                name: "empty node labels",
                zone: None,
                policy: hints(),
                eps: vec![ready("10.1.2.3", &["zone-a"])],
                cluster: Some(&["10.1.2.3"]),
                local: None,
                all: None,
                only_remote: false,
            },
            Case {
                name: "empty zone label",
                zone: Some(""),
                policy: hints(),
                eps: vec![ready("10.1.2.3", &["zone-a"])],
                cluster: Some(&["10.1.2.3"]),
                local: None,
                all: None,
                only_remote: false,
            },
            Case {
                name: "node in different zone, no endpoint filtering",
                zone: Some("zone-b"),
                policy: hints(),
                eps: vec![ready("10.1.2.3", &["zone-a"])],
                cluster: Some(&["10.1.2.3"]),
                local: None,
                all: None,
                only_remote: false,
            },
            Case {
                name: "unready endpoint",
                zone: Some("zone-a"),
                policy: hints(),
                eps: {
                    let mut e = four_zoned();
                    e[3].ready = false;
                    e[3].serving = false;
                    e
                },
                cluster: Some(&["10.1.2.3"]),
                local: None,
                all: None,
                only_remote: false,
            },
            Case {
                name: "only unready endpoints in same zone (should not filter)",
                zone: Some("zone-a"),
                policy: hints(),
                eps: {
                    let mut e = four_zoned();
                    for i in [0, 3] {
                        e[i].ready = false;
                        e[i].serving = false;
                    }
                    e
                },
                cluster: Some(&["10.1.2.4", "10.1.2.5"]),
                local: None,
                all: None,
                only_remote: false,
            },
            Case {
                name: "missing hints, no filtering applied",
                zone: Some("zone-a"),
                policy: hints(),
                eps: {
                    let mut e = four_zoned();
                    e[2].zones = &[];
                    e
                },
                cluster: Some(ALL_FOUR),
                local: None,
                all: None,
                only_remote: false,
            },
            Case {
                name: "multiple hints per endpoint, filtering includes any endpoint with zone included",
                zone: Some("zone-c"),
                policy: hints(),
                eps: vec![
                    ready("10.1.2.3", &["zone-a", "zone-b", "zone-c"]),
                    ready("10.1.2.4", &["zone-b", "zone-c"]),
                    ready("10.1.2.5", &["zone-b", "zone-d"]),
                    ready("10.1.2.6", &["zone-c"]),
                ],
                cluster: Some(&["10.1.2.3", "10.1.2.4", "10.1.2.6"]),
                local: None,
                all: None,
                only_remote: false,
            },
        ]);
    }

    #[test]
    fn traffic_policy_local_uses_only_this_nodes_endpoints_and_ignores_topology() {
        let local_ready = |ip, zones| Ep {
            local: true,
            ..ready(ip, zones)
        };
        run(vec![
            Case {
                name: "externalTrafficPolicy: Local, topology ignored for Local endpoints",
                zone: Some("zone-a"),
                policy: PortPolicy {
                    external_local: true,
                    externally_accessible: true,
                    topology_aware: true,
                    ..PortPolicy::default()
                },
                eps: vec![
                    local_ready("10.1.2.3", &["zone-a"]),
                    local_ready("10.1.2.4", &["zone-b"]),
                    ready("10.1.2.5", &["zone-c"]),
                    ready("10.1.2.6", &["zone-a"]),
                ],
                cluster: Some(&["10.1.2.3", "10.1.2.6"]),
                local: Some(&["10.1.2.3", "10.1.2.4"]),
                all: Some(&["10.1.2.3", "10.1.2.4", "10.1.2.6"]),
                only_remote: false,
            },
            Case {
                name: "internalTrafficPolicy: Local, topology ignored for Local endpoints",
                zone: Some("zone-a"),
                policy: PortPolicy {
                    internal_local: true,
                    externally_accessible: true,
                    topology_aware: true,
                    ..PortPolicy::default()
                },
                eps: vec![
                    local_ready("10.1.2.3", &["zone-a"]),
                    local_ready("10.1.2.4", &["zone-b"]),
                    ready("10.1.2.5", &["zone-c"]),
                    ready("10.1.2.6", &["zone-a"]),
                ],
                cluster: Some(&["10.1.2.3", "10.1.2.6"]),
                local: Some(&["10.1.2.3", "10.1.2.4"]),
                all: Some(&["10.1.2.3", "10.1.2.4", "10.1.2.6"]),
                only_remote: false,
            },
            Case {
                name: "conflicting topology and localness require merging allEndpoints",
                zone: Some("zone-a"),
                policy: PortPolicy {
                    external_local: true,
                    externally_accessible: true,
                    topology_aware: true,
                    ..PortPolicy::default()
                },
                eps: vec![
                    local_ready("10.0.0.0", &["zone-a"]),
                    local_ready("10.0.0.1", &["zone-b"]),
                    ready("10.0.0.2", &["zone-a"]),
                    ready("10.0.0.3", &["zone-b"]),
                ],
                cluster: Some(&["10.0.0.0", "10.0.0.2"]),
                local: Some(&["10.0.0.0", "10.0.0.1"]),
                all: Some(&["10.0.0.0", "10.0.0.1", "10.0.0.2"]),
                only_remote: false,
            },
            Case {
                name: "internalTrafficPolicy: Local, with empty endpoints",
                zone: None,
                policy: PortPolicy {
                    internal_local: true,
                    ..PortPolicy::default()
                },
                eps: vec![],
                cluster: None,
                local: Some(&[]),
                all: None,
                only_remote: false,
            },
            Case {
                name: "internalTrafficPolicy: Local, but all endpoints are remote",
                zone: None,
                policy: PortPolicy {
                    internal_local: true,
                    ..PortPolicy::default()
                },
                eps: vec![ready("10.0.0.0", &[]), ready("10.0.0.1", &[])],
                cluster: None,
                local: Some(&[]),
                all: None,
                only_remote: true,
            },
            Case {
                name: "internalTrafficPolicy: Local, all endpoints are local",
                zone: None,
                policy: PortPolicy {
                    internal_local: true,
                    ..PortPolicy::default()
                },
                eps: vec![local_ready("10.0.0.0", &[]), local_ready("10.0.0.1", &[])],
                cluster: None,
                local: Some(&["10.0.0.0", "10.0.0.1"]),
                all: None,
                only_remote: false,
            },
            Case {
                name: "internalTrafficPolicy: Local, some endpoints are local",
                zone: None,
                policy: PortPolicy {
                    internal_local: true,
                    ..PortPolicy::default()
                },
                eps: vec![local_ready("10.0.0.0", &[]), ready("10.0.0.1", &[])],
                cluster: None,
                local: Some(&["10.0.0.0"]),
                all: None,
                only_remote: false,
            },
            Case {
                name: "iTP: Local, eTP: Cluster, some endpoints local",
                zone: None,
                policy: PortPolicy {
                    internal_local: true,
                    externally_accessible: true,
                    ..PortPolicy::default()
                },
                eps: vec![local_ready("10.0.0.0", &[]), ready("10.0.0.1", &[])],
                cluster: Some(&["10.0.0.0", "10.0.0.1"]),
                local: Some(&["10.0.0.0"]),
                all: Some(&["10.0.0.0", "10.0.0.1"]),
                only_remote: false,
            },
            Case {
                name: "iTP: Cluster, eTP: Local, some endpoints local",
                zone: None,
                policy: PortPolicy {
                    external_local: true,
                    externally_accessible: true,
                    ..PortPolicy::default()
                },
                eps: vec![local_ready("10.0.0.0", &[]), ready("10.0.0.1", &[])],
                cluster: Some(&["10.0.0.0", "10.0.0.1"]),
                local: Some(&["10.0.0.0"]),
                all: Some(&["10.0.0.0", "10.0.0.1"]),
                only_remote: false,
            },
            Case {
                name: "iTP: Local, eTP: Local, all endpoints remote",
                zone: None,
                policy: PortPolicy {
                    internal_local: true,
                    external_local: true,
                    externally_accessible: true,
                    ..PortPolicy::default()
                },
                eps: vec![ready("10.0.0.0", &[]), ready("10.0.0.1", &[])],
                cluster: Some(&["10.0.0.0", "10.0.0.1"]),
                local: Some(&[]),
                all: Some(&["10.0.0.0", "10.0.0.1"]),
                only_remote: false,
            },
            Case {
                name: "externalTrafficPolicy ignored if not externally accessible",
                zone: None,
                policy: PortPolicy {
                    external_local: true,
                    ..PortPolicy::default()
                },
                eps: vec![ready("10.0.0.0", &[]), local_ready("10.0.0.1", &[])],
                cluster: Some(&["10.0.0.0", "10.0.0.1"]),
                local: None,
                all: None,
                only_remote: false,
            },
            Case {
                name: "no cluster endpoints for iTP:Local internal-only service",
                zone: None,
                policy: PortPolicy {
                    internal_local: true,
                    ..PortPolicy::default()
                },
                eps: vec![ready("10.0.0.0", &[]), local_ready("10.0.0.1", &[])],
                cluster: None,
                local: Some(&["10.0.0.1"]),
                all: None,
                only_remote: false,
            },
        ]);
    }

    fn serving_terminating(ip: &'static str, local: bool) -> Ep {
        Ep {
            ip,
            serving: true,
            terminating: true,
            local,
            ..Ep::default()
        }
    }

    #[test]
    fn serving_terminating_endpoints_take_new_connections_only_when_none_ready() {
        // KEP-1669 (ProxyTerminatingEndpoints, GA in 1.28): the "PTE enabled" cases.
        run(vec![
            Case {
                name: "Cluster traffic policy, endpoints not Ready",
                zone: None,
                policy: PortPolicy::default(),
                eps: vec![
                    Ep {
                        ip: "10.0.0.0",
                        ..Ep::default()
                    },
                    Ep {
                        ip: "10.0.0.1",
                        ..Ep::default()
                    },
                ],
                cluster: Some(&[]),
                local: None,
                all: None,
                only_remote: false,
            },
            Case {
                name: "Cluster traffic policy, some endpoints are Ready",
                zone: None,
                policy: PortPolicy::default(),
                eps: vec![
                    Ep {
                        ip: "10.0.0.0",
                        ..Ep::default()
                    },
                    ready("10.0.0.1", &[]),
                ],
                cluster: Some(&["10.0.0.1"]),
                local: None,
                all: None,
                only_remote: false,
            },
            Case {
                name: "Cluster traffic policy, PTE enabled, all endpoints are terminating",
                zone: None,
                policy: PortPolicy::default(),
                eps: vec![
                    serving_terminating("10.0.0.0", true),
                    serving_terminating("10.0.0.1", false),
                ],
                cluster: Some(&["10.0.0.0", "10.0.0.1"]),
                local: None,
                all: None,
                only_remote: false,
            },
            Case {
                name: "iTP: Local, eTP: Local, PTE enabled, all endpoints remote and terminating",
                zone: None,
                policy: PortPolicy {
                    internal_local: true,
                    external_local: true,
                    externally_accessible: true,
                    ..PortPolicy::default()
                },
                eps: vec![
                    serving_terminating("10.0.0.0", false),
                    serving_terminating("10.0.0.1", false),
                ],
                cluster: Some(&["10.0.0.0", "10.0.0.1"]),
                local: Some(&[]),
                all: Some(&["10.0.0.0", "10.0.0.1"]),
                only_remote: true,
            },
            Case {
                name: "iTP: Cluster, eTP: Local, PTE enabled, with terminating endpoints",
                zone: None,
                policy: PortPolicy {
                    external_local: true,
                    externally_accessible: true,
                    ..PortPolicy::default()
                },
                eps: vec![
                    ready("10.0.0.0", &[]),
                    Ep {
                        ip: "10.0.0.1",
                        local: true,
                        ..Ep::default()
                    },
                    serving_terminating("10.0.0.2", true),
                    serving_terminating("10.0.0.3", false),
                ],
                cluster: Some(&["10.0.0.0"]),
                local: Some(&["10.0.0.2"]),
                all: Some(&["10.0.0.0", "10.0.0.2"]),
                only_remote: false,
            },
            Case {
                // bgplane case: terminating but no longer serving is never a fallback.
                name: "terminating and not serving endpoints are not used",
                zone: None,
                policy: PortPolicy::default(),
                eps: vec![Ep {
                    ip: "10.0.0.0",
                    terminating: true,
                    ..Ep::default()
                }],
                cluster: Some(&[]),
                local: None,
                all: None,
                only_remote: false,
            },
            Case {
                // bgplane case: the fallback needs terminating too (topology.go:
                // `ep.IsServing() && ep.IsTerminating()`), not just serving.
                name: "serving but not ready and not terminating endpoints are not used",
                zone: None,
                policy: PortPolicy::default(),
                eps: vec![Ep {
                    ip: "10.0.0.0",
                    serving: true,
                    ..Ep::default()
                }],
                cluster: Some(&[]),
                local: None,
                all: None,
                only_remote: false,
            },
            Case {
                // The fallback ignores topology (topology.go: "we would already have chosen to
                // ignore topology if there were no ready endpoints").
                name: "serving-terminating fallback ignores zone hints",
                zone: Some("zone-a"),
                policy: hints(),
                eps: vec![
                    Ep {
                        zones: &["zone-b"],
                        ..serving_terminating("10.0.0.0", false)
                    },
                    Ep {
                        zones: &["zone-a"],
                        ..serving_terminating("10.0.0.1", false)
                    },
                ],
                cluster: Some(&["10.0.0.0", "10.0.0.1"]),
                local: None,
                all: None,
                only_remote: false,
            },
        ]);
    }

    #[test]
    fn node_hints_win_over_zone_hints_when_every_ready_endpoint_has_one() {
        // topologyModeFromHints (PreferSameTrafficDistribution): forNodes first, then forZones.
        let eps = endpoints(&[
            Ep {
                nodes: &[NODE],
                ..ready("10.0.0.1", &["zone-a"])
            },
            Ep {
                nodes: &["node-2"],
                ..ready("10.0.0.2", &["zone-a"])
            },
            Ep {
                nodes: &["node-3"],
                ..ready("10.0.0.3", &["zone-b"])
            },
        ]);
        let node = NodeView {
            name: NODE,
            zone: Some("zone-a"),
        };
        assert_eq!(topology_mode(&eps, &hints(), &node), TopologyMode::SameNode);
        let cat = categorize(&eps, &hints(), &node);
        assert_eq!(cat.cluster, Some(vec![0]));
        // Another node with no node hint of its own falls back to zone hints.
        let other = NodeView {
            name: "node-9",
            zone: Some("zone-a"),
        };
        assert_eq!(
            topology_mode(&eps, &hints(), &other),
            TopologyMode::SameZone
        );
        assert_eq!(categorize(&eps, &hints(), &other).cluster, Some(vec![0, 1]));
        // One ready endpoint without a node hint: node hints are off for everyone.
        let mut partial = eps.clone();
        partial[2].node_hints.clear();
        assert_eq!(
            topology_mode(&partial, &hints(), &node),
            TopologyMode::SameZone
        );
        // Hints present but the Service did not ask: ignored.
        assert_eq!(
            topology_mode(&eps, &PortPolicy::default(), &node),
            TopologyMode::None
        );
    }

    #[test]
    fn terminating_endpoints_not_taking_new_connections_are_kept_for_established_flows() {
        // KEP-1669 / Cilium 1.11: terminating endpoints get no new connections while any
        // endpoint is ready, but stay (for established flows) while listed in the slice.
        let eps = endpoints(&[
            ready("10.0.0.1", &[]),
            serving_terminating("10.0.0.2", false),
            Ep {
                ip: "10.0.0.3",
                terminating: true,
                local: true,
                ..Ep::default()
            },
            Ep {
                ip: "10.0.0.4",
                ..Ep::default()
            },
        ]);
        let node = NodeView {
            name: NODE,
            zone: None,
        };
        let policy = PortPolicy::default();
        let cat = categorize(&eps, &policy, &node);
        let fb = frontend_backends(&eps, &cat, &policy, Traffic::Internal, &node);
        assert_eq!(fb.active, vec![0]);
        // Not ready, not terminating (10.0.0.4) is neither: it is just unready.
        assert_eq!(fb.terminating, vec![1, 2]);

        // No ready endpoint: the serving+terminating one becomes active, the non-serving
        // terminating one stays in `terminating`.
        let only_terminating = &eps[1..];
        let cat = categorize(only_terminating, &policy, &node);
        let fb = frontend_backends(only_terminating, &cat, &policy, Traffic::Internal, &node);
        assert_eq!(fb.active, vec![0]);
        assert_eq!(fb.terminating, vec![1]);

        // Under eTP Local only this node's terminating endpoints can have flows here.
        let local = PortPolicy {
            external_local: true,
            externally_accessible: true,
            ..PortPolicy::default()
        };
        let cat = categorize(&eps, &local, &node);
        let fb = frontend_backends(&eps, &cat, &local, Traffic::External, &node);
        assert_eq!(fb.terminating, vec![2]);
    }

    #[test]
    fn empty_frontend_rejects_when_nothing_anywhere_and_drops_when_only_remote() {
        let node = NodeView {
            name: NODE,
            zone: None,
        };
        let etp_local = PortPolicy {
            external_local: true,
            externally_accessible: true,
            ..PortPolicy::default()
        };
        // eTP Local, endpoints only on other nodes: external frontends drop; the ClusterIP
        // (iTP Cluster) still uses them.
        let eps = endpoints(&[ready("10.0.0.1", &[])]);
        let cat = categorize(&eps, &etp_local, &node);
        let ext = frontend_backends(&eps, &cat, &etp_local, Traffic::External, &node);
        assert!(ext.active.is_empty());
        assert_eq!(ext.no_backends, NoBackends::Drop);
        let int = frontend_backends(&eps, &cat, &etp_local, Traffic::Internal, &node);
        assert_eq!(int.active, vec![0]);
        // No usable endpoint anywhere: reject, for both.
        let eps = endpoints(&[Ep {
            ip: "10.0.0.1",
            ..Ep::default()
        }]);
        let cat = categorize(&eps, &etp_local, &node);
        for t in [Traffic::External, Traffic::Internal] {
            let fb = frontend_backends(&eps, &cat, &etp_local, t, &node);
            assert!(fb.active.is_empty());
            assert_eq!(fb.no_backends, NoBackends::Reject, "{t:?}");
        }
        // iTP Local, endpoints only remote: the ClusterIP drops.
        let itp_local = PortPolicy {
            internal_local: true,
            ..PortPolicy::default()
        };
        let eps = endpoints(&[ready("10.0.0.1", &[])]);
        let cat = categorize(&eps, &itp_local, &node);
        let fb = frontend_backends(&eps, &cat, &itp_local, Traffic::Internal, &node);
        assert!(fb.active.is_empty());
        assert_eq!(fb.no_backends, NoBackends::Drop);
    }
}
