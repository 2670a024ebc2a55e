//! The rest of issue 3's proof list, `bgplane agent` against the real daemons: IPv4 and IPv6
//! (MP-BGP) routes both ways with FRR, BIRD, GoBGP and ExaBGP, 4-octet ASNs on both sides;
//! 2-octet-only peers (BIRD `enable as4 off`, ExaBGP `asn4 disable`: AS_TRANS + AS4_PATH on
//! the wire, seen by tcpdump, and merged back in); attributes checked on the receiving router
//! for routes bgplane passes on (AS path, next hop, MED, communities, large communities) and
//! for its own (AS path, next hop: the agent cannot set MED or communities on them yet); iBGP
//! with FRR (LOCAL_PREF, next hop, no iBGP-to-iBGP reflection); withdrawals (transit, and
//! bgplane's own through a GR restart without the prefix); MD5 right/wrong; graceful restart
//! across kill -9 with FRR and BIRD; route refresh from FRR; hold-timer expiry; the
//! peer-AS-mismatch NOTIFICATION in both directions. Needs root, the daemons and tcpdump;
//! builds the `bgplane` binary with cargo unless BGPLANE_BIN names one.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use interop_tests::frr::BGPD;
use interop_tests::{
    holds_for, skip_unless, wait_for, Announce, BgpRouter, Bgplane, BgplaneConfig, BgplanePeer,
    Bird, Check, Community, ExaBgp, Frr, GoBgp, Lab, LargeCommunity, Neighbor, Node, Process, Rib,
    Route, RouterConfig, SessionState,
};
use serde_json::Value;

const UP: Duration = Duration::from_secs(40);
const ROUTE: Duration = Duration::from_secs(20);
/// bgplane's AS: 4 octets, so every peer must speak RFC 6793 (or get AS_TRANS).
const AGENT_AS: u32 = 4200000001;
const AGENT_V4: &str = "198.51.100.0/24";
const AGENT_V6: &str = "2001:db8:100::/48";

/// The agent's config: AS AGENT_AS, `peers`, originating `originate` to every peer.
fn agent_config(
    router_id: IpAddr,
    peers: impl IntoIterator<Item = BgplanePeer>,
    originate: &[&str],
) -> BgplaneConfig {
    originate.iter().fold(
        BgplaneConfig::new(AGENT_AS, router_id).peers(peers),
        |c, p| c.originate(p),
    )
}

/// `bgplane agent` in `node` with `agent_config`.
fn start_agent(
    lab: &Lab,
    node: &Node,
    router_id: IpAddr,
    peers: impl IntoIterator<Item = BgplanePeer>,
    originate: &[&str],
) -> Result<Bgplane> {
    Bgplane::start(lab, node, &agent_config(router_id, peers, originate))
}

/// Polls for `duration`: no path for `prefix` from `peer` appears on `router`.
fn never_gets<R: BgpRouter>(
    router: &R,
    prefix: &str,
    peer: IpAddr,
    duration: Duration,
) -> Result<()> {
    let net = prefix.parse()?;
    holds_for(
        &format!("{} never gets {prefix} from {peer}", router.label()),
        duration,
        || match router.route(&net) {
            Ok(v) if v.iter().all(|r| r.peer != Some(peer)) => Ok(()),
            Ok(v) => Err(format!("got it: {v:?}")),
            Err(e) => Err(format!("{e:#}")),
        },
    )
}

fn v4(l: &interop_tests::Iface) -> IpAddr {
    IpAddr::V4(l.v4)
}

fn v6(l: &interop_tests::Iface) -> IpAddr {
    IpAddr::V6(l.v6)
}

/// Waits until `router` has a path for `prefix` from `peer` that `accept` likes.
fn wait_path(
    router: &dyn BgpRouter,
    prefix: &str,
    peer: IpAddr,
    accept: impl Fn(&Route) -> bool,
) -> Result<Route> {
    let net = prefix.parse()?;
    wait_for(
        &format!("{}: {prefix} from {peer}", router.label()),
        ROUTE,
        || match router.route(&net) {
            Ok(v) => match v.iter().find(|r| r.peer == Some(peer) && accept(r)) {
                Some(r) => Check::Done(r.clone()),
                None => Check::NotYet(format!("{v:?}\n{}", router.log_tail(5))),
            },
            Err(e) => Check::NotYet(format!("{e:#}")),
        },
    )
}

/// Waits until `router` has no path for `prefix` from `peer`.
fn wait_gone(router: &dyn BgpRouter, prefix: &str, peer: IpAddr) -> Result<()> {
    let net = prefix.parse()?;
    wait_for(
        &format!("{}: {prefix} from {peer} withdrawn", router.label()),
        ROUTE,
        || match router.route(&net) {
            Ok(v) if v.iter().all(|r| r.peer != Some(peer)) => Check::Done(()),
            Ok(v) => Check::NotYet(format!("{v:?}")),
            Err(e) => Check::NotYet(format!("{e:#}")),
        },
    )
}

fn wait_router_established(router: &dyn BgpRouter, neighbor: IpAddr) -> Result<()> {
    wait_for(
        &format!("{}: session with {neighbor} Established", router.label()),
        UP,
        || match router.peer(neighbor) {
            Ok(Some(p)) if p.state == SessionState::Established => Check::Done(()),
            Ok(p) => Check::NotYet(format!("{p:?}\n{}", router.log_tail(5))),
            Err(e) => Check::NotYet(format!("{e:#}")),
        },
    )
}

/// One router of the star: its AS, what it originates, and bgplane's / its addresses.
struct Spoke {
    asn: u32,
    v4_prefix: &'static str,
    v6_prefix: &'static str,
    med: u32,
    community: Community,
    large: LargeCommunity,
    agent4: IpAddr,
    agent6: IpAddr,
    router4: IpAddr,
    router6: IpAddr,
}

impl Spoke {
    fn announces(&self) -> [Announce; 2] {
        let a = |p: &str| {
            Announce::new(p)
                .med(self.med)
                .community(self.community.0, self.community.1)
                .large_community(self.large.0, self.large.1, self.large.2)
        };
        [a(self.v4_prefix), a(self.v6_prefix)]
    }
    /// The router's two sessions to bgplane: IPv4 over IPv4, IPv6 (MP-BGP) over IPv6.
    fn neighbors(&self) -> [Neighbor; 2] {
        [
            Neighbor::new(self.agent4, AGENT_AS).local_address(self.router4),
            Neighbor::new(self.agent6, AGENT_AS).local_address(self.router6),
        ]
    }
    fn config(&self, router_id: std::net::Ipv4Addr) -> RouterConfig {
        let [n4, n6] = self.neighbors();
        let [a4, a6] = self.announces();
        RouterConfig::new(self.asn, router_id)
            .neighbor(n4)
            .neighbor(n6)
            .announce(a4)
            .announce(a6)
    }
}

