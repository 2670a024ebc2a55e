//! GoBGP driver: renders `RouterConfig` into gobgpd TOML, runs gobgpd with its gRPC API on a
//! unix socket, adds the announced prefixes through `gobgp global rib add`, and parses
//! `gobgp ... -j` JSON.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::bgp::{
    parse_ip, parse_prefix, u32_of, Announce, BgpRouter, Community, Family, LargeCommunity,
    PeerInfo, Route, RouterConfig, SessionState,
};
use crate::lab::{Lab, Node};
use crate::process::Process;
use crate::wait::Check;

pub const GOBGPD: &str = "gobgpd";
pub const GOBGP: &str = "gobgp";
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A running gobgpd.
pub struct GoBgp {
    node: Node,
    dir: PathBuf,
    config: RouterConfig,
    process: Process,
}

fn afi(family: Family) -> &'static str {
    match family {
        Family::Ipv4Unicast => "ipv4",
        Family::Ipv6Unicast => "ipv6",
    }
}

fn q(s: &str) -> String {
    // A JSON string literal is a valid TOML basic string.
    Value::String(s.to_string()).to_string()
}

/// The gobgpd TOML for `config`.
pub fn render_config(config: &RouterConfig) -> String {
    let mut o = format!(
        "[global.config]\n  as = {}\n  router-id = {}\n  port = {}\n",
        config.asn,
        q(&config.router_id.to_string()),
        config.listen_port
    );
    for n in &config.neighbors {
        o.push_str("\n[[neighbors]]\n  [neighbors.config]\n");
        o.push_str(&format!(
            "    neighbor-address = {}\n    peer-as = {}\n",
            q(&n.address.to_string()),
            n.asn
        ));
        if let Some(p) = &n.password {
            o.push_str(&format!("    auth-password = {}\n", q(p)));
        }
        o.push_str(&format!(
            "  [neighbors.timers.config]\n    hold-time = {}\n    keepalive-interval = {}\n    connect-retry = {}\n",
            n.hold_time,
            n.keepalive_secs(),
            n.connect_retry
        ));
        o.push_str("  [neighbors.transport.config]\n");
        if let Some(a) = n.local_address {
            o.push_str(&format!("    local-address = {}\n", q(&a.to_string())));
        }
        if n.passive {
            o.push_str("    passive-mode = true\n");
        }
        if n.port != 179 {
            o.push_str(&format!("    remote-port = {}\n", n.port));
        }
        if let Some(ttl) = n.multihop {
            o.push_str(&format!("  [neighbors.ebgp-multihop.config]\n    enabled = true\n    multihop-ttl = {ttl}\n"));
        }
        if n.route_reflector_client {
            o.push_str(&format!(
                "  [neighbors.route-reflector.config]\n    route-reflector-client = true\n    route-reflector-cluster-id = {}\n",
                q(&config.router_id.to_string())
            ));
        }
        if config.graceful_restart {
            o.push_str(&format!(
                "  [neighbors.graceful-restart.config]\n    enabled = true\n    restart-time = {}\n",
                config.restart_time
            ));
        }
        for f in &n.families {
            o.push_str(&format!(
                "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{}-unicast\"\n",
                afi(*f)
            ));
            if config.graceful_restart {
                o.push_str(
                    "    [neighbors.afi-safis.mp-graceful-restart.config]\n      enabled = true\n",
                );
            }
            if n.add_path.receives() || n.add_path.sends() {
                o.push_str("    [neighbors.afi-safis.add-paths.config]\n");
                if n.add_path.receives() {
                    o.push_str("      receive = true\n");
                }
                if n.add_path.sends() {
                    o.push_str("      send-max = 8\n");
                }
            }
        }
    }
    for line in &config.extra {
        o.push_str(line);
        o.push('\n');
    }
    o
}

/// `gobgp global rib add` arguments for `a` (after `add`).
pub fn rib_add_args(a: &Announce) -> Vec<String> {
    let mut v = vec![a.prefix.to_string(), "-a".into(), afi(a.family()).into()];
    if let Some(nh) = a.next_hop {
        v.extend(["nexthop".into(), nh.to_string()]);
    }
    if let Some(m) = a.med {
        v.extend(["med".into(), m.to_string()]);
    }
    if let Some(lp) = a.local_pref {
        v.extend(["local-pref".into(), lp.to_string()]);
    }
    if !a.communities.is_empty() {
        let c: Vec<String> = a.communities.iter().map(|c| c.to_string()).collect();
        v.extend(["community".into(), c.join(",")]);
    }
    if !a.large_communities.is_empty() {
        let c: Vec<String> = a.large_communities.iter().map(|c| c.to_string()).collect();
        v.extend(["large-community".into(), c.join(",")]);
    }
    v
}

