//! A stand-in RIB until `bgp::rib` is wired in: per peer, an Adj-RIB-In of what it sent (for
//! `routes received` and max-prefix), and an Adj-RIB-Out holding only the locally originated
//! prefixes (`--originate`), sent with next-hop-self after the session comes up and followed
//! by End-of-RIB for every negotiated family; re-sent on ROUTE-REFRESH. It does not
//! re-advertise received routes between peers (no Loc-RIB decision process).

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};

use bgp::fsm::DownReason;
use bgp::wire::{
    AsPath, Attr, AttrValue, Context, Family, Message, NextHop, Nlri, Origin, RouteRefresh,
    Treatment, Update,
};
use bytes::BytesMut;
use ipnet::IpNet;
use tokio::sync::Notify;

use crate::api::{RouteJson, RouteKind};
use crate::session::{MaxPrefixExceeded, PeerId, RibHandle, SessionInfo};

/// Prefixes per UPDATE: keeps every message well under 4096 bytes.
const PREFIXES_PER_UPDATE: usize = 200;

type RouteKey = (Family, IpNet, Option<u32>);
/// Prefix counts by family.
pub type FamilyCounts = Vec<(Family, u64)>;

struct Received {
    attrs: Vec<Attr>,
    next_hop: Option<String>,
}

#[derive(Default)]
struct PeerRib {
    address: Option<IpAddr>,
    max_prefixes: Option<u32>,
    session: Option<SessionInfo>,
    adj_in: BTreeMap<RouteKey, Arc<Received>>,
    disabled: Vec<Family>,
    queue: VecDeque<(Family, Option<Vec<IpNet>>)>,
    adj_out: BTreeMap<(Family, IpNet), RouteJson>,
}

pub struct InterimRib {
    originate: Vec<IpNet>,
    peers: Mutex<Vec<PeerRib>>,
    wakers: Vec<Arc<Notify>>,
}

fn family_of(net: &IpNet) -> Family {
    match net {
        IpNet::V4(_) => Family::IPV4_UNICAST,
        IpNet::V6(_) => Family::IPV6_UNICAST,
    }
}

