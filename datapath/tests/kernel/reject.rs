//! A frontend without backends refuses new connections (kube-proxy's REJECT) instead of handing
//! them to the stack: lb.c answers a TCP segment with a reset and a UDP datagram with an ICMP
//! port unreachable, each built in place and sent back out of the ingress device.
//! NoBackends::Drop drops both. All count in the service's `dropped`.

use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use datapath::loader::{LoadConfig, TC_INGRESS};
use datapath::plan::{FrontendKind, NoBackends, Protocol};

use crate::env::*;
use crate::netns::{connect, sa, Lab};
use crate::pkt::{self, fold, sum16};
use crate::prog_run::{fixture, ip, run, TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT};

/// The TCP header fields of a packet `pkt::parse_checked` accepted (checksums verified).
struct Tcp {
    seq: u32,
    ack: u32,
    doff: u8,
    flags: u8,
    payload: usize,
}

fn tcp_of(p: &[u8]) -> Tcp {
    let (l4, ip_payload) = if u16::from_be_bytes([p[12], p[13]]) == 0x0800 {
        let ihl = (p[14] & 0x0f) as usize * 4;
        let tot = u16::from_be_bytes([p[16], p[17]]) as usize;
        (&p[14 + ihl..], tot - ihl)
    } else {
        (&p[54..], u16::from_be_bytes([p[18], p[19]]) as usize)
    };
    let doff = l4[12] >> 4;
    Tcp {
        seq: u32::from_be_bytes(l4[4..8].try_into().unwrap()),
        ack: u32::from_be_bytes(l4[8..12].try_into().unwrap()),
        doff,
        flags: l4[13],
        payload: ip_payload - doff as usize * 4,
    }
}

/// Asserts that `out` is an ICMP(v6) port unreachable answering the UDP datagram `sent`:
/// MACs and addresses swapped, checksums right when recomputed from scratch, the datagram's
/// IP header and first 8 bytes quoted.
fn check_port_unreachable(sent: &[u8], out: &[u8]) {
    assert_eq!(&out[0..6], &sent[6..12], "destination MAC");
    assert_eq!(&out[6..12], &sent[0..6], "source MAC");
    assert_eq!(&out[12..14], &sent[12..14], "ethertype");
    if u16::from_be_bytes([sent[12], sent[13]]) == 0x0800 {
        assert_eq!(out.len(), 14 + 20 + 8 + 28, "{out:02x?}");
        let ip = &out[14..34];
        assert_eq!(fold(sum16(ip, 0)), 0, "IPv4 header checksum: {ip:02x?}");
        assert_eq!(
            (ip[0], ip[8], ip[9]),
            (0x45, 64, 1),
            "version/ihl, TTL, ICMP"
        );
        assert_eq!(u16::from_be_bytes([ip[2], ip[3]]), 56, "total length");
        assert_eq!(&ip[12..16], &sent[30..34], "source is the frontend");
        assert_eq!(&ip[16..20], &sent[26..30], "destination is the client");
        let icmp = &out[34..];
        assert_eq!((icmp[0], icmp[1]), (3, 3), "port unreachable");
        assert_eq!(&icmp[4..8], &[0, 0, 0, 0]);
        assert_eq!(fold(sum16(icmp, 0)), 0, "ICMP checksum: {icmp:02x?}");
        assert_eq!(&icmp[8..], &sent[14..14 + 28], "the quote");
    } else {
        assert_eq!(out.len(), 14 + 40 + 8 + 48, "{out:02x?}");
        let ip = &out[14..54];
        assert_eq!(ip[0] >> 4, 6);
        assert_eq!(u16::from_be_bytes([ip[4], ip[5]]), 56, "payload length");
        assert_eq!((ip[6], ip[7]), (58, 64), "ICMPv6, hop limit");
        assert_eq!(&ip[8..24], &sent[38..54], "source is the frontend");
        assert_eq!(&ip[24..40], &sent[22..38], "destination is the client");
        let icmp = &out[54..];
        assert_eq!((icmp[0], icmp[1]), (1, 4), "port unreachable");
        assert_eq!(&icmp[4..8], &[0, 0, 0, 0]);
        let pseudo = sum16(&ip[8..40], 0) + icmp.len() as u32 + 58;
        assert_eq!(fold(sum16(icmp, pseudo)), 0, "ICMPv6 checksum: {icmp:02x?}");
        assert_eq!(&icmp[8..], &sent[14..14 + 48], "the quote");
    }
}

