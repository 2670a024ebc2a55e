//! `bgplane agent` driver: renders a [`BgplaneConfig`] into the agent's MetalLB-format YAML,
//! runs the agent in a namespace with its API socket in the node's directory, and reads its
//! state through the CLI (`bgplane peers|routes ... -o json --socket S`).
//!
//! The binary is `$BGPLANE_BIN`, or `target/debug/bgplane` built once per test binary with
//! `cargo build -p speaker --bin bgplane` (see [`bgplane_bin`]).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{anyhow, ensure, Context, Result};
use serde_json::Value;

use crate::bgp::Family;
use crate::lab::{Lab, Node};
use crate::process::Process;
use crate::wait::{wait_for, Check};

/// The `bgplane` binary: `$BGPLANE_BIN`, or `target/debug/bgplane` (under `$CARGO_TARGET_DIR`
/// if set) built now with cargo, once per process; a failed build is remembered too.
pub fn bgplane_bin() -> Result<PathBuf> {
    static BIN: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("BGPLANE_BIN") {
            return Ok(PathBuf::from(p));
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .ok_or("no workspace root above interop-tests")?
            .to_path_buf();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-q", "-p", "speaker", "--bin", "bgplane"])
            .current_dir(&root)
            .status()
            .map_err(|e| format!("cargo build: {e}"))?;
        if !status.success() {
            return Err(format!("cargo build -p speaker failed: {status}"));
        }
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        Ok(target.join("debug").join("bgplane"))
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

/// How the agent treats the TTL of one peer (the `peers:` keys it sets).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ttl {
    /// Nothing set: eBGP single hop, TTL 1.
    #[default]
    Default,
    /// `ebgp-multihop: true`, with `ebgp-multihop-ttl` when given (else 255).
    Multihop(Option<u8>),
    /// `gtsm: true` (RFC 5082), with `gtsm-hops` when given (else 1).
    Gtsm(Option<u8>),
}

/// One `peers:` entry of the agent's config.
#[derive(Clone, Debug)]
pub struct BgplanePeer {
    pub address: IpAddr,
    pub asn: u32,
    /// `source-address`: the agent's address on the session.
    pub source: IpAddr,
    /// `my-asn` for this peer; None: the config's AS.
    pub my_asn: Option<u32>,
    /// `hold-time`, seconds (9 by default, as the lab's routers).
    pub hold_time: u16,
    pub passive: bool,
    pub password: Option<String>,
    /// `graceful-restart: true` with `graceful-restart-time: 30s`.
    pub graceful_restart: bool,
    pub ttl: Ttl,
}

impl BgplanePeer {
    pub fn new(address: IpAddr, asn: u32, source: IpAddr) -> BgplanePeer {
        BgplanePeer {
            address,
            asn,
            source,
            my_asn: None,
            hold_time: 9,
            passive: false,
            password: None,
            graceful_restart: false,
            ttl: Ttl::Default,
        }
    }
    pub fn my_asn(mut self, asn: u32) -> Self {
        self.my_asn = Some(asn);
        self
    }
    pub fn passive(mut self) -> Self {
        self.passive = true;
        self
    }
    pub fn password(mut self, p: &str) -> Self {
        self.password = Some(p.to_string());
        self
    }
    pub fn graceful_restart(mut self) -> Self {
        self.graceful_restart = true;
        self
    }
    pub fn ttl(mut self, ttl: Ttl) -> Self {
        self.ttl = ttl;
        self
    }
}

/// What one agent runs with: the YAML (peers, listen port) and the command line (prefixes to
/// originate, connect retry, log level).
#[derive(Clone, Debug)]
pub struct BgplaneConfig {
    /// `my-asn` of every peer that sets none.
    pub asn: u32,
    pub router_id: IpAddr,
    pub peers: Vec<BgplanePeer>,
    pub listen_port: u16,
    /// `--originate P` each, announced to every peer.
    pub originate: Vec<String>,
    /// `--connect-retry` seconds (1 by default: test-friendly).
    pub connect_retry: u32,
    /// `--log` level ("debug" by default).
    pub log: String,
}

impl BgplaneConfig {
    pub fn new(asn: u32, router_id: IpAddr) -> BgplaneConfig {
        BgplaneConfig {
            asn,
            router_id,
            peers: Vec::new(),
            listen_port: 179,
            originate: Vec::new(),
            connect_retry: 1,
            log: "debug".into(),
        }
    }
    pub fn peer(mut self, p: BgplanePeer) -> Self {
        self.peers.push(p);
        self
    }
    pub fn peers(mut self, p: impl IntoIterator<Item = BgplanePeer>) -> Self {
        self.peers.extend(p);
        self
    }
    pub fn originate(mut self, prefix: &str) -> Self {
        self.originate.push(prefix.to_string());
        self
    }
}

/// The agent's YAML for `config`.
pub fn render_config(config: &BgplaneConfig) -> String {
    let mut y = String::from("peers:\n");
    for p in &config.peers {
        y += &format!(
            "- my-asn: {}\n  peer-asn: {}\n  peer-address: \"{}\"\n  source-address: \"{}\"\n  router-id: {}\n  hold-time: {}s\n",
            p.my_asn.unwrap_or(config.asn),
            p.asn,
            p.address,
            p.source,
            config.router_id,
            p.hold_time
        );
        if p.passive {
            y += "  passive: true\n";
        }
        if let Some(pw) = &p.password {
            y += &format!("  password: {pw}\n");
        }
        if p.graceful_restart {
            y += "  graceful-restart: true\n  graceful-restart-time: 30s\n";
        }
        match p.ttl {
            Ttl::Default => {}
            Ttl::Multihop(ttl) => {
                y += "  ebgp-multihop: true\n";
                if let Some(t) = ttl {
                    y += &format!("  ebgp-multihop-ttl: {t}\n");
                }
            }
            Ttl::Gtsm(hops) => {
                y += "  gtsm: true\n";
                if let Some(h) = hops {
                    y += &format!("  gtsm-hops: {h}\n");
                }
            }
        }
    }
    y += &format!("listen-port: {}\n", config.listen_port);
    y
}

/// Which Adj-RIB `bgplane routes` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rib {
    /// `routes received`: what the peer sent (Adj-RIB-In).
    Received,
    /// `routes advertised`: what the agent sends the peer (Adj-RIB-Out).
    Advertised,
}

