//! Decode benchmark: a synthetic Internet-like table — 1,000,000 IPv4 and 200,000 IPv6
//! prefixes in ~220,000 UPDATEs with varied AS paths (1-10 ASes, 2- and 4-octet ASNs), MEDs,
//! communities and large communities, and a realistic prefix-length mix — encoded once, then
//! decoded message by message (`frame_len` + `Message::decode`), best of 5.
//!
//! Run: `cargo bench -p bgp --bench decode`. Prints prefixes/s, MB/s and seconds; it asserts
//! nothing about time (the target, ≤ 0.15 s for the table on one core, is read off the output).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use bgp::wire::{
    frame_len, AsPath, Attr, AttrValue, Community, Context, Family, LargeCommunity, Message,
    NextHop, Nlri, Origin, Update,
};
use bytes::BytesMut;
use ipnet::{Ipv4Net, Ipv6Net};

const V4_PREFIXES: usize = 1_000_000;
const V6_PREFIXES: usize = 200_000;
const RUNS: usize = 5;

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pct(&mut self) -> u64 {
        self.below(100)
    }
}

/// Transit and content ASNs that dominate real paths, plus random 2- and 4-octet ones.
fn asn(r: &mut Rng) -> u32 {
    const COMMON: [u32; 12] = [
        174, 1299, 2914, 3257, 3356, 6453, 6461, 6762, 6939, 7018, 13335, 15169,
    ];
    match r.pct() {
        0..=39 => COMMON[r.below(COMMON.len() as u64) as usize],
        40..=74 => 1 + r.below(64_000) as u32,
        75..=94 => 131_072 + r.below(270_000) as u32,
        _ => 4_200_000_000 + r.below(90_000_000) as u32,
    }
}

fn v4_len(r: &mut Rng) -> u8 {
    match r.pct() {
        0..=59 => 24,
        60..=64 => 23,
        65..=69 => 22,
        70..=74 => 21,
        75..=79 => 20,
        80..=83 => 19,
        84..=87 => 18,
        88..=90 => 17,
        91..=94 => 16,
        _ => 8 + r.below(8) as u8,
    }
}

fn v6_len(r: &mut Rng) -> u8 {
    match r.pct() {
        0..=54 => 48,
        55..=69 => 32,
        70..=79 => 44,
        80..=87 => 40,
        88..=93 => 36,
        _ => 29 + r.below(19) as u8,
    }
}

fn attrs(r: &mut Rng, with_next_hop: bool) -> Vec<Attr> {
    let mut a = vec![Attr::new(AttrValue::Origin(match r.pct() {
        0..=79 => Origin::Igp,
        80..=97 => Origin::Incomplete,
        _ => Origin::Egp,
    }))];
    let path: Vec<u32> = (0..1 + r.below(10)).map(|_| asn(r)).collect();
    a.push(Attr::new(AttrValue::AsPath(AsPath::sequence(path))));
    if with_next_hop {
        a.push(Attr::new(AttrValue::NextHop(Ipv4Addr::new(
            192,
            0,
            2,
            1 + r.below(250) as u8,
        ))));
    }
    if r.pct() < 50 {
        a.push(Attr::new(AttrValue::MultiExitDisc(r.below(1000) as u32)));
    }
    let nc = r.below(7);
    if nc > 0 {
        let cs = (0..nc)
            .map(|_| Community::new(asn(r) as u16, r.below(65_536) as u16))
            .collect();
        a.push(Attr::new(AttrValue::Communities(cs)));
    }
    if r.pct() < 30 {
        let ls = (0..1 + r.below(3))
            .map(|_| LargeCommunity::new(asn(r), r.below(1000) as u32, r.below(1000) as u32))
            .collect();
        a.push(Attr::new(AttrValue::LargeCommunities(ls)));
    }
    a
}

fn table(cx: &Context) -> (Vec<u8>, usize, usize) {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out = BytesMut::with_capacity(40 << 20);
    let mut messages = 0;
    let mut v4 = 0;
    while v4 < V4_PREFIXES {
        let n = (1 + r.below(10) as usize).min(V4_PREFIXES - v4);
        let nlri = (0..n)
            .map(|_| {
                let addr = Ipv4Addr::from(r.next() as u32);
                Nlri::new(Ipv4Net::new(addr, v4_len(&mut r)).expect("length <= 32"))
            })
            .collect();
        let u = Update::announce(attrs(&mut r, true), nlri, None);
        Message::Update(u).encode(cx, &mut out).expect("encodes");
        v4 += n;
        messages += 1;
    }
    let mut v6 = 0;
    while v6 < V6_PREFIXES {
        let n = (1 + r.below(9) as usize).min(V6_PREFIXES - v6);
        let nlri = (0..n)
            .map(|_| {
                let addr = Ipv6Addr::from((0x2000u128 << 112) | u128::from(r.next()) << 64);
                Nlri::new(Ipv6Net::new(addr, v6_len(&mut r)).expect("length <= 128"))
            })
            .collect();
        let next_hop = NextHop::V6 {
            global: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1 + r.below(250) as u16),
            link_local: (r.pct() < 50).then(|| Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
        };
        let u = Update::announce(
            attrs(&mut r, false),
            Vec::new(),
            Some((Family::IPV6_UNICAST, next_hop, nlri)),
        );
        Message::Update(u).encode(cx, &mut out).expect("encodes");
        v6 += n;
        messages += 1;
    }
    (out.to_vec(), messages, v4 + v6)
}

/// Decode the whole stream; returns (messages, prefixes) so nothing is optimised away.
fn decode_all(buf: &[u8], cx: &Context) -> (usize, usize) {
    let max = cx.max_message_len();
    let mut pos = 0;
    let mut messages = 0;
    let mut prefixes = 0;
    while pos < buf.len() {
        let n = match frame_len(&buf[pos..], max) {
            Ok(Some(n)) => n,
            other => panic!("framing failed at {pos}: {other:?}"),
        };
        match Message::decode(&buf[pos..pos + n], cx) {
            Ok(Message::Update(u)) => {
                assert!(u.errors.is_empty());
                prefixes += u.nlri.len();
                if let Some(m) = u.mp_reach() {
                    prefixes += m.nlri.prefixes().len();
                }
            }
            other => panic!("unexpected message at {pos}: {other:?}"),
        }
        messages += 1;
        pos += n;
    }
    (messages, prefixes)
}

fn main() {
    let cx = Context::modern();
    let t = Instant::now();
    let (buf, messages, prefixes) = table(&cx);
    let build = t.elapsed().as_secs_f64();
    println!(
        "table: {messages} UPDATEs, {prefixes} prefixes ({V4_PREFIXES} IPv4 + {V6_PREFIXES} IPv6), {:.1} MB; built and encoded in {build:.3} s",
        buf.len() as f64 / 1e6
    );
    let mut best = f64::INFINITY;
    for run in 1..=RUNS {
        let t = Instant::now();
        let (m, p) = decode_all(&buf, &cx);
        let s = t.elapsed().as_secs_f64();
        assert_eq!((m, p), (messages, prefixes));
        println!("run {run}: {s:.4} s");
        best = best.min(s);
    }
    println!(
        "decode best of {RUNS}: {best:.4} s  {:.2} M prefixes/s  {:.1} MB/s  {:.0} ns/UPDATE",
        prefixes as f64 / best / 1e6,
        buf.len() as f64 / best / 1e6,
        best * 1e9 / messages as f64
    );
}
