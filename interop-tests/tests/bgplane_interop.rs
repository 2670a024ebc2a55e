//! `bgplane agent` against the real daemons, each in its own namespace pair: sessions
//! Established with bgplane active and passive over IPv4 and IPv6 transport, a 4-octet local
//! AS, TCP MD5 on the connecting and on the listening side, routes both ways checked on the
//! router's side (AS path, next hop) and in `bgplane routes received`, and `bgplane peers -o
//! json`. Needs root and the daemons (scripts/install-deps.sh); builds the `bgplane` binary
//! with cargo unless BGPLANE_BIN names one.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{bail, ensure, Result};
use interop_tests::frr::BGPD;
use interop_tests::{
    skip_unless, wait_for, Announce, BgpRouter, Bgplane, BgplaneConfig, BgplanePeer, Bird, Check,
    ExaBgp, Frr, GoBgp, Lab, Neighbor, Node, RouterConfig,
};

const UP: Duration = Duration::from_secs(40);
const ROUTE: Duration = Duration::from_secs(20);
/// bgplane's AS: needs 4 octets, so every peer must speak RFC 6793.
const AGENT_AS: u32 = 4200000001;
const AGENT_V4: &str = "198.51.100.0/24";
const AGENT_V6: &str = "2001:db8:100::/48";

/// bgplane in the pair's agent node with `peers`, originating AGENT_V4 and AGENT_V6.
fn agent_config(router_id: IpAddr, peers: impl IntoIterator<Item = BgplanePeer>) -> BgplaneConfig {
    BgplaneConfig::new(AGENT_AS, router_id)
        .peers(peers)
        .originate(AGENT_V4)
        .originate(AGENT_V6)
}

/// One session to check: bgplane's address on it, the router's, and the prefix each sends.
struct Session {
    agent: IpAddr,
    router: IpAddr,
    router_prefix: &'static str,
}

/// Established on both sides; bgplane's prefix of the session's family on the router with
/// AS path [AGENT_AS] and next hop = bgplane's address; the router's prefix in bgplane with
/// AS path [router AS]; peers -o json counts.
fn check_sessions<R: BgpRouter>(
    router: &R,
    router_as: u32,
    agent: &Bgplane,
    sessions: &[Session],
) -> Result<()> {
    for s in sessions {
        router.wait_established(s.agent, UP)?;
        let p = agent.wait_established(s.router, UP)?;
        assert_eq!(p["peer_asn"], router_as, "{p}");
        assert_eq!(p["local_asn"], AGENT_AS, "{p}");
        assert!(p["uptime_seconds"].is_u64(), "{p}");

        let ours = if s.agent.is_ipv4() {
            AGENT_V4
        } else {
            AGENT_V6
        };
        let r = router.wait_route(ours, ROUTE, |r| r.peer == Some(s.agent))?;
        assert_eq!(r.as_path, vec![AGENT_AS], "{r:?}");
        assert_eq!(r.next_hop, Some(s.agent), "{r:?}");

        let r = agent.wait_received(s.router, s.router_prefix, ROUTE, |_| true)?;
        assert_eq!(r["as_path"], serde_json::json!([router_as]), "{r}");
        let p = agent.peer(s.router)?;
        assert!(p["received"]["total"].as_u64() >= Some(1), "{p}");
        assert_eq!(
            p["advertised"]["total"], 1,
            "one originated prefix per family: {p}"
        );
    }
    Ok(())
}

struct Pair {
    lab: Lab,
    agent_node: Node,
    router_node: Node,
    a4: IpAddr,
    a6: IpAddr,
    r4: IpAddr,
    r6: IpAddr,
    router_id: std::net::Ipv4Addr,
    agent_id: IpAddr,
}

fn pair(test: &str, router: &str) -> Result<Pair> {
    let lab = Lab::new(test)?;
    let agent_node = lab.node("bgplane")?;
    let router_node = lab.node(router)?;
    let l = lab.link(&agent_node, &router_node)?;
    let p = Pair {
        a4: IpAddr::V4(l.a.v4),
        a6: IpAddr::V6(l.a.v6),
        r4: IpAddr::V4(l.b.v4),
        r6: IpAddr::V6(l.b.v6),
        router_id: l.b.v4,
        agent_id: IpAddr::V4(l.a.v4),
        lab,
        agent_node,
        router_node,
    };
    p.agent_node.ping(p.r4)?;
    p.agent_node.ping(p.r6)?;
    Ok(p)
}