/// A running `bgplane agent` in a lab node.
pub struct Bgplane {
    node: Node,
    process: Process,
    socket: PathBuf,
    bin: PathBuf,
    /// How many restarts came before this process (names its output file).
    generation: u32,
}

impl Bgplane {
    /// Writes NODE_DIR/bgplane.yaml and starts the agent in `node` with its API socket at
    /// NODE_DIR/bgplane.sock; output in NODE_DIR/bgplane.out.
    pub fn start(lab: &Lab, node: &Node, config: &BgplaneConfig) -> Result<Bgplane> {
        Bgplane::spawn(lab, node, config, 0)
    }

    /// Starts the agent again in the same node with the same socket path, after this process
    /// is gone (kill9 or terminate first). The restart marker the agent keeps beside its
    /// socket decides what the new one does: left by a killed agent, the start is a graceful
    /// restart (Restart State bit); removed by a clean shutdown, it is a fresh start. `config`
    /// may differ (e.g. fewer originated prefixes). Output in NODE_DIR/bgplane-restartN.out.
    pub fn restart(&self, lab: &Lab, config: &BgplaneConfig) -> Result<Bgplane> {
        ensure!(
            !self.process.is_running(),
            "restart of {} while it still runs: kill9 or terminate it first",
            self.process.name()
        );
        Bgplane::spawn(lab, &self.node, config, self.generation + 1)
    }

    fn spawn(lab: &Lab, node: &Node, config: &BgplaneConfig, generation: u32) -> Result<Bgplane> {
        let bin = bgplane_bin()?;
        let conf = node.dir().join("bgplane.yaml");
        std::fs::write(&conf, render_config(config))
            .with_context(|| format!("writing {}", conf.display()))?;
        let socket = node.dir().join("bgplane.sock");
        let mut cmd = node.command(&bin);
        cmd.arg("agent")
            .arg("--config")
            .arg(&conf)
            .arg("--socket")
            .arg(&socket);
        for o in &config.originate {
            cmd.args(["--originate", o]);
        }
        cmd.arg("--connect-retry")
            .arg(config.connect_retry.to_string())
            .args(["--log", &config.log]);
        let name = match generation {
            0 => "bgplane".to_string(),
            n => format!("bgplane-restart{n}"),
        };
        let process = lab.spawn(node, &name, cmd)?;
        Ok(Bgplane {
            node: node.clone(),
            process,
            socket,
            bin,
            generation,
        })
    }

