//! ExaBGP 4.2 driver. ExaBGP only connects out. Its `api` process is a small Python read loop
//! (a real one: ExaBGP gives up on helpers that exit) that appends everything ExaBGP reports
//! (JSON: session state changes, received UPDATEs) to received.jsonl, and forwards lines written
//! to the FIFO cmd.fifo to ExaBGP — so routes can be announced and withdrawn at run time.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ipnet::IpNet;
use serde_json::Value;

use crate::bgp::{
    parse_prefix, u32_of, Announce, BgpRouter, Community, Family, LargeCommunity, PeerInfo, Route,
    RouterConfig, SessionState,
};
use crate::lab::{Lab, Node};
use crate::process::{tail_file, Process};
use crate::wait::Check;

pub const EXABGP: &str = "exabgp";
/// The interpreter for the API helper (Debian's, which ExaBGP itself uses).
pub const PYTHON: &str = "/usr/bin/python3";
const READY_TIMEOUT: Duration = Duration::from_secs(20);

const HELPER: &str = r#"# ExaBGP API helper written by the bgplane lab harness.
import os, sys, threading
d = sys.argv[1]
def pump():
    f = os.fdopen(os.open(os.path.join(d, "cmd.fifo"), os.O_RDWR), "r")
    for line in f:
        sys.stdout.write(line)
        sys.stdout.flush()
threading.Thread(target=pump, daemon=True).start()
out = open(os.path.join(d, "received.jsonl"), "a", buffering=1)
open(os.path.join(d, "ready"), "w").close()
for line in sys.stdin:
    out.write(line)
"#;

/// A running ExaBGP.
pub struct ExaBgp {
    node: Node,
    dir: PathBuf,
    config: RouterConfig,
    process: Process,
}

/// The route part of an `announce route ...` / static `route ...` statement.
pub fn route_spec(a: &Announce) -> String {
    let mut s = a.prefix.to_string();
    match a.next_hop {
        Some(nh) => s.push_str(&format!(" next-hop {nh}")),
        None => s.push_str(" next-hop self"),
    }
    if let Some(m) = a.med {
        s.push_str(&format!(" med {m}"));
    }
    if let Some(lp) = a.local_pref {
        s.push_str(&format!(" local-preference {lp}"));
    }
    if !a.communities.is_empty() {
        let c: Vec<String> = a.communities.iter().map(|c| c.to_string()).collect();
        s.push_str(&format!(" community [ {} ]", c.join(" ")));
    }
    if !a.large_communities.is_empty() {
        let c: Vec<String> = a.large_communities.iter().map(|c| c.to_string()).collect();
        s.push_str(&format!(" large-community [ {} ]", c.join(" ")));
    }
    s
}

/// The exabgp.conf for `config`; the helper lives in `dir`.
pub fn render_config(config: &RouterConfig, dir: &str) -> Result<String> {
    let mut o = format!(
        "process lab_helper {{\n    run {PYTHON} {dir}/helper.py {dir};\n    encoder json;\n}}\n"
    );
    for n in &config.neighbors {
        if n.passive {
            bail!(
                "ExaBGP driver: neighbor {}: ExaBGP only connects out, passive is not supported",
                n.address
            );
        }
        if n.route_reflector_client {
            bail!(
                "ExaBGP driver: neighbor {}: route-reflector-client is not supported",
                n.address
            );
        }
        o.push_str(&format!("neighbor {} {{\n", n.address));
        o.push_str(&format!("    router-id {};\n", config.router_id));
        if let Some(a) = n.local_address {
            o.push_str(&format!("    local-address {a};\n"));
        }
        o.push_str(&format!(
            "    local-as {};\n    peer-as {};\n",
            config.asn, n.asn
        ));
        o.push_str(&format!("    hold-time {};\n", n.hold_time));
        if n.port != 179 {
            o.push_str(&format!("    connect {};\n", n.port));
        }
        if let Some(p) = &n.password {
            o.push_str(&format!(
                "    md5-password \"{}\";\n",
                p.replace('"', "\\\"")
            ));
        }
        if let Some(ttl) = n.multihop {
            o.push_str(&format!("    outgoing-ttl {ttl};\n"));
        }
        o.push_str("    family {\n");
        for f in &n.families {
            o.push_str(match f {
                Family::Ipv4Unicast => "        ipv4 unicast;\n",
                Family::Ipv6Unicast => "        ipv6 unicast;\n",
            });
        }
        o.push_str("    }\n    capability {\n        route-refresh;\n");
        if config.graceful_restart {
            o.push_str(&format!(
                "        graceful-restart {};\n",
                config.restart_time
            ));
        }
        match (n.add_path.receives(), n.add_path.sends()) {
            (true, true) => o.push_str("        add-path send/receive;\n"),
            (true, false) => o.push_str("        add-path receive;\n"),
            (false, true) => o.push_str("        add-path send;\n"),
            (false, false) => {}
        }
        o.push_str("    }\n");
        o.push_str(
            "    api {\n        processes [ lab_helper ];\n        neighbor-changes;\n        receive { parsed; update; notification; }\n    }\n",
        );
        let statics: Vec<&Announce> = config
            .announce
            .iter()
            .filter(|a| n.families.contains(&a.family()))
            .collect();
        if !statics.is_empty() {
            o.push_str("    static {\n");
            for a in statics {
                o.push_str(&format!("        route {};\n", route_spec(a)));
            }
            o.push_str("    }\n");
        }
        o.push_str("}\n");
    }
    for line in &config.extra {
        o.push_str(line);
        o.push('\n');
    }
    Ok(o)
}

