//! `bgplane agent --datapath`: the service load balancer inside the agent. One thread owns the
//! BPF side (loader + map writer) and polls the objects source every second; the API reads a
//! snapshot it publishes after every reload.
//!
//! A reload: read the objects (`--objects`), find this node (`--node-name`), plan every
//! frontend for it, load and attach the programs if that has not happened yet (adopting what an
//! earlier agent left pinned under `--bpffs`), apply the plans make-before-break. The first
//! apply after loading (or after a failed one) gives the writer every plan (`Writer::apply`: it
//! compares them with what the maps hold, removes what no plan claims and writes only
//! differences); later ones diff the plans against those last applied, per frontend, and give
//! the writer only the changed and removed frontends (`Writer::apply_changes`), so a one-service
//! edit costs the writer microseconds whatever the table size. A reload that fails
//! (objects that do not parse or plan, a kernel error) changes nothing in the maps: the previous
//! state keeps serving, and the error is logged and shown in `bgplane services`. Kernel errors
//! are retried every [`RETRY`]; objects errors wait for the files to change.
//!
//! Nothing is loaded before the first objects that plan cleanly: the SNAT source addresses are
//! load-time constants of lb.o and come from this node's Node object.
//!
//! Stopping the agent (SIGTERM, or `kill -9`) leaves the programs attached and the maps pinned,
//! on purpose: traffic keeps flowing while no agent runs, and the next agent adopts the pins and
//! writes only what changed meanwhile. `bgplane datapath unload` removes the pins.

use std::collections::HashMap;
use std::ffi::CString;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use datapath::k8s::{self, Objects};
use datapath::loader::{AttachStats, Datapath, LoadConfig};
use datapath::maps::{SvcCounters, SvcKey, SvcVal};
use datapath::model::{self, NodeInfo};
use datapath::plan::{Frontend, FrontendKind, NoBackends, Protocol, Selection, ServicePlan};
use datapath::planner;
use datapath::writer::{read_counters, ApplyStats, Writer, WriterConfig};

use crate::api::{
    ApplyJson, BackendJson, CountersJson, DatapathErrorJson, DatapathJson, FrontendJson,
    ServiceJson, ServicesJson,
};
use crate::source::ObjectsFiles;

/// Where the agent pins maps and links unless `--bpffs` says otherwise.
pub const DEFAULT_BPFFS: &str = "/sys/fs/bpf/bgplane";
/// Where the agent mounts a cgroup2 hierarchy when none is mounted and `--cgroup2` is not given.
pub const DEFAULT_CGROUP2: &str = "/run/bgplane/cgroupv2";
/// How often the objects are polled.
pub const POLL: Duration = Duration::from_secs(1);
/// How long after a kernel error the reload is tried again.
pub const RETRY: Duration = Duration::from_secs(5);

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// `--datapath` and its flags.
#[derive(Debug, Clone)]
pub struct DatapathOptions {
    /// `--objects`: a file or directory of Node, Service and EndpointSlice objects.
    pub objects: PathBuf,
    /// `--node-name`: which Node is this one.
    pub node_name: String,
    /// `--devices`: where the tc programs go (north-south: LoadBalancer, ExternalIP, NodePort).
    pub devices: Vec<String>,
    /// `--bpffs`: pins (mounted as bpffs if it is not).
    pub bpffs: PathBuf,
    /// `--cgroup2`: where the socket programs go; None: an existing cgroup2 mount, else one
    /// mounted at [`DEFAULT_CGROUP2`].
    pub cgroup2: Option<PathBuf>,
    pub poll: Duration,
}

/// The running datapath, as the API sees it.
#[derive(Clone)]
pub struct DatapathHandle {
    shared: Arc<Mutex<ServicesJson>>,
    bpffs: PathBuf,
}