impl Pair {
    /// bgplane in the agent node with `peers` (see `agent_config`).
    fn agent(&self, peers: impl IntoIterator<Item = BgplanePeer>) -> Result<Bgplane> {
        Bgplane::start(
            &self.lab,
            &self.agent_node,
            &agent_config(self.agent_id, peers),
        )
    }

    /// The router's side of `dual_stack`: AS `asn`, its neighbors for the IPv4 and the IPv6
    /// session, both prefixes announced.
    fn router_config(&self, asn: u32, v4: Neighbor, v6: Neighbor) -> RouterConfig {
        RouterConfig::new(asn, self.router_id)
            .neighbor(v4)
            .neighbor(v6)
            .announce(Announce::new("203.0.113.0/24"))
            .announce(Announce::new("2001:db8:203::/48"))
    }

    /// The IPv4 session over IPv4 and the IPv6 one over IPv6; the router sends 203.0.113.0/24
    /// and 2001:db8:203::/48.
    fn dual_stack(&self) -> [Session; 2] {
        [
            Session {
                agent: self.a4,
                router: self.r4,
                router_prefix: "203.0.113.0/24",
            },
            Session {
                agent: self.a6,
                router: self.r6,
                router_prefix: "2001:db8:203::/48",
            },
        ]
    }
}

#[test]
fn bgplane_frr_active_v4_with_md5_and_passive_v6() -> Result<()> {
    skip_unless!(BGPD, "vtysh");
    let p = pair("bgplane_frr", "frr")?;
    let frr = Frr::start(
        &p.lab,
        &p.router_node,
        &p.router_config(
            65001,
            Neighbor::new(p.a4, AGENT_AS).passive().password("frr-md5"),
            Neighbor::new(p.a6, AGENT_AS).local_address(p.r6),
        ),
    )?;
    let agent = p.agent([
        BgplanePeer::new(p.r4, 65001, p.a4).password("frr-md5"),
        BgplanePeer::new(p.r6, 65001, p.a6).passive(),
    ])?;
    check_sessions(&frr, 65001, &agent, &p.dual_stack())?;
    // A route refresh from FRR is answered: the route is still there after it.
    frr.vtysh(&format!("clear bgp ipv4 unicast {} soft in", p.a4))?;
    frr.wait_route(AGENT_V4, ROUTE, |r| r.peer == Some(p.a4))?;
    // SIGTERM: FRR logs our Cease / Administrative Shutdown.
    let status = agent.process().terminate(Duration::from_secs(10))?;
    ensure!(status.success(), "agent exit: {status:?}");
    wait_for("FRR sees the session down", UP, || match frr.peers() {
        Ok(v)
            if v.iter()
                .all(|x| x.state != interop_tests::SessionState::Established) =>
        {
            Check::Done(())
        }
        Ok(v) => Check::NotYet(format!("{v:?}")),
        Err(e) => Check::NotYet(format!("{e:#}")),
    })?;
    let log = std::fs::read_to_string(frr.log_path()).unwrap_or_default();
    if !log.contains("Administrative Shutdown") && !log.contains("6/2") {
        bail!("no Cease / Administrative Shutdown in FRR's log:\n{log}");
    }
    Ok(())
}

#[test]
fn bgplane_bird_passive_v4_with_md5_on_listener_and_active_v6() -> Result<()> {
    skip_unless!("bird", "birdc");
    let p = pair("bgplane_bird", "bird")?;
    let bird = Bird::start(
        &p.lab,
        &p.router_node,
        &p.router_config(
            65002,
            Neighbor::new(p.a4, AGENT_AS).password("bird-md5"),
            Neighbor::new(p.a6, AGENT_AS).local_address(p.r6).passive(),
        ),
    )?;
    let agent = p.agent([
        BgplanePeer::new(p.r4, 65002, p.a4)
            .passive()
            .password("bird-md5"),
        BgplanePeer::new(p.r6, 65002, p.a6),
    ])?;
    check_sessions(&bird, 65002, &agent, &p.dual_stack())
}

#[test]
fn bgplane_gobgp_active_v4_and_passive_v6() -> Result<()> {
    skip_unless!("gobgpd", "gobgp");
    let p = pair("bgplane_gobgp", "gobgp")?;
    let gobgp = GoBgp::start(
        &p.lab,
        &p.router_node,
        &p.router_config(
            65003,
            Neighbor::new(p.a4, AGENT_AS).passive(),
            Neighbor::new(p.a6, AGENT_AS).local_address(p.r6),
        ),
    )?;
    let agent = p.agent([
        BgplanePeer::new(p.r4, 65003, p.a4),
        BgplanePeer::new(p.r6, 65003, p.a6).passive(),
    ])?;
    check_sessions(&gobgp, 65003, &agent, &p.dual_stack())
}

