//! BPF_PROG_TEST_RUN of lb.o's tc programs on crafted packets: NAT both ways, checksums
//! recomputed from scratch, connection tracking across backend state changes. Each test runs
//! in a fresh network namespace with its own bpffs, so maps are per test.

use std::net::IpAddr;

use aya::{TestRun, TestRunOptions};
use datapath::bpf_sys;
use datapath::loader::{Datapath, LoadConfig, TC_EGRESS, TC_INGRESS};
use datapath::maps::{
    names, BackendVal, LbAddr, SvcCounters, SvcKey, SvcVal, BE_F_LOCAL, BE_F_TERMINATING,
    BE_F_VALID,
};
use datapath::plan::{FrontendKind, NoBackends, Protocol, Selection, ServicePlan};
use datapath::writer::{read_counters, ApplyStats, Writer};

use crate::env::*;
use crate::pkt::{self, Parsed};

pub const TC_ACT_OK: u32 = 0;
pub const TC_ACT_SHOT: u32 = 2;
pub const TC_ACT_REDIRECT: u32 = 7;

/// Runs a tc program on `packet`; returns the verdict and the packet as the program left it.
pub fn run(dp: &mut Datapath, prog: &str, packet: &[u8]) -> (u32, Vec<u8>) {
    let p = dp.classifier(prog).expect("load classifier");
    let mut out = vec![0u8; packet.len() + 256];
    let r = p
        .test_run(TestRunOptions {
            data_in: Some(packet),
            data_out: Some(&mut out),
            ..Default::default()
        })
        .expect("BPF_PROG_TEST_RUN");
    out.truncate(r.data_size_out as usize);
    (r.return_value, out)
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Backend ids the kernel's backend array holds as valid.
fn valid_backends(w: &Writer) -> Vec<u32> {
    w.maps()
        .backends
        .as_slice()
        .iter()
        .enumerate()
        .filter(|(_, v)| v.flags & BE_F_VALID != 0)
        .map(|(i, _)| i as u32)
        .collect()
}

pub struct Fixture {
    pub dp: Datapath,
    pub w: Writer,
}

pub fn fixture(bpffs: &Bpffs, cfg: impl FnOnce(&mut LoadConfig)) -> Fixture {
    let mut c = LoadConfig::new(&bpffs.path);
    cfg(&mut c);
    let dp = Datapath::load(&c).expect("load objects");
    let w = Writer::open(&bpffs.path, writer_cfg(vec![])).expect("open writer");
    Fixture { dp, w }
}

#[test]
fn dnat_to_local_backend_and_reverse_nat_keep_checksums_tcp_udp_v4_v6() {
    in_netns_with_bpffs("pr-dnat", move |fs| {
        let mut f = fixture(fs, |_| {});
        let cases = [
            ("10.99.200.10", "10.99.201.5", "10.99.202.7"),
            ("fd00:99:200::10", "fd00:99:201::5", "fd00:99:202::7"),
        ];
        let mut plans = Vec::new();
        for (vip, backend, _) in cases {
            for proto in [Protocol::Tcp, Protocol::Udp] {
                plans.push(plan(
                    &format!("{vip}-{proto:?}"),
                    FrontendKind::LoadBalancer,
                    vip,
                    80,
                    proto,
                    vec![be(backend, 8080, true)],
                ));
            }
        }
        let st = f.w.apply(&plans).expect("apply");
        assert_eq!(st.services_written, 4);
        for (vip, backend, client) in cases {
            for proto in [pkt::TCP, pkt::UDP] {
                let syn = pkt::build(ip(client), ip(vip), 40000, 80, proto, b"hello");
                let (verdict, out) = run(&mut f.dp, TC_INGRESS, &syn);
                assert_eq!(verdict, TC_ACT_OK, "{vip} proto {proto}");
                assert_eq!(
                    pkt::parse_checked(&out),
                    Parsed {
                        src: ip(client),
                        dst: ip(backend),
                        sport: 40000,
                        dport: 8080
                    },
                    "DNAT {vip} proto {proto}"
                );
                let reply = pkt::build(ip(backend), ip(client), 8080, 40000, proto, b"world!");
                let (verdict, out) = run(&mut f.dp, TC_EGRESS, &reply);
                assert_eq!(verdict, TC_ACT_OK);
                assert_eq!(
                    pkt::parse_checked(&out),
                    Parsed {
                        src: ip(vip),
                        dst: ip(client),
                        sport: 80,
                        dport: 40000
                    },
                    "reverse NAT {vip} proto {proto}"
                );
            }
        }
        // ClusterIP is the socket hooks' job: tc leaves it alone.
        f.w.apply(&[plan(
            "cip",
            FrontendKind::ClusterIp,
            "10.99.203.1",
            80,
            Protocol::Tcp,
            vec![be("10.99.201.5", 8080, true)],
        )])
        .expect("apply");
        let syn = pkt::build(
            ip("10.99.202.7"),
            ip("10.99.203.1"),
            40001,
            80,
            pkt::TCP,
            b"",
        );
        let (verdict, out) = run(&mut f.dp, TC_INGRESS, &syn);
        assert_eq!(verdict, TC_ACT_OK);
        assert_eq!(out, syn, "a ClusterIP packet is not touched by tc");
    });
}

#[test]
fn remote_backend_gets_snat_to_node_address_and_replies_are_reversed() {
    in_netns_with_bpffs("pr-snat", move |fs| {
        let mut f = fixture(fs, |c| {
            c.node_ip4 = Some("10.99.210.1".parse().unwrap());
            c.node_ip6 = Some("fd00:99:210::1".parse().unwrap());
            c.snat_ports = (40000, 40100);
        });
        let cases = [
            ("10.99.210.100", "10.99.211.5", "10.99.212.7", "10.99.210.1"),
            (
                "fd00:99:210::100",
                "fd00:99:211::5",
                "fd00:99:212::7",
                "fd00:99:210::1",
            ),
        ];
        let plans: Vec<ServicePlan> = cases
            .iter()
            .flat_map(|(vip, backend, _, _)| {
                [Protocol::Tcp, Protocol::Udp].map(|proto| {
                    plan(
                        &format!("{vip}{proto:?}"),
                        FrontendKind::NodePort,
                        vip,
                        30080,
                        proto,
                        vec![be(backend, 8080, false)],
                    )
                })
            })
            .collect();
        f.w.apply(&plans).expect("apply");
        for (vip, backend, client, node) in cases {
            for proto in [pkt::TCP, pkt::UDP] {
                let syn = pkt::build(ip(client), ip(vip), 51000, 30080, proto, b"abc");
                let (verdict, out) = run(&mut f.dp, TC_INGRESS, &syn);
                assert!(
                    verdict == TC_ACT_OK || verdict == TC_ACT_REDIRECT,
                    "verdict {verdict}"
                );
                let fwd = pkt::parse_checked(&out);
                assert_eq!((fwd.src, fwd.dst, fwd.dport), (ip(node), ip(backend), 8080));
                assert!(
                    (40000..=40100).contains(&fwd.sport),
                    "SNAT port {}",
                    fwd.sport
                );
                // A second packet of the flow keeps its SNAT port.
                let (_, again) = run(&mut f.dp, TC_INGRESS, &syn);
                assert_eq!(pkt::parse_checked(&again), fwd);

                let reply = pkt::build(ip(backend), ip(node), 8080, fwd.sport, proto, b"reply");
                let (verdict, out) = run(&mut f.dp, TC_INGRESS, &reply);
                assert!(
                    verdict == TC_ACT_OK || verdict == TC_ACT_REDIRECT,
                    "verdict {verdict}"
                );
                assert_eq!(
                    pkt::parse_checked(&out),
                    Parsed {
                        src: ip(vip),
                        dst: ip(client),
                        sport: 30080,
                        dport: 51000
                    },
                    "reverse SNAT+DNAT {vip} proto {proto}"
                );
            }
        }
    });
}

#[test]
fn terminating_backend_keeps_its_flows_and_a_deleted_one_is_reselected() {
    in_netns_with_bpffs("pr-term", move |fs| {
        let mut f = fixture(fs, |_| {});
        let (vip, client) = ("10.99.220.100", "10.99.222.7");
        let b1 = be("10.99.221.1", 8080, true);
        let b2 = be("10.99.221.2", 8080, true);
        let mut p = plan(
            "term",
            FrontendKind::LoadBalancer,
            vip,
            80,
            Protocol::Tcp,
            vec![b1.clone(), b2.clone()],
        );
        f.w.apply(std::slice::from_ref(&p)).expect("apply");
        let flow = pkt::build(ip(client), ip(vip), 42000, 80, pkt::TCP, b"");
        let (_, out) = run(&mut f.dp, TC_INGRESS, &flow);
        let first = pkt::parse_checked(&out).dst;
        let (chosen, other) = if first == b1.addr { (b1, b2) } else { (b2, b1) };
        assert_eq!(first, chosen.addr);

        // The chosen backend turns terminating: its flow stays, new flows avoid it.
        p.active = vec![other.clone()];
        p.terminating = vec![chosen.clone()];
        f.w.apply(std::slice::from_ref(&p))
            .expect("apply terminating");
        let (_, out) = run(&mut f.dp, TC_INGRESS, &flow);
        assert_eq!(
            pkt::parse_checked(&out).dst,
            chosen.addr,
            "established flow moved"
        );
        for sport in 43000..43032 {
            let (_, out) = run(
                &mut f.dp,
                TC_INGRESS,
                &pkt::build(ip(client), ip(vip), sport, 80, pkt::TCP, b""),
            );
            assert_eq!(
                pkt::parse_checked(&out).dst,
                other.addr,
                "new flow {sport} hit a terminating backend"
            );
        }

        // The endpoint is deleted: the flow is reselected to a live backend, never dropped.
        p.terminating.clear();
        let st = f.w.apply(std::slice::from_ref(&p)).expect("apply delete");
        assert_eq!(st.backends_deleted, 1);
        let (verdict, out) = run(&mut f.dp, TC_INGRESS, &flow);
        assert_eq!(verdict, TC_ACT_OK);
        assert_eq!(
            pkt::parse_checked(&out).dst,
            other.addr,
            "deleted backend's flow not reselected"
        );

        // No backends at all: refused with a TCP reset sent back (reject.rs checks the
        // reset), never silently dropped.
        p.active.clear();
        f.w.apply(std::slice::from_ref(&p)).expect("apply empty");
        let fresh = pkt::build(ip(client), ip(vip), 44000, 80, pkt::TCP, b"");
        let (verdict, _) = run(&mut f.dp, TC_INGRESS, &fresh);
        assert_eq!(verdict, TC_ACT_REDIRECT);
    });
}

#[test]
fn source_ranges_admit_only_listed_clients() {
    in_netns_with_bpffs("pr-src", move |fs| {
        let mut f = fixture(fs, |_| {});
        let mut p = plan(
            "src",
            FrontendKind::LoadBalancer,
            "10.99.230.100",
            443,
            Protocol::Tcp,
            vec![be("10.99.231.1", 8443, true)],
        );
        p.source_ranges = vec!["10.99.232.0/24".parse().unwrap()];
        let mut p6 = plan(
            "src6",
            FrontendKind::LoadBalancer,
            "fd00:99:230::100",
            443,
            Protocol::Tcp,
            vec![be("fd00:99:231::1", 8443, true)],
        );
        p6.source_ranges = vec!["fd00:99:232::/64".parse().unwrap()];
        f.w.apply(&[p, p6]).expect("apply");
        for (vip, ok, denied) in [
            ("10.99.230.100", "10.99.232.9", "10.99.233.9"),
            ("fd00:99:230::100", "fd00:99:232::9", "fd00:99:233::9"),
        ] {
            let (v, _) = run(
                &mut f.dp,
                TC_INGRESS,
                &pkt::build(ip(ok), ip(vip), 1234, 443, pkt::TCP, b""),
            );
            assert_eq!(v, TC_ACT_OK, "{ok} is in the range");
            let (v, _) = run(
                &mut f.dp,
                TC_INGRESS,
                &pkt::build(ip(denied), ip(vip), 1234, 443, pkt::TCP, b""),
            );
            assert_eq!(v, TC_ACT_SHOT, "{denied} is outside the range");
        }
    });
}

#[test]
fn maglev_picks_the_same_backend_for_a_flow_on_every_node() {
    let pick = |tag: &'static str| -> Vec<IpAddr> {
        in_netns_with_bpffs(tag, move |fs| {
            let mut f = fixture(fs, |_| {});
            let mut p = plan(
                "mag",
                FrontendKind::LoadBalancer,
                "10.99.240.100",
                80,
                Protocol::Tcp,
                (1..=4)
                    .map(|i| be(&format!("10.99.241.{i}"), 8080, true))
                    .collect(),
            );
            p.selection = Selection::Maglev { table_size: 251 };
            let st = f.w.apply(&[p]).expect("apply");
            assert_eq!(st.maglev_tables, 1);
            (0..64)
                .map(|i| {
                    let syn = pkt::build(
                        ip("10.99.242.7"),
                        ip("10.99.240.100"),
                        20000 + i,
                        80,
                        pkt::TCP,
                        b"",
                    );
                    pkt::parse_checked(&run(&mut f.dp, TC_INGRESS, &syn).1).dst
                })
                .collect()
        })
    };
    let node_a = pick("pr-mag-a");
    let node_b = pick("pr-mag-b");
    assert_eq!(
        node_a, node_b,
        "two nodes (fresh CT each) chose differently"
    );
    let distinct: std::collections::BTreeSet<_> = node_a.iter().collect();
    assert!(distinct.len() >= 3, "64 flows used only {distinct:?}");
}