impl DatapathHandle {
    /// What the last reload published, with the per-service counters as they are now (read
    /// from the pinned maps, so the API never waits for the datapath thread).
    pub fn snapshot(&self) -> ServicesJson {
        let mut s = lock(&self.shared).clone();
        if s.datapath.loaded {
            match read_counters(&self.bpffs) {
                Ok(all) => fill_counters(&mut s.services, &all),
                Err(e) => tracing::debug!("reading service counters: {e}"),
            }
        }
        s
    }
}

/// Puts each entry's counters (matched by service id) on the frontends.
fn fill_counters(services: &mut [ServiceJson], all: &[(SvcKey, SvcVal, SvcCounters)]) {
    let by_id: HashMap<u32, &SvcCounters> = all.iter().map(|(_, v, c)| (v.svc_id, c)).collect();
    for v in services {
        v.counters = v.id.and_then(|id| by_id.get(&id)).map(|c| CountersJson {
            packets: c.packets,
            bytes: c.bytes,
            connections: c.connections,
            dropped: c.dropped,
        });
    }
}

fn lock(m: &Mutex<ServicesJson>) -> MutexGuard<'_, ServicesJson> {
    // A panic elsewhere while holding the lock leaves a complete snapshot behind (it is only
    // ever replaced whole or field by field): keep serving it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts the datapath thread. It runs until the process exits.
pub fn spawn(opts: DatapathOptions) -> std::io::Result<DatapathHandle> {
    let shared = Arc::new(Mutex::new(ServicesJson {
        datapath: DatapathJson {
            node: opts.node_name.clone(),
            objects: opts.objects.display().to_string(),
            bpffs: opts.bpffs.display().to_string(),
            devices: opts.devices.clone(),
            ..DatapathJson::default()
        },
        services: Vec::new(),
    }));
    let handle = DatapathHandle {
        shared: shared.clone(),
        bpffs: opts.bpffs.clone(),
    };
    let mut engine = Engine {
        source: ObjectsFiles::new(&opts.objects),
        opts,
        loaded: None,
        shared,
        retry_at: None,
    };
    std::thread::Builder::new()
        .name("datapath".into())
        .spawn(move || loop {
            engine.tick();
            std::thread::sleep(engine.opts.poll);
        })?;
    Ok(handle)
}

/// The kernel side once loaded.
struct Loaded {
    /// Kept so the programs' fds live as long as the agent (the pinned links hold them too).
    datapath: Datapath,
    /// Whether `Datapath::finish_upgrade` still has to run: after the first full apply, it
    /// switches links that an agent of another map layout left pinned (they keep serving from
    /// their own maps until then), carries connection tracking over and removes old pins.
    upgrade_pending: bool,
    writer: Writer,
    node_addrs: Vec<IpAddr>,
    /// The plans the maps hold; None: the next apply gives the writer every plan.
    applied: Option<Applied>,
}

/// The plans last applied, per frontend, and what a new set of plans changes in them.
#[derive(Default)]
struct Applied {
    /// Each with the reload that last saw it.
    plans: HashMap<Frontend, (ServicePlan, u64)>,
    epoch: u64,
}

/// What a new set of plans changes: plans that are new or differ, frontends that went.
#[derive(Debug, Default, PartialEq)]
struct PlanDiff {
    changed: Vec<ServicePlan>,
    removed: Vec<Frontend>,
}

impl Applied {
    /// The plans a full apply applied (taken, not copied: 100k plans take ~0.1 s to clone).
    fn new(plans: Vec<ServicePlan>) -> Applied {
        Applied {
            plans: plans.into_iter().map(|p| (p.frontend, (p, 0))).collect(),
            epoch: 0,
        }
    }

