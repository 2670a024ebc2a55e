//! Proves the lab harness against the real daemons: sessions come up, routes and attributes are
//! read back correctly on the far side, withdrawals propagate, MD5 gates sessions, graceful
//! restart keeps stale routes, a shared segment carries several peers, and a panicking lab
//! leaves nothing behind. Needs root and FRR, BIRD, GoBGP, ExaBGP (scripts/install-deps.sh).

use std::net::IpAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{ensure, Result};
use interop_tests::frr::BGPD;
use interop_tests::{
    holds_for, skip_unless, Announce, BgpRouter, Bird, Community, ExaBgp, Frr, GoBgp, Lab,
    LargeCommunity, Neighbor, RouterConfig, SessionState,
};

/// Sessions come up in ~3-6 s with hold 9 / connect-retry 2; leave room for a loaded CI box.
const UP: Duration = Duration::from_secs(40);
const ROUTE: Duration = Duration::from_secs(20);

#[test]
fn frr_bird_ipv4_routes_attributes_and_withdrawal() -> Result<()> {
    skip_unless!(BGPD, "vtysh", "bird", "birdc");
    let lab = Lab::new("frr_bird_ipv4")?;
    let (f, b) = (lab.node("frr")?, lab.node("bird")?);
    let l = lab.link(&f, &b)?;
    let (fa, ba) = (IpAddr::V4(l.a.v4), IpAddr::V4(l.b.v4));
    f.ping(ba)?;
    let frr = Frr::start(
        &lab,
        &f,
        &RouterConfig::new(65001, l.a.v4)
            .neighbor(Neighbor::new(ba, 65002))
            .announce(
                Announce::new("198.51.100.0/24")
                    .med(10)
                    .community(65001, 100)
                    .large_community(65001, 1, 1),
            ),
    )?;
    let bird = Bird::start(
        &lab,
        &b,
        &RouterConfig::new(65002, l.b.v4)
            .neighbor(Neighbor::new(fa, 65001))
            .announce(
                Announce::new("203.0.113.0/24")
                    .med(20)
                    .community(65002, 200),
            ),
    )?;
    let p = frr.wait_established(ba, UP)?;
    assert_eq!(p.remote_asn, Some(65002));
    bird.wait_established(fa, UP)?;

    let r = bird.wait_route("198.51.100.0/24", ROUTE, |r| r.peer == Some(fa))?;
    assert_eq!(r.as_path, vec![65001]);
    assert_eq!(r.next_hop, Some(fa));
    assert_eq!(r.med, Some(10));
    assert_eq!(r.communities, vec![Community(65001, 100)]);
    assert_eq!(r.large_communities, vec![LargeCommunity(65001, 1, 1)]);
    assert!(r.best && !r.stale, "{r:?}");

    let r = frr.wait_route("203.0.113.0/24", ROUTE, |r| r.peer == Some(ba))?;
    assert_eq!(r.as_path, vec![65002]);
    assert_eq!(r.next_hop, Some(ba));
    assert_eq!(
        r.med,
        Some(20),
        "BIRD sets MED in its export filter so eBGP keeps it"
    );
    assert_eq!(r.communities, vec![Community(65002, 200)]);
    let adv = frr.advertised(ba, interop_tests::Family::Ipv4Unicast)?;
    assert!(
        adv.iter()
            .any(|a| a.prefix.to_string() == "198.51.100.0/24"),
        "{adv:?}"
    );

    let adv = bird.advertised(fa, interop_tests::Family::Ipv4Unicast)?;
    assert!(
        adv.iter().any(|a| a.prefix.to_string() == "203.0.113.0/24"),
        "{adv:?}"
    );
    assert!(
        !adv.iter()
            .any(|a| a.prefix.to_string() == "198.51.100.0/24"),
        "BIRD must not echo FRR's route back: {adv:?}"
    );

    // Arbitrary vtysh commands (route refresh towards BIRD) keep the session and the route.
    frr.vtysh(&format!("clear bgp ipv4 unicast {ba} soft in"))?;
    frr.wait_route("203.0.113.0/24", ROUTE, |r| r.peer == Some(ba))?;

    // Withdrawals both ways, through each driver's run-time configuration.
    frr.withdraw("198.51.100.0/24")?;
    bird.wait_route_gone("198.51.100.0/24", None, ROUTE)?;
    bird.withdraw("203.0.113.0/24")?;
    frr.wait_route_gone("203.0.113.0/24", None, ROUTE)?;
    // And a run-time announcement.
    bird.announce(&Announce::new("203.0.113.128/25").community(65002, 7))?;
    frr.wait_route("203.0.113.128/25", ROUTE, |r| {
        r.communities == [Community(65002, 7)]
    })?;
    Ok(())
}