impl InterimRib {
    /// `peers`: (address, max-prefixes) by PeerId.
    pub fn new(peers: &[(IpAddr, Option<u32>)], originate: Vec<IpNet>) -> InterimRib {
        InterimRib {
            originate,
            peers: Mutex::new(
                peers
                    .iter()
                    .map(|(a, m)| PeerRib {
                        address: Some(*a),
                        max_prefixes: *m,
                        ..PeerRib::default()
                    })
                    .collect(),
            ),
            wakers: peers.iter().map(|_| Arc::new(Notify::new())).collect(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<PeerRib>> {
        match self.peers.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Prefix counts per family: (received, advertised).
    pub fn counts(&self, peer: PeerId) -> (FamilyCounts, FamilyCounts) {
        let peers = self.lock();
        let Some(p) = peers.get(peer) else {
            return (Vec::new(), Vec::new());
        };
        let mut rx: BTreeMap<Family, u64> = BTreeMap::new();
        for (f, _, _) in p.adj_in.keys() {
            *rx.entry(*f).or_default() += 1;
        }
        let mut tx: BTreeMap<Family, u64> = BTreeMap::new();
        for (f, _) in p.adj_out.keys() {
            *tx.entry(*f).or_default() += 1;
        }
        (rx.into_iter().collect(), tx.into_iter().collect())
    }

    pub fn routes(&self, kind: RouteKind, peer: PeerId, family: Option<Family>) -> Vec<RouteJson> {
        let peers = self.lock();
        let Some(p) = peers.get(peer) else {
            return Vec::new();
        };
        let Some(addr) = p.address else {
            return Vec::new();
        };
        let want = |f: &Family| family.is_none_or(|w| w == *f);
        match kind {
            RouteKind::Received => p
                .adj_in
                .iter()
                .filter(|((f, _, _), _)| want(f))
                .map(|((f, net, path_id), r)| {
                    let nlri = Nlri {
                        prefix: *net,
                        path_id: *path_id,
                    };
                    let mut j = RouteJson::new(addr, *f, &nlri, &r.attrs, r.next_hop.clone());
                    j.best = true;
                    j
                })
                .collect(),
            RouteKind::Advertised => p
                .adj_out
                .iter()
                .filter(|((f, _), _)| want(f))
                .map(|(_, r)| r.clone())
                .collect(),
        }
    }

    fn wake(&self, peer: PeerId) {
        if let Some(w) = self.wakers.get(peer) {
            w.notify_one();
        }
    }
}

impl RibHandle for InterimRib {
    fn peer_up(&self, peer: PeerId, session: &SessionInfo) {
        let mut peers = self.lock();
        let Some(p) = peers.get_mut(peer) else { return };
        p.session = Some(session.clone());
        p.adj_in.clear();
        p.adj_out.clear();
        p.disabled.clear();
        p.queue.clear();
        for f in &session.negotiated.families {
            let mine: Vec<IpNet> = self
                .originate
                .iter()
                .filter(|n| family_of(n) == *f)
                .copied()
                .collect();
            if !mine.is_empty() {
                p.queue.push_back((*f, Some(mine)));
            }
        }
        for f in &session.negotiated.families {
            p.queue.push_back((*f, None));
        }
        drop(peers);
        self.wake(peer);
    }

    fn peer_down(&self, peer: PeerId, _reason: &DownReason) {
        let mut peers = self.lock();
        if let Some(p) = peers.get_mut(peer) {
            p.session = None;
            p.adj_in.clear();
            p.adj_out.clear();
            p.queue.clear();
        }
    }

    fn update(&self, peer: PeerId, update: Update) -> Result<(), MaxPrefixExceeded> {
        let mut peers = self.lock();
        let Some(p) = peers.get_mut(peer) else {
            return Ok(());
        };
        let treatment = update.treatment();
        let withdraw_all = matches!(
            treatment,
            Treatment::TreatAsWithdraw | Treatment::AfiSafiDisable(_)
        );
        if let Treatment::AfiSafiDisable(fs) = &treatment {
            for f in fs {
                if !p.disabled.contains(f) {
                    p.disabled.push(*f);
                }
                p.adj_in.retain(|(g, _, _), _| g != f);
            }
        }
        let attrs: Vec<Attr> = update
            .attrs
            .iter()
            .filter(|a| !matches!(a.value, AttrValue::MpReach(_) | AttrValue::MpUnreach(_)))
            .cloned()
            .collect();
        let v4 = Family::IPV4_UNICAST;
        for n in &update.withdrawn {
            p.adj_in.remove(&(v4, n.prefix, n.path_id));
        }
        if let Some(mp) = update.mp_unreach() {
            for n in mp.withdrawn.prefixes() {
                p.adj_in.remove(&(mp.family, n.prefix, n.path_id));
            }
        }
        let mut touched = Vec::new();
        if !update.nlri.is_empty() {
            let r = Arc::new(Received {
                attrs: attrs.clone(),
                next_hop: update.next_hop().map(|n| n.to_string()),
            });
            for n in &update.nlri {
                let key = (v4, n.prefix, n.path_id);
                if withdraw_all || p.disabled.contains(&v4) {
                    p.adj_in.remove(&key);
                } else {
                    p.adj_in.insert(key, r.clone());
                }
            }
            touched.push(v4);
        }
        if let Some(mp) = update.mp_reach() {
            let nh = match &mp.next_hop {
                NextHop::V4(a) => Some(a.to_string()),
                NextHop::V6 { global, .. } => Some(global.to_string()),
                NextHop::Opaque(_) => None,
            };
            let r = Arc::new(Received {
                attrs,
                next_hop: nh,
            });
            for n in mp.nlri.prefixes() {
                let key = (mp.family, n.prefix, n.path_id);
                if withdraw_all || p.disabled.contains(&mp.family) {
                    p.adj_in.remove(&key);
                } else {
                    p.adj_in.insert(key, r.clone());
                }
            }
            touched.push(mp.family);
        }
        if let Some(limit) = p.max_prefixes {
            for f in touched {
                let n = p.adj_in.keys().filter(|(g, _, _)| *g == f).count();
                if n > limit as usize {
                    return Err(MaxPrefixExceeded { family: f, limit });
                }
            }
        }
        Ok(())
    }

    fn route_refresh(&self, peer: PeerId, request: &RouteRefresh) {
        let mut peers = self.lock();
        let Some(p) = peers.get_mut(peer) else { return };
        if p.session.is_none() {
            return;
        }
        let mine: Vec<IpNet> = self
            .originate
            .iter()
            .filter(|n| family_of(n) == request.family)
            .copied()
            .collect();
        if !mine.is_empty() {
            p.queue.push_back((request.family, Some(mine)));
        }
        drop(peers);
        self.wake(peer);
    }

    fn pull(&self, peer: PeerId, cx: &Context, budget: usize, out: &mut BytesMut) {
        let mut peers = self.lock();
        let Some(p) = peers.get_mut(peer) else { return };
        let Some(session) = p.session.clone() else {
            return;
        };
        let neg = &session.negotiated;
        while out.len() < budget {
            let Some((family, prefixes)) = p.queue.pop_front() else {
                return;
            };
            let Some(mut prefixes) = prefixes else {
                let _ = Message::Update(Update::end_of_rib(family)).encode(cx, out);
                continue;
            };
            let rest = prefixes.split_off(prefixes.len().min(PREFIXES_PER_UPDATE));
            if !rest.is_empty() {
                p.queue.push_front((family, Some(rest)));
            }
            let local = session.local.ip();
            let mut attrs = vec![Attr::new(AttrValue::Origin(Origin::Igp))];
            attrs.push(Attr::new(AttrValue::AsPath(if neg.is_ibgp() {
                AsPath::default()
            } else {
                AsPath::sequence(vec![neg.local_as])
            })));
            let nlri: Vec<Nlri> = prefixes.iter().map(|n| Nlri::new(*n)).collect();
            let (update, nh) = if family == Family::IPV4_UNICAST {
                let IpAddr::V4(nh) = crate::session::socket::canonical(local) else {
                    tracing::warn!(
                        "no IPv4 next hop for IPv4 prefixes over an IPv6 session to {:?}",
                        p.address
                    );
                    continue;
                };
                attrs.push(Attr::new(AttrValue::NextHop(nh)));
                if neg.is_ibgp() {
                    attrs.push(Attr::new(AttrValue::LocalPref(100)));
                }
                (Update::announce(attrs, nlri, None), nh.to_string())
            } else {
                let global: Ipv6Addr = match crate::session::socket::canonical(local) {
                    IpAddr::V6(a) => a,
                    IpAddr::V4(a) => a.to_ipv6_mapped(),
                };
                if neg.is_ibgp() {
                    attrs.push(Attr::new(AttrValue::LocalPref(100)));
                }
                let nh = NextHop::V6 {
                    global,
                    link_local: None,
                };
                (
                    Update::announce(attrs, Vec::new(), Some((family, nh, nlri))),
                    global.to_string(),
                )
            };
            let plain: Vec<Attr> = update
                .attrs
                .iter()
                .filter(|a| !matches!(a.value, AttrValue::MpReach(_)))
                .cloned()
                .collect();
            if let Some(addr) = p.address {
                for n in &prefixes {
                    let j = RouteJson::new(addr, family, &Nlri::new(*n), &plain, Some(nh.clone()));
                    p.adj_out.insert((family, *n), j);
                }
            }
            if let Err(e) = Message::Update(update).encode(cx, out) {
                tracing::error!("cannot encode an UPDATE for {:?}: {e}", p.address);
            }
        }
    }

    fn waker(&self, peer: PeerId) -> Arc<Notify> {
        self.wakers
            .get(peer)
            .cloned()
            .unwrap_or_else(|| Arc::new(Notify::new()))
    }
}