    /// The changes from the applied plans to `plans`; None if a frontend is planned twice
    /// (the writer's full apply says which).
    fn diff(&mut self, plans: &[ServicePlan]) -> Option<PlanDiff> {
        self.epoch += 1;
        let epoch = self.epoch;
        let mut d = PlanDiff::default();
        let mut fresh: std::collections::HashSet<Frontend> = Default::default();
        let mut seen = 0usize;
        for p in plans {
            match self.plans.get_mut(&p.frontend) {
                Some((_, e)) if *e == epoch => return None,
                Some((old, e)) => {
                    *e = epoch;
                    seen += 1;
                    if old != p {
                        d.changed.push(p.clone());
                    }
                }
                None => {
                    if !fresh.insert(p.frontend) {
                        return None;
                    }
                    d.changed.push(p.clone());
                }
            }
        }
        if seen < self.plans.len() {
            d.removed = self
                .plans
                .iter()
                .filter(|(_, (_, e))| *e != epoch)
                .map(|(f, _)| *f)
                .collect();
            d.removed.sort();
        }
        Some(d)
    }

    /// The writer applied `d`.
    fn commit(&mut self, d: PlanDiff) {
        for f in &d.removed {
            self.plans.remove(f);
        }
        for p in d.changed {
            self.plans.insert(p.frontend, (p, self.epoch));
        }
    }
}

/// How a reload reached the writer.
struct ApplyRun {
    stats: ApplyStats,
    /// Every plan (`Writer::apply`) or only the changes.
    full: bool,
    changed: usize,
    removed: usize,
    diff: Duration,
    writer: Duration,
}

struct Engine {
    opts: DatapathOptions,
    source: ObjectsFiles,
    loaded: Option<Loaded>,
    shared: Arc<Mutex<ServicesJson>>,
    retry_at: Option<Instant>,
}