/// What ExaBGP's JSON API reported, replayed: session states and the routes currently held.
#[derive(Clone, Debug, Default)]
pub struct Received {
    /// Last state per peer ("connected", "up", "down").
    pub states: HashMap<IpAddr, String>,
    /// (peer, prefix) -> route, announcements minus withdrawals, in arrival order.
    pub routes: BTreeMap<(IpAddr, IpNet), Route>,
    /// NOTIFICATIONs received: (peer, code, subcode).
    pub notifications: Vec<(IpAddr, u64, u64)>,
}

fn family_of_key(k: &str) -> Option<Family> {
    match k {
        "ipv4 unicast" => Some(Family::Ipv4Unicast),
        "ipv6 unicast" => Some(Family::Ipv6Unicast),
        _ => None,
    }
}

fn attrs_route(net: IpNet, peer: IpAddr, next_hop: &str, attr: &Value) -> Route {
    let mut r = Route::empty(net);
    r.peer = Some(peer);
    r.best = true;
    r.next_hop = next_hop.parse().ok();
    r.origin = attr["origin"].as_str().and_then(|s| s.parse().ok());
    r.as_path = attr["as-path"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(u32_of)
        .collect();
    r.med = u32_of(&attr["med"]);
    r.local_pref = u32_of(&attr["local-preference"]);
    let nums = |v: &Value| -> Vec<u64> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
            .collect()
    };
    for c in attr["community"].as_array().into_iter().flatten() {
        if let [a, b] = nums(c)[..] {
            if let (Ok(a), Ok(b)) = (u16::try_from(a), u16::try_from(b)) {
                r.communities.push(Community(a, b));
            }
        }
    }
    for c in attr["large-community"].as_array().into_iter().flatten() {
        if let [a, b, c] = nums(c)[..] {
            if let (Ok(a), Ok(b), Ok(c)) = (u32::try_from(a), u32::try_from(b), u32::try_from(c)) {
                r.large_communities.push(LargeCommunity(a, b, c));
            }
        }
    }
    r
}

