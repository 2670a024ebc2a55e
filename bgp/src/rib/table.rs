//! Storage of the Loc-RIB and the Adj-RIBs-In together: one table per family from prefix to
//! its candidate routes, each candidate tagged with the peer (and ADD-PATH path id) it came
//! from. A peer's Adj-RIB-In is the set of candidates with its tag; the Loc-RIB route of a
//! prefix is its first candidate (the decision process keeps the best one first).
//!
//! Why one table and not one per peer plus a Loc-RIB: a full table then costs one entry per
//! prefix instead of two (BIRD stores its routes the same way). Per-peer operations that need
//! every route of a peer (session down, graceful-restart sweeps, the received-routes query)
//! walk the family's slots: about 10 ms per million prefixes.
//!
//! Layout: the entries live in a slab (`slots`, stable indices), and the hash index holds only
//! the slot index and a 32-bit hash (the key is read from the slot), so a million IPv4
//! prefixes cost 32 bytes of slab and ~9-18 bytes of index each (BIRD: ~150 bytes per route
//! all told). The stable index lets every peer's
//! Adj-RIB-Out be two bitsets over the slots (`Bits`: changed since last export, and
//! advertised) instead of a map. A prefix whose last candidate goes stays in its slot, empty
//! (a "zombie"), until no peer still has it marked changed, so that each such peer can send
//! the withdrawal; only then is the slot freed for reuse.

use std::hash::{BuildHasher, Hash};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use hashbrown::HashTable;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::attrs::{FastHash, PathAttrs};

/// A prefix as a compact map key.
pub(crate) trait PrefixKey: Copy + Eq + Hash + Ord + std::fmt::Debug {
    fn from_net(net: IpNet) -> Option<Self>;
    fn to_net(self) -> IpNet;
    /// Append the prefix in NLRI encoding (RFC 4271 §4.3; with a zero ADD-PATH path id
    /// first when `add_path`).
    fn put_nlri(self, add_path: bool, out: &mut Vec<u8>);
}

/// IPv4 prefix: address in the high 32 bits, length in the low 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct P4(u64);

impl PrefixKey for P4 {
    fn from_net(net: IpNet) -> Option<P4> {
        match net {
            IpNet::V4(n) => Some(P4(
                (u64::from(u32::from(n.network())) << 8) | u64::from(n.prefix_len())
            )),
            IpNet::V6(_) => None,
        }
    }
    fn to_net(self) -> IpNet {
        let addr = Ipv4Addr::from((self.0 >> 8) as u32);
        let len = (self.0 & 0xff) as u8;
        IpNet::V4(Ipv4Net::new(addr, len.min(32)).unwrap_or_default())
    }
    fn put_nlri(self, add_path: bool, out: &mut Vec<u8>) {
        if add_path {
            out.extend_from_slice(&[0; 4]);
        }
        let len = ((self.0 & 0xff) as u8).min(32);
        out.push(len);
        let a = ((self.0 >> 8) as u32).to_be_bytes();
        out.extend_from_slice(&a[..usize::from(len).div_ceil(8)]);
    }
}

/// IPv6 prefix (u64 halves keep the key 8-aligned: 24 bytes instead of 32 with u128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct P6 {
    hi: u64,
    lo: u64,
    len: u8,
}

impl PrefixKey for P6 {
    fn from_net(net: IpNet) -> Option<P6> {
        match net {
            IpNet::V6(n) => {
                let a = u128::from(n.network());
                Some(P6 {
                    hi: (a >> 64) as u64,
                    lo: a as u64,
                    len: n.prefix_len(),
                })
            }
            IpNet::V4(_) => None,
        }
    }
    fn to_net(self) -> IpNet {
        let addr = Ipv6Addr::from((u128::from(self.hi) << 64) | u128::from(self.lo));
        IpNet::V6(Ipv6Net::new(addr, self.len.min(128)).unwrap_or_default())
    }
    fn put_nlri(self, add_path: bool, out: &mut Vec<u8>) {
        if add_path {
            out.extend_from_slice(&[0; 4]);
        }
        let len = self.len.min(128);
        out.push(len);
        let a = ((u128::from(self.hi) << 64) | u128::from(self.lo)).to_be_bytes();
        out.extend_from_slice(&a[..usize::from(len).div_ceil(8)]);
    }
}