/// bgplane in the middle of FRR, BIRD, GoBGP and ExaBGP, each with a 4-octet AS and two
/// sessions (IPv4 transport carrying IPv4, IPv6 transport carrying IPv6 by MP-BGP), each
/// originating one prefix per family with MED, a community and a large community.
#[test]
fn star_v4_v6_four_octet_asns_transit_attributes_and_withdrawals_every_router() -> Result<()> {
    skip_unless!(
        BGPD,
        "vtysh",
        "bird",
        "birdc",
        "gobgpd",
        "gobgp",
        "exabgp",
        "/usr/bin/python3"
    );
    let lab = Lab::new("bgplane_star")?;
    let n = lab.node("bgplane")?;
    let names = ["frr", "bird", "gobgp", "exabgp"];
    let v4p = [
        "192.0.2.16/28",
        "192.0.2.32/28",
        "192.0.2.48/28",
        "192.0.2.64/28",
    ];
    let v6p = [
        "2001:db8:1::/48",
        "2001:db8:2::/48",
        "2001:db8:3::/48",
        "2001:db8:4::/48",
    ];
    let mut nodes = Vec::new();
    let mut spokes = Vec::new();
    let mut ids = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let node = lab.node(name)?;
        let l = lab.link(&n, &node)?;
        let k = i as u32 + 2;
        spokes.push(Spoke {
            asn: 4200000000 + k,
            v4_prefix: v4p[i],
            v6_prefix: v6p[i],
            med: 10 + k,
            community: Community(65010, k as u16),
            large: LargeCommunity(4200000000 + k, 1, k),
            agent4: v4(&l.a),
            agent6: v6(&l.a),
            router4: v4(&l.b),
            router6: v6(&l.b),
        });
        n.ping(v4(&l.b))?;
        n.ping(v6(&l.b))?;
        ids.push(l.b.v4);
        nodes.push(node);
    }
    let frr = Frr::start(&lab, &nodes[0], &spokes[0].config(ids[0]))?;
    let bird = Bird::start(&lab, &nodes[1], &spokes[1].config(ids[1]))?;
    let gobgp = GoBgp::start(&lab, &nodes[2], &spokes[2].config(ids[2]))?;
    let exa = ExaBgp::start(&lab, &nodes[3], &spokes[3].config(ids[3]))?;
    let routers: [&dyn BgpRouter; 4] = [&frr, &bird, &gobgp, &exa];

    // bgplane passive everywhere: every router connects (ExaBGP can only connect).
    let mut peers = Vec::new();
    for s in &spokes {
        peers.push(BgplanePeer::new(s.router4, s.asn, s.agent4).passive());
        peers.push(BgplanePeer::new(s.router6, s.asn, s.agent6).passive());
    }
    let agent = start_agent(&lab, &n, spokes[0].agent4, peers, &[AGENT_V4, AGENT_V6])?;
    for (r, s) in routers.iter().zip(&spokes) {
        wait_router_established(*r, s.agent4)?;
        wait_router_established(*r, s.agent6)?;
        let p = agent.wait_established(s.router4, UP)?;
        assert_eq!(
            (&p["peer_asn"], &p["local_asn"]),
            (&s.asn.into(), &AGENT_AS.into()),
            "{p}"
        );
        agent.wait_established(s.router6, UP)?;
    }

    // bgplane received every router's prefixes with the router's attributes.
    for s in &spokes {
        for (prefix, from) in [(s.v4_prefix, s.router4), (s.v6_prefix, s.router6)] {
            let r = agent.wait_received(from, prefix, ROUTE, |_| true)?;
            assert_eq!(r["as_path"], serde_json::json!([s.asn]), "{r}");
            assert_eq!(r["med"], s.med, "{r}");
            assert_eq!(
                r["communities"],
                serde_json::json!([s.community.to_string()]),
                "{r}"
            );
            assert_eq!(
                r["large_communities"],
                serde_json::json!([s.large.to_string()]),
                "{r}"
            );
            assert_eq!(r["next_hop"], from.to_string(), "{r}");
        }
    }

    // Every router has bgplane's own prefixes and every other router's, per family, on the
    // session of that family: AS path [bgplane, origin], next hop = bgplane's address on the
    // session, MED not passed between ASes (RFC 4271 §5.1.4), communities and large
    // communities passed unchanged (transitive).
    for (r, me) in routers.iter().zip(&spokes) {
        for (prefix, agent_addr) in [(AGENT_V4, me.agent4), (AGENT_V6, me.agent6)] {
            let got = wait_path(*r, prefix, agent_addr, |_| true)?;
            assert_eq!(got.as_path, vec![AGENT_AS], "{} {got:?}", r.label());
            assert_eq!(got.next_hop, Some(agent_addr), "{} {got:?}", r.label());
            assert!(got.communities.is_empty(), "{} {got:?}", r.label());
        }
        for other in spokes.iter().filter(|o| o.asn != me.asn) {
            for (prefix, agent_addr) in [(other.v4_prefix, me.agent4), (other.v6_prefix, me.agent6)]
            {
                let got = wait_path(*r, prefix, agent_addr, |_| true)?;
                let l = r.label();
                assert_eq!(got.as_path, vec![AGENT_AS, other.asn], "{l} {got:?}");
                assert_eq!(got.next_hop, Some(agent_addr), "{l} {got:?}");
                assert_eq!(got.med, None, "{l}: MED crossed two AS borders: {got:?}");
                assert_eq!(got.communities, vec![other.community], "{l} {got:?}");
                assert_eq!(got.large_communities, vec![other.large], "{l} {got:?}");
            }
        }
    }

    // Withdrawals at each origin propagate through bgplane to every other router.
    frr.withdraw(spokes[0].v4_prefix)?;
    bird.withdraw(spokes[1].v6_prefix)?;
    gobgp.withdraw(spokes[2].v4_prefix)?;
    gobgp.withdraw(spokes[2].v6_prefix)?;
    exa.withdraw(spokes[3].v4_prefix)?;
    let gone = [
        (0, spokes[0].v4_prefix),
        (1, spokes[1].v6_prefix),
        (2, spokes[2].v4_prefix),
        (2, spokes[2].v6_prefix),
        (3, spokes[3].v4_prefix),
    ];
    for (origin, prefix) in gone {
        for (i, (r, me)) in routers.iter().zip(&spokes).enumerate() {
            if i == origin {
                continue;
            }
            let via = if prefix.contains(':') {
                me.agent6
            } else {
                me.agent4
            };
            wait_gone(*r, prefix, via)?;
        }
    }
    // What was not withdrawn is still there (the withdrawals were not a session reset).
    wait_path(&frr, spokes[1].v4_prefix, spokes[0].agent4, |_| true)?;
    wait_path(&exa, spokes[0].v6_prefix, spokes[3].agent6, |_| true)?;
    for s in &spokes {
        let p = agent.peer(s.router4)?;
        assert_eq!(p["flaps"], 0, "{p}");
    }
    Ok(())
}

