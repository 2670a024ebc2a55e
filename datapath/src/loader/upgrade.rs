//! Switching links from an earlier release's programs, which use other maps (another layout
//! version), to this agent's, make-before-break:
//!
//! 1. (caller) the writer programs the full service state into this agent's maps while the old
//!    programs keep serving from theirs;
//! 2. connection tracking, session affinity and socket reverse translations are copied from the
//!    old maps into the new ones, service and backend ids translated (the writer numbers them
//!    afresh): a flow's entry names its service and backend by id, and the new program keeps a
//!    flow on its backend only if the ids match what the new maps say;
//! 3. every staged link is switched with BPF_LINK_UPDATE (compare-and-swap on the old program);
//!    The copy runs twice before the switch (the second pass picks up what the old programs
//!    made during the first), right after it, and once more after every program run that
//!    started before the switch has finished (an RCU grace period);
//! 4. the old layout's pins are removed once no pinned link's program uses them.
//!
//! What cannot be carried: entries the old programs changed (not created) after the last copy
//! before the switch keep that copy's value (a FIN seen then is forgotten until the next
//! one). The links switch one after another (microseconds apart), and a flow the old programs
//! created after the last pre-switch copy is in the new maps only after the copy that follows
//! the switch: a packet of such a flow that reaches a new program in between finds no entry
//! (a TCP segment is then load-balanced as a new flow: the same backend if the flow hash
//! picks it, else a reset; a reply leaves un-reverse-NATed). Per-service counters start from
//! zero in the new maps.

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use super::{kerr, CtLifetimes, Datapath, LoadError};
use crate::bpf_sys::{self, MmapArray, TypedMap};
use crate::maps::{
    names, AffinityKey, AffinityVal, BackendVal, CtKey, CtVal, LbAddr, Pod, SockRevKey, SockRevVal,
    SvcKey, SvcVal, BE_F_VALID, CT_FWD, CT_F_ESTABLISHED, IPPROTO_TCP, LAYOUT_VERSION,
};

/// What [`Datapath::finish_upgrade`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpgradeStats {
    /// Links switched to this agent's programs.
    pub links_updated: usize,
    /// Connection tracking entries copied (both passes).
    pub ct_migrated: usize,
    /// FWD entries not copied: their service or backend is not in the new maps (such a flow is
    /// reselected, as after a backend's deletion).
    pub ct_dropped: usize,
    pub affinity_migrated: usize,
    pub sock_rev_migrated: usize,
    /// Old layout pins removed (file names).
    pub pins_removed: Vec<String>,
    /// Old layout pins kept because a pinned link's program still uses them.
    pub pins_kept: Vec<String>,
}

/// `struct lb_ct_val` of layout version 2 (before TCP state and expiry, commit 440c884).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct CtValV2 {
    pub vip_addr: LbAddr,
    pub nat_addr: LbAddr,
    pub vip_port_be: u16,
    pub nat_port_be: u16,
    pub backend_id: u32,
    pub svc_id: u32,
    pub flags: u16,
    pub pad: [u8; 2],
    pub last_seen_ns: u64,
}
const _: () = assert!(std::mem::size_of::<CtValV2>() == 56);
// SAFETY: repr(C), integer fields only, no implicit padding (56 = 16+16+2+2+4+4+2+2+8).
unsafe impl Pod for CtValV2 {}

/// A v2 entry as v3 has it: v2 knew no TCP state, so a TCP entry is taken as established
/// (a flow in the table has seen traffic) and every entry gets the lifetime of its state from
/// its last packet.
pub(crate) fn ct_from_v2(k: &CtKey, v: &CtValV2, lt: &CtLifetimes) -> CtVal {
    let tcp = k.proto == IPPROTO_TCP;
    let flags = v.flags | if tcp { CT_F_ESTABLISHED } else { 0 };
    let life = if tcp { lt.tcp } else { lt.non_tcp };
    CtVal {
        vip_addr: v.vip_addr,
        nat_addr: v.nat_addr,
        vip_port_be: v.vip_port_be,
        nat_port_be: v.nat_port_be,
        backend_id: v.backend_id,
        svc_id: v.svc_id,
        flags,
        pad: [0; 2],
        last_seen_ns: v.last_seen_ns,
        expires_ns: v
            .last_seen_ns
            .saturating_add(u64::from(life) * 1_000_000_000),
    }
}

/// `lb_ct_v2` -> `lb_ct`: the name without its layout version.
fn base_name(name: &str) -> Option<&str> {
    let (base, v) = name.rsplit_once("_v")?;
    (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) && name.starts_with("lb_"))
        .then_some(base)
}

fn dup(fd: &OwnedFd, what: &str) -> Result<OwnedFd, LoadError> {
    fd.try_clone().map_err(kerr(format!("{what}: dup fd")))
}

