//! Writes `ServicePlan`s into the BPF maps, make-before-break per service, touching only what
//! changed.
//!
//! The writer keeps an in-memory mirror of what the maps hold: per service entry (`SvcKey`) its
//! value, the backend ids of its slots, its regions of `lb_slot_v3` and its source ranges; per
//! frontend the plan last applied; per backend its id and how many services use it. A change is
//! computed against the mirror, so a one-service change costs the same at 100 services as at
//! 100,000. `apply(all)` skips every plan equal to the one last applied for its frontend;
//! `apply_changes(changed, removed)` does not even look at the others.
//!
//! Order of one commit:
//! 1. new backends are written into `lb_backend_v3` (mmapped: plain stores, nothing refers to
//!    their ids yet);
//! 2. each changed service entry gets a fresh region of `lb_slot_v3` with its active backend
//!    ids (and, for Maglev, another with its lookup table), also plain stores into memory no
//!    program reads; new source ranges are inserted;
//! 3. the service entries flip to their new regions (one batch; each entry flips atomically,
//!    so a service always points at complete regions of existing backends);
//! 4. removed service entries are deleted, then old source ranges;
//! 5. backend flags are brought up to date and backends no service uses any more are
//!    invalidated.
//!
//! Released regions and ids are reused only after `alloc::COOL_DOWN` (or a grace period), so
//! a program still reading an old service value never sees them rewritten.
//!
//! If a step fails, nothing that serves has been broken: before the flip everything written is
//! unreferenced and is undone; a flip that fails half-way leaves the unflipped services on their
//! previous regions, all of whose backends still exist; the error names the map and operation.
//!
//! A `Writer` built by [`Writer::adopt`] reads the pinned maps first (batch lookups and the
//! mmapped arrays), so an agent restarted with the same plans writes nothing. Backends found in
//! the maps are kept until the first full `apply` says which are still wanted. Adopting also
//! notes, per service entry, the (address, port) of its active backends in slot order: a plan
//! of the first `apply` that matches what the maps hold for its entries is claimed by comparing
//! it with that (no backend resolution, no new state), and only the others are resolved and
//! written.

mod alloc;
mod counters;
mod index;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::time::Instant;

use ipnet::IpNet;

pub use self::alloc::COOL_DOWN;
use self::alloc::{order_for, Block, Buddy, FxHashMap, Ids};
pub use self::counters::{read_counters, ServiceCounters};
use self::index::BackendIndex;
use crate::bpf_sys::{self, MapError, MmapArray, TypedMap};
use crate::maps::*;
use crate::plan::{
    BackendAddr, Frontend, FrontendKind, NoBackends, Protocol, Selection, ServicePlan,
};

/// Computes a Maglev lookup table: for each of `table_size` entries, an index into `backends`.
/// The planner's Maglev implementation is plugged in here.
pub type MaglevFn = fn(backends: &[BackendAddr], table_size: u32) -> Vec<u32>;

/// The planner's Maglev (`crate::maglev`), as the writer's default.
pub fn planner_maglev(backends: &[BackendAddr], table_size: u32) -> Vec<u32> {
    // An invalid size was rejected before; an error here shows up as a short table, which
    // the writer reports.
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

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Map(#[from] MapError),
    #[error("service {service}: {what}")]
    Plan { service: String, what: String },
    #[error("{what} is full ({detail})")]
    Full { what: &'static str, detail: String },
    #[error("adopting the pinned maps: {0}")]
    Adopt(String),
    #[error("counting CPUs for per-CPU maps: {0}")]
    Cpus(#[source] std::io::Error),
}

/// What a commit wrote (all zero: nothing changed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyStats {
    pub backends_written: usize,
    pub backends_deleted: usize,
    pub services_written: usize,
    pub services_deleted: usize,
    /// Slot entries written into fresh regions (active backends, not Maglev tables).
    pub slots_written: usize,
    /// Slot entries of regions released.
    pub slots_deleted: usize,
    pub maglev_tables: usize,
    pub ranges_written: usize,
    pub ranges_deleted: usize,
    /// Frontends of the first `apply` after adopting whose service entries already held what
    /// their plan wants: claimed by comparison, nothing resolved or written (not a write).
    pub frontends_adopted: usize,
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
    /// `lb_slot_v3`, mmapped (see [`Maps::slot_ids`]).
    pub slots: MmapArray<Slots>,
    /// `lb_backend_v3`, mmapped, indexed by backend id.
    pub backends: MmapArray<BackendVal>,
    pub counters: TypedMap<u32, SvcCounters>,
    pub srcrange: TypedMap<SrcRangeKey, u8>,
}

impl Maps {
    pub fn open(pin_dir: &Path) -> Result<Self, MapError> {
        Self::open_layout(pin_dir, crate::maps::LAYOUT_VERSION)
    }

    /// Opens the maps of layout `version` (`lb_svc_v<version>`...); their structs must be this
    /// layout's (the sizes are checked). Upgrade tests program an older release's maps with it.
    pub fn open_layout(pin_dir: &Path, version: u32) -> Result<Self, MapError> {
        let ours = format!("_v{}", crate::maps::LAYOUT_VERSION);
        let name = |n: &str| n.replace(&ours, &format!("_v{version}"));
        let p = |n: &str| pin_dir.join(name(n));
        Ok(Maps {
            svc: TypedMap::open_pinned(&p(names::SVC), &name(names::SVC))?,
            slots: MmapArray::open_pinned(&p(names::SLOT), &name(names::SLOT))?,
            backends: MmapArray::open_pinned(&p(names::BACKEND), &name(names::BACKEND))?,
            counters: TypedMap::open_pinned(&p(names::COUNTERS), &name(names::COUNTERS))?,
            srcrange: TypedMap::open_pinned(&p(names::SRCRANGE), &name(names::SRCRANGE))?,
        })
    }

    /// `lb_slot_v3` as the flat array of backend ids the programs index.
    pub fn slot_ids(&self) -> &[u32] {
        let s = self.slots.as_slice();
        // SAFETY: Slots is repr(C) [u32; SLOTS_PER_ENTRY] with no padding (layout asserts).
        unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<u32>(), s.len() * SLOTS_PER_ENTRY) }
    }

    fn slot_ids_mut(&mut self) -> &mut [u32] {
        let s = self.slots.as_mut_slice();
        // SAFETY: as in slot_ids.
        unsafe {
            std::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<u32>(), s.len() * SLOTS_PER_ENTRY)
        }
    }
}