/// Two FRRs on iBGP sessions with bgplane (same AS, 4200000001) and BIRD on eBGP.
#[test]
fn ibgp_with_frr_local_pref_next_hop_and_no_reflection() -> Result<()> {
    skip_unless!(BGPD, "vtysh", "bird", "birdc");
    let lab = Lab::new("bgplane_ibgp")?;
    let n = lab.node("bgplane")?;
    let (f1, f2, b) = (lab.node("frr1")?, lab.node("frr2")?, lab.node("bird")?);
    let (l1, l2, lb) = (lab.link(&n, &f1)?, lab.link(&n, &f2)?, lab.link(&n, &b)?);
    let (a1, r1) = (v4(&l1.a), v4(&l1.b));
    let (a2, r2) = (v4(&l2.a), v4(&l2.b));
    let (ab, rb) = (v4(&lb.a), v4(&lb.b));
    for r in [r1, r2, rb] {
        n.ping(r)?;
    }
    const ONLY1: &str = "203.0.113.0/26"; // frr1's, LOCAL_PREF 200
    const BOTH: &str = "203.0.113.64/26"; // from frr1 with LOCAL_PREF 50, frr2 with 300
    const BIRDS: &str = "203.0.113.128/26";
    let frr1 = Frr::start(
        &lab,
        &f1,
        &RouterConfig::new(AGENT_AS, l1.b.v4)
            .neighbor(Neighbor::new(a1, AGENT_AS))
            .announce(
                Announce::new(ONLY1)
                    .local_pref(200)
                    .med(7)
                    .community(65001, 1),
            )
            .announce(Announce::new(BOTH).local_pref(50)),
    )?;
    // frr2 would lose every tie-break after LOCAL_PREF (higher router id and address).
    let frr2 = Frr::start(
        &lab,
        &f2,
        &RouterConfig::new(AGENT_AS, l2.b.v4)
            .neighbor(Neighbor::new(a2, AGENT_AS))
            .announce(Announce::new(BOTH).local_pref(300)),
    )?;
    let bird = Bird::start(
        &lab,
        &b,
        &RouterConfig::new(65002, lb.b.v4)
            .neighbor(Neighbor::new(ab, AGENT_AS))
            .announce(
                Announce::new(BIRDS)
                    .med(5)
                    .community(65002, 9)
                    .large_community(65002, 1, 2),
            ),
    )?;
    let agent = start_agent(
        &lab,
        &n,
        a1,
        [
            BgplanePeer::new(r1, AGENT_AS, a1),
            BgplanePeer::new(r2, AGENT_AS, a2),
            BgplanePeer::new(rb, 65002, ab).passive(),
        ],
        &[AGENT_V4],
    )?;
    for (r, a) in [(&frr1, a1), (&frr2, a2)] {
        r.wait_established(a, UP)?;
    }
    bird.wait_established(ab, UP)?;

    // LOCAL_PREF from iBGP arrives and is used: frr2's BOTH (300) beats frr1's (50).
    let x = agent.wait_received(r1, ONLY1, ROUTE, |_| true)?;
    assert_eq!(x["local_pref"], 200, "{x}");
    assert_eq!(x["as_path"], serde_json::json!([]), "{x}");
    assert_eq!(x["next_hop"], r1.to_string(), "{x}");
    let lost = agent.wait_received(r1, BOTH, ROUTE, |_| true)?;
    let won = agent.wait_received(r2, BOTH, ROUTE, |_| true)?;
    assert_eq!(
        (&lost["local_pref"], &won["local_pref"]),
        (&50.into(), &300.into())
    );
    assert_eq!(
        (&lost["best"], &won["best"]),
        (&false.into(), &true.into()),
        "{lost} {won}"
    );

    // Toward iBGP: bgplane's own route with next hop self and LOCAL_PREF; BIRD's (eBGP) route
    // with its next hop unchanged (RFC 4271 §5.1.3), MED kept, default LOCAL_PREF 100, its
    // communities, and BIRD's AS alone in the path.
    for (r, a) in [(&frr1, a1), (&frr2, a2)] {
        let own = wait_path(r, AGENT_V4, a, |_| true)?;
        assert_eq!(
            (own.as_path.clone(), own.next_hop),
            (vec![], Some(a)),
            "{own:?}"
        );
        assert_eq!(own.local_pref, Some(100), "{own:?}");
        let y = wait_path(r, BIRDS, a, |_| true)?;
        assert_eq!(y.as_path, vec![65002], "{y:?}");
        assert_eq!(y.next_hop, Some(rb), "next hop changed toward iBGP: {y:?}");
        assert_eq!((y.med, y.local_pref), (Some(5), Some(100)), "{y:?}");
        assert_eq!(y.communities, vec![Community(65002, 9)], "{y:?}");
        assert_eq!(
            y.large_communities,
            vec![LargeCommunity(65002, 1, 2)],
            "{y:?}"
        );
    }
    // Toward eBGP: the iBGP routes with bgplane's AS and next hop, LOCAL_PREF not sent.
    let x = wait_path(&bird, ONLY1, ab, |_| true)?;
    assert_eq!(
        (x.as_path.clone(), x.next_hop),
        (vec![AGENT_AS], Some(ab)),
        "{x:?}"
    );
    assert_ne!(x.local_pref, Some(200), "LOCAL_PREF leaked to eBGP: {x:?}");
    assert_eq!(x.communities, vec![Community(65001, 1)], "{x:?}");
    wait_path(&bird, BOTH, ab, |_| true)?;

    // No iBGP-to-iBGP reflection: frr2 never gets frr1's routes from bgplane (and frr1 not
    // frr2's), although both hold everything else bgplane sends them.
    let adv = agent.route(Rib::Advertised, r2, ONLY1)?;
    assert!(adv.is_empty(), "advertised to frr2: {adv:?}");
    never_gets(&frr2, ONLY1, a2, Duration::from_secs(3))?;
    let both_at_1 = frr1.route(&BOTH.parse()?)?;
    assert!(
        both_at_1.iter().all(|r| r.peer != Some(a1)),
        "{both_at_1:?}"
    );
    let p = agent.peer(r2)?;
    assert_eq!(p["advertised"]["total"], 2, "own + BIRD's only: {p}");
    Ok(())
}

