//! Connection tracking of lb.o on crafted packets (BPF_PROG_TEST_RUN): TCP state and lifetimes,
//! and direct connections (not load-balanced here) that reuse the tuple of a load-balanced flow
//! to the same backend. Each test: a fresh network namespace with its own bpffs.
//!
//! The client and its backend are "local" (no SNAT): lb_ingress sees the client's packets (to
//! the VIP, or straight to the backend as a socket-LB ClusterIP client sends them), lb_egress
//! the backend's answers.

use std::net::IpAddr;

use datapath::loader::{CtLifetimes, TC_EGRESS, TC_INGRESS};
use datapath::plan::{FrontendKind, Protocol};

use crate::env::*;
use crate::pkt::{self, Parsed, ACK, FIN, SYN};
use crate::prog_run::{fixture, ip, run, Fixture, TC_ACT_OK};

const VIP_PORT: u16 = 80;
const BE_PORT: u16 = 8080;

struct Flow {
    client: IpAddr,
    vip: IpAddr,
    backend: IpAddr,
    proto: u8,
}

impl Flow {
    /// The client sends to the VIP from `port`: the packet must be DNATed to the backend.
    fn send_vip(&self, f: &mut Fixture, port: u16, flags: u8) {
        let p = pkt::build_flags(
            self.client,
            self.vip,
            port,
            VIP_PORT,
            self.proto,
            flags,
            b"c",
        );
        let (verdict, out) = run(&mut f.dp, TC_INGRESS, &p);
        assert_eq!(verdict, TC_ACT_OK);
        assert_eq!(
            pkt::parse_checked(&out),
            Parsed {
                src: self.client,
                dst: self.backend,
                sport: port,
                dport: BE_PORT
            },
            "client :{port} -> VIP (flags {flags:#x}) not DNATed to the backend"
        );
    }

    /// The client sends straight to the backend from `port`: lb_ingress must leave it alone.
    fn send_backend(&self, f: &mut Fixture, port: u16, flags: u8) {
        let p = pkt::build_flags(
            self.client,
            self.backend,
            port,
            BE_PORT,
            self.proto,
            flags,
            b"d",
        );
        let (verdict, out) = run(&mut f.dp, TC_INGRESS, &p);
        assert_eq!(
            (verdict, out),
            (TC_ACT_OK, p),
            "direct packet :{port} touched"
        );
    }

    /// The backend answers the client's `port`; returns where lb_egress sends it from.
    fn answer(&self, f: &mut Fixture, port: u16, flags: u8) -> (IpAddr, u16) {
        let p = pkt::build_flags(
            self.backend,
            self.client,
            BE_PORT,
            port,
            self.proto,
            flags,
            b"answer",
        );
        let (verdict, out) = run(&mut f.dp, TC_EGRESS, &p);
        assert_eq!(verdict, TC_ACT_OK);
        let got = pkt::parse_checked(&out);
        assert_eq!(
            (got.dst, got.dport),
            (self.client, port),
            "an answer's destination changed"
        );
        (got.src, got.sport)
    }

    fn vip_side(&self) -> (IpAddr, u16) {
        (self.vip, VIP_PORT)
    }

    fn backend_side(&self) -> (IpAddr, u16) {
        (self.backend, BE_PORT)
    }
}

/// A fixture serving one LoadBalancer VIP per family and protocol, each with one backend.
fn vip_fixture(fs: &Bpffs, lifetimes: CtLifetimes) -> (Fixture, Vec<Flow>) {
    let mut f = fixture(fs, |c| c.ct_lifetimes = lifetimes);
    let mut plans = Vec::new();
    let mut flows = Vec::new();
    for (vip, backend, client) in [
        ("10.99.180.10", "10.99.181.5", "10.99.182.7"),
        ("fd00:99:180::10", "fd00:99:181::5", "fd00:99:182::7"),
    ] {
        for (proto, p) in [(Protocol::Tcp, pkt::TCP), (Protocol::Udp, pkt::UDP)] {
            plans.push(plan(
                &format!("ct-{vip}-{p}"),
                FrontendKind::LoadBalancer,
                vip,
                VIP_PORT,
                proto,
                vec![be(backend, BE_PORT, true)],
            ));
            flows.push(Flow {
                client: ip(client),
                vip: ip(vip),
                backend: ip(backend),
                proto: p,
            });
        }
    }
    f.w.apply(&plans).expect("apply");
    (f, flows)
}

/// A whole TCP connection through the VIP from `port`: handshake, data, FIN both ways.
fn closed_vip_connection(f: &mut Fixture, fl: &Flow, port: u16) {
    fl.send_vip(f, port, SYN);
    assert_eq!(fl.answer(f, port, SYN | ACK), fl.vip_side(), "SYN-ACK");
    fl.send_vip(f, port, ACK);
    assert_eq!(fl.answer(f, port, ACK), fl.vip_side(), "data");
    fl.send_vip(f, port, FIN | ACK);
    assert_eq!(fl.answer(f, port, FIN | ACK), fl.vip_side(), "FIN");
    fl.send_vip(f, port, ACK);
}