#[test]
fn frr_gobgp_ipv6_transport_and_routes() -> Result<()> {
    skip_unless!(BGPD, "vtysh", "gobgpd", "gobgp");
    let lab = Lab::new("frr_gobgp_ipv6")?;
    let (f, g) = (lab.node("frr")?, lab.node("gobgp")?);
    let l = lab.link(&f, &g)?;
    let (fa, ga) = (IpAddr::V6(l.a.v6), IpAddr::V6(l.b.v6));
    f.ping(ga)?;
    let frr = Frr::start(
        &lab,
        &f,
        &RouterConfig::new(65001, l.a.v4)
            .neighbor(Neighbor::new(ga, 65003).local_address(fa))
            .announce(Announce::new("2001:db8:1::/48").med(30).community(65001, 1)),
    )?;
    let gobgp = GoBgp::start(
        &lab,
        &g,
        &RouterConfig::new(65003, l.b.v4)
            .neighbor(Neighbor::new(fa, 65001).local_address(ga))
            .announce(
                Announce::new("2001:db8:2::/48")
                    .community(65003, 1)
                    .large_community(65003, 2, 3),
            ),
    )?;
    frr.wait_established(ga, UP)?;
    gobgp.wait_established(fa, UP)?;

    let r = gobgp.wait_route("2001:db8:1::/48", ROUTE, |r| r.peer == Some(fa))?;
    assert_eq!(r.as_path, vec![65001]);
    assert_eq!(r.next_hop, Some(fa));
    assert_eq!(r.med, Some(30));
    assert_eq!(r.communities, vec![Community(65001, 1)]);

    let r = frr.wait_route("2001:db8:2::/48", ROUTE, |r| r.peer == Some(ga))?;
    assert_eq!(r.as_path, vec![65003]);
    assert_eq!(r.next_hop, Some(ga));
    assert_eq!(r.communities, vec![Community(65003, 1)]);
    assert_eq!(r.large_communities, vec![LargeCommunity(65003, 2, 3)]);
    let adv = gobgp.advertised(fa, interop_tests::Family::Ipv6Unicast)?;
    assert!(
        adv.iter()
            .any(|a| a.prefix.to_string() == "2001:db8:2::/48"),
        "{adv:?}"
    );

    gobgp.withdraw("2001:db8:2::/48")?;
    frr.wait_route_gone("2001:db8:2::/48", None, ROUTE)?;
    Ok(())
}

#[test]
fn exabgp_announces_attributes_to_bird() -> Result<()> {
    skip_unless!("exabgp", "/usr/bin/python3", "bird", "birdc");
    let lab = Lab::new("exabgp_bird")?;
    let (e, b) = (lab.node("exabgp")?, lab.node("bird")?);
    let l = lab.link(&e, &b)?;
    let (ea, ba) = (IpAddr::V4(l.a.v4), IpAddr::V4(l.b.v4));
    let bird = Bird::start(
        &lab,
        &b,
        &RouterConfig::new(65002, l.b.v4)
            .neighbor(Neighbor::new(ea, 65005))
            .announce(Announce::new("192.0.2.0/24").community(65002, 9)),
    )?;
    let exa = ExaBgp::start(
        &lab,
        &e,
        &RouterConfig::new(65005, l.a.v4)
            .neighbor(Neighbor::new(ba, 65002).local_address(ea))
            .announce(
                Announce::new("198.51.100.0/24")
                    .med(44)
                    .community(65005, 1)
                    .community(65005, 2)
                    .large_community(65005, 0, 1),
            ),
    )?;
    bird.wait_established(ea, UP)?;
    exa.wait_established(ba, UP)?;

    let r = bird.wait_route("198.51.100.0/24", ROUTE, |r| r.peer == Some(ea))?;
    assert_eq!(r.as_path, vec![65005]);
    assert_eq!(r.next_hop, Some(ea));
    assert_eq!(r.med, Some(44));
    assert_eq!(
        r.communities,
        vec![Community(65005, 1), Community(65005, 2)]
    );
    assert_eq!(r.large_communities, vec![LargeCommunity(65005, 0, 1)]);

    // What ExaBGP received, from its JSON API stream.
    let r = exa.wait_route("192.0.2.0/24", ROUTE, |r| r.peer == Some(ba))?;
    assert_eq!(r.as_path, vec![65002]);
    assert_eq!(r.communities, vec![Community(65002, 9)]);

    // Run-time announce and withdraw through the API pipe.
    exa.announce(&Announce::new("203.0.113.0/25").community(65005, 3).med(5))?;
    let r = bird.wait_route("203.0.113.0/25", ROUTE, |r| r.peer == Some(ea))?;
    assert_eq!(
        (r.med, r.communities.clone()),
        (Some(5), vec![Community(65005, 3)])
    );
    exa.withdraw("203.0.113.0/25")?;
    bird.wait_route_gone("203.0.113.0/25", None, ROUTE)?;
    Ok(())
}