/// Rewrites BIRD's config with `edit` and reloads it (`birdc configure`).
fn bird_patch(bird: &Bird, edit: impl FnOnce(String) -> String) -> Result<()> {
    let path = bird.node().dir().join("bird").join("bird.conf");
    let text = std::fs::read_to_string(&path)?;
    let new = edit(text.clone());
    ensure!(new != text, "BIRD config patch changed nothing:\n{text}");
    std::fs::write(&path, new)?;
    let reply = bird.birdc("configure")?;
    ensure!(
        reply.contains("Reconfigured") || reply.contains("Reconfiguration in progress"),
        "birdc configure: {reply}"
    );
    Ok(())
}

/// tcpdump -vvv on a node's interface, BGP only: it decodes AS_PATH and AS4_PATH.
fn tcpdump(lab: &Lab, node: &Node, ifname: &str) -> Result<Process> {
    let mut cmd = node.command("tcpdump");
    cmd.args(["-i", ifname, "-nn", "-l", "-vvv", "-s0", "tcp port 179"]);
    let p = lab.spawn(node, "tcpdump", cmd)?;
    wait_for("tcpdump listening", Duration::from_secs(10), || {
        let out = std::fs::read_to_string(p.output_path()).unwrap_or_default();
        if out.contains("listening on") {
            Check::Done(())
        } else {
            Check::NotYet(out)
        }
    })?;
    Ok(p)
}

/// FRR (AS 4200000002) - bgplane - BIRD as a 2-octet-only speaker (`enable as4 off`, AS
/// 65002). BIRD 2.0 still reads a 4-octet AS from the peer's capability and refuses a
/// 4-octet neighbor AS with as4 off, so bgplane uses AS 65001 here (its 4-octet own AS
/// toward OLD speakers, AS_TRANS in the OPEN, is not covered by BIRD). Toward BIRD, FRR's
/// 4-octet AS travels as AS_TRANS in AS_PATH plus the real path in AS4_PATH (seen on the wire
/// by tcpdump) and BIRD rebuilds it; from BIRD, a path with a 4-octet AS (AS_TRANS +
/// AS4_PATH) is merged by bgplane and passed on to FRR as the real path.
#[test]
fn two_octet_bird_gets_as_trans_with_as4_path_and_bgplane_merges_it_back() -> Result<()> {
    skip_unless!(BGPD, "vtysh", "bird", "birdc", "tcpdump");
    let lab = Lab::new("bgplane_as4")?;
    let (n, f, b) = (lab.node("bgplane")?, lab.node("frr")?, lab.node("bird")?);
    let (lf, lb) = (lab.link(&n, &f)?, lab.link(&n, &b)?);
    let (af, rf, ab, rb) = (v4(&lf.a), v4(&lf.b), v4(&lb.a), v4(&lb.b));
    n.ping(rf)?;
    n.ping(rb)?;
    const MY_AS: u32 = 65001;
    const FRR_AS: u32 = 4200000002;
    const FAR_AS: u32 = 4200000099;
    const FRRS: &str = "203.0.113.0/25";
    const BIRDS: &str = "203.0.113.128/25";
    let frr = Frr::start(
        &lab,
        &f,
        &RouterConfig::new(FRR_AS, lf.b.v4)
            .neighbor(Neighbor::new(af, MY_AS))
            .announce(Announce::new(FRRS)),
    )?;
    let bird = Bird::start(
        &lab,
        &b,
        &RouterConfig::new(65002, lb.b.v4)
            .neighbor(Neighbor::new(ab, MY_AS))
            .announce(Announce::new(BIRDS)),
    )?;
    // The harness has no knob for these two: no 4-octet AS capability, and a 4-octet AS in
    // the path BIRD originates (so the path needs AS4_PATH on this session).
    bird_patch(&bird, |t| {
        t.replace(
            "protocol bgp n0 {\n",
            "protocol bgp n0 {\n  enable as4 off;\n",
        )
        .replace(
            "export all;",
            &format!("export filter {{ bgp_path.prepend({FAR_AS}); accept; }};"),
        )
    })?;
    let dump = tcpdump(&lab, &b, &lb.b.ifname)?;
    let agent = start_agent(
        &lab,
        &n,
        af,
        [
            BgplanePeer::new(rf, FRR_AS, af).my_asn(MY_AS),
            BgplanePeer::new(rb, 65002, ab).my_asn(MY_AS),
        ],
        &[AGENT_V4],
    )?;
    frr.wait_established(af, UP)?;
    bird.wait_established(ab, UP)?;
    let p = agent.wait_established(rb, UP)?;
    assert_eq!(p["peer_asn"], 65002, "{p}");
    let proto = bird.birdc("show protocols all n0")?;
    ensure!(
        proto.contains("Session:") && !proto.contains("AS4"),
        "BIRD's session should be 2-octet only:\n{proto}"
    );

    // Toward the 2-octet peer: BIRD rebuilds the real paths.
    let r = wait_path(&bird, FRRS, ab, |_| true)?;
    assert_eq!(r.as_path, vec![MY_AS, FRR_AS], "{r:?}");
    let r = wait_path(&bird, AGENT_V4, ab, |_| true)?;
    assert_eq!(r.as_path, vec![MY_AS], "{r:?}");
    // ... from AS_TRANS in AS_PATH and the real ASes in AS4_PATH, as sent on the wire.
    let want_path = format!("{MY_AS} 23456");
    let want_as4 = format!("{MY_AS} {FRR_AS}");
    wait_for(
        "tcpdump shows AS_PATH with AS_TRANS and AS4_PATH",
        ROUTE,
        || {
            let out = std::fs::read_to_string(dump.output_path()).unwrap_or_default();
            let path = out
                .lines()
                .any(|l| l.contains("AS Path") && l.trim_end().ends_with(&want_path));
            let as4 = out
                .lines()
                .any(|l| l.contains("AS4 Path") && l.trim_end().ends_with(&want_as4));
            if path && as4 {
                Check::Done(())
            } else {
                let lines: Vec<&str> = out.lines().filter(|l| l.contains("Path")).collect();
                Check::NotYet(lines.join("\n"))
            }
        },
    )?;

    // From the 2-octet peer: bgplane merges AS4_PATH and passes the real path on.
    let r = agent.wait_received(rb, BIRDS, ROUTE, |_| true)?;
    assert_eq!(r["as_path"], serde_json::json!([65002, FAR_AS]), "{r}");
    let r = wait_path(&frr, BIRDS, af, |_| true)?;
    assert_eq!(r.as_path, vec![MY_AS, 65002, FAR_AS], "{r:?}");
    let out = std::fs::read_to_string(dump.output_path()).unwrap_or_default();
    ensure!(
        out.lines()
            .any(|l| l.contains("AS4 Path") && l.trim_end().ends_with(&FAR_AS.to_string())),
        "BIRD did not send AS4_PATH {FAR_AS}:\n{out}"
    );
    Ok(())
}

