//! The session runtime's TTL handling against real FRR: eBGP TTL 1 by default, `ebgp-multihop`
//! (TTL 255) and `ebgp-multihop-ttl N`, and GTSM (RFC 5082: `gtsm`, `gtsm-hops`) with FRR's
//! `ttl-security hops N`, over IPv4 and IPv6 transport, with bgplane connecting and with FRR
//! connecting. FRR sits one hop away (directly linked) or two hops away, behind a plain
//! namespace that forwards (`mid`). Each session uses its own pair of links, so every session
//! of a test runs at once against one agent and one FRR. Needs root and FRR; builds the
//! `bgplane` binary with cargo unless BGPLANE_BIN names one.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use interop_tests::frr::BGPD;
use interop_tests::{
    holds_for, skip_unless, wait_for, BgpRouter, Bgplane, BgplaneConfig, BgplanePeer, Check, Frr,
    Lab, Link, Neighbor, Node, RouterConfig, SessionState, Ttl,
};

const UP: Duration = Duration::from_secs(40);
/// How long a session that must not come up is watched (after the others came up).
const STAYS_DOWN: Duration = Duration::from_secs(8);
const AGENT_AS: u32 = 4200000001;
const FRR_AS: u32 = 65001;

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
    /// bgplane's `peers:` entry for this session.
    fn agent_peer(&self) -> BgplanePeer {
        let p = BgplanePeer::new(self.frr, FRR_AS, self.agent).ttl(self.ttl);
        if self.agent_passive {
            p.passive()
        } else {
            p
        }
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

/// bgplane with every session's peer.
fn start_agent(lab: &Lab, node: &Node, router_id: IpAddr, s: &[Session]) -> Result<Bgplane> {
    let conf = BgplaneConfig::new(AGENT_AS, router_id).peers(s.iter().map(Session::agent_peer));
    Bgplane::start(lab, node, &conf)
}

/// Waits until every session that must come up is Established on both sides, then checks
/// for `STAYS_DOWN` that every other one never gets there on either side (bgplane: never
/// past Connect/Active/OpenSent, no flap ever) while the good ones stay up.
fn check_sessions(frr: &Frr, agent: &Bgplane, sessions: &[Session]) -> Result<()> {
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
                        agent.process().output_tail(8)
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

impl TwoHops {
    /// Session `i` over IPv4: (bgplane's address, FRR's).
    fn v4(&self, i: usize) -> (IpAddr, IpAddr) {
        (self.near[i].a.v4.into(), self.far[i].b.v4.into())
    }
    /// Session `i` over IPv6: (bgplane's address, FRR's).
    fn v6(&self, i: usize) -> (IpAddr, IpAddr) {
        (self.near[i].a.v6.into(), self.far[i].b.v6.into())
    }
}

/// A direct link's IPv4 ends: (bgplane's address, FRR's).
fn v4(l: &Link) -> (IpAddr, IpAddr) {
    (l.a.v4.into(), l.b.v4.into())
}

/// A direct link's IPv6 ends.
fn v6(l: &Link) -> (IpAddr, IpAddr) {
    (l.a.v6.into(), l.b.v6.into())
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
    let s = |name, (agent, frr): (IpAddr, IpAddr), ttl, establishes| Session {
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
            t.v4(0),
            Ttl::Default,
            false,
        )),
        frr_connects(s(
            "v4 default ttl, FRR connects",
            t.v4(1),
            Ttl::Default,
            false,
        )),
        frr_connects(s(
            "v4 ebgp-multihop, FRR connects",
            t.v4(2),
            Ttl::Multihop(None),
            true,
        )),
        agent_connects(s(
            "v4 multihop ttl 2, bgplane connects",
            t.v4(3),
            Ttl::Multihop(Some(2)),
            true,
        )),
        agent_connects(s(
            "v4 multihop ttl 1, bgplane connects",
            t.v4(4),
            Ttl::Multihop(Some(1)),
            false,
        )),
        frr_connects(s(
            "v4 gtsm hops 1, FRR connects from 2 hops",
            t.v4(5),
            Ttl::Gtsm(None),
            false,
        )),
        Session {
            frr_multihop: None,
            frr_ttl_security: Some(2),
            ..s(
                "v4 gtsm hops 2, FRR ttl-security hops 2",
                t.v4(6),
                Ttl::Gtsm(Some(2)),
                true,
            )
        },
        frr_connects(s(
            "v6 gtsm hops 1, FRR connects from 2 hops",
            t.v6(5),
            Ttl::Gtsm(None),
            false,
        )),
        Session {
            frr_multihop: None,
            frr_ttl_security: Some(2),
            ..s(
                "v6 gtsm hops 2, FRR ttl-security hops 2",
                t.v6(6),
                Ttl::Gtsm(Some(2)),
                true,
            )
        },
        agent_connects(s(
            "v6 default hop limit, bgplane connects",
            t.v6(0),
            Ttl::Default,
            false,
        )),
        frr_connects(s(
            "v6 default hop limit, FRR connects",
            t.v6(1),
            Ttl::Default,
            false,
        )),
        frr_connects(s(
            "v6 multihop ttl 2, FRR connects",
            t.v6(2),
            Ttl::Multihop(Some(2)),
            true,
        )),
        agent_connects(s(
            "v6 ebgp-multihop, bgplane connects",
            t.v6(3),
            Ttl::Multihop(None),
            true,
        )),
    ];
    let frr = start_frr(&lab, &f, t.far[0].b.v4, &sessions)?;
    let agent = start_agent(&lab, &n, t.v4(0).0, &sessions)?;
    check_sessions(&frr, &agent, &sessions)?;

    // The GTSM peers FRR dialled: every attempt was closed for its SYN's TTL / hop limit,
    // and bgplane says so.
    for addr in [t.v4(5).1, t.v6(5).1] {
        let gtsm = agent.peer(addr)?;
        let err = gtsm["last_error"].as_str().unwrap_or_default();
        ensure!(
            err.contains("GTSM") && err.contains("TTL 254"),
            "bgplane peers does not explain the GTSM rejection: {gtsm}\n{}",
            agent.process().output_tail(20)
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
    let g =
        |name, (agent, frr): (IpAddr, IpAddr), agent_passive, frr_passive, establishes| Session {
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
    // One side passive each, so each direction is proven on its own.
    let near = vec![
        g(
            "v4 direct, bgplane connects",
            v4(&direct),
            false,
            true,
            true,
        ),
        g("v6 direct, FRR connects", v6(&direct), true, false, true),
        g("v4 direct, FRR connects", v4(&direct2), true, false, true),
        g(
            "v6 direct, bgplane connects",
            v6(&direct2),
            false,
            true,
            true,
        ),
    ];
    let far_session = |name, ends, agent_passive| Session {
        frr_multihop: Some(255),
        frr_ttl_security: None,
        ..g(name, ends, agent_passive, !agent_passive, false)
    };
    let far = vec![
        far_session("v4 two hops, bgplane connects", t.v4(0), false),
        far_session("v4 two hops, FRR connects", t.v4(1), true),
        far_session("v6 two hops, bgplane connects", t.v6(0), false),
        far_session("v6 two hops, FRR connects", t.v6(1), true),
    ];
    let drops_before = tcp_ext(&n, "TCPMinTTLDrop")?;
    let frr_near = start_frr(&lab, &near_node, direct.b.v4, &near)?;
    let frr_far = start_frr(&lab, &far_node, t.far[0].b.v4, &far)?;
    let all: Vec<Session> = near.iter().chain(&far).cloned().collect();
    let agent = start_agent(&lab, &n, v4(&direct).0, &all)?;
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
            agent.process().output_tail(30)
        );
    }
    eprintln!("TCPMinTTLDrop in bgplane's namespace: {drops}");
    Ok(())
}