fn map_err(e: bpf_sys::MapError) -> LoadError {
    LoadError::Kernel {
        what: "upgrade".into(),
        source: io::Error::other(e.to_string()),
    }
}

/// Old and new service and backend ids of the same service (by frontend key) and backend (by
/// address and port).
#[derive(Default)]
struct Ids {
    svc: HashMap<u32, u32>,
    backend: HashMap<u32, u32>,
}

impl Ids {
    fn build(
        old: &HashMap<String, OwnedFd>,
        new: &HashMap<String, OwnedFd>,
    ) -> Result<Ids, LoadError> {
        let mut ids = Ids::default();
        if let (Some(o), Some(n)) = (old.get("lb_svc"), new.get("lb_svc")) {
            let o: TypedMap<SvcKey, SvcVal> =
                TypedMap::from_fd(dup(o, "old lb_svc")?, "old lb_svc").map_err(map_err)?;
            let n: TypedMap<SvcKey, SvcVal> =
                TypedMap::from_fd(dup(n, "lb_svc")?, names::SVC).map_err(map_err)?;
            let new_by_key: HashMap<SvcKey, u32> = n
                .entries_batch()
                .map_err(map_err)?
                .into_iter()
                .map(|(k, v)| (k, v.svc_id))
                .collect();
            for (k, v) in o.entries_batch().map_err(map_err)? {
                if let Some(&id) = new_by_key.get(&k) {
                    ids.svc.insert(v.svc_id, id);
                }
            }
        }
        if let (Some(o), Some(n)) = (old.get("lb_backend"), new.get("lb_backend")) {
            let open = |fd: &OwnedFd, name: &str| -> Result<MmapArray<BackendVal>, LoadError> {
                let m: TypedMap<u32, BackendVal> =
                    TypedMap::from_fd(dup(fd, name)?, name).map_err(map_err)?;
                MmapArray::from_map(m).map_err(map_err)
            };
            let (o, n) = (open(o, "old lb_backend")?, open(n, names::BACKEND)?);
            let valid = |a: &MmapArray<BackendVal>| {
                a.as_slice()
                    .iter()
                    .enumerate()
                    .skip(1)
                    .filter(|(_, v)| v.flags & BE_F_VALID != 0)
                    .map(|(i, v)| ((v.addr, v.port_be), i as u32))
                    .collect::<Vec<_>>()
            };
            let mut new_by_addr: HashMap<(LbAddr, u16), u32> = HashMap::new();
            for (k, id) in valid(&n) {
                new_by_addr.entry(k).or_insert(id);
            }
            for (k, id) in valid(&o) {
                if let Some(&nid) = new_by_addr.get(&k) {
                    ids.backend.insert(id, nid);
                }
            }
        }
        Ok(ids)
    }
}