/// Graceful restart (RFC 4724), bgplane as restarting speaker with FRR and BIRD as helpers:
/// kill -9 the agent; both routers keep bgplane's routes and FRR's route passed to BIRD,
/// without a single withdrawal while the agent is down; the agent restarts without one of
/// its prefixes: End-of-RIB, the kept routes fresh, the dropped prefix withdrawn (stale routes
/// not refreshed before End-of-RIB go: this is how an agent restart withdraws).
#[test]
fn graceful_restart_kill9_frr_and_bird_keep_routes_then_end_of_rib_refreshes_and_withdraws(
) -> Result<()> {
    skip_unless!(BGPD, "vtysh", "bird", "birdc");
    let lab = Lab::new("bgplane_gr")?;
    let (n, f, b) = (lab.node("bgplane")?, lab.node("frr")?, lab.node("bird")?);
    let (lf, lb) = (lab.link(&n, &f)?, lab.link(&n, &b)?);
    let (af, rf, ab, rb) = (v4(&lf.a), v4(&lf.b), v4(&lb.a), v4(&lb.b));
    n.ping(rf)?;
    n.ping(rb)?;
    const DROPPED: &str = "198.51.101.0/24";
    const FRRS: &str = "203.0.113.0/24";
    let frr = Frr::start(
        &lab,
        &f,
        &RouterConfig::new(65001, lf.b.v4)
            .graceful_restart(true)
            .neighbor(Neighbor::new(af, AGENT_AS))
            .announce(Announce::new(FRRS)),
    )?;
    let bird = Bird::start(
        &lab,
        &b,
        &RouterConfig::new(65002, lb.b.v4)
            .graceful_restart(true)
            .neighbor(Neighbor::new(ab, AGENT_AS)),
    )?;
    let peers = [
        BgplanePeer::new(rf, 65001, af).graceful_restart(),
        BgplanePeer::new(rb, 65002, ab).graceful_restart().passive(),
    ];
    let agent = start_agent(&lab, &n, af, peers.clone(), &[AGENT_V4, DROPPED])?;
    frr.wait_established(af, UP)?;
    bird.wait_established(ab, UP)?;
    let checks: [(&dyn BgpRouter, &str, IpAddr); 5] = [
        (&frr, AGENT_V4, af),
        (&frr, DROPPED, af),
        (&bird, AGENT_V4, ab),
        (&bird, DROPPED, ab),
        (&bird, FRRS, ab),
    ];
    for (r, prefix, from) in checks {
        wait_path(r, prefix, from, |r| !r.stale)?;
    }
    let gr = frr.vtysh_json(&format!("show bgp neighbors {af} json"))?;
    let caps = &gr[af.to_string()]["neighborCapabilities"];
    ensure!(
        caps["gracefulRestart"] == "advertisedAndReceived",
        "FRR did not negotiate GR with bgplane: {caps}"
    );

    agent.process().kill9()?;
    // FRR marks them stale; BIRD shows no flag, but its session is down and the routes stay.
    wait_path(&frr, AGENT_V4, af, |r| r.stale)?;
    wait_for("BIRD sees the session down", UP, || match bird.peer(ab) {
        Ok(Some(p)) if p.state != SessionState::Established => Check::Done(()),
        other => Check::NotYet(format!("{other:?}")),
    })?;
    let proto = bird.birdc("show protocols all n0")?;
    ensure!(
        proto.contains("Neighbor graceful restart active"),
        "BIRD does not show graceful restart in progress:\n{proto}"
    );
    holds_for(
        "routers keep every route while bgplane is down",
        Duration::from_secs(5),
        || {
            for (r, prefix, from) in checks {
                let paths = r
                    .route(&prefix.parse().map_err(|e| format!("{e}"))?)
                    .map_err(|e| format!("{e:#}"))?;
                if !paths.iter().any(|p| p.peer == Some(from) && p.stale) {
                    return Err(format!(
                        "{}: {prefix} not kept as stale: {paths:?}",
                        r.label()
                    ));
                }
            }
            Ok(())
        },
    )?;

    // Restart without DROPPED: the same agent on the same node, so the same API socket, and
    // the restart marker the killed agent left beside it makes this start a graceful restart.
    let again = agent.restart(&lab, &agent_config(af, peers, &[AGENT_V4]))?;
    again.wait_established(rf, UP)?;
    again.wait_established(rb, UP)?;
    for (r, prefix, from) in checks.iter().filter(|c| c.1 != DROPPED) {
        wait_path(*r, prefix, *from, |r| !r.stale)?;
    }
    wait_gone(&frr, DROPPED, af)?;
    wait_gone(&bird, DROPPED, ab)?;
    // FRR got our End-of-RIB; BIRD saw the restart bit in the new OPEN.
    let nb = frr.vtysh_json(&format!("show bgp neighbors {af} json"))?;
    let gr = &nb[af.to_string()]["gracefulRestartInfo"];
    ensure!(
        gr["endOfRibRecv"]["ipv4Unicast"] == true,
        "FRR did not receive End-of-RIB: {gr}"
    );
    let proto = bird.birdc("show protocols all n0")?;
    ensure!(
        proto.contains("Restart recovery"),
        "BIRD does not show bgplane's restart bit:\n{proto}"
    );
    Ok(())
}

/// A lab with bgplane, FRR and BIRD, each router linked to bgplane; addresses of each link.
struct Triangle {
    lab: Lab,
    n: Node,
    f: Node,
    b: Node,
    /// (bgplane, router) on the FRR link: v4, v6.
    f4: (IpAddr, IpAddr),
    f6: (IpAddr, IpAddr),
    b4: (IpAddr, IpAddr),
    b6: (IpAddr, IpAddr),
    frr_id: std::net::Ipv4Addr,
    bird_id: std::net::Ipv4Addr,
}

fn triangle(test: &str) -> Result<Triangle> {
    let lab = Lab::new(test)?;
    let (n, f, b) = (lab.node("bgplane")?, lab.node("frr")?, lab.node("bird")?);
    let (lf, lb) = (lab.link(&n, &f)?, lab.link(&n, &b)?);
    let t = Triangle {
        f4: (v4(&lf.a), v4(&lf.b)),
        f6: (v6(&lf.a), v6(&lf.b)),
        b4: (v4(&lb.a), v4(&lb.b)),
        b6: (v6(&lb.a), v6(&lb.b)),
        frr_id: lf.b.v4,
        bird_id: lb.b.v4,
        lab,
        n,
        f,
        b,
    };
    for a in [t.f4.1, t.f6.1, t.b4.1, t.b6.1] {
        t.n.ping(a)?;
    }
    Ok(t)
}

