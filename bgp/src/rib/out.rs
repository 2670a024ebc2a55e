//! The sending side: exporting changed prefixes toward a peer and packing them into UPDATEs
//! (`Rib::next_encoded`, `Rib::next_messages`).
//!
//! A peer's Adj-RIB-Out is not a copy of what was sent: per family it is a bitset of the
//! slots advertised and a bitset of the slots changed since their last export (RFC 4271 §3.2
//! lets an implementation compute it on demand). Staging takes up to `STAGE_CHUNK` changed
//! slots at a time, in slot order (prefixes of one received UPDATE sit next to each other),
//! exports each (rules in `export.rs`, then the policy hook; the default rules memoised per
//! attribute set), and groups the results by outgoing attribute set. Each group's path
//! attributes are encoded once, straight from the interned set's wire bytes; messages are
//! then cut from a group on demand, each carrying as many prefixes as the negotiated maximum
//! message size allows (IPv4 in the NLRI field, IPv6 in MP_REACH_NLRI put first), and
//! withdrawals likewise (Withdrawn Routes / MP_UNREACH_NLRI). The MP attributes always use the
//! 2-octet Extended Length form, so the size of a message is exactly predictable from its
//! prefixes. Staging in bounded chunks keeps the memory of a full-table dump per peer small.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Weak};

use bytes::{BufMut, BytesMut};

use crate::wire::{
    attr_type, flag, Attr, AttrValue, Context, Family, Message, MpNlri, MpReach, MpUnreach,
    NextHop, RefreshSubtype, RouteRefresh, Update,
};

use super::attrs::{FastHash, PathAttrs, RouteNextHop};
use super::core::{facts, try_free, Fam, PeerSlot, Rib};
use super::export::{export, path_holds, Source, Target};
use super::table::{P4, P6};
use super::{Advertised, ExportAction, PeerId, RibError};

/// Changed slots exported per staging pass.
const STAGE_CHUNK: usize = 32 * 1024;
/// Entries of each `ExportCache` map before it is emptied.
const CACHE_CAP: usize = 32 * 1024;

/// The fixed part of the UPDATEs of one group: the encoded path attributes, and where the
/// prefixes go.
#[derive(Clone)]
pub(crate) struct Head {
    attrs: Arc<[u8]>,
    /// Offset in `attrs` of the MP_REACH_NLRI / MP_UNREACH_NLRI attribute (Extended Length
    /// form) whose value the prefixes end; `None`: IPv4, prefixes in the NLRI or Withdrawn
    /// Routes field.
    mp_at: Option<usize>,
    /// IPv4 withdrawals: prefixes in the Withdrawn Routes field.
    withdrawn_field: bool,
}

/// Messages queued toward a peer, cut into UPDATEs when pulled.
pub(crate) enum Pending {
    Msg(Message),
    Routes {
        head: Head,
        /// Encoded prefixes (with path ids when `add_path`): `nlri[next..end]` are left to
        /// send (the buffer is shared by the groups of one staging pass).
        nlri: Arc<Vec<u8>>,
        next: usize,
        end: usize,
        add_path: bool,
    },
}

/// What the default export rules depend on besides the route: everything in `Target` but
/// the peer's AS (the loop check is per peer, `path_holds`). eBGP peers with the same local
/// AS and next hop self share a class, and so their exports.
#[derive(Clone, PartialEq, Eq)]
struct Class {
    local_as: u32,
    ebgp: bool,
    send_med: bool,
    next_hop_v4: Ipv4Addr,
    next_hop_v6: Ipv6Addr,
    default_local_pref: u32,
}

impl Class {
    fn of(t: &Target) -> Class {
        Class {
            local_as: t.local_as,
            ebgp: t.ebgp,
            send_med: t.send_med,
            next_hop_v4: t.next_hop_v4,
            next_hop_v6: t.next_hop_v6,
            default_local_pref: t.default_local_pref,
        }
    }
}

