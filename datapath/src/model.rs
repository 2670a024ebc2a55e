//! The service model: what the planner needs from Kubernetes Service, EndpointSlice and Node
//! objects, validated and typed (addresses parsed, API defaults applied, bgplane's annotations
//! read). Owns the conversion from k8s-openapi types and its errors (which name the object and
//! the field); knows nothing of selection rules or BPF.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;

use crate::maglev;
use crate::plan::{Protocol, Selection};

/// bgplane's per-Service selection algorithm for north-south frontends: `maglev` or `random`.
pub const ANNOTATION_LB_ALGORITHM: &str = "bgplane.io/lb-algorithm";
/// Maglev table size for this Service (prime, at most 131071).
pub const ANNOTATION_MAGLEV_TABLE_SIZE: &str = "bgplane.io/maglev-table-size";
/// Kubernetes ≥ 1.27 topology-aware routing switch.
pub const ANNOTATION_TOPOLOGY_MODE: &str = "service.kubernetes.io/topology-mode";
/// The deprecated switch; takes precedence over topology-mode when present (as kube-proxy).
pub const ANNOTATION_TOPOLOGY_AWARE_HINTS: &str = "service.kubernetes.io/topology-aware-hints";
/// Label joining an EndpointSlice to its Service.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
/// Node label holding the node's zone.
pub const LABEL_TOPOLOGY_ZONE: &str = "topology.kubernetes.io/zone";
/// API default for `sessionAffinityConfig.clientIP.timeoutSeconds`, and its maximum.
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10800;
pub const MAX_AFFINITY_TIMEOUT: u32 = 86400;

/// A problem with one object: names the object and the field, e.g.
/// `Service shop/web: metadata.annotations["bgplane.io/lb-algorithm"]: ...`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {name}: {field}: {message}")]
pub struct ModelError {
    pub kind: &'static str,
    pub name: String,
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ServiceType {
    ClusterIp,
    NodePort,
    LoadBalancer,
    ExternalName,
}

/// L4 protocol of a port as Kubernetes spells it; SCTP is valid there but not served here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum L4 {
    Tcp,
    Udp,
    Sctp,
}