/// TCP MD5 with FRR and BIRD: per router, an IPv4 session with the right password (bgplane
/// connecting to FRR, BIRD connecting to bgplane's listener) and an IPv6 session with a
/// wrong one (both sides connecting). The right ones establish and carry routes; the wrong
/// ones stay down on both sides.
#[test]
fn md5_right_password_establishes_wrong_one_does_not_frr_and_bird() -> Result<()> {
    skip_unless!(BGPD, "vtysh", "bird", "birdc");
    let t = triangle("bgplane_md5")?;
    let frr = Frr::start(
        &t.lab,
        &t.f,
        &RouterConfig::new(65001, t.frr_id)
            .neighbor(
                Neighbor::new(t.f4.0, AGENT_AS)
                    .passive()
                    .password("frr-right"),
            )
            .neighbor(
                Neighbor::new(t.f6.0, AGENT_AS)
                    .local_address(t.f6.1)
                    .password("frr-other"),
            ),
    )?;
    let bird = Bird::start(
        &t.lab,
        &t.b,
        &RouterConfig::new(65002, t.bird_id)
            .neighbor(Neighbor::new(t.b4.0, AGENT_AS).password("bird-right"))
            .neighbor(
                Neighbor::new(t.b6.0, AGENT_AS)
                    .local_address(t.b6.1)
                    .password("bird-other"),
            ),
    )?;
    let agent = start_agent(
        &t.lab,
        &t.n,
        t.f4.0,
        [
            BgplanePeer::new(t.f4.1, 65001, t.f4.0).password("frr-right"),
            BgplanePeer::new(t.f6.1, 65001, t.f6.0).password("frr-wrong"),
            BgplanePeer::new(t.b4.1, 65002, t.b4.0)
                .passive()
                .password("bird-right"),
            BgplanePeer::new(t.b6.1, 65002, t.b6.0).password("bird-wrong"),
        ],
        &[AGENT_V4, AGENT_V6],
    )?;
    frr.wait_established(t.f4.0, UP)?;
    bird.wait_established(t.b4.0, UP)?;
    agent.wait_established(t.f4.1, UP)?;
    agent.wait_established(t.b4.1, UP)?;
    wait_path(&frr, AGENT_V4, t.f4.0, |_| true)?;
    wait_path(&bird, AGENT_V4, t.b4.0, |_| true)?;
    holds_for(
        "wrong-password sessions stay down on both sides",
        Duration::from_secs(6),
        || {
            for (r, a) in [(&frr as &dyn BgpRouter, t.f6.0), (&bird, t.b6.0)] {
                match r.peer(a) {
                    Ok(Some(p)) if p.state != SessionState::Established => {}
                    other => return Err(format!("{}: {other:?}", r.label())),
                }
            }
            for a in [t.f6.1, t.b6.1] {
                match agent.peer(a) {
                    Ok(p) if p["state"] != "Established" && p["flaps"] == 0 => {}
                    other => return Err(format!("bgplane: {other:?}")),
                }
            }
            Ok(())
        },
    )?;
    let net: ipnet::IpNet = AGENT_V6.parse()?;
    for r in [&frr as &dyn BgpRouter, &bird] {
        let v = r.route(&net)?;
        ensure!(
            v.is_empty(),
            "{} got {AGENT_V6} without a session: {v:?}",
            r.label()
        );
    }
    Ok(())
}

/// SIGSTOP FRR and BIRD (hold time 9 everywhere): bgplane's hold timer expires, `bgplane
/// peers` shows the sessions down with last_error Hold Timer Expired about 9 s after the last
/// KEEPALIVE; SIGCONT: both sessions come back.
#[test]
fn hold_timer_expires_when_frr_and_bird_are_stopped_and_sessions_return() -> Result<()> {
    skip_unless!(BGPD, "vtysh", "bird", "birdc");
    let t = triangle("bgplane_hold")?;
    let frr = Frr::start(
        &t.lab,
        &t.f,
        &RouterConfig::new(65001, t.frr_id).neighbor(Neighbor::new(t.f4.0, AGENT_AS)),
    )?;
    let bird = Bird::start(
        &t.lab,
        &t.b,
        &RouterConfig::new(65002, t.bird_id).neighbor(Neighbor::new(t.b4.0, AGENT_AS)),
    )?;
    // BIRD waits 60 s after a session error before it tries again (`error wait time`):
    // test-friendly timers, like connect-retry 2.
    bird_patch(&bird, |c| {
        c.replace(
            "protocol bgp n0 {\n",
            "protocol bgp n0 {\n  error wait time 1, 5;\n",
        )
    })?;
    let agent = start_agent(
        &t.lab,
        &t.n,
        t.f4.0,
        [
            BgplanePeer::new(t.f4.1, 65001, t.f4.0),
            BgplanePeer::new(t.b4.1, 65002, t.b4.0).passive(),
        ],
        &[AGENT_V4],
    )?;
    for a in [t.f4.1, t.b4.1] {
        let p = agent.wait_established(a, UP)?;
        assert_eq!(p["hold_time"], 9, "{p}");
    }
    frr.process().pause()?;
    bird.process().pause()?;
    let stopped = Instant::now();
    for a in [t.f4.1, t.b4.1] {
        let p = agent.wait_peer(
            "down by Hold Timer Expired",
            a,
            Duration::from_secs(15),
            |p| {
                p["state"] != "Established"
                    && p["last_error"]
                        .as_str()
                        .is_some_and(|e| e.contains("Hold Timer Expired"))
            },
        )?;
        let after = stopped.elapsed();
        // The last KEEPALIVE came at most keepalive (3 s) before the stop.
        ensure!(
            after >= Duration::from_secs(5),
            "{a}: down {after:?} after SIGSTOP, before the 9 s hold time could run out: {p}"
        );
        assert_eq!(p["flaps"], 1, "{p}");
    }
    frr.process().resume()?;
    bird.process().resume()?;
    for a in [t.f4.1, t.b4.1] {
        agent.wait_peer("Established again", a, UP, |p| {
            p["state"] == "Established" && p["flaps"] == 1
        })?;
    }
    frr.wait_established(t.f4.0, UP)?;
    bird.wait_established(t.b4.0, UP)?;
    wait_path(&frr, AGENT_V4, t.f4.0, |_| true)?;
    Ok(())
}

