//! Plain-text tables for humans, in the style of `gobgp neighbor` / `birdc show protocols`.

use crate::api::{PeerJson, RouteJson, ServicesJson};

/// Left-aligned columns, two spaces apart.
fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let n = cells.len();
        for (i, (c, w)) in cells.into_iter().zip(&widths).enumerate() {
            out.push_str(c);
            if i + 1 < n {
                out.push_str(&" ".repeat(w - c.chars().count() + 2));
            }
        }
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    for r in rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

/// `hh:mm:ss`, or `Nd hh:mm:ss` past a day.
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

pub fn peers(peers: &[PeerJson]) -> String {
    let rows: Vec<Vec<String>> = peers
        .iter()
        .map(|p| {
            vec![
                p.peer_address.clone(),
                p.peer_asn.to_string(),
                p.local_asn.to_string(),
                if p.state == "Established" {
                    duration(p.uptime_seconds)
                } else {
                    if p.flaps > 0 { "down" } else { "never" }.to_string()
                },
                p.state.clone(),
                p.received.total.to_string(),
                p.advertised.total.to_string(),
                p.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    render(
        &[
            "Peer",
            "AS",
            "Local AS",
            "Up/Down",
            "State",
            "#Received",
            "#Advertised",
            "Last error",
        ],
        &rows,
    )
}

pub fn routes(routes: &[RouteJson]) -> String {
    let rows: Vec<Vec<String>> = routes
        .iter()
        .map(|r| {
            let mut prefix = r.prefix.clone();
            if let Some(id) = r.path_id {
                prefix.push_str(&format!(" (id {id})"));
            }
            let mut comms = r.communities.join(" ");
            if !r.large_communities.is_empty() {
                if !comms.is_empty() {
                    comms.push(' ');
                }
                comms.push_str(&r.large_communities.join(" "));
            }
            vec![
                r.peer_address.clone(),
                prefix,
                r.next_hop.clone().unwrap_or_default(),
                r.as_path
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(" "),
                r.origin.clone(),
                r.med.map(|m| m.to_string()).unwrap_or_default(),
                r.local_pref.map(|m| m.to_string()).unwrap_or_default(),
                comms,
                if r.stale { "stale" } else { "" }.to_string(),
            ]
        })
        .collect();
    render(
        &[
            "Peer",
            "Prefix",
            "Next hop",
            "AS path",
            "Origin",
            "MED",
            "LocPrf",
            "Communities",
            "",
        ],
        &rows,
    )
}

fn host_port(addr: &str, port: u16) -> String {
    if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    }
}

/// A status block (datapath, last error, planner notes), then one row per backend like
/// `cilium service list`: a frontend's first row names it, its other backends follow below.
pub fn services(s: &ServicesJson) -> String {
    let d = &s.datapath;
    let mut out = format!(
        "Datapath on node {}: {}; {} links attached, {} adopted; {} applies, {} map writes; pins under {}\n",
        d.node,
        if d.loaded { "loaded" } else { "not loaded" },
        d.links_attached,
        d.links_adopted,
        d.applies,
        d.writes_total,
        d.bpffs,
    );
    if let Some(e) = &d.last_error {
        let when = if e.current {
            "failing now, the previous state keeps serving"
        } else {
            "since recovered"
        };
        out.push_str(&format!("Last error ({when}): {}\n", e.message));
    }
    for n in &d.notes {
        out.push_str(&format!("Note: {n}\n"));
    }
    out.push('\n');
    let counters = s.services.iter().any(|v| v.counters.is_some());
    let mut rows = Vec::new();
    for v in &s.services {
        let selection = match v.maglev_table_size {
            Some(m) => format!("{} ({m})", v.selection),
            None => v.selection.clone(),
        };
        let mut head = vec![
            v.id.map(|i| i.to_string()).unwrap_or_default(),
            v.service.clone(),
            format!(
                "{}/{}",
                host_port(&v.frontend.address, v.frontend.port),
                v.frontend.protocol
            ),
            v.frontend.kind.clone(),
            selection,
        ];
        if counters {
            head.push(
                v.counters
                    .as_ref()
                    .map(|c| format!("{}/{}/{}", c.packets, c.bytes, c.connections))
                    .unwrap_or_default(),
            );
        }
        if v.backends.is_empty() {
            let mut r = head.clone();
            r.extend([
                format!("(none: {})", v.no_backends),
                String::new(),
                String::new(),
                String::new(),
            ]);
            rows.push(r);
        }
        for (i, b) in v.backends.iter().enumerate() {
            let mut r = if i == 0 {
                head.clone()
            } else {
                vec![String::new(); head.len()]
            };
            r.extend([
                host_port(&b.address, b.port),
                b.state.clone(),
                b.zone.clone().unwrap_or_default(),
                b.node.clone().unwrap_or_default(),
            ]);
            rows.push(r);
        }
    }
    let mut header = vec!["ID", "Service", "Frontend", "Kind", "Selection"];
    if counters {
        header.push("Pkts/Bytes/Conns");
    }
    header.extend(["Backend", "State", "Zone", "Node"]);
    out.push_str(&render(&header, &rows));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{BackendJson, DatapathErrorJson, DatapathJson, FrontendJson, ServiceJson};

    #[test]
    fn services_list_each_backend_under_its_frontend_with_state_zone_and_errors() {
        let be = |a: &str, state: &str, zone: Option<&str>| BackendJson {
            address: a.into(),
            port: 8080,
            state: state.into(),
            local: true,
            node: Some("node-a".into()),
            zone: zone.map(Into::into),
            id: Some(1),
        };
        let svc = |addr: &str, kind: &str, backends| ServiceJson {
            service: "shop/web".into(),
            id: Some(3),
            frontend: FrontendJson {
                address: addr.into(),
                port: 80,
                protocol: "TCP".into(),
                kind: kind.into(),
            },
            selection: "maglev".into(),
            maglev_table_size: Some(251),
            affinity_timeout_seconds: None,
            source_ranges: Vec::new(),
            no_backends: "reject".into(),
            backends,
            counters: None,
        };
        let s = ServicesJson {
            datapath: DatapathJson {
                node: "node-a".into(),
                loaded: true,
                bpffs: "/sys/fs/bpf/bgplane".into(),
                last_error: Some(DatapathErrorJson {
                    message: "objects: bad".into(),
                    at_unix_seconds: 1,
                    current: true,
                }),
                ..DatapathJson::default()
            },
            services: vec![
                svc(
                    "fd00::10",
                    "LoadBalancer",
                    vec![
                        be("fd00:1::1", "active", Some("zone-a")),
                        be("fd00:1::2", "terminating", None),
                    ],
                ),
                svc("10.0.0.1", "ClusterIP", vec![]),
            ],
        };
        let t = services(&s);
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[0].starts_with("Datapath on node node-a: loaded;"),
            "{t}"
        );
        assert_eq!(
            lines[1],
            "Last error (failing now, the previous state keeps serving): objects: bad"
        );
        assert!(lines[3].starts_with("ID  Service   Frontend"), "{t}");
        assert!(
            lines[4].contains("[fd00::10]:80/TCP  LoadBalancer  maglev (251)  [fd00:1::1]:8080  active       zone-a  node-a"),
            "{t}"
        );
        assert!(lines[5].starts_with("    "), "{t}");
        assert!(
            lines[5].contains("[fd00:1::2]:8080  terminating          node-a"),
            "{t}"
        );
        assert!(
            lines[6].contains("10.0.0.1:80/TCP") && lines[6].contains("(none: reject)"),
            "{t}"
        );
    }

    #[test]
    fn durations_read_like_gobgp() {
        assert_eq!(duration(0), "00:00:00");
        assert_eq!(duration(3661), "01:01:01");
        assert_eq!(duration(90061), "1d 01:01:01");
    }

    #[test]
    fn columns_line_up() {
        let t = render(&["A", "Bee"], &[vec!["long".into(), "x".into()]]);
        assert_eq!(t, "A     Bee\nlong  x\n");
    }
}