impl L4 {
    pub fn served(self) -> Option<Protocol> {
        match self {
            L4::Tcp => Some(Protocol::Tcp),
            L4::Udp => Some(Protocol::Udp),
            L4::Sctp => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// `""` when unnamed (single-port services); the join key with EndpointSlice ports.
    pub name: String,
    pub proto: L4,
    pub port: u16,
    pub node_port: Option<u16>,
}

/// How topology-aware routing was requested for a Service, if at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopologyRequest {
    /// Neither annotation nor trafficDistribution asks for it: hints are ignored.
    Off,
    /// `service.kubernetes.io/topology-aware-hints` / `topology-mode` with this value.
    Annotation(String),
    /// `spec.trafficDistribution` with this value.
    TrafficDistribution(String),
}

impl TopologyRequest {
    /// Whether kube-proxy would consider EndpointSlice hints for this Service.
    pub fn enabled(&self) -> bool {
        !matches!(self, TopologyRequest::Off)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub namespace: String,
    pub name: String,
    pub type_: ServiceType,
    /// ClusterIPs, primary first; empty for headless and ExternalName Services.
    pub cluster_ips: Vec<IpAddr>,
    pub ports: Vec<ServicePort>,
    pub external_ips: Vec<IpAddr>,
    /// `status.loadBalancer.ingress[].ip` in VIP mode (ipMode Proxy and hostname-only ingress
    /// are not served on the node, as kube-proxy). Empty unless type LoadBalancer.
    pub load_balancer_ips: Vec<IpAddr>,
    pub source_ranges: Vec<IpNet>,
    /// ClientIP session affinity timeout, seconds.
    pub affinity_timeout: Option<u32>,
    /// `internalTrafficPolicy: Local`.
    pub internal_policy_local: bool,
    /// `externalTrafficPolicy: Local` on a NodePort/LoadBalancer Service (kube-proxy's
    /// apiservice.ExternalPolicyLocal: other types ignore the field).
    pub external_policy_local: bool,
    pub topology: TopologyRequest,
    /// From bgplane's annotations; `None` means the planner's default.
    pub selection: Option<Selection>,
}

impl Service {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    fn err(&self, field: impl Into<String>, message: impl Into<String>) -> ModelError {
        ModelError {
            kind: "Service",
            name: self.key(),
            field: field.into(),
            message: message.into(),
        }
    }
}

/// One endpoint of one Service port, as the selection rules see it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    pub addr: IpAddr,
    pub port: u16,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    pub node_name: Option<String>,
    pub zone: Option<String>,
    pub zone_hints: BTreeSet<String>,
    pub node_hints: BTreeSet<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressType {
    Ipv4,
    Ipv6,
    Fqdn,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlicePort {
    pub name: String,
    pub proto: L4,
    /// `None` when the slice leaves it unset (kube-proxy ignores such ports).
    pub port: Option<u16>,
}

/// An EndpointSlice endpoint before it is joined with a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceEndpoint {
    pub addr: IpAddr,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    pub node_name: Option<String>,
    pub zone: Option<String>,
    pub zone_hints: BTreeSet<String>,
    pub node_hints: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSlice {
    pub namespace: String,
    pub name: String,
    /// The `kubernetes.io/service-name` label; slices without it belong to no Service.
    pub service: Option<String>,
    pub address_type: AddressType,
    pub ports: Vec<SlicePort>,
    pub endpoints: Vec<SliceEndpoint>,
}

/// This node, as the selection rules need it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Addresses NodePort frontends listen on.
    pub addresses: Vec<IpAddr>,
}

impl NodeInfo {
    /// `topology.kubernetes.io/zone`, when set and non-empty.
    pub fn zone(&self) -> Option<&str> {
        self.labels
            .get(LABEL_TOPOLOGY_ZONE)
            .map(String::as_str)
            .filter(|z| !z.is_empty())
    }
}

/// Name, labels, and InternalIP/ExternalIP addresses (status.addresses order) of a Node.
pub fn node_from_k8s(node: &core::Node) -> Result<NodeInfo, ModelError> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let mut addresses = Vec::new();
    let status_addrs = node.status.as_ref().and_then(|s| s.addresses.as_ref());
    for (i, a) in status_addrs.into_iter().flatten().enumerate() {
        if a.type_ != "InternalIP" && a.type_ != "ExternalIP" {
            continue;
        }
        let ip: IpAddr = a.address.trim().parse().map_err(|_| ModelError {
            kind: "Node",
            name: name.clone(),
            field: format!("status.addresses[{i}].address"),
            message: format!("{:?} is not an IP address", a.address),
        })?;
        if !addresses.contains(&ip) {
            addresses.push(ip);
        }
    }
    Ok(NodeInfo {
        labels: node.metadata.labels.clone().unwrap_or_default(),
        name,
        addresses,
    })
}

fn parse_l4(v: Option<&str>) -> Result<L4, String> {
    match v.unwrap_or("TCP") {
        "TCP" => Ok(L4::Tcp),
        "UDP" => Ok(L4::Udp),
        "SCTP" => Ok(L4::Sctp),
        other => Err(format!("unknown protocol {other:?} (TCP, UDP or SCTP)")),
    }
}

fn parse_port(v: i32, what: &str) -> Result<u16, String> {
    u16::try_from(v)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{what} {v} is not in 1..=65535"))
}

fn parse_ip(s: &str) -> Result<IpAddr, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("{s:?} is not an IP address"))
}