/// What the maps hold for one service entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyState {
    /// The frontend whose plan produced it; None after adoption until a plan claims it.
    owner: Option<Frontend>,
    val: SvcVal,
    /// Backend ids of the live slots, in slot order.
    active: Vec<u32>,
    /// Backend ids the service keeps alive for established flows (known after a plan).
    terminating: Vec<u32>,
    region: Option<Block>,
    maglev: Option<Block>,
    /// Sorted.
    ranges: Vec<SrcRangeKey>,
}

#[derive(Debug)]
struct FeState {
    /// The plan last applied completely; None when the last attempt failed part-way.
    plan: Option<ServicePlan>,
    keys: Vec<SvcKey>,
    epoch: u64,
}

/// Per backend id: how the services in the mirror use it.
#[derive(Debug, Clone, Copy, Default)]
struct BeMeta {
    active_refs: u32,
    refs: u32,
    local: bool,
    /// Found when adopting: kept until the first full apply decides.
    keep: bool,
    /// Its (address, port), for the index (`Writer::backends`).
    ident: BeIdent,
}

/// The (address, port) of backend `id` as the writer knows it (the index's key lookup).
fn ident_at(meta: &[BeMeta], id: u32) -> BeIdent {
    meta.get(id as usize)
        .map_or_else(Default::default, |m| m.ident)
}

type BeIdent = (LbAddr, u16);

/// Drops the references a replaced or deleted service entry held on its backends (active slots
/// and terminating ones), noting each id in `touched` for the caller's cleanup pass.
fn unref_backends(meta: &mut [BeMeta], old: &KeyState, touched: &mut Vec<u32>) {
    for id in old.active.iter() {
        let m = &mut meta[*id as usize];
        m.active_refs = m.active_refs.saturating_sub(1);
        m.refs = m.refs.saturating_sub(1);
        touched.push(*id);
    }
    for id in old.terminating.iter() {
        let m = &mut meta[*id as usize];
        m.refs = m.refs.saturating_sub(1);
        touched.push(*id);
    }
}

#[derive(Debug)]
pub struct Writer {
    maps: Maps,
    cfg: WriterConfig,
    ncpus: usize,
    keys: FxHashMap<SvcKey, KeyState>,
    fes: FxHashMap<Frontend, FeState>,
    /// Backend ids by (address, port).
    backends: BackendIndex,
    be_meta: Vec<BeMeta>,
    regions: Buddy,
    be_ids: Ids,
    svc_ids: Ids,
    /// Service ids whose counters must be zeroed before the id is used again.
    dirty_counters: BTreeSet<u32>,
    epoch: u64,
    /// Some service entry has no owner (adopted, or its delete failed).
    ownerless: bool,
    /// Backends adopted from the maps are kept until a full apply succeeds.
    adopted_backends: bool,
    /// Per adopted service entry no plan has claimed yet: its active backends as the maps hold
    /// them, in slot order (dropped after the first full apply that succeeds).
    adopted: FxHashMap<SvcKey, Vec<BeIdent>>,
    /// A buffer `claim_adopted` reuses.
    scratch: Vec<BeIdent>,
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

fn svc_key(addr: IpAddr, port: u16, proto: Protocol) -> SvcKey {
    SvcKey {
        addr: LbAddr::from_ip(addr),
        port_be: port.to_be(),
        proto: proto_num(proto),
        pad: 0,
    }
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

/// A plan's `lb_svc_val.flags` and Maglev table size (0: none). Err: an invalid table size.
fn plan_flags(plan: &ServicePlan) -> Result<(u16, u32), String> {
    let (mut flags, maglev_size) = match plan.selection {
        Selection::Random => (0, 0),
        Selection::Maglev { table_size } => {
            crate::maglev::validate_table_size(table_size).map_err(|e| e.to_string())?;
            (SVC_F_MAGLEV, table_size)
        }
    };
    if plan.affinity_timeout.is_some() {
        flags |= SVC_F_AFFINITY;
    }
    if !plan.source_ranges.is_empty() {
        flags |= SVC_F_SRC_RANGE;
    }
    if plan.no_backends == NoBackends::Drop {
        flags |= SVC_F_DROP_EMPTY;
    }
    Ok((flags, maglev_size))
}

/// One plan, validated and resolved into service entries.
struct Want<'a> {
    plan: &'a ServicePlan,
    keys: Vec<SvcKey>,
    /// Sorted by (addr, port), deduplicated.
    active: Vec<&'a BackendAddr>,
    /// Deduplicated, without the active ones.
    terminating: Vec<&'a BackendAddr>,
    flags: u16,
    maglev_size: u32,
}

/// A service entry's next state, before it is committed.
struct Next {
    key: SvcKey,
    want: usize,
    state: KeyState,
    /// The entry's value must be (re)written in the map.
    flip: bool,
    new_svc_id: bool,
    ranges_added: Vec<SrcRangeKey>,
}

/// The parts of a service entry's current state `prepare` compares with.
#[derive(Clone, Copy)]
struct Cur {
    val: SvcVal,
    slots_same: bool,
    region: Option<Block>,
    maglev: Option<Block>,
}

/// What to undo if the commit stops before the flip.
#[derive(Default)]
struct Undo {
    /// Ids of backends written (their (address, port) is in `be_meta`).
    new_backends: Vec<u32>,
    blocks: Vec<Block>,
    svc_ids: Vec<u32>,
}

impl Writer {
    /// Opens the pinned maps under `pin_dir` and reads what they hold.
    pub fn open(pin_dir: &Path, cfg: WriterConfig) -> Result<Self, WriteError> {
        Self::adopt(Maps::open(pin_dir)?, cfg)
    }

