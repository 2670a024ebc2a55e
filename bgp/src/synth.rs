//! Synthetic Internet-like BGP tables for benchmarks (feature `synth`): IPv4 and IPv6 unicast
//! UPDATEs with 1-10 prefixes each, a realistic prefix-length mix, AS paths of 1-10 ASes
//! (common transit ASNs, random 2- and 4-octet ones), MEDs, communities and large communities.
//! Deterministic: the same [`Spec`] always yields the same UPDATEs, byte for byte.
//!
//! One generator serves the decode bench (`Spec::internet()`: the raw draw, duplicates and all),
//! the RIB bench and the ingest feeder of interop-tests ([`Prefixes::Distinct`] with the feeder's
//! own next hop, so a receiver must end up holding exactly `v4 + v6` prefixes).

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::BytesMut;
use ipnet::{Ipv4Net, Ipv6Net};

use crate::wire::{
    AsPath, Attr, AttrValue, Community, Context, EncodeError, Family, LargeCommunity, Message,
    NextHop, Nlri, Origin, Update,
};

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub v4_prefixes: usize,
    pub v6_prefixes: usize,
    pub seed: u64,
    pub prefixes: Prefixes,
    pub next_hops: NextHops,
}

/// How prefixes are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefixes {
    /// Random address and length as drawn (host bits cleared): prefixes may repeat and may fall
    /// in martian space (multicast, loopback, private). The cheapest draw; the decode bench's.
    Raw,
    /// Distinct, from publicly routable-looking space only: IPv4 outside 0/8, 10/8, 127/8,
    /// 224/3, private, link-local, shared and documentation ranges; IPv6 from 2000::/3 without
    /// 2001:db8::/32. Only the prefixes of part `part` of `parts` (by a hash of the prefix), so
    /// the parts of one spec are pairwise disjoint: `parts` feeders announce distinct prefixes.
    Distinct { part: u32, parts: u32 },
}

/// Which next hops the routes carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextHops {
    /// 192.0.2.1-250 and 2001:db8::1-250 (half of the IPv6 ones with link-local fe80::1).
    Varied,
    /// Every route via the sender itself, as an eBGP peer sends them (IPv6 with an optional
    /// link-local next hop). The random draws of `Varied` are still made, so the rest of the
    /// table is the same as with `Varied`.
    Fixed {
        v4: Ipv4Addr,
        v6: Ipv6Addr,
        v6_link_local: Option<Ipv6Addr>,
    },
}

impl Spec {
    /// The full-table size: 1,000,000 IPv4 and 200,000 IPv6 prefixes (~220,000 UPDATEs).
    pub const INTERNET_V4: usize = 1_000_000;
    pub const INTERNET_V6: usize = 200_000;
    const SEED: u64 = 0x9e37_79b9_7f4a_7c15;

    /// The decode bench's table: full size, raw draw, varied next hops.
    pub fn internet() -> Spec {
        Spec {
            v4_prefixes: Spec::INTERNET_V4,
            v6_prefixes: Spec::INTERNET_V6,
            seed: Spec::SEED,
            prefixes: Prefixes::Raw,
            next_hops: NextHops::Varied,
        }
    }

    /// A table a receiver must hold exactly: `v4 + v6` distinct routable prefixes (part
    /// `part` of `parts`), every route via the given next hops.
    pub fn feed(v4: usize, v6: usize, part: u32, parts: u32, next_hops: NextHops) -> Spec {
        Spec {
            v4_prefixes: v4,
            v6_prefixes: v6,
            seed: Spec::SEED,
            prefixes: Prefixes::Distinct { part, parts },
            next_hops,
        }
    }
}

/// An encoded table: consecutive whole UPDATE messages, no End-of-RIB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub bytes: Vec<u8>,
    pub updates: usize,
    pub v4_prefixes: usize,
    pub v6_prefixes: usize,
}

impl Table {
    pub fn prefixes(&self) -> usize {
        self.v4_prefixes + self.v6_prefixes
    }
}

