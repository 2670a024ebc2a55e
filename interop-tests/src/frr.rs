//! FRR bgpd driver: renders `RouterConfig` into bgpd.conf, runs bgpd without zebra
//! (`-Z -n -S`, per LAB.md) in a namespace, and reads its state through `vtysh ... json`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::bgp::{
    parse_ip, parse_prefix, u32_of, Announce, BgpRouter, Family, PeerInfo, Route, RouterConfig,
    SessionState,
};
use crate::lab::{Lab, Node};
use crate::process::{tail_file, Process};
use crate::wait::Check;

pub const BGPD: &str = "/usr/lib/frr/bgpd";
pub const VTYSH: &str = "vtysh";
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A running FRR bgpd.
pub struct Frr {
    node: Node,
    dir: PathBuf,
    config: RouterConfig,
    process: Process,
    next_route_map: AtomicU32,
}

fn afi(family: Family) -> &'static str {
    match family {
        Family::Ipv4Unicast => "ipv4",
        Family::Ipv6Unicast => "ipv6",
    }
}

fn route_map_lines(name: &str, a: &Announce) -> Vec<String> {
    let mut l = vec![format!("route-map {name} permit 10")];
    if let Some(m) = a.med {
        l.push(format!(" set metric {m}"));
    }
    if let Some(lp) = a.local_pref {
        l.push(format!(" set local-preference {lp}"));
    }
    if !a.communities.is_empty() {
        let c: Vec<String> = a.communities.iter().map(|c| c.to_string()).collect();
        l.push(format!(" set community {}", c.join(" ")));
    }
    if !a.large_communities.is_empty() {
        let c: Vec<String> = a.large_communities.iter().map(|c| c.to_string()).collect();
        l.push(format!(" set large-community {}", c.join(" ")));
    }
    match a.next_hop {
        Some(IpAddr::V4(nh)) => l.push(format!(" set ip next-hop {nh}")),
        Some(IpAddr::V6(nh)) => l.push(format!(" set ipv6 next-hop global {nh}")),
        None => {}
    }
    l.push("exit".into());
    l
}

/// The bgpd.conf for `config`, logging to `log`.
pub fn render_config(config: &RouterConfig, log: &str) -> String {
    let mut out = vec![
        format!("hostname frr{}", config.router_id),
        format!("log file {log} debugging"),
        "log timestamp precision 3".into(),
        "debug bgp neighbor-events".into(),
    ];
    for (i, a) in config.announce.iter().enumerate() {
        out.extend(route_map_lines(&format!("ANN-{i}"), a));
    }
    out.push(format!("router bgp {}", config.asn));
    out.push(format!(" bgp router-id {}", config.router_id));
    out.push(" no bgp ebgp-requires-policy".into());
    out.push(" no bgp network import-check".into());
    out.push(" no bgp default ipv4-unicast".into());
    if config.graceful_restart {
        out.push(" bgp graceful-restart".into());
        out.push(format!(
            " bgp graceful-restart restart-time {}",
            config.restart_time
        ));
    }
    for n in &config.neighbors {
        let a = n.address;
        out.push(format!(" neighbor {a} remote-as {}", n.asn));
        out.push(format!(
            " neighbor {a} timers {} {}",
            n.keepalive_secs(),
            n.hold_time
        ));
        out.push(format!(" neighbor {a} timers connect {}", n.connect_retry));
        if n.port != 179 {
            out.push(format!(" neighbor {a} port {}", n.port));
        }
        if n.passive {
            out.push(format!(" neighbor {a} passive"));
        }
        if let Some(p) = &n.password {
            out.push(format!(" neighbor {a} password {p}"));
        }
        if let Some(ttl) = n.multihop {
            out.push(format!(" neighbor {a} ebgp-multihop {ttl}"));
        }
        if let Some(src) = n.local_address {
            out.push(format!(" neighbor {a} update-source {src}"));
        }
    }
    for family in [Family::Ipv4Unicast, Family::Ipv6Unicast] {
        let neighbors: Vec<_> = config
            .neighbors
            .iter()
            .filter(|n| n.families.contains(&family))
            .collect();
        let announces: Vec<_> = config
            .announce
            .iter()
            .enumerate()
            .filter(|(_, a)| a.family() == family)
            .collect();
        if neighbors.is_empty() && announces.is_empty() {
            continue;
        }
        out.push(format!(" address-family {} unicast", afi(family)));
        for (i, a) in announces {
            out.push(format!("  network {} route-map ANN-{i}", a.prefix));
        }
        for n in neighbors {
            let a = n.address;
            out.push(format!("  neighbor {a} activate"));
            out.push(format!("  neighbor {a} soft-reconfiguration inbound"));
            if n.route_reflector_client {
                out.push(format!("  neighbor {a} route-reflector-client"));
            }
            if n.add_path.sends() {
                out.push(format!("  neighbor {a} addpath-tx-all-paths"));
            }
        }
        out.push(" exit-address-family".into());
    }
    for line in &config.extra {
        out.push(format!(" {line}"));
    }
    out.push("exit".into());
    out.join("\n") + "\n"
}