    /// Takes over maps (possibly written by an earlier agent): reads service entries, their
    /// slot regions, backends and source ranges so the next `apply` writes only differences.
    /// Counters of unused service ids below the highest in use are zeroed.
    pub fn adopt(maps: Maps, cfg: WriterConfig) -> Result<Self, WriteError> {
        let ncpus = bpf_sys::possible_cpus().map_err(WriteError::Cpus)?;
        let slot_len = maps.slot_ids().len();
        let mut by_id: FxHashMap<u32, SvcKey> = FxHashMap::default();
        let mut keys: FxHashMap<SvcKey, KeyState> = FxHashMap::default();
        let mut used_blocks = Vec::new();
        let bad = |k: &SvcKey, what: String| {
            WriteError::Adopt(format!(
                "service {}:{} proto {}: {what}",
                k.addr.to_ip(),
                u16::from_be(k.port_be),
                k.proto
            ))
        };
        for (k, v) in maps.svc.entries_batch()? {
            let region = (v.count > 0).then_some(Block {
                off: v.slot_base,
                order: order_for(v.count as usize),
            });
            let maglev = (v.flags & SVC_F_MAGLEV != 0 && v.maglev_size > 0).then_some(Block {
                off: v.maglev_base,
                order: order_for(v.maglev_size as usize),
            });
            for b in region.iter().chain(&maglev) {
                if b.range().end > slot_len {
                    return Err(bad(
                        &k,
                        format!("region {}+{} is past the slots", b.off, b.len()),
                    ));
                }
                used_blocks.push(*b);
            }
            let active = region.map_or(Vec::new(), |r| {
                maps.slot_ids()[r.off as usize..r.off as usize + v.count as usize].to_vec()
            });
            if by_id.insert(v.svc_id, k).is_some() || v.svc_id == 0 {
                return Err(bad(&k, format!("service id {} is used twice", v.svc_id)));
            }
            keys.insert(
                k,
                KeyState {
                    owner: None,
                    val: v,
                    active,
                    terminating: Vec::new(),
                    region,
                    maglev,
                    ranges: Vec::new(),
                },
            );
        }
        for r in maps.srcrange.keys()? {
            if let Some(ks) = by_id.get(&r.svc_id).and_then(|k| keys.get_mut(k)) {
                ks.ranges.push(r);
            }
        }
        for ks in keys.values_mut() {
            ks.ranges.sort();
        }
        let regions = Buddy::with_used(slot_len as u32, used_blocks)
            .map_err(|e| WriteError::Adopt(format!("{}: {e}", names::SLOT)))?;

        let be_len = maps.backends.len();
        let mut be_meta = vec![BeMeta::default(); be_len];
        let be_arr = maps.backends.as_slice();
        let n_valid = be_arr
            .iter()
            .skip(1)
            .filter(|v| v.flags & BE_F_VALID != 0)
            .count();
        let mut backends = BackendIndex::default();
        backends.reserve(n_valid, |i| ident_at(&be_meta, i));
        let mut be_used = Vec::with_capacity(n_valid);
        for (id, v) in be_arr.iter().enumerate().skip(1) {
            if v.flags & BE_F_VALID != 0 {
                let ident = (v.addr, u16::from_be(v.port_be));
                be_meta[id] = BeMeta {
                    local: v.flags & BE_F_LOCAL != 0,
                    keep: true,
                    ident,
                    ..Default::default()
                };
                // The same backend twice (not written by us): the first id is the index's.
                if let Err(slot) = backends.find_or_slot(&ident, |i| ident_at(&be_meta, i)) {
                    slot.insert(id as u32);
                }
                be_used.push(id as u32);
            }
        }
        let mut adopted: FxHashMap<SvcKey, Vec<BeIdent>> = FxHashMap::default();
        adopted.reserve(keys.len());
        for (k, ks) in &keys {
            for id in &ks.active {
                if let Some(m) = be_meta.get_mut(*id as usize) {
                    m.active_refs += 1;
                    m.refs += 1;
                }
            }
            // An entry pointing at a backend that is not there is left to the full path.
            let idents: Option<Vec<BeIdent>> = ks
                .active
                .iter()
                .map(|id| {
                    be_arr
                        .get(*id as usize)
                        .filter(|v| v.flags & BE_F_VALID != 0 && *id != 0)
                        .map(|v| (v.addr, u16::from_be(v.port_be)))
                })
                .collect();
            if let Some(i) = idents {
                adopted.insert(*k, i);
            }
        }
        let svc_used: Vec<u32> = keys.values().map(|k| k.val.svc_id).collect();
        // Counters are zeroed when a service is deleted; ids below the highest in use that are
        // free are zeroed again here in case the previous agent stopped in between.
        let max_used = svc_used.iter().copied().max().unwrap_or(0);
        let free_below: Vec<u32> = (1..max_used).filter(|i| !by_id.contains_key(i)).collect();
        maps.counters.percpu_zero(&free_below, ncpus)?;
        Ok(Writer {
            regions,
            be_ids: Ids::with_used(be_len as u32, &be_used),
            svc_ids: Ids::with_used(u32::MAX, &svc_used),
            maps,
            cfg,
            ncpus,
            keys,
            fes: FxHashMap::default(),
            backends,
            be_meta,
            dirty_counters: BTreeSet::new(),
            epoch: 0,
            ownerless: true,
            adopted_backends: true,
            adopted,
            scratch: Vec::new(),
        })
    }

    pub fn maps(&self) -> &Maps {
        &self.maps
    }

    /// The backend id the maps use for `addr:port`, if it is there.
    pub fn backend_id(&self, addr: IpAddr, port: u16) -> Option<u32> {
        self.backends.get(&(LbAddr::from_ip(addr), port), |i| {
            ident_at(&self.be_meta, i)
        })
    }

    /// The service id of a frontend, if it is there.
    pub fn service_id(&self, addr: IpAddr, port: u16, proto: Protocol) -> Option<u32> {
        self.keys
            .get(&svc_key(addr, port, proto))
            .map(|s| s.val.svc_id)
    }

    pub fn service_count(&self) -> usize {
        self.keys.len()
    }

    /// Slots of `lb_slot_v3` in regions that are allocated (live or cooling down).
    pub fn slots_in_use(&self) -> usize {
        self.regions.in_use()
    }

