//! `Rib`: the tables, the peers, and the calls a runtime makes (see the module docs in
//! `rib/mod.rs`). Receiving side (import, decision, graceful restart, max-prefix) here; the
//! sending side (export, packing) in `out.rs`.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use ipnet::IpNet;

use crate::fsm::DownReason;
use crate::negotiate::Negotiated;
use crate::wire::error::{cease_sub, code};
use crate::wire::{
    AsPath, Attr, AttrValue, Context, Family, MpNlri, NextHop, Nlri, Origin, RefreshSubtype,
    RouteRefresh, Treatment, Update,
};

use super::attrs::{Interner, PathAttrs, RouteNextHop};
use super::decision::{select, DecisionConfig, PeerFacts};
use super::export::self_addresses;
use super::out::{ExportCache, Pending};
use super::table::{Bits, Cand, Entry, FamTable, PrefixKey, P4, P6};
use super::{
    Applied, ExportPolicy, FamilyCounts, PeerConfig, PeerDownOutcome, PeerId, RibConfig, RibError,
    RouteView, FAMILIES,
};

/// One family of a peer's Adj-RIB-Out, computed on demand (RFC 4271 §3.2 allows it): which
/// slots were advertised (so a withdrawal goes only where an announcement went, and the
/// count is O(1)) and which changed since they were last exported. What was sent is the
/// export of the slot's current route, so nothing else is stored per prefix.
#[derive(Default)]
pub(crate) struct FamOut {
    /// Slots whose Loc-RIB route changed since they were last exported.
    pub dirty: Bits,
    /// Slots announced (or queued to be) to the peer.
    pub adv: Bits,
    /// A route refresh answered with BoRR waits for its EoRR until `dirty` is empty.
    pub eorr_pending: bool,
}

pub(crate) struct Outs {
    pub v4: FamOut,
    pub v6: FamOut,
}

pub(crate) struct Tables {
    pub v4: FamTable<P4>,
    pub v6: FamTable<P6>,
}

/// A family the RIB stores, with its key type.
pub(crate) trait Fam: PrefixKey {
    const FAMILY: Family;
    const IDX: usize;
    const V6: bool;
    fn table(t: &mut Tables) -> &mut FamTable<Self>;
    fn table_ref(t: &Tables) -> &FamTable<Self>;
    fn out(o: &mut Outs) -> &mut FamOut;
    fn out_ref(o: &Outs) -> &FamOut;
}

impl Fam for P4 {
    const FAMILY: Family = Family::IPV4_UNICAST;
    const IDX: usize = 0;
    const V6: bool = false;
    fn table(t: &mut Tables) -> &mut FamTable<P4> {
        &mut t.v4
    }
    fn table_ref(t: &Tables) -> &FamTable<P4> {
        &t.v4
    }
    fn out(o: &mut Outs) -> &mut FamOut {
        &mut o.v4
    }
    fn out_ref(o: &Outs) -> &FamOut {
        &o.v4
    }
}

impl Fam for P6 {
    const FAMILY: Family = Family::IPV6_UNICAST;
    const IDX: usize = 1;
    const V6: bool = true;
    fn table(t: &mut Tables) -> &mut FamTable<P6> {
        &mut t.v6
    }
    fn table_ref(t: &Tables) -> &FamTable<P6> {
        &t.v6
    }
    fn out(o: &mut Outs) -> &mut FamOut {
        &mut o.v6
    }
    fn out_ref(o: &Outs) -> &FamOut {
        &o.v6
    }
}

fn fam_idx(f: Family) -> Option<usize> {
    FAMILIES.iter().position(|x| *x == f)
}

/// An Established session as the RIB needs it.
pub(crate) struct Session {
    pub families: Vec<Family>,
    pub encode: Context,
    pub four_octet_as: bool,
    pub enhanced_route_refresh: bool,
    pub gr: Option<crate::negotiate::PeerGracefulRestart>,
    pub next_hop_v4: Ipv4Addr,
    pub next_hop_v6: std::net::Ipv6Addr,
    /// RFC 7606 AFI/SAFI disable: ignored until the session ends.
    pub disabled: Vec<Family>,
    /// Max-prefix exceeded: everything is ignored until the session ends.
    pub halted: bool,
}

impl Session {
    pub fn carries(&self, f: Family) -> bool {
        self.families.contains(&f) && !self.disabled.contains(&f)
    }
}

pub(crate) struct PeerSlot {
    pub cfg: PeerConfig,
    pub facts: PeerFacts,
    pub session: Option<Session>,
    pub received: [usize; 2],
    pub stale: [usize; 2],
    /// When stale routes are removed if nothing else removed them first.
    pub stale_deadline: Option<Instant>,
    pub outs: Outs,
    pub queue: VecDeque<Pending>,
    pub eor_pending: Vec<Family>,
    pub policy: Option<Box<dyn ExportPolicy>>,
}