/// Generates `spec` and encodes it for a session with context `cx`.
pub fn table(spec: &Spec, cx: &Context) -> Result<Table, EncodeError> {
    // ~115 bytes per UPDATE on average.
    let mut out = BytesMut::with_capacity((spec.v4_prefixes + spec.v6_prefixes) * 24);
    let mut updates = 0;
    let mut err = None;
    for_each_update(spec, |u| {
        if err.is_none() {
            match Message::Update(u).encode(cx, &mut out) {
                Ok(()) => updates += 1,
                Err(e) => err = Some(e),
            }
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    Ok(Table {
        bytes: out.to_vec(),
        updates,
        v4_prefixes: spec.v4_prefixes,
        v6_prefixes: spec.v6_prefixes,
    })
}

/// Calls `f` with every UPDATE of `spec`, IPv4 ones first, in order.
pub fn for_each_update(spec: &Spec, mut f: impl FnMut(Update)) {
    let mut r = Rng(spec.seed);
    let mut draw = Draw::new(spec.prefixes);
    let (nh4, nh6) = match spec.next_hops {
        NextHops::Varied => (None, None),
        NextHops::Fixed {
            v4,
            v6,
            v6_link_local,
        } => (Some(v4), Some((v6, v6_link_local))),
    };
    let mut v4 = 0;
    while v4 < spec.v4_prefixes {
        let n = (1 + r.below(10) as usize).min(spec.v4_prefixes - v4);
        let nlri = (0..n).map(|_| Nlri::new(draw.v4(&mut r))).collect();
        f(Update::announce(attrs(&mut r, Some(nh4)), nlri, None));
        v4 += n;
    }
    let mut v6 = 0;
    while v6 < spec.v6_prefixes {
        let n = (1 + r.below(9) as usize).min(spec.v6_prefixes - v6);
        let nlri = (0..n).map(|_| Nlri::new(draw.v6(&mut r))).collect();
        let global = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1 + r.below(250) as u16);
        let link_local = (r.pct() < 50).then(|| Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1));
        let next_hop = match nh6 {
            None => NextHop::V6 { global, link_local },
            Some((global, link_local)) => NextHop::V6 { global, link_local },
        };
        f(Update::announce(
            attrs(&mut r, None),
            Vec::new(),
            Some((Family::IPV6_UNICAST, next_hop, nlri)),
        ));
        v6 += n;
    }
}

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

/// Prefix drawing, with the bookkeeping `Prefixes::Distinct` needs.
struct Draw {
    mode: Prefixes,
    seen4: HashSet<(u32, u8)>,
    seen6: HashSet<(u128, u8)>,
}

impl Draw {
    fn new(mode: Prefixes) -> Draw {
        Draw {
            mode,
            seen4: HashSet::new(),
            seen6: HashSet::new(),
        }
    }

    fn v4(&mut self, r: &mut Rng) -> Ipv4Net {
        loop {
            let addr = Ipv4Addr::from(r.next() as u32);
            let net = Ipv4Net::new(addr, v4_len(r))
                .expect("v4_len is <= 32")
                .trunc();
            let Prefixes::Distinct { part, parts } = self.mode else {
                return net;
            };
            let key = (u32::from(net.network()), net.prefix_len());
            if routable_v4(net.network())
                && in_part(u64::from(key.0), key.1, part, parts)
                && self.seen4.insert(key)
            {
                return net;
            }
        }
    }

    fn v6(&mut self, r: &mut Rng) -> Ipv6Net {
        loop {
            let Prefixes::Distinct { part, parts } = self.mode else {
                let addr = Ipv6Addr::from((0x2000u128 << 112) | u128::from(r.next()) << 64);
                return Ipv6Net::new(addr, v6_len(r)).expect("v6_len is <= 128");
            };
            // 2000::/3: the top three bits 001, the rest of the upper 64 bits random.
            let bits = (u128::from(r.next()) << 64) & !(0b111u128 << 125) | (0b001u128 << 125);
            let net = Ipv6Net::new(Ipv6Addr::from(bits), v6_len(r))
                .expect("v6_len is <= 128")
                .trunc();
            let addr = u128::from(net.network());
            let key = (addr, net.prefix_len());
            let documentation = addr >> 96 == 0x2001_0db8;
            if !documentation
                && in_part((addr >> 64) as u64, key.1, part, parts)
                && self.seen6.insert(key)
            {
                return net;
            }
        }
    }
}

/// Unicast space a BGP speaker accepts from the Internet (network address checked).
fn routable_v4(a: Ipv4Addr) -> bool {
    let [o1, o2, ..] = a.octets();
    !(o1 == 0
        || o1 >= 224
        || a.is_private()
        || a.is_loopback()
        || a.is_link_local()
        || a.is_documentation()
        || (o1 == 100 && (64..128).contains(&o2)) // shared address space, RFC 6598
        || (o1 == 198 && (18..20).contains(&o2))) // benchmarking, RFC 2544
}

/// Whether prefix (`bits`, `len`) belongs to part `part` of `parts` (splitmix64 finaliser).
fn in_part(bits: u64, len: u8, part: u32, parts: u32) -> bool {
    if parts <= 1 {
        return true;
    }
    let mut z = bits ^ (u64::from(len) << 56) ^ 0x9e37_79b9_7f4a_7c15;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    z % u64::from(parts) == u64::from(part)
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

/// ORIGIN, AS_PATH, NEXT_HOP (IPv4 routes: `next_hop` is `Some`, holding the fixed next hop
/// if any), MED (half), communities (0-6), large communities (30%).
fn attrs(r: &mut Rng, next_hop: Option<Option<Ipv4Addr>>) -> Vec<Attr> {
    let mut a = vec![Attr::new(AttrValue::Origin(match r.pct() {
        0..=79 => Origin::Igp,
        80..=97 => Origin::Incomplete,
        _ => Origin::Egp,
    }))];
    let path: Vec<u32> = (0..1 + r.below(10)).map(|_| asn(r)).collect();
    a.push(Attr::new(AttrValue::AsPath(AsPath::sequence(path))));
    if let Some(fixed) = next_hop {
        let varied = Ipv4Addr::new(192, 0, 2, 1 + r.below(250) as u8);
        a.push(Attr::new(AttrValue::NextHop(fixed.unwrap_or(varied))));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame_len;

    fn prefixes_of(spec: &Spec) -> Vec<ipnet::IpNet> {
        let mut out = Vec::new();
        for_each_update(spec, |u| {
            out.extend(u.nlri.iter().map(|n| n.prefix));
            if let Some(m) = u.mp_reach() {
                out.extend(m.nlri.prefixes().iter().map(|n| n.prefix));
            }
        });
        out
    }

    fn fixed() -> NextHops {
        NextHops::Fixed {
            v4: Ipv4Addr::new(10, 99, 1, 1),
            v6: "fd00:99::1".parse().unwrap(),
            v6_link_local: None,
        }
    }

    #[test]
    fn distinct_parts_are_distinct_routable_and_disjoint() {
        let mut all = HashSet::new();
        for part in 0..3 {
            let p = prefixes_of(&Spec::feed(20_000, 4_000, part, 3, fixed()));
            assert_eq!(p.len(), 24_000);
            for net in p {
                if let ipnet::IpNet::V4(n) = net {
                    assert!(routable_v4(n.network()), "{n} is not routable");
                } else if let ipnet::IpNet::V6(n) = net {
                    assert_eq!(u128::from(n.network()) >> 125, 1, "{n} is not in 2000::/3");
                }
                assert!(all.insert(net), "{net} repeated (part {part})");
            }
        }
    }

    #[test]
    fn raw_draw_repeats_and_table_counts_match_the_bytes() {
        let spec = Spec {
            v4_prefixes: 50_000,
            v6_prefixes: 10_000,
            ..Spec::internet()
        };
        let p = prefixes_of(&spec);
        let distinct: HashSet<_> = p.iter().collect();
        assert_eq!(p.len(), 60_000);
        assert!(
            distinct.len() < p.len(),
            "the raw draw is expected to repeat"
        );

        let cx = Context::modern();
        let t = table(&spec, &cx).unwrap();
        let (mut pos, mut n, mut prefixes) = (0, 0, 0);
        while pos < t.bytes.len() {
            let len = frame_len(&t.bytes[pos..], cx.max_message_len())
                .unwrap()
                .unwrap();
            let Message::Update(u) = Message::decode(&t.bytes[pos..pos + len], &cx).unwrap() else {
                panic!("not an UPDATE at {pos}");
            };
            prefixes += u.nlri.len() + u.mp_reach().map_or(0, |m| m.nlri.prefixes().len());
            pos += len;
            n += 1;
        }
        assert_eq!((n, prefixes), (t.updates, t.prefixes()));
    }

    #[test]
    fn fixed_next_hops_change_only_the_next_hops() {
        let spec = |next_hops| Spec {
            v4_prefixes: 1_000,
            v6_prefixes: 1_000,
            next_hops,
            ..Spec::internet()
        };
        let (mut varied, mut same) = (Vec::new(), Vec::new());
        for_each_update(&spec(NextHops::Varied), |u| varied.push(u));
        for_each_update(&spec(fixed()), |u| same.push(u));
        assert_eq!(varied.len(), same.len());
        for (a, b) in varied.iter().zip(&same) {
            assert_eq!(a.nlri, b.nlri);
            assert_eq!(a.as_path(), b.as_path());
            assert_eq!(a.communities(), b.communities());
            if a.mp_reach().is_none() {
                assert_eq!(b.next_hop(), Some(Ipv4Addr::new(10, 99, 1, 1)));
            } else {
                let nh = b.mp_reach().map(|m| m.next_hop.clone());
                assert_eq!(
                    nh,
                    Some(NextHop::V6 {
                        global: "fd00:99::1".parse().unwrap(),
                        link_local: None
                    })
                );
            }
        }
    }
}
