//! Scale: 100,000 LoadBalancer services x 10 backends (1,000,000 backends) programmed through
//! the Writer into one namespace's own bpffs, then crafted packets (BPF_PROG_TEST_RUN) to the
//! first, a middle and the last service, and to one whose service id and backend ids are all
//! above 65535 (32-bit ids in use): each is DNATed to one of its own backends.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use datapath::loader::{TC_EGRESS, TC_INGRESS};
use datapath::maps::BE_F_VALID;
use datapath::plan::{BackendAddr, FrontendKind, Protocol, ServicePlan};

use crate::env::*;
use crate::pkt::{self, Parsed};
use crate::prog_run::{fixture, ip, run, TC_ACT_OK};

const SERVICES: u32 = 100_000;
const BACKENDS: u32 = 10;

/// Backend n: 10.99.0.0/16 cycled, the port counting the cycles (only map contents: nothing is
/// sent to these addresses).
fn backend(n: u32) -> BackendAddr {
    BackendAddr {
        addr: IpAddr::V4(Ipv4Addr::from(0x0a63_0000 + (n % 65536))),
        port: 1024 + (n / 65536) as u16,
        local: true,
    }
}

/// Service i: VIP 10.99.0.0/16 cycled, port 80 + the cycle.
fn service(i: u32) -> ServicePlan {
    plan(
        &format!("s{i}"),
        FrontendKind::LoadBalancer,
        &Ipv4Addr::from(0x0a63_0000 + (i % 65536)).to_string(),
        80 + (i / 65536) as u16,
        Protocol::Tcp,
        (0..BACKENDS).map(|b| backend(i * BACKENDS + b)).collect(),
    )
}

#[test]
fn a_million_backends_and_100k_services_load_and_serve_with_32_bit_ids() {
    in_netns_with_bpffs("scale", move |fs| {
        let mut f = fixture(fs, |_| {});
        let plans: Vec<ServicePlan> = (0..SERVICES).map(service).collect();
        let t = Instant::now();
        let st = f.w.apply(&plans).expect("program 100k x 10");
        println!(
            "programmed {SERVICES} services x {BACKENDS} backends in {:?}",
            t.elapsed()
        );
        assert_eq!(
            (st.services_written, st.backends_written, st.slots_written),
            (100_000, 1_000_000, 1_000_000)
        );
        let valid =
            f.w.maps()
                .backends
                .as_slice()
                .iter()
                .filter(|v| v.flags & BE_F_VALID != 0)
                .count();
        assert_eq!(valid, 1_000_000, "valid backends in lb_backend_v3");
        assert_eq!(f.w.maps().svc.keys().expect("svc keys").len(), 100_000);

        // The first service whose id and backend ids are all past 16 bits.
        let wide = (0..SERVICES)
            .find(|i| {
                let p = &plans[*i as usize];
                let id =
                    f.w.service_id(p.frontend.addr, p.frontend.port, Protocol::Tcp);
                id.is_some_and(|id| id > 65535)
                    && p.active
                        .iter()
                        .all(|b| f.w.backend_id(b.addr, b.port).is_some_and(|id| id > 65535))
            })
            .expect("a service with 32-bit ids");
        let client = ip("10.99.254.7");
        for (n, i) in [0, SERVICES / 2, SERVICES - 1, wide]
            .into_iter()
            .enumerate()
        {
            let p = &plans[i as usize];
            let fe = p.frontend;
            let svc_id =
                f.w.service_id(fe.addr, fe.port, Protocol::Tcp)
                    .expect("svc id");
            let own: BTreeSet<(IpAddr, u16)> = p.active.iter().map(|b| (b.addr, b.port)).collect();
            // A few flows each, so random selection shows it stays inside the service.
            for k in 0..4u16 {
                let sport = 40000 + 10 * n as u16 + k;
                let syn = pkt::build(client, fe.addr, sport, fe.port, pkt::TCP, b"");
                let (verdict, out) = run(&mut f.dp, TC_INGRESS, &syn);
                assert_eq!(verdict, TC_ACT_OK, "service {i}");
                let got = pkt::parse_checked(&out);
                assert!(
                    got.src == client && own.contains(&(got.dst, got.dport)),
                    "service {i} (id {svc_id}) DNATed to {}:{}, not one of its backends {own:?}",
                    got.dst,
                    got.dport
                );
                let reply = pkt::build(got.dst, client, got.dport, sport, pkt::TCP, b"");
                let (_, back) = run(&mut f.dp, TC_EGRESS, &reply);
                assert_eq!(
                    pkt::parse_checked(&back),
                    Parsed {
                        src: fe.addr,
                        dst: client,
                        sport: fe.port,
                        dport: sport
                    },
                    "service {i}: reverse NAT"
                );
            }
            println!("service {i}: id {svc_id}, DNAT to its own backends");
        }
    });
}