/// Converts a Service, applying API defaults and reading bgplane's annotations.
pub fn service_from_k8s(svc: &core::Service) -> Result<Service, ModelError> {
    let meta = &svc.metadata;
    let spec = svc.spec.clone().unwrap_or_default();
    let mut out = Service {
        namespace: meta
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string()),
        name: meta.name.clone().unwrap_or_default(),
        type_: ServiceType::ClusterIp,
        cluster_ips: Vec::new(),
        ports: Vec::new(),
        external_ips: Vec::new(),
        load_balancer_ips: Vec::new(),
        source_ranges: Vec::new(),
        affinity_timeout: None,
        internal_policy_local: false,
        external_policy_local: false,
        topology: TopologyRequest::Off,
        selection: None,
    };
    if out.name.is_empty() {
        return Err(out.err("metadata.name", "missing"));
    }

    out.type_ = match spec.type_.as_deref().unwrap_or("ClusterIP") {
        "ClusterIP" => ServiceType::ClusterIp,
        "NodePort" => ServiceType::NodePort,
        "LoadBalancer" => ServiceType::LoadBalancer,
        "ExternalName" => ServiceType::ExternalName,
        other => return Err(out.err("spec.type", format!("unknown type {other:?}"))),
    };
    if out.type_ == ServiceType::ExternalName {
        return Ok(out); // a DNS alias: nothing to proxy
    }

    // ClusterIPs: spec.clusterIPs (dual-stack, primary first), else spec.clusterIP.
    // "None" (headless) and "" mean no virtual IP.
    let (field, ips) = match &spec.cluster_ips {
        Some(v) if !v.is_empty() => ("spec.clusterIPs", v.clone()),
        _ => (
            "spec.clusterIP",
            spec.cluster_ip.clone().into_iter().collect(),
        ),
    };
    for (i, s) in ips.iter().enumerate() {
        if s.is_empty() || s == "None" {
            continue;
        }
        let ip = parse_ip(s).map_err(|m| out.err(format!("{field}[{i}]"), m))?;
        out.cluster_ips.push(ip);
    }
    if let Some(families) = &spec.ip_families {
        for (i, ip) in out.cluster_ips.iter().enumerate() {
            let want = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
            match families.get(i) {
                Some(f) if f == want => {}
                Some(f) => {
                    return Err(out.err(
                        format!("spec.ipFamilies[{i}]"),
                        format!("{f} does not match clusterIPs[{i}] {ip} ({want})"),
                    ))
                }
                None => {
                    return Err(out.err(
                        "spec.ipFamilies",
                        format!("no family for clusterIPs[{i}] {ip}"),
                    ))
                }
            }
        }
    }

    for (i, p) in spec.ports.iter().flatten().enumerate() {
        let f = |s: &str| format!("spec.ports[{i}].{s}");
        let proto = parse_l4(p.protocol.as_deref()).map_err(|m| out.err(f("protocol"), m))?;
        let port = parse_port(p.port, "port").map_err(|m| out.err(f("port"), m))?;
        let node_port = match p.node_port {
            None | Some(0) => None,
            Some(n) => Some(parse_port(n, "nodePort").map_err(|m| out.err(f("nodePort"), m))?),
        };
        // nodePort is only meaningful on NodePort/LoadBalancer Services.
        let node_port = node_port
            .filter(|_| matches!(out.type_, ServiceType::NodePort | ServiceType::LoadBalancer));
        out.ports.push(ServicePort {
            name: p.name.clone().unwrap_or_default(),
            proto,
            port,
            node_port,
        });
    }

    for (i, s) in spec.external_ips.iter().flatten().enumerate() {
        let ip = parse_ip(s).map_err(|m| out.err(format!("spec.externalIPs[{i}]"), m))?;
        if !out.external_ips.contains(&ip) {
            out.external_ips.push(ip);
        }
    }

    if out.type_ == ServiceType::LoadBalancer {
        let ingress = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref());
        for (i, ing) in ingress.into_iter().flatten().enumerate() {
            // kube-proxy's IsVIPMode: ipMode unset or "VIP"; "Proxy" means the load balancer
            // proxies to the node, so the VIP is not the destination seen here.
            if ing.ip_mode.as_deref().is_some_and(|m| m == "Proxy") {
                continue;
            }
            let Some(s) = ing.ip.as_deref().filter(|s| !s.is_empty()) else {
                continue;
            };
            let ip = parse_ip(s)
                .map_err(|m| out.err(format!("status.loadBalancer.ingress[{i}].ip"), m))?;
            if !out.load_balancer_ips.contains(&ip) {
                out.load_balancer_ips.push(ip);
            }
        }
    }

    for (i, s) in spec
        .load_balancer_source_ranges
        .iter()
        .flatten()
        .enumerate()
    {
        // Trimmed, as kube-proxy: validation allowed whitespace padding.
        let t = s.trim();
        let net: IpNet = t.parse().map_err(|_| {
            out.err(
                format!("spec.loadBalancerSourceRanges[{i}]"),
                format!("{s:?} is not a CIDR prefix"),
            )
        })?;
        out.source_ranges.push(net.trunc());
    }

    match spec.session_affinity.as_deref().unwrap_or("None") {
        "None" => {}
        "ClientIP" => {
            let t = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds);
            let t = match t {
                None => DEFAULT_AFFINITY_TIMEOUT,
                Some(t) => u32::try_from(t)
                    .ok()
                    .filter(|t| (1..=MAX_AFFINITY_TIMEOUT).contains(t))
                    .ok_or_else(|| {
                        out.err(
                            "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                            format!("{t} is not in 1..={MAX_AFFINITY_TIMEOUT}"),
                        )
                    })?,
            };
            out.affinity_timeout = Some(t);
        }
        other => {
            return Err(out.err(
                "spec.sessionAffinity",
                format!("unknown value {other:?} (None or ClientIP)"),
            ))
        }
    }

    out.internal_policy_local = match spec.internal_traffic_policy.as_deref() {
        None | Some("Cluster") => false,
        Some("Local") => true,
        Some(other) => {
            return Err(out.err(
                "spec.internalTrafficPolicy",
                format!("unknown value {other:?} (Cluster or Local)"),
            ))
        }
    };
    let etp_local = match spec.external_traffic_policy.as_deref() {
        None | Some("Cluster") => false,
        Some("Local") => true,
        Some(other) => {
            return Err(out.err(
                "spec.externalTrafficPolicy",
                format!("unknown value {other:?} (Cluster or Local)"),
            ))
        }
    };
    out.external_policy_local =
        etp_local && matches!(out.type_, ServiceType::NodePort | ServiceType::LoadBalancer);

    let annotations = meta.annotations.clone().unwrap_or_default();
    // kube-proxy (pkg/proxy/service.go): the deprecated annotation has precedence; Cilium's
    // getAnnotationTopologyAwareHints does the same. trafficDistribution PreferClose (and its
    // 1.33 names PreferSameZone / PreferSameNode) requests hints whatever the annotations say.
    out.topology = match spec.traffic_distribution.as_deref() {
        Some(v @ ("PreferClose" | "PreferSameZone" | "PreferSameNode")) => {
            TopologyRequest::TrafficDistribution(v.to_string())
        }
        _ => {
            let v = annotations
                .get(ANNOTATION_TOPOLOGY_AWARE_HINTS)
                .or_else(|| annotations.get(ANNOTATION_TOPOLOGY_MODE));
            match v.map(String::as_str) {
                // kube-proxy: "Any non-empty and non-disabled values for the hints annotation
                // are acceptable."
                None | Some("" | "disabled" | "Disabled") => TopologyRequest::Off,
                Some(v) => TopologyRequest::Annotation(v.to_string()),
            }
        }
    };

    out.selection = selection_from_annotations(&out, &annotations)?;
    Ok(out)
}

