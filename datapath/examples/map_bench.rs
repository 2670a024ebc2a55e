//! Benchmark: time to program N services x 10 backends into the BPF maps, to re-apply them
//! unchanged, to change one service (a backend added / removed / turned terminating, through
//! `apply_changes` and through a full `apply`), and to adopt the maps after a restart. One
//! service in 1000 uses Maglev (table 16381); the others random selection. Needs root (mounts a
//! private bpffs under /tmp, removed at the end).
//!
//!     cargo run --release -p datapath --example map_bench [-- [--program-only] 1000 10000 100000]
//!
//! `--program-only` stops after "program all from empty" (to profile that path alone, e.g.
//! under `perf record`).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use datapath::loader::{Datapath, LoadConfig};
use datapath::plan::{
    BackendAddr, Frontend, FrontendKind, NoBackends, Protocol, Selection, ServicePlan,
};
use datapath::writer::{Writer, WriterConfig};

const BACKENDS: u32 = 10;
const MAGLEV_EVERY: u32 = 1000;
const CHANGES: usize = 100;

fn backend(n: u32) -> BackendAddr {
    BackendAddr {
        // 10.99.0.0/16 only: 65536 addresses x ports from 1024 cover 1M+ backends.
        addr: IpAddr::V4(Ipv4Addr::from(0x0a63_0000 + (n % 65536))),
        port: 1024 + (n / 65536) as u16,
        local: true,
    }
}

fn plans(n: u32) -> Vec<ServicePlan> {
    (0..n)
        .map(|i| ServicePlan {
            service: format!("bench/s{i}"),
            frontend: Frontend {
                addr: IpAddr::V4(Ipv4Addr::from(0x0a63_0000 + (i % 65536))),
                port: 80 + (i / 65536) as u16,
                proto: Protocol::Tcp,
                kind: FrontendKind::ClusterIp,
            },
            active: (0..BACKENDS).map(|b| backend(i * BACKENDS + b)).collect(),
            terminating: Vec::new(),
            selection: if i % MAGLEV_EVERY == MAGLEV_EVERY - 1 {
                Selection::Maglev { table_size: 16381 }
            } else {
                Selection::Random
            },
            affinity_timeout: None,
            source_ranges: Vec::new(),
            no_backends: NoBackends::Reject,
        })
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Median and max in ms.
fn stats(mut v: Vec<Duration>) -> String {
    v.sort();
    format!(
        "median {:.3} ms, max {:.3} ms",
        ms(v[v.len() / 2]),
        ms(v[v.len() - 1])
    )
}

fn main() {
    let sizes: Vec<u32> = {
        let a: Vec<u32> = std::env::args()
            .skip(1)
            .filter_map(|a| a.parse().ok())
            .collect();
        if a.is_empty() {
            vec![1000, 10000, 100000]
        } else {
            a
        }
    };
    let program_only = std::env::args().any(|a| a == "--program-only");
    for n in sizes {
        let dir = PathBuf::from(format!("/tmp/bgplane-dp-bench-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let _dp = Datapath::load(&LoadConfig::new(&dir)).expect("load (root needed)");
        let mut w = Writer::open(&dir, WriterConfig::new(vec![])).expect("writer");
        let mut ps = plans(n);
        println!(
            "== {n} services x {BACKENDS} backends ({} Maglev 16381, the rest random)",
            n / MAGLEV_EVERY
        );

        let t = Instant::now();
        let st = w.apply(&ps).expect("apply");
        println!(
            "program all from empty:     {:8.1} ms  ({} svc, {} backends, {} slots, {} Maglev tables)",
            ms(t.elapsed()),
            st.services_written,
            st.backends_written,
            st.slots_written,
            st.maglev_tables
        );

        if program_only {
            drop(w);
            drop(_dp);
            let _ = Command::new("umount").arg("-l").arg(&dir).status();
            let _ = std::fs::remove_dir_all(&dir);
            continue;
        }

        let t = Instant::now();
        let noop = w.apply(&ps).expect("re-apply");
        println!(
            "re-apply unchanged:         {:8.1} ms  ({} writes)",
            ms(t.elapsed()),
            noop.writes()
        );

        // Single-service changes through apply_changes, spread over the table.
        let mut next_be = n * BACKENDS;
        for what in ["add a backend", "remove a backend", "turn one terminating"] {
            let mut lat = Vec::new();
            let mut writes = 0;
            for j in 0..CHANGES {
                let k = (j * 7919 + 13) % n as usize;
                let p = &mut ps[k];
                match what {
                    "add a backend" => {
                        p.active.push(backend(next_be));
                        next_be += 1;
                    }
                    "remove a backend" => {
                        p.active.pop();
                    }
                    _ => {
                        if let Some(b) = p.active.pop() {
                            p.terminating.push(b);
                        }
                    }
                }
                let changed = [p.clone()];
                let t = Instant::now();
                let st = w.apply_changes(&changed, &[]).expect("change");
                lat.push(t.elapsed());
                writes += st.writes();
            }
            println!(
                "one service, {what:21} {}  ({:.1} writes each, apply_changes)",
                stats(lat),
                writes as f64 / CHANGES as f64
            );
        }
        // Maglev services: one backend added.
        let mut lat = Vec::new();
        for j in 0..(n / MAGLEV_EVERY).min(CHANGES as u32) {
            let k = (j * MAGLEV_EVERY + MAGLEV_EVERY - 1) as usize;
            ps[k].active.push(backend(next_be));
            next_be += 1;
            let changed = [ps[k].clone()];
            let t = Instant::now();
            w.apply_changes(&changed, &[]).expect("maglev change");
            lat.push(t.elapsed());
        }
        if !lat.is_empty() {
            println!(
                "one Maglev service, add:    {}  ({} changes, table recomputed)",
                stats(lat.clone()),
                lat.len()
            );
        }
        // The same kind of change through a full apply of every plan.
        let mut lat = Vec::new();
        for j in 0..10 {
            let k = (j * 7919 + 17) % n as usize;
            ps[k].active.push(backend(next_be));
            next_be += 1;
            let t = Instant::now();
            let st = w.apply(&ps).expect("full apply, one change");
            lat.push(t.elapsed());
            assert!(st.services_written == 1, "{st:?}");
        }
        println!("one service via full apply: {}  (10 changes)", stats(lat));

        drop(w);
        let t = Instant::now();
        let mut w2 = Writer::open(&dir, WriterConfig::new(vec![])).expect("adopt");
        let adopt_read = t.elapsed();
        let t = Instant::now();
        let adopted = w2.apply(&ps).expect("adopt apply");
        println!(
            "restart: adopt {:.1} ms, reconcile {:.1} ms ({} writes, {} frontends claimed as adopted)",
            ms(adopt_read),
            ms(t.elapsed()),
            adopted.writes(),
            adopted.frontends_adopted
        );
        let t = Instant::now();
        let c = w2.counters().expect("counters");
        println!(
            "read counters of {} services: {:.1} ms",
            c.len(),
            ms(t.elapsed())
        );
        drop(w2);
        drop(_dp);
        let _ = Command::new("umount").arg("-l").arg(&dir).status();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
