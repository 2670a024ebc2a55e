//! The session runtime's TTL handling against real FRR: eBGP TTL 1 by default, `ebgp-multihop`
//! (TTL 255) and `ebgp-multihop-ttl N`, and GTSM (RFC 5082: `gtsm`, `gtsm-hops`) with FRR's
//! `ttl-security hops N`, over IPv4 and IPv6 transport, with bgplane connecting and with FRR
//! connecting. FRR sits one hop away (directly linked) or two hops away, behind a plain
//! namespace that forwards (`mid`). Each session uses its own pair of links, so every session
//! of a test runs at once against one agent and one FRR. Needs root and FRR; builds the
//! `bgplane` binary with cargo unless BGPLANE_BIN names one.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use interop_tests::frr::BGPD;
use interop_tests::{
    holds_for, skip_unless, wait_for, BgpRouter, Check, Frr, Lab, Link, Neighbor, Node, Process,
    RouterConfig, SessionState,
};
use serde_json::Value;

const UP: Duration = Duration::from_secs(40);
/// How long a session that must not come up is watched (after the others came up).
const STAYS_DOWN: Duration = Duration::from_secs(8);
const AGENT_AS: u32 = 4200000001;
const FRR_AS: u32 = 65001;

/// The `bgplane` binary: $BGPLANE_BIN, or target/debug/bgplane built now.
fn bgplane_bin() -> Result<PathBuf> {
    static BIN: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("BGPLANE_BIN") {
            return Ok(PathBuf::from(p));
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .ok_or("no workspace root")?
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
    .map_err(|e| anyhow::anyhow!(e))
}

/// How bgplane treats the TTL of one peer (the `peers:` keys it sets).
#[derive(Clone, Copy, Debug)]
enum Ttl {
    /// Nothing set: eBGP single hop, TTL 1.
    Default,
    /// `ebgp-multihop: true`, with `ebgp-multihop-ttl` when given (else 255).
    Multihop(Option<u8>),
    /// `gtsm: true`, with `gtsm-hops` when given (else 1).
    Gtsm(Option<u8>),
}

/// One session of a test: bgplane's address and FRR's, who connects, the TTL settings on
/// both sides, and whether it must come up.
#[derive(Clone, Debug)]
struct Session {
    name: &'static str,
    agent: IpAddr,
    frr: IpAddr,
    agent_passive: bool,
    frr_passive: bool,
    ttl: Ttl,
    /// FRR's side: `ebgp-multihop N`, or `ttl-security hops N`.
    frr_multihop: Option<u8>,
    frr_ttl_security: Option<u8>,
    establishes: bool,
}

impl Session {
    fn agent_yaml(&self, router_id: IpAddr) -> String {
        let mut y = format!(
            "- my-asn: {AGENT_AS}\n  peer-asn: {FRR_AS}\n  peer-address: \"{}\"\n  source-address: \"{}\"\n  router-id: {router_id}\n  hold-time: 9s\n",
            self.frr, self.agent
        );
        if self.agent_passive {
            y += "  passive: true\n";
        }
        match self.ttl {
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
        y
    }

    fn frr_neighbor(&self) -> Neighbor {
        let mut n = Neighbor::new(self.agent, AGENT_AS).local_address(self.frr);
        if self.frr_passive {
            n = n.passive();
        }
        if let Some(t) = self.frr_multihop {
            n = n.multihop(t);
        }
        n
    }

    fn frr_extra(&self) -> Option<String> {
        self.frr_ttl_security
            .map(|h| format!("neighbor {} ttl-security hops {h}", self.agent))
    }
}

/// FRR with every session's neighbor.
fn start_frr(lab: &Lab, node: &Node, router_id: std::net::Ipv4Addr, s: &[Session]) -> Result<Frr> {
    let mut conf = RouterConfig::new(FRR_AS, router_id);
    for x in s {
        conf = conf.neighbor(x.frr_neighbor());
        if let Some(line) = x.frr_extra() {
            conf = conf.extra(&line);
        }
    }
    Frr::start(lab, node, &conf)
}

/// A running `bgplane agent` in a lab node.
struct Agent {
    process: Process,
    socket: PathBuf,
    bin: PathBuf,
}

impl Agent {
    fn start(lab: &Lab, node: &Node, router_id: IpAddr, s: &[Session]) -> Result<Agent> {
        let bin = bgplane_bin()?;
        let mut yaml = String::from("peers:\n");
        for x in s {
            yaml += &x.agent_yaml(router_id);
        }
        yaml += "listen-port: 179\n";
        let conf = node.dir().join("bgplane.yaml");
        std::fs::write(&conf, yaml)?;
        let socket = node.dir().join("bgplane.sock");
        let mut cmd = node.command(&bin);
        cmd.arg("agent")
            .arg("--config")
            .arg(&conf)
            .arg("--socket")
            .arg(&socket)
            .args(["--connect-retry", "1", "--log", "debug"]);
        let process = lab.spawn(node, "bgplane", cmd)?;
        Ok(Agent {
            process,
            socket,
            bin,
        })
    }

    fn peers(&self) -> Result<Vec<Value>> {
        let out = Command::new(&self.bin)
            .args(["peers", "-o", "json", "--socket"])
            .arg(&self.socket)
            .output()?;
        ensure!(
            out.status.success(),
            "bgplane peers: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout)?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    fn peer(&self, address: IpAddr) -> Result<Value> {
        self.peers()?
            .into_iter()
            .find(|p| p["peer_address"] == address.to_string())
            .with_context(|| format!("{address} not in bgplane peers"))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.process.output_path()).unwrap_or_default()
    }
}

/// Waits until every session that must come up is Established on both sides, then checks
/// for `STAYS_DOWN` that every other one never gets there on either side (bgplane: never
/// past Connect/Active/OpenSent, no flap ever) while the good ones stay up.
fn check_sessions(frr: &Frr, agent: &Agent, sessions: &[Session]) -> Result<()> {
    for s in sessions.iter().filter(|s| s.establishes) {
        wait_for(
            &format!(
                "session {} ({} - {}) Established on both sides",
                s.name, s.agent, s.frr
            ),
            UP,
            || {
                let f = frr.peer(s.agent);
                let a = agent.peer(s.frr);
                match (&f, &a) {
                    (Ok(Some(p)), Ok(v))
                        if p.state == SessionState::Established && v["state"] == "Established" =>
                    {
                        Check::Done(())
                    }
                    _ => Check::NotYet(format!(
                        "FRR: {f:?}\nbgplane: {a:?}\n{}\n{}",
                        frr.log_tail(8),
                        agent.process.output_tail(8)
                    )),
                }
            },
        )?;
    }
    holds_for(
        "sessions that must not come up stay down (and the others up)",
        STAYS_DOWN,
        || {
            for s in sessions {
                let f = frr.peer(s.agent).map_err(|e| format!("{e:#}"))?;
                let a = agent.peer(s.frr).map_err(|e| format!("{e:#}"))?;
                let frr_up = matches!(&f, Some(p) if p.state == SessionState::Established);
                let agent_up = a["state"] == "Established";
                if s.establishes && !(frr_up && agent_up) {
                    return Err(format!("{} went down: FRR {f:?}, bgplane {a}", s.name));
                }
                if !s.establishes && (frr_up || agent_up || a["flaps"] != 0) {
                    return Err(format!(
                        "{} came up: FRR {f:?}, bgplane {a}\n{}",
                        s.name,
                        frr.log_tail(10)
                    ));
                }
            }
            Ok(())
        },
    )
}

/// `n` link pairs agent -- mid -- frr with host routes, so session `i` runs over links
/// `near[i]` and `far[i]` both ways: bgplane's address is `near[i].a`, FRR's `far[i].b`.
struct TwoHops {
    near: Vec<Link>,
    far: Vec<Link>,
}

fn two_hops(lab: &Lab, agent: &Node, mid: &Node, frr: &Node, n: usize) -> Result<TwoHops> {
    mid.run_ok(&[
        "sysctl",
        "-qw",
        "net.ipv4.ip_forward=1",
        "net.ipv6.conf.all.forwarding=1",
    ])?;
    let mut t = TwoHops {
        near: Vec::new(),
        far: Vec::new(),
    };
    for _ in 0..n {
        let near = lab.link(agent, mid)?;
        let far = lab.link(mid, frr)?;
        for (to, via) in [
            (far.b.v4.to_string(), near.b.v4.to_string()),
            (far.b.v6.to_string(), near.b.v6.to_string()),
        ] {
            agent.ip(&["route", "add", &to, "via", &via])?;
        }
        for (to, via) in [
            (near.a.v4.to_string(), far.a.v4.to_string()),
            (near.a.v6.to_string(), far.a.v6.to_string()),
        ] {
            frr.ip(&["route", "add", &to, "via", &via])?;
        }
        agent.ping(IpAddr::V4(far.b.v4))?;
        agent.ping(IpAddr::V6(far.b.v6))?;
        t.near.push(near);
        t.far.push(far);
    }
    // Really two hops: a TTL-1 ping dies at mid.
    let out = agent.run(&[
        "ping",
        "-n",
        "-c",
        "1",
        "-W",
        "1",
        "-t",
        "1",
        &t.far[0].b.v4.to_string(),
    ])?;
    ensure!(
        !out.status.success(),
        "a TTL-1 ping crossed mid: the lab is not two hops"
    );
    Ok(t)
}

/// One counter of the TcpExt line of /proc/net/netstat, read inside `node`.
fn tcp_ext(node: &Node, name: &str) -> Result<u64> {
    let text = node.run_ok(&["cat", "/proc/net/netstat"])?;
    let mut lines = text.lines();
    while let Some(head) = lines.next() {
        let values = lines.next().unwrap_or_default();
        if !head.starts_with("TcpExt:") {
            continue;
        }
        let i = head
            .split_whitespace()
            .position(|k| k == name)
            .with_context(|| format!("no {name} in {head}"))?;
        return values
            .split_whitespace()
            .nth(i)
            .with_context(|| format!("no value for {name}"))?
            .parse()
            .with_context(|| format!("{name} in {values}"));
    }
    anyhow::bail!("no TcpExt line in /proc/net/netstat")
}

/// FRR two hops away. bgplane's default TTL 1 never reaches it, whichever side connects
/// (bgplane's SYN dies at mid; with FRR connecting, the handshake completes but bgplane's
/// OPEN dies there); `ebgp-multihop: true` (255) and `ebgp-multihop-ttl: 2` establish
/// (bgplane connecting and accepting), an explicit `ebgp-multihop-ttl: 1` fails again; the
/// same over IPv6 transport (hop limit). On the same listener (so its SYNs are not filtered
/// by the kernel for every peer), a GTSM peer (hops 1) whose FRR connects with TTL 255 from
/// two hops away arrives with 254 and is closed at once by the SYN's TTL check, while a
/// GTSM peer with `gtsm-hops: 2` against FRR `ttl-security hops 2` establishes; both over
/// IPv4 and IPv6.
#[test]
fn ebgp_ttl_1_default_multihop_n_and_gtsm_hops_against_frr_two_hops_away() -> Result<()> {
    skip_unless!(BGPD, "vtysh", "ping");
    let lab = Lab::new("bgplane_ttl")?;
    let (n, m, f) = (lab.node("bgplane")?, lab.node("mid")?, lab.node("frr")?);
    let t = two_hops(&lab, &n, &m, &f, 7)?;
    let a4 = |i: usize| IpAddr::V4(t.near[i].a.v4);
    let f4 = |i: usize| IpAddr::V4(t.far[i].b.v4);
    let a6 = |i: usize| IpAddr::V6(t.near[i].a.v6);
    let f6 = |i: usize| IpAddr::V6(t.far[i].b.v6);
    let s = |name, agent, frr, ttl, establishes| Session {
        name,
        agent,
        frr,
        agent_passive: false,
        frr_passive: false,
        ttl,
        frr_multihop: Some(255),
        frr_ttl_security: None,
        establishes,
    };
    let agent_connects = |x: Session| Session {
        frr_passive: true,
        ..x
    };
    let frr_connects = |x: Session| Session {
        agent_passive: true,
        ..x
    };
    let sessions = vec![
        agent_connects(s(
            "v4 default ttl, bgplane connects",
            a4(0),
            f4(0),
            Ttl::Default,
            false,
        )),
        frr_connects(s(
            "v4 default ttl, FRR connects",
            a4(1),
            f4(1),
            Ttl::Default,
            false,
        )),
        frr_connects(s(
            "v4 ebgp-multihop, FRR connects",
            a4(2),
            f4(2),
            Ttl::Multihop(None),
            true,
        )),
        agent_connects(s(
            "v4 multihop ttl 2, bgplane connects",
            a4(3),
            f4(3),
            Ttl::Multihop(Some(2)),
            true,
        )),
        agent_connects(s(
            "v4 multihop ttl 1, bgplane connects",
            a4(4),
            f4(4),
            Ttl::Multihop(Some(1)),
            false,
        )),
        frr_connects(s(
            "v4 gtsm hops 1, FRR connects from 2 hops",
            a4(5),
            f4(5),
            Ttl::Gtsm(None),
            false,
        )),
        Session {
            frr_multihop: None,
            frr_ttl_security: Some(2),
            ..s(
                "v4 gtsm hops 2, FRR ttl-security hops 2",
                a4(6),
                f4(6),
                Ttl::Gtsm(Some(2)),
                true,
            )
        },
        frr_connects(s(
            "v6 gtsm hops 1, FRR connects from 2 hops",
            a6(5),
            f6(5),
            Ttl::Gtsm(None),
            false,
        )),
        Session {
            frr_multihop: None,
            frr_ttl_security: Some(2),
            ..s(
                "v6 gtsm hops 2, FRR ttl-security hops 2",
                a6(6),
                f6(6),
                Ttl::Gtsm(Some(2)),
                true,
            )
        },
        agent_connects(s(
            "v6 default hop limit, bgplane connects",
            a6(0),
            f6(0),
            Ttl::Default,
            false,
        )),
        frr_connects(s(
            "v6 default hop limit, FRR connects",
            a6(1),
            f6(1),
            Ttl::Default,
            false,
        )),
        frr_connects(s(
            "v6 multihop ttl 2, FRR connects",
            a6(2),
            f6(2),
            Ttl::Multihop(Some(2)),
            true,
        )),
        agent_connects(s(
            "v6 ebgp-multihop, bgplane connects",
            a6(3),
            f6(3),
            Ttl::Multihop(None),
            true,
        )),
    ];
    let frr = start_frr(&lab, &f, t.far[0].b.v4, &sessions)?;
    let agent = Agent::start(&lab, &n, a4(0), &sessions)?;
    check_sessions(&frr, &agent, &sessions)?;

    // The GTSM peers FRR dialled: every attempt was closed for its SYN's TTL / hop limit,
    // and bgplane says so.
    for addr in [f4(5), f6(5)] {
        let gtsm = agent.peer(addr)?;
        let err = gtsm["last_error"].as_str().unwrap_or_default();
        ensure!(
            err.contains("GTSM") && err.contains("TTL 254"),
            "bgplane peers does not explain the GTSM rejection: {gtsm}\n{}",
            agent.process.output_tail(20)
        );
        ensure!(gtsm["state"] == "Active", "GTSM peer left Active: {gtsm}");
    }
    Ok(())
}

/// GTSM (RFC 5082) with every peer of the agent using it (hops 1), so the listener itself
/// carries the minimum TTL: FRR directly linked with `ttl-security hops 1` establishes over
/// IPv4 and IPv6 whichever side connects; FRR two hops away with `ebgp-multihop 255` (its
/// packets arrive with TTL / hop limit 254) never does: when bgplane connects its SYN-ACK is
/// dropped, and when FRR connects the SYN itself is dropped by the kernel (no handshake, no
/// connection reaches bgplane: counted in TcpExt TCPMinTTLDrop), IPv4 and IPv6.
#[test]
fn gtsm_directly_connected_frr_establishes_two_hops_away_is_dropped_at_the_syn() -> Result<()> {
    skip_unless!(BGPD, "vtysh", "ping");
    let lab = Lab::new("bgplane_gtsm")?;
    let (n, m) = (lab.node("bgplane")?, lab.node("mid")?);
    let (near_node, far_node) = (lab.node("near")?, lab.node("far")?);
    let direct = lab.link(&n, &near_node)?;
    let direct2 = lab.link(&n, &near_node)?;
    for l in [&direct, &direct2] {
        n.ping(IpAddr::V4(l.b.v4))?;
        n.ping(IpAddr::V6(l.b.v6))?;
    }
    let t = two_hops(&lab, &n, &m, &far_node, 2)?;
    let g = |name, agent, frr, agent_passive, frr_passive, establishes| Session {
        name,
        agent,
        frr,
        agent_passive,
        frr_passive,
        ttl: Ttl::Gtsm(None),
        frr_multihop: None,
        frr_ttl_security: Some(1),
        establishes,
    };
    let (d4a, d4b) = (IpAddr::V4(direct.a.v4), IpAddr::V4(direct.b.v4));
    let (d6a, d6b) = (IpAddr::V6(direct.a.v6), IpAddr::V6(direct.b.v6));
    let (e4a, e4b) = (IpAddr::V4(direct2.a.v4), IpAddr::V4(direct2.b.v4));
    let (e6a, e6b) = (IpAddr::V6(direct2.a.v6), IpAddr::V6(direct2.b.v6));
    // One side passive each, so each direction is proven on its own.
    let near = vec![
        g("v4 direct, bgplane connects", d4a, d4b, false, true, true),
        g("v6 direct, FRR connects", d6a, d6b, true, false, true),
        g("v4 direct, FRR connects", e4a, e4b, true, false, true),
        g("v6 direct, bgplane connects", e6a, e6b, false, true, true),
    ];
    let far_session = |name, agent, frr, agent_passive| Session {
        frr_multihop: Some(255),
        frr_ttl_security: None,
        ..g(name, agent, frr, agent_passive, !agent_passive, false)
    };
    let far = vec![
        far_session(
            "v4 two hops, bgplane connects",
            IpAddr::V4(t.near[0].a.v4),
            IpAddr::V4(t.far[0].b.v4),
            false,
        ),
        far_session(
            "v4 two hops, FRR connects",
            IpAddr::V4(t.near[1].a.v4),
            IpAddr::V4(t.far[1].b.v4),
            true,
        ),
        far_session(
            "v6 two hops, bgplane connects",
            IpAddr::V6(t.near[0].a.v6),
            IpAddr::V6(t.far[0].b.v6),
            false,
        ),
        far_session(
            "v6 two hops, FRR connects",
            IpAddr::V6(t.near[1].a.v6),
            IpAddr::V6(t.far[1].b.v6),
            true,
        ),
    ];
    let drops_before = tcp_ext(&n, "TCPMinTTLDrop")?;
    let frr_near = start_frr(&lab, &near_node, direct.b.v4, &near)?;
    let frr_far = start_frr(&lab, &far_node, t.far[0].b.v4, &far)?;
    let all: Vec<Session> = near.iter().chain(&far).cloned().collect();
    let agent = Agent::start(&lab, &n, d4a, &all)?;
    check_sessions(&frr_near, &agent, &near)?;
    check_sessions(&frr_far, &agent, &far)?;

    // FRR did try: its SYNs (and SYN-ACKs to bgplane's SYNs) were dropped by the kernel for
    // their TTL, and no connection from the far FRR ever reached the agent.
    let drops = tcp_ext(&n, "TCPMinTTLDrop")? - drops_before;
    ensure!(drops > 0, "no TCPMinTTLDrop in bgplane's namespace");
    let log = agent.log();
    for s in far.iter().filter(|s| s.agent_passive) {
        let p = agent.peer(s.frr)?;
        ensure!(
            p["state"] == "Active",
            "{}: bgplane's passive GTSM peer left Active: {p}",
            s.name
        );
        let seen = log
            .lines()
            .any(|l| l.contains("inbound connection") && l.contains(&s.frr.to_string()));
        ensure!(
            !seen,
            "{}: a connection from {} got past the listener:\n{}",
            s.name,
            s.frr,
            agent.process.output_tail(30)
        );
    }
    eprintln!("TCPMinTTLDrop in bgplane's namespace: {drops}");
    Ok(())
}