fn selection_from_annotations(
    svc: &Service,
    annotations: &BTreeMap<String, String>,
) -> Result<Option<Selection>, ModelError> {
    let field = |a: &str| format!("metadata.annotations[{a:?}]");
    let size = match annotations.get(ANNOTATION_MAGLEV_TABLE_SIZE) {
        None => None,
        Some(v) => {
            let n: u32 = v.trim().parse().map_err(|_| {
                svc.err(
                    field(ANNOTATION_MAGLEV_TABLE_SIZE),
                    format!("{v:?} is not a number"),
                )
            })?;
            maglev::validate_table_size(n)
                .map_err(|e| svc.err(field(ANNOTATION_MAGLEV_TABLE_SIZE), e.to_string()))?;
            Some(n)
        }
    };
    match annotations.get(ANNOTATION_LB_ALGORITHM).map(|s| s.trim()) {
        None if size.is_some() => Err(svc.err(
            field(ANNOTATION_MAGLEV_TABLE_SIZE),
            format!("set without {ANNOTATION_LB_ALGORITHM}: maglev"),
        )),
        None => Ok(None),
        Some("maglev") => Ok(Some(Selection::Maglev {
            table_size: size.unwrap_or(maglev::DEFAULT_TABLE_SIZE),
        })),
        Some("random") if size.is_some() => Err(svc.err(
            field(ANNOTATION_MAGLEV_TABLE_SIZE),
            "set with lb-algorithm random".to_string(),
        )),
        Some("random") => Ok(Some(Selection::Random)),
        Some(other) => Err(svc.err(
            field(ANNOTATION_LB_ALGORITHM),
            format!("unknown algorithm {other:?} (maglev or random)"),
        )),
    }
}