#[test]
fn syn_gets_a_reset_and_udp_a_port_unreachable_from_a_frontend_without_backends_v4_v6() {
    in_netns_with_bpffs("pr-rej", move |fs| {
        let mut f = fixture(fs, |_| {});
        let cases = [
            ("10.99.175.10", "10.99.176.7", "10.99.175.11"),
            ("fd00:99:175::10", "fd00:99:176::7", "fd00:99:175::11"),
        ];
        let mut plans = Vec::new();
        for (vip, _, drop_vip) in cases {
            for proto in [Protocol::Tcp, Protocol::Udp] {
                plans.push(plan(
                    &format!("rej-{vip}-{proto:?}"),
                    FrontendKind::LoadBalancer,
                    vip,
                    80,
                    proto,
                    vec![],
                ));
            }
            let mut d = plan(
                &format!("drop-{drop_vip}"),
                FrontendKind::LoadBalancer,
                drop_vip,
                80,
                Protocol::Tcp,
                vec![],
            );
            d.no_backends = NoBackends::Drop;
            plans.push(d);
        }
        f.w.apply(&plans).expect("apply");
        for (vip, client, drop_vip) in cases {
            let (vip, client) = (ip(vip), ip(client));
            let syn = pkt::build(client, vip, 40000, 80, pkt::TCP, b"hello");
            let (verdict, out) = run(&mut f.dp, TC_INGRESS, &syn);
            assert_eq!(verdict, TC_ACT_REDIRECT, "SYN to {vip}");
            let hdrs = if vip.is_ipv4() {
                14 + 20 + 20
            } else {
                14 + 40 + 20
            };
            assert_eq!(out.len(), hdrs, "the reset carries no payload: {out:02x?}");
            assert_eq!(&out[0..6], &syn[6..12], "destination MAC is the sender's");
            assert_eq!(
                &out[6..12],
                &syn[0..6],
                "source MAC is the one it was sent to"
            );
            assert_eq!(&out[12..14], &syn[12..14]);
            assert_eq!(
                pkt::parse_checked(&out),
                pkt::Parsed {
                    src: vip,
                    dst: client,
                    sport: 80,
                    dport: 40000
                },
                "reset to {client}"
            );
            let t = tcp_of(&out);
            assert_eq!(t.flags, pkt::RST | pkt::ACK, "{vip}");
            assert_eq!(t.seq, 0, "{vip}");
            // SEG.SEQ + SEG.LEN: the SYN counts one, the payload its 5 bytes.
            assert_eq!(t.ack, 0x01020304 + 1 + 5, "{vip}");
            assert_eq!((t.doff, t.payload), (5, 0), "{vip}");
            if vip.is_ipv4() {
                assert_eq!(out[14 + 8], 64, "TTL");
                assert_eq!(out[14 + 9], pkt::TCP);
            } else {
                assert_eq!((out[14 + 6], out[14 + 7]), (pkt::TCP, 64));
            }

            // A reset is never answered; the Drop plan drops.
            let rst = pkt::build_flags(client, vip, 40001, 80, pkt::TCP, pkt::RST, b"");
            assert_eq!(run(&mut f.dp, TC_INGRESS, &rst).0, TC_ACT_SHOT, "RST {vip}");
            // UDP gets an ICMP port unreachable quoting its IP header and 8 bytes.
            let udp = pkt::build(client, vip, 40002, 80, pkt::UDP, b"a longer payload");
            let (verdict, out) = run(&mut f.dp, TC_INGRESS, &udp);
            assert_eq!(verdict, TC_ACT_REDIRECT, "UDP {vip}");
            check_port_unreachable(&udp, &out);
            let to_drop = pkt::build(client, ip(drop_vip), 40003, 80, pkt::TCP, b"");
            assert_eq!(
                run(&mut f.dp, TC_INGRESS, &to_drop).0,
                TC_ACT_SHOT,
                "Drop {drop_vip}"
            );
        }
        let cs = f.w.counters().expect("counters");
        let of = |name: &str| {
            cs.iter()
                .find(|c| c.service.as_deref() == Some(name))
                .unwrap_or_else(|| panic!("no counters for {name}: {cs:?}"))
                .counters
        };
        for (vip, _, drop_vip) in cases {
            let tcp = of(&format!("test/rej-{vip}-Tcp"));
            assert_eq!((tcp.packets, tcp.dropped, tcp.connections), (2, 2, 0));
            assert_eq!(of(&format!("test/rej-{vip}-Udp")).dropped, 1);
            assert_eq!(of(&format!("test/drop-{drop_vip}")).dropped, 1);
        }
        // A frontend with a backend is still DNATed, not refused.
        f.w.apply(&[plan(
            "rej-live",
            FrontendKind::LoadBalancer,
            "10.99.175.10",
            80,
            Protocol::Tcp,
            vec![be("10.99.177.5", 8080, true)],
        )])
        .expect("apply");
        let syn = pkt::build(
            ip("10.99.176.7"),
            ip("10.99.175.10"),
            40010,
            80,
            pkt::TCP,
            b"",
        );
        let (verdict, out) = run(&mut f.dp, TC_INGRESS, &syn);
        assert_eq!(verdict, TC_ACT_OK);
        assert_eq!(pkt::parse_checked(&out).dst, ip("10.99.177.5"));
    });
}

