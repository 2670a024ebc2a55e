//! BIRD 2 driver: renders `RouterConfig` into bird.conf (static protocols for the announced
//! prefixes, one `protocol bgp nI` per neighbor, attributes set in the export filter so BIRD
//! keeps MED on eBGP), runs `bird -f` in a namespace and parses `birdc` text output.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::bgp::{
    parse_prefix, Announce, BgpRouter, Community, Family, LargeCommunity, PeerInfo, Route,
    RouterConfig, SessionState,
};
use crate::lab::{Lab, Node};
use crate::process::{tail_file, Process};
use crate::wait::Check;

pub const BIRD: &str = "bird";
pub const BIRDC: &str = "birdc";
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A running BIRD 2.
pub struct Bird {
    node: Node,
    dir: PathBuf,
    config: Mutex<RouterConfig>,
    process: Process,
}

/// BIRD's protocol name for neighbor number `i` of the config.
pub fn protocol_name(i: usize) -> String {
    format!("n{i}")
}

fn channel(family: Family) -> &'static str {
    match family {
        Family::Ipv4Unicast => "ipv4",
        Family::Ipv6Unicast => "ipv6",
    }
}

fn attrs_function(family: Family, announces: &[&Announce]) -> Option<String> {
    let mut body = String::new();
    for a in announces {
        let mut sets = Vec::new();
        if let Some(m) = a.med {
            sets.push(format!("bgp_med = {m};"));
        }
        if let Some(lp) = a.local_pref {
            sets.push(format!("bgp_local_pref = {lp};"));
        }
        for c in &a.communities {
            sets.push(format!("bgp_community.add(({},{}));", c.0, c.1));
        }
        for c in &a.large_communities {
            sets.push(format!(
                "bgp_large_community.add(({},{},{}));",
                c.0, c.1, c.2
            ));
        }
        if let Some(nh) = a.next_hop {
            sets.push(format!("bgp_next_hop = {nh};"));
        }
        if !sets.is_empty() {
            body.push_str(&format!(
                "  if net = {} then {{ {} }}\n",
                a.prefix,
                sets.join(" ")
            ));
        }
    }
    (!body.is_empty()).then(|| format!("function lab_attrs_{}() {{\n{body}}}\n", channel(family)))
}

/// The bird.conf for `config`, logging to `log`.
pub fn render_config(config: &RouterConfig, log: &str) -> Result<String> {
    if config.listen_port != 179 {
        bail!(
            "BIRD driver: listen_port {} not supported (BIRD listens on 179)",
            config.listen_port
        );
    }
    let mut out = format!(
        "router id {};\nlog \"{log}\" all;\ndebug protocols {{ states }};\ntimeformat protocol iso long;\nprotocol device {{ scan time 10; }}\n",
        config.router_id
    );
    let mut has_attrs = HashMap::new();
    for family in [Family::Ipv4Unicast, Family::Ipv6Unicast] {
        let announces: Vec<&Announce> = config
            .announce
            .iter()
            .filter(|a| a.family() == family)
            .collect();
        if announces.is_empty() {
            continue;
        }
        if let Some(f) = attrs_function(family, &announces) {
            out.push_str(&f);
            has_attrs.insert(family, true);
        }
        out.push_str(&format!(
            "protocol static ann_{} {{\n  {};\n",
            channel(family),
            channel(family)
        ));
        for a in &announces {
            out.push_str(&format!("  route {} unreachable;\n", a.prefix));
        }
        out.push_str("}\n");
    }
    for (i, n) in config.neighbors.iter().enumerate() {
        out.push_str(&format!("protocol bgp {} {{\n", protocol_name(i)));
        match n.local_address {
            Some(a) => out.push_str(&format!("  local {a} as {};\n", config.asn)),
            None => out.push_str(&format!("  local as {};\n", config.asn)),
        }
        let port = if n.port != 179 {
            format!(" port {}", n.port)
        } else {
            String::new()
        };
        out.push_str(&format!("  neighbor {}{port} as {};\n", n.address, n.asn));
        out.push_str(&format!(
            "  hold time {}; keepalive time {}; connect retry time {};\n",
            n.hold_time,
            n.keepalive_secs(),
            n.connect_retry
        ));
        if n.passive {
            out.push_str("  passive on;\n");
        }
        if let Some(p) = &n.password {
            out.push_str(&format!("  password \"{}\";\n", p.replace('"', "\\\"")));
        }
        if let Some(ttl) = n.multihop {
            out.push_str(&format!("  multihop {ttl};\n"));
        }
        if config.graceful_restart {
            out.push_str(&format!(
                "  graceful restart on;\n  graceful restart time {};\n",
                config.restart_time
            ));
        }
        if n.route_reflector_client {
            out.push_str("  rr client;\n");
        }
        for family in &n.families {
            let ch = channel(*family);
            let export = if has_attrs.contains_key(family) {
                format!("export filter {{ lab_attrs_{ch}(); accept; }};")
            } else {
                "export all;".into()
            };
            let add_path = match (n.add_path.receives(), n.add_path.sends()) {
                (true, true) => " add paths on;",
                (true, false) => " add paths rx;",
                (false, true) => " add paths tx;",
                (false, false) => "",
            };
            out.push_str(&format!("  {ch} {{ import all; {export}{add_path} }};\n"));
        }
        out.push_str("}\n");
    }
    for line in &config.extra {
        out.push_str(line);
        out.push('\n');
    }
    Ok(out)
}