#[test]
fn bgplane_exabgp_connects_to_passive_agent() -> Result<()> {
    skip_unless!("exabgp", "/usr/bin/python3");
    let p = pair("bgplane_exabgp", "exabgp")?;
    let exa = ExaBgp::start(
        &p.lab,
        &p.router_node,
        &RouterConfig::new(65005, p.router_id)
            .neighbor(Neighbor::new(p.a4, AGENT_AS).local_address(p.r4))
            .announce(Announce::new("203.0.113.0/24")),
    )?;
    let agent = p.agent([BgplanePeer::new(p.r4, 65005, p.a4).passive()])?;
    // IPv4 only: the first of the dual-stack sessions.
    check_sessions(&exa, 65005, &agent, &p.dual_stack()[..1])
}

#[test]
fn bgplane_passes_routes_frr_to_bird_withdraws_and_gr_keeps_them_in_frr_across_kill9() -> Result<()>
{
    skip_unless!(BGPD, "vtysh", "bird", "birdc");
    let lab = Lab::new("bgplane_transit_gr")?;
    let (n, f, b) = (lab.node("bgplane")?, lab.node("frr")?, lab.node("bird")?);
    let lf = lab.link(&n, &f)?;
    let lb = lab.link(&n, &b)?;
    let (af, fa) = (IpAddr::V4(lf.a.v4), IpAddr::V4(lf.b.v4));
    let (ab, ba) = (IpAddr::V4(lb.a.v4), IpAddr::V4(lb.b.v4));
    n.ping(fa)?;
    n.ping(ba)?;
    let frr = Frr::start(
        &lab,
        &f,
        &RouterConfig::new(65001, lf.b.v4)
            .graceful_restart(true)
            .neighbor(Neighbor::new(af, AGENT_AS))
            .announce(Announce::new("203.0.113.0/24")),
    )?;
    let bird = Bird::start(
        &lab,
        &b,
        &RouterConfig::new(65002, lb.b.v4).neighbor(Neighbor::new(ab, AGENT_AS)),
    )?;
    let conf = agent_config(
        af,
        [
            BgplanePeer::new(fa, 65001, af).graceful_restart(),
            BgplanePeer::new(ba, 65002, ab).passive(),
        ],
    );
    let agent = Bgplane::start(&lab, &n, &conf)?;
    frr.wait_established(af, UP)?;
    bird.wait_established(ab, UP)?;

    // FRR's prefix reaches BIRD through bgplane's Loc-RIB, with both ASes in the path.
    let r = bird.wait_route("203.0.113.0/24", ROUTE, |r| r.peer == Some(ab))?;
    assert_eq!(r.as_path, vec![AGENT_AS, 65001], "{r:?}");
    assert_eq!(r.next_hop, Some(ab), "{r:?}");
    let p = agent.peer(ba)?;
    assert_eq!(p["advertised"]["total"], 2, "198.51.100.0/24 + FRR's: {p}");
    // A withdrawal at FRR propagates through bgplane.
    frr.withdraw("203.0.113.0/24")?;
    bird.wait_route_gone("203.0.113.0/24", None, ROUTE)?;

    // kill -9 the agent: FRR (GR helper) keeps bgplane's route, stale, instead of dropping it.
    frr.wait_route(AGENT_V4, ROUTE, |r| r.peer == Some(af) && !r.stale)?;
    agent.process().kill9()?;
    let r = frr.wait_route(AGENT_V4, ROUTE, |r| r.peer == Some(af) && r.stale)?;
    assert_eq!(r.as_path, vec![AGENT_AS]);
    interop_tests::holds_for(
        "FRR keeps the stale route",
        Duration::from_secs(3),
        || match frr.routes(interop_tests::Family::Ipv4Unicast) {
            Ok(v) if v.iter().any(|r| r.prefix.to_string() == AGENT_V4) => Ok(()),
            Ok(v) => Err(format!("route gone: {v:?}")),
            Err(e) => Err(format!("{e:#}")),
        },
    )?;
    // The agent comes back: new session, End-of-RIB, the route is fresh again.
    let again = agent.restart(&lab, &conf)?;
    again.wait_established(fa, UP)?;
    frr.wait_route(AGENT_V4, UP, |r| r.peer == Some(af) && !r.stale)?;
    Ok(())
}
