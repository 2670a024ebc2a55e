//! The sending side: exporting dirty prefixes into a peer's Adj-RIB-Out and packing them
//! into UPDATEs (`Rib::next_messages`).
//!
//! Staging takes every dirty prefix of a family at once, exports each (rules in `export.rs`,
//! then the policy hook), compares with what was sent, and groups the changes by outgoing
//! attribute set. Messages are then cut from the groups on demand: each UPDATE carries as many
//! prefixes of one group as the negotiated maximum message size allows (IPv4 in the NLRI
//! field, IPv6 in MP_REACH_NLRI put first), withdrawals likewise (Withdrawn Routes /
//! MP_UNREACH_NLRI). The MP attributes always use the 2-octet Extended Length form, so the
//! size of a message is exactly predictable from its prefixes.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::BytesMut;

use crate::wire::{
    flag, Attr, AttrValue, Context, Family, Message, MpNlri, MpReach, MpUnreach, NextHop, Nlri,
    RefreshSubtype, RouteRefresh, Update,
};

use super::attrs::{FastHash, PathAttrs, RouteNextHop};
use super::core::{facts, Fam, PeerSlot, Rib};
use super::export::{export, Source, Target};
use super::table::{P4, P6};
use super::{ExportAction, PeerId, RibError};

/// Messages queued toward a peer, cut into UPDATEs when pulled.
pub(crate) enum Pending {
    Msg(Message),
    Announce {
        family: Family,
        attrs: Arc<PathAttrs>,
        prefixes: Vec<Nlri>,
        next: usize,
    },
    Withdraw {
        family: Family,
        prefixes: Vec<Nlri>,
        next: usize,
    },
}

fn next_hop_attr(nh: Option<RouteNextHop>) -> Option<NextHop> {
    Some(match nh? {
        RouteNextHop::V4(a) => NextHop::V4(a),
        RouteNextHop::V6 { global, link_local } => NextHop::V6 { global, link_local },
    })
}

/// The UPDATE for `attrs` with no prefixes yet, as it will be encoded toward this peer.
pub(crate) fn announce_template(family: Family, attrs: &PathAttrs, four_octet: bool) -> Update {
    let mut list = attrs.attrs();
    let mut u = if family == Family::IPV4_UNICAST {
        if let Some(RouteNextHop::V4(a)) = attrs.next_hop() {
            list.push(Attr::new(AttrValue::NextHop(a)));
            list.sort_by_key(Attr::type_code);
        }
        Update {
            attrs: list,
            ..Update::default()
        }
    } else {
        let mut all = Vec::with_capacity(list.len() + 1);
        all.push(Attr {
            flags: flag::OPTIONAL | flag::EXTENDED_LENGTH,
            value: AttrValue::MpReach(MpReach {
                family,
                next_hop: next_hop_attr(attrs.next_hop())
                    .unwrap_or(NextHop::V4(std::net::Ipv4Addr::UNSPECIFIED)),
                nlri: MpNlri::Prefixes(Vec::new()),
            }),
        });
        all.extend(list);
        Update {
            attrs: all,
            ..Update::default()
        }
    };
    if !four_octet {
        u.split_for_old_speaker();
    }
    u
}

pub(crate) fn withdraw_template(family: Family) -> Update {
    if family == Family::IPV4_UNICAST {
        return Update::default();
    }
    Update {
        attrs: vec![Attr {
            flags: flag::OPTIONAL | flag::EXTENDED_LENGTH,
            value: AttrValue::MpUnreach(MpUnreach {
                family,
                withdrawn: MpNlri::Prefixes(Vec::new()),
            }),
        }],
        ..Update::default()
    }
}

fn encoded_len(m: &Message, cx: &Context) -> Option<usize> {
    let mut b = BytesMut::new();
    m.encode(cx, &mut b).ok()?;
    Some(b.len())
}