/// One copy pass from the old maps into the new ones; `overwrite`: BPF_ANY (the first pass,
/// the old maps are the truth), else BPF_NOEXIST (the new program's own entries win).
fn copy_pass(
    old: &HashMap<String, OwnedFd>,
    new: &HashMap<String, OwnedFd>,
    ids: &Ids,
    lt: &CtLifetimes,
    overwrite: bool,
    st: &mut UpgradeStats,
) -> Result<(), LoadError> {
    const BPF_NOEXIST: u64 = 1;
    let flags = if overwrite {
        bpf_sys::BPF_ANY
    } else {
        BPF_NOEXIST
    };
    let put = |ok: Result<(), bpf_sys::MapError>| -> Result<bool, LoadError> {
        match ok {
            Ok(()) => Ok(true),
            Err(bpf_sys::MapError::Syscall { source, .. })
                if source.raw_os_error() == Some(libc::EEXIST) =>
            {
                Ok(false)
            }
            Err(e) => Err(map_err(e)),
        }
    };
    if let (Some(o), Some(n)) = (old.get("lb_ct"), new.get("lb_ct")) {
        let info = bpf_sys::map_info(o).map_err(kerr("old lb_ct: info"))?;
        let entries: Vec<(CtKey, CtVal)> = match info.value_size as usize {
            s if s == std::mem::size_of::<CtVal>() => {
                TypedMap::<CtKey, CtVal>::from_fd(dup(o, "old lb_ct")?, "old lb_ct")
                    .and_then(|m| m.entries_batch())
                    .map_err(map_err)?
            }
            s if s == std::mem::size_of::<CtValV2>() => {
                TypedMap::<CtKey, CtValV2>::from_fd(dup(o, "old lb_ct")?, "old lb_ct")
                    .and_then(|m| m.entries_batch())
                    .map_err(map_err)?
                    .into_iter()
                    .map(|(k, v)| (k, ct_from_v2(&k, &v, lt)))
                    .collect()
            }
            s => {
                return Err(LoadError::Kernel {
                    what: format!("old lb_ct: value size {s} is no layout this agent knows"),
                    source: io::ErrorKind::InvalidData.into(),
                })
            }
        };
        let n: TypedMap<CtKey, CtVal> =
            TypedMap::from_fd(dup(n, names::CT)?, names::CT).map_err(map_err)?;
        for (k, mut v) in entries {
            let svc = ids.svc.get(&v.svc_id).copied();
            let be = ids.backend.get(&v.backend_id).copied();
            if k.dir == CT_FWD {
                // The new program keeps a flow on its backend only if both ids are right.
                let (Some(s), Some(b)) = (svc, be) else {
                    st.ct_dropped += usize::from(overwrite);
                    continue;
                };
                (v.svc_id, v.backend_id) = (s, b);
            } else {
                // REPLY entries are matched and rewritten by addresses alone.
                v.svc_id = svc.unwrap_or(v.svc_id);
                v.backend_id = be.unwrap_or(v.backend_id);
            }
            if put(n.update(&k, &v, flags))? {
                st.ct_migrated += 1;
            }
        }
    }
    if let (Some(o), Some(n)) = (old.get("lb_affinity"), new.get("lb_affinity")) {
        if let Ok(o) =
            TypedMap::<AffinityKey, AffinityVal>::from_fd(dup(o, "old")?, "old lb_affinity")
        {
            let n: TypedMap<AffinityKey, AffinityVal> =
                TypedMap::from_fd(dup(n, names::AFFINITY)?, names::AFFINITY).map_err(map_err)?;
            for (mut k, mut v) in o.entries_batch().map_err(map_err)? {
                // Socket-cookie and netns entries name no service by frontend: keep their ids
                // only if the service maps to itself.
                let (Some(s), Some(b)) = (ids.svc.get(&k.svc_id), ids.backend.get(&v.backend_id))
                else {
                    continue;
                };
                (k.svc_id, v.backend_id) = (*s, *b);
                if put(n.update(&k, &v, flags))? {
                    st.affinity_migrated += 1;
                }
            }
        }
    }
    if let (Some(o), Some(n)) = (old.get("lb_sock_rev"), new.get("lb_sock_rev")) {
        if let Ok(o) =
            TypedMap::<SockRevKey, SockRevVal>::from_fd(dup(o, "old")?, "old lb_sock_rev")
        {
            let n: TypedMap<SockRevKey, SockRevVal> =
                TypedMap::from_fd(dup(n, names::SOCK_REV)?, names::SOCK_REV).map_err(map_err)?;
            for (k, v) in o.entries_batch().map_err(map_err)? {
                if put(n.update(&k, &v, flags))? {
                    st.sock_rev_migrated += 1;
                }
            }
        }
    }
    Ok(())
}

impl Datapath {
    /// Switches the links [`Datapath::attach_tc`] / [`Datapath::attach_cgroup`] staged (their
    /// programs use another layout's maps) to this agent's programs, carrying connection
    /// tracking over, then removes the old layout's pins that nothing uses. Call it once the
    /// writer has programmed the full state into this agent's maps (after the first apply);
    /// with nothing staged it only removes unused old pins.
    pub fn finish_upgrade(&mut self) -> Result<UpgradeStats, LoadError> {
        let mut st = UpgradeStats::default();
        let pending = std::mem::take(&mut self.pending);
        // The old maps, by name without version, as the old programs use them.
        let mut old: HashMap<String, OwnedFd> = HashMap::new();
        for p in &pending {
            for &id in &p.old_info.map_ids {
                let fd = bpf_sys::map_fd_by_id(id).map_err(kerr(format!("map id {id}")))?;
                let name = bpf_sys::map_name(&fd).map_err(kerr(format!("map id {id}: name")))?;
                if let Some(b) = base_name(&name) {
                    old.entry(b.to_string()).or_insert(fd);
                }
            }
        }
        let mut new: HashMap<String, OwnedFd> = HashMap::new();
        for name in names::ALL {
            let fd = bpf_sys::obj_get(&self.bpffs.join(name))
                .map_err(kerr(format!("pin {}", self.bpffs.join(name).display())))?;
            if let Some(b) = base_name(name) {
                new.insert(b.to_string(), fd);
            }
        }
        // Maps the old and new programs share (the same map) need no copy.
        let same = |a: &OwnedFd, b: &OwnedFd| matches!((bpf_sys::map_info(a), bpf_sys::map_info(b)), (Ok(x), Ok(y)) if x.id == y.id);
        old.retain(|k, fd| new.get(k).is_none_or(|n| !same(fd, n)));
        let lt = self.ct_lifetimes;
        if !pending.is_empty() {
            let ids = Ids::build(&old, &new)?;
            // Two passes before the switch: the second catches what the old programs made
            // during the first (the bulk), so the last copies are short.
            copy_pass(&old, &new, &ids, &lt, true, &mut st)?;
            copy_pass(&old, &new, &ids, &lt, true, &mut st)?;
            // All new program fds first, so the links switch back to back.
            let mut progs = Vec::with_capacity(pending.len());
            for p in &pending {
                progs.push(self.prog_fd(p.obj, p.program)?);
            }
            for (p, new_prog) in pending.iter().zip(&progs) {
                bpf_sys::link_update(&p.link, new_prog, Some(&p.old_prog)).map_err(kerr(
                    format!(
                    "link {}: switch to this agent's {} (BPF_LINK_UPDATE; {} of {} links switched)",
                    p.pin.display(),
                    p.program,
                    st.links_updated,
                    pending.len()
                ),
                ))?;
                st.links_updated += 1;
            }
            // At once (flows the old programs made since the last pass), and again once every
            // old program run has finished.
            copy_pass(&old, &new, &ids, &lt, false, &mut st)?;
            bpf_sys::wait_for_programs().map_err(kerr("waiting for running programs"))?;
            copy_pass(&old, &new, &ids, &lt, false, &mut st)?;
        }
        drop(old);
        self.remove_old_pins(&mut st)?;
        Ok(st)
    }