#[test]
fn md5_right_password_establishes_wrong_one_does_not() -> Result<()> {
    skip_unless!(BGPD, "vtysh", "bird", "birdc");
    let lab = Lab::new("md5_bird_frr")?;
    let (f1, b1, f2, b2) = (
        lab.node("frr1")?,
        lab.node("bird1")?,
        lab.node("frr2")?,
        lab.node("bird2")?,
    );
    let good = lab.link(&f1, &b1)?;
    let bad = lab.link(&f2, &b2)?;
    let pair = |l: &interop_tests::Link, fp: &str, bp: &str| -> Result<(Frr, Bird)> {
        let (fa, ba) = (IpAddr::V4(l.a.v4), IpAddr::V4(l.b.v4));
        let fnode = if l.a.node == "frr1" { &f1 } else { &f2 };
        let bnode = if l.b.node == "bird1" { &b1 } else { &b2 };
        let frr = Frr::start(
            &lab,
            fnode,
            &RouterConfig::new(65001, l.a.v4)
                .neighbor(Neighbor::new(ba, 65002).password(fp))
                .announce(Announce::new("198.51.100.0/24")),
        )?;
        let bird = Bird::start(
            &lab,
            bnode,
            &RouterConfig::new(65002, l.b.v4).neighbor(Neighbor::new(fa, 65001).password(bp)),
        )?;
        Ok((frr, bird))
    };
    let (frr1, bird1) = pair(&good, "lab-secret", "lab-secret")?;
    let (frr2, bird2) = pair(&bad, "lab-secret", "not-the-secret")?;
    let (f1a, b1a) = (IpAddr::V4(good.a.v4), IpAddr::V4(good.b.v4));
    frr1.wait_established(b1a, UP)?;
    bird1.wait_established(f1a, UP)?;
    bird1.wait_route("198.51.100.0/24", ROUTE, |r| r.peer == Some(f1a))?;

    // The wrong pair started at the same time; it must stay down for several more seconds.
    let (f2a, b2a) = (IpAddr::V4(bad.a.v4), IpAddr::V4(bad.b.v4));
    holds_for(
        "wrong-password sessions not Established",
        Duration::from_secs(5),
        || {
            let f = frr2.peer(b2a).map_err(|e| e.to_string())?;
            let b = bird2.peer(f2a).map_err(|e| e.to_string())?;
            match (&f, &b) {
                (Some(f), Some(b))
                    if f.state != SessionState::Established
                        && b.state != SessionState::Established =>
                {
                    Ok(())
                }
                _ => Err(format!("frr2: {f:?}, bird2: {b:?}")),
            }
        },
    )?;
    ensure!(
        bird2.route(&"198.51.100.0/24".parse()?)?.is_empty(),
        "bird2 got routes without a session"
    );
    Ok(())
}

#[test]
fn peer_as_mismatch_notification_in_frr_log_and_bird_last_error() -> Result<()> {
    skip_unless!(BGPD, "vtysh", "bird", "birdc");
    let lab = Lab::new("as_mismatch")?;
    let (f, b) = (lab.node("frr")?, lab.node("bird")?);
    let l = lab.link(&f, &b)?;
    let (fa, ba) = (IpAddr::V4(l.a.v4), IpAddr::V4(l.b.v4));
    // FRR expects AS 65009; BIRD is AS 65002.
    let frr = Frr::start(
        &lab,
        &f,
        &RouterConfig::new(65001, l.a.v4).neighbor(Neighbor::new(ba, 65009)),
    )?;
    let bird = Bird::start(
        &lab,
        &b,
        &RouterConfig::new(65002, l.b.v4).neighbor(Neighbor::new(fa, 65001)),
    )?;
    frr.wait("a Bad Peer AS NOTIFICATION in bgpd.log", UP, |f| {
        let log = std::fs::read_to_string(f.log_path())?;
        Ok(
            match log
                .lines()
                .find(|l| l.contains("NOTIFICATION") && l.contains("2/2"))
            {
                Some(line) => interop_tests::Check::Done(line.to_string()),
                None => interop_tests::Check::NotYet("no 2/2 NOTIFICATION logged yet".into()),
            },
        )
    })?;
    let err = bird.wait("BIRD's last error to name the bad peer AS", UP, |b| {
        Ok(match b.peer(fa)? {
            Some(p)
                if p.last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("Bad peer AS")) =>
            {
                interop_tests::Check::Done(p)
            }
            other => interop_tests::Check::NotYet(format!("{other:?}")),
        })
    })?;
    assert_ne!(err.state, SessionState::Established);
    Ok(())
}