#[test]
fn restarted_writer_adopts_the_maps_and_writes_only_differences() {
    in_netns_with_bpffs("pr-adopt", move |fs| {
        let f = fixture(fs, |_| {});
        let mut w = f.w;
        let mut plans: Vec<ServicePlan> = (0..50u16)
            .map(|i| {
                let mut p = plan(
                    &format!("s{i}"),
                    FrontendKind::LoadBalancer,
                    &format!("10.99.250.{}", i + 1),
                    80,
                    Protocol::Tcp,
                    (1..=3)
                        .map(|b| be(&format!("10.99.251.{}", i * 3 + b), 8080, true))
                        .collect(),
                );
                if i % 5 == 0 {
                    p.selection = Selection::Maglev { table_size: 131 };
                }
                if i % 7 == 0 {
                    p.source_ranges = vec!["10.99.252.0/24".parse().unwrap()];
                    p.affinity_timeout = Some(60);
                }
                p
            })
            .collect();
        let st = w.apply(&plans).expect("apply");
        assert_eq!(
            (st.services_written, st.backends_written, st.maglev_tables),
            (50, 150, 10)
        );
        assert_eq!(
            w.apply(&plans).expect("re-apply").writes(),
            0,
            "same writer, same plans"
        );
        drop(w);

        // A second writer (the restarted agent) adopts the pins.
        let mut w2 = Writer::open(&fs.path, writer_cfg(vec![])).expect("adopt");
        assert_eq!(w2.service_count(), 50);
        assert_eq!(
            w2.apply(&plans).expect("adopt apply"),
            ApplyStats {
                frontends_adopted: 50,
                ..Default::default()
            },
            "adoption rewrote state, or resolved plans the maps already held"
        );

        // One backend of one service changes: only that service's slots flip.
        plans[3].active[1] = be("10.99.253.1", 8080, true);
        let st = w2.apply(&plans).expect("one change");
        assert_eq!(
            (
                st.backends_written,
                st.backends_deleted,
                st.services_written,
                st.slots_written,
                st.slots_deleted
            ),
            (1, 1, 1, 3, 3)
        );
        // A removed service leaves nothing behind.
        plans.truncate(49);
        let st = w2.apply(&plans).expect("remove one");
        assert_eq!((st.services_deleted, st.backends_deleted), (1, 3));
        let m = w2.maps();
        assert_eq!(m.svc.keys().unwrap().len(), 49);
        assert_eq!(valid_backends(&w2).len(), 49 * 3);
    });
}