impl PeerSlot {
    fn new(cfg: PeerConfig, facts: PeerFacts) -> PeerSlot {
        PeerSlot {
            cfg,
            facts,
            session: None,
            received: [0; 2],
            stale: [0; 2],
            stale_deadline: None,
            outs: Outs {
                v4: FamOut::default(),
                v6: FamOut::default(),
            },
            queue: VecDeque::new(),
            eor_pending: Vec::new(),
            policy: None,
        }
    }

    /// Whether prefixes of `f` changing must be queued toward this peer.
    fn wants(&self, f: Family) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| s.families.contains(&f))
    }
}

/// The speaker's RIB. See the module docs for how a runtime drives it.
pub struct Rib {
    pub(crate) cfg: RibConfig,
    pub(crate) interner: Interner,
    pub(crate) tables: Tables,
    /// Index = `PeerId.0`; slot 0 is `PeerId::LOCAL`.
    pub(crate) peers: Vec<Option<PeerSlot>>,
    pub(crate) export_cache: ExportCache,
}

type Ident = (u16, u32, usize);

fn ident(c: &Cand) -> Ident {
    (c.peer, c.path_id, Arc::as_ptr(&c.attrs) as usize)
}

pub(crate) fn facts(peers: &[Option<PeerSlot>], p: u16) -> PeerFacts {
    match peers.get(usize::from(p)).and_then(Option::as_ref) {
        Some(s) => s.facts,
        None => PeerFacts {
            local: false,
            ebgp: false,
            bgp_id: Ipv4Addr::BROADCAST,
            addr: IpAddr::V4(Ipv4Addr::BROADCAST),
        },
    }
}

fn reselect(e: &mut Entry, peers: &[Option<PeerSlot>], cfg: &DecisionConfig) {
    if e.len() > 1 {
        let i = select(e.iter(), |p| facts(peers, p), cfg);
        e.make_first(i);
    }
}

/// The Loc-RIB route of `slot` changed; `best`: the peer its route now comes from (`None`:
/// the prefix is gone). A peer that was not sent the prefix and cannot be sent the new route
/// (it is gone, or came from that very peer: split horizon) has nothing to export, so its
/// bit is left clear.
fn mark_dirty<K: Fam>(peers: &mut [Option<PeerSlot>], slot: u32, best: Option<u16>) {
    for (j, s) in peers.iter_mut().enumerate() {
        let Some(s) = s else { continue };
        if s.wants(K::FAMILY) {
            let out = K::out(&mut s.outs);
            let nothing = best.is_none_or(|b| usize::from(b) == j) && !out.adv.get(slot);
            if !nothing {
                out.dirty.set(slot);
            }
        }
    }
}

/// Free an empty slot once no peer still has to export its withdrawal.
pub(crate) fn try_free<K: Fam>(tables: &mut Tables, peers: &[Option<PeerSlot>], slot: u32) {
    if peers
        .iter()
        .flatten()
        .any(|s| K::out_ref(&s.outs).dirty.get(slot))
    {
        return;
    }
    K::table(tables).free_slot(slot);
}

/// Free every zombie no peer waits for (after a peer's Adj-RIB-Out was dropped).
fn free_zombies<K: Fam>(tables: &mut Tables, peers: &[Option<PeerSlot>]) {
    for z in K::table_ref(tables).zombies() {
        try_free::<K>(tables, peers, z);
    }
}

/// Remove the candidates matching `pred` from one family; marks changed prefixes dirty.
/// Returns (removed, of which stale) per peer index.
fn remove_where<K: Fam>(
    tables: &mut Tables,
    peers: &mut [Option<PeerSlot>],
    cfg: &DecisionConfig,
    pred: impl Fn(&Cand) -> bool,
) -> HashMap<u16, (usize, usize)> {
    let mut counts: HashMap<u16, (usize, usize)> = HashMap::new();
    let mut changed = Vec::new();
    let mut emptied = Vec::new();
    let t = K::table(tables);
    for i in 0..t.slots.len() as u32 {
        let Some(e) = t.slots[i as usize].entry.as_mut() else {
            continue;
        };
        let old = ident(&e.first);
        let (_, empty) = e.remove_where(|c| {
            let hit = pred(c);
            if hit {
                let n = counts.entry(c.peer).or_default();
                n.0 += 1;
                n.1 += usize::from(c.stale);
            }
            hit
        });
        if empty {
            t.set_entry(i, None);
            changed.push((i, None));
            emptied.push(i);
            continue;
        }
        reselect(e, peers, cfg);
        if ident(&e.first) != old {
            changed.push((i, Some(e.first.peer)));
        }
    }
    for (i, best) in changed {
        mark_dirty::<K>(peers, i, best);
    }
    for i in emptied {
        try_free::<K>(tables, peers, i);
    }
    for (p, (n, s)) in &counts {
        if let Some(slot) = peers.get_mut(usize::from(*p)).and_then(Option::as_mut) {
            slot.received[K::IDX] = slot.received[K::IDX].saturating_sub(*n);
            slot.stale[K::IDX] = slot.stale[K::IDX].saturating_sub(*s);
        }
    }
    counts
}