#[test]
fn graceful_restart_marks_routes_stale_and_a_restart_refreshes_them() -> Result<()> {
    skip_unless!(BGPD, "vtysh", "bird", "birdc");
    let lab = Lab::new("gr_stale")?;
    let (f, b) = (lab.node("frr")?, lab.node("bird")?);
    let l = lab.link(&f, &b)?;
    let (fa, ba) = (IpAddr::V4(l.a.v4), IpAddr::V4(l.b.v4));
    let frr_conf = RouterConfig::new(65001, l.a.v4)
        .graceful_restart(true)
        .neighbor(Neighbor::new(ba, 65002))
        .announce(Announce::new("198.51.100.0/24"));
    let bird_conf = RouterConfig::new(65002, l.b.v4)
        .graceful_restart(true)
        .neighbor(Neighbor::new(fa, 65001))
        .announce(Announce::new("203.0.113.0/24"));
    let frr = Frr::start(&lab, &f, &frr_conf)?;
    let bird = Bird::start(&lab, &b, &bird_conf)?;
    frr.wait_established(ba, UP)?;
    frr.wait_route("203.0.113.0/24", ROUTE, |r| r.peer == Some(ba) && !r.stale)?;
    bird.wait_route("198.51.100.0/24", ROUTE, |r| r.peer == Some(fa) && !r.stale)?;

    // BIRD crashes: FRR (helper) keeps its route, marked stale.
    bird.process().kill9()?;
    let r = frr.wait_route("203.0.113.0/24", ROUTE, |r| r.stale)?;
    assert_eq!(r.as_path, vec![65002]);
    // BIRD comes back with the same config: End-of-RIB, the route is fresh again.
    let bird = Bird::start(&lab, &b, &bird_conf)?;
    frr.wait_established(ba, UP)?;
    frr.wait_route("203.0.113.0/24", ROUTE, |r| r.peer == Some(ba) && !r.stale)?;

    // FRR crashes: BIRD keeps FRR's route while the session is down.
    bird.wait_route("198.51.100.0/24", ROUTE, |r| r.peer == Some(fa) && !r.stale)?;
    frr.process().kill9()?;
    bird.wait_route("198.51.100.0/24", ROUTE, |r| r.peer == Some(fa) && r.stale)?;
    Ok(())
}

#[test]
fn shared_segment_hub_with_bird_gobgp_and_exabgp() -> Result<()> {
    skip_unless!(BGPD, "vtysh", "bird", "birdc", "gobgpd", "gobgp", "exabgp");
    let lab = Lab::new("segment_hub")?;
    let lan = lab.segment("lan", 10)?;
    let nodes = [
        lab.node("hub")?,
        lab.node("bird")?,
        lab.node("gobgp")?,
        lab.node("exabgp")?,
    ];
    let mut ifs = Vec::new();
    for n in &nodes {
        ifs.push(lan.attach(n)?);
    }
    let addr = |i: usize| IpAddr::V4(ifs[i].v4);
    // Layer 2 works across the bridge, spoke to spoke, both families.
    nodes[1].ping(addr(2))?;
    nodes[1].ping(IpAddr::V6(ifs[3].v6))?;

    let spokes = [
        (65001u32, "198.51.100.0/24"),
        (65002, "203.0.113.0/24"),
        (65003, "192.0.2.0/24"),
    ];
    let mut hub_conf = RouterConfig::new(65000, ifs[0].v4);
    for (i, (asn, _)) in spokes.iter().enumerate() {
        hub_conf = hub_conf.neighbor(Neighbor::new(addr(i + 1), *asn));
    }
    let spoke_conf = |i: usize| {
        let (asn, prefix) = spokes[i - 1];
        RouterConfig::new(asn, ifs[i].v4)
            .neighbor(Neighbor::new(addr(0), 65000).local_address(addr(i)))
            .announce(Announce::new(prefix).community(asn as u16, 1))
    };
    let hub = Frr::start(&lab, &nodes[0], &hub_conf)?;
    let bird = Bird::start(&lab, &nodes[1], &spoke_conf(1))?;
    let gobgp = GoBgp::start(&lab, &nodes[2], &spoke_conf(2))?;
    let exa = ExaBgp::start(&lab, &nodes[3], &spoke_conf(3))?;
    for i in 1..=3 {
        hub.wait_established(addr(i), UP)?;
    }
    for (i, (asn, prefix)) in spokes.iter().enumerate() {
        let r = hub.wait_route(prefix, ROUTE, |r| r.peer == Some(addr(i + 1)))?;
        assert_eq!(r.as_path, vec![*asn]);
        assert_eq!(r.communities, vec![Community(*asn as u16, 1)]);
    }
    // Each spoke learns the others' prefixes through the hub.
    let r = bird.wait_route("203.0.113.0/24", ROUTE, |r| r.peer == Some(addr(0)))?;
    assert_eq!(r.as_path, vec![65000, 65002]);
    let r = gobgp.wait_route("192.0.2.0/24", ROUTE, |r| r.peer == Some(addr(0)))?;
    assert_eq!(r.as_path, vec![65000, 65003]);
    let r = exa.wait_route("198.51.100.0/24", ROUTE, |r| r.peer == Some(addr(0)))?;
    assert_eq!(r.as_path, vec![65000, 65001]);
    let peers = hub.peers()?;
    assert_eq!(peers.len(), 3);
    assert!(
        peers
            .iter()
            .all(|p| p.state == SessionState::Established && p.prefixes_received == Some(1)),
        "{peers:?}"
    );
    Ok(())
}