/// One candidate route of a prefix: 16 bytes.
#[derive(Debug, Clone)]
pub(crate) struct Cand {
    pub attrs: Arc<PathAttrs>,
    pub path_id: u32,
    pub peer: u16,
    pub stale: bool,
}

/// The candidates of one prefix; `first` is the Loc-RIB best route after `reselect`.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub first: Cand,
    /// Boxed so an entry stays 24 bytes (a bare `Vec` would make it 40): most prefixes
    /// have one candidate, and this field is then one null pointer.
    #[allow(clippy::box_collection)]
    pub more: Option<Box<Vec<Cand>>>,
}

impl Entry {
    pub fn new(c: Cand) -> Entry {
        Entry {
            first: c,
            more: None,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Cand> {
        std::iter::once(&self.first).chain(self.more.iter().flat_map(|v| v.iter()))
    }

    pub fn len(&self) -> usize {
        1 + self.more.as_ref().map_or(0, |v| v.len())
    }

    fn get_mut(&mut self, peer: u16, path_id: u32) -> Option<&mut Cand> {
        if self.first.peer == peer && self.first.path_id == path_id {
            return Some(&mut self.first);
        }
        self.more
            .as_mut()?
            .iter_mut()
            .find(|c| c.peer == peer && c.path_id == path_id)
    }

    /// Insert or replace the candidate of (peer, path id). Returns the one it replaced
    /// (`None`: it is new).
    pub fn upsert(&mut self, c: Cand) -> Option<Cand> {
        if let Some(old) = self.get_mut(c.peer, c.path_id) {
            return Some(std::mem::replace(old, c));
        }
        self.more.get_or_insert_with(Default::default).push(c);
        None
    }

    /// Remove the candidates matching `pred`; returns how many, and whether the entry is
    /// now empty (then `first` is meaningless and the entry must be dropped).
    pub fn remove_where(&mut self, mut pred: impl FnMut(&Cand) -> bool) -> (usize, bool) {
        let mut removed = 0;
        if let Some(v) = self.more.as_mut() {
            let before = v.len();
            v.retain(|c| !pred(c));
            removed += before - v.len();
        }
        if pred(&self.first) {
            removed += 1;
            match self.more.as_mut().and_then(|v| v.pop()) {
                Some(c) => self.first = c,
                None => return (removed, true),
            }
        }
        if self.more.as_ref().is_some_and(|v| v.is_empty()) {
            self.more = None;
        }
        (removed, false)
    }

    /// Put the candidate at `idx` (in `iter` order) first.
    pub fn make_first(&mut self, idx: usize) {
        if idx == 0 {
            return;
        }
        if let Some(v) = self.more.as_mut() {
            if let Some(c) = v.get_mut(idx - 1) {
                std::mem::swap(&mut self.first, c);
            }
        }
    }
}

/// One slot of a family's slab: the prefix and its candidates (`None`: free, or a zombie
/// waiting for its withdrawals to be exported).
#[derive(Debug)]
pub(crate) struct Slot<K> {
    pub key: K,
    pub entry: Option<Entry>,
}

/// A growable bitset over slot indices, with its population count.
#[derive(Debug, Default, Clone)]
pub(crate) struct Bits {
    words: Vec<u64>,
    ones: usize,
}

impl Bits {
    pub fn get(&self, i: u32) -> bool {
        let i = i as usize;
        self.words
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Set bit `i`; returns whether it was clear.
    pub fn set(&mut self, i: u32) -> bool {
        let i = i as usize;
        if self.words.len() <= i / 64 {
            self.words.resize(i / 64 + 1, 0);
        }
        let w = &mut self.words[i / 64];
        let m = 1 << (i % 64);
        let was_clear = *w & m == 0;
        *w |= m;
        self.ones += usize::from(was_clear);
        was_clear
    }

    /// Clear bit `i`; returns whether it was set.
    pub fn clear(&mut self, i: u32) -> bool {
        let i = i as usize;
        let Some(w) = self.words.get_mut(i / 64) else {
            return false;
        };
        let m = 1 << (i % 64);
        let was_set = *w & m != 0;
        *w &= !m;
        self.ones -= usize::from(was_set);
        was_set
    }

    pub fn ones(&self) -> usize {
        self.ones
    }

    pub fn is_empty(&self) -> bool {
        self.ones == 0
    }

    /// Take (clear and return) up to `max` set bits, lowest first.
    pub fn take(&mut self, max: usize, out: &mut Vec<u32>) {
        if self.ones == 0 {
            return;
        }
        let start = out.len();
        for (wi, w) in self.words.iter_mut().enumerate() {
            while *w != 0 && out.len() - start < max {
                let b = w.trailing_zeros();
                *w &= *w - 1;
                out.push((wi * 64) as u32 + b);
            }
            if out.len() - start >= max {
                break;
            }
        }
        self.ones -= out.len() - start;
    }

    /// Set every bit that is set in `other`.
    pub fn union_with(&mut self, other: &Bits) {
        if self.words.len() < other.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= *b;
        }
        self.ones = self.words.iter().map(|w| w.count_ones() as usize).sum();
    }

    /// Indices of the set bits, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.words.iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros();
                w &= w - 1;
                Some((wi * 64) as u32 + b)
            })
        })
    }
}