/// Replays received.jsonl. Non-JSON lines (ExaBGP's "done" acks to commands) are skipped.
pub fn parse_received(text: &str) -> Result<Received> {
    let mut rx = Received::default();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(peer) = v["neighbor"]["address"]["peer"]
            .as_str()
            .and_then(|s| s.parse::<IpAddr>().ok())
        else {
            continue;
        };
        match v["type"].as_str() {
            Some("state") => {
                if let Some(s) = v["neighbor"]["state"].as_str() {
                    rx.states.insert(peer, s.to_string());
                    if s == "down" {
                        rx.routes.retain(|(p, _), _| *p != peer);
                    }
                }
            }
            Some("notification") => {
                let n = &v["neighbor"]["message"]["notification"];
                rx.notifications.push((
                    peer,
                    n["code"].as_u64().unwrap_or(0),
                    n["subcode"].as_u64().unwrap_or(0),
                ));
            }
            Some("update") => {
                let u = &v["neighbor"]["message"]["update"];
                for (fam, per_nh) in u["announce"].as_object().into_iter().flatten() {
                    if family_of_key(fam).is_none() {
                        continue;
                    }
                    for (nh, nlris) in per_nh.as_object().into_iter().flatten() {
                        for n in nlris.as_array().into_iter().flatten() {
                            let Some(p) = n["nlri"].as_str() else {
                                continue;
                            };
                            let net = parse_prefix(p)?;
                            rx.routes
                                .insert((peer, net), attrs_route(net, peer, nh, &u["attribute"]));
                        }
                    }
                }
                for (fam, nlris) in u["withdraw"].as_object().into_iter().flatten() {
                    if family_of_key(fam).is_none() {
                        continue;
                    }
                    for n in nlris.as_array().into_iter().flatten() {
                        if let Some(p) = n["nlri"].as_str() {
                            rx.routes.remove(&(peer, parse_prefix(p)?));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(rx)
}

impl ExaBgp {
    /// Writes config and helper into NODE_DIR/exabgp/, starts ExaBGP in `node` and waits until
    /// its API helper runs (the configuration was loaded).
    pub fn start(lab: &Lab, node: &Node, config: &RouterConfig) -> Result<ExaBgp> {
        let dir = node.dir().join("exabgp");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let d = dir.to_string_lossy().into_owned();
        std::fs::write(dir.join("helper.py"), HELPER).context("writing ExaBGP helper")?;
        std::fs::write(dir.join("received.jsonl"), "").context("creating received.jsonl")?;
        let fifo = std::ffi::CString::new(format!("{d}/cmd.fifo")).context("fifo path")?;
        // SAFETY: plain syscall with a NUL-terminated path.
        if unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) } < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::AlreadyExists {
                return Err(e).context("mkfifo cmd.fifo");
            }
        }
        let _ = std::fs::remove_file(dir.join("ready"));
        let conf = dir.join("exabgp.conf");
        std::fs::write(&conf, render_config(config, &d)?)
            .with_context(|| format!("writing {}", conf.display()))?;
        let mut cmd = node.command(EXABGP);
        cmd.env("exabgp.daemon.user", "root")
            .env("exabgp.daemon.daemonize", "false")
            .env("exabgp.log.destination", dir.join("exabgp.log"))
            .env("exabgp.log.level", "INFO")
            .arg("--root")
            .arg(&dir)
            .arg(&conf);
        let process = lab.spawn(node, "exabgp", cmd)?;
        lab.register_log(
            &format!("exabgp@{} log", node.name()),
            &dir.join("exabgp.log"),
        );
        let e = ExaBgp {
            node: node.clone(),
            dir,
            config: config.clone(),
            process,
        };
        e.wait("the API helper to start", READY_TIMEOUT, |e| {
            Ok(if e.dir.join("ready").exists() {
                Check::Done(())
            } else {
                Check::NotYet("no ready file yet".into())
            })
        })?;
        Ok(e)
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    pub fn config(&self) -> &RouterConfig {
        &self.config
    }

    /// Sends one API command line to ExaBGP (e.g. `announce route ...`, `neighbor X teardown 2`).
    pub fn command(&self, line: &str) -> Result<()> {
        if line.contains('\n') {
            bail!("ExaBGP API command must be one line: {line:?}");
        }
        let path = self.dir.join("cmd.fifo");
        // The helper holds the FIFO open for reading, so this open does not block.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        f.write_all(format!("{line}\n").as_bytes())
            .with_context(|| format!("writing to {}", path.display()))
    }

    /// Announces `a` to every neighbor at run time.
    pub fn announce(&self, a: &Announce) -> Result<()> {
        self.command(&format!("announce route {}", route_spec(a)))
    }

    /// Withdraws `prefix` from every neighbor.
    pub fn withdraw(&self, prefix: &str) -> Result<()> {
        let net = parse_prefix(prefix)?;
        self.command(&format!("withdraw route {net} next-hop self"))
    }

    /// Everything ExaBGP reported so far, replayed.
    pub fn received(&self) -> Result<Received> {
        let path = self.dir.join("received.jsonl");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        parse_received(&text)
    }
}

impl BgpRouter for ExaBgp {
    fn label(&self) -> String {
        format!("exabgp@{}", self.node.name())
    }

    /// States from the JSON API: connected = OpenSent (TCP up), up = Established, down = Idle;
    /// Active for a configured neighbor that has not reported anything yet.
    fn peers(&self) -> Result<Vec<PeerInfo>> {
        let rx = self.received()?;
        Ok(self
            .config
            .neighbors
            .iter()
            .map(|n| {
                let state = match rx.states.get(&n.address).map(String::as_str) {
                    Some("up") => SessionState::Established,
                    Some("connected") => SessionState::OpenSent,
                    Some(_) => SessionState::Idle,
                    None => SessionState::Active,
                };
                PeerInfo {
                    address: n.address,
                    remote_asn: Some(n.asn),
                    state,
                    prefixes_received: Some(
                        rx.routes.keys().filter(|(p, _)| *p == n.address).count() as u64,
                    ),
                    last_error: None,
                }
            })
            .collect())
    }

    /// The routes ExaBGP received (it keeps no RIB; this is the replayed UPDATE stream).
    fn routes(&self, family: Family) -> Result<Vec<Route>> {
        Ok(self
            .received()?
            .routes
            .into_values()
            .filter(|r| Family::of(&r.prefix) == family)
            .collect())
    }

    fn log_tail(&self, lines: usize) -> String {
        tail_file(&self.dir.join("exabgp.log"), lines)
    }

    fn process(&self) -> &Process {
        &self.process
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_json_api_output_captured_from_exabgp_4_2() {
        let text = r#"{ "exabgp": "4.0.1", "type": "state", "neighbor": { "address": { "local": "10.99.250.1", "peer": "10.99.250.2" }, "asn": { "local": 65005, "peer": 65002 } , "state": "up" } }
{ "exabgp": "4.0.1", "type": "update", "neighbor": { "address": { "local": "10.99.250.1", "peer": "10.99.250.2" }, "asn": { "local": 65005, "peer": 65002 } , "direction": "receive", "message": { "update": { "attribute": { "origin": "igp", "as-path": [ 65002, 65010 ], "confederation-path": [], "med": 4, "community": [ [ 65002, 9 ] ], "large-community": [ [ 65002, 1, 2 ] ] }, "announce": { "ipv4 unicast": { "10.99.250.2": [ { "nlri": "10.2.0.0/24" }, { "nlri": "10.3.0.0/24" } ] } } } } } }
done
{ "exabgp": "4.0.1", "type": "update", "neighbor": { "address": { "local": "10.99.250.1", "peer": "10.99.250.2" }, "direction": "receive", "message": { "update": { "withdraw": { "ipv4 unicast": [ { "nlri": "10.3.0.0/24" } ] } } } } }"#;
        let rx = parse_received(text).unwrap();
        let peer: IpAddr = "10.99.250.2".parse().unwrap();
        assert_eq!(rx.states.get(&peer).map(String::as_str), Some("up"));
        let routes: Vec<&Route> = rx.routes.values().collect();
        assert_eq!(routes.len(), 1, "{routes:?}");
        let r = routes[0];
        assert_eq!(r.prefix.to_string(), "10.2.0.0/24");
        assert_eq!((r.next_hop, r.med), (Some(peer), Some(4)));
        assert_eq!(r.as_path, vec![65002, 65010]);
        assert_eq!(r.communities, vec![Community(65002, 9)]);
        assert_eq!(r.large_communities, vec![LargeCommunity(65002, 1, 2)]);
    }

    #[test]
    fn route_spec_has_every_attribute() {
        let a = Announce::new("198.51.100.0/24")
            .med(44)
            .community(65005, 1)
            .large_community(65005, 0, 1);
        assert_eq!(
            route_spec(&a),
            "198.51.100.0/24 next-hop self med 44 community [ 65005:1 ] large-community [ 65005:0:1 ]"
        );
    }
}
