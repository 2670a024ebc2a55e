//! Per-service counters (`lb_svc_ctr_v3`, per CPU, indexed by service id), summed over CPUs:
//! read by the writer for the services it knows, or straight from the pins by a reader that
//! does not own the maps (the `bgplane services` CLI).

use std::path::Path;

use crate::bpf_sys::{self, MapError, TypedMap};
use crate::maps::{names, SvcCounters, SvcKey, SvcVal};
use crate::plan::Frontend;

/// One service entry's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceCounters {
    pub key: SvcKey,
    pub svc_id: u32,
    /// The frontend whose plan made the entry (None: adopted and not claimed yet, or read
    /// from the pins).
    pub frontend: Option<Frontend>,
    /// `namespace/name` of the Service, when the writer knows the plan.
    pub service: Option<String>,
    pub counters: SvcCounters,
}

/// Reads every service entry and its counters from the maps pinned under `pin_dir`, without
/// taking the maps over.
pub fn read_counters(pin_dir: &Path) -> Result<Vec<(SvcKey, SvcVal, SvcCounters)>, MapError> {
    let svc: TypedMap<SvcKey, SvcVal> =
        TypedMap::open_pinned(&pin_dir.join(names::SVC), names::SVC)?;
    let ctr: TypedMap<u32, SvcCounters> =
        TypedMap::open_pinned(&pin_dir.join(names::COUNTERS), names::COUNTERS)?;
    let ncpus = bpf_sys::possible_cpus().map_err(|source| MapError::Syscall {
        name: names::COUNTERS.to_string(),
        op: "count possible CPUs",
        source,
    })?;
    let mut out = Vec::new();
    for (k, v) in svc.entries_batch()? {
        let mut sum = SvcCounters::default();
        if let Some(per) = ctr.percpu_get(&v.svc_id, ncpus)? {
            for c in &per {
                sum.add(c);
            }
        }
        out.push((k, v, sum));
    }
    out.sort_by_key(|(_, v, _)| v.svc_id);
    Ok(out)
}
