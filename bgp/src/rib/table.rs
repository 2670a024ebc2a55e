//! Storage of the Loc-RIB and the Adj-RIBs-In together: one map per family from prefix to
//! its candidate routes, each candidate tagged with the peer (and ADD-PATH path id) it came
//! from. A peer's Adj-RIB-In is the set of candidates with its tag; the Loc-RIB route of a
//! prefix is its first candidate (the decision process keeps the best one first).
//!
//! Why one map and not one per peer plus a Loc-RIB: a full table then costs one hash entry per
//! prefix instead of two (BIRD stores its routes the same way). Per-peer operations that need
//! every route of a peer (session down, graceful-restart sweeps, the received-routes query)
//! walk the family's map: about 10 ms per million prefixes.

use std::hash::Hash;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::attrs::PathAttrs;

/// A prefix as a compact map key.
pub(crate) trait PrefixKey: Copy + Eq + Hash + Ord + std::fmt::Debug {
    fn from_net(net: IpNet) -> Option<Self>;
    fn to_net(self) -> IpNet;
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

    /// Insert or replace the candidate of (peer, path id). Returns whether it is new.
    pub fn upsert(&mut self, c: Cand) -> bool {
        if let Some(old) = self.get_mut(c.peer, c.path_id) {
            *old = c;
            return false;
        }
        self.more.get_or_insert_with(Default::default).push(c);
        true
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