    /// Makes the maps serve exactly `plans` (one per frontend): frontends not among them are
    /// removed. Plans equal to the last applied for their frontend cost a comparison.
    pub fn apply(&mut self, plans: &[ServicePlan]) -> Result<ApplyStats, WriteError> {
        self.epoch += 1;
        let epoch = self.epoch;
        let mut changes: Vec<(Frontend, Option<&ServicePlan>)> = Vec::new();
        let mut fresh: std::collections::HashSet<Frontend, alloc::FxBuild> = Default::default();
        self.fes.reserve(plans.len().saturating_sub(self.fes.len()));
        let mut adopted = 0;
        for (i, p) in plans.iter().enumerate() {
            match self.fes.get_mut(&p.frontend) {
                Some(fe) if fe.epoch == epoch => {
                    return Err(WriteError::Plan {
                        service: p.service.clone(),
                        what: format!(
                            "frontend {}:{} {:?} is planned twice",
                            p.frontend.addr, p.frontend.port, p.frontend.proto
                        ),
                    })
                }
                Some(fe) if fe.plan.as_ref() == Some(p) => fe.epoch = epoch,
                Some(fe) => {
                    fe.epoch = epoch;
                    changes.push((p.frontend, Some(p)));
                }
                None => {
                    if fresh.is_empty() {
                        // At most the rest are new: one allocation, no rehashing.
                        fresh.reserve(plans.len() - i);
                    }
                    if !fresh.insert(p.frontend) {
                        return Err(WriteError::Plan {
                            service: p.service.clone(),
                            what: format!(
                                "frontend {}:{} {:?} is planned twice",
                                p.frontend.addr, p.frontend.port, p.frontend.proto
                            ),
                        });
                    }
                    if !self.adopted.is_empty() && self.claim_adopted(p, epoch) {
                        adopted += 1;
                    } else {
                        changes.push((p.frontend, Some(p)));
                    }
                }
            }
        }
        for (fe, st) in &self.fes {
            if st.epoch != epoch {
                changes.push((*fe, None));
            }
        }
        let mut st = self.commit(changes, true)?;
        self.adopted = FxHashMap::default();
        st.frontends_adopted = adopted;
        Ok(st)
    }

    /// Claims the adopted service entries of `plan`'s frontend without resolving it, when they
    /// hold exactly what the plan would write (the same value, active backends in the same
    /// slots, the same source ranges): then the plan costs a comparison, as an unchanged plan
    /// does. Returns false (nothing changed) otherwise; the plan then takes the full path,
    /// which also reports what is wrong with it.
    fn claim_adopted(&mut self, plan: &ServicePlan, epoch: u64) -> bool {
        let fe = &plan.frontend;
        let Ok(keys) = self.frontend_keys(fe) else {
            return false;
        };
        if keys.is_empty()
            || plan
                .active
                .iter()
                .chain(&plan.terminating)
                .any(|b| b.addr.is_ipv4() != fe.addr.is_ipv4())
        {
            return false;
        }
        let Ok((flags, maglev_size)) = plan_flags(plan) else {
            return false;
        };
        let mut active = std::mem::take(&mut self.scratch);
        active.clear();
        active.extend(plan.active.iter().map(ident));
        active.sort_unstable();
        active.dedup();
        let claimed = self.claim_with(plan, keys, &active, flags, maglev_size, epoch);
        self.scratch = active;
        claimed
    }

    fn claim_with(
        &mut self,
        plan: &ServicePlan,
        keys: Vec<SvcKey>,
        active: &[BeIdent],
        flags: u16,
        maglev_size: u32,
        epoch: u64,
    ) -> bool {
        let fe = &plan.frontend;
        let mut term_ids: Vec<u32> = Vec::new();
        if !plan.terminating.is_empty() {
            let mut term: Vec<BeIdent> = plan
                .terminating
                .iter()
                .map(ident)
                .filter(|t| active.binary_search(t).is_err())
                .collect();
            term.sort_unstable();
            term.dedup();
            for t in &term {
                match self.backends.get(t, |i| ident_at(&self.be_meta, i)) {
                    Some(id) => term_ids.push(id),
                    None => return false,
                }
            }
        }
        for k in &keys {
            let (Some(ks), Some(idents)) = (self.keys.get(k), self.adopted.get(k)) else {
                return false;
            };
            let v = &ks.val;
            let maglev_same = if maglev_size == 0 {
                ks.maglev.is_none() && v.maglev_size == 0 && v.maglev_base == 0
            } else {
                ks.maglev.is_some() && v.maglev_size == maglev_size
            };
            if ks.owner.is_some()
                || idents.as_slice() != active
                || v.count as usize != active.len()
                || active.is_empty() != ks.region.is_none()
                || (ks.region.is_none() && v.slot_base != 0)
                || !maglev_same
                || v.flags != flags
                || v.kind != kind_num(fe.kind)
                || v.affinity_timeout_s != plan.affinity_timeout.unwrap_or(0)
                || v.pad != 0
            {
                return false;
            }
            if plan.source_ranges.is_empty() != ks.ranges.is_empty() {
                return false;
            }
            if !plan.source_ranges.is_empty() {
                let mut ranges: Vec<SrcRangeKey> = plan
                    .source_ranges
                    .iter()
                    .map(|n| srcrange_key(v.svc_id, n))
                    .collect();
                ranges.sort();
                ranges.dedup();
                if ranges != ks.ranges {
                    return false;
                }
            }
        }
        for k in &keys {
            self.adopted.remove(k);
            if let Some(ks) = self.keys.get_mut(k) {
                ks.owner = Some(*fe);
                ks.terminating = term_ids.clone();
            }
            for id in &term_ids {
                self.be_meta[*id as usize].refs += 1;
            }
        }
        self.fes.insert(
            *fe,
            FeState {
                plan: Some(plan.clone()),
                keys,
                epoch,
            },
        );
        true
    }