/// Put `chunk` into the template's NLRI (IPv4: NLRI / Withdrawn field; else the MP attribute).
fn fill(mut u: Update, family: Family, chunk: Vec<Nlri>, withdraw: bool) -> Update {
    if family == Family::IPV4_UNICAST {
        if withdraw {
            u.withdrawn = chunk;
        } else {
            u.nlri = chunk;
        }
        return u;
    }
    for a in &mut u.attrs {
        match &mut a.value {
            AttrValue::MpReach(m) if !withdraw => m.nlri = MpNlri::Prefixes(chunk),
            AttrValue::MpUnreach(m) if withdraw => m.withdrawn = MpNlri::Prefixes(chunk),
            _ => continue,
        }
        break;
    }
    u
}

impl Pending {
    /// Cut the next message. `None` when this item is used up.
    fn cut(&mut self, cx: &Context, four_octet: bool) -> Option<Message> {
        let (family, template, prefixes, next, withdraw) = match self {
            Pending::Msg(_) => {
                let m = std::mem::replace(
                    self,
                    Pending::Withdraw {
                        family: Family::IPV4_UNICAST,
                        prefixes: Vec::new(),
                        next: 0,
                    },
                );
                return match m {
                    Pending::Msg(m) => Some(m),
                    _ => None,
                };
            }
            Pending::Announce {
                family,
                attrs,
                prefixes,
                next,
            } => (
                *family,
                announce_template(*family, attrs, four_octet),
                prefixes,
                next,
                false,
            ),
            Pending::Withdraw {
                family,
                prefixes,
                next,
            } => (*family, withdraw_template(*family), prefixes, next, true),
        };
        if *next >= prefixes.len() {
            return None;
        }
        let max = cx.max_message_len();
        let add_path = cx.add_path(family);
        let fixed = encoded_len(&Message::Update(template.clone()), cx).unwrap_or(usize::MAX);
        let mut size = fixed;
        let mut end = *next;
        while end < prefixes.len() {
            let l = prefixes[end].encoded_len(add_path);
            if size.saturating_add(l) > max {
                break;
            }
            size += l;
            end += 1;
        }
        if end == *next {
            // The attributes alone leave no room for a prefix (or do not encode): these
            // routes cannot be sent to this peer.
            *next = prefixes.len();
            return None;
        }
        let chunk = prefixes[*next..end].to_vec();
        *next = end;
        Some(Message::Update(fill(template, family, chunk, withdraw)))
    }
}

/// Export of one route toward one peer, with memoisation of the default rules per
/// (attribute set, source kind) within one staging pass.
struct Exporter<'a> {
    target: Target,
    target_id: u16,
    v6: bool,
    sources: Vec<Option<Source>>,
    memo: HashMap<(usize, u8), Option<Arc<PathAttrs>>, FastHash>,
    policy: Option<&'a dyn super::ExportPolicy>,
}

impl Exporter<'_> {
    fn export(
        &mut self,
        interner: &mut super::Interner,
        prefix: ipnet::IpNet,
        attrs: &Arc<PathAttrs>,
        src_peer: u16,
    ) -> Option<Arc<PathAttrs>> {
        if src_peer == self.target_id {
            return None;
        }
        let src = (*self.sources.get(usize::from(src_peer))?)?;
        let key = (Arc::as_ptr(attrs) as usize, src as u8);
        let out = match self.memo.get(&key) {
            Some(o) => o.clone(),
            None => {
                let o = export(attrs, src, &self.target, self.v6).map(|p| interner.intern(p));
                self.memo.insert(key, o.clone());
                o
            }
        }?;
        let Some(policy) = self.policy else {
            return Some(out);
        };
        let list = out.attrs();
        match policy.export(PeerId(self.target_id), prefix, &list) {
            ExportAction::Accept => Some(out),
            ExportAction::Reject => None,
            ExportAction::Replace(new) => {
                Some(interner.intern(PathAttrs::new(&new, out.next_hop())))
            }
        }
    }
}

fn target_of(slot: &PeerSlot, default_local_pref: u32) -> Option<Target> {
    let s = slot.session.as_ref()?;
    Some(Target {
        local_as: slot.cfg.local_as,
        peer_as: slot.cfg.peer_as,
        ebgp: slot.cfg.is_ebgp(),
        send_med: slot.cfg.send_med,
        next_hop_v4: s.next_hop_v4,
        next_hop_v6: s.next_hop_v6,
        default_local_pref,
    })
}