/// (received set address, source kind, class, IPv6).
type RouteKey = (usize, u8, u16, bool);
/// The received set (alive?) and its export (`None`: not exported).
type Cached = (Weak<PathAttrs>, Option<Arc<PathAttrs>>);

/// Exports shared across peers (and staging passes): the default rules' result per
/// (received set, source kind, class, family), and the encoded head per exported set. Keys
/// are set addresses; each entry holds a `Weak` of its set, which keeps the address from
/// being reused while the entry exists and tells whether the set is still alive. Bounded:
/// a map is emptied when it reaches `CACHE_CAP` entries, and both are when no peer has
/// changes left to export.
#[derive(Default)]
pub(crate) struct ExportCache {
    classes: Vec<Class>,
    routes: HashMap<RouteKey, Cached, FastHash>,
    heads: HashMap<(usize, bool), (Weak<PathAttrs>, Head), FastHash>,
}

impl ExportCache {
    fn is_empty(&self) -> bool {
        self.routes.is_empty() && self.heads.is_empty()
    }

    fn class(&mut self, t: &Target) -> u16 {
        let c = Class::of(t);
        match self.classes.iter().position(|x| *x == c) {
            Some(i) => i as u16,
            None => {
                if self.classes.len() >= usize::from(u16::MAX) {
                    // Never in practice; start over rather than overflow.
                    self.classes.clear();
                    self.routes.clear();
                }
                self.classes.push(c);
                (self.classes.len() - 1) as u16
            }
        }
    }

    /// The head of `attrs` (an exported set) on 4-octet-AS sessions.
    fn head(&mut self, family: Family, attrs: &Arc<PathAttrs>, cx: &Context) -> Option<Head> {
        let key = (Arc::as_ptr(attrs) as usize, family != Family::IPV4_UNICAST);
        if let Some((w, h)) = self.heads.get(&key) {
            if w.strong_count() > 0 {
                return Some(h.clone());
            }
        }
        let h = announce_head(family, attrs, cx, true)?;
        if self.heads.len() >= CACHE_CAP {
            self.heads.clear();
        }
        self.heads.insert(key, (Arc::downgrade(attrs), h.clone()));
        Some(h)
    }
}

fn next_hop_attr(nh: Option<RouteNextHop>) -> Option<NextHop> {
    Some(match nh? {
        RouteNextHop::V4(a) => NextHop::V4(a),
        RouteNextHop::V6 { global, link_local } => NextHop::V6 { global, link_local },
    })
}

fn mp_reach(family: Family, attrs: &PathAttrs) -> Attr {
    Attr {
        flags: flag::OPTIONAL | flag::EXTENDED_LENGTH,
        value: AttrValue::MpReach(MpReach {
            family,
            next_hop: next_hop_attr(attrs.next_hop())
                .unwrap_or(NextHop::V4(std::net::Ipv4Addr::UNSPECIFIED)),
            nlri: MpNlri::Prefixes(Vec::new()),
        }),
    }
}

/// The UPDATE for `attrs` with no prefixes yet, as decoded values (the slow path: 2-octet AS
/// peers, and the reference the fast path is tested against).
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
        all.push(mp_reach(family, attrs));
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

fn withdraw_template(family: Family) -> Update {
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

/// Walk encoded path attributes: (offset, type code, total length) of each.
fn attr_spans(b: &[u8]) -> impl Iterator<Item = (usize, u8, usize)> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let flags = *b.get(pos)?;
        let ty = *b.get(pos + 1)?;
        let (hdr, len) = if flags & flag::EXTENDED_LENGTH != 0 {
            (
                4,
                usize::from(u16::from_be_bytes([*b.get(pos + 2)?, *b.get(pos + 3)?])),
            )
        } else {
            (3, usize::from(*b.get(pos + 2)?))
        };
        let at = pos;
        pos += hdr + len;
        (pos <= b.len()).then_some((at, ty, hdr + len))
    })
}