#[test]
fn process_signals_pause_resume_kill9() -> Result<()> {
    skip_unless!("sleep");
    let lab = Lab::new("proc_signals")?;
    let n = lab.node("n")?;
    let mut cmd = n.command("sleep");
    cmd.arg("600");
    let p = lab.spawn(&n, "sleeper", cmd)?;
    interop_tests::wait_until("sleeper running", Duration::from_secs(5), || {
        p.state().filter(|s| *s == 'S')
    })?;
    p.pause()?;
    interop_tests::wait_until("sleeper stopped", Duration::from_secs(5), || {
        p.state().filter(|s| *s == 'T')
    })?;
    p.resume()?;
    interop_tests::wait_until("sleeper continued", Duration::from_secs(5), || {
        p.state().filter(|s| *s != 'T')
    })?;
    let status = p.kill9()?;
    assert!(!p.is_running());
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    // One-shot commands run inside the namespace: only lo exists there.
    let links = n.run_ok(&["ip", "-o", "link"])?;
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains("lo:"), "{links}");
    Ok(())
}

/// What a lab held before it panicked: namespace names, process IDs, its directory.
type LabTrace = (Vec<String>, Vec<u32>, PathBuf);

#[test]
fn cleanup_after_panic_removes_namespaces_processes_and_files() -> Result<()> {
    skip_unless!("bird", "birdc", "sleep");
    let seen: Mutex<Option<LabTrace>> = Mutex::new(None);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let lab = Lab::new("cleanup_panic").expect("lab");
        let a = lab.node("a").expect("node a");
        let b = lab.node("b").expect("node b");
        let l = lab.link(&a, &b).expect("link");
        a.ping(IpAddr::V4(l.b.v4)).expect("ping over the link");
        let mut cmd = a.command("sleep");
        cmd.arg("600");
        lab.spawn(&a, "sleeper", cmd).expect("spawn sleep");
        let _bird = Bird::start(&lab, &b, &RouterConfig::new(65002, l.b.v4)).expect("bird");
        let pids: Vec<u32> = lab.processes().iter().map(|p| p.pid()).collect();
        assert!(pids
            .iter()
            .all(|p| Path::new(&format!("/proc/{p}")).exists()));
        *seen.lock().unwrap() = Some((lab.namespaces(), pids, lab.dir().to_path_buf()));
        panic!("deliberate panic inside a lab");
    }));
    assert!(outcome.is_err(), "the closure should have panicked");
    let (names, pids, dir) = seen.lock().unwrap().take().expect("lab state recorded");
    assert_eq!(names.len(), 2);
    assert_eq!(pids.len(), 2);
    let out = Command::new("ip").args(["netns", "list"]).output()?;
    let list = String::from_utf8_lossy(&out.stdout);
    for n in &names {
        assert!(
            !list.lines().any(|l| l.split_whitespace().next() == Some(n)),
            "{n} still exists:\n{list}"
        );
    }
    for pid in &pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} still exists"
        );
    }
    assert!(!dir.exists(), "{} still exists", dir.display());
    Ok(())
}