/// Why a reload failed.
enum Failure {
    /// The objects (parse, node lookup, plan): wait for them to change.
    Objects(String),
    /// Loading, attaching or writing: try again after [`RETRY`].
    Kernel(String),
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Engine {
    fn tick(&mut self) {
        let read = match self.source.poll() {
            Some(r) => r,
            None if self.retry_at.is_some_and(|t| Instant::now() >= t) => {
                self.source.invalidate();
                match self.source.poll() {
                    Some(r) => r,
                    None => return,
                }
            }
            None => return,
        };
        match self.reload(read) {
            Ok(()) => {
                self.retry_at = None;
                if let Some(e) = lock(&self.shared).datapath.last_error.as_mut() {
                    e.current = false;
                }
            }
            Err(f) => {
                let (message, retry) = match f {
                    Failure::Objects(m) => (m, false),
                    Failure::Kernel(m) => (m, true),
                };
                let mut s = lock(&self.shared);
                let repeated = s
                    .datapath
                    .last_error
                    .as_ref()
                    .is_some_and(|e| e.current && e.message == message);
                if repeated {
                    tracing::debug!("datapath: still failing: {message}");
                } else if s.datapath.loaded {
                    tracing::error!("datapath: {message}; the previous state keeps serving");
                } else {
                    tracing::error!("datapath: {message}");
                }
                s.datapath.last_error = Some(DatapathErrorJson {
                    message,
                    at_unix_seconds: unix_now(),
                    current: true,
                });
                self.retry_at = retry.then(|| Instant::now() + RETRY);
            }
        }
    }

    fn reload(&mut self, read: Result<Objects, k8s::LoadError>) -> Result<(), Failure> {
        let objects = read.map_err(|e| Failure::Objects(format!("objects: {e}")))?;
        let node = planner::node_info(&objects, &self.opts.node_name).map_err(|e| {
            Failure::Objects(format!(
                "objects {}: {e} (--node-name)",
                self.opts.objects.display()
            ))
        })?;
        let planned = planner::plan_with_notes(&objects, &node, &planner::Options::default())
            .map_err(|e| {
                Failure::Objects(format!("objects {}: {e}", self.opts.objects.display()))
            })?;
        if self.loaded.is_none() {
            self.loaded = Some(self.load(&node).map_err(Failure::Kernel)?);
        }
        let Some(loaded) = self.loaded.as_mut() else {
            return Err(Failure::Kernel("datapath not loaded".into()));
        };
        let mut notes = planned.notes;
        if loaded.node_addrs != node.addresses {
            notes.push(format!(
                "Node {}: addresses changed to {:?} after the programs were loaded with {:?}: \
                 SNAT keeps the old source until the datapath is reloaded",
                node.name, node.addresses, loaded.node_addrs
            ));
        }
        let run = apply(loaded, &planned.plans)?;
        if run.full && loaded.upgrade_pending {
            // The new maps now hold the full state: only now may links still running an older
            // layout's program be switched (make-before-break across versions).
            let up = loaded
                .datapath
                .finish_upgrade()
                .map_err(|e| Failure::Kernel(format!("switching links to this build: {e}")))?;
            loaded.upgrade_pending = false;
            if up.links_updated > 0 || !up.pins_removed.is_empty() {
                tracing::info!(
                    "datapath upgraded: {} links switched, {} flows carried over ({} dropped), old pins removed: {:?}",
                    up.links_updated,
                    up.ct_migrated,
                    up.ct_dropped,
                    up.pins_removed
                );
            }
        }
        let stats = run.stats;
        tracing::info!(
            "datapath: {} frontends, {} ({} changed, {} removed): diff {:?}, writer {:?}, {} map writes ({stats:?})",
            planned.plans.len(),
            if run.full { "all applied" } else { "changes applied" },
            run.changed,
            run.removed,
            run.diff,
            run.writer,
            stats.writes()
        );
        let places = endpoint_places(&objects);
        let services: Vec<ServiceJson> = planned
            .plans
            .iter()
            .map(|p| {
                let f = &p.frontend;
                service_json(
                    p,
                    loaded.writer.service_id(f.addr, f.port, f.proto),
                    |a, port| loaded.writer.backend_id(a, port),
                    &places,
                )
            })
            .collect();
        if run.full {
            loaded.applied = Some(Applied::new(planned.plans));
        }
        let mut s = lock(&self.shared);
        s.services = services;
        s.datapath.notes = notes;
        s.datapath.applies += 1;
        s.datapath.writes_total += stats.writes() as u64;
        s.datapath.last_apply = Some(apply_json(&run));
        Ok(())
    }

    fn load(&self, node: &NodeInfo) -> Result<Loaded, String> {
        let mut cfg = LoadConfig::new(&self.opts.bpffs);
        cfg.node_ip4 = node.addresses.iter().find_map(|a| match a {
            IpAddr::V4(v) => Some(*v),
            IpAddr::V6(_) => None,
        });
        cfg.node_ip6 = node.addresses.iter().find_map(|a| match a {
            IpAddr::V6(v) => Some(*v),
            IpAddr::V4(_) => None,
        });
        let mut dp = Datapath::load(&cfg).map_err(|e| format!("loading the programs: {e}"))?;
        let mut st = AttachStats::default();
        let mut add = |s: AttachStats| {
            st.attached += s.attached;
            st.adopted += s.adopted;
            st.replaced += s.replaced;
            st.staged += s.staged;
        };
        for dev in &self.opts.devices {
            add(dp
                .attach_tc(dev)
                .map_err(|e| format!("--devices {dev}: {e}"))?);
        }
        let cgroup = cgroup2_dir(self.opts.cgroup2.as_deref())?;
        add(dp
            .attach_cgroup(&cgroup)
            .map_err(|e| format!("--cgroup2 {}: {e}", cgroup.display()))?);
        let writer = Writer::open(&self.opts.bpffs, WriterConfig::new(node.addresses.clone()))
            .map_err(|e| format!("opening the maps under {}: {e}", self.opts.bpffs.display()))?;
        tracing::info!(
            "datapath loaded: tc on {:?}, socket LB on {}, pins under {}: {} links attached, {} adopted, {} switched to this build, {} of another map layout staged, {} service entries found",
            self.opts.devices,
            cgroup.display(),
            self.opts.bpffs.display(),
            st.attached,
            st.adopted,
            st.replaced,
            st.staged,
            writer.service_count()
        );
        let mut s = lock(&self.shared);
        s.datapath.loaded = true;
        s.datapath.links_attached = st.attached;
        s.datapath.links_adopted = st.adopted;
        s.datapath.cgroup2 = Some(cgroup.display().to_string());
        Ok(Loaded {
            datapath: dp,
            upgrade_pending: true,
            writer,
            node_addrs: node.addresses.clone(),
            applied: None,
        })
    }
}

/// Gives the writer every plan the first time (and after a failure), else only what changed
/// since the last apply.
fn apply(loaded: &mut Loaded, plans: &[ServicePlan]) -> Result<ApplyRun, Failure> {
    let started = Instant::now();
    let diff = loaded.applied.as_mut().and_then(|a| a.diff(plans));
    let diffed = started.elapsed();
    let Some(d) = diff else {
        loaded.applied = None;
        let started = Instant::now();
        let stats = loaded
            .writer
            .apply(plans)
            .map_err(|e| Failure::Kernel(format!("applying {} plans: {e}", plans.len())))?;
        let writer = started.elapsed();
        // The caller records the plans (Applied::new) once it is done with them.
        return Ok(ApplyRun {
            stats,
            full: true,
            changed: plans.len(),
            removed: 0,
            diff: diffed,
            writer,
        });
    };
    let (changed, removed) = (d.changed.len(), d.removed.len());
    let started = Instant::now();
    let res = loaded.writer.apply_changes(&d.changed, &d.removed);
    let writer = started.elapsed();
    match res {
        Ok(stats) => {
            if let Some(a) = loaded.applied.as_mut() {
                a.commit(d);
            }
            Ok(ApplyRun {
                stats,
                full: false,
                changed,
                removed,
                diff: diffed,
                writer,
            })
        }
        Err(e) => {
            // The writer knows which frontends it left part-way; the next full apply retries.
            loaded.applied = None;
            Err(Failure::Kernel(format!(
                "applying {changed} changed and {removed} removed of {} plans: {e}",
                plans.len()
            )))
        }
    }
}

/// Node name and zone of every endpoint address in the EndpointSlices.
type Places = HashMap<IpAddr, (Option<String>, Option<String>)>;

fn endpoint_places(objects: &Objects) -> Places {
    let mut out = Places::new();
    for s in &objects.endpoint_slices {
        // The planner converted every slice already; one that fails here cannot occur.
        let Ok(s) = model::endpoint_slice_from_k8s(s) else {
            continue;
        };
        for e in s.endpoints {
            out.insert(e.addr, (e.node_name, e.zone));
        }
    }
    out
}

fn kind_name(k: FrontendKind) -> &'static str {
    match k {
        FrontendKind::ClusterIp => "ClusterIP",
        FrontendKind::NodePort => "NodePort",
        FrontendKind::LoadBalancer => "LoadBalancer",
        FrontendKind::ExternalIp => "ExternalIP",
    }
}

