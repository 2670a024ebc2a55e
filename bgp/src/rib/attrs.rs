//! Interned path attribute sets: the attributes of a route except its NLRI, stored once and
//! shared (`Arc`) by every route — in any peer's Adj-RIB-In, the Loc-RIB and every
//! Adj-RIB-Out — that carries the same set (hash-consing).
//!
//! A set is kept compact: the attributes encoded as on a 4-octet-AS session (without
//! NEXT_HOP, MP_REACH_NLRI and MP_UNREACH_NLRI), the next hop apart, and the few values the
//! decision process reads decoded once. `attrs()` decodes the set back into `wire::Attr`
//! values for export and for the API. Unused sets are dropped by `Interner::sweep`.

use hashbrown::HashTable;
use std::hash::{BuildHasher, Hasher};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use bytes::BytesMut;

use crate::wire::{attr_type as t, AsPath, Attr, AttrValue, Community, Context, Origin, Update};

/// A route's next hop: NEXT_HOP (IPv4 unicast) or the MP_REACH_NLRI next hop (IPv6).
/// `None` in a `PathAttrs` means "this speaker" (locally originated routes): export fills
/// in the session's own address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteNextHop {
    V4(Ipv4Addr),
    V6 {
        global: Ipv6Addr,
        link_local: Option<Ipv6Addr>,
    },
}

/// One interned attribute set. Equality and hash look at the wire bytes and the next hop
/// only: the other fields are derived from the bytes.
#[derive(Debug)]
pub struct PathAttrs {
    /// The attributes (4-octet AS encoding), NEXT_HOP and MP attributes excluded, in the order
    /// they were given.
    wire: Box<[u8]>,
    next_hop: Option<RouteNextHop>,
    /// Hash of `wire` and `next_hop`, computed once (interning and table growth reuse it).
    hash: u64,
    // Derived from `wire` (so they do not change equality), kept decoded for the decision
    // process.
    local_pref: Option<u32>,
    med: Option<u32>,
    origin: Origin,
    path_len: u16,
    neighbor_as: Option<u32>,
    originator_id: Option<Ipv4Addr>,
    cluster_len: u16,
}

impl PartialEq for PathAttrs {
    fn eq(&self, other: &PathAttrs) -> bool {
        self.hash == other.hash && self.next_hop == other.next_hop && self.wire == other.wire
    }
}

impl Eq for PathAttrs {}

impl std::hash::Hash for PathAttrs {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(self.hash);
    }
}

/// The seed of `PathAttrs::hash`, one per process.
fn set_seed() -> u64 {
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SEED.get_or_init(|| FastHash::new().seed)
}

impl PathAttrs {
    /// Build from decoded attributes. NEXT_HOP, MP_REACH_NLRI and MP_UNREACH_NLRI in `attrs`
    /// are ignored (the next hop is `next_hop`).
    pub fn new(attrs: &[Attr], next_hop: Option<RouteNextHop>) -> PathAttrs {
        let cx = Context::modern();
        let mut buf = BytesMut::with_capacity(256);
        let mut p = PathAttrs {
            wire: Box::default(),
            next_hop,
            hash: 0,
            local_pref: None,
            med: None,
            origin: Origin::Incomplete,
            path_len: 0,
            neighbor_as: None,
            originator_id: None,
            cluster_len: 0,
        };
        for a in attrs {
            match &a.value {
                AttrValue::NextHop(_) | AttrValue::MpReach(_) | AttrValue::MpUnreach(_) => continue,
                AttrValue::Origin(o) => p.origin = *o,
                AttrValue::AsPath(path) => {
                    p.path_len = u16::try_from(path.path_len()).unwrap_or(u16::MAX);
                    p.neighbor_as = path.first_as();
                }
                AttrValue::LocalPref(v) => p.local_pref = Some(*v),
                AttrValue::MultiExitDisc(v) => p.med = Some(*v),
                AttrValue::OriginatorId(a) => p.originator_id = Some(*a),
                AttrValue::ClusterList(l) => {
                    p.cluster_len = u16::try_from(l.len()).unwrap_or(u16::MAX)
                }
                _ => {}
            }
            // Every value decoded from the wire re-encodes; one that would not (an AS_PATH
            // segment of more than 255 ASes built locally) is left out rather than panic.
            let at = buf.len();
            if a.encode(&cx, &mut buf).is_err() {
                buf.truncate(at);
            }
        }
        p.wire = Box::from(&buf[..]);
        let mut h = FxHasher(set_seed());
        std::hash::Hash::hash(&p.wire, &mut h);
        std::hash::Hash::hash(&p.next_hop, &mut h);
        p.hash = h.finish();
        p
    }