    /// Removes `lb_*_v<N>` pins of other layout versions whose maps no pinned link's program
    /// uses.
    fn remove_old_pins(&self, st: &mut UpgradeStats) -> Result<(), LoadError> {
        let mut in_use = std::collections::HashSet::new();
        let links = self.bpffs.join("links");
        if let Ok(rd) = std::fs::read_dir(&links) {
            for e in rd.flatten() {
                let Ok(l) = bpf_sys::obj_get(&e.path()) else {
                    continue;
                };
                let Ok(li) = bpf_sys::link_info(&l) else {
                    continue;
                };
                if let Ok(p) =
                    bpf_sys::prog_fd_by_id(li.prog_id).and_then(|f| bpf_sys::prog_info(&f))
                {
                    in_use.extend(p.map_ids);
                }
            }
        }
        let ours = format!("_v{LAYOUT_VERSION}");
        let rd = std::fs::read_dir(&self.bpffs).map_err(|source| LoadError::Bpffs {
            path: self.bpffs.clone(),
            what: "list pins",
            source,
        })?;
        let mut old: Vec<(String, PathBuf)> = rd
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_str()?.to_string();
                (base_name(&name).is_some() && !name.ends_with(&ours)).then(|| (name, e.path()))
            })
            .collect();
        old.sort();
        for (name, path) in old {
            let id = bpf_sys::obj_get(&path).and_then(|fd| bpf_sys::map_info(&fd));
            match id {
                Ok(i) if in_use.contains(&i.id) => st.pins_kept.push(name),
                Ok(_) => {
                    std::fs::remove_file(&path).map_err(|source| LoadError::Bpffs {
                        path: path.clone(),
                        what: "remove old layout pin",
                        source,
                    })?;
                    st.pins_removed.push(name);
                }
                // Not a map (or unreadable): not ours to remove.
                Err(_) => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_versions_are_stripped_only_from_lb_map_names() {
        assert_eq!(base_name("lb_ct_v2"), Some("lb_ct"));
        assert_eq!(base_name("lb_svc_ctr_v13"), Some("lb_svc_ctr"));
        assert_eq!(base_name("lb_ct_v"), None);
        assert_eq!(base_name("lb_ct_vx"), None);
        assert_eq!(base_name("other_v2"), None);
        assert_eq!(base_name(".rodata"), None);
    }

    #[test]
    fn a_v2_ct_entry_becomes_an_established_v3_entry_expiring_after_its_lifetime() {
        let lt = CtLifetimes::default();
        let mut k = CtKey {
            proto: IPPROTO_TCP,
            ..CtKey::default()
        };
        let v = CtValV2 {
            backend_id: 7,
            svc_id: 3,
            flags: crate::maps::CT_F_SNAT,
            last_seen_ns: 5_000_000_000,
            nat_port_be: 40000u16.to_be(),
            ..CtValV2::default()
        };
        let n = ct_from_v2(&k, &v, &lt);
        assert_eq!(n.flags, crate::maps::CT_F_SNAT | CT_F_ESTABLISHED);
        assert_eq!(
            (n.backend_id, n.svc_id, n.nat_port_be),
            (7, 3, 40000u16.to_be())
        );
        assert_eq!(n.expires_ns, 5_000_000_000 + 21600 * 1_000_000_000);
        k.proto = crate::maps::IPPROTO_UDP;
        let n = ct_from_v2(&k, &v, &lt);
        assert_eq!(n.flags, crate::maps::CT_F_SNAT, "UDP has no TCP state");
        assert_eq!(n.expires_ns, 5_000_000_000 + 60 * 1_000_000_000);
    }
}