    pub fn process(&self) -> &Process {
        &self.process
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The API socket (the same path across restarts).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The whole output of this process (its log).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.process.output_path()).unwrap_or_default()
    }

    /// `bgplane ARGS -o json --socket S`, parsed.
    pub fn cli_json(&self, args: &[&str]) -> Result<Value> {
        let out = Command::new(&self.bin)
            .args(args)
            .args(["-o", "json", "--socket"])
            .arg(&self.socket)
            .output()
            .with_context(|| format!("running {} {args:?}", self.bin.display()))?;
        ensure!(
            out.status.success(),
            "bgplane {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .with_context(|| format!("bgplane {args:?} printed no JSON"))
    }

    /// `bgplane peers`: one JSON object per configured peer.
    pub fn peers(&self) -> Result<Vec<Value>> {
        let v = self.cli_json(&["peers"])?;
        match v {
            Value::Array(a) => Ok(a),
            other => Err(anyhow!("bgplane peers is not a list: {other}")),
        }
    }

    /// The `bgplane peers` entry for `address`; Err if there is none.
    pub fn peer(&self, address: IpAddr) -> Result<Value> {
        let peers = self.peers()?;
        peers
            .iter()
            .find(|p| p["peer_address"] == address.to_string())
            .cloned()
            .with_context(|| format!("{address} not in bgplane peers: {peers:?}"))
    }

    /// `bgplane routes received|advertised --peer P --family F`.
    pub fn routes(&self, rib: Rib, peer: IpAddr, family: Family) -> Result<Vec<Value>> {
        let kind = match rib {
            Rib::Received => "received",
            Rib::Advertised => "advertised",
        };
        let family = match family {
            Family::Ipv4Unicast => "ipv4",
            Family::Ipv6Unicast => "ipv6",
        };
        let peer = peer.to_string();
        let v = self.cli_json(&["routes", kind, "--peer", &peer, "--family", family])?;
        match v {
            Value::Array(a) => Ok(a),
            other => Err(anyhow!("bgplane routes {kind} is not a list: {other}")),
        }
    }

    /// The paths for `prefix` in `rib` of `peer`.
    pub fn route(&self, rib: Rib, peer: IpAddr, prefix: &str) -> Result<Vec<Value>> {
        let net: ipnet::IpNet = crate::bgp::parse_prefix(prefix)?;
        Ok(self
            .routes(rib, peer, Family::of(&net))?
            .into_iter()
            .filter(|r| r["prefix"] == net.to_string())
            .collect())
    }

    /// Waits until `bgplane peers` shows `address` in a state `accept` likes; its JSON. The
    /// timeout error shows the last entry and the tail of the agent's output.
    pub fn wait_peer(
        &self,
        what: &str,
        address: IpAddr,
        timeout: Duration,
        accept: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        wait_for(
            &format!("bgplane peer {address}: {what}"),
            timeout,
            || match self.peer(address) {
                Ok(p) if accept(&p) => Check::Done(p),
                Ok(p) => Check::NotYet(format!("{p}\n{}", self.process.output_tail(15))),
                Err(e) => Check::NotYet(format!("{e:#}\n{}", self.process.output_tail(15))),
            },
        )
    }

    /// Waits until the session with `address` is Established; the peer's JSON.
    pub fn wait_established(&self, address: IpAddr, timeout: Duration) -> Result<Value> {
        self.wait_peer("Established", address, timeout, |p| {
            p["state"] == "Established"
        })
    }

    /// Waits until the agent received `prefix` from `from` with a path `accept` likes; its JSON.
    pub fn wait_received(
        &self,
        from: IpAddr,
        prefix: &str,
        timeout: Duration,
        accept: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        wait_for(
            &format!("bgplane received {prefix} from {from}"),
            timeout,
            || match self.route(Rib::Received, from, prefix) {
                Ok(v) => match v.iter().find(|r| accept(r)) {
                    Some(r) => Check::Done(r.clone()),
                    None => Check::NotYet(format!("{v:?}")),
                },
                Err(e) => Check::NotYet(format!("{e:#}")),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_has_every_peer_setting() {
        let a: IpAddr = "10.99.0.1".parse().unwrap();
        let r: IpAddr = "10.99.0.2".parse().unwrap();
        let c = BgplaneConfig::new(4200000001, a)
            .peer(
                BgplanePeer::new(r, 65001, a)
                    .passive()
                    .password("pw")
                    .graceful_restart(),
            )
            .peer(
                BgplanePeer::new(r, 65002, a)
                    .my_asn(65009)
                    .ttl(Ttl::Multihop(Some(2))),
            )
            .peer(BgplanePeer::new(r, 65003, a).ttl(Ttl::Gtsm(None)));
        assert_eq!(
            render_config(&c),
            "peers:\n\
             - my-asn: 4200000001\n  peer-asn: 65001\n  peer-address: \"10.99.0.2\"\n  source-address: \"10.99.0.1\"\n  router-id: 10.99.0.1\n  hold-time: 9s\n  passive: true\n  password: pw\n  graceful-restart: true\n  graceful-restart-time: 30s\n\
             - my-asn: 65009\n  peer-asn: 65002\n  peer-address: \"10.99.0.2\"\n  source-address: \"10.99.0.1\"\n  router-id: 10.99.0.1\n  hold-time: 9s\n  ebgp-multihop: true\n  ebgp-multihop-ttl: 2\n\
             - my-asn: 4200000001\n  peer-asn: 65003\n  peer-address: \"10.99.0.2\"\n  source-address: \"10.99.0.1\"\n  router-id: 10.99.0.1\n  hold-time: 9s\n  gtsm: true\n\
             listen-port: 179\n"
        );
    }
}
