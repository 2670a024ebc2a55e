//! The pure service planner: Kubernetes objects + this node → one `plan::ServicePlan` per
//! frontend (address, port, protocol), in a stable order. Ties model (what the objects say),
//! select (which endpoints this node uses) and the selection mode together; owns per-family
//! splitting of dual-stack Services and frontend conflicts. No I/O.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::k8s::Objects;
use crate::model::{self, ModelError, NodeInfo, ServiceType};
use crate::plan::{BackendAddr, Frontend, FrontendKind, Selection, ServicePlan};
use crate::select::{self, NodeView, PortPolicy, Traffic};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Selection for north-south frontends (NodePort, LoadBalancer, ExternalIP) of Services
    /// without a `bgplane.io/lb-algorithm` annotation. ClusterIP frontends (socket LB, one
    /// choice per connect) always use Random.
    pub default_selection: Selection,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            default_selection: Selection::Random,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("Node {0:?} is not among the objects")]
    NodeNotFound(String),
}

/// Plans plus what was left out and why (headless / ExternalName Services, SCTP ports,
/// frontend conflicts, skipped documents), for logs and `bgplane services`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Planned {
    pub plans: Vec<ServicePlan>,
    pub notes: Vec<String>,
}

/// Output order: Service, then frontend kind (ClusterIP, NodePort, LoadBalancer, ExternalIP),
/// address (IPv4 first), port, protocol.
fn sort_key(p: &ServicePlan) -> (&str, FrontendKind, IpAddr, u16, crate::plan::Protocol) {
    let f = &p.frontend;
    (&p.service, f.kind, f.addr, f.port, f.proto)
}

/// This node's name, labels and addresses from its Node object.
pub fn node_info(objects: &Objects, name: &str) -> Result<NodeInfo, PlanError> {
    let node = objects
        .nodes
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(name))
        .ok_or_else(|| PlanError::NodeNotFound(name.to_string()))?;
    Ok(model::node_from_k8s(node)?)
}

/// The frontends of every Service as seen from `node`, sorted by Service then frontend.
pub fn plan(
    objects: &Objects,
    node: &NodeInfo,
    options: &Options,
) -> Result<Vec<ServicePlan>, PlanError> {
    Ok(plan_with_notes(objects, node, options)?.plans)
}

