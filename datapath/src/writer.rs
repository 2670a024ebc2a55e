//! Writes `ServicePlan`s into the BPF maps, make-before-break per service, and only the
//! difference against what the maps already hold.
//!
//! Order of one `apply`:
//! 1. backends that are new or changed (batch);
//! 2. each changed service's slots into its *other* generation (batch), its source ranges, and
//!    its Maglev table (a fresh inner map, swapped into `lb_maglev_v1` in one update);
//! 3. the service entries flip to the new generation (batch; each entry flips atomically, so a
//!    service always points at a complete set of existing backends);
//! 4. old generations, removed source ranges, removed services;
//! 5. backends no service points at any more.
//!
//! A `Writer` built by [`Writer::adopt`] reads the pinned maps first, so an agent restarted with
//! the same plans writes nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;

use crate::bpf_sys::{self, MapError, TypedMap};
use crate::maps::*;
use crate::plan::{BackendAddr, FrontendKind, NoBackends, Protocol, Selection, ServicePlan};

/// Computes a Maglev lookup table: for each of `table_size` entries, an index into `backends`.
/// The planner's Maglev implementation is plugged in here.
pub type MaglevFn = fn(backends: &[BackendAddr], table_size: u32) -> Vec<u32>;

/// The planner's Maglev (`crate::maglev`), as the writer's default.
pub fn planner_maglev(backends: &[BackendAddr], table_size: u32) -> Vec<u32> {
    // An invalid size was rejected before; an error here shows up as a short table, which
    // install_maglev reports.
    crate::maglev::lookup_table(backends, table_size).unwrap_or_default()
}

#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// The node's addresses: a NodePort frontend whose address is unspecified (0.0.0.0 or ::)
    /// is served on each of these of its family.
    pub node_addrs: Vec<IpAddr>,
    pub maglev: MaglevFn,
}

impl WriterConfig {
    pub fn new(node_addrs: Vec<IpAddr>) -> Self {
        WriterConfig {
            node_addrs,
            maglev: planner_maglev,
        }
    }
}

type DesiredState = (BTreeMap<SvcKey, Desired>, HashMap<BeIdent, BackendVal>);

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Map(#[from] MapError),
    #[error("service {service}: {what}")]
    Plan { service: String, what: String },
    #[error("service {service}: creating its Maglev table: {source}")]
    Maglev {
        service: String,
        #[source]
        source: std::io::Error,
    },
    #[error("out of {0} ids")]
    Ids(&'static str),
}

/// What an `apply` wrote (all zero: nothing changed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyStats {
    pub backends_written: usize,
    pub backends_deleted: usize,
    pub services_written: usize,
    pub services_deleted: usize,
    pub slots_written: usize,
    pub slots_deleted: usize,
    pub maglev_tables: usize,
    pub ranges_written: usize,
    pub ranges_deleted: usize,
}

impl ApplyStats {
    pub fn writes(&self) -> usize {
        self.backends_written
            + self.backends_deleted
            + self.services_written
            + self.services_deleted
            + self.slots_written
            + self.slots_deleted
            + self.maglev_tables
            + self.ranges_written
            + self.ranges_deleted
    }
}

/// The maps the writer owns, opened from their pins.
#[derive(Debug)]
pub struct Maps {
    pub svc: TypedMap<SvcKey, SvcVal>,
    pub slot: TypedMap<SlotKey, SlotVal>,
    pub backend: TypedMap<u32, BackendVal>,
    /// Hash of maps: value is an inner map fd on update, its id on lookup.
    pub maglev: TypedMap<u32, u32>,
    pub srcrange: TypedMap<SrcRangeKey, u8>,
}