/// Group (prefix, attrs) pairs by attribute set, groups ordered by their first prefix.
fn group(items: Vec<(Nlri, Arc<PathAttrs>)>, family: Family) -> Vec<Pending> {
    let mut index: HashMap<usize, usize, FastHash> = HashMap::with_hasher(FastHash::new());
    let mut groups: Vec<(Arc<PathAttrs>, Vec<Nlri>)> = Vec::new();
    for (n, a) in items {
        let k = Arc::as_ptr(&a) as usize;
        let i = *index.entry(k).or_insert_with(|| {
            groups.push((a.clone(), Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push(n);
    }
    groups
        .into_iter()
        .map(|(attrs, prefixes)| Pending::Announce {
            family,
            attrs,
            prefixes,
            next: 0,
        })
        .collect()
}

impl Rib {
    /// Export the dirty prefixes of family `K` toward `id` into its queue. Returns whether
    /// anything was queued.
    fn stage_dirty<K: Fam>(&mut self, id: PeerId) -> bool {
        let default_lp = self.cfg.decision.default_local_pref;
        let sources: Vec<Option<Source>> = (0..self.peers.len())
            .map(|i| {
                let f = facts(&self.peers, i as u16);
                self.peers[i].as_ref().map(|_| {
                    if f.local {
                        Source::Local
                    } else if f.ebgp {
                        Source::Ebgp
                    } else {
                        Source::Ibgp
                    }
                })
            })
            .collect();
        let Some(Some(slot)) = self.peers.get_mut(usize::from(id.0)) else {
            return false;
        };
        let Some(target) = target_of(slot, default_lp) else {
            return false;
        };
        let out = K::out(&mut slot.outs);
        if out.dirty.is_empty() {
            return false;
        }
        let mut dirty: Vec<K> = out.dirty.drain().collect();
        // After an initial dump the set would otherwise keep a full table's capacity.
        out.dirty.shrink_to(1024);
        dirty.sort_unstable();
        let mut ex = Exporter {
            target,
            target_id: id.0,
            v6: K::V6,
            sources,
            memo: HashMap::with_hasher(FastHash::new()),
            policy: slot.policy.as_deref(),
        };
        let table = K::table_ref(&self.tables);
        let out = K::out(&mut slot.outs);
        let mut announce = Vec::new();
        let mut withdraw = Vec::new();
        for k in dirty {
            let new = table.map.get(&k).and_then(|e| {
                ex.export(&mut self.interner, k.to_net(), &e.first.attrs, e.first.peer)
            });
            let n = Nlri {
                prefix: k.to_net(),
                path_id: None,
            };
            match (new, out.sent.get(&k)) {
                (Some(a), Some(prev)) if Arc::ptr_eq(&a, prev) => {}
                (Some(a), _) => {
                    out.sent.insert(k, a.clone());
                    announce.push((n, a));
                }
                (None, Some(_)) => {
                    out.sent.remove(&k);
                    withdraw.push(n);
                }
                (None, None) => {}
            }
        }
        let queued = !announce.is_empty() || !withdraw.is_empty();
        if !withdraw.is_empty() {
            slot.queue.push_back(Pending::Withdraw {
                family: K::FAMILY,
                prefixes: withdraw,
                next: 0,
            });
        }
        slot.queue.extend(group(announce, K::FAMILY));
        queued
    }

    /// Queue a family's whole Adj-RIB-Out again (route refresh), inside BoRR/EoRR if enhanced.
    fn stage_refresh<K: Fam>(&mut self, id: PeerId) -> bool {
        let Some(Some(slot)) = self.peers.get_mut(usize::from(id.0)) else {
            return false;
        };
        let Some(session) = slot.session.as_ref() else {
            return false;
        };
        let enhanced = session.enhanced_route_refresh;
        let out = K::out(&mut slot.outs);
        if !out.refresh {
            return false;
        }
        out.refresh = false;
        let mut items: Vec<(K, Arc<PathAttrs>)> =
            out.sent.iter().map(|(k, a)| (*k, a.clone())).collect();
        items.sort_unstable_by_key(|x| x.0);
        let items = items
            .into_iter()
            .map(|(k, a)| {
                (
                    Nlri {
                        prefix: k.to_net(),
                        path_id: None,
                    },
                    a,
                )
            })
            .collect();
        let rr = |subtype| {
            Pending::Msg(Message::RouteRefresh(RouteRefresh {
                family: K::FAMILY,
                subtype,
            }))
        };
        if enhanced {
            slot.queue.push_back(rr(RefreshSubtype::BoRR));
        }
        slot.queue.extend(group(items, K::FAMILY));
        if enhanced {
            slot.queue.push_back(rr(RefreshSubtype::EoRR));
        }
        true
    }

    fn queue_eor(&mut self, id: PeerId, family: Family) {
        if let Some(Some(slot)) = self.peers.get_mut(usize::from(id.0)) {
            if let Some(i) = slot.eor_pending.iter().position(|f| *f == family) {
                slot.eor_pending.remove(i);
                slot.queue
                    .push_back(Pending::Msg(Message::Update(Update::end_of_rib(family))));
            }
        }
    }

    /// Fill the queue of `id` from its dirty sets, refresh requests and End-of-RIB markers.
    fn stage(&mut self, id: PeerId) -> bool {
        let mut any = false;
        if self.stage_dirty::<P4>(id) {
            any = true;
        }
        self.queue_eor(id, Family::IPV4_UNICAST);
        if self.stage_dirty::<P6>(id) {
            any = true;
        }
        self.queue_eor(id, Family::IPV6_UNICAST);
        any |= self.stage_refresh::<P4>(id);
        any |= self.stage_refresh::<P6>(id);
        if let Some(Some(slot)) = self.peers.get_mut(usize::from(id.0)) {
            for f in std::mem::take(&mut slot.eor_pending) {
                slot.queue
                    .push_back(Pending::Msg(Message::Update(Update::end_of_rib(f))));
            }
            any |= !slot.queue.is_empty();
        }
        any
    }

    /// Whether `id` has messages to send (queued, or changes not exported yet).
    pub fn has_pending(&self, id: PeerId) -> bool {
        self.slot(id).is_ok_and(|s| {
            s.session.is_some()
                && (!s.queue.is_empty()
                    || !s.outs.v4.dirty.is_empty()
                    || !s.outs.v6.dirty.is_empty()
                    || s.outs.v4.refresh
                    || s.outs.v6.refresh
                    || !s.eor_pending.is_empty())
        })
    }

    /// The next messages toward `id`: UPDATEs (packed), End-of-RIB markers and BoRR/EoRR,
    /// stopping after the message that brings the total to `budget` bytes or more (at least
    /// one message when any is pending). Encode each with the session's encode context.
    pub fn next_messages(&mut self, id: PeerId, budget: usize) -> Result<Vec<Message>, RibError> {
        let slot = self.slot(id)?;
        let Some(session) = slot.session.as_ref() else {
            return Err(RibError::NotEstablished(id));
        };
        let cx = session.encode.clone();
        let four_octet = session.four_octet_as;
        let mut out = Vec::new();
        let mut used = 0usize;
        while used < budget {
            let empty = self.slot(id).map_or(true, |s| s.queue.is_empty());
            if empty && !self.stage(id) {
                break;
            }
            let slot = self.slot_mut(id)?;
            let Some(front) = slot.queue.front_mut() else {
                break;
            };
            match front.cut(&cx, four_octet) {
                Some(m) => {
                    used += encoded_len(&m, &cx).unwrap_or(0);
                    out.push(m);
                }
                None => {
                    slot.queue.pop_front();
                }
            }
        }
        // An item used up by its last message goes now, so `has_pending` is exact.
        if let Ok(slot) = self.slot_mut(id) {
            while slot.queue.front().is_some_and(Pending::is_done) {
                slot.queue.pop_front();
            }
        }
        Ok(out)
    }
}

impl Pending {
    fn is_done(&self) -> bool {
        match self {
            Pending::Msg(_) => false,
            Pending::Announce { prefixes, next, .. } | Pending::Withdraw { prefixes, next, .. } => {
                *next >= prefixes.len()
            }
        }
    }
}