fn write_config(dir: &std::path::Path, config: &RouterConfig) -> Result<()> {
    let conf = dir.join("bird.conf");
    let log = dir.join("bird.log");
    std::fs::write(&conf, render_config(config, &log.to_string_lossy())?)
        .with_context(|| format!("writing {}", conf.display()))
}

/// One protocol block of `show protocols all`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BirdProtocol {
    pub name: String,
    pub proto: String,
    /// BIRD's protocol state column: up, start, down...
    pub proto_state: String,
    /// The "BGP state:" line (BGP protocols only).
    pub bgp_state: Option<String>,
    pub neighbor_address: Option<IpAddr>,
    pub neighbor_as: Option<u32>,
    pub last_error: Option<String>,
    pub imported: Option<u64>,
}

/// Parses `birdc show protocols all`.
pub fn parse_protocols(text: &str) -> Vec<BirdProtocol> {
    let mut out: Vec<BirdProtocol> = Vec::new();
    for line in text.lines() {
        if line.starts_with("BIRD ") || line.starts_with("Name ") || line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(char::is_whitespace) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() >= 4 {
                out.push(BirdProtocol {
                    name: f[0].into(),
                    proto: f[1].into(),
                    proto_state: f[3].into(),
                    bgp_state: None,
                    neighbor_address: None,
                    neighbor_as: None,
                    last_error: None,
                    imported: None,
                });
            }
            continue;
        }
        let Some(p) = out.last_mut() else { continue };
        let Some((key, value)) = line.trim().split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "BGP state" => p.bgp_state = Some(value.into()),
            "Neighbor address" => p.neighbor_address = value.parse().ok(),
            "Neighbor AS" => p.neighbor_as = value.parse().ok(),
            "Last error" => p.last_error = Some(value.into()),
            "Routes" => {
                p.imported = p
                    .imported
                    .or_else(|| value.split_whitespace().next().and_then(|n| n.parse().ok()))
            }
            _ => {}
        }
    }
    out
}

