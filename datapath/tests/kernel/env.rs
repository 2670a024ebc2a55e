//! Test fixtures: a private bpffs per test, threads in other network namespaces, and guards that
//! clean up on panic too.

use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;

use datapath::plan::{
    BackendAddr, Frontend, FrontendKind, NoBackends, Protocol, Selection, ServicePlan,
};
use datapath::writer::WriterConfig;

pub fn sh(cmd: &str) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A bpffs mounted at a fresh directory, unmounted and removed on drop.
pub struct Bpffs {
    pub path: PathBuf,
}

impl Bpffs {
    pub fn new(tag: &str) -> Self {
        let path = PathBuf::from(format!("/tmp/bgplane-dp-{tag}-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&path);
        sh(&format!("mount -t bpf bpf {}", path.display()));
        Bpffs { path }
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Runs `f` on a thread inside network namespace `ns` (a name under /run/netns, or None for a
/// fresh anonymous one) and returns its result. Sockets made there stay in that namespace.
pub fn in_netns<T: Send + 'static>(ns: Option<&str>, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = ns.map(|n| n.to_string());
    std::thread::spawn(move || {
        match ns {
            Some(n) => {
                let file = std::fs::File::open(format!("/run/netns/{n}")).expect("open netns");
                // SAFETY: setns on this thread only, with a valid netns fd.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns {n}: {}", std::io::Error::last_os_error());
            }
            None => {
                // SAFETY: unshare affects this thread only.
                let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
            }
        }
        f()
    })
    .join()
    .expect("netns thread panicked")
}

/// Runs `f` in a fresh anonymous network namespace with a private bpffs tagged `tag` (maps per
/// test); the bpffs is unmounted once `f` returns or panics.
pub fn in_netns_with_bpffs<T: Send + 'static>(
    tag: &str,
    f: impl FnOnce(&Bpffs) -> T + Send + 'static,
) -> T {
    let fs = Bpffs::new(tag);
    in_netns(None, move || f(&fs))
}

/// Test Maglev: entry i -> backend i mod n (the datapath only needs *a* table).
pub fn rr_maglev(backends: &[BackendAddr], size: u32) -> Vec<u32> {
    (0..size)
        .map(|i| i % backends.len().max(1) as u32)
        .collect()
}

pub fn writer_cfg(node_addrs: Vec<IpAddr>) -> WriterConfig {
    WriterConfig {
        node_addrs,
        maglev: rr_maglev,
    }
}

pub fn be(addr: &str, port: u16, local: bool) -> BackendAddr {
    BackendAddr {
        addr: addr.parse().expect("backend addr"),
        port,
        local,
    }
}

pub fn plan(
    name: &str,
    kind: FrontendKind,
    addr: &str,
    port: u16,
    proto: Protocol,
    active: Vec<BackendAddr>,
) -> ServicePlan {
    ServicePlan {
        service: format!("test/{name}"),
        frontend: Frontend {
            addr: addr.parse().expect("frontend addr"),
            port,
            proto,
            kind,
        },
        active,
        terminating: Vec::new(),
        selection: Selection::Random,
        affinity_timeout: None,
        source_ranges: Vec::new(),
        no_backends: NoBackends::Reject,
    }
}