pub fn plan_with_notes(
    objects: &Objects,
    node: &NodeInfo,
    options: &Options,
) -> Result<Planned, PlanError> {
    let mut out = Planned {
        notes: objects.skipped.iter().map(|s| s.to_string()).collect(),
        ..Planned::default()
    };
    let slices = objects
        .endpoint_slices
        .iter()
        .map(model::endpoint_slice_from_k8s)
        .collect::<Result<Vec<_>, _>>()?;
    let view = NodeView {
        name: &node.name,
        zone: node.zone(),
    };

    let mut plans = Vec::new();
    for k in &objects.services {
        let svc = model::service_from_k8s(k)?;
        if svc.type_ == ServiceType::ExternalName {
            out.notes.push(format!(
                "Service {}: ExternalName, nothing to proxy",
                svc.key()
            ));
            continue;
        }
        if svc.cluster_ips.is_empty() {
            out.notes
                .push(format!("Service {}: headless, nothing to proxy", svc.key()));
            continue;
        }
        for port in &svc.ports {
            let Some(proto) = port.proto.served() else {
                out.notes.push(format!(
                    "Service {}: port {}/SCTP not served (TCP and UDP only)",
                    svc.key(),
                    port.port
                ));
                continue;
            };
            let all = model::endpoints_for_port(&svc, port, &slices);
            // kube-proxy runs one proxier per IP family: a family exists for a Service when it
            // has a ClusterIP of that family, and everything else is filtered to that family.
            for cluster_ip in &svc.cluster_ips {
                let v4 = cluster_ip.is_ipv4();
                let same = |ip: &IpAddr| ip.is_ipv4() == v4;
                let eps: Vec<model::Endpoint> =
                    all.iter().filter(|e| same(&e.addr)).cloned().collect();
                let lb_ips: Vec<IpAddr> =
                    svc.load_balancer_ips.iter().copied().filter(same).collect();
                let ext_ips: Vec<IpAddr> = svc.external_ips.iter().copied().filter(same).collect();
                let node_ips: Vec<IpAddr> = node.addresses.iter().copied().filter(same).collect();
                let policy = PortPolicy {
                    internal_local: svc.internal_policy_local,
                    external_local: svc.external_policy_local,
                    externally_accessible: port.node_port.is_some()
                        || !lb_ips.is_empty()
                        || !ext_ips.is_empty(),
                    topology_aware: svc.topology.enabled(),
                };
                let cat = select::categorize(&eps, &policy, &view);

                let mut frontends = vec![(FrontendKind::ClusterIp, *cluster_ip, port.port)];
                if let Some(np) = port.node_port {
                    frontends.extend(node_ips.iter().map(|ip| (FrontendKind::NodePort, *ip, np)));
                }
                frontends.extend(
                    lb_ips
                        .iter()
                        .map(|ip| (FrontendKind::LoadBalancer, *ip, port.port)),
                );
                frontends.extend(
                    ext_ips
                        .iter()
                        .map(|ip| (FrontendKind::ExternalIp, *ip, port.port)),
                );

                for (kind, addr, fport) in frontends {
                    let traffic = if kind == FrontendKind::ClusterIp {
                        Traffic::Internal
                    } else {
                        Traffic::External
                    };
                    let fb = select::frontend_backends(&eps, &cat, &policy, traffic, &view);
                    let to_addrs = |idx: &[usize]| -> Vec<BackendAddr> {
                        idx.iter()
                            .map(|&i| BackendAddr {
                                addr: eps[i].addr,
                                port: eps[i].port,
                                local: eps[i].is_local(&view),
                            })
                            .collect()
                    };
                    let selection = if kind == FrontendKind::ClusterIp {
                        Selection::Random
                    } else {
                        svc.selection.unwrap_or(options.default_selection)
                    };
                    let source_ranges = if kind == FrontendKind::LoadBalancer {
                        // kube-proxy filters source ranges to the frontend's family.
                        svc.source_ranges
                            .iter()
                            .copied()
                            .filter(|n| same(&n.addr()))
                            .collect()
                    } else {
                        Vec::new()
                    };
                    plans.push(ServicePlan {
                        service: svc.key(),
                        frontend: Frontend {
                            addr,
                            port: fport,
                            proto,
                            kind,
                        },
                        active: to_addrs(&fb.active),
                        terminating: to_addrs(&fb.terminating),
                        selection,
                        affinity_timeout: svc.affinity_timeout,
                        source_ranges,
                        no_backends: fb.no_backends,
                    });
                }
            }
        }
    }

    plans.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
    // One address:port:protocol can be served once. Keep the first in sorted order.
    let mut owner: BTreeMap<(IpAddr, u16, crate::plan::Protocol), String> = BTreeMap::new();
    for p in plans {
        let key = (p.frontend.addr, p.frontend.port, p.frontend.proto);
        if let Some(first) = owner.get(&key) {
            out.notes.push(format!(
                "Service {}: frontend {} {:?} already used by Service {first}: not served",
                p.service,
                std::net::SocketAddr::new(key.0, key.1),
                key.2
            ));
            continue;
        }
        owner.insert(key, p.service.clone());
        out.plans.push(p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{NoBackends, Protocol};
    use std::path::Path;

    fn testdata(name: &str) -> Objects {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata")
            .join(name);
        crate::k8s::load(&path).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn be(addr: &str, port: u16, local: bool) -> BackendAddr {
        BackendAddr {
            addr: ip(addr),
            port,
            local,
        }
    }

    fn find<'a>(plans: &'a [ServicePlan], addr: &str, port: u16) -> &'a ServicePlan {
        plans
            .iter()
            .find(|p| p.frontend.addr == ip(addr) && p.frontend.port == port)
            .unwrap_or_else(|| panic!("no plan for {addr}:{port}"))
    }

    fn plan_for(node: &str) -> Planned {
        let objects = testdata("cluster.yaml");
        let node = node_info(&objects, node).unwrap();
        plan_with_notes(&objects, &node, &Options::default()).unwrap()
    }

    #[test]
    fn dual_stack_load_balancer_gets_every_frontend_per_family() {
        let p = plan_for("node-a").plans;
        let web: Vec<(FrontendKind, String)> = p
            .iter()
            .filter(|p| p.service == "shop/web")
            .map(|p| {
                (
                    p.frontend.kind,
                    std::net::SocketAddr::new(p.frontend.addr, p.frontend.port).to_string(),
                )
            })
            .collect();
        // Sorted by frontend: kind first, then address (v4 before v6), then port.
        assert_eq!(
            web,
            vec![
                (FrontendKind::ClusterIp, "10.96.0.10:80".to_string()),
                (FrontendKind::ClusterIp, "[fd00:96::10]:80".to_string()),
                (FrontendKind::NodePort, "10.99.1.1:30080".to_string()),
                (FrontendKind::NodePort, "[fd00:99::1]:30080".to_string()),
                (FrontendKind::LoadBalancer, "203.0.113.10:80".to_string()),
                (FrontendKind::LoadBalancer, "[2001:db8::10]:80".to_string()),
                (FrontendKind::ExternalIp, "192.0.2.10:80".to_string()),
            ]
        );
    }

    #[test]
    fn zone_hints_terminating_selection_affinity_and_source_ranges_on_node_a() {
        let p = plan_for("node-a").plans;
        // IPv4: every ready endpoint hinted, zone-a matches → only 10.0.1.1; 10.0.1.2 is
        // terminating (ready false) and kept for established flows only.
        let cip = find(&p, "10.96.0.10", 80);
        assert_eq!(cip.frontend.proto, Protocol::Tcp);
        assert_eq!(cip.active, vec![be("10.0.1.1", 8080, true)]);
        assert_eq!(cip.terminating, vec![be("10.0.1.2", 8080, true)]);
        assert_eq!(cip.selection, Selection::Random); // east-west: always random
        assert_eq!(cip.affinity_timeout, Some(600));
        assert!(cip.source_ranges.is_empty());

        let lb = find(&p, "203.0.113.10", 80);
        assert_eq!(lb.active, cip.active);
        assert_eq!(lb.selection, Selection::Maglev { table_size: 251 });
        assert_eq!(lb.source_ranges, vec!["198.51.100.0/24".parse().unwrap()]);
        let np = find(&p, "10.99.1.1", 30080);
        assert_eq!(np.active, cip.active);
        assert!(np.source_ranges.is_empty());

        // IPv6: the only ready endpoint is hinted for zone-b, none for zone-a → all endpoints.
        let cip6 = find(&p, "fd00:96::10", 80);
        assert_eq!(cip6.active, vec![be("fd00:1::1", 8080, false)]);
        let lb6 = find(&p, "2001:db8::10", 80);
        assert_eq!(lb6.source_ranges, vec!["2001:db8:1::/48".parse().unwrap()]);
    }

    #[test]
    fn same_service_seen_from_node_b_uses_zone_b_endpoints() {
        let p = plan_for("node-b").plans;
        let cip = find(&p, "10.96.0.10", 80);
        assert_eq!(cip.active, vec![be("10.0.2.1", 8080, true)]);
        assert_eq!(cip.terminating, vec![be("10.0.1.2", 8080, false)]);
        // node-b's own address for NodePort.
        assert_eq!(find(&p, "10.99.1.2", 30080).active, cip.active);
        assert!(p.iter().all(|p| p.frontend.addr != ip("10.99.1.1")));
    }

    #[test]
    fn external_traffic_policy_local_drops_on_a_node_without_local_endpoints() {
        let a = plan_for("node-a").plans;
        let np = find(&a, "10.99.1.1", 30081);
        assert!(np.active.is_empty());
        assert_eq!(np.no_backends, NoBackends::Drop);
        // The ClusterIP (iTP Cluster) still reaches the remote endpoint.
        assert_eq!(
            find(&a, "10.96.0.11", 8080).active,
            vec![be("10.0.2.5", 9090, false)]
        );
        // On node-b the endpoint is local and NodePort serves it.
        let b = plan_for("node-b").plans;
        assert_eq!(
            find(&b, "10.99.1.2", 30081).active,
            vec![be("10.0.2.5", 9090, true)]
        );
    }

    #[test]
    fn service_without_endpoints_rejects_and_unserved_things_are_noted() {
        let planned = plan_for("node-a");
        let dns = find(&planned.plans, "10.96.0.12", 53);
        assert_eq!(dns.frontend.proto, Protocol::Udp);
        assert!(dns.active.is_empty() && dns.terminating.is_empty());
        assert_eq!(dns.no_backends, NoBackends::Reject);
        let notes = planned.notes.join("\n");
        assert!(notes.contains("Service shop/headless: headless"), "{notes}");
        assert!(
            notes.contains("skipped ConfigMap metallb-system/config"),
            "{notes}"
        );
        assert!(
            notes.contains("Service shop/web: port 9000/SCTP not served"),
            "{notes}"
        );
        assert!(
            notes.contains(
                "Service shop/web2: frontend 192.0.2.10:80 Tcp already used by Service shop/web"
            ),
            "{notes}"
        );
        assert!(planned
            .plans
            .iter()
            .all(|p| p.service != "shop/web2" || p.frontend.addr != ip("192.0.2.10")));
    }

    #[test]
    fn output_is_deterministic_whatever_the_document_order() {
        let objects = testdata("cluster.yaml");
        let node = node_info(&objects, "node-a").unwrap();
        let once = plan(&objects, &node, &Options::default()).unwrap();
        let mut reversed = objects.clone();
        reversed.services.reverse();
        reversed.endpoint_slices.reverse();
        reversed.nodes.reverse();
        assert_eq!(plan(&reversed, &node, &Options::default()).unwrap(), once);
        let mut sorted = once.clone();
        sorted.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
        assert_eq!(sorted, once);
        assert!(once.len() > 10);
    }

    #[test]
    fn default_selection_applies_to_north_south_without_annotation() {
        let objects = testdata("cluster.yaml");
        let node = node_info(&objects, "node-a").unwrap();
        let opts = Options {
            default_selection: Selection::Maglev { table_size: 16381 },
        };
        let p = plan(&objects, &node, &opts).unwrap();
        assert_eq!(
            find(&p, "10.99.1.1", 30081).selection,
            Selection::Maglev { table_size: 16381 }
        );
        assert_eq!(find(&p, "10.96.0.11", 8080).selection, Selection::Random);
        // The annotation still wins where present.
        assert_eq!(
            find(&p, "203.0.113.10", 80).selection,
            Selection::Maglev { table_size: 251 }
        );
    }

    #[test]
    fn bad_annotation_fails_the_plan_naming_service_and_annotation() {
        let objects = testdata("bad-annotation.yaml");
        let node = NodeInfo {
            name: "node-a".into(),
            ..NodeInfo::default()
        };
        let err = plan(&objects, &node, &Options::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Service shop/odd: metadata.annotations[\"bgplane.io/maglev-table-size\"]: \
             Maglev table size 20000 is not a prime number"
        );
        assert_eq!(
            node_info(&objects, "node-z").unwrap_err(),
            PlanError::NodeNotFound("node-z".into())
        );
    }
}