/// Converts an EndpointSlice, applying the API's condition defaults: nil ready = true (the
/// API: "nil should be interpreted as true"), nil serving = ready ("If nil, consumers should
/// defer to the ready condition"), nil terminating = false.
pub fn endpoint_slice_from_k8s(s: &discovery::EndpointSlice) -> Result<EndpointSlice, ModelError> {
    let name = s.metadata.name.clone().unwrap_or_default();
    let namespace = s
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_string());
    let err = |field: String, message: String| ModelError {
        kind: "EndpointSlice",
        name: format!("{namespace}/{name}"),
        field,
        message,
    };
    let address_type = match s.address_type.as_str() {
        "IPv4" => AddressType::Ipv4,
        "IPv6" => AddressType::Ipv6,
        "FQDN" => AddressType::Fqdn,
        other => {
            return Err(err(
                "addressType".into(),
                format!("unknown value {other:?} (IPv4, IPv6 or FQDN)"),
            ))
        }
    };
    let service = s
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_SERVICE_NAME))
        .cloned();
    let mut ports = Vec::new();
    for (i, p) in s.ports.iter().flatten().enumerate() {
        let proto =
            parse_l4(p.protocol.as_deref()).map_err(|m| err(format!("ports[{i}].protocol"), m))?;
        let port = match p.port {
            None => None,
            Some(v) => Some(parse_port(v, "port").map_err(|m| err(format!("ports[{i}].port"), m))?),
        };
        ports.push(SlicePort {
            name: p.name.clone().unwrap_or_default(),
            proto,
            port,
        });
    }
    let mut endpoints = Vec::new();
    if address_type != AddressType::Fqdn {
        for (i, e) in s.endpoints.iter().enumerate() {
            // kube-proxy uses the first address only (the API says consumers may).
            let Some(first) = e.addresses.first() else {
                continue;
            };
            let addr =
                parse_ip(first).map_err(|m| err(format!("endpoints[{i}].addresses[0]"), m))?;
            let family_ok = match address_type {
                AddressType::Ipv4 => addr.is_ipv4(),
                _ => addr.is_ipv6(),
            };
            if !family_ok {
                return Err(err(
                    format!("endpoints[{i}].addresses[0]"),
                    format!("{addr} does not match addressType {}", s.address_type),
                ));
            }
            let c = e.conditions.clone().unwrap_or_default();
            let ready = c.ready.unwrap_or(true);
            let hints = e.hints.clone().unwrap_or_default();
            endpoints.push(SliceEndpoint {
                addr,
                ready,
                serving: c.serving.unwrap_or(ready),
                terminating: c.terminating.unwrap_or(false),
                node_name: e.node_name.clone(),
                zone: e.zone.clone(),
                zone_hints: hints
                    .for_zones
                    .into_iter()
                    .flatten()
                    .map(|z| z.name)
                    .collect(),
                node_hints: hints
                    .for_nodes
                    .into_iter()
                    .flatten()
                    .map(|n| n.name)
                    .collect(),
            });
        }
    }
    Ok(EndpointSlice {
        namespace,
        name,
        service,
        address_type,
        ports,
        endpoints,
    })
}

/// The endpoints of `svc`'s port `port` from its slices (same namespace, service-name label),
/// joined by port name and protocol as kube-proxy's EndpointSliceCache: slice ports without a
/// number are ignored; an address:port listed by several slices is kept once, from the slice
/// that sorts last by name. Sorted by address then port.
pub fn endpoints_for_port(
    svc: &Service,
    port: &ServicePort,
    slices: &[EndpointSlice],
) -> Vec<Endpoint> {
    let mut mine: Vec<&EndpointSlice> = slices
        .iter()
        .filter(|s| s.namespace == svc.namespace && s.service.as_deref() == Some(&svc.name))
        .collect();
    mine.sort_by(|a, b| a.name.cmp(&b.name));
    let mut by_addr: BTreeMap<(IpAddr, u16), Endpoint> = BTreeMap::new();
    for s in mine {
        for sp in &s.ports {
            let Some(target) = sp.port else { continue };
            if sp.name != port.name || sp.proto != port.proto {
                continue;
            }
            for e in &s.endpoints {
                by_addr.insert(
                    (e.addr, target),
                    Endpoint {
                        addr: e.addr,
                        port: target,
                        ready: e.ready,
                        serving: e.serving,
                        terminating: e.terminating,
                        node_name: e.node_name.clone(),
                        zone: e.zone.clone(),
                        zone_hints: e.zone_hints.clone(),
                        node_hints: e.node_hints.clone(),
                    },
                );
            }
        }
    }
    by_addr.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn objects(yaml: &str) -> crate::k8s::Objects {
        crate::k8s::parse_str(Path::new("t.yaml"), yaml).unwrap()
    }

    fn service(yaml: &str) -> Result<Service, ModelError> {
        service_from_k8s(&objects(yaml).services[0])
    }

    const DUAL_STACK_LB: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  type: LoadBalancer
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10, "fd00:96::10"]
  ipFamilies: [IPv4, IPv6]
  externalIPs: [192.0.2.7]
  externalTrafficPolicy: Local
  internalTrafficPolicy: Cluster
  loadBalancerSourceRanges: [" 198.51.100.0/24", "2001:db8::1/32"]
  sessionAffinity: ClientIP
  ports:
  - {name: http, port: 80, nodePort: 30080, protocol: TCP}
  - {name: dns, port: 53, nodePort: 30053, protocol: UDP}
  - {name: sig, port: 9000, nodePort: 30900, protocol: SCTP}