fn session_state(v: &Value) -> Result<SessionState> {
    if let Some(n) = v.as_u64() {
        return Ok(match n {
            2 => SessionState::Connect,
            3 => SessionState::Active,
            4 => SessionState::OpenSent,
            5 => SessionState::OpenConfirm,
            6 => SessionState::Established,
            _ => SessionState::Idle,
        });
    }
    match v.as_str() {
        Some(s) => s.parse(),
        None => Ok(SessionState::Idle),
    }
}

/// Parses `gobgp neighbor -j`.
pub fn parse_neighbors(v: &Value) -> Result<Vec<PeerInfo>> {
    let mut out = Vec::new();
    for n in v.as_array().into_iter().flatten() {
        let st = &n["state"];
        let Some(address) =
            parse_ip(&st["neighbor_address"]).or_else(|| parse_ip(&n["conf"]["neighbor_address"]))
        else {
            continue;
        };
        let received = n["afi_safis"].as_array().map(|a| {
            a.iter()
                .filter_map(|af| af["state"]["accepted"].as_u64())
                .sum()
        });
        out.push(PeerInfo {
            address,
            remote_asn: u32_of(&st["peer_asn"]).or_else(|| u32_of(&n["conf"]["peer_asn"])),
            state: session_state(&st["session_state"])?,
            prefixes_received: received,
            last_error: None,
        });
    }
    Ok(out)
}

