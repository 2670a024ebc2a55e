//! The RFC 4271 §9.1 decision process: which candidate of a prefix is the Loc-RIB route.
//!
//! §9.1.2.2 is written as successive eliminations over the set of candidates, and so is this
//! code: each step keeps only the candidates that are best by one criterion, in the RFC's
//! order. That makes the MED step (which compares only routes from the same neighbouring AS
//! and is therefore not a total order) deterministic: the result never depends on the order
//! routes arrived in.
//!
//! Steps, in order:
//! 0. locally originated routes (from the agent: pod CIDRs, VIPs) win over learned ones — the
//!    "weight" other implementations give them (FRR 32768; RFC 4271 §9.1.1 leaves the degree of
//!    preference to local policy);
//! 1. §9.1.1: highest degree of preference = LOCAL_PREF (routes from eBGP carry none after
//!    import; they and iBGP routes without one get `RibConfig::default_local_pref`, 100);
//! 2. §9.1.2.2 a: shortest AS_PATH (an AS_SET counts 1, confederation segments 0, RFC 5065);
//! 3. §9.1.2.2 b: lowest ORIGIN (IGP < EGP < INCOMPLETE);
//! 4. §9.1.2.2 c: lowest MULTI_EXIT_DISC among routes from the same neighbouring AS (a
//!    missing MED counts as 0, the lowest value); across all routes when
//!    `always_compare_med` is set;
//! 5. §9.1.2.2 d: eBGP-learned over iBGP-learned;
//! 6. §9.1.2.2 e: lowest interior cost to the next hop — skipped: bgplane has no IGP, and every
//!    next hop is taken as resolvable (§9.1.2.1's unresolvable-next-hop exclusion never fires);
//! 7. §9.1.2.2 f: lowest BGP Identifier, ORIGINATOR_ID standing in for it when present
//!    (RFC 4456 §9);
//! 8. RFC 4456 §9: shortest CLUSTER_LIST;
//! 9. §9.1.2.2 g: lowest peer address;
//! 10. then, to stay total: lowest ADD-PATH path id, lowest peer index.
//!
//! Graceful-restart stale routes (RFC 4724) are compared like any other: the RFC keeps them
//! in use and gives no rule to demote them, so a stale route loses only on its attributes.

use std::net::{IpAddr, Ipv4Addr};

use super::table::Cand;

/// What the decision process needs to know about the peer a candidate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PeerFacts {
    pub local: bool,
    pub ebgp: bool,
    pub bgp_id: Ipv4Addr,
    pub addr: IpAddr,
}

/// Options of the decision process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecisionConfig {
    pub default_local_pref: u32,
    /// Compare MED between routes from different neighbouring ASes too (off by default, as
    /// RFC 4271 says).
    pub always_compare_med: bool,
}

impl Default for DecisionConfig {
    fn default() -> Self {
        DecisionConfig {
            default_local_pref: 100,
            always_compare_med: false,
        }
    }
}

#[derive(Clone, Copy)]
struct Key {
    idx: usize,
    local: bool,
    local_pref: u32,
    path_len: u16,
    origin: u8,
    neighbor_as: Option<u32>,
    med: u32,
    ebgp: bool,
    bgp_id: Ipv4Addr,
    cluster_len: u16,
    addr: IpAddr,
    path_id: u32,
    peer: u16,
}

/// Keep only the keys for which `f` is minimal.
fn keep_min<T: Ord>(keys: &mut Vec<Key>, f: impl Fn(&Key) -> T) {
    if keys.len() < 2 {
        return;
    }
    if let Some(min) = keys.iter().map(&f).min() {
        keys.retain(|k| f(k) == min);
    }
}

/// The index (in iteration order) of the best candidate. `facts` gives each candidate's peer.
pub(crate) fn select<'a>(
    cands: impl Iterator<Item = &'a Cand>,
    facts: impl Fn(u16) -> PeerFacts,
    cfg: &DecisionConfig,
) -> usize {
    let mut keys: Vec<Key> = cands
        .enumerate()
        .map(|(idx, c)| {
            let p = facts(c.peer);
            let a = &c.attrs;
            Key {
                idx,
                local: p.local,
                local_pref: a.local_pref().unwrap_or(cfg.default_local_pref),
                path_len: a.path_len(),
                origin: a.origin().code(),
                neighbor_as: a.neighbor_as(),
                med: a.med().unwrap_or(0),
                ebgp: p.ebgp,
                bgp_id: a.originator_id().unwrap_or(p.bgp_id),
                cluster_len: a.cluster_len(),
                addr: p.addr,
                path_id: c.path_id,
                peer: c.peer,
            }
        })
        .collect();
    keep_min(&mut keys, |k| !k.local);
    keep_min(&mut keys, |k| std::cmp::Reverse(k.local_pref));
    keep_min(&mut keys, |k| k.path_len);
    keep_min(&mut keys, |k| k.origin);
    if keys.len() > 1 {
        let all = keys.clone();
        let always = cfg.always_compare_med;
        keys.retain(|k| {
            !all.iter()
                .any(|o| (always || o.neighbor_as == k.neighbor_as) && o.med < k.med)
        });
    }
    keep_min(&mut keys, |k| !k.ebgp);
    keep_min(&mut keys, |k| k.bgp_id);
    keep_min(&mut keys, |k| k.cluster_len);
    keep_min(&mut keys, |k| k.addr);
    keep_min(&mut keys, |k| (k.path_id, k.peer));
    keys.first().map_or(0, |k| k.idx)
}