#[test]
fn connect_and_udp_to_a_vip_without_backends_are_refused_fast_and_drop_times_out() {
    let lab = Lab::new(7, "rej", 1);
    let attached = lab.load(LoadConfig::new(lab.bpffs()), false).attached;
    assert_eq!(attached, 2);
    let mut w = lab.writer();
    let mut plans = Vec::new();
    for v6 in [false, true] {
        plans.push(plan(
            &format!("live{v6}"),
            FrontendKind::LoadBalancer,
            &lab.frontend(100, v6),
            80,
            Protocol::Tcp,
            lab.backends_of(v6, true),
        ));
        plans.push(plan(
            &format!("empty{v6}"),
            FrontendKind::LoadBalancer,
            &lab.frontend(101, v6),
            80,
            Protocol::Tcp,
            vec![],
        ));
        plans.push(plan(
            &format!("empty-udp{v6}"),
            FrontendKind::LoadBalancer,
            &lab.frontend(101, v6),
            53,
            Protocol::Udp,
            vec![],
        ));
        let mut d = plan(
            &format!("drop{v6}"),
            FrontendKind::LoadBalancer,
            &lab.frontend(102, v6),
            80,
            Protocol::Tcp,
            vec![],
        );
        d.no_backends = NoBackends::Drop;
        plans.push(d);
    }
    w.apply(&plans).expect("apply");
    for v6 in [false, true] {
        let (_, hello) = connect(&lab.client, sa(&lab.frontend(100, v6), 80))
            .unwrap_or_else(|e| panic!("live VIP v6={v6}: {e}"));
        assert_eq!(hello, "be1");

        let empty = sa(&lab.frontend(101, v6), 80);
        let (took, res) = in_netns(Some(&lab.client), move || {
            let t = Instant::now();
            let r = TcpStream::connect_timeout(&empty, Duration::from_secs(3));
            (t.elapsed(), r.map(|_| ()))
        });
        let err = res.expect_err("connect to a VIP without backends succeeded");
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::ConnectionRefused,
            "{empty}: {err}"
        );
        assert!(
            took < Duration::from_secs(1),
            "{empty} refused after {took:?}"
        );

        // A connected UDP socket learns of the ICMP port unreachable as ECONNREFUSED.
        let empty_udp = sa(&lab.frontend(101, v6), 53);
        let res = in_netns(Some(&lab.client), move || {
            let u = UdpSocket::bind(if v6 { "[::]:0" } else { "0.0.0.0:0" })?;
            u.connect(empty_udp)?;
            u.set_read_timeout(Some(Duration::from_secs(1)))?;
            u.send(b"anyone?")?;
            let mut buf = [0u8; 64];
            u.recv(&mut buf).map(|_| ())
        });
        let err = res.expect_err("UDP to a VIP without backends was answered");
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::ConnectionRefused,
            "{empty_udp}: {err}"
        );

        let dropped = sa(&lab.frontend(102, v6), 80);
        let res = in_netns(Some(&lab.client), move || {
            TcpStream::connect_timeout(&dropped, Duration::from_millis(400)).map(|_| ())
        });
        let err = res.expect_err("connect to a Drop VIP succeeded");
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{dropped}: {err}");
    }
    let cs = w.counters().expect("counters");
    for v6 in [false, true] {
        let c = cs
            .iter()
            .find(|c| c.service.as_deref() == Some(&format!("test/empty{v6}")))
            .expect("counters of the empty service")
            .counters;
        assert!(c.dropped >= 1 && c.connections == 0, "v6={v6}: {c:?}");
        let u = cs
            .iter()
            .find(|c| c.service.as_deref() == Some(&format!("test/empty-udp{v6}")))
            .expect("counters of the empty UDP service")
            .counters;
        assert_eq!((u.dropped, u.connections), (1, 0), "v6={v6}");
    }
}