impl Maps {
    pub fn open(pin_dir: &Path) -> Result<Self, MapError> {
        let p = |n: &str| pin_dir.join(n);
        Ok(Maps {
            svc: TypedMap::open_pinned(&p(names::SVC), names::SVC)?,
            slot: TypedMap::open_pinned(&p(names::SLOT), names::SLOT)?,
            backend: TypedMap::open_pinned(&p(names::BACKEND), names::BACKEND)?,
            maglev: TypedMap::open_pinned(&p(names::MAGLEV), names::MAGLEV)?,
            srcrange: TypedMap::open_pinned(&p(names::SRCRANGE), names::SRCRANGE)?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct SvcState {
    val: SvcVal,
    /// Backend ids of the live generation, slot 1 first.
    slots: Vec<u32>,
    ranges: BTreeSet<SrcRangeKey>,
    has_maglev: bool,
}

type BeIdent = (LbAddr, u16);

#[derive(Debug, Clone)]
struct Desired {
    service: String,
    val: SvcVal, // svc_id, count, slot_base filled in later
    active: Vec<BackendAddr>,
    ranges: BTreeSet<SrcRangeKey>,
}

/// Id allocator: smallest released id first, then the next fresh one. 0 is never used.
#[derive(Debug, Default)]
struct Ids {
    next: u32,
    free: BTreeSet<u32>,
}

impl Ids {
    fn from_used<I: IntoIterator<Item = u32>>(used: I) -> Self {
        let used: BTreeSet<u32> = used.into_iter().collect();
        let max = used.iter().next_back().copied().unwrap_or(0);
        let free = (1..max).filter(|i| !used.contains(i)).collect();
        Ids {
            next: max + 1,
            free,
        }
    }
    fn alloc(&mut self, what: &'static str) -> Result<u32, WriteError> {
        if let Some(id) = self.free.pop_first() {
            return Ok(id);
        }
        // Slot numbers carry the generation in bit 31, so ids stay below it too.
        if self.next >= SLOT_GEN {
            return Err(WriteError::Ids(what));
        }
        self.next += 1;
        Ok(self.next - 1)
    }
    fn release(&mut self, id: u32) {
        self.free.insert(id);
    }
}

#[derive(Debug)]
pub struct Writer {
    maps: Maps,
    cfg: WriterConfig,
    services: BTreeMap<SvcKey, SvcState>,
    backends: HashMap<BeIdent, (u32, BackendVal)>,
    svc_ids: Ids,
    be_ids: Ids,
    /// Slots of a non-live generation found when adopting (an apply interrupted mid-way).
    stale_slots: Vec<SlotKey>,
}

fn proto_num(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => IPPROTO_TCP,
        Protocol::Udp => IPPROTO_UDP,
    }
}

fn kind_num(k: FrontendKind) -> u8 {
    match k {
        FrontendKind::ClusterIp => KIND_CLUSTER_IP,
        FrontendKind::NodePort => KIND_NODE_PORT,
        FrontendKind::LoadBalancer => KIND_LOAD_BALANCER,
        FrontendKind::ExternalIp => KIND_EXTERNAL_IP,
    }
}

fn ident(b: &BackendAddr) -> BeIdent {
    (LbAddr::from_ip(b.addr), b.port)
}

/// The LPM key of one loadBalancerSourceRanges prefix of service `svc_id`.
pub fn srcrange_key(svc_id: u32, net: &IpNet) -> SrcRangeKey {
    let net = net.trunc();
    let (addr, len) = match net {
        IpNet::V4(n) => (IpAddr::V4(n.network()), 96 + n.prefix_len() as u32),
        IpNet::V6(n) => (IpAddr::V6(n.network()), n.prefix_len() as u32),
    };
    SrcRangeKey {
        prefixlen: 32 + len,
        svc_id,
        addr: LbAddr::from_ip(addr),
    }
}

impl Writer {
    /// Opens the pinned maps under `pin_dir` and reads what they hold.
    pub fn open(pin_dir: &Path, cfg: WriterConfig) -> Result<Self, WriteError> {
        Self::adopt(Maps::open(pin_dir)?, cfg)
    }

    /// Takes over maps (possibly written by an earlier agent): reads services, slots, backends,
    /// source ranges and Maglev tables so the next `apply` writes only differences.
    pub fn adopt(maps: Maps, cfg: WriterConfig) -> Result<Self, WriteError> {
        let mut services = BTreeMap::new();
        let mut by_id: HashMap<u32, SvcKey> = HashMap::new();
        for (k, v) in maps.svc.entries()? {
            by_id.insert(v.svc_id, k);
            services.insert(
                k,
                SvcState {
                    val: v,
                    slots: vec![0; v.count as usize],
                    ranges: BTreeSet::new(),
                    has_maglev: false,
                },
            );
        }
        let mut stale_slots = Vec::new();
        for (k, v) in maps.slot.entries()? {
            let live = by_id
                .get(&k.svc_id)
                .and_then(|sk| services.get_mut(sk))
                .and_then(|s| {
                    let idx = k.slot.wrapping_sub(s.val.slot_base);
                    (k.slot & SLOT_GEN == s.val.slot_base
                        && idx >= 1
                        && idx as usize <= s.slots.len())
                    .then_some((s, idx as usize))
                });
            match live {
                Some((s, idx)) => s.slots[idx - 1] = v.backend_id,
                None => stale_slots.push(k),
            }
        }
        for k in maps.srcrange.keys()? {
            if let Some(s) = by_id.get(&k.svc_id).and_then(|sk| services.get_mut(sk)) {
                s.ranges.insert(k);
            }
        }
        for id in maps.maglev.keys()? {
            if let Some(s) = by_id.get(&id).and_then(|sk| services.get_mut(sk)) {
                s.has_maglev = true;
            }
        }
        let mut backends = HashMap::new();
        for (id, v) in maps.backend.entries()? {
            backends.insert((v.addr, u16::from_be(v.port_be)), (id, v));
        }
        let svc_ids = Ids::from_used(services.values().map(|s| s.val.svc_id));
        let be_ids = Ids::from_used(backends.values().map(|(id, _)| *id));
        Ok(Writer {
            maps,
            cfg,
            services,
            backends,
            svc_ids,
            be_ids,
            stale_slots,
        })
    }

    pub fn maps(&self) -> &Maps {
        &self.maps
    }

    /// The backend id the maps use for `addr:port`, if it is there.
    pub fn backend_id(&self, addr: IpAddr, port: u16) -> Option<u32> {
        self.backends
            .get(&(LbAddr::from_ip(addr), port))
            .map(|(id, _)| *id)
    }

    /// The service id of a frontend, if it is there.
    pub fn service_id(&self, addr: IpAddr, port: u16, proto: Protocol) -> Option<u32> {
        let key = SvcKey {
            addr: LbAddr::from_ip(addr),
            port_be: port.to_be(),
            proto: proto_num(proto),
            pad: 0,
        };
        self.services.get(&key).map(|s| s.val.svc_id)
    }

    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    fn desired(&self, plans: &[ServicePlan]) -> Result<DesiredState, WriteError> {
        let mut svcs = BTreeMap::new();
        let mut bes: HashMap<BeIdent, BackendVal> = HashMap::new();
        for plan in plans {
            let bad = |what: String| WriteError::Plan {
                service: plan.service.clone(),
                what,
            };
            let fe = &plan.frontend;
            let addrs: Vec<IpAddr> =
                if fe.addr.is_unspecified() && fe.kind == FrontendKind::NodePort {
                    self.cfg
                        .node_addrs
                        .iter()
                        .copied()
                        .filter(|a| a.is_ipv4() == fe.addr.is_ipv4())
                        .collect()
                } else if fe.addr.is_unspecified() {
                    return Err(bad(format!(
                        "frontend {}:{} has no address",
                        fe.addr, fe.port
                    )));
                } else {
                    vec![fe.addr]
                };
            for b in plan.active.iter().chain(&plan.terminating) {
                if b.addr.is_ipv4() != fe.addr.is_ipv4() {
                    return Err(bad(format!(
                        "backend {}:{} is not of frontend {}'s address family",
                        b.addr, b.port, fe.addr
                    )));
                }
            }
            let (flags_sel, maglev_size) = match plan.selection {
                Selection::Random => (0, 0),
                Selection::Maglev { table_size } => {
                    crate::maglev::validate_table_size(table_size)
                        .map_err(|e| bad(e.to_string()))?;
                    (SVC_F_MAGLEV, table_size)
                }
            };
            let mut flags = flags_sel;
            if plan.affinity_timeout.is_some() {
                flags |= SVC_F_AFFINITY;
            }
            if !plan.source_ranges.is_empty() {
                flags |= SVC_F_SRC_RANGE;
            }
            if plan.no_backends == NoBackends::Drop {
                flags |= SVC_F_DROP_EMPTY;
            }
            let mut active = plan.active.clone();
            active.sort();
            active.dedup_by(|a, b| ident(a) == ident(b));
            for b in &plan.active {
                let e = bes.entry(ident(b)).or_insert(BackendVal {
                    addr: LbAddr::from_ip(b.addr),
                    port_be: b.port.to_be(),
                    flags: BE_F_TERMINATING,
                    pad: 0,
                });
                e.flags &= !BE_F_TERMINATING;
                if b.local {
                    e.flags |= BE_F_LOCAL;
                }
            }
            for b in &plan.terminating {
                let e = bes.entry(ident(b)).or_insert(BackendVal {
                    addr: LbAddr::from_ip(b.addr),
                    port_be: b.port.to_be(),
                    flags: BE_F_TERMINATING,
                    pad: 0,
                });
                if b.local {
                    e.flags |= BE_F_LOCAL;
                }
            }
            for addr in addrs {
                let key = SvcKey {
                    addr: LbAddr::from_ip(addr),
                    port_be: fe.port.to_be(),
                    proto: proto_num(fe.proto),
                    pad: 0,
                };
                let d = Desired {
                    service: plan.service.clone(),
                    val: SvcVal {
                        svc_id: 0,
                        count: active.len() as u32,
                        slot_base: 0,
                        affinity_timeout_s: plan.affinity_timeout.unwrap_or(0),
                        maglev_size,
                        flags,
                        kind: kind_num(fe.kind),
                        pad: 0,
                    },
                    active: active.clone(),
                    ranges: BTreeSet::new(),
                };
                if let Some(prev) = svcs.insert(key, d) {
                    return Err(bad(format!(
                        "frontend {addr}:{} {:?} is also planned by service {}",
                        fe.port, fe.proto, prev.service
                    )));
                }
            }
        }
        Ok((svcs, bes))
    }

    /// Makes the maps serve exactly `plans`. On error the services not yet flipped keep their
    /// previous backends (every entry they point at still exists) and the error says what failed.
    pub fn apply(&mut self, plans: &[ServicePlan]) -> Result<ApplyStats, WriteError> {
        let mut st = ApplyStats::default();
        let (mut want, want_be) = self.desired(plans)?;
        let ranges_of: HashMap<&str, &[IpNet]> = plans
            .iter()
            .map(|p| (p.service.as_str(), p.source_ranges.as_slice()))
            .collect();

        // 1. Backends: new and changed, before anything points at them.
        let (mut be_keys, mut be_vals, mut be_new) = (Vec::new(), Vec::new(), Vec::new());
        for (ident, val) in &want_be {
            match self.backends.get(ident) {
                Some((_, old)) if old == val => {}
                Some((id, _)) => {
                    be_keys.push(*id);
                    be_vals.push(*val);
                }
                None => {
                    let id = self.be_ids.alloc("backend")?;
                    be_keys.push(id);
                    be_vals.push(*val);
                    be_new.push(id);
                }
            }
        }
        let idents: HashMap<u32, BeIdent> = be_keys
            .iter()
            .zip(&be_vals)
            .map(|(id, v)| (*id, (v.addr, u16::from_be(v.port_be))))
            .collect();
        let written = match self.maps.backend.update_batch(&be_keys, &be_vals) {
            Ok(()) => be_keys.len(),
            Err(e) => {
                let done = match &e {
                    MapError::Batch { done, .. } => *done,
                    _ => 0,
                };
                self.commit_backends(&be_keys[..done], &be_vals[..done], &idents);
                for id in &be_keys[done..] {
                    if be_new.contains(id) {
                        self.be_ids.release(*id);
                    }
                }
                return Err(e.into());
            }
        };
        self.commit_backends(&be_keys, &be_vals, &idents);
        st.backends_written = written;

        // 2. Per changed service: next-generation slots, ranges, Maglev table.
        struct Change {
            key: SvcKey,
            next: SvcState,
            old_slots: Vec<SlotKey>,
            old_ranges: Vec<SrcRangeKey>,
            drop_maglev: bool,
        }
        let mut changes: Vec<Change> = Vec::new();
        let (mut slot_keys, mut slot_vals) = (Vec::new(), Vec::new());
        let mut new_ids = Vec::new();
        for (key, d) in want.iter_mut() {
            let cur = self.services.get(key);
            let svc_id = match cur {
                Some(c) => c.val.svc_id,
                None => {
                    let id = self.svc_ids.alloc("service")?;
                    new_ids.push(id);
                    id
                }
            };
            d.val.svc_id = svc_id;
            d.ranges = ranges_of
                .get(d.service.as_str())
                .map(|r| r.iter().map(|n| srcrange_key(svc_id, n)).collect())
                .unwrap_or_default();
            let mut slots = Vec::with_capacity(d.active.len());
            for b in &d.active {
                match self.backends.get(&ident(b)) {
                    Some((id, _)) => slots.push(*id),
                    None => {
                        return Err(WriteError::Plan {
                            service: d.service.clone(),
                            what: format!("backend {}:{} was not written", b.addr, b.port),
                        })
                    }
                }
            }
            let slots_same = cur.is_some_and(|c| c.slots == slots);
            let base = match cur {
                Some(c) if slots_same => c.val.slot_base,
                Some(c) => c.val.slot_base ^ SLOT_GEN,
                None => 0,
            };
            let mut val = d.val;
            val.slot_base = base;
            let want_maglev = val.flags & SVC_F_MAGLEV != 0;
            let maglev_fresh = cur.is_some_and(|c| {
                slots_same && c.has_maglev && c.val.maglev_size == val.maglev_size
            });
            let next = SvcState {
                val,
                slots: slots.clone(),
                ranges: d.ranges.clone(),
                has_maglev: want_maglev,
            };
            if cur == Some(&next) && (!want_maglev || maglev_fresh) {
                continue;
            }
            if !slots_same {
                for (i, id) in slots.iter().enumerate() {
                    slot_keys.push(SlotKey {
                        svc_id,
                        slot: base + i as u32 + 1,
                    });
                    slot_vals.push(SlotVal { backend_id: *id });
                }
            }
            let old_slots = match cur {
                Some(c) if !slots_same => (0..c.slots.len())
                    .map(|i| SlotKey {
                        svc_id,
                        slot: c.val.slot_base + i as u32 + 1,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let old_ranges = cur
                .map(|c| c.ranges.difference(&next.ranges).copied().collect())
                .unwrap_or_default();
            let drop_maglev = cur.is_some_and(|c| c.has_maglev) && !want_maglev;
            if want_maglev && !maglev_fresh {
                // Installed before the flip: every id in it exists (step 1), and the old
                // backends it replaces are deleted only in step 5.
                self.install_maglev(svc_id, &d.service, &d.active, &slots, val.maglev_size)
                    .inspect_err(|_| {
                        for id in &new_ids {
                            self.svc_ids.release(*id);
                        }
                    })?;
                st.maglev_tables += 1;
            }
            changes.push(Change {
                key: *key,
                next,
                old_slots,
                old_ranges,
                drop_maglev,
            });
        }
        let abort = |w: &mut Writer, keys: &[SlotKey], new_ids: &[u32]| {
            let _ = w.maps.slot.delete_batch(keys);
            for id in new_ids {
                w.svc_ids.release(*id);
            }
        };
        if let Err(e) = self.maps.slot.update_batch(&slot_keys, &slot_vals) {
            abort(self, &slot_keys, &new_ids);
            return Err(e.into());
        }
        st.slots_written = slot_keys.len();
        for c in &changes {
            let cur = self.services.get(&c.key).map(|s| &s.ranges);
            for r in &c.next.ranges {
                if cur.is_some_and(|cr| cr.contains(r)) {
                    continue;
                }
                if let Err(e) = self.maps.srcrange.update(r, &1, bpf_sys::BPF_ANY) {
                    abort(self, &slot_keys, &new_ids);
                    return Err(e.into());
                }
                st.ranges_written += 1;
            }
        }

        // 3. Flip.
        let keys: Vec<SvcKey> = changes.iter().map(|c| c.key).collect();
        let vals: Vec<SvcVal> = changes.iter().map(|c| c.next.val).collect();
        let flip = self.maps.svc.update_batch(&keys, &vals);
        let flipped = match &flip {
            Ok(()) => changes.len(),
            Err(MapError::Batch { done, .. }) => *done,
            Err(_) => 0,
        };
        st.services_written = flipped;

        // 4. After the flip: old generations and ranges of flipped services.
        let mut old_slots = Vec::new();
        let mut old_ranges = Vec::new();
        for c in changes.drain(..flipped) {
            old_slots.extend(c.old_slots);
            old_ranges.extend(c.old_ranges);
            if c.drop_maglev {
                self.maps.maglev.delete(&c.next.val.svc_id)?;
            }
            self.services.insert(c.key, c.next);
        }
        if let Err(e) = flip {
            // The rest never flipped: their next-generation slots are unused.
            let unused: Vec<SlotKey> = changes
                .iter()
                .flat_map(|c| {
                    let id = c.next.val.svc_id;
                    let base = c.next.val.slot_base;
                    (0..c.next.slots.len()).map(move |i| SlotKey {
                        svc_id: id,
                        slot: base + i as u32 + 1,
                    })
                })
                .collect();
            let _ = self.maps.slot.delete_batch(&unused);
            let _ = self.maps.slot.delete_batch(&old_slots);
            for c in &changes {
                if !self.services.contains_key(&c.key) {
                    self.svc_ids.release(c.next.val.svc_id);
                }
            }
            return Err(e.into());
        }
        old_slots.append(&mut self.stale_slots);
        self.maps.slot.delete_batch(&old_slots)?;
        st.slots_deleted = old_slots.len();
        for r in &old_ranges {
            self.maps.srcrange.delete(r)?;
        }
        st.ranges_deleted = old_ranges.len();

        // Removed services: entry first, then what it pointed at.
        let gone: Vec<SvcKey> = self
            .services
            .keys()
            .filter(|k| !want.contains_key(k))
            .copied()
            .collect();
        if !gone.is_empty() {
            self.maps.svc.delete_batch(&gone)?;
            st.services_deleted = gone.len();
            let mut slots = Vec::new();
            for k in &gone {
                let Some(s) = self.services.remove(k) else {
                    continue;
                };
                let id = s.val.svc_id;
                slots.extend((0..s.slots.len()).map(|i| SlotKey {
                    svc_id: id,
                    slot: s.val.slot_base + i as u32 + 1,
                }));
                for r in &s.ranges {
                    self.maps.srcrange.delete(r)?;
                }
                st.ranges_deleted += s.ranges.len();
                if s.has_maglev {
                    self.maps.maglev.delete(&id)?;
                }
                self.svc_ids.release(id);
            }
            self.maps.slot.delete_batch(&slots)?;
            st.slots_deleted += slots.len();
        }

        // 5. Backends no service has any more (active or terminating).
        let dead: Vec<(BeIdent, u32)> = self
            .backends
            .iter()
            .filter(|(ident, _)| !want_be.contains_key(ident))
            .map(|(ident, (id, _))| (*ident, *id))
            .collect();
        let ids: Vec<u32> = dead.iter().map(|(_, id)| *id).collect();
        self.maps.backend.delete_batch(&ids)?;
        for (ident, id) in dead {
            self.backends.remove(&ident);
            self.be_ids.release(id);
        }
        st.backends_deleted = ids.len();
        Ok(st)
    }

    fn commit_backends(
        &mut self,
        keys: &[u32],
        vals: &[BackendVal],
        idents: &HashMap<u32, BeIdent>,
    ) {
        for (id, v) in keys.iter().zip(vals) {
            if let Some(ident) = idents.get(id) {
                self.backends.insert(*ident, (*id, *v));
            }
        }
    }

    fn install_maglev(
        &self,
        svc_id: u32,
        service: &str,
        active: &[BackendAddr],
        ids: &[u32],
        size: u32,
    ) -> Result<(), WriteError> {
        let err = |source| WriteError::Maglev {
            service: service.to_string(),
            source,
        };
        let table = if active.is_empty() {
            vec![0; size as usize]
        } else {
            (self.cfg.maglev)(active, size)
        };
        if table.len() != size as usize || table.iter().any(|i| *i as usize >= ids.len().max(1)) {
            return Err(WriteError::Plan {
                service: service.to_string(),
                what: format!(
                    "Maglev table has {} entries or an index out of range, want {size}",
                    table.len()
                ),
            });
        }
        let inner_fd = bpf_sys::map_create(
            bpf_sys::BPF_MAP_TYPE_ARRAY,
            4,
            4,
            size,
            bpf_sys::BPF_F_INNER_MAP,
            "lb_maglev_in",
        )
        .map_err(err)?;
        let inner: TypedMap<u32, u32> = TypedMap::from_fd(inner_fd, "lb_maglev_v1 inner")?;
        let keys: Vec<u32> = (0..size).collect();
        let vals: Vec<u32> = table
            .iter()
            .map(|i| ids.get(*i as usize).copied().unwrap_or(0))
            .collect();
        inner.update_batch(&keys, &vals)?;
        bpf_sys::outer_update(self.maps.maglev.fd(), &svc_id, inner.fd()).map_err(err)?;
        Ok(())
    }
}