/// Parses `show bgp neighbors json`.
pub fn parse_neighbors(v: &Value) -> Result<Vec<PeerInfo>> {
    let Some(map) = v.as_object() else {
        bail!("show bgp neighbors json: not an object: {v}");
    };
    let mut peers = Vec::new();
    for (key, n) in map {
        let Ok(address) = key.parse::<IpAddr>() else {
            continue;
        };
        let state_text = n["bgpState"].as_str().unwrap_or("Idle");
        let state = state_text
            .parse::<SessionState>()
            .with_context(|| format!("neighbor {address}"))?;
        let received = n["addressFamilyInfo"].as_object().map(|afs| {
            afs.values()
                .filter_map(|af| af["acceptedPrefixCounter"].as_u64())
                .sum()
        });
        let last_error = [
            "lastNotificationReason",
            "lastResetDueTo",
            "lastErrorCodeSubcode",
        ]
        .iter()
        .filter_map(|k| n[*k].as_str())
        .map(str::to_string)
        .reduce(|a, b| format!("{a}; {b}"));
        peers.push(PeerInfo {
            address,
            remote_asn: u32_of(&n["remoteAs"]),
            state,
            prefixes_received: received,
            last_error,
        });
    }
    Ok(peers)
}

/// Parses `show bgp ipv4|ipv6 unicast json detail`.
pub fn parse_routes_detail(v: &Value) -> Result<Vec<Route>> {
    let Some(routes) = v["routes"].as_object() else {
        // An empty table prints no "routes" key in some versions.
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (prefix, paths) in routes {
        let net = parse_prefix(prefix)?;
        for p in paths.as_array().into_iter().flatten() {
            if p.get("aspath").is_none() && p.get("nexthops").is_none() {
                continue; // the per-prefix header element
            }
            let mut r = Route::empty(net);
            r.peer = parse_ip(&p["peer"]["peerId"]);
            r.as_path = p["aspath"]["segments"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|s| {
                    s["list"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(u32_of)
                })
                .collect();
            r.origin = p["origin"].as_str().and_then(|s| s.parse().ok());
            r.med = u32_of(&p["metric"]);
            r.local_pref = u32_of(&p["locPrf"]);
            r.next_hop = p["nexthops"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|nh| nh["scope"].as_str() != Some("link-local"))
                .find_map(|nh| parse_ip(&nh["ip"]));
            for c in p["community"]["list"].as_array().into_iter().flatten() {
                if let Some(s) = c.as_str() {
                    r.communities.push(s.parse()?);
                }
            }
            for c in p["largeCommunity"]["list"].as_array().into_iter().flatten() {
                if let Some(s) = c.as_str() {
                    r.large_communities.push(s.parse()?);
                }
            }
            r.stale = p["stale"].as_bool().unwrap_or(false);
            r.best = p["bestpath"]["overall"].as_bool().unwrap_or(false);
            out.push(r);
        }
    }
    Ok(out)
}

/// Parses `show bgp ... neighbors X advertised-routes json` (FRR shows no communities there).
pub fn parse_advertised(v: &Value) -> Result<Vec<Route>> {
    let mut out = Vec::new();
    for (prefix, a) in v["advertisedRoutes"].as_object().into_iter().flatten() {
        let mut r = Route::empty(parse_prefix(prefix)?);
        r.next_hop = parse_ip(&a["nextHop"]);
        r.med = u32_of(&a["metric"]);
        r.local_pref = u32_of(&a["locPrf"]);
        r.as_path = a["path"]
            .as_str()
            .unwrap_or("")
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        r.origin = a["bgpOriginCode"].as_str().and_then(|s| s.parse().ok());
        r.best = true;
        out.push(r);
    }
    Ok(out)
}

impl Frr {
    /// Writes the config into NODE_DIR/frr/, starts bgpd in `node` and waits until vtysh answers.
    pub fn start(lab: &Lab, node: &Node, config: &RouterConfig) -> Result<Frr> {
        let dir = node.dir().join("frr");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let conf = dir.join("bgpd.conf");
        let log = dir.join("bgpd.log");
        std::fs::write(&conf, render_config(config, &log.to_string_lossy()))
            .with_context(|| format!("writing {}", conf.display()))?;
        let mut cmd = node.command(BGPD);
        cmd.args(["-Z", "-n", "-S", "-P", "0", "-f"])
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("bgpd.pid"))
            .arg("--vty_socket")
            .arg(&dir)
            .arg("-p")
            .arg(config.listen_port.to_string());
        let process = lab.spawn(node, "bgpd", cmd)?;
        lab.register_log(&format!("bgpd@{} log", node.name()), &log);
        let frr = Frr {
            node: node.clone(),
            dir,
            config: config.clone(),
            process,
            next_route_map: AtomicU32::new(config.announce.len() as u32),
        };
        frr.wait("vtysh to answer", READY_TIMEOUT, |f| {
            f.vtysh_json("show bgp summary json").map(Check::Done)
        })?;
        Ok(frr)
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    pub fn config(&self) -> &RouterConfig {
        &self.config
    }

    /// bgpd's log file (neighbor events and NOTIFICATIONs are logged there).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("bgpd.log")
    }

    /// Runs one vtysh command; Err if vtysh fails or prints an error (`% ...`).
    pub fn vtysh(&self, command: &str) -> Result<String> {
        self.vtysh_many(&[command])
    }

    /// Runs several `-c` commands in one vtysh call (e.g. `configure terminal`, then lines).
    pub fn vtysh_many(&self, commands: &[&str]) -> Result<String> {
        let sock = self.dir.to_string_lossy().into_owned();
        let mut argv = vec![VTYSH, "--vty_socket", sock.as_str()];
        for c in commands {
            argv.push("-c");
            argv.push(c);
        }
        let out = self.node.run(&argv)?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() || stdout.lines().any(|l| l.starts_with('%')) {
            bail!(
                "vtysh {commands:?} on {} failed ({}): {}{}",
                self.label(),
                out.status,
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(stdout)
    }

    /// Runs a vtysh `... json` command and parses its output.
    pub fn vtysh_json(&self, command: &str) -> Result<Value> {
        let text = self.vtysh(command)?;
        serde_json::from_str(&text)
            .with_context(|| format!("vtysh {command:?} printed non-JSON: {text}"))
    }

    /// `configure terminal`, the lines, `end`.
    pub fn configure(&self, lines: &[&str]) -> Result<String> {
        let mut all = vec!["configure terminal"];
        all.extend_from_slice(lines);
        all.push("end");
        self.vtysh_many(&all)
    }

    /// Originates `a` at run time (route-map for its attributes + `network`).
    pub fn announce(&self, a: &Announce) -> Result<()> {
        let name = format!(
            "ANN-{}",
            self.next_route_map.fetch_add(1, Ordering::Relaxed)
        );
        let rm = route_map_lines(&name, a);
        let asn = format!("router bgp {}", self.config.asn);
        let af = format!("address-family {} unicast", afi(a.family()));
        let net = format!("network {} route-map {name}", a.prefix);
        let mut lines: Vec<&str> = rm.iter().map(|s| s.trim()).collect();
        lines.extend([asn.as_str(), af.as_str(), net.as_str()]);
        self.configure(&lines)?;
        Ok(())
    }

    /// Stops originating `prefix` (`no network`).
    pub fn withdraw(&self, prefix: &str) -> Result<()> {
        let net = parse_prefix(prefix)?;
        let asn = format!("router bgp {}", self.config.asn);
        let af = format!("address-family {} unicast", afi(Family::of(&net)));
        let no = format!("no network {net}");
        self.configure(&[&asn, &af, &no])?;
        Ok(())
    }

    /// What FRR advertises to `neighbor` (prefix, next hop, AS path, MED, local-pref).
    pub fn advertised(&self, neighbor: IpAddr, family: Family) -> Result<Vec<Route>> {
        let v = self.vtysh_json(&format!(
            "show bgp {} unicast neighbors {neighbor} advertised-routes json",
            afi(family)
        ))?;
        parse_advertised(&v)
    }

    /// Paths received from `neighbor` (after inbound policy) with full attributes.
    pub fn received(&self, neighbor: IpAddr, family: Family) -> Result<Vec<Route>> {
        Ok(self
            .routes(family)?
            .into_iter()
            .filter(|r| r.peer == Some(neighbor))
            .collect())
    }
}

impl BgpRouter for Frr {
    fn label(&self) -> String {
        format!("frr@{}", self.node.name())
    }

    fn peers(&self) -> Result<Vec<PeerInfo>> {
        parse_neighbors(&self.vtysh_json("show bgp neighbors json")?)
    }

    fn routes(&self, family: Family) -> Result<Vec<Route>> {
        parse_routes_detail(
            &self.vtysh_json(&format!("show bgp {} unicast json detail", afi(family)))?,
        )
    }

    fn log_tail(&self, lines: usize) -> String {
        tail_file(&self.log_path(), lines)
    }

    fn process(&self) -> &Process {
        &self.process
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::{Community, LargeCommunity, Neighbor};

    #[test]
    fn config_has_policy_escape_timers_and_families() {
        let c = RouterConfig::new(65001, "10.99.0.1".parse().unwrap())
            .graceful_restart(true)
            .neighbor(
                Neighbor::new("10.99.0.2".parse().unwrap(), 65002)
                    .password("s3cret")
                    .passive(),
            )
            .neighbor(Neighbor::new("fd00:99::2".parse().unwrap(), 65003).route_reflector_client())
            .announce(Announce::new("198.51.100.0/24").med(5).community(65001, 7));
        let t = render_config(&c, "/x/bgpd.log");
        for want in [
            "router bgp 65001",
            " no bgp ebgp-requires-policy",
            " bgp graceful-restart",
            " neighbor 10.99.0.2 timers 3 9",
            " neighbor 10.99.0.2 timers connect 2",
            " neighbor 10.99.0.2 password s3cret",
            " neighbor 10.99.0.2 passive",
            "  network 198.51.100.0/24 route-map ANN-0",
            " set metric 5",
            " set community 65001:7",
            "  neighbor fd00:99::2 route-reflector-client",
        ] {
            assert!(t.lines().any(|l| l == want), "missing {want:?} in\n{t}");
        }
        // fd00:99::2 carries only IPv6: it must not be activated for IPv4.
        let v4 = t.split(" address-family ipv4 unicast").nth(1).unwrap();
        let v4 = v4.split(" exit-address-family").next().unwrap();
        assert!(!v4.contains("fd00:99::2"), "{v4}");
    }

    #[test]
    fn parses_detail_json_captured_from_frr_8_4() {
        // Trimmed from `show bgp ipv4 unicast json detail` on FRR 8.4.4 peering with BIRD 2.0.12.
        let v: Value = serde_json::from_str(r#"{"routes": {
          "10.2.0.0/24": [{"prefix":"10.2.0.0/24","version":2,"advertisedTo":{"10.99.250.2":{}}},
            {"aspath":{"string":"65002","segments":[{"type":"as-sequence","list":[65002]}],"length":1},
             "origin":"IGP","valid":true,"bestpath":{"overall":true},"metric":5,
             "community":{"string":"65002:9 no-export","list":["65002:9","no-export"]},
             "largeCommunity":{"string":"65002:1:1","list":["65002:1:1"]},
             "nexthops":[{"ip":"10.99.250.2","afi":"ipv4","used":true}],
             "peer":{"peerId":"10.99.250.2","routerId":"10.99.250.2","type":"external"}}],
          "10.1.0.0/24": [{"prefix":"10.1.0.0/24"},
            {"aspath":{"string":"Local","segments":[],"length":0},"origin":"IGP","metric":33,
             "stale":true,"nexthops":[{"ip":"0.0.0.0"}],"peer":{"peerId":"0.0.0.0"}}]}}"#)
        .unwrap();
        let mut routes = parse_routes_detail(&v).unwrap();
        routes.sort_by_key(|r| r.prefix);
        assert_eq!(routes.len(), 2);
        let local = &routes[0];
        assert_eq!(
            (local.peer, local.next_hop, local.med, local.stale),
            (None, None, Some(33), true)
        );
        let r = &routes[1];
        assert_eq!(r.peer, Some("10.99.250.2".parse().unwrap()));
        assert_eq!(r.next_hop, Some("10.99.250.2".parse().unwrap()));
        assert_eq!(r.as_path, vec![65002]);
        assert_eq!(
            r.communities,
            vec![Community(65002, 9), Community(65535, 65281)]
        );
        assert_eq!(r.large_communities, vec![LargeCommunity(65002, 1, 1)]);
        assert!(r.best && !r.stale);
    }
}