/// One frontend's API entry; ids come from the writer.
fn service_json(
    p: &ServicePlan,
    id: Option<u32>,
    backend_id: impl Fn(IpAddr, u16) -> Option<u32>,
    places: &Places,
) -> ServiceJson {
    let f = &p.frontend;
    let backend = |b: &datapath::plan::BackendAddr, state: &str| {
        let (node, zone) = places.get(&b.addr).cloned().unwrap_or_default();
        BackendJson {
            address: b.addr.to_string(),
            port: b.port,
            state: state.to_string(),
            local: b.local,
            node,
            zone,
            id: backend_id(b.addr, b.port),
        }
    };
    let (selection, maglev_table_size) = match p.selection {
        Selection::Random => ("random", None),
        Selection::Maglev { table_size } => ("maglev", Some(table_size)),
    };
    ServiceJson {
        service: p.service.clone(),
        id,
        frontend: FrontendJson {
            address: f.addr.to_string(),
            port: f.port,
            protocol: match f.proto {
                Protocol::Tcp => "TCP",
                Protocol::Udp => "UDP",
            }
            .to_string(),
            kind: kind_name(f.kind).to_string(),
        },
        selection: selection.to_string(),
        maglev_table_size,
        affinity_timeout_seconds: p.affinity_timeout,
        source_ranges: p.source_ranges.iter().map(|n| n.to_string()).collect(),
        no_backends: match p.no_backends {
            NoBackends::Reject => "reject",
            NoBackends::Drop => "drop",
        }
        .to_string(),
        backends: p
            .active
            .iter()
            .map(|b| backend(b, "active"))
            .chain(p.terminating.iter().map(|b| backend(b, "terminating")))
            .collect(),
        counters: None,
    }
}