/// The encoded path attributes of `u` (the template of an UPDATE without prefixes).
fn head_of(u: &Update, cx: &Context, family: Family, withdraw: bool) -> Option<Head> {
    let mut b = BytesMut::new();
    Message::Update(u.clone()).encode(cx, &mut b).ok()?;
    // Header (19), Withdrawn Routes Length (2, zero here), Total Path Attribute Length (2).
    let attrs: Arc<[u8]> = Arc::from(b.get(23..)?);
    let mp_code = if withdraw {
        attr_type::MP_UNREACH_NLRI
    } else {
        attr_type::MP_REACH_NLRI
    };
    let mp_at = if family == Family::IPV4_UNICAST {
        None
    } else {
        let (at, _, _) = attr_spans(&attrs).find(|(_, t, _)| *t == mp_code)?;
        (attrs[at] & flag::EXTENDED_LENGTH != 0).then_some(at)?;
        Some(at)
    };
    Some(Head {
        attrs,
        mp_at,
        withdrawn_field: withdraw && family == Family::IPV4_UNICAST,
    })
}

/// The head of the announcements of `attrs` toward a peer. On 4-octet-AS sessions it is
/// spliced from the set's stored wire bytes (no decoding): NEXT_HOP inserted in type order
/// for IPv4, MP_REACH_NLRI put first for IPv6.
pub(crate) fn announce_head(
    family: Family,
    attrs: &PathAttrs,
    cx: &Context,
    four_octet: bool,
) -> Option<Head> {
    if !four_octet {
        return head_of(&announce_template(family, attrs, false), cx, family, false);
    }
    let wire = attrs.wire();
    let mut out = BytesMut::with_capacity(wire.len() + 48);
    if family == Family::IPV4_UNICAST {
        let Some(RouteNextHop::V4(nh)) = attrs.next_hop() else {
            out.put_slice(wire);
            return Some(Head {
                attrs: Arc::from(&out[..]),
                mp_at: None,
                withdrawn_field: false,
            });
        };
        let at = attr_spans(wire)
            .find(|(_, t, _)| *t > attr_type::NEXT_HOP)
            .map_or(wire.len(), |(at, _, _)| at);
        out.put_slice(&wire[..at]);
        Attr::new(AttrValue::NextHop(nh))
            .encode(cx, &mut out)
            .ok()?;
        out.put_slice(&wire[at..]);
        return Some(Head {
            attrs: Arc::from(&out[..]),
            mp_at: None,
            withdrawn_field: false,
        });
    }
    mp_reach(family, attrs).encode(cx, &mut out).ok()?;
    out.put_slice(wire);
    Some(Head {
        attrs: Arc::from(&out[..]),
        mp_at: Some(0),
        withdrawn_field: false,
    })
}

fn withdraw_head(family: Family, cx: &Context) -> Option<Head> {
    head_of(&withdraw_template(family), cx, family, true)
}

/// Length of the encoded prefix at `pos` of an NLRI byte list.
fn nlri_len(b: &[u8], pos: usize, add_path: bool) -> usize {
    let off = if add_path { 4 } else { 0 };
    let bits = b.get(pos + off).copied().unwrap_or(0);
    off + 1 + usize::from(bits).div_ceil(8)
}