impl Rib {
    pub fn new(cfg: RibConfig) -> Rib {
        let local = PeerSlot::new(
            PeerConfig::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0, 0),
            PeerFacts {
                local: true,
                ebgp: false,
                bgp_id: cfg.router_id,
                addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            },
        );
        Rib {
            cfg,
            interner: Interner::default(),
            tables: Tables {
                v4: FamTable::new(),
                v6: FamTable::new(),
            },
            peers: vec![Some(local)],
            export_cache: ExportCache::default(),
        }
    }

    pub fn config(&self) -> &RibConfig {
        &self.cfg
    }

    pub(crate) fn slot(&self, id: PeerId) -> Result<&PeerSlot, RibError> {
        match self.peers.get(usize::from(id.0)).and_then(Option::as_ref) {
            Some(s) if id != PeerId::LOCAL => Ok(s),
            _ => Err(RibError::UnknownPeer(id)),
        }
    }

    pub(crate) fn slot_mut(&mut self, id: PeerId) -> Result<&mut PeerSlot, RibError> {
        match self
            .peers
            .get_mut(usize::from(id.0))
            .and_then(Option::as_mut)
        {
            Some(s) if id != PeerId::LOCAL => Ok(s),
            _ => Err(RibError::UnknownPeer(id)),
        }
    }

    /// Configure a peer. Its routes count only once `peer_up` was called.
    pub fn add_peer(&mut self, cfg: PeerConfig) -> Result<PeerId, RibError> {
        let facts = PeerFacts {
            local: false,
            ebgp: cfg.is_ebgp(),
            bgp_id: Ipv4Addr::UNSPECIFIED,
            addr: cfg.address,
        };
        let slot = PeerSlot::new(cfg, facts);
        if let Some(i) = self.peers.iter().skip(1).position(Option::is_none) {
            self.peers[i + 1] = Some(slot);
            return Ok(PeerId((i + 1) as u16));
        }
        let id = u16::try_from(self.peers.len())
            .ok()
            .filter(|&i| i < u16::MAX)
            .ok_or(RibError::TooManyPeers)?;
        self.peers.push(Some(slot));
        Ok(PeerId(id))
    }

    /// Deconfigure a peer: its routes go at once (no graceful restart).
    pub fn remove_peer(&mut self, id: PeerId) -> Result<(), RibError> {
        self.slot(id)?;
        self.flush(id, |_| true);
        self.peers[usize::from(id.0)] = None;
        // Prefixes emptied above that only waited for this peer's export.
        free_zombies::<P4>(&mut self.tables, &self.peers);
        free_zombies::<P6>(&mut self.tables, &self.peers);
        self.interner.sweep();
        Ok(())
    }

    /// Set (or clear) the export policy hook of a peer; re-exports everything to it.
    pub fn set_export_policy(
        &mut self,
        id: PeerId,
        policy: Option<Box<dyn ExportPolicy>>,
    ) -> Result<(), RibError> {
        self.slot_mut(id)?.policy = policy;
        self.mark_all_dirty(id);
        Ok(())
    }

    fn mark_all_dirty(&mut self, id: PeerId) {
        let Some(slot) = self
            .peers
            .get_mut(usize::from(id.0))
            .and_then(Option::as_mut)
        else {
            return;
        };
        // Every live prefix; advertised ones are live or zombies, and zombies are dirty
        // already.
        if slot.wants(Family::IPV4_UNICAST) {
            let d = &mut slot.outs.v4.dirty;
            for (i, _, _) in self.tables.v4.iter() {
                d.set(i);
            }
        }
        if slot.wants(Family::IPV6_UNICAST) {
            let d = &mut slot.outs.v6.dirty;
            for (i, _, _) in self.tables.v6.iter() {
                d.set(i);
            }
        }
    }

    /// Remove the peer's candidates matching `pred` in both families.
    fn flush(&mut self, id: PeerId, pred: impl Fn(&Cand) -> bool) -> usize {
        let cfg = self.cfg.decision;
        let p = id.0;
        let a = remove_where::<P4>(&mut self.tables, &mut self.peers, &cfg, |c| {
            c.peer == p && pred(c)
        });
        let b = remove_where::<P6>(&mut self.tables, &mut self.peers, &cfg, |c| {
            c.peer == p && pred(c)
        });
        a.values().chain(b.values()).map(|x| x.0).sum()
    }

    fn flush_family(&mut self, id: PeerId, f: Family, pred: impl Fn(&Cand) -> bool) -> usize {
        let cfg = self.cfg.decision;
        let p = id.0;
        let r = match fam_idx(f) {
            Some(0) => remove_where::<P4>(&mut self.tables, &mut self.peers, &cfg, |c| {
                c.peer == p && pred(c)
            }),
            Some(_) => remove_where::<P6>(&mut self.tables, &mut self.peers, &cfg, |c| {
                c.peer == p && pred(c)
            }),
            None => return 0,
        };
        r.values().map(|x| x.0).sum()
    }

    fn stale_family_done(&mut self, id: PeerId) {
        if let Ok(s) = self.slot_mut(id) {
            if s.stale == [0, 0] {
                s.stale_deadline = None;
            }
        }
    }

    // ---------------------------------------------------------------- sessions

    /// The session of `id` is Established (FSM `Output::Established`). `local_addr` is the
    /// TCP connection's local address (next hop self). Queues the initial dump.
    pub fn peer_up(
        &mut self,
        now: Instant,
        id: PeerId,
        negotiated: &Negotiated,
        local_addr: IpAddr,
    ) -> Result<(), RibError> {
        if self.slot(id)?.session.is_some() {
            self.peer_down(now, id, &DownReason::PeerRestarted)?;
        }
        let router_id = self.cfg.router_id;
        let stale_path_time = self.cfg.stale_path_time;
        let slot = self.slot_mut(id)?;
        let (nh4, nh6) = self_addresses(
            local_addr,
            slot.cfg.next_hop_v4,
            slot.cfg.next_hop_v6,
            router_id,
        );
        slot.facts.bgp_id = negotiated.peer_id;
        slot.session = Some(Session {
            families: negotiated.families.clone(),
            encode: negotiated.encode_context(),
            four_octet_as: negotiated.four_octet_as,
            enhanced_route_refresh: negotiated.enhanced_route_refresh,
            gr: negotiated.peer_graceful_restart.clone(),
            next_hop_v4: nh4,
            next_hop_v6: nh6,
            disabled: Vec::new(),
            halted: false,
        });
        slot.queue.clear();
        slot.outs.v4 = FamOut::default();
        slot.outs.v6 = FamOut::default();
        slot.eor_pending = negotiated.families.clone();
        // RFC 4724 §4.2: stale routes of a family the new OPEN does not list with the
        // Forwarding State bit are removed at once; the others wait for End-of-RIB.
        let stale = slot.stale;
        if stale != [0, 0] {
            let keep: Vec<Family> = negotiated
                .peer_graceful_restart
                .as_ref()
                .map(|g| {
                    g.families
                        .iter()
                        .filter(|(_, fwd)| *fwd)
                        .map(|(f, _)| *f)
                        .collect()
                })
                .unwrap_or_default();
            slot.stale_deadline = Some(now + stale_path_time);
            for (i, f) in FAMILIES.iter().enumerate() {
                if stale[i] > 0 && !keep.contains(f) {
                    self.flush_family(id, *f, |c| c.stale);
                }
            }
            self.stale_family_done(id);
        }
        self.mark_all_dirty(id);
        Ok(())
    }

    /// The Established session of `id` ended (FSM `Output::PeerDown`). With graceful restart
    /// negotiated and a qualifying reason, the routes of the peer's GR families stay, stale.
    pub fn peer_down(
        &mut self,
        now: Instant,
        id: PeerId,
        reason: &DownReason,
    ) -> Result<PeerDownOutcome, RibError> {
        let slot = self.slot_mut(id)?;
        let Some(session) = slot.session.take() else {
            return Ok(PeerDownOutcome::default());
        };
        slot.queue.clear();
        slot.eor_pending.clear();
        slot.outs.v4 = FamOut::default();
        slot.outs.v6 = FamOut::default();
        free_zombies::<P4>(&mut self.tables, &self.peers);
        free_zombies::<P6>(&mut self.tables, &self.peers);
        let slot = self.slot_mut(id)?;
        let notification_gr = slot.cfg.notification_gr;
        let graceful = match (&session.gr, reason) {
            (None, _) => false,
            (Some(_), _) if session.halted => false,
            (Some(gr), _) if gr.restart_time == 0 => false,
            (Some(_), DownReason::ConnectionClosed | DownReason::PeerRestarted) => true,
            (Some(gr), DownReason::NotificationSent(n) | DownReason::NotificationReceived(n)) => {
                // RFC 8538 §4: with N negotiated, GR applies after a NOTIFICATION too, except
                // Cease / Hard Reset.
                gr.notification
                    && notification_gr
                    && !(n.code == code::CEASE && n.subcode == cease_sub::HARD_RESET)
            }
            (Some(_), _) => false,
        };
        let mut out = PeerDownOutcome::default();
        if !graceful {
            out.removed = self.flush(id, |_| true);
            let slot = self.slot_mut(id)?;
            slot.stale_deadline = None;
            self.interner.maybe_sweep();
            return Ok(out);
        }
        let Some(gr) = session.gr else {
            return Ok(out);
        };
        let gr_families: Vec<Family> = gr.families.iter().map(|(f, _)| *f).collect();
        for f in FAMILIES {
            if !gr_families.contains(&f) || session.disabled.contains(&f) {
                out.removed += self.flush_family(id, f, |_| true);
            }
        }
        let p = id.0;
        let mut marked = [0usize; 2];
        for e in self
            .tables
            .v4
            .slots
            .iter_mut()
            .filter_map(|s| s.entry.as_mut())
        {
            mark_stale(e, p, &mut marked[0]);
        }
        for e in self
            .tables
            .v6
            .slots
            .iter_mut()
            .filter_map(|s| s.entry.as_mut())
        {
            mark_stale(e, p, &mut marked[1]);
        }
        let slot = self.slot_mut(id)?;
        slot.stale = slot.received;
        let until = now + std::time::Duration::from_secs(u64::from(gr.restart_time));
        slot.stale_deadline = Some(until);
        out.stale = slot.stale[0] + slot.stale[1];
        out.stale_until = (out.stale > 0).then_some(until);
        if out.stale == 0 {
            slot.stale_deadline = None;
        }
        Ok(out)
    }

    /// The earliest graceful-restart deadline (stale routes to remove).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.peers
            .iter()
            .flatten()
            .filter_map(|s| s.stale_deadline)
            .min()
    }

    /// Remove the stale routes of every peer whose deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<PeerId> = self
            .peers
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let s = s.as_ref()?;
                (s.stale_deadline? <= now).then_some(PeerId(i as u16))
            })
            .collect();
        for id in due {
            self.flush(id, |c| c.stale);
            if let Ok(s) = self.slot_mut(id) {
                s.stale_deadline = None;
            }
        }
        self.interner.maybe_sweep();
    }

    /// The stale-route deadline of one peer, if it has stale routes.
    pub fn stale_deadline(&self, id: PeerId) -> Option<Instant> {
        self.slot(id).ok()?.stale_deadline
    }

    // ---------------------------------------------------------------- receiving

    /// Apply one UPDATE received from `id` (FSM `Output::UpdateReceived`), with its RFC 7606
    /// treatment.
    pub fn apply_update(&mut self, id: PeerId, mut update: Update) -> Result<Applied, RibError> {
        let slot = self.slot(id)?;
        let Some(session) = slot.session.as_ref() else {
            return Err(RibError::NotEstablished(id));
        };
        let mut applied = Applied::default();
        if session.halted {
            return Ok(applied);
        }
        if let Some(f) = update.end_of_rib_family() {
            applied.end_of_rib = Some(f);
            if fam_idx(f).is_some_and(|i| slot.stale[i] > 0) {
                self.flush_family(id, f, |c| c.stale);
                self.stale_family_done(id);
                self.interner.maybe_sweep();
            }
            return Ok(applied);
        }
        if !session.four_octet_as {
            update.merge_as4();
        }
        let ebgp = slot.cfg.is_ebgp();
        let local_as = slot.cfg.local_as;
        let max_prefix = slot.cfg.max_prefix;
        let treatment = update.treatment();
        let (withdraw_all, disable) = match treatment {
            Treatment::Normal | Treatment::AttributeDiscard => (false, Vec::new()),
            Treatment::TreatAsWithdraw => (true, Vec::new()),
            Treatment::AfiSafiDisable(f) => (true, f),
        };
        for f in &disable {
            self.flush_family(id, *f, |_| true);
            if let Some(s) = self.slot_mut(id)?.session.as_mut() {
                if !s.disabled.contains(f) {
                    s.disabled.push(*f);
                }
            }
            applied.disabled.push(*f);
        }
        let session = self
            .slot(id)?
            .session
            .as_ref()
            .ok_or(RibError::NotEstablished(id))?;
        let carries_v4 = session.carries(Family::IPV4_UNICAST);
        let carries_v6 = session.carries(Family::IPV6_UNICAST);
        let carries = |f: Family| match f {
            Family::IPV4_UNICAST => carries_v4,
            Family::IPV6_UNICAST => carries_v6,
            _ => false,
        };

        // Withdrawals (always honoured, RFC 7606 §2).
        let p = id.0;
        if carries_v4 {
            for n in &update.withdrawn {
                if self.remove_route(Family::IPV4_UNICAST, n.prefix, p, n.path_id.unwrap_or(0)) {
                    applied.withdrawn += 1;
                }
            }
        }
        if let Some(m) = update.mp_unreach() {
            if carries(m.family) {
                for n in m.withdrawn.prefixes() {
                    if self.remove_route(m.family, n.prefix, p, n.path_id.unwrap_or(0)) {
                        applied.withdrawn += 1;
                    }
                }
            }
        }
        // Announcements: MP_REACH_NLRI's prefixes (the attribute is taken out of the list:
        // attribute sets never store it), then the NLRI field's.
        let mp = update
            .attrs
            .iter()
            .position(|a| matches!(a.value, AttrValue::MpReach(_)))
            .map(|i| update.attrs.remove(i).value);
        let mut nh_mp = None;
        let mut mp_family = Family::IPV6_UNICAST;
        let mut mp_nlri: Vec<Nlri> = Vec::new();
        if let Some(AttrValue::MpReach(m)) = mp {
            if carries(m.family) {
                nh_mp = match m.next_hop {
                    NextHop::V4(a) => Some(RouteNextHop::V4(a)),
                    NextHop::V6 { global, link_local } => {
                        Some(RouteNextHop::V6 { global, link_local })
                    }
                    NextHop::Opaque(_) => None,
                };
                mp_family = m.family;
                if let MpNlri::Prefixes(v) = m.nlri {
                    mp_nlri = v;
                }
            } else {
                applied.rejected += m.nlri.prefixes().len();
            }
        }
        let v4_nlri = if carries_v4 {
            std::mem::take(&mut update.nlri)
        } else {
            applied.rejected += update.nlri.len();
            Vec::new()
        };
        let any = !mp_nlri.is_empty() || !v4_nlri.is_empty();
        let refused = !withdraw_all && any && {
            // RFC 4271 §9.1.2: a route whose AS_PATH holds our AS is not a candidate.
            let looped = update
                .as_path()
                .is_some_and(|p| p.asns().any(|a| a == local_as));
            // RFC 4456 §8: our own ORIGINATOR_ID came back.
            let reflected = !ebgp
                && update.attrs.iter().any(
                    |a| matches!(a.value, AttrValue::OriginatorId(o) if o == self.cfg.router_id),
                );
            looped || reflected
        };
        if refused {
            applied.rejected += mp_nlri.len() + v4_nlri.len();
        }
        let announced = || {
            mp_nlri
                .iter()
                .map(|n| (mp_family, n, true))
                .chain(v4_nlri.iter().map(|n| (Family::IPV4_UNICAST, n, false)))
        };
        if withdraw_all || refused {
            for (f, n, _) in announced() {
                if self.remove_route(f, n.prefix, p, n.path_id.unwrap_or(0)) {
                    applied.withdrawn += 1;
                }
            }
            return Ok(applied);
        }
        if !any {
            return Ok(applied);
        }
        let mut kept: Vec<Attr> = update.attrs;
        kept.retain(|a| match a.value {
            // Merged into AS_PATH / AGGREGATOR above (or meaningless from a 4-octet peer).
            AttrValue::As4Path(_) | AttrValue::As4Aggregator(_) => false,
            // Not passed across AS borders.
            AttrValue::LocalPref(_) | AttrValue::OriginatorId(_) | AttrValue::ClusterList(_) => {
                !ebgp
            }
            _ => true,
        });
        let nh_v4 = v4_nlri.first().and_then(|_| {
            kept.iter().find_map(|a| match a.value {
                AttrValue::NextHop(n) => Some(RouteNextHop::V4(n)),
                _ => None,
            })
        });
        // One attribute set per source, interned once: prefixes in MP_REACH (IPv4 or IPv6)
        // take its next hop; those in the NLRI field, NEXT_HOP.
        let mut set_mp = None;
        let mut set_v4 = None;
        for (f, n, from_mp) in announced() {
            let (set, nh) = if from_mp {
                (&mut set_mp, nh_mp)
            } else {
                (&mut set_v4, nh_v4)
            };
            let attrs = set
                .get_or_insert_with(|| self.interner.intern(PathAttrs::new(&kept, nh)))
                .clone();
            let cand = Cand {
                attrs,
                path_id: n.path_id.unwrap_or(0),
                peer: p,
                stale: false,
            };
            let (new, was_stale) = self.insert_route(f, n.prefix, cand);
            applied.announced += 1;
            let slot = self.slot_mut(id)?;
            let i = fam_idx(f).unwrap_or(0);
            if new {
                slot.received[i] += 1;
            }
            if was_stale {
                slot.stale[i] = slot.stale[i].saturating_sub(1);
            }
            if let Some(limit) = max_prefix {
                if slot.received[i] > limit as usize {
                    applied.max_prefix_exceeded = Some((f, limit));
                    if let Some(s) = slot.session.as_mut() {
                        s.halted = true;
                    }
                    self.flush(id, |_| true);
                    self.interner.maybe_sweep();
                    return Ok(applied);
                }
            }
        }
        self.interner.maybe_sweep();
        Ok(applied)
    }

    /// Insert or replace a candidate. Returns (new, replaced a stale one).
    fn insert_route(&mut self, f: Family, prefix: IpNet, cand: Cand) -> (bool, bool) {
        match f {
            Family::IPV4_UNICAST => match P4::from_net(prefix) {
                Some(k) => self.insert_key(k, cand),
                None => (false, false),
            },
            _ => match P6::from_net(prefix) {
                Some(k) => self.insert_key(k, cand),
                None => (false, false),
            },
        }
    }

    fn insert_key<K: Fam>(&mut self, key: K, cand: Cand) -> (bool, bool) {
        let cfg = self.cfg.decision;
        let t = K::table(&mut self.tables);
        let i = t.find_or_add(key);
        match t.slots[i as usize].entry.as_mut() {
            None => {
                let from = cand.peer;
                t.set_entry(i, Some(Entry::new(cand)));
                mark_dirty::<K>(&mut self.peers, i, Some(from));
                (true, false)
            }
            Some(e) => {
                let old = ident(&e.first);
                let replaced = e.upsert(cand);
                reselect(e, &self.peers, &cfg);
                if ident(&e.first) != old {
                    let best = e.first.peer;
                    mark_dirty::<K>(&mut self.peers, i, Some(best));
                }
                (replaced.is_none(), replaced.is_some_and(|c| c.stale))
            }
        }
    }

    /// Remove the candidate (peer, path id) of a prefix. Returns whether it existed.
    fn remove_route(&mut self, f: Family, prefix: IpNet, peer: u16, path_id: u32) -> bool {
        match f {
            Family::IPV4_UNICAST => {
                P4::from_net(prefix).is_some_and(|k| self.remove_key(k, peer, path_id))
            }
            _ => P6::from_net(prefix).is_some_and(|k| self.remove_key(k, peer, path_id)),
        }
    }

    fn remove_key<K: Fam>(&mut self, key: K, peer: u16, path_id: u32) -> bool {
        let cfg = self.cfg.decision;
        let t = K::table(&mut self.tables);
        let Some(i) = t.find(key) else {
            return false;
        };
        let Some(e) = t.slots[i as usize].entry.as_mut() else {
            return false;
        };
        let old = ident(&e.first);
        let mut was_stale = false;
        let (n, empty) = e.remove_where(|c| {
            let hit = c.peer == peer && c.path_id == path_id;
            was_stale |= hit && c.stale;
            hit
        });
        if n == 0 {
            return false;
        }
        if empty {
            t.set_entry(i, None);
            mark_dirty::<K>(&mut self.peers, i, None);
            try_free::<K>(&mut self.tables, &self.peers, i);
        } else {
            reselect(e, &self.peers, &cfg);
            if ident(&e.first) != old {
                let best = e.first.peer;
                mark_dirty::<K>(&mut self.peers, i, Some(best));
            }
        }
        if let Some(s) = self
            .peers
            .get_mut(usize::from(peer))
            .and_then(Option::as_mut)
        {
            s.received[K::IDX] = s.received[K::IDX].saturating_sub(1);
            if was_stale {
                s.stale[K::IDX] = s.stale[K::IDX].saturating_sub(1);
            }
        }
        true
    }

    // ---------------------------------------------------------------- local routes

    /// Originate a route (the agent's pod CIDR, a VIP...). `attrs` may hold ORIGIN (default
    /// IGP), MED, LOCAL_PREF, communities...; AS_PATH is empty and the next hop is this
    /// speaker (the session's address) unless `next_hop` is given. Replaces an earlier one.
    pub fn originate(
        &mut self,
        prefix: IpNet,
        attrs: Vec<Attr>,
        next_hop: Option<RouteNextHop>,
    ) -> Result<(), RibError> {
        let prefix = prefix.trunc();
        let f = match prefix {
            IpNet::V4(_) => Family::IPV4_UNICAST,
            IpNet::V6(_) => Family::IPV6_UNICAST,
        };
        let mut attrs: Vec<Attr> = attrs
            .into_iter()
            .filter(|a| !matches!(a.value, AttrValue::AsPath(_) | AttrValue::NextHop(_)))
            .collect();
        if !attrs
            .iter()
            .any(|a| matches!(a.value, AttrValue::Origin(_)))
        {
            attrs.push(Attr::new(AttrValue::Origin(Origin::Igp)));
        }
        attrs.push(Attr::new(AttrValue::AsPath(AsPath::default())));
        attrs.sort_by_key(Attr::type_code);
        let set = self.interner.intern(PathAttrs::new(&attrs, next_hop));
        let cand = Cand {
            attrs: set,
            path_id: 0,
            peer: 0,
            stale: false,
        };
        let (new, _) = self.insert_route(f, prefix, cand);
        if new {
            if let Some(Some(s)) = self.peers.get_mut(0) {
                s.received[fam_idx(f).unwrap_or(0)] += 1;
            }
        }
        Ok(())
    }

    /// Stop originating `prefix`. Returns whether it was originated.
    pub fn withdraw_local(&mut self, prefix: IpNet) -> bool {
        let prefix = prefix.trunc();
        let f = match prefix {
            IpNet::V4(_) => Family::IPV4_UNICAST,
            IpNet::V6(_) => Family::IPV6_UNICAST,
        };
        self.remove_route(f, prefix, 0, 0)
    }

    // ---------------------------------------------------------------- route refresh

    /// A ROUTE-REFRESH from the peer (FSM `Output::RouteRefreshReceived`). A request queues
    /// the family's Adj-RIB-Out again (with BoRR/EoRR when enhanced route refresh was
    /// negotiated, RFC 7313 §4); a BoRR marks the peer's routes of the family stale and the
    /// EoRR removes those it did not re-advertise (RFC 7313 §4.2).
    pub fn route_refresh(&mut self, id: PeerId, rr: &RouteRefresh) -> Result<(), RibError> {
        let slot = self.slot_mut(id)?;
        let Some(session) = slot.session.as_ref() else {
            return Err(RibError::NotEstablished(id));
        };
        let Some(i) = fam_idx(rr.family).filter(|_| session.families.contains(&rr.family)) else {
            return Ok(());
        };
        match rr.subtype {
            RefreshSubtype::Normal => {
                let enhanced = session.enhanced_route_refresh;
                self.queue_refresh(id, rr.family, enhanced);
            }
            RefreshSubtype::BoRR => {
                let p = id.0;
                let mut n = 0;
                if i == 0 {
                    self.tables
                        .v4
                        .slots
                        .iter_mut()
                        .filter_map(|s| s.entry.as_mut())
                        .for_each(|e| mark_stale(e, p, &mut n));
                } else {
                    self.tables
                        .v6
                        .slots
                        .iter_mut()
                        .filter_map(|s| s.entry.as_mut())
                        .for_each(|e| mark_stale(e, p, &mut n));
                }
                let slot = self.slot_mut(id)?;
                slot.stale[i] = slot.received[i];
            }
            RefreshSubtype::EoRR => {
                self.flush_family(id, rr.family, |c| c.stale);
                self.stale_family_done(id);
            }
            RefreshSubtype::Reserved(_) => {}
        }
        Ok(())
    }

    // ---------------------------------------------------------------- queries

    fn views<K: Fam>(&self, filter: impl Fn(&Cand, bool) -> bool) -> Vec<RouteView> {
        let mut v: Vec<(K, RouteView)> = Vec::new();
        for (_, k, e) in K::table_ref(&self.tables).iter() {
            for (i, c) in e.iter().enumerate() {
                if filter(c, i == 0) {
                    v.push((
                        k,
                        RouteView {
                            prefix: k.to_net(),
                            path_id: c.path_id,
                            peer: PeerId(c.peer),
                            attrs: c.attrs.clone(),
                            stale: c.stale,
                            best: i == 0,
                        },
                    ));
                }
            }
        }
        v.sort_by_key(|x| (x.0, x.1.peer, x.1.path_id));
        v.into_iter().map(|x| x.1).collect()
    }

    /// The routes received from a peer in `family` (its Adj-RIB-In after import), sorted by
    /// prefix, with the stale flag and whether each is the Loc-RIB route.
    /// `PeerId::LOCAL` lists the locally originated routes.
    pub fn received_routes(&self, id: PeerId, family: Family) -> Vec<RouteView> {
        let p = id.0;
        match fam_idx(family) {
            Some(0) => self.views::<P4>(|c, _| c.peer == p),
            Some(_) => self.views::<P6>(|c, _| c.peer == p),
            None => Vec::new(),
        }
    }

    /// The Loc-RIB of `family`: the best route of every prefix, sorted.
    pub fn loc_rib(&self, family: Family) -> Vec<RouteView> {
        match fam_idx(family) {
            Some(0) => self.views::<P4>(|_, best| best),
            Some(_) => self.views::<P6>(|_, best| best),
            None => Vec::new(),
        }
    }

    /// The best route of one prefix.
    pub fn best(&self, prefix: IpNet) -> Option<RouteView> {
        let prefix = prefix.trunc();
        let (k, e) = match prefix {
            IpNet::V4(_) => {
                let k = P4::from_net(prefix)?;
                (k.to_net(), self.tables.v4.get(k)?)
            }
            IpNet::V6(_) => {
                let k = P6::from_net(prefix)?;
                (k.to_net(), self.tables.v6.get(k)?)
            }
        };
        let c = &e.first;
        Some(RouteView {
            prefix: k,
            path_id: c.path_id,
            peer: PeerId(c.peer),
            attrs: c.attrs.clone(),
            stale: c.stale,
            best: true,
        })
    }

    /// Per-family counts of a peer (received, stale, advertised). O(1).
    pub fn counts(&self, id: PeerId) -> Vec<FamilyCounts> {
        let Some(slot) = self.peers.get(usize::from(id.0)).and_then(Option::as_ref) else {
            return Vec::new();
        };
        FAMILIES
            .iter()
            .enumerate()
            .map(|(i, f)| FamilyCounts {
                family: *f,
                received: slot.received[i],
                stale: slot.stale[i],
                advertised: if i == 0 {
                    slot.outs.v4.adv.ones()
                } else {
                    slot.outs.v6.adv.ones()
                },
            })
            .collect()
    }

    /// Prefixes in the Loc-RIB of `family`. O(1).
    pub fn loc_rib_len(&self, family: Family) -> usize {
        match fam_idx(family) {
            Some(0) => self.tables.v4.len(),
            Some(_) => self.tables.v6.len(),
            None => 0,
        }
    }

    /// Distinct attribute sets currently interned.
    pub fn attr_sets(&self) -> usize {
        self.interner.len()
    }

    /// Drop attribute sets no route uses any more (also done automatically).
    pub fn sweep(&mut self) {
        self.interner.sweep();
    }

    /// The peers (`PeerId::LOCAL` excluded) and their configs.
    pub fn peers(&self) -> impl Iterator<Item = (PeerId, &PeerConfig)> {
        self.peers
            .iter()
            .enumerate()
            .skip(1)
            .filter_map(|(i, s)| Some((PeerId(i as u16), &s.as_ref()?.cfg)))
    }

    pub fn is_established(&self, id: PeerId) -> bool {
        self.slot(id).is_ok_and(|s| s.session.is_some())
    }
}

fn mark_stale(e: &mut Entry, peer: u16, n: &mut usize) {
    if e.first.peer == peer {
        e.first.stale = true;
        *n += 1;
    }
    if let Some(v) = e.more.as_mut() {
        for c in v.iter_mut().filter(|c| c.peer == peer) {
            c.stale = true;
            *n += 1;
        }
    }
}
