//! RIB benchmark: a synthetic Internet-like table (1,000,000 IPv4 + 200,000 IPv6 distinct
//! prefixes in ~220,000 UPDATEs with ~220,000 distinct attribute sets, from `bgp::synth`),
//! encoded, decoded, then inserted into the RIB from one eBGP peer; then exported to one eBGP
//! peer (the initial dump, packed into 4096-byte UPDATEs).
//!
//! Run: `cargo bench -p bgp --bench rib`. Prints seconds, routes/s, and memory: live heap
//! bytes counted by a counting global allocator (requested sizes, so malloc's own overhead is
//! not included) and VmRSS from /proc for comparison. Asserts nothing about time.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bgp::negotiate::Negotiated;
use bgp::rib::{PeerConfig, Rib, RibConfig};
use bgp::synth::{self, NextHops, Spec};
use bgp::wire::{frame_len, Context, Family, Message, Update};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            if new >= l.size() {
                let now = LIVE.fetch_add(new - l.size(), Ordering::Relaxed) + new - l.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(l.size() - new, Ordering::Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU seconds used by this process so far (utime + stime from /proc/self/stat, 100 Hz
/// ticks): on a busy machine the wall-clock time overstates the work.
fn cpu_s() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(0.0)
}

fn negotiated(peer_as: u32, peer_id: Ipv4Addr) -> Negotiated {
    Negotiated {
        local_as: 65000,
        peer_as,
        local_id: Ipv4Addr::new(10, 99, 255, 1),
        peer_id,
        hold_time: 90,
        keepalive: Some(Duration::from_secs(30)),
        families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
        four_octet_as: true,
        route_refresh: true,
        enhanced_route_refresh: false,
        extended_message: false,
        add_path_receive: Vec::new(),
        add_path_send: Vec::new(),
        peer_graceful_restart: None,
        local_graceful_restart: false,
        peer_long_lived_gr: None,
    }
}

fn decode_all(buf: &[u8], cx: &Context) -> Vec<Update> {
    let mut out = Vec::with_capacity(230_000);
    let mut pos = 0;
    while pos < buf.len() {
        let n = match frame_len(&buf[pos..], cx.max_message_len()) {
            Ok(Some(n)) => n,
            other => panic!("framing failed at {pos}: {other:?}"),
        };
        match Message::decode(&buf[pos..pos + n], cx) {
            Ok(Message::Update(u)) => out.push(u),
            other => panic!("unexpected message at {pos}: {other:?}"),
        }
        pos += n;
    }
    out
}

fn main() {
    let cx = Context::modern();
    let feeder = Ipv4Addr::new(10, 99, 0, 1);
    let spec = Spec::feed(
        Spec::INTERNET_V4,
        Spec::INTERNET_V6,
        0,
        1,
        NextHops::Fixed {
            v4: feeder,
            v6: Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 1),
            v6_link_local: None,
        },
    );
    let table = synth::table(&spec, &cx).expect("synthetic table encodes");
    let routes = table.prefixes();
    println!(
        "table: {} UPDATEs, {routes} prefixes ({} IPv4 + {} IPv6), {:.1} MB on the wire",
        table.updates,
        table.v4_prefixes,
        table.v6_prefixes,
        table.bytes.len() as f64 / 1e6
    );

    // 1. Insert from decoded UPDATEs (decoding done beforehand, not timed).
    let base = live();
    let updates = decode_all(&table.bytes, &cx);
    let mut rib = Rib::new(RibConfig::new(Ipv4Addr::new(10, 99, 255, 1)));
    let a = rib
        .add_peer(PeerConfig::new(IpAddr::V4(feeder), 65000, 65001))
        .expect("peer");
    let now = Instant::now();
    rib.peer_up(
        now,
        a,
        &negotiated(65001, Ipv4Addr::new(1, 1, 1, 1)),
        IpAddr::V4(Ipv4Addr::new(10, 99, 255, 1)),
    )
    .expect("peer up");
    let rss_before = rss_mb();
    let t = Instant::now();
    let c = cpu_s();
    let mut updates_kept = updates;
    for u in updates_kept.drain(..) {
        rib.apply_update(a, u).expect("applies");
    }
    let s = t.elapsed().as_secs_f64();
    let cpu = cpu_s() - c;
    drop(updates_kept);
    rib.sweep();
    let held = live().saturating_sub(base);
    let v4 = rib.loc_rib_len(Family::IPV4_UNICAST);
    let v6 = rib.loc_rib_len(Family::IPV6_UNICAST);
    assert_eq!(v4 + v6, routes, "every prefix is in the Loc-RIB");
    println!(
        "insert: {s:.3} s wall, {cpu:.2} s CPU  {:.2} M routes/s (by CPU time)  ({} distinct attribute sets)",
        routes as f64 / cpu.max(0.01) / 1e6,
        rib.attr_sets()
    );
    println!(
        "memory (Adj-RIB-In + Loc-RIB): {:.1} MB live heap = {:.1} bytes/route; VmRSS {:.0} -> {:.0} MB (BIRD: ~180 MB = ~150 bytes/route)",
        held as f64 / 1e6,
        held as f64 / routes as f64,
        rss_before,
        rss_mb()
    );

    // 2. Decode + insert as one stream, into a fresh RIB (what a session does).
    let mut rib2 = Rib::new(RibConfig::new(Ipv4Addr::new(10, 99, 255, 1)));
    let a2 = rib2
        .add_peer(PeerConfig::new(IpAddr::V4(feeder), 65000, 65001))
        .expect("peer");
    rib2.peer_up(
        now,
        a2,
        &negotiated(65001, Ipv4Addr::new(1, 1, 1, 1)),
        IpAddr::V4(Ipv4Addr::new(10, 99, 255, 1)),
    )
    .expect("peer up");
    let t = Instant::now();
    let c = cpu_s();
    let mut pos = 0;
    let buf = &table.bytes;
    while pos < buf.len() {
        let n = frame_len(&buf[pos..], cx.max_message_len())
            .ok()
            .flatten()
            .expect("frames");
        if let Ok(Message::Update(u)) = Message::decode(&buf[pos..pos + n], &cx) {
            rib2.apply_update(a2, u).expect("applies");
        }
        pos += n;
    }
    let s = t.elapsed().as_secs_f64();
    let cpu = cpu_s() - c;
    println!(
        "decode + insert: {s:.3} s wall, {cpu:.2} s CPU  {:.2} M routes/s (by CPU time)",
        routes as f64 / cpu.max(0.01) / 1e6
    );
    drop(rib2);

    // 3. Export the table to one eBGP peer: the initial dump, packed.
    let b = rib
        .add_peer(PeerConfig::new(
            IpAddr::V4(Ipv4Addr::new(10, 99, 0, 2)),
            65000,
            65002,
        ))
        .expect("peer");
    let before = live();
    let t = Instant::now();
    let c = cpu_s();
    rib.peer_up(
        now,
        b,
        &negotiated(65002, Ipv4Addr::new(2, 2, 2, 2)),
        IpAddr::V4(Ipv4Addr::new(10, 99, 255, 1)),
    )
    .expect("peer up");
    // As the agent's writer does: 64 KiB of encoded UPDATEs per call.
    let mut messages = 0usize;
    let mut bytes = 0usize;
    let mut wire = bytes::BytesMut::with_capacity(1 << 17);
    let mut peak_out = 0usize;
    loop {
        wire.clear();
        let n = rib
            .next_encoded(b, 64 * 1024, &mut wire)
            .expect("established");
        if n == 0 {
            break;
        }
        messages += n;
        bytes += wire.len();
        peak_out = peak_out.max(live().saturating_sub(before));
    }
    let s = t.elapsed().as_secs_f64();
    let cpu = cpu_s() - c;
    let unswept = live().saturating_sub(before);
    // The exported attribute sets are referenced by nothing once sent (the Adj-RIB-Out is
    // computed on demand): what stays is the per-peer bitsets.
    rib.sweep();
    let out_held = live().saturating_sub(before);
    println!(
        "export to one eBGP peer (initial dump, encoded): {s:.3} s wall, {cpu:.2} s CPU  {:.2} M routes/s (by CPU time)  {messages} messages, {:.1} MB encoded; Adj-RIB-Out {:.2} MB = {:.1} bytes/route after the attribute-set sweep ({:.1} MB before it), {:.1} MB at most during the dump",
        routes as f64 / cpu.max(0.01) / 1e6,
        bytes as f64 / 1e6,
        out_held as f64 / 1e6,
        out_held as f64 / routes as f64,
        unswept as f64 / 1e6,
        peak_out as f64 / 1e6
    );
    println!(
        "peak live heap {:.1} MB (includes the encoded table and, in step 1, the decoded UPDATEs)",
        PEAK.load(Ordering::Relaxed) as f64 / 1e6
    );
    drop(rib);
    peers10(&cx);
}

/// Step 4, the ingest bench's `peers10` in-process: 10 eBGP peers (as on one LAN: one local
/// address), each announcing its own 100,000 prefixes (83,333 IPv4 + 16,667 IPv6); UPDATEs
/// are applied round-robin and every 1000 of them each peer's writer pulls 64 KiB, so every
/// route is re-advertised to the 9 other peers while the tables come in.
fn peers10(cx: &Context) {
    const N: u32 = 10;
    let local = IpAddr::V4(Ipv4Addr::new(10, 99, 0, 100));
    let base0 = live();
    let mut feeds = Vec::new();
    for i in 0..N {
        let addr = Ipv4Addr::new(10, 99, 0, 1 + i as u8);
        let spec = Spec::feed(
            83_333,
            16_667,
            i,
            N,
            NextHops::Fixed {
                v4: addr,
                v6: Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 1 + i as u16),
                v6_link_local: None,
            },
        );
        let table = synth::table(&spec, cx).expect("synthetic table encodes");
        feeds.push((addr, decode_all(&table.bytes, cx)));
    }
    let mut rib = Rib::new(RibConfig::new(Ipv4Addr::new(10, 99, 0, 100)));
    let now = Instant::now();
    let mut ids = Vec::new();
    for (i, (addr, _)) in feeds.iter().enumerate() {
        let asn = 65100 + i as u32;
        let id = rib
            .add_peer(PeerConfig::new(IpAddr::V4(*addr), 65000, asn))
            .expect("peer");
        rib.peer_up(now, id, &negotiated(asn, *addr), local)
            .expect("peer up");
        ids.push(id);
    }
    let total: usize = feeds.iter().map(|f| f.1.len()).sum();
    let t = Instant::now();
    let c = cpu_s();
    let mut iters: Vec<_> = feeds.into_iter().map(|f| f.1.into_iter()).collect();
    let mut wire = bytes::BytesMut::with_capacity(1 << 17);
    let (mut sent, mut applied) = (0usize, 0usize);
    let mut pull_all = |rib: &mut Rib, wire: &mut bytes::BytesMut| {
        let mut any = false;
        for &id in &ids {
            wire.clear();
            if rib.next_encoded(id, 64 * 1024, wire).expect("established") > 0 {
                any = true;
                sent += wire.len();
            }
        }
        any
    };
    while applied < total {
        for (i, it) in iters.iter_mut().enumerate() {
            if let Some(u) = it.next() {
                rib.apply_update(ids[i], u).expect("applies");
                applied += 1;
                if applied % 1000 == 0 {
                    pull_all(&mut rib, &mut wire);
                }
            }
        }
    }
    while pull_all(&mut rib, &mut wire) {}
    let s = t.elapsed().as_secs_f64();
    let cpu = cpu_s() - c;
    drop(iters);
    let after_unswept = live().saturating_sub(base0);
    let adv: usize = ids
        .iter()
        .map(|&id| rib.counts(id).iter().map(|c| c.advertised).sum::<usize>())
        .sum();
    println!(
        "peers10 (10 x 100k, re-advertised to the 9 others while coming in): {s:.3} s wall, {cpu:.2} s CPU, {adv} routes advertised, {:.1} MB encoded; live heap {:.1} MB after ({:.1} MB before the attribute-set sweep)",
        sent as f64 / 1e6,
        {
            rib.sweep();
            live().saturating_sub(base0) as f64 / 1e6
        },
        after_unswept as f64 / 1e6
    );
}
