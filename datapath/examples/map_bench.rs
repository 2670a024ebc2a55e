//! Benchmark: time to program N services x 10 backends into the BPF maps (batch updates), and
//! the latency of changing one backend of one service afterwards. Needs root (mounts a private
//! bpffs under /tmp, removed at the end).
//!
//!     cargo run --release -p datapath --example map_bench [-- 1000 10000 100000]

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use datapath::loader::{Datapath, LoadConfig};
use datapath::plan::{
    BackendAddr, Frontend, FrontendKind, NoBackends, Protocol, Selection, ServicePlan,
};
use datapath::writer::{Writer, WriterConfig};

const BACKENDS: u32 = 10;

fn plans(n: u32) -> Vec<ServicePlan> {
    (0..n)
        .map(|i| ServicePlan {
            service: format!("bench/s{i}"),
            frontend: Frontend {
                // 10.99.0.0/16 only: 65536 addresses x ports 80/81 covers 100,000 services.
                addr: IpAddr::V4(Ipv4Addr::from(0x0a63_0000 + (i % 65536))),
                port: 80 + (i / 65536) as u16,
                proto: Protocol::Tcp,
                kind: FrontendKind::ClusterIp,
            },
            active: (0..BACKENDS)
                .map(|b| BackendAddr {
                    addr: IpAddr::V4(Ipv4Addr::from(0x0a63_0000 + ((i * BACKENDS + b) % 65536))),
                    port: 1024 + ((i * BACKENDS + b) / 65536) as u16,
                    local: true,
                })
                .collect(),
            terminating: Vec::new(),
            selection: Selection::Random,
            affinity_timeout: None,
            source_ranges: Vec::new(),
            no_backends: NoBackends::Reject,
        })
        .collect()
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
    for n in sizes {
        let dir = PathBuf::from(format!("/tmp/bgplane-dp-bench-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let _dp = Datapath::load(&LoadConfig::new(&dir)).expect("load (root needed)");
        let mut w = Writer::open(&dir, WriterConfig::new(vec![])).expect("writer");
        let mut ps = plans(n);

        let t = Instant::now();
        let st = w.apply(&ps).expect("apply");
        let full = t.elapsed();

        let t = Instant::now();
        let noop = w.apply(&ps).expect("re-apply");
        let idle = t.elapsed();
        assert_eq!(noop.writes(), 0);

        // One backend of one service changes (a new pod IP in the middle of the table).
        let k = (n / 2) as usize;
        ps[k].active[3].port = 9999;
        let t = Instant::now();
        let one = w.apply(&ps).expect("one change");
        let change = t.elapsed();

        let t = Instant::now();
        let mut w2 = Writer::open(&dir, WriterConfig::new(vec![])).expect("adopt");
        let adopt_read = t.elapsed();
        let t = Instant::now();
        let adopted = w2.apply(&ps).expect("adopt apply");
        let adopt_apply = t.elapsed();

        println!(
            "services={n} backends={} | program all: {:.3} s ({} svc, {} backends, {} slots written) | \
             re-apply unchanged: {:.1} ms | one-backend change: {:.2} ms ({} writes) | \
             restart adopt: read {:.3} s, reconcile {:.1} ms ({} writes)",
            n * BACKENDS,
            full.as_secs_f64(),
            st.services_written,
            st.backends_written,
            st.slots_written,
            idle.as_secs_f64() * 1e3,
            change.as_secs_f64() * 1e3,
            one.writes(),
            adopt_read.as_secs_f64(),
            adopt_apply.as_secs_f64() * 1e3,
            adopted.writes(),
        );
        drop(w);
        drop(w2);
        drop(_dp);
        let _ = Command::new("umount").arg("-l").arg(&dir).status();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