#[test]
fn an_adopting_writer_claims_matching_plans_by_comparison_and_resolves_only_the_others() {
    in_netns_with_bpffs("pr-claim", move |fs| {
        let node: IpAddr = ip("10.99.190.1");
        let f = fixture(fs, |_| {});
        let mut w = Writer::open(&fs.path, writer_cfg(vec![node])).expect("writer");
        drop(f.w);
        let b = |i: u8| be(&format!("10.99.191.{i}"), 8080, true);
        // A: one active, one terminating. B: two active. C: a NodePort on every node address.
        // D: Maglev with source ranges and affinity.
        let mut a = plan(
            "a",
            FrontendKind::LoadBalancer,
            "10.99.190.10",
            80,
            Protocol::Tcp,
            vec![b(1)],
        );
        a.terminating = vec![b(2)];
        let bb = plan(
            "b",
            FrontendKind::LoadBalancer,
            "10.99.190.11",
            80,
            Protocol::Tcp,
            vec![b(4), b(3)],
        );
        let c = plan(
            "c",
            FrontendKind::NodePort,
            "0.0.0.0",
            30080,
            Protocol::Tcp,
            vec![b(5)],
        );
        let mut d = plan(
            "d",
            FrontendKind::LoadBalancer,
            "10.99.190.12",
            443,
            Protocol::Tcp,
            vec![b(6), b(7)],
        );
        d.selection = Selection::Maglev { table_size: 131 };
        d.source_ranges = vec!["10.99.192.0/24".parse().unwrap()];
        d.affinity_timeout = Some(30);
        let mut plans = vec![a, bb, c, d];
        w.apply(&plans).expect("apply");
        let before = snap(&w);
        drop(w);

        // Same plans (B's backends in another order): all four claimed, nothing written, and the
        // terminating backend kept.
        plans[1].active.reverse();
        let mut w2 = Writer::open(&fs.path, writer_cfg(vec![node])).expect("adopt");
        let st = w2.apply(&plans).expect("adopt apply");
        assert_eq!(
            st,
            ApplyStats {
                frontends_adopted: 4,
                ..Default::default()
            }
        );
        let after = snap(&w2);
        assert_eq!(before.svc, after.svc);
        assert!(before.backends == after.backends);
        let term = w2
            .backend_id(b(2).addr, 8080)
            .expect("terminating backend kept");
        assert_eq!(
            after.backends[term as usize].flags,
            BE_F_VALID | BE_F_LOCAL | BE_F_TERMINATING
        );
        // The claimed state is the writer's own: the endpoint goes, the backend with it.
        plans[0].terminating.clear();
        let st = w2.apply(&plans).expect("terminating endpoint deleted");
        assert_eq!((st.backends_deleted, st.writes()), (1, 1), "{st:?}");
        assert_eq!(w2.backend_id(b(2).addr, 8080), None);
        drop(w2);

        // A third writer with one plan changed (B) and one gone (D): the two others are claimed,
        // B is resolved and written, D's entry and backends removed.
        plans[1].active[0] = b(8);
        let d = plans.pop().expect("d");
        let mut w3 = Writer::open(&fs.path, writer_cfg(vec![node])).expect("adopt");
        let st = w3.apply(&plans).expect("adopt apply");
        assert_eq!(
            (
                st.frontends_adopted,
                st.services_written,
                st.services_deleted,
                st.backends_written,
                st.backends_deleted
            ),
            (2, 1, 1, 1, 3),
            "{st:?}"
        );
        assert!(w3.service_id(d.frontend.addr, 443, Protocol::Tcp).is_none());
        let syn = pkt::build(
            ip("10.99.193.7"),
            plans[1].frontend.addr,
            41000,
            80,
            pkt::TCP,
            b"",
        );
        let mut dp = f.dp;
        let (_, out) = run(&mut dp, TC_INGRESS, &syn);
        let to = pkt::parse_checked(&out).dst;
        assert!(
            to == b(4).addr || to == b(8).addr,
            "B's traffic went to {to}"
        );
        assert_eq!(w3.apply(&plans).expect("again").writes(), 0);
    });
}