    /// Applies only these changes: `changed` plans replace (or add) the plan of their
    /// frontend, `removed` frontends go away; every other frontend is left as it is.
    pub fn apply_changes(
        &mut self,
        changed: &[ServicePlan],
        removed: &[Frontend],
    ) -> Result<ApplyStats, WriteError> {
        let mut changes: Vec<(Frontend, Option<&ServicePlan>)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for p in changed {
            if !seen.insert(p.frontend) {
                return Err(WriteError::Plan {
                    service: p.service.clone(),
                    what: format!(
                        "frontend {}:{} {:?} is planned twice",
                        p.frontend.addr, p.frontend.port, p.frontend.proto
                    ),
                });
            }
            if self.fes.get(&p.frontend).and_then(|f| f.plan.as_ref()) != Some(p) {
                changes.push((p.frontend, Some(p)));
            }
        }
        for f in removed {
            if seen.insert(*f) {
                changes.push((*f, None));
            }
        }
        self.commit(changes, false)
    }

    /// The service entries of a frontend: one, or one per node address for a NodePort on the
    /// unspecified address. Err: what is wrong with it.
    fn frontend_keys(&self, fe: &Frontend) -> Result<Vec<SvcKey>, String> {
        if fe.addr.is_unspecified() && fe.kind == FrontendKind::NodePort {
            Ok(self
                .cfg
                .node_addrs
                .iter()
                .filter(|a| a.is_ipv4() == fe.addr.is_ipv4())
                .map(|a| svc_key(*a, fe.port, fe.proto))
                .collect())
        } else if fe.addr.is_unspecified() {
            Err(format!("frontend {}:{} has no address", fe.addr, fe.port))
        } else {
            Ok(vec![svc_key(fe.addr, fe.port, fe.proto)])
        }
    }