/// One family's prefixes: the slab and its hash index. The index holds (slot, 32-bit hash):
/// growing it and probing it never touch the slab except on a hash match.
pub(crate) struct FamTable<K> {
    pub slots: Vec<Slot<K>>,
    index: HashTable<(u32, u32)>,
    hasher: FastHash,
    free: Vec<u32>,
    /// Slots with candidates.
    live: usize,
}

/// The table hash of a stored 32-bit hash: both halves, so the bucket index (low bits) and
/// hashbrown's tag (top 7 bits) both come from it.
fn spread(h: u32) -> u64 {
    u64::from(h) | (u64::from(h) << 32)
}

impl<K: PrefixKey> FamTable<K> {
    fn hash32(&self, key: K) -> u32 {
        let h = self.hasher.hash_one(key);
        (h ^ (h >> 32)) as u32
    }

    pub fn new() -> Self {
        FamTable {
            slots: Vec::new(),
            index: HashTable::new(),
            hasher: FastHash::new(),
            free: Vec::new(),
            live: 0,
        }
    }

    /// Prefixes with at least one candidate.
    pub fn len(&self) -> usize {
        self.live
    }

    /// The slot of `key` (live or zombie).
    pub fn find(&self, key: K) -> Option<u32> {
        let h = self.hash32(key);
        let slots = &self.slots;
        self.index
            .find(spread(h), |&(i, hi)| {
                hi == h && slots[i as usize].key == key
            })
            .map(|&(i, _)| i)
    }

    pub fn get(&self, key: K) -> Option<&Entry> {
        self.find(key)
            .and_then(|i| self.slots[i as usize].entry.as_ref())
    }

    /// The slot of `key`, made (empty) if there is none.
    pub fn find_or_add(&mut self, key: K) -> u32 {
        let h = self.hash32(key);
        let slots = &self.slots;
        if let Some(&(i, _)) = self.index.find(spread(h), |&(i, hi)| {
            hi == h && slots[i as usize].key == key
        }) {
            return i;
        }
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Slot { key, entry: None };
                i
            }
            None => {
                self.slots.push(Slot { key, entry: None });
                (self.slots.len() - 1) as u32
            }
        };
        self.index
            .insert_unique(spread(h), (i, h), |&(_, hj)| spread(hj));
        i
    }

    /// Put candidates into slot `i` (or take them out with `None`), keeping the live count.
    pub fn set_entry(&mut self, i: u32, entry: Option<Entry>) {
        let s = &mut self.slots[i as usize];
        match (s.entry.is_some(), entry.is_some()) {
            (false, true) => self.live += 1,
            (true, false) => self.live -= 1,
            _ => {}
        }
        s.entry = entry;
    }

    /// Free an empty slot (its prefix leaves the index). No-op for a live or freed slot.
    pub fn free_slot(&mut self, i: u32) {
        let Some(s) = self.slots.get(i as usize) else {
            return;
        };
        if s.entry.is_some() {
            return;
        }
        let h = self.hash32(s.key);
        if let Ok(o) = self.index.find_entry(spread(h), |&(j, _)| j == i) {
            o.remove();
            self.free.push(i);
        }
    }

    /// Live entries with their slot index and key.
    pub fn iter(&self) -> impl Iterator<Item = (u32, K, &Entry)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((i as u32, s.key, s.entry.as_ref()?)))
    }

    /// Empty slots still indexed (zombies).
    pub fn zombies(&self) -> Vec<u32> {
        self.index
            .iter()
            .map(|&(i, _)| i)
            .filter(|&i| self.slots[i as usize].entry.is_none())
            .collect()
    }
}