/// Peer AS mismatch, both directions, with FRR and BIRD. IPv4 sessions: bgplane expects the
/// wrong AS, so bgplane sends OPEN Message Error / Bad Peer AS (2/2); IPv6 sessions: the
/// router expects the wrong AS and sends it. Each side shows what it sent or received:
/// bgpd.log, BIRD's last error, `bgplane peers` last_error.
#[test]
fn peer_as_mismatch_notification_both_directions_frr_and_bird() -> Result<()> {
    skip_unless!(BGPD, "vtysh", "bird", "birdc");
    let t = triangle("bgplane_badas")?;
    let frr = Frr::start(
        &t.lab,
        &t.f,
        &RouterConfig::new(65001, t.frr_id)
            .neighbor(Neighbor::new(t.f4.0, AGENT_AS))
            .neighbor(Neighbor::new(t.f6.0, 65099).local_address(t.f6.1)),
    )?;
    let bird = Bird::start(
        &t.lab,
        &t.b,
        &RouterConfig::new(65002, t.bird_id)
            .neighbor(Neighbor::new(t.b4.0, AGENT_AS))
            .neighbor(Neighbor::new(t.b6.0, 65099).local_address(t.b6.1)),
    )?;
    let agent = start_agent(
        &t.lab,
        &t.n,
        t.f4.0,
        [
            BgplanePeer::new(t.f4.1, 65098, t.f4.0),
            BgplanePeer::new(t.f6.1, 65001, t.f6.0),
            BgplanePeer::new(t.b4.1, 65098, t.b4.0),
            BgplanePeer::new(t.b6.1, 65002, t.b6.0),
        ],
        &[AGENT_V4],
    )?;
    let has = |p: &Value, words: &[&str]| {
        p["last_error"]
            .as_str()
            .is_some_and(|e| words.iter().all(|w| e.contains(w)))
    };
    for a in [t.f4.1, t.b4.1] {
        agent.wait_peer("sent Bad Peer AS", a, UP, |p| {
            has(p, &["sent", "Bad Peer AS"])
        })?;
    }
    for a in [t.f6.1, t.b6.1] {
        agent.wait_peer("received Bad Peer AS", a, UP, |p| {
            has(p, &["received", "Bad Peer AS"])
        })?;
    }
    let log_has = |needles: &[String]| {
        let log = std::fs::read_to_string(frr.log_path()).unwrap_or_default();
        match log
            .lines()
            .find(|l| needles.iter().all(|n| l.contains(n.as_str())))
        {
            Some(l) => Check::Done(l.to_string()),
            None => Check::NotYet(frr.log_tail(10)),
        }
    };
    let got = wait_for("FRR logs the 2/2 it received", UP, || {
        log_has(&[
            "received from neighbor".into(),
            t.f4.0.to_string(),
            "2/2".into(),
        ])
    })?;
    ensure!(got.contains("Bad Peer AS"), "{got}");
    wait_for("FRR logs the 2/2 it sent", UP, || {
        log_has(&["sent to neighbor".into(), t.f6.0.to_string(), "2/2".into()])
    })?;
    for (a, want) in [
        (t.b4.0, "Received: Bad peer AS"),
        (t.b6.0, "Error: Bad peer AS"),
    ] {
        bird.wait(&format!("last error {want:?} for {a}"), UP, |b| {
            let p = b.peer(a)?;
            Ok(match p {
                Some(p) if p.last_error.as_deref().is_some_and(|e| e.contains(want)) => {
                    Check::Done(())
                }
                other => Check::NotYet(format!("{other:?}")),
            })
        })?;
    }
    for a in [t.f4.1, t.f6.1, t.b4.1, t.b6.1] {
        let p = agent.peer(a)?;
        assert_eq!(
            (&p["state"] != "Established", &p["flaps"]),
            (true, &0.into()),
            "{p}"
        );
    }
    Ok(())
}

/// FRR's counters for the session with `neighbor` (`messageStats` of `show bgp neighbors`).
fn frr_stats(frr: &Frr, neighbor: IpAddr) -> Result<Value> {
    let v = frr.vtysh_json(&format!("show bgp neighbors {neighbor} json"))?;
    Ok(v[neighbor.to_string()].clone())
}