    fn want<'a>(&self, plan: &'a ServicePlan) -> Result<Want<'a>, WriteError> {
        let bad = |what: String| WriteError::Plan {
            service: plan.service.clone(),
            what,
        };
        let fe = &plan.frontend;
        let keys = self.frontend_keys(fe).map_err(bad)?;
        for b in plan.active.iter().chain(&plan.terminating) {
            if b.addr.is_ipv4() != fe.addr.is_ipv4() {
                return Err(bad(format!(
                    "backend {}:{} is not of frontend {}'s address family",
                    b.addr, b.port, fe.addr
                )));
            }
        }
        let (flags, maglev_size) = plan_flags(plan).map_err(bad)?;
        let mut active: Vec<&BackendAddr> = plan.active.iter().collect();
        active.sort_by_key(|b| (b.addr, b.port));
        active.dedup_by_key(|b| (b.addr, b.port));
        let mut terminating: Vec<&BackendAddr> = plan
            .terminating
            .iter()
            .filter(|t| {
                active
                    .binary_search_by_key(&(t.addr, t.port), |b| (b.addr, b.port))
                    .is_err()
            })
            .collect();
        terminating.sort_by_key(|b| (b.addr, b.port));
        terminating.dedup_by_key(|b| (b.addr, b.port));
        Ok(Want {
            plan,
            keys,
            active,
            terminating,
            flags,
            maglev_size,
        })
    }

    fn backend_flags(m: &BeMeta) -> u8 {
        let mut f = BE_F_VALID;
        if m.local {
            f |= BE_F_LOCAL;
        }
        if m.active_refs == 0 {
            f |= BE_F_TERMINATING;
        }
        f
    }

    /// The id of backend `b`, written into an unused id first if the maps do not have it
    /// (one probe of the index either way).
    fn resolve_backend(
        &mut self,
        b: &BackendAddr,
        active: bool,
        undo: &mut Undo,
        st: &mut ApplyStats,
    ) -> Result<u32, WriteError> {
        let n_backends = self.backends.len();
        let key = ident(b);
        let slot = match self
            .backends
            .find_or_slot(&key, |i| ident_at(&self.be_meta, i))
        {
            Ok(id) => return Ok(id),
            Err(slot) => slot,
        };
        let Some(id) = self.be_ids.alloc() else {
            return Err(WriteError::Full {
                what: names::BACKEND,
                detail: format!(
                    "{n_backends} backends, {} ids cooling down",
                    self.be_ids.cooling()
                ),
            });
        };
        let mut flags = BE_F_VALID;
        if b.local {
            flags |= BE_F_LOCAL;
        }
        if !active {
            flags |= BE_F_TERMINATING;
        }
        self.maps.backends.as_mut_slice()[id as usize] = BackendVal {
            addr: key.0,
            port_be: b.port.to_be(),
            flags,
            pad: 0,
            pad2: 0,
        };
        self.be_meta[id as usize] = BeMeta {
            local: b.local,
            ident: key,
            ..Default::default()
        };
        slot.insert(id);
        undo.new_backends.push(id);
        st.backends_written += 1;
        Ok(id)
    }

    fn alloc_block(&mut self, n: usize, now: Instant) -> Result<Block, WriteError> {
        let order = order_for(n);
        if let Some(b) = self.regions.alloc(order) {
            return Ok(b);
        }
        // Full with regions cooling down: once every program running now has finished,
        // they are safe to reuse.
        if self.regions.cooling() > 0 && bpf_sys::wait_for_programs().is_ok() {
            self.regions.ripen(now);
            if let Some(b) = self.regions.alloc(order) {
                return Ok(b);
            }
        }
        Err(WriteError::Full {
            what: names::SLOT,
            detail: format!(
                "no free region of {} slots; {} of {} slots in use",
                1usize << order,
                self.regions.in_use(),
                self.regions.capacity()
            ),
        })
    }

    fn rollback(&mut self, undo: Undo, ranges: &[SrcRangeKey]) {
        for r in ranges {
            let _ = self.maps.srcrange.delete(r);
        }
        for id in undo.new_backends.into_iter().rev() {
            self.maps
                .backends
                .store_byte(id as usize, BACKEND_FLAGS_OFFSET, 0);
            let ident = ident_at(&self.be_meta, id);
            self.backends.remove(&ident, |i| ident_at(&self.be_meta, i));
            self.be_meta[id as usize] = BeMeta::default();
            self.be_ids.free_now(id);
        }
        for b in undo.blocks {
            self.regions.free_now(b);
        }
        for id in undo.svc_ids {
            self.svc_ids.free_now(id);
        }
    }

    /// Computes the next state of every service entry of `wants` and writes everything that
    /// comes before the flip (backends, slot regions, Maglev tables): all of it unreferenced.
    fn prepare(
        &mut self,
        wants: &[Want<'_>],
        now: Instant,
        undo: &mut Undo,
        st: &mut ApplyStats,
    ) -> Result<Vec<Next>, WriteError> {
        // 1. Backends: the active ones of every plan first, so a backend that one plan
        // keeps terminating and another uses is written active.
        let n_be: usize = wants
            .iter()
            .map(|w| w.active.len() + w.terminating.len())
            .sum();
        self.backends.reserve(n_be, |i| ident_at(&self.be_meta, i));
        // An upper bound (address space only: the pages are touched as it fills).
        undo.new_backends.reserve(n_be);
        self.keys.reserve(wants.len());
        let mut ids: Vec<(Vec<u32>, Vec<u32>)> = Vec::with_capacity(wants.len());
        for w in wants {
            let mut active = Vec::with_capacity(w.active.len());
            for b in &w.active {
                active.push(self.resolve_backend(b, true, undo, st)?);
            }
            ids.push((active, Vec::new()));
        }
        for (w, (_, term)) in wants.iter().zip(ids.iter_mut()) {
            term.reserve_exact(w.terminating.len());
            for b in &w.terminating {
                term.push(self.resolve_backend(b, false, undo, st)?);
            }
        }
        // 2. Regions and values.
        let mut out = Vec::with_capacity(wants.len());
        for (wi, (w, (mut active, mut terminating))) in wants.iter().zip(ids).enumerate() {
            let mut owned_active: Option<Vec<BackendAddr>> = None;
            for (ki, key) in w.keys.iter().enumerate() {
                let last = ki + 1 == w.keys.len();
                let cur = self.keys.get(key).map(|c| Cur {
                    val: c.val,
                    slots_same: c.active == active,
                    region: c.region,
                    maglev: c.maglev,
                });
                let (svc_id, new_svc_id) = match cur {
                    Some(c) => (c.val.svc_id, false),
                    None => {
                        let id = self.svc_ids.alloc().ok_or_else(|| WriteError::Full {
                            what: "service ids",
                            detail: "every 32-bit id is taken".into(),
                        })?;
                        undo.svc_ids.push(id);
                        (id, true)
                    }
                };
                let slots_same = cur.is_some_and(|c| c.slots_same);
                let region = match cur {
                    Some(c) if slots_same => c.region,
                    _ if active.is_empty() => None,
                    _ => {
                        let b = self.alloc_block(active.len(), now)?;
                        undo.blocks.push(b);
                        let off = b.off as usize;
                        self.maps.slot_ids_mut()[off..off + active.len()].copy_from_slice(&active);
                        st.slots_written += active.len();
                        Some(b)
                    }
                };
                let maglev = if w.maglev_size == 0 {
                    None
                } else {
                    match cur {
                        Some(c)
                            if slots_same
                                && c.maglev.is_some()
                                && c.val.maglev_size == w.maglev_size =>
                        {
                            c.maglev
                        }
                        _ => {
                            let size = w.maglev_size as usize;
                            let table = if active.is_empty() {
                                vec![0; size]
                            } else {
                                let bs = owned_active.get_or_insert_with(|| {
                                    w.active.iter().map(|b| (*b).clone()).collect()
                                });
                                (self.cfg.maglev)(bs, w.maglev_size)
                            };
                            if table.len() != size
                                || table.iter().any(|i| *i as usize >= active.len().max(1))
                            {
                                return Err(WriteError::Plan {
                                    service: w.plan.service.clone(),
                                    what: format!(
                                        "Maglev table has {} entries or an index out of range, \
                                         want {size}",
                                        table.len()
                                    ),
                                });
                            }
                            let b = self.alloc_block(size, now)?;
                            undo.blocks.push(b);
                            let off = b.off as usize;
                            let dst = &mut self.maps.slot_ids_mut()[off..off + size];
                            for (d, i) in dst.iter_mut().zip(&table) {
                                *d = active.get(*i as usize).copied().unwrap_or(0);
                            }
                            st.maglev_tables += 1;
                            Some(b)
                        }
                    }
                };
                let val = SvcVal {
                    svc_id,
                    count: active.len() as u32,
                    slot_base: region.map_or(0, |b| b.off),
                    affinity_timeout_s: w.plan.affinity_timeout.unwrap_or(0),
                    maglev_base: maglev.map_or(0, |b| b.off),
                    maglev_size: if maglev.is_some() { w.maglev_size } else { 0 },
                    flags: w.flags,
                    kind: kind_num(w.plan.frontend.kind),
                    pad: 0,
                };
                let mut ranges: Vec<SrcRangeKey> = w
                    .plan
                    .source_ranges
                    .iter()
                    .map(|n| srcrange_key(svc_id, n))
                    .collect();
                ranges.sort();
                ranges.dedup();
                let cur_ranges = self.keys.get(key).map(|c| c.ranges.as_slice());
                let ranges_added: Vec<SrcRangeKey> = ranges
                    .iter()
                    .filter(|r| cur_ranges.is_none_or(|c| c.binary_search(r).is_err()))
                    .copied()
                    .collect();
                let state = KeyState {
                    owner: Some(w.plan.frontend),
                    val,
                    // The last entry takes the ids, the others copy them.
                    active: if last {
                        std::mem::take(&mut active)
                    } else {
                        active.clone()
                    },
                    terminating: if last {
                        std::mem::take(&mut terminating)
                    } else {
                        terminating.clone()
                    },
                    region,
                    maglev,
                    ranges,
                };
                if self.keys.get(key) == Some(&state) {
                    continue;
                }
                out.push(Next {
                    key: *key,
                    want: wi,
                    flip: cur.is_none_or(|c| c.val != val),
                    new_svc_id,
                    ranges_added,
                    state,
                });
            }
        }
        Ok(out)
    }

    fn commit(
        &mut self,
        changes: Vec<(Frontend, Option<&ServicePlan>)>,
        full: bool,
    ) -> Result<ApplyStats, WriteError> {
        let now = Instant::now();
        if let Some(before) = now.checked_sub(COOL_DOWN) {
            self.regions.ripen(before);
            self.be_ids.ripen(before);
            self.svc_ids.ripen(before);
        }
        let mut st = ApplyStats::default();
        if changes.is_empty() && !full {
            return Ok(st);
        }

        // 0. Resolve and check the plans; nothing is written if one is bad.
        let changing: std::collections::HashSet<Frontend, alloc::FxBuild> =
            changes.iter().map(|(f, _)| *f).collect();
        let mut wants = Vec::with_capacity(changes.len());
        for (_, p) in &changes {
            if let Some(p) = p {
                wants.push(self.want(p)?);
            }
        }
        let mut claimed: FxHashMap<SvcKey, usize> = FxHashMap::default();
        claimed.reserve(wants.len());
        for (wi, w) in wants.iter().enumerate() {
            for k in &w.keys {
                let other = match claimed.insert(*k, wi) {
                    Some(o) => Some(wants[o].plan.service.clone()),
                    None => self
                        .keys
                        .get(k)
                        .and_then(|ks| ks.owner)
                        .filter(|o| *o != w.plan.frontend && !changing.contains(o))
                        .map(|o| {
                            self.fes
                                .get(&o)
                                .and_then(|f| f.plan.as_ref())
                                .map_or_else(|| format!("{o:?}"), |p| p.service.clone())
                        }),
                };
                if let Some(other) = other {
                    return Err(WriteError::Plan {
                        service: w.plan.service.clone(),
                        what: format!(
                            "frontend {}:{} proto {} is also planned by service {other}",
                            k.addr.to_ip(),
                            u16::from_be(k.port_be),
                            k.proto
                        ),
                    });
                }
            }
        }

        // 1-2. Everything before the flip.
        let mut undo = Undo::default();
        let mut nexts = match self.prepare(&wants, now, &mut undo, &mut st) {
            Ok(n) => n,
            Err(e) => {
                self.rollback(undo, &[]);
                return Err(e);
            }
        };
        let zero: Vec<u32> = nexts
            .iter()
            .filter(|n| n.new_svc_id && self.dirty_counters.contains(&n.state.val.svc_id))
            .map(|n| n.state.val.svc_id)
            .collect();
        if let Err(e) = self.maps.counters.percpu_zero(&zero, self.ncpus) {
            self.rollback(undo, &[]);
            return Err(e.into());
        }
        for id in &zero {
            self.dirty_counters.remove(id);
        }
        let mut added = Vec::new();
        for n in &nexts {
            for r in &n.ranges_added {
                if let Err(e) = self.maps.srcrange.update(r, &1, bpf_sys::BPF_ANY) {
                    self.rollback(undo, &added);
                    return Err(e.into());
                }
                added.push(*r);
            }
        }
        st.ranges_written = added.len();

        // 3. Flip.
        let flip_keys: Vec<SvcKey> = nexts.iter().filter(|n| n.flip).map(|n| n.key).collect();
        let flip_vals: Vec<SvcVal> = nexts
            .iter()
            .filter(|n| n.flip)
            .map(|n| n.state.val)
            .collect();
        let flip = self.maps.svc.update_batch(&flip_keys, &flip_vals);
        let flipped = match &flip {
            Ok(()) => flip_keys.len(),
            Err(MapError::Batch { done, .. }) => *done,
            Err(_) => 0,
        };
        st.services_written = flipped;
        let mut first_err: Option<WriteError> = flip.err().map(Into::into);

        // Commit what flipped (and what needed no flip); undo the rest.
        let mut touched: Vec<u32> = Vec::with_capacity(undo.new_backends.len());
        let mut failed_wants = vec![false; wants.len()];
        let mut old_ranges: Vec<SrcRangeKey> = Vec::new();
        let mut flip_i = 0;
        for n in nexts.drain(..) {
            let ok = if n.flip {
                flip_i += 1;
                flip_i <= flipped
            } else {
                true
            };
            let cur = self.keys.get(&n.key);
            if !ok {
                failed_wants[n.want] = true;
                for b in [n.state.region, n.state.maglev].into_iter().flatten() {
                    if cur.is_none_or(|c| c.region != Some(b) && c.maglev != Some(b)) {
                        self.regions.free_now(b);
                    }
                }
                if n.new_svc_id {
                    self.svc_ids.free_now(n.state.val.svc_id);
                }
                for r in &n.ranges_added {
                    let _ = self.maps.srcrange.delete(r);
                }
                continue;
            }
            for id in n.state.active.iter() {
                let m = &mut self.be_meta[*id as usize];
                m.active_refs += 1;
                m.refs += 1;
                touched.push(*id);
            }
            for id in n.state.terminating.iter() {
                self.be_meta[*id as usize].refs += 1;
                touched.push(*id);
            }
            let succ = (n.state.region, n.state.maglev);
            if let Some(old) = self.keys.insert(n.key, n.state) {
                self.release_key_parts(&old, Some(succ), now, &mut st);
                unref_backends(&mut self.be_meta, &old, &mut touched);
                let new_ranges = self
                    .keys
                    .get(&n.key)
                    .map(|k| k.ranges.as_slice())
                    .unwrap_or(&[]);
                old_ranges.extend(
                    old.ranges
                        .iter()
                        .filter(|r| new_ranges.binary_search(r).is_err()),
                );
            }
        }
        // Backends written for failed services only are unused.
        // (Handled with every other unused backend in step 5; the others are in `touched`
        // already, from the services that use them.)
        for id in &undo.new_backends {
            if self.be_meta[*id as usize].refs == 0 {
                touched.push(*id);
            }
        }

        // Frontend bookkeeping, and which entries go away.
        let mut remove: Vec<SvcKey> = Vec::new();
        let mut wi = 0;
        for (fe, p) in &changes {
            match p {
                Some(_) => {
                    let w = &wants[wi];
                    let ok = !failed_wants[wi];
                    wi += 1;
                    let old_keys = self.fes.remove(fe).map(|f| f.keys).unwrap_or_default();
                    for k in &old_keys {
                        if ok && !w.keys.contains(k) && self.owned_by(k, fe) {
                            remove.push(*k);
                        }
                    }
                    let mut keys = w.keys.clone();
                    if !ok {
                        keys.extend(old_keys.iter().filter(|k| !w.keys.contains(k)));
                    }
                    self.fes.insert(
                        *fe,
                        FeState {
                            plan: ok.then(|| w.plan.clone()),
                            keys,
                            epoch: self.epoch,
                        },
                    );
                }
                None => {
                    if let Some(f) = self.fes.remove(fe) {
                        remove.extend(f.keys.iter().filter(|k| self.owned_by(k, fe)));
                    }
                }
            }
        }
        if full && self.ownerless {
            // Entries adopted from the maps (or left by a failed delete) that no plan claimed.
            remove.extend(
                self.keys
                    .iter()
                    .filter(|(_, ks)| ks.owner.is_none())
                    .map(|(k, _)| *k),
            );
        }
        remove.sort();
        remove.dedup();

        // 4. Removed entries, then what they pointed at.
        let del = self.maps.svc.delete_batch(&remove);
        let deleted = match &del {
            Ok(()) => remove.len(),
            Err(MapError::Batch { done, .. }) => *done,
            Err(_) => 0,
        };
        if let Err(e) = del {
            first_err.get_or_insert(e.into());
        }
        st.services_deleted = deleted;
        let mut gone_ids = Vec::new();
        for k in &remove[..deleted] {
            let Some(old) = self.keys.remove(k) else {
                continue;
            };
            self.release_key_parts(&old, None, now, &mut st);
            unref_backends(&mut self.be_meta, &old, &mut touched);
            old_ranges.extend(old.ranges.iter().copied());
            self.svc_ids.release(now, old.val.svc_id);
            gone_ids.push(old.val.svc_id);
        }
        // A reused id starts from zero: clear now, or when it is reused if that fails.
        if self
            .maps
            .counters
            .percpu_zero(&gone_ids, self.ncpus)
            .is_err()
        {
            self.dirty_counters.extend(gone_ids);
        }
        if full && deleted == remove.len() {
            self.ownerless = false;
        }
        for k in &remove[deleted..] {
            // Still in the map: forget the owner so a later full apply retries.
            if let Some(ks) = self.keys.get_mut(k) {
                ks.owner = None;
                self.ownerless = true;
            }
        }
        for r in &old_ranges {
            match self.maps.srcrange.delete(r) {
                Ok(_) => st.ranges_deleted += 1,
                Err(e) => {
                    // Keep it in the mirror so the next commit retries.
                    if let Some(ks) = self.keys.values_mut().find(|k| k.val.svc_id == r.svc_id) {
                        if let Err(i) = ks.ranges.binary_search(r) {
                            ks.ranges.insert(i, *r);
                        }
                    }
                    first_err.get_or_insert(e.into());
                }
            }
        }

        // 5. Backend flags, and backends nothing uses any more.
        if full && first_err.is_none() && self.adopted_backends {
            self.adopted_backends = false;
            for (id, m) in self.be_meta.iter_mut().enumerate() {
                if m.keep {
                    m.keep = false;
                    touched.push(id as u32);
                }
            }
        }
        touched.sort_unstable();
        touched.dedup();
        for id in touched {
            let i = id as usize;
            let m = self.be_meta[i];
            let cur = self.maps.backends.as_slice()[i];
            if cur.flags & BE_F_VALID == 0 {
                continue;
            }
            if m.refs == 0 && !m.keep {
                self.maps.backends.store_byte(i, BACKEND_FLAGS_OFFSET, 0);
                self.backends
                    .remove(&m.ident, |i| ident_at(&self.be_meta, i));
                self.be_meta[i] = BeMeta::default();
                self.be_ids.release(now, id);
                st.backends_deleted += 1;
            } else {
                let f = Self::backend_flags(&m);
                if f != cur.flags {
                    self.maps.backends.store_byte(i, BACKEND_FLAGS_OFFSET, f);
                    st.backends_written += 1;
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(st),
        }
    }

    fn owned_by(&self, k: &SvcKey, fe: &Frontend) -> bool {
        self.keys.get(k).is_some_and(|ks| ks.owner == Some(*fe))
    }

    /// Releases the regions of `old` that `new` (its successor, if any) does not use.
    fn release_key_parts(
        &mut self,
        old: &KeyState,
        new: Option<(Option<Block>, Option<Block>)>,
        now: Instant,
        st: &mut ApplyStats,
    ) {
        let keep = |b: Block| new.is_some_and(|(r, m)| r == Some(b) || m == Some(b));
        let mut release = Vec::new();
        if let Some(b) = old.region.filter(|b| !keep(*b)) {
            st.slots_deleted += old.active.len();
            release.push(b);
        }
        if let Some(b) = old.maglev.filter(|b| !keep(*b)) {
            release.push(b);
        }
        for b in release {
            self.regions.release(now, b);
        }
    }

    /// Per-service counters, summed over CPUs, of every service entry the writer knows, with
    /// its frontend and service name when a plan has claimed it.
    pub fn counters(&self) -> Result<Vec<ServiceCounters>, WriteError> {
        let max_id = self.keys.values().map(|k| k.val.svc_id).max().unwrap_or(0);
        let all: FxHashMap<u32, SvcCounters> = self
            .maps
            .counters
            .percpu_entries(self.ncpus, max_id as usize + 1)?
            .into_iter()
            .map(|(id, per)| {
                let mut sum = SvcCounters::default();
                for c in &per {
                    sum.add(c);
                }
                (id, sum)
            })
            .collect();
        let mut out: Vec<ServiceCounters> = self
            .keys
            .iter()
            .map(|(k, ks)| ServiceCounters {
                key: *k,
                svc_id: ks.val.svc_id,
                frontend: ks.owner,
                service: ks
                    .owner
                    .and_then(|o| self.fes.get(&o))
                    .and_then(|f| f.plan.as_ref())
                    .map(|p| p.service.clone()),
                counters: all.get(&ks.val.svc_id).copied().unwrap_or_default(),
            })
            .collect();
        out.sort_by_key(|c| c.svc_id);
        Ok(out)
    }
}

/// Byte offset of `flags` in `struct lb_backend_val`.
const BACKEND_FLAGS_OFFSET: usize = std::mem::offset_of!(BackendVal, flags);