#[test]
fn a_direct_connection_reusing_the_port_of_a_closed_vip_flow_is_not_reverse_natted() {
    in_netns_with_bpffs("ct-direct", move |fs| {
        let (mut f, flows) = vip_fixture(fs, CtLifetimes::default());
        for fl in flows.iter().filter(|fl| fl.proto == pkt::TCP) {
            // A VIP connection from port P to backend B, closed by both sides.
            let p = 47000;
            closed_vip_connection(&mut f, fl, p);
            // A socket-LB ClusterIP client (or one dialling B) gets the same port P.
            fl.send_backend(&mut f, p, SYN);
            assert_eq!(
                fl.answer(&mut f, p, SYN | ACK),
                fl.backend_side(),
                "{}: the direct connection's SYN-ACK was rewritten to the VIP",
                fl.client
            );
            fl.send_backend(&mut f, p, ACK);
            assert_eq!(fl.answer(&mut f, p, ACK), fl.backend_side());
            // Later, the client dials the VIP from P again: a new flow, reverse-NATed again.
            fl.send_vip(&mut f, p, SYN);
            assert_eq!(
                fl.answer(&mut f, p, SYN | ACK),
                fl.vip_side(),
                "{}: the reopened VIP flow's SYN-ACK",
                fl.client
            );
        }
    });
}

#[test]
fn a_live_vip_flow_keeps_its_reverse_nat_through_half_close_and_a_colliding_syn() {
    in_netns_with_bpffs("ct-live", move |fs| {
        let (mut f, flows) = vip_fixture(fs, CtLifetimes::default());
        for fl in flows.iter().filter(|fl| fl.proto == pkt::TCP) {
            let p = 47100;
            fl.send_vip(&mut f, p, SYN);
            assert_eq!(fl.answer(&mut f, p, SYN | ACK), fl.vip_side());
            fl.send_vip(&mut f, p, ACK);
            // The client half-closes; the backend keeps streaming.
            fl.send_vip(&mut f, p, FIN | ACK);
            for _ in 0..3 {
                assert_eq!(
                    fl.answer(&mut f, p, ACK),
                    fl.vip_side(),
                    "half-closed stream"
                );
            }
            // A SYN straight to the backend on the same tuple while the flow lives: the
            // backend has that connection, the VIP flow keeps its translation.
            fl.send_backend(&mut f, p, SYN);
            assert_eq!(
                fl.answer(&mut f, p, ACK),
                fl.vip_side(),
                "a colliding SYN broke a live flow"
            );
            // An RST from the backend closes it: the next direct SYN takes the tuple.
            assert_eq!(fl.answer(&mut f, p, pkt::RST | ACK), fl.vip_side());
            fl.send_backend(&mut f, p, SYN);
            assert_eq!(fl.answer(&mut f, p, SYN | ACK), fl.backend_side());
        }
    });
}

#[test]
fn udp_sent_straight_to_a_backend_takes_the_tuple_and_the_vip_flow_takes_it_back() {
    in_netns_with_bpffs("ct-udp", move |fs| {
        let (mut f, flows) = vip_fixture(fs, CtLifetimes::default());
        for fl in flows.iter().filter(|fl| fl.proto == pkt::UDP) {
            let p = 47200;
            fl.send_vip(&mut f, p, 0);
            assert_eq!(fl.answer(&mut f, p, 0), fl.vip_side());
            fl.send_backend(&mut f, p, 0);
            assert_eq!(
                fl.answer(&mut f, p, 0),
                fl.backend_side(),
                "{}: an answer to a direct datagram came from the VIP",
                fl.client
            );
            fl.send_vip(&mut f, p, 0);
            assert_eq!(
                fl.answer(&mut f, p, 0),
                fl.vip_side(),
                "{}: the VIP flow did not get its tuple back",
                fl.client
            );
        }
    });
}

#[test]
fn entries_expire_after_the_lifetime_of_their_state() {
    in_netns_with_bpffs("ct-expire", move |fs| {
        let lifetimes = CtLifetimes {
            close: 1,
            non_tcp: 1,
            ..CtLifetimes::default()
        };
        let (mut f, flows) = vip_fixture(fs, lifetimes);
        let (closed, open, udp) = (47300, 47301, 47302);
        for fl in &flows {
            if fl.proto == pkt::TCP {
                closed_vip_connection(&mut f, fl, closed);
                fl.send_vip(&mut f, open, SYN);
                assert_eq!(fl.answer(&mut f, open, SYN | ACK), fl.vip_side());
                fl.send_vip(&mut f, open, ACK);
            } else {
                fl.send_vip(&mut f, udp, 0);
                assert_eq!(fl.answer(&mut f, udp, 0), fl.vip_side());
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(1300));
        for fl in &flows {
            if fl.proto == pkt::TCP {
                assert_eq!(
                    fl.answer(&mut f, closed, ACK),
                    fl.backend_side(),
                    "a closed flow outlived the close lifetime"
                );
                assert_eq!(
                    fl.answer(&mut f, open, ACK),
                    fl.vip_side(),
                    "an established flow expired"
                );
            } else {
                assert_eq!(
                    fl.answer(&mut f, udp, 0),
                    fl.backend_side(),
                    "a UDP flow outlived its lifetime"
                );
            }
        }
    });
}