fn parse_path(net: ipnet::IpNet, p: &Value) -> Result<Route> {
    let mut r = Route::empty(net);
    r.peer = parse_ip(&p["neighbor-ip"]);
    r.best = p["best"].as_bool().unwrap_or(false);
    r.stale = p["stale"].as_bool().unwrap_or(false);
    for a in p["attrs"].as_array().into_iter().flatten() {
        match a["type"].as_u64() {
            Some(1) => {
                r.origin = a["value"].as_u64().and_then(|o| o.to_string().parse().ok());
            }
            Some(2) => {
                r.as_path = a["as_paths"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|s| {
                        s["asns"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(u32_of)
                    })
                    .collect();
            }
            Some(3) | Some(14) => r.next_hop = r.next_hop.or_else(|| parse_ip(&a["nexthop"])),
            Some(4) => r.med = u32_of(&a["metric"]),
            Some(5) => r.local_pref = u32_of(&a["value"]),
            Some(8) => {
                r.communities = a["communities"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(u32_of)
                    .map(Community::from_u32)
                    .collect();
            }
            Some(32) => {
                r.large_communities = a["value"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| {
                        Some(LargeCommunity(
                            u32_of(&c["ASN"])?,
                            u32_of(&c["LocalData1"])?,
                            u32_of(&c["LocalData2"])?,
                        ))
                    })
                    .collect();
            }
            _ => {}
        }
    }
    Ok(r)
}

/// Parses `gobgp global rib -j` and `gobgp neighbor X adj-in|adj-out -j` (prefix -> paths).
pub fn parse_rib(text: &str) -> Result<Vec<Route>> {
    if text.trim().is_empty() || text.trim() == "null" {
        return Ok(Vec::new());
    }
    let v: Value =
        serde_json::from_str(text).with_context(|| format!("gobgp printed non-JSON: {text}"))?;
    let mut out = Vec::new();
    for (prefix, paths) in v.as_object().into_iter().flatten() {
        let net = parse_prefix(prefix)?;
        for p in paths.as_array().into_iter().flatten() {
            out.push(parse_path(net, p)?);
        }
    }
    Ok(out)
}

impl GoBgp {
    /// Writes the config into NODE_DIR/gobgp/, starts gobgpd in `node`, waits for its API and
    /// adds the configured announcements.
    pub fn start(lab: &Lab, node: &Node, config: &RouterConfig) -> Result<GoBgp> {
        let dir = node.dir().join("gobgp");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let conf = dir.join("gobgpd.toml");
        std::fs::write(&conf, render_config(config))
            .with_context(|| format!("writing {}", conf.display()))?;
        let mut cmd = node.command(GOBGPD);
        cmd.arg("-f")
            .arg(&conf)
            .args(["-p", "-l", "info", "--pprof-disable"])
            .arg(format!(
                "--api-hosts=unix://{}",
                dir.join("api.sock").display()
            ));
        let process = lab.spawn(node, "gobgpd", cmd)?;
        let g = GoBgp {
            node: node.clone(),
            dir,
            config: config.clone(),
            process,
        };
        g.wait("the gobgp API to answer", READY_TIMEOUT, |g| {
            g.gobgp(&["global", "-j"]).map(Check::Done)
        })?;
        for a in &config.announce {
            g.announce(a)?;
        }
        Ok(g)
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    pub fn config(&self) -> &RouterConfig {
        &self.config
    }

    /// Runs `gobgp --target unix://SOCK ARGS`; returns stdout.
    pub fn gobgp(&self, args: &[&str]) -> Result<String> {
        let target = format!("unix://{}", self.dir.join("api.sock").display());
        let mut argv = vec![GOBGP, "--target", target.as_str()];
        argv.extend_from_slice(args);
        self.node.run_ok(&argv)
    }

    /// Originates `a` (`gobgp global rib add`).
    pub fn announce(&self, a: &Announce) -> Result<()> {
        let args = rib_add_args(a);
        let mut argv = vec!["global", "rib", "add"];
        argv.extend(args.iter().map(String::as_str));
        self.gobgp(&argv).map(|_| ())
    }

    /// Stops originating `prefix` (`gobgp global rib del`).
    pub fn withdraw(&self, prefix: &str) -> Result<()> {
        let net = parse_prefix(prefix)?;
        let p = net.to_string();
        self.gobgp(&["global", "rib", "del", &p, "-a", afi(Family::of(&net))])
            .map(|_| ())
    }

    /// What gobgpd advertises to `neighbor` (`neighbor X adj-out`).
    pub fn advertised(&self, neighbor: IpAddr, family: Family) -> Result<Vec<Route>> {
        let n = neighbor.to_string();
        parse_rib(&self.gobgp(&["neighbor", &n, "adj-out", "-a", afi(family), "-j"])?)
    }

    /// What gobgpd received from `neighbor` before policy (`neighbor X adj-in`).
    pub fn received(&self, neighbor: IpAddr, family: Family) -> Result<Vec<Route>> {
        let n = neighbor.to_string();
        parse_rib(&self.gobgp(&["neighbor", &n, "adj-in", "-a", afi(family), "-j"])?)
    }
}

impl BgpRouter for GoBgp {
    fn label(&self) -> String {
        format!("gobgp@{}", self.node.name())
    }

    fn peers(&self) -> Result<Vec<PeerInfo>> {
        let text = self.gobgp(&["neighbor", "-j"])?;
        let v: Value =
            serde_json::from_str(&text).with_context(|| format!("gobgp neighbor -j: {text}"))?;
        let peers = parse_neighbors(&v)?;
        if peers.len() < self.config.neighbors.len() && v.as_array().is_none() {
            bail!("gobgp neighbor -j: unexpected shape: {text}");
        }
        Ok(peers)
    }

    fn routes(&self, family: Family) -> Result<Vec<Route>> {
        parse_rib(&self.gobgp(&["global", "rib", "-a", afi(family), "-j"])?)
    }

    fn log_tail(&self, lines: usize) -> String {
        self.process.output_tail(lines)
    }

    fn process(&self) -> &Process {
        &self.process
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rib_json_captured_from_gobgp_3_10() {
        let text = r#"{"fd00:99:ff::/64":[{"nlri":{"prefix":"fd00:99:ff::/64"},"age":1796103290,"best":true,
          "attrs":[{"type":1,"value":0},{"type":2,"as_paths":[{"segment_type":2,"num":1,"asns":[65002]}]},
          {"type":4,"metric":7},{"type":8,"communities":[4259971081]},
          {"type":32,"value":[{"ASN":65003,"LocalData1":1,"LocalData2":1}]},
          {"type":14,"nexthop":"fd00:99:0:fa00::2","afi":2,"safi":1,"value":[{"prefix":"fd00:99:ff::/64"}]}],
          "stale":false,"source-id":"10.99.250.2","neighbor-ip":"fd00:99:0:fa00::2"}]}"#;
        let r = &parse_rib(text).unwrap()[0];
        assert_eq!(r.as_path, vec![65002]);
        assert_eq!(r.next_hop, Some("fd00:99:0:fa00::2".parse().unwrap()));
        assert_eq!(r.peer, r.next_hop);
        assert_eq!(r.communities, vec![Community(65002, 9)]);
        assert_eq!(r.large_communities, vec![LargeCommunity(65003, 1, 1)]);
        assert_eq!(
            (r.med, r.best, r.origin),
            (Some(7), true, Some(crate::bgp::Origin::Igp))
        );
        assert!(parse_rib("").unwrap().is_empty());
    }

    #[test]
    fn rib_add_args_carry_attributes() {
        let a = Announce::new("2001:db8:2::/48")
            .med(3)
            .community(65002, 1)
            .large_community(1, 2, 3);
        assert_eq!(
            rib_add_args(&a).join(" "),
            "2001:db8:2::/48 -a ipv6 med 3 community 65002:1 large-community 1:2:3"
        );
    }
}