/// What the kernel maps hold, for before/after comparisons.
struct Snap {
    svc: std::collections::BTreeMap<SvcKey, SvcVal>,
    backends: Vec<BackendVal>,
    slots: Vec<u32>,
}

fn snap(w: &Writer) -> Snap {
    Snap {
        svc: w.maps().svc.entries().unwrap().into_iter().collect(),
        backends: w.maps().backends.as_slice().to_vec(),
        slots: w.maps().slot_ids().to_vec(),
    }
}

fn changed_indices<T: PartialEq>(a: &[T], b: &[T]) -> Vec<usize> {
    (0..a.len()).filter(|i| a[*i] != b[*i]).collect()
}

fn changed_keys(a: &Snap, b: &Snap) -> Vec<SvcKey> {
    let keys: std::collections::BTreeSet<SvcKey> =
        a.svc.keys().chain(b.svc.keys()).copied().collect();
    keys.into_iter()
        .filter(|k| a.svc.get(k) != b.svc.get(k))
        .collect()
}

fn key_of(p: &ServicePlan) -> SvcKey {
    SvcKey {
        addr: LbAddr::from_ip(p.frontend.addr),
        port_be: p.frontend.port.to_be(),
        proto: 6,
        pad: 0,
    }
}

/// 200 LoadBalancer services x 3 backends on 10.99.160.0/24 (VIPs) and 10.99.161.0/24.
fn many_plans() -> Vec<ServicePlan> {
    (0..200u16)
        .map(|i| {
            plan(
                &format!("s{i}"),
                FrontendKind::LoadBalancer,
                &format!("10.99.160.{}", i + 1),
                80,
                Protocol::Tcp,
                (0..3)
                    .map(|j| {
                        let b = i * 3 + j;
                        be(&format!("10.99.161.{}", b % 250 + 1), 8000 + b / 250, true)
                    })
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn one_service_change_writes_exactly_its_own_entries() {
    in_netns_with_bpffs("pr-incr", move |fs| {
        let mut f = fixture(fs, |_| {});
        let mut plans = many_plans();
        f.w.apply(&plans).expect("apply");
        let k = key_of(&plans[77]);

        // A backend added.
        let before = snap(&f.w);
        let added = be("10.99.162.1", 9000, true);
        plans[77].active.push(added.clone());
        let st = f.w.apply_changes(&[plans[77].clone()], &[]).expect("add");
        let after = snap(&f.w);
        assert_eq!(
            changed_keys(&before, &after),
            vec![k],
            "other services were written"
        );
        let new_id =
            f.w.backend_id(added.addr, added.port)
                .expect("new backend id");
        assert_eq!(
            changed_indices(&before.backends, &after.backends),
            vec![new_id as usize]
        );
        assert_eq!(
            after.backends[new_id as usize].flags,
            BE_F_VALID | BE_F_LOCAL
        );
        let v = after.svc[&k];
        assert_eq!(v.count, 4);
        let region = v.slot_base as usize..v.slot_base as usize + 4;
        let slot_changes = changed_indices(&before.slots, &after.slots);
        assert!(
            slot_changes.iter().all(|i| region.contains(i)),
            "slots written outside the new region {region:?}: {slot_changes:?}"
        );
        let mut want: Vec<u32> = plans[77]
            .active
            .iter()
            .map(|b| f.w.backend_id(b.addr, b.port).unwrap())
            .collect();
        let mut got = after.slots[region].to_vec();
        want.sort();
        got.sort();
        assert_eq!(got, want);
        assert_eq!(
            (
                st.backends_written,
                st.services_written,
                st.slots_written,
                st.slots_deleted
            ),
            (1, 1, 4, 3)
        );
        assert_eq!(st.writes(), 9);

        // One turns terminating: its flag, and the service's entry, nothing else.
        let before = after;
        let term = plans[77].active.remove(0);
        plans[77].terminating.push(term.clone());
        let st =
            f.w.apply_changes(&[plans[77].clone()], &[])
                .expect("terminating");
        let after = snap(&f.w);
        assert_eq!(changed_keys(&before, &after), vec![k]);
        let tid = f.w.backend_id(term.addr, term.port).expect("still there") as usize;
        assert_eq!(
            changed_indices(&before.backends, &after.backends),
            vec![tid]
        );
        assert_eq!(
            after.backends[tid].flags,
            BE_F_VALID | BE_F_LOCAL | BE_F_TERMINATING
        );
        assert_eq!(after.svc[&k].count, 3);
        assert_eq!(
            (st.services_written, st.slots_written, st.backends_written),
            (1, 3, 1)
        );

        // It is deleted: only the backend goes (the service's slots are already right).
        let before = after;
        plans[77].terminating.clear();
        let st =
            f.w.apply_changes(&[plans[77].clone()], &[])
                .expect("delete");
        let after = snap(&f.w);
        assert!(changed_keys(&before, &after).is_empty());
        assert_eq!(
            changed_indices(&before.backends, &after.backends),
            vec![tid]
        );
        assert_eq!(after.backends[tid].flags & BE_F_VALID, 0);
        assert_eq!((st.backends_deleted, st.writes()), (1, 1));
        assert_eq!(f.w.backend_id(term.addr, term.port), None);

        // A removed frontend: its entry, its backends.
        let gone = plans.remove(10);
        let st = f.w.apply_changes(&[], &[gone.frontend]).expect("remove");
        assert_eq!((st.services_deleted, st.backends_deleted), (1, 3));
        assert!(f.w.maps().svc.get(&key_of(&gone)).unwrap().is_none());

        // The full apply of the same plans agrees: nothing to write.
        assert_eq!(f.w.apply(&plans).expect("full").writes(), 0);
    });
}

#[test]
fn a_failed_update_leaves_the_previous_state_serving_with_a_clear_error() {
    in_netns_with_bpffs("pr-fail", move |fs| {
        let mut f = fixture(fs, |_| {});
        let mut plans = many_plans();
        f.w.apply(&plans).expect("apply");
        let serving = |s: &Snap, p: &ServicePlan| -> Vec<u32> {
            let v = s.svc[&key_of(p)];
            let ids = s.slots[v.slot_base as usize..(v.slot_base + v.count) as usize].to_vec();
            for id in &ids {
                assert_ne!(
                    s.backends[*id as usize].flags & BE_F_VALID,
                    0,
                    "backend {id} gone"
                );
            }
            ids
        };

        // Before the flip: a source range cannot be inserted. Nothing that serves changes.
        let before = snap(&f.w);
        let mut p5 = plans[5].clone();
        p5.source_ranges = vec!["10.99.163.0/24".parse().unwrap()];
        let mut p6 = plans[6].clone();
        p6.active[0] = be("10.99.162.6", 9000, true);
        bpf_sys::fault::fail(names::SRCRANGE, "update", 0, 0, libc::ENOMEM);
        let e =
            f.w.apply_changes(&[p5.clone(), p6.clone()], &[])
                .unwrap_err();
        bpf_sys::fault::clear();
        assert!(e.to_string().contains("lb_srcrange_v3"), "{e}");
        let after = snap(&f.w);
        assert!(
            changed_keys(&before, &after).is_empty(),
            "a service flipped"
        );
        assert_eq!(serving(&after, &plans[6]), serving(&before, &plans[6]));
        assert_eq!(f.w.backend_id("10.99.162.6".parse().unwrap(), 9000), None);
        assert_eq!(
            valid_backends(&f.w).len(),
            600,
            "the unused new backend stayed"
        );

        // The flip stops after the first of three services.
        let before = snap(&f.w);
        let changed: Vec<ServicePlan> = (10..13)
            .map(|i| {
                let mut p = plans[i].clone();
                p.active[1] = be(&format!("10.99.162.{i}"), 9000, true);
                p
            })
            .collect();
        bpf_sys::fault::fail(names::SVC, "update batch", 0, 1, libc::E2BIG);
        let e = f.w.apply_changes(&changed, &[]).unwrap_err();
        bpf_sys::fault::clear();
        let msg = e.to_string();
        assert!(msg.contains("lb_svc_v3") && msg.contains("1 of 3"), "{msg}");
        let after = snap(&f.w);
        assert_eq!(changed_keys(&before, &after), vec![key_of(&changed[0])]);
        for (i, p) in plans.iter().enumerate().take(13).skip(11) {
            assert_eq!(
                serving(&after, p),
                serving(&before, p),
                "service {i} does not serve its previous backends"
            );
            assert_eq!(
                f.w.backend_id(format!("10.99.162.{i}").parse().unwrap(), 9000),
                None
            );
        }
        // ...and packets to an unflipped service still reach one of its previous backends.
        let old: Vec<IpAddr> = plans[11].active.iter().map(|b| b.addr).collect();
        let syn = pkt::build(
            ip("10.99.164.7"),
            plans[11].frontend.addr,
            45000,
            80,
            pkt::TCP,
            b"",
        );
        let (verdict, out) = run(&mut f.dp, TC_INGRESS, &syn);
        assert_eq!(verdict, TC_ACT_OK);
        assert!(old.contains(&pkt::parse_checked(&out).dst));

        // Retried: the two that did not flip are written now, the first is already right.
        let st = f.w.apply_changes(&changed, &[]).expect("retry");
        assert_eq!(st.services_written, 2);
        for (i, p) in changed.iter().enumerate() {
            plans[10 + i] = p.clone();
        }
        assert_eq!(f.w.apply(&plans).expect("full").writes(), 0);
    });
}

#[test]
fn counters_count_packets_bytes_connections_and_drops_per_service() {
    in_netns_with_bpffs("pr-ctr", move |fs| {
        let mut f = fixture(fs, |_| {});
        let a = plan(
            "ctr-a",
            FrontendKind::LoadBalancer,
            "10.99.170.100",
            80,
            Protocol::Tcp,
            vec![be("10.99.171.1", 8080, true), be("10.99.171.2", 8080, true)],
        );
        let mut b = plan(
            "ctr-b",
            FrontendKind::LoadBalancer,
            "10.99.170.101",
            80,
            Protocol::Tcp,
            vec![],
        );
        b.no_backends = NoBackends::Drop;
        f.w.apply(&[a.clone(), b.clone()]).expect("apply");
        let client = ip("10.99.172.7");
        let flow1 = pkt::build(client, a.frontend.addr, 41000, 80, pkt::TCP, b"one");
        let flow2 = pkt::build(client, a.frontend.addr, 41001, 80, pkt::TCP, b"second");
        for p in [&flow1, &flow1, &flow2] {
            assert_eq!(run(&mut f.dp, TC_INGRESS, p).0, TC_ACT_OK);
        }
        let to_b = pkt::build(client, b.frontend.addr, 41002, 80, pkt::TCP, b"");
        assert_eq!(run(&mut f.dp, TC_INGRESS, &to_b).0, TC_ACT_SHOT);

        let cs = f.w.counters().expect("counters");
        let of = |name: &str| {
            cs.iter()
                .find(|c| c.service.as_deref() == Some(name))
                .unwrap_or_else(|| panic!("no counters for {name}: {cs:?}"))
                .counters
        };
        assert_eq!(
            of("test/ctr-a"),
            SvcCounters {
                packets: 3,
                bytes: (2 * flow1.len() + flow2.len()) as u64,
                connections: 2,
                dropped: 0
            }
        );
        assert_eq!(
            of("test/ctr-b"),
            SvcCounters {
                packets: 1,
                bytes: to_b.len() as u64,
                connections: 0,
                dropped: 1
            }
        );
        // A reader that does not own the maps sees the same.
        let read = read_counters(&fs.path).expect("read pins");
        let a_id = f.w.service_id(a.frontend.addr, 80, Protocol::Tcp).unwrap();
        let (_, _, c) = read
            .iter()
            .find(|(_, v, _)| v.svc_id == a_id)
            .expect("a in pins");
        assert_eq!(*c, of("test/ctr-a"));

        // A removed service's counters are cleared, so a reused id starts from zero.
        f.w.apply(&[b.clone()]).expect("remove a");
        let ncpus = bpf_sys::possible_cpus().unwrap();
        let per =
            f.w.maps()
                .counters
                .percpu_get(&a_id, ncpus)
                .unwrap()
                .unwrap();
        assert!(per.iter().all(|c| *c == SvcCounters::default()), "{per:?}");
    });
}