fn apply_json(run: &ApplyRun) -> ApplyJson {
    let n = |v: usize| v as u64;
    let s = &run.stats;
    ApplyJson {
        at_unix_seconds: unix_now(),
        full: run.full,
        frontends_changed: n(run.changed),
        frontends_removed: n(run.removed),
        frontends_adopted: n(s.frontends_adopted),
        diff_micros: run.diff.as_micros() as u64,
        writer_micros: run.writer.as_micros() as u64,
        writes: n(s.writes()),
        services_written: n(s.services_written),
        services_deleted: n(s.services_deleted),
        backends_written: n(s.backends_written),
        backends_deleted: n(s.backends_deleted),
        slots_written: n(s.slots_written),
        slots_deleted: n(s.slots_deleted),
        maglev_tables: n(s.maglev_tables),
        ranges_written: n(s.ranges_written),
        ranges_deleted: n(s.ranges_deleted),
    }
}

fn statfs_type(path: &Path) -> std::io::Result<i64> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: statfs writes into the zeroed struct we pass; c is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st.f_type as i64)
}

fn mount_cgroup2(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let (Ok(src), Ok(fstype), Ok(dst)) = (
        CString::new("cgroup2"),
        CString::new("cgroup2"),
        CString::new(dir.as_os_str().as_encoded_bytes()),
    ) else {
        return Err(format!("{}: path contains NUL", dir.display()));
    };
    // SAFETY: all pointers are NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            dst.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(format!(
            "mount -t cgroup2 none {}: {}",
            dir.display(),
            std::io::Error::last_os_error()
        ));
    }
    tracing::info!("mounted a cgroup2 hierarchy at {}", dir.display());
    Ok(())
}

/// The first cgroup2 mount point in `/proc/self/mountinfo` text.
pub fn find_cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|l| {
        // `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTS`
        let (left, right) = l.split_once(" - ")?;
        if right.split(' ').next()? != "cgroup2" {
            return None;
        }
        let mnt = left.split(' ').nth(4)?;
        Some(PathBuf::from(unescape_mountinfo(mnt)))
    })
}