impl Pending {
    /// Append the next message to `out`; its length, or `None` when this item is used up.
    fn cut_into(&mut self, cx: &Context, out: &mut BytesMut) -> Option<usize> {
        let Pending::Routes {
            head,
            nlri,
            next,
            end: stop,
            add_path,
        } = self
        else {
            return None;
        };
        let stop = (*stop).min(nlri.len());
        if *next >= stop {
            return None;
        }
        let max = cx.max_message_len();
        let fixed = 19 + 2 + 2 + head.attrs.len();
        let mut size = fixed;
        let mut end = *next;
        while end < stop {
            let l = nlri_len(nlri, end, *add_path);
            if size.saturating_add(l) > max || end + l > stop {
                break;
            }
            size += l;
            end += l;
        }
        if end == *next {
            // The attributes alone leave no room for a prefix: these routes cannot be sent
            // to this peer.
            *next = stop;
            return None;
        }
        let chunk = &nlri[*next..end];
        *next = end;
        out.reserve(size);
        out.put_slice(&[0xff; 16]);
        out.put_u16(size as u16);
        out.put_u8(2);
        if head.withdrawn_field {
            out.put_u16(chunk.len() as u16);
            out.put_slice(chunk);
            out.put_u16(0);
            return Some(size);
        }
        out.put_u16(0);
        match head.mp_at {
            None => {
                out.put_u16(head.attrs.len() as u16);
                out.put_slice(&head.attrs);
                out.put_slice(chunk);
            }
            Some(at) => {
                out.put_u16((head.attrs.len() + chunk.len()) as u16);
                let a = &head.attrs;
                let len = usize::from(u16::from_be_bytes([a[at + 2], a[at + 3]]));
                let end_attr = at + 4 + len;
                out.put_slice(&a[..at + 2]);
                out.put_u16((len + chunk.len()) as u16);
                out.put_slice(&a[at + 4..end_attr]);
                out.put_slice(chunk);
                out.put_slice(&a[end_attr..]);
            }
        }
        Some(size)
    }

    fn is_done(&self) -> bool {
        match self {
            Pending::Msg(_) => false,
            Pending::Routes { next, end, .. } => *next >= *end,
        }
    }
}

/// Export of one route toward one peer, with memoisation of the default rules per
/// (attribute set, source kind) within one pass.
struct Exporter<'a> {
    target: Target,
    target_id: u16,
    v6: bool,
    sources: Vec<Option<Source>>,
    memo: HashMap<(usize, u8), Option<Arc<PathAttrs>>, FastHash>,
    policy: Option<&'a dyn super::ExportPolicy>,
    /// The shared cache and this target's class in it (none for read-only queries).
    cache: Option<(&'a mut ExportCache, u16)>,
}

impl Exporter<'_> {
    fn export(
        &mut self,
        intern: &mut dyn FnMut(PathAttrs) -> Arc<PathAttrs>,
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
                let o = if self.target.ebgp && path_holds(attrs, self.target.peer_as) {
                    None
                } else {
                    self.shared(intern, attrs, src)
                };
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
            ExportAction::Replace(new) => Some(intern(PathAttrs::new(&new, out.next_hop()))),
        }
    }
}