/// Route refresh with FRR, which negotiates enhanced route refresh (RFC 7313) with bgplane.
/// `soft in` (FRR without soft-reconfiguration inbound, so it must ask): FRR sends
/// ROUTE-REFRESH and bgplane answers with BoRR, its Adj-RIB-Out and EoRR (FRR counts two
/// refresh messages received and one more UPDATE). `soft out` after an outbound policy
/// change: FRR re-sends its routes (FRR 8.4 sends no BoRR/EoRR for a soft out it starts
/// itself) and bgplane takes the new MED in place, session untouched.
#[test]
fn route_refresh_from_frr_soft_in_and_out_answered_with_enhanced_refresh() -> Result<()> {
    skip_unless!(BGPD, "vtysh");
    let lab = Lab::new("bgplane_refresh")?;
    let (n, f) = (lab.node("bgplane")?, lab.node("frr")?);
    let l = lab.link(&n, &f)?;
    let (a, r) = (v4(&l.a), v4(&l.b));
    n.ping(r)?;
    const FRRS: &str = "203.0.113.0/24";
    let frr = Frr::start(
        &lab,
        &f,
        &RouterConfig::new(65001, l.b.v4)
            .neighbor(Neighbor::new(a, AGENT_AS))
            .announce(Announce::new(FRRS).med(1)),
    )?;
    frr.configure(&[
        "router bgp 65001",
        "address-family ipv4 unicast",
        &format!("no neighbor {a} soft-reconfiguration inbound"),
    ])?;
    let agent = start_agent(&lab, &n, a, [BgplanePeer::new(r, 65001, a)], &[AGENT_V4])?;
    frr.wait_established(a, UP)?;
    wait_path(&frr, AGENT_V4, a, |_| true)?;
    agent.wait_received(r, FRRS, ROUTE, |r| r["med"] == 1)?;
    let stats = |k: &str| -> Result<u64> {
        let v = frr_stats(&frr, a)?;
        v["messageStats"][k]
            .as_u64()
            .with_context(|| format!("no messageStats.{k}: {v}"))
    };
    let caps = frr_stats(&frr, a)?["neighborCapabilities"].clone();
    ensure!(
        caps["enhancedRouteRefresh"] == "advertisedAndReceived",
        "enhanced route refresh not negotiated: {caps}"
    );

    // soft in: one ROUTE-REFRESH out; BoRR + EoRR and our route back.
    let (rr_sent, rr_recv, upd_recv) = (
        stats("routeRefreshSent")?,
        stats("routeRefreshRecv")?,
        stats("updatesRecv")?,
    );
    frr.vtysh(&format!("clear bgp ipv4 unicast {a} soft in"))?;
    wait_for(
        "FRR got bgplane's answer to its ROUTE-REFRESH",
        ROUTE,
        || {
            let now = (
                stats("routeRefreshSent"),
                stats("routeRefreshRecv"),
                stats("updatesRecv"),
            );
            match now {
                (Ok(s), Ok(r), Ok(u)) if s > rr_sent && r >= rr_recv + 2 && u > upd_recv => {
                    Check::Done(())
                }
                other => Check::NotYet(format!("{other:?}")),
            }
        },
    )?;
    let route = wait_path(&frr, AGENT_V4, a, |_| true)?;
    assert_eq!(route.as_path, vec![AGENT_AS], "{route:?}");

    // soft out after an outbound policy change (no automatic re-advertisement: delay 0).
    frr.configure(&[
        "route-map SETMED permit 10",
        "set metric 77",
        "exit",
        "router bgp 65001",
        "bgp route-map delay-timer 0",
        "address-family ipv4 unicast",
        &format!("neighbor {a} route-map SETMED out"),
    ])?;
    let upd_sent = stats("updatesSent")?;
    frr.vtysh(&format!("clear bgp ipv4 unicast {a} soft out"))?;
    agent.wait_received(r, FRRS, ROUTE, |r| r["med"] == 77)?;
    ensure!(
        stats("updatesSent")? > upd_sent,
        "no UPDATE from FRR's soft out"
    );
    holds_for(
        "bgplane keeps FRR's re-sent route",
        Duration::from_secs(2),
        || match agent.route(Rib::Received, r, FRRS) {
            Ok(v) if v.iter().any(|r| r["med"] == 77 && r["stale"] == false) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )?;
    let p = agent.peer(r)?;
    assert_eq!(
        (&p["state"], &p["flaps"]),
        (&"Established".into(), &0.into()),
        "{p}"
    );
    Ok(())
}

/// bgplane with its 4-octet AS toward ExaBGP as a 2-octet-only speaker (`asn4 disable`,
/// peering with AS_TRANS 23456, RFC 6793 §4.2.1): bgplane's OPEN says AS_TRANS, the session
/// comes up, and ExaBGP receives bgplane's route and FRR's (4-octet) route through bgplane
/// with the path rebuilt from AS_PATH (AS_TRANS) + AS4_PATH.
#[test]
fn four_octet_bgplane_with_two_octet_exabgp_as_trans() -> Result<()> {
    skip_unless!(BGPD, "vtysh", "exabgp", "/usr/bin/python3", "tcpdump");
    let lab = Lab::new("bgplane_astrans")?;
    let (n, f, e) = (lab.node("bgplane")?, lab.node("frr")?, lab.node("exabgp")?);
    let (lf, le) = (lab.link(&n, &f)?, lab.link(&n, &e)?);
    let (af, rf, ae, re) = (v4(&lf.a), v4(&lf.b), v4(&le.a), v4(&le.b));
    n.ping(rf)?;
    n.ping(re)?;
    const FRR_AS: u32 = 4200000002;
    const FAR_AS: u32 = 4200000099;
    const FRRS: &str = "203.0.113.0/25";
    const EXAS: &str = "203.0.113.128/25";
    let frr = Frr::start(
        &lab,
        &f,
        &RouterConfig::new(FRR_AS, lf.b.v4)
            .neighbor(Neighbor::new(af, AGENT_AS))
            .announce(Announce::new(FRRS)),
    )?;
    // The driver has no asn4 knob: the whole neighbor block as raw config, using the
    // driver's API helper process (so received routes are still recorded).
    let block = format!(
        "neighbor {ae} {{\n    router-id {};\n    local-address {re};\n    local-as 65005;\n    peer-as 23456;\n    hold-time 9;\n    family {{\n        ipv4 unicast;\n    }}\n    capability {{\n        asn4 disable;\n        route-refresh;\n    }}\n    api {{\n        processes [ lab_helper ];\n        neighbor-changes;\n        receive {{ parsed; update; notification; }}\n    }}\n    static {{\n        route {EXAS} next-hop self as-path [ 65005 {FAR_AS} ];\n    }}\n}}",
        le.b.v4
    );
    let exa = ExaBgp::start(&lab, &e, &RouterConfig::new(65005, le.b.v4).extra(&block))?;
    let dump = tcpdump(&lab, &e, &le.b.ifname)?;
    let agent = start_agent(
        &lab,
        &n,
        af,
        [
            BgplanePeer::new(rf, FRR_AS, af),
            BgplanePeer::new(re, 65005, ae).passive(),
        ],
        &[AGENT_V4],
    )?;
    frr.wait_established(af, UP)?;
    let p = agent.wait_established(re, UP)?;
    assert_eq!(p["local_asn"], AGENT_AS, "{p}");
    // What ExaBGP got: the real paths.
    let r = wait_path(&exa, AGENT_V4, ae, |_| true)?;
    assert_eq!(r.as_path, vec![AGENT_AS], "{r:?}");
    let r = wait_path(&exa, FRRS, ae, |_| true)?;
    assert_eq!(r.as_path, vec![AGENT_AS, FRR_AS], "{r:?}");
    // ExaBGP's route with a 4-octet AS, merged by bgplane and passed to FRR.
    let r = agent.wait_received(re, EXAS, ROUTE, |_| true)?;
    assert_eq!(r["as_path"], serde_json::json!([65005, FAR_AS]), "{r}");
    let r = wait_path(&frr, EXAS, af, |_| true)?;
    assert_eq!(r.as_path, vec![AGENT_AS, 65005, FAR_AS], "{r:?}");
    // On the wire: bgplane's OPEN with AS_TRANS and its real AS in the capability; AS_TRANS
    // in AS_PATH with the real path in AS4_PATH, both ways.
    let out = std::fs::read_to_string(dump.output_path()).unwrap_or_default();
    let lines: Vec<&str> = out.lines().map(str::trim_end).collect();
    for (kind, want) in [
        ("Open Message", "my AS 23456".to_string()),
        ("4 Byte AS", format!("4 Byte AS {AGENT_AS}")),
        ("AS Path (2)", ": 23456 23456".into()),
        ("AS4 Path (17)", format!(": {AGENT_AS} {FRR_AS}")),
        ("AS Path (2)", ": 65005 23456".into()),
        ("AS4 Path (17)", format!(": 65005 {FAR_AS}")),
    ] {
        let on_line =
            |l: &&str| l.contains(kind) && (l.ends_with(&want) || l.contains(&format!("{want},")));
        // The OPEN's "my AS" is on the line after "Open Message".
        let found = lines.iter().any(on_line)
            || lines
                .windows(2)
                .any(|w| w[0].contains(kind) && w[1].contains(&want));
        ensure!(
            found,
            "tcpdump shows no {kind} {want:?}:\n{}",
            lines
                .iter()
                .filter(|l| l.contains("AS"))
                .copied()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    Ok(())
}