/// Parses the `(a,b)` / `(a, b, c)` groups of a BGP.community / BGP.large_community line.
fn parse_groups(value: &str) -> Vec<Vec<u32>> {
    value
        .split('(')
        .skip(1)
        .filter_map(|g| g.split(')').next())
        .map(|g| g.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .collect()
}

/// Parses `birdc show route all [table T]`. `peer_of` maps a protocol name to its neighbor.
pub fn parse_routes(text: &str, peer_of: &dyn Fn(&str) -> Option<IpAddr>) -> Result<Vec<Route>> {
    let mut out: Vec<Route> = Vec::new();
    let mut prefix = None;
    for line in text.lines() {
        if line.starts_with("BIRD ") || line.starts_with("Table ") || line.trim().is_empty() {
            continue;
        }
        if line.starts_with('\t') {
            let Some(r) = out.last_mut() else { continue };
            let Some((key, value)) = line.trim().split_once(':') else {
                continue;
            };
            let value = value.trim();
            match key {
                "BGP.origin" => r.origin = value.parse().ok(),
                "BGP.as_path" => {
                    r.as_path = value
                        .split(|c: char| c.is_whitespace() || c == '{' || c == '}' || c == ',')
                        .filter_map(|x| x.parse().ok())
                        .collect()
                }
                "BGP.next_hop" => {
                    r.next_hop = value
                        .split_whitespace()
                        .filter_map(|x| x.parse::<IpAddr>().ok())
                        .find(|ip| !ip.is_unspecified())
                }
                "BGP.med" => r.med = value.parse().ok(),
                "BGP.local_pref" => r.local_pref = value.parse().ok(),
                "BGP.community" => {
                    r.communities = parse_groups(value)
                        .into_iter()
                        .filter_map(|g| match g[..] {
                            [a, b] => {
                                Some(Community(u16::try_from(a).ok()?, u16::try_from(b).ok()?))
                            }
                            _ => None,
                        })
                        .collect()
                }
                "BGP.large_community" => {
                    r.large_communities = parse_groups(value)
                        .into_iter()
                        .filter_map(|g| match g[..] {
                            [a, b, c] => Some(LargeCommunity(a, b, c)),
                            _ => None,
                        })
                        .collect()
                }
                _ => {}
            }
            continue;
        }
        let rest = if line.starts_with(' ') {
            line.trim() // another path for the same prefix
        } else {
            let (p, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            prefix = Some(parse_prefix(p)?);
            rest.trim()
        };
        let Some(net) = prefix else {
            bail!("BIRD route line before any prefix: {line:?}");
        };
        let Some((_, after_bracket)) = rest.split_once('[') else {
            bail!("BIRD route line without [protocol ...]: {line:?}");
        };
        let proto = after_bracket
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_end_matches(']');
        let mut r = Route::empty(net);
        r.peer = peer_of(proto);
        r.best = after_bracket
            .split_once(']')
            .is_some_and(|(_, tail)| tail.trim_start().starts_with('*'));
        out.push(r);
    }
    Ok(out)
}

impl Bird {
    /// Writes the config into NODE_DIR/bird/, starts BIRD in `node` and waits until birdc answers.
    pub fn start(lab: &Lab, node: &Node, config: &RouterConfig) -> Result<Bird> {
        let dir = node.dir().join("bird");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        write_config(&dir, config)?;
        let mut cmd = node.command(BIRD);
        cmd.arg("-f")
            .arg("-c")
            .arg(dir.join("bird.conf"))
            .arg("-s")
            .arg(dir.join("bird.ctl"))
            .arg("-P")
            .arg(dir.join("bird.pid"));
        let process = lab.spawn(node, "bird", cmd)?;
        lab.register_log(&format!("bird@{} log", node.name()), &dir.join("bird.log"));
        let bird = Bird {
            node: node.clone(),
            dir,
            config: Mutex::new(config.clone()),
            process,
        };
        bird.wait("birdc to answer", READY_TIMEOUT, |b| {
            let s = b.birdc("show status")?;
            Ok(if s.contains("Daemon is up") {
                Check::Done(())
            } else {
                Check::NotYet(s)
            })
        })?;
        Ok(bird)
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("bird.ctl")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("bird.log")
    }

    /// The BIRD protocol name of the session with `neighbor` (for `birdc disable nI` etc.).
    pub fn protocol_of(&self, neighbor: IpAddr) -> Option<String> {
        let config = self.config.lock().unwrap_or_else(|e| e.into_inner());
        config
            .neighbors
            .iter()
            .position(|n| n.address == neighbor)
            .map(protocol_name)
    }

    /// Runs one birdc command (e.g. `show route all`, `disable n0`, `reload in n0`).
    pub fn birdc(&self, command: &str) -> Result<String> {
        let sock = self.socket().to_string_lossy().into_owned();
        let mut argv = vec![BIRDC, "-s", sock.as_str()];
        argv.extend(command.split_whitespace());
        let out = self.node.run(&argv)?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() || stdout.contains("syntax error") {
            bail!(
                "birdc {command:?} on {} failed ({}): {}{}",
                self.label(),
                out.status,
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(stdout)
    }

    /// Parsed `show protocols all`.
    pub fn protocols(&self) -> Result<Vec<BirdProtocol>> {
        Ok(parse_protocols(&self.birdc("show protocols all")?))
    }

    fn reconfigure(&self, change: impl FnOnce(&mut RouterConfig)) -> Result<()> {
        let mut config = self.config.lock().unwrap_or_else(|e| e.into_inner());
        let mut new = config.clone();
        change(&mut new);
        write_config(&self.dir, &new)?;
        let reply = self.birdc("configure")?;
        if !reply.contains("Reconfigured") && !reply.contains("Reconfiguration in progress") {
            bail!("birdc configure on {}: {reply}", self.label());
        }
        *config = new;
        Ok(())
    }

    /// Originates `a` at run time (rewrites the config, `birdc configure`).
    pub fn announce(&self, a: &Announce) -> Result<()> {
        self.reconfigure(|c| c.announce.push(a.clone()))
    }

    /// Stops originating `prefix`.
    pub fn withdraw(&self, prefix: &str) -> Result<()> {
        let net = parse_prefix(prefix)?;
        self.reconfigure(|c| c.announce.retain(|a| a.prefix != net))
    }

    /// Routes BIRD exports to `neighbor` (`show route export nI`; attributes as in the table).
    pub fn advertised(&self, neighbor: IpAddr, family: Family) -> Result<Vec<Route>> {
        let Some(proto) = self.protocol_of(neighbor) else {
            bail!("{}: no neighbor {neighbor} configured", self.label());
        };
        let text = self.birdc(&format!(
            "show route all table master{} export {proto}",
            &channel(family)[3..]
        ))?;
        parse_routes(&text, &|_| None)
    }

    fn peer_map(&self) -> HashMap<String, IpAddr> {
        let config = self.config.lock().unwrap_or_else(|e| e.into_inner());
        config
            .neighbors
            .iter()
            .enumerate()
            .map(|(i, n)| (protocol_name(i), n.address))
            .collect()
    }
}

impl BgpRouter for Bird {
    fn label(&self) -> String {
        format!("bird@{}", self.node.name())
    }

    fn peers(&self) -> Result<Vec<PeerInfo>> {
        let mut out = Vec::new();
        for p in self.protocols()?.into_iter().filter(|p| p.proto == "BGP") {
            let Some(address) = p.neighbor_address else {
                continue;
            };
            let state = match &p.bgp_state {
                Some(s) => s
                    .parse::<SessionState>()
                    .with_context(|| format!("protocol {}", p.name))?,
                None => SessionState::Idle,
            };
            out.push(PeerInfo {
                address,
                remote_asn: p.neighbor_as,
                state,
                prefixes_received: p.imported,
                last_error: p.last_error,
            });
        }
        Ok(out)
    }

    /// Every path in master4/master6. BIRD 2.0 does not print a stale flag: a BGP path counts as
    /// stale here while its session is not Established (it can only survive that through
    /// graceful restart).
    fn routes(&self, family: Family) -> Result<Vec<Route>> {
        let peers = self.peer_map();
        let text = self.birdc(&format!(
            "show route all table master{}",
            &channel(family)[3..]
        ))?;
        let mut routes = parse_routes(&text, &|proto| peers.get(proto).copied())?;
        let states: HashMap<IpAddr, SessionState> = self
            .peers()?
            .into_iter()
            .map(|p| (p.address, p.state))
            .collect();
        for r in &mut routes {
            if let Some(peer) = r.peer {
                r.stale = states
                    .get(&peer)
                    .is_some_and(|s| *s != SessionState::Established);
            }
        }
        Ok(routes)
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

    #[test]
    fn parses_show_route_all_captured_from_bird_2_0_12() {
        let text = [
            "BIRD 2.0.12 ready.",
            "Table master4:",
            "10.1.0.0/24          unicast [n0 05:34:17.664] * (100) [AS65001i]",
            "\tvia 10.99.250.1 on eth0",
            "\tType: BGP univ",
            "\tBGP.origin: IGP",
            "\tBGP.as_path: 65001 65010",
            "\tBGP.next_hop: 10.99.250.1",
            "\tBGP.med: 33",
            "\tBGP.local_pref: 100",
            "\tBGP.community: (65001,7) (65001,8)",
            "\tBGP.large_community: (65001, 1, 2)",
            "                     unicast [n1 05:34:18.000] (100) [AS65003i]",
            "\tBGP.as_path: 65003",
            "\tBGP.next_hop: fd00:99::3 fe80::1",
            "10.2.0.0/24          unreachable [ann_ipv4 05:34:15.558] * (200)",
            "\tType: static univ",
        ]
        .join("\n");
        let text = text.as_str();
        let peers: HashMap<String, IpAddr> =
            [("n0".to_string(), "10.99.250.1".parse().unwrap())].into();
        let routes = parse_routes(text, &|p| peers.get(p).copied()).unwrap();
        assert_eq!(routes.len(), 3);
        let r = &routes[0];
        assert_eq!(r.prefix.to_string(), "10.1.0.0/24");
        assert_eq!(r.peer, Some("10.99.250.1".parse().unwrap()));
        assert_eq!(r.as_path, vec![65001, 65010]);
        assert_eq!((r.med, r.local_pref, r.best), (Some(33), Some(100), true));
        assert_eq!(
            r.communities,
            vec![Community(65001, 7), Community(65001, 8)]
        );
        assert_eq!(r.large_communities, vec![LargeCommunity(65001, 1, 2)]);
        let alt = &routes[1];
        assert_eq!((alt.prefix, alt.best, alt.peer), (r.prefix, false, None));
        assert_eq!(alt.next_hop, Some("fd00:99::3".parse().unwrap()));
        assert_eq!((routes[2].peer, routes[2].best), (None, true));
    }

    #[test]
    fn parses_show_protocols_all() {
        let text = [
            "BIRD 2.0.12 ready.",
            "Name       Proto      Table      State  Since         Info",
            "device1    Device     ---        up     05:34:15.558  ",
            "",
            "n0         BGP        ---        start  05:34:33.402  Active        Socket: Connection closed",
            "  BGP state:          Active",
            "    Neighbor address: 10.99.250.1",
            "    Neighbor AS:      65001",
            "    Local AS:         65002",
            "    Last error:       Socket: Connection closed",
        ]
        .join("\n");
        let text = text.as_str();
        let p = parse_protocols(text);
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].name, "n0");
        assert_eq!(p[1].bgp_state.as_deref(), Some("Active"));
        assert_eq!(p[1].neighbor_address, Some("10.99.250.1".parse().unwrap()));
        assert_eq!(p[1].neighbor_as, Some(65001));
        assert_eq!(
            p[1].last_error.as_deref(),
            Some("Socket: Connection closed")
        );
    }
}