status:
  loadBalancer:
    ingress:
    - ip: 203.0.113.5
    - ip: "2001:db8:5::5"
    - ip: 203.0.113.6
      ipMode: Proxy
    - hostname: lb.example.com
"#;

    #[test]
    fn frontend_fields_of_a_dual_stack_load_balancer() {
        let s = service(DUAL_STACK_LB).unwrap();
        assert_eq!(s.key(), "shop/web");
        assert_eq!(s.type_, ServiceType::LoadBalancer);
        assert_eq!(
            s.cluster_ips,
            vec![
                "10.96.0.10".parse::<IpAddr>().unwrap(),
                "fd00:96::10".parse().unwrap()
            ]
        );
        assert_eq!(s.ports.len(), 3);
        assert_eq!(
            s.ports[1],
            ServicePort {
                name: "dns".into(),
                proto: L4::Udp,
                port: 53,
                node_port: Some(30053)
            }
        );
        assert_eq!(s.ports[2].proto.served(), None);
        assert_eq!(s.external_ips, vec!["192.0.2.7".parse::<IpAddr>().unwrap()]);
        // ipMode Proxy and hostname-only ingress are not VIPs on this node.
        assert_eq!(
            s.load_balancer_ips,
            vec![
                "203.0.113.5".parse::<IpAddr>().unwrap(),
                "2001:db8:5::5".parse().unwrap()
            ]
        );
        // Trimmed, host bits cleared.
        assert_eq!(
            s.source_ranges,
            vec![
                "198.51.100.0/24".parse::<IpNet>().unwrap(),
                "2001:db8::/32".parse().unwrap()
            ]
        );
        // ClientIP without sessionAffinityConfig: the API default.
        assert_eq!(s.affinity_timeout, Some(DEFAULT_AFFINITY_TIMEOUT));
        assert!(s.external_policy_local);
        assert!(!s.internal_policy_local);
        assert_eq!(s.topology, TopologyRequest::Off);
        assert_eq!(s.selection, None);
    }

    #[test]
    fn headless_and_external_name_have_no_cluster_ip() {
        let s = service(
            "apiVersion: v1\nkind: Service\nmetadata: {name: h}\nspec: {clusterIP: None, ports: [{port: 80}]}\n",
        )
        .unwrap();
        assert!(s.cluster_ips.is_empty());
        assert_eq!(s.namespace, "default");
        let s = service(
            "apiVersion: v1\nkind: Service\nmetadata: {name: e}\nspec: {type: ExternalName, externalName: x.example}\n",
        )
        .unwrap();
        assert_eq!(s.type_, ServiceType::ExternalName);
        assert!(s.cluster_ips.is_empty() && s.ports.is_empty());
    }

    #[test]
    fn external_traffic_policy_only_counts_on_node_port_and_load_balancer() {
        // kube-proxy apiservice.ExternalPolicyLocal: type must be NodePort or LoadBalancer.
        let s = service(
            "apiVersion: v1\nkind: Service\nmetadata: {name: c}\nspec: {clusterIP: 10.96.0.1, externalIPs: [192.0.2.1], externalTrafficPolicy: Local, internalTrafficPolicy: Local, ports: [{port: 80, nodePort: 30000}]}\n",
        )
        .unwrap();
        assert!(!s.external_policy_local);
        assert!(s.internal_policy_local);
        // nodePort on a ClusterIP Service is not a frontend.
        assert_eq!(s.ports[0].node_port, None);
    }

    fn with_annotations(ann: &str) -> Result<Service, ModelError> {
        service(&format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\n  annotations:\n{ann}spec: {{clusterIP: 10.96.0.1, ports: [{{port: 80}}]}}\n"
        ))
    }

    #[test]
    fn topology_request_from_annotations_and_traffic_distribution() {
        let cases = [
            // (annotations, trafficDistribution, enabled) — kube-proxy service.go / topology.go
            ("    service.kubernetes.io/topology-mode: Auto\n", None, true),
            ("    service.kubernetes.io/topology-aware-hints: auto\n", None, true),
            // "Any non-empty and non-disabled values ... are acceptable"
            ("    service.kubernetes.io/topology-mode: PreferZone\n", None, true),
            ("    service.kubernetes.io/topology-mode: Disabled\n", None, false),
            ("    service.kubernetes.io/topology-mode: \"\"\n", None, false),
            // The deprecated annotation has precedence over topology-mode.
            (
                "    service.kubernetes.io/topology-aware-hints: disabled\n    service.kubernetes.io/topology-mode: Auto\n",
                None,
                false,
            ),
            ("    x: y\n", Some("PreferClose"), true),
            ("    service.kubernetes.io/topology-mode: Disabled\n", Some("PreferClose"), true),
            ("    x: y\n", None, false),
        ];
        for (ann, td, want) in cases {
            let yaml = format!(
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: t\n  annotations:\n{ann}spec:\n  clusterIP: 10.96.0.1\n  ports: [{{port: 80}}]\n{}",
                td.map(|t| format!("  trafficDistribution: {t}\n")).unwrap_or_default()
            );
            let s = service(&yaml).unwrap();
            assert_eq!(s.topology.enabled(), want, "{ann} {td:?}");
        }
    }

    #[test]
    fn bgplane_selection_annotations() {
        let s = with_annotations("    bgplane.io/lb-algorithm: maglev\n").unwrap();
        assert_eq!(s.selection, Some(Selection::Maglev { table_size: 16381 }));
        let s = with_annotations(
            "    bgplane.io/lb-algorithm: maglev\n    bgplane.io/maglev-table-size: \"65521\"\n",
        )
        .unwrap();
        assert_eq!(s.selection, Some(Selection::Maglev { table_size: 65521 }));
        let s = with_annotations("    bgplane.io/lb-algorithm: random\n").unwrap();
        assert_eq!(s.selection, Some(Selection::Random));
    }

    #[test]
    fn bad_selection_annotation_is_an_error_naming_service_and_annotation() {
        let err = with_annotations(
            "    bgplane.io/lb-algorithm: maglev\n    bgplane.io/maglev-table-size: \"16383\"\n",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Service shop/web: metadata.annotations[\"bgplane.io/maglev-table-size\"]: \
             Maglev table size 16383 is not a prime number"
        );
        let err = with_annotations(
            "    bgplane.io/lb-algorithm: maglev\n    bgplane.io/maglev-table-size: \"262139\"\n",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("larger than the maximum 131071"),
            "{err}"
        );
        let err = with_annotations("    bgplane.io/lb-algorithm: hash\n").unwrap_err();
        assert_eq!(
            err.field,
            "metadata.annotations[\"bgplane.io/lb-algorithm\"]"
        );
        assert_eq!(err.name, "shop/web");
        let err = with_annotations("    bgplane.io/maglev-table-size: \"251\"\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("set without bgplane.io/lb-algorithm"),
            "{err}"
        );
        let err = with_annotations(
            "    bgplane.io/lb-algorithm: maglev\n    bgplane.io/maglev-table-size: big\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("\"big\" is not a number"), "{err}");
    }

    #[test]
    fn invalid_service_fields_are_errors_naming_the_field() {
        let bad = |spec: &str| {
            service(&format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: b, namespace: n}}\nspec: {spec}\n"
            ))
            .unwrap_err()
            .field
        };
        assert_eq!(bad("{clusterIP: 10.96.0.300}"), "spec.clusterIP[0]");
        assert_eq!(
            bad("{clusterIPs: [10.96.0.1, 'fd00::x']}"),
            "spec.clusterIPs[1]"
        );
        assert_eq!(
            bad("{clusterIPs: [10.96.0.1], ipFamilies: [IPv6]}"),
            "spec.ipFamilies[0]"
        );
        assert_eq!(
            bad("{clusterIP: 10.96.0.1, ports: [{port: 0}]}"),
            "spec.ports[0].port"
        );
        assert_eq!(
            bad("{clusterIP: 10.96.0.1, ports: [{port: 80, protocol: ICMP}]}"),
            "spec.ports[0].protocol"
        );
        assert_eq!(
            bad("{clusterIP: 10.96.0.1, loadBalancerSourceRanges: [10.0.0.0]}"),
            "spec.loadBalancerSourceRanges[0]"
        );
        assert_eq!(
            bad("{clusterIP: 10.96.0.1, sessionAffinity: ClientIP, sessionAffinityConfig: {clientIP: {timeoutSeconds: 0}}}"),
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds"
        );
        assert_eq!(
            bad("{clusterIP: 10.96.0.1, externalTrafficPolicy: Nearby}"),
            "spec.externalTrafficPolicy"
        );
        assert_eq!(bad("{type: Magic}"), "spec.type");
    }

    const SLICES: &str = r#"
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-b
  namespace: shop
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports:
- {name: http, port: 8080, protocol: TCP}
- {name: dns, port: 5353, protocol: UDP}
- {name: http, protocol: TCP}
endpoints:
- addresses: [10.0.0.2]
  nodeName: node-a
  zone: zone-a
  hints: {forZones: [{name: zone-a}], forNodes: [{name: node-a}]}