impl Exporter<'_> {
    /// The default rules' result, from the shared cache when another peer of the same class
    /// (or an earlier pass) computed it.
    fn shared(
        &mut self,
        intern: &mut dyn FnMut(PathAttrs) -> Arc<PathAttrs>,
        attrs: &Arc<PathAttrs>,
        src: Source,
    ) -> Option<Arc<PathAttrs>> {
        let Some((cache, class)) = self.cache.as_mut() else {
            return export(attrs, src, &self.target, self.v6).map(intern);
        };
        let key = (Arc::as_ptr(attrs) as usize, src as u8, *class, self.v6);
        if let Some((w, o)) = cache.routes.get(&key) {
            if w.strong_count() > 0 {
                return o.clone();
            }
        }
        let o = export(attrs, src, &self.target, self.v6).map(intern);
        if cache.routes.len() >= CACHE_CAP {
            cache.routes.clear();
        }
        cache.routes.insert(key, (Arc::downgrade(attrs), o.clone()));
        o
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

fn sources_of(peers: &[Option<PeerSlot>]) -> Vec<Option<Source>> {
    (0..peers.len())
        .map(|i| {
            let f = facts(peers, i as u16);
            peers[i].as_ref().map(|_| {
                if f.local {
                    Source::Local
                } else if f.ebgp {
                    Source::Ebgp
                } else {
                    Source::Ibgp
                }
            })
        })
        .collect()
}

impl Rib {
    /// Export up to `STAGE_CHUNK` changed slots of family `K` toward `id` into its queue.
    /// Returns whether any slot was taken.
    fn stage_chunk<K: Fam>(&mut self, id: PeerId) -> bool {
        let default_lp = self.cfg.decision.default_local_pref;
        let sources = sources_of(&self.peers);
        let Rib {
            tables,
            peers,
            interner,
            export_cache,
            ..
        } = self;
        let Some(Some(slot)) = peers.get_mut(usize::from(id.0)) else {
            return false;
        };
        let Some(target) = target_of(slot, default_lp) else {
            return false;
        };
        let Some(session) = slot.session.as_ref() else {
            return false;
        };
        let cx = session.encode.clone();
        let four_octet = session.four_octet_as;
        let add_path = cx.add_path(K::FAMILY);
        let mut taken = Vec::new();
        K::out(&mut slot.outs).dirty.take(STAGE_CHUNK, &mut taken);
        if taken.is_empty() {
            return false;
        }
        let class = export_cache.class(&target);
        let mut ex = Exporter {
            target,
            target_id: id.0,
            v6: K::V6,
            sources,
            memo: HashMap::with_hasher(FastHash::new()),
            policy: slot.policy.as_deref(),
            cache: Some((export_cache, class)),
        };
        let out = K::out(&mut slot.outs);
        let table = K::table_ref(tables);
        let mut intern = |p: PathAttrs| interner.intern(p);
        let mut index: HashMap<usize, u32, FastHash> = HashMap::with_hasher(FastHash::new());
        let mut groups: Vec<Arc<PathAttrs>> = Vec::new();
        // (group, slot), in slot order; sorted by group below.
        let mut members: Vec<(u32, u32)> = Vec::with_capacity(taken.len());
        let mut withdraw = Vec::new();
        let mut zombies = Vec::new();
        for &i in &taken {
            let s = &table.slots[i as usize];
            let new = match &s.entry {
                Some(e) => ex.export(&mut intern, s.key.to_net(), &e.first.attrs, e.first.peer),
                None => {
                    zombies.push(i);
                    None
                }
            };
            match new {
                Some(a) => {
                    out.adv.set(i);
                    let g = *index.entry(Arc::as_ptr(&a) as usize).or_insert_with(|| {
                        groups.push(a.clone());
                        (groups.len() - 1) as u32
                    });
                    members.push((g, i));
                }
                None => {
                    if out.adv.clear(i) {
                        s.key.put_nlri(add_path, &mut withdraw);
                    }
                }
            }
        }
        let cache = ex.cache.take().map(|c| c.0);
        if !withdraw.is_empty() {
            if let Some(head) = withdraw_head(K::FAMILY, &cx) {
                let end = withdraw.len();
                slot.queue.push_back(Pending::Routes {
                    head,
                    nlri: Arc::new(withdraw),
                    next: 0,
                    end,
                    add_path,
                });
            }
        }
        // One buffer for the prefixes of every group of this pass, group after group.
        members.sort_by_key(|m| m.0);
        let mut buf = Vec::with_capacity(members.len() * if K::V6 { 8 } else { 5 });
        let mut ranges = Vec::with_capacity(groups.len());
        let mut at = 0;
        while at < members.len() {
            let g = members[at].0;
            let start = buf.len();
            while at < members.len() && members[at].0 == g {
                table.slots[members[at].1 as usize]
                    .key
                    .put_nlri(add_path, &mut buf);
                at += 1;
            }
            ranges.push((g, start, buf.len()));
        }
        // `ranges` is in group order = the order of each group's first prefix.
        let buf = Arc::new(buf);
        let mut cache = cache;
        for (g, start, end) in ranges {
            let attrs = &groups[g as usize];
            let head = match (four_octet, cache.as_deref_mut()) {
                (true, Some(c)) => c.head(K::FAMILY, attrs, &cx),
                _ => announce_head(K::FAMILY, attrs, &cx, four_octet),
            };
            if let Some(head) = head {
                slot.queue.push_back(Pending::Routes {
                    head,
                    nlri: buf.clone(),
                    next: start,
                    end,
                    add_path,
                });
            }
        }
        for z in zombies {
            try_free::<K>(&mut self.tables, &self.peers, z);
        }
        true
    }

    /// A route refresh request for `family`: re-export everything advertised, inside
    /// BoRR/EoRR when enhanced route refresh was negotiated (RFC 7313 §4).
    pub(crate) fn queue_refresh(&mut self, id: PeerId, family: Family, enhanced: bool) {
        let Some(Some(slot)) = self.peers.get_mut(usize::from(id.0)) else {
            return;
        };
        let out = if family == Family::IPV4_UNICAST {
            &mut slot.outs.v4
        } else {
            &mut slot.outs.v6
        };
        let adv = out.adv.clone();
        out.dirty.union_with(&adv);
        if enhanced {
            out.eorr_pending = true;
            slot.queue
                .push_back(Pending::Msg(Message::RouteRefresh(RouteRefresh {
                    family,
                    subtype: RefreshSubtype::BoRR,
                })));
        }
    }

    /// End-of-RIB (initial dump) and EoRR (enhanced refresh) of a family whose changes are
    /// all staged.
    fn queue_family_done<K: Fam>(&mut self, id: PeerId) {
        let Some(Some(slot)) = self.peers.get_mut(usize::from(id.0)) else {
            return;
        };
        if let Some(i) = slot.eor_pending.iter().position(|f| *f == K::FAMILY) {
            slot.eor_pending.remove(i);
            slot.queue
                .push_back(Pending::Msg(Message::Update(Update::end_of_rib(K::FAMILY))));
        }
        let out = K::out(&mut slot.outs);
        if out.eorr_pending {
            out.eorr_pending = false;
            slot.queue
                .push_back(Pending::Msg(Message::RouteRefresh(RouteRefresh {
                    family: K::FAMILY,
                    subtype: RefreshSubtype::EoRR,
                })));
        }
    }

    /// Fill the queue of `id`: the next chunk of changes (IPv4 first, its End-of-RIB once
    /// all are staged, then IPv6), and End-of-RIB markers. Returns whether it made progress.
    fn stage(&mut self, id: PeerId) -> bool {
        let Some(Some(slot)) = self.peers.get(usize::from(id.0)) else {
            return false;
        };
        if !slot.outs.v4.dirty.is_empty() {
            return self.stage_chunk::<P4>(id);
        }
        self.queue_family_done::<P4>(id);
        if self.slot(id).is_ok_and(|s| !s.outs.v6.dirty.is_empty()) {
            return self.stage_chunk::<P6>(id);
        }
        self.queue_family_done::<P6>(id);
        let Some(Some(slot)) = self.peers.get_mut(usize::from(id.0)) else {
            return false;
        };
        for f in std::mem::take(&mut slot.eor_pending) {
            slot.queue
                .push_back(Pending::Msg(Message::Update(Update::end_of_rib(f))));
        }
        !slot.queue.is_empty()
    }

    /// Whether `id` has messages to send (queued, or changes not exported yet).
    pub fn has_pending(&self, id: PeerId) -> bool {
        self.slot(id).is_ok_and(|s| {
            s.session.is_some()
                && (!s.queue.is_empty()
                    || !s.outs.v4.dirty.is_empty()
                    || !s.outs.v6.dirty.is_empty()
                    || s.outs.v4.eorr_pending
                    || s.outs.v6.eorr_pending
                    || !s.eor_pending.is_empty())
        })
    }

    /// The next messages toward `id`, encoded with the session's encode context and appended
    /// to `out`: UPDATEs (packed), End-of-RIB markers and BoRR/EoRR, stopping after the
    /// message that brings the total to `budget` bytes or more (at least one message when
    /// any is pending). Returns how many messages were appended.
    pub fn next_encoded(
        &mut self,
        id: PeerId,
        budget: usize,
        out: &mut BytesMut,
    ) -> Result<usize, RibError> {
        let slot = self.slot(id)?;
        let Some(session) = slot.session.as_ref() else {
            return Err(RibError::NotEstablished(id));
        };
        let cx = session.encode.clone();
        let mut used = 0usize;
        let mut count = 0usize;
        while used < budget {
            let empty = self.slot(id).map_or(true, |s| s.queue.is_empty());
            if empty {
                if !self.stage(id) {
                    self.maybe_drop_export_cache();
                    break;
                }
                continue;
            }
            let slot = self.slot_mut(id)?;
            let Some(front) = slot.queue.front_mut() else {
                break;
            };
            if let Pending::Msg(m) = front {
                let at = out.len();
                // End-of-RIB and ROUTE-REFRESH always encode.
                if m.encode(&cx, out).is_ok() {
                    used += out.len() - at;
                    count += 1;
                }
                slot.queue.pop_front();
                continue;
            }
            match front.cut_into(&cx, out) {
                Some(n) => {
                    used += n;
                    count += 1;
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
        Ok(count)
    }

    /// Once every peer has exported all its changes, the cached exports only cost memory.
    fn maybe_drop_export_cache(&mut self) {
        if self.export_cache.is_empty() {
            return;
        }
        let busy = self
            .peers
            .iter()
            .flatten()
            .any(|s| !s.outs.v4.dirty.is_empty() || !s.outs.v6.dirty.is_empty());
        if !busy {
            self.export_cache = ExportCache::default();
        }
    }

    /// Like [`Rib::next_encoded`], decoded: the messages as values (for tests and tools; a
    /// runtime writes `next_encoded`'s bytes).
    pub fn next_messages(&mut self, id: PeerId, budget: usize) -> Result<Vec<Message>, RibError> {
        let mut buf = BytesMut::new();
        self.next_encoded(id, budget, &mut buf)?;
        let cx = self
            .slot(id)?
            .session
            .as_ref()
            .map(|s| s.encode.clone())
            .unwrap_or_default();
        let mut msgs = Vec::new();
        let mut pos = 0;
        while pos + 19 <= buf.len() {
            let len = usize::from(u16::from_be_bytes([buf[pos + 16], buf[pos + 17]]));
            if len < 19 || pos + len > buf.len() {
                break;
            }
            // Our own encoding: it decodes.
            if let Ok(m) = Message::decode(&buf[pos..pos + len], &cx) {
                msgs.push(m);
            }
            pos += len;
        }
        Ok(msgs)
    }

    fn advertised_of<K: Fam>(&self, id: PeerId, slot: &PeerSlot) -> Vec<Advertised> {
        let Some(target) = target_of(slot, self.cfg.decision.default_local_pref) else {
            return Vec::new();
        };
        let mut ex = Exporter {
            target,
            target_id: id.0,
            v6: K::V6,
            sources: sources_of(&self.peers),
            memo: HashMap::with_hasher(FastHash::new()),
            policy: slot.policy.as_deref(),
            cache: None,
        };
        let table = K::table_ref(&self.tables);
        let mut intern = |p: PathAttrs| Arc::new(p);
        let mut v: Vec<(K, Advertised)> = Vec::new();
        for i in K::out_ref(&slot.outs).adv.iter() {
            let Some(s) = table.slots.get(i as usize) else {
                continue;
            };
            let Some(e) = &s.entry else {
                continue; // withdrawal queued
            };
            let prefix = s.key.to_net();
            if let Some(attrs) = ex.export(&mut intern, prefix, &e.first.attrs, e.first.peer) {
                v.push((s.key, Advertised { prefix, attrs }));
            }
        }
        v.sort_by_key(|x| x.0);
        v.into_iter().map(|x| x.1).collect()
    }

    /// The Adj-RIB-Out of a peer in `family`, sorted: the prefixes announced (or queued to
    /// be), with the attributes of their current export.
    pub fn advertised_routes(&self, id: PeerId, family: Family) -> Vec<Advertised> {
        let Ok(slot) = self.slot(id) else {
            return Vec::new();
        };
        match family {
            Family::IPV4_UNICAST => self.advertised_of::<P4>(id, slot),
            Family::IPV6_UNICAST => self.advertised_of::<P6>(id, slot),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{AsPath, Community, LargeCommunity, Origin};

    /// The fast head (spliced from the stored wire bytes) is byte for byte the encoding of
    /// the decoded template, for IPv4 and IPv6, with an extended-length attribute, an
    /// unknown transitive one and a link-local IPv6 next hop.
    #[test]
    fn spliced_head_matches_the_encoded_template() {
        let long: Vec<Community> = (0..80).map(|i| Community::new(65000, i)).collect();
        let attrs = vec![
            Attr::new(AttrValue::Origin(Origin::Igp)),
            Attr::new(AttrValue::AsPath(AsPath::sequence([
                65000,
                4_200_000_001,
                7,
            ]))),
            Attr::new(AttrValue::MultiExitDisc(5)),
            Attr::new(AttrValue::Communities(long)),
            Attr::new(AttrValue::LargeCommunities(vec![LargeCommunity {
                global: 1,
                local1: 2,
                local2: 3,
            }])),
            Attr::unknown(
                flag::OPTIONAL | flag::TRANSITIVE | flag::PARTIAL,
                99,
                vec![1u8],
            ),
        ];
        let cx = Context::modern();
        let v4 = PathAttrs::new(&attrs, Some(RouteNextHop::V4("10.99.0.1".parse().unwrap())));
        let v6 = PathAttrs::new(
            &attrs,
            Some(RouteNextHop::V6 {
                global: "fd00:99::1".parse().unwrap(),
                link_local: Some("fe80::1".parse().unwrap()),
            }),
        );
        let origin_only = PathAttrs::new(&attrs[..1], Some(RouteNextHop::V4([1, 2, 3, 4].into())));
        for (family, set) in [
            (Family::IPV4_UNICAST, &v4),
            (Family::IPV6_UNICAST, &v6),
            (Family::IPV4_UNICAST, &origin_only),
        ] {
            let fast = announce_head(family, set, &cx, true).unwrap();
            let slow = head_of(&announce_template(family, set, true), &cx, family, false).unwrap();
            assert_eq!(&fast.attrs[..], &slow.attrs[..], "{family}");
            assert_eq!(fast.mp_at, slow.mp_at, "{family}");
        }
    }

    /// A cut message decodes to the template with the prefixes filled in.
    #[test]
    fn cut_messages_decode_to_the_template_with_the_prefixes() {
        let cx = Context {
            four_octet_as: true,
            add_path: vec![Family::IPV6_UNICAST],
            extended_message: false,
        };
        let set = PathAttrs::new(
            &[Attr::new(AttrValue::Origin(Origin::Egp))],
            Some(RouteNextHop::V6 {
                global: "fd00:99::1".parse().unwrap(),
                link_local: None,
            }),
        );
        let keys: Vec<P6> = (0..3u16)
            .map(|i| {
                let n: ipnet::IpNet = format!("2001:db8:{i:x}::/48").parse().unwrap();
                <P6 as super::super::table::PrefixKey>::from_net(n).unwrap()
            })
            .collect();
        let mut nlri = Vec::new();
        for k in &keys {
            super::super::table::PrefixKey::put_nlri(*k, true, &mut nlri);
        }
        let end = nlri.len();
        let mut p = Pending::Routes {
            head: announce_head(Family::IPV6_UNICAST, &set, &cx, true).unwrap(),
            nlri: Arc::new(nlri),
            next: 0,
            end,
            add_path: true,
        };
        let mut out = BytesMut::new();
        let n = p.cut_into(&cx, &mut out).unwrap();
        assert_eq!(n, out.len());
        assert!(p.is_done());
        let Ok(Message::Update(u)) = Message::decode(&out, &cx) else {
            panic!("does not decode: {out:?}");
        };
        let got: Vec<_> = u.mp_reach().unwrap().nlri.prefixes().to_vec();
        let want: Vec<_> = keys
            .iter()
            .map(|k| crate::wire::Nlri::with_path_id(super::super::table::PrefixKey::to_net(*k), 0))
            .collect();
        assert_eq!(got, want);
        assert_eq!(u.origin(), Some(Origin::Egp));
    }
}