    /// The attributes, decoded (NEXT_HOP / MP attributes not included: see `next_hop`).
    pub fn attrs(&self) -> Vec<Attr> {
        let Ok(len) = u16::try_from(self.wire.len()) else {
            return Vec::new();
        };
        let mut body = Vec::with_capacity(4 + self.wire.len());
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(&len.to_be_bytes());
        body.extend_from_slice(&self.wire);
        // The bytes were produced by `Attr::encode` under the same context, so they decode.
        Update::decode_body(&body, &Context::modern())
            .map(|u| u.attrs)
            .unwrap_or_default()
    }

    /// The attributes as encoded on a 4-octet-AS session (no NEXT_HOP / MP attributes).
    pub(crate) fn wire(&self) -> &[u8] {
        &self.wire
    }

    pub fn next_hop(&self) -> Option<RouteNextHop> {
        self.next_hop
    }
    pub fn local_pref(&self) -> Option<u32> {
        self.local_pref
    }
    pub fn med(&self) -> Option<u32> {
        self.med
    }
    pub fn origin(&self) -> Origin {
        self.origin
    }
    /// AS path length for route selection (AS_SET counts 1, confederation segments 0).
    pub fn path_len(&self) -> u16 {
        self.path_len
    }
    /// The neighbouring AS: the first AS of a leading AS_SEQUENCE.
    pub fn neighbor_as(&self) -> Option<u32> {
        self.neighbor_as
    }
    pub fn originator_id(&self) -> Option<Ipv4Addr> {
        self.originator_id
    }
    pub fn cluster_len(&self) -> u16 {
        self.cluster_len
    }

    /// The AS_PATH (decoded on demand).
    pub fn as_path(&self) -> AsPath {
        self.attrs()
            .into_iter()
            .find_map(|a| match a.value {
                AttrValue::AsPath(p) => Some(p),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// The COMMUNITIES (decoded on demand).
    pub fn communities(&self) -> Vec<Community> {
        self.attrs()
            .into_iter()
            .find_map(|a| match a.value {
                AttrValue::Communities(c) => Some(c),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// Bytes this set costs on the heap beyond its `Arc` (for memory accounting in tests).
    pub fn heap_len(&self) -> usize {
        self.wire.len()
    }

    /// Whether an attribute of `type_code` is present (NEXT_HOP excluded).
    pub fn has(&self, type_code: u8) -> bool {
        match type_code {
            t::LOCAL_PREF => self.local_pref.is_some(),
            t::MULTI_EXIT_DISC => self.med.is_some(),
            _ => self.attrs().iter().any(|a| a.type_code() == type_code),
        }
    }
}

/// A fast, seeded hasher for RIB tables (FxHash mixing with a per-process random seed, so
/// prefixes chosen by a peer cannot aim at one bucket as easily as with an unseeded hash).
#[derive(Clone, Copy)]
pub(crate) struct FastHash {
    seed: u64,
}

impl FastHash {
    pub(crate) fn new() -> FastHash {
        FastHash {
            seed: std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64) | 1,
        }
    }
}

impl Default for FastHash {
    fn default() -> FastHash {
        FastHash::new()
    }
}

impl BuildHasher for FastHash {
    type Hasher = FxHasher;
    fn build_hasher(&self) -> FxHasher {
        FxHasher(self.seed)
    }
}

pub(crate) struct FxHasher(u64);

const K: u64 = 0xf135_7aea_2e62_a9c5;

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.write_u64(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 56));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(K);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    fn finish(&self) -> u64 {
        // Fold the high bits down: hashbrown takes its bucket index from the low bits.
        let h = self.0.wrapping_mul(K);
        h ^ (h >> 29)
    }
}

/// The set of live attribute sets.
#[derive(Default)]
pub struct Interner {
    sets: HashTable<Arc<PathAttrs>>,
    hasher: FastHash,
    swept_len: usize,
}

impl Interner {
    /// The shared copy of `attrs` (one hash, one probe sequence).
    pub fn intern(&mut self, attrs: PathAttrs) -> Arc<PathAttrs> {
        let h = self.hasher.hash_one(&attrs);
        let hasher = &self.hasher;
        match self
            .sets
            .entry(h, |a| **a == attrs, |a| hasher.hash_one(&**a))
        {
            hashbrown::hash_table::Entry::Occupied(o) => o.get().clone(),
            hashbrown::hash_table::Entry::Vacant(v) => {
                let a = Arc::new(attrs);
                v.insert(a.clone());
                a
            }
        }
    }

    /// Forget sets no route refers to any more. Cheap enough to call after bulk removals;
    /// `maybe_sweep` calls it when the interner has doubled since the last sweep.
    pub fn sweep(&mut self) {
        self.sets.retain(|a| Arc::strong_count(a) > 1);
        self.swept_len = self.sets.len();
    }

    pub fn maybe_sweep(&mut self) {
        if self.sets.len() > 2 * self.swept_len.max(1024) {
            self.sweep();
        }
    }

    /// Distinct attribute sets held (including unused ones not yet swept).
    pub fn len(&self) -> usize {
        self.sets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }
}