/// mountinfo writes space, tab, newline and backslash as `\040`-style octal escapes.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if let Some(v) = s
                .get(i + 1..i + 4)
                .and_then(|o| u8::from_str_radix(o, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup2 directory for the socket programs: `--cgroup2 DIR` (cgroup2 is mounted there
/// unless DIR already lies in a cgroup2 hierarchy), else the first cgroup2 mount, else a
/// hierarchy mounted at [`DEFAULT_CGROUP2`].
pub fn cgroup2_dir(flag: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(dir) = flag {
        if statfs_type(dir).ok() != Some(CGROUP2_SUPER_MAGIC) {
            mount_cgroup2(dir)?;
        }
        return Ok(dir.to_path_buf());
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("reading /proc/self/mountinfo: {e}"))?;
    if let Some(dir) = find_cgroup2_mount(&mountinfo) {
        return Ok(dir);
    }
    let dir = PathBuf::from(DEFAULT_CGROUP2);
    mount_cgroup2(&dir)?;
    Ok(dir)
}

/// Files the kernel puts in the root of a bpffs mount (not ours to remove).
const KERNEL_FILES: [&str; 2] = ["maps.debug", "progs.debug"];

/// `bgplane datapath unload`: removes every pin under `bpffs` (links first, which detaches the
/// programs, then the maps and anything else below it). Returns the pins removed.
pub fn unload(bpffs: &Path) -> Result<Vec<PathBuf>, String> {
    let mut removed = Vec::new();
    let links = bpffs.join("links");
    if links.is_dir() {
        remove_tree(&links, &mut removed)?;
    }
    let entries =
        std::fs::read_dir(bpffs).map_err(|e| format!("reading {}: {e}", bpffs.display()))?;
    for e in entries {
        let p = e
            .map_err(|e| format!("reading {}: {e}", bpffs.display()))?
            .path();
        // The kernel's preloaded iterators in the root of every bpffs mount.
        if p.parent() == Some(bpffs) && KERNEL_FILES.iter().any(|k| p.ends_with(k)) {
            continue;
        }
        if p.is_dir() {
            remove_tree(&p, &mut removed)?;
        } else {
            std::fs::remove_file(&p).map_err(|e| format!("removing {}: {e}", p.display()))?;
            removed.push(p);
        }
    }
    Ok(removed)
}

fn remove_tree(dir: &Path, removed: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    for e in entries {
        let p = e
            .map_err(|e| format!("reading {}: {e}", dir.display()))?
            .path();
        if p.is_dir() {
            remove_tree(&p, removed)?;
        } else {
            std::fs::remove_file(&p).map_err(|e| format!("removing {}: {e}", p.display()))?;
            removed.push(p);
        }
    }
    std::fs::remove_dir(dir).map_err(|e| format!("removing {}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datapath::plan::BackendAddr;

    #[test]
    fn the_first_cgroup2_mount_is_found_with_escapes_undone() {
        let mi = "\
22 1 0:21 / /proc rw,nosuid - proc proc rw
30 22 0:26 / /sys/fs/cgroup/unified rw shared:9 - cgroup2 cgroup2 rw,nsdelegate
31 22 0:27 / /other rw - cgroup2 none rw
";
        assert_eq!(
            find_cgroup2_mount(mi),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let spaced = "40 1 0:30 / /run/my\\040cg rw - cgroup2 none rw\n";
        assert_eq!(
            find_cgroup2_mount(spaced),
            Some(PathBuf::from("/run/my cg"))
        );
        assert_eq!(
            find_cgroup2_mount("22 1 0:21 / /proc rw - proc proc rw\nbroken\n"),
            None
        );
        // cgroup v1 is not cgroup2.
        assert_eq!(
            find_cgroup2_mount("25 1 0:22 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"),
            None
        );
        assert_eq!(unescape_mountinfo("a\\134b\\"), "a\\b\\");
    }

    fn plan(name: &str, addr: &str, backends: &[&str]) -> ServicePlan {
        ServicePlan {
            service: format!("test/{name}"),
            frontend: Frontend {
                addr: addr.parse().unwrap(),
                port: 80,
                proto: Protocol::Tcp,
                kind: FrontendKind::ClusterIp,
            },
            active: backends
                .iter()
                .map(|b| BackendAddr {
                    addr: b.parse().unwrap(),
                    port: 8080,
                    local: true,
                })
                .collect(),
            terminating: Vec::new(),
            selection: Selection::Random,
            affinity_timeout: None,
            source_ranges: Vec::new(),
            no_backends: NoBackends::Reject,
        }
    }

    #[test]
    fn the_diff_against_the_applied_plans_names_only_changed_new_and_removed_frontends() {
        let mut plans: Vec<ServicePlan> = (0..50)
            .map(|i| plan(&format!("s{i}"), &format!("10.96.0.{i}"), &["10.1.0.1"]))
            .collect();
        let mut a = Applied::new(plans.clone());
        assert_eq!(a.diff(&plans), Some(PlanDiff::default()), "nothing changed");

        // One service gains a backend, one is new, one is gone.
        plans[7].active.push(BackendAddr {
            addr: "10.1.0.2".parse().unwrap(),
            port: 8080,
            local: false,
        });
        plans.push(plan("new", "10.96.1.1", &["10.1.0.3"]));
        let gone = plans.remove(20);
        let d = a.diff(&plans).expect("no duplicates");
        assert_eq!(
            d,
            PlanDiff {
                changed: vec![plans[7].clone(), plans[49].clone()],
                removed: vec![gone.frontend],
            }
        );
        a.commit(d);
        assert_eq!(a.diff(&plans), Some(PlanDiff::default()), "after commit");

        // The same plans in another order are no change; a frontend planned twice is the
        // full apply's to report.
        plans.reverse();
        assert_eq!(a.diff(&plans), Some(PlanDiff::default()));
        let dup = plans[3].clone();
        plans.push(dup);
        assert_eq!(a.diff(&plans), None);
        let mut fresh_dup = vec![plan("x", "10.96.2.1", &[]), plan("y", "10.96.2.1", &[])];
        assert_eq!(a.diff(&fresh_dup), None, "a new frontend planned twice");
        fresh_dup.truncate(1);
        let d = a.diff(&fresh_dup).expect("one plan");
        assert_eq!((d.changed.len(), d.removed.len()), (1, 50));
    }

    #[test]
    fn a_plan_becomes_a_frontend_with_active_then_terminating_backends_and_their_places() {
        let be = |a: &str, local| BackendAddr {
            addr: a.parse().unwrap(),
            port: 8080,
            local,
        };
        let p = ServicePlan {
            service: "shop/web".into(),
            frontend: Frontend {
                addr: "fd00:99::10".parse().unwrap(),
                port: 80,
                proto: Protocol::Tcp,
                kind: FrontendKind::LoadBalancer,
            },
            active: vec![be("fd00:1::1", true), be("fd00:1::2", false)],
            terminating: vec![be("fd00:1::3", true)],
            selection: Selection::Maglev { table_size: 251 },
            affinity_timeout: Some(600),
            source_ranges: vec!["2001:db8::/32".parse().unwrap()],
            no_backends: NoBackends::Drop,
        };
        let mut places = Places::new();
        places.insert(
            "fd00:1::1".parse().unwrap(),
            (Some("node-a".into()), Some("zone-a".into())),
        );
        let j = service_json(&p, Some(7), |a, _| Some(a.is_ipv6() as u32 + 40), &places);
        assert_eq!(j.id, Some(7));
        assert_eq!(
            (
                j.frontend.address.as_str(),
                j.frontend.protocol.as_str(),
                j.frontend.kind.as_str()
            ),
            ("fd00:99::10", "TCP", "LoadBalancer")
        );
        assert_eq!(
            (j.selection.as_str(), j.maglev_table_size),
            ("maglev", Some(251))
        );
        assert_eq!(j.no_backends, "drop");
        assert_eq!(j.source_ranges, vec!["2001:db8::/32"]);
        let states: Vec<(&str, &str, bool)> = j
            .backends
            .iter()
            .map(|b| (b.address.as_str(), b.state.as_str(), b.local))
            .collect();
        assert_eq!(
            states,
            vec![
                ("fd00:1::1", "active", true),
                ("fd00:1::2", "active", false),
                ("fd00:1::3", "terminating", true)
            ]
        );
        assert_eq!(j.backends[0].zone.as_deref(), Some("zone-a"));
        assert_eq!(j.backends[0].node.as_deref(), Some("node-a"));
        assert_eq!(j.backends[1].zone, None);
        assert_eq!(j.backends[2].id, Some(41));
    }
}