- addresses: [10.0.0.1]
  conditions: {ready: false, serving: true, terminating: true}
- addresses: [10.0.0.3]
  conditions: {ready: false, terminating: true}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-a
  namespace: shop
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports:
- {name: http, port: 8080}
endpoints:
- addresses: [10.0.0.2]
  conditions: {ready: false}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: other
  namespace: elsewhere
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports:
- {name: http, port: 8080}
endpoints:
- addresses: [10.9.9.9]
"#;

    #[test]
    fn endpoint_conditions_default_as_the_api_says() {
        let o = objects(SLICES);
        let s = endpoint_slice_from_k8s(&o.endpoint_slices[0]).unwrap();
        let e = &s.endpoints;
        // nil ready = true; nil serving = ready; nil terminating = false.
        assert!(e[0].ready && e[0].serving && !e[0].terminating);
        assert!(!e[1].ready && e[1].serving && e[1].terminating);
        // ready false, serving nil: serving defers to ready.
        assert!(!e[2].ready && !e[2].serving && e[2].terminating);
        assert_eq!(e[0].zone.as_deref(), Some("zone-a"));
        assert_eq!(e[0].node_name.as_deref(), Some("node-a"));
        assert!(e[0].zone_hints.contains("zone-a"));
        assert!(e[0].node_hints.contains("node-a"));
        assert_eq!(s.service.as_deref(), Some("web"));
    }

    #[test]
    fn endpoints_join_by_service_label_port_name_and_protocol() {
        let o = objects(&format!("{DUAL_STACK_LB}---{SLICES}"));
        let svc = service_from_k8s(&o.services[0]).unwrap();
        let slices: Vec<_> = o
            .endpoint_slices
            .iter()
            .map(|s| endpoint_slice_from_k8s(s).unwrap())
            .collect();
        let http = endpoints_for_port(&svc, &svc.ports[0], &slices);
        let addrs: Vec<String> = http
            .iter()
            .map(|e| format!("{}:{}", e.addr, e.port))
            .collect();
        // Other namespace excluded; the port without a number ignored; sorted.
        assert_eq!(
            addrs,
            vec!["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"]
        );
        // 10.0.0.2 is in web-a (not ready) and web-b (ready): web-b sorts last and wins.
        assert!(http[1].ready);
        let dns = endpoints_for_port(&svc, &svc.ports[1], &slices);
        assert_eq!(dns.len(), 3);
        assert!(dns.iter().all(|e| e.port == 5353));
        // SCTP port: no slice port matches.
        assert!(endpoints_for_port(&svc, &svc.ports[2], &slices).is_empty());
    }

    #[test]
    fn slice_errors_name_the_slice_and_field() {
        let o = objects(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s, namespace: n}\naddressType: IPv6\nendpoints:\n- addresses: [10.0.0.1]\n",
        );
        let err = endpoint_slice_from_k8s(&o.endpoint_slices[0]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "EndpointSlice n/s: endpoints[0].addresses[0]: 10.0.0.1 does not match addressType IPv6"
        );
    }

    #[test]
    fn node_info_takes_labels_and_internal_external_addresses() {
        let o = objects(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: node-a\n  labels: {topology.kubernetes.io/zone: zone-a}\nstatus:\n  addresses:\n  - {type: Hostname, address: node-a}\n  - {type: InternalIP, address: 10.99.1.1}\n  - {type: InternalIP, address: 'fd00:99::1'}\n  - {type: ExternalIP, address: 10.99.1.1}\n",
        );
        let n = node_from_k8s(&o.nodes[0]).unwrap();
        assert_eq!(n.name, "node-a");
        assert_eq!(n.zone(), Some("zone-a"));
        assert_eq!(
            n.addresses,
            vec![
                "10.99.1.1".parse::<IpAddr>().unwrap(),
                "fd00:99::1".parse().unwrap()
            ]
        );
    }
}
