//! The `Lab` guard: namespaces, veth links, shared LAN segments and address blocks for one test,
//! and the cleanup (processes by PID, namespaces, temp dirs) that runs in Drop, panic or not.
//!
//! Nothing is created in the host namespace: both ends of every veth are created inside lab
//! namespaces (`ip -n A link add .. peer name .. netns B`), so interface names only need to be
//! unique per namespace and two labs can never clash on them.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::process::{run_with_timeout, tail_file, Process, TERM_GRACE};

/// Everything a lab writes lives under here (short, so unix socket paths stay < 108 bytes).
pub const LAB_ROOT: &str = "/tmp/bgplane-lab";
/// Prefix of every lab namespace name: `bl-PID-SEQ-TEST-NODE`.
const NETNS_PREFIX: &str = "bl-";
/// Default timeout of one-shot commands run in a namespace.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);
const MAX_IFNAME: usize = 15;

static LAB_SEQ: AtomicU32 = AtomicU32::new(0);
static SWEEP: Once = Once::new();

/// One test's network lab. Create it first in the test, keep it alive until the end; dropping it
/// stops every process it started, deletes its namespaces and removes its directory.
pub struct Lab {
    test: String,
    prefix: String,
    dir: PathBuf,
    block: Block,
    v4_used: Mutex<u32>,
    v6_used: Mutex<u32>,
    namespaces: Mutex<Vec<String>>,
    node_names: Mutex<HashSet<String>>,
    processes: Mutex<Vec<Process>>,
    logs: Mutex<Vec<(String, PathBuf)>>,
}

/// A network namespace of the lab (one router, the node under test, a switch...).
#[derive(Clone)]
pub struct Node {
    name: String,
    netns: String,
    dir: PathBuf,
    fd: Arc<File>,
    ifaces: Arc<AtomicU32>,
}

/// One end of a link or a port on a segment: an interface with one IPv4 and one IPv6 address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iface {
    /// The node's short name (as given to `Lab::node`).
    pub node: String,
    pub ifname: String,
    pub v4: Ipv4Addr,
    pub v4_prefix_len: u8,
    pub v6: Ipv6Addr,
    pub v6_prefix_len: u8,
}

impl Iface {
    pub fn addr(&self, family: AddrFamily) -> IpAddr {
        match family {
            AddrFamily::V4 => IpAddr::V4(self.v4),
            AddrFamily::V6 => IpAddr::V6(self.v6),
        }
    }
}

/// Which transport address family to pick from an `Iface`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrFamily {
    V4,
    V6,
}

/// A point-to-point veth link: `a` is in the first node given to `Lab::link`, `b` in the second.
#[derive(Clone, Debug)]
pub struct Link {
    pub a: Iface,
    pub b: Iface,
}

/// A shared LAN segment: a bridge inside its own "switch" namespace; every attached node gets a
/// veth whose other end is a bridge port.
pub struct Segment {
    name: String,
    switch: Node,
    v4_base: Ipv4Addr,
    v4_prefix_len: u8,
    v4_hosts: u32,
    v6_base: Ipv6Addr,
    next_host: AtomicU32,
}

/// The lab's share of 10.99.0.0/16 and fd00:99::/48: 10.99.N.0/24 and fd00:99:0:NN00::/56.
/// Held through an exclusive flock on /tmp/bgplane-lab/blocks/N.lock, so labs in other threads
/// and other test binaries never get the same block; the kernel drops the lock if we die.
struct Block {
    index: u8,
    _lock: File,
}

impl Block {
    fn acquire(seed: u64) -> Result<Block> {
        let dir = Path::new(LAB_ROOT).join("blocks");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for i in 0..256u64 {
            let index = ((seed + i) % 256) as u8;
            let path = dir.join(format!("{index:03}.lock"));
            let file = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            // SAFETY: plain syscall on an fd we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(Block { index, _lock: file });
            }
        }
        bail!("all 256 lab address blocks (10.99.N.0/24) are held by other running labs")
    }
}

/// Reasons this machine cannot run lab tests, if any (not root, no `ip`, missing binaries).
pub fn missing_capabilities(binaries: &[&str]) -> Option<String> {
    // SAFETY: plain syscall.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root (network namespaces need CAP_SYS_ADMIN)".into());
    }
    let mut missing = Vec::new();
    for bin in std::iter::once(&"ip").chain(binaries) {
        if find_binary(bin).is_none() {
            missing.push(*bin);
        }
    }
    if missing.is_empty() {
        None
    } else {
        Some(format!(
            "missing binaries: {} (install with scripts/install-deps.sh)",
            missing.join(", ")
        ))
    }
}

/// Looks a program up like the shell does (absolute paths are checked as they are).
pub fn find_binary(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into(), "/usr/lib/frr".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Skips the current test (returns `Ok(())` from it) when the machine lacks root or one of the
/// named binaries, printing exactly why. With `BGPLANE_LAB_REQUIRED=1` (CI) it fails instead.
#[macro_export]
macro_rules! skip_unless {
    ($($bin:expr),* $(,)?) => {
        if let Some(why) = $crate::missing_capabilities(&[$($bin),*]) {
            if std::env::var_os("BGPLANE_LAB_REQUIRED").is_some_and(|v| v == "1") {
                panic!("BGPLANE_LAB_REQUIRED=1 but this machine cannot run lab tests: {why}");
            }
            eprintln!("SKIPPED {}: {}", module_path!(), why);
            return Ok(());
        }
    };
}

fn sanitize(name: &str, max: usize) -> String {
    // Test names come as module::path::name; the last part is the informative one.
    let last = name.rsplit("::").next().unwrap_or(name);
    let s: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(max)
        .collect();
    if s.is_empty() {
        "x".into()
    } else {
        s
    }
}

fn ip_cmd(args: &[&str]) -> Result<()> {
    let mut cmd = Command::new("ip");
    cmd.args(args);
    let out = run_with_timeout(cmd, COMMAND_TIMEOUT)?;
    if !out.status.success() {
        bail!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Deletes namespaces and directories left behind by lab processes that no longer exist
/// (a test binary killed with SIGKILL cannot run its Drop). Their daemons died with them
/// (parent-death signal), so this only removes names and files.
fn sweep_stale() {
    let owner = |name: &str| -> Option<u32> {
        name.strip_prefix(NETNS_PREFIX)?
            .split('-')
            .next()?
            .parse()
            .ok()
    };
    if let Ok(entries) = std::fs::read_dir("/run/netns") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = owner(&name) {
                if !pid_alive(pid) {
                    let _ = ip_cmd(&["netns", "del", &name]);
                }
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(LAB_ROOT) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = owner(&name) {
                if !pid_alive(pid) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
}

impl Lab {
    /// A new lab for the test `test` (pass the test function's name). Namespace names are
    /// `bl-PID-SEQ-TEST-NODE`, unique across threads and processes.
    pub fn new(test: &str) -> Result<Lab> {
        SWEEP.call_once(sweep_stale);
        let pid = std::process::id();
        let seq = LAB_SEQ.fetch_add(1, Ordering::Relaxed);
        let short = sanitize(test, 14);
        let prefix = format!("{NETNS_PREFIX}{pid}-{seq}-{short}");
        let mut h = DefaultHasher::new();
        (test, pid, seq).hash(&mut h);
        let block = Block::acquire(h.finish())?;
        let dir = Path::new(LAB_ROOT).join(&prefix);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Lab {
            test: test.to_string(),
            prefix,
            dir,
            block,
            v4_used: Mutex::new(0),
            v6_used: Mutex::new(0),
            namespaces: Mutex::new(Vec::new()),
            node_names: Mutex::new(HashSet::new()),
            processes: Mutex::new(Vec::new()),
            logs: Mutex::new(Vec::new()),
        })
    }

    pub fn test_name(&self) -> &str {
        &self.test
    }

    /// Prefix shared by all of this lab's namespace names.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The lab's temp directory (removed on drop).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The lab's IPv4 block, 10.99.N.0/24.
    pub fn v4_block(&self) -> ipnet::Ipv4Net {
        ipnet::Ipv4Net::new(Ipv4Addr::new(10, 99, self.block.index, 0), 24).unwrap_or_default()
    }

    /// The lab's IPv6 block, fd00:99:0:NN00::/56.
    pub fn v6_block(&self) -> ipnet::Ipv6Net {
        let seg = (self.block.index as u16) << 8;
        ipnet::Ipv6Net::new(Ipv6Addr::new(0xfd00, 0x99, 0, seg, 0, 0, 0, 0), 56).unwrap_or_default()
    }

    /// Names of every namespace this lab created.
    pub fn namespaces(&self) -> Vec<String> {
        lock(&self.namespaces).clone()
    }

    /// Every process this lab started.
    pub fn processes(&self) -> Vec<Process> {
        lock(&self.processes).clone()
    }

    /// Creates a namespace for node `name` (short: letters, digits, `_`), with `lo` up.
    pub fn node(&self, name: &str) -> Result<Node> {
        if name.is_empty()
            || name.len() > 12
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            bail!("node name {name:?} must be 1-12 letters, digits or '_'");
        }
        if !lock(&self.node_names).insert(name.to_string()) {
            bail!("lab {} already has a node named {name:?}", self.prefix);
        }
        let netns = format!("{}-{name}", self.prefix);
        ip_cmd(&["netns", "add", &netns])?;
        lock(&self.namespaces).push(netns.clone());
        ip_cmd(&["-n", &netns, "link", "set", "lo", "up"])?;
        let path = format!("/run/netns/{netns}");
        let fd = File::open(&path).with_context(|| format!("opening {path}"))?;
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let node = Node {
            name: name.to_string(),
            netns,
            dir,
            fd: Arc::new(fd),
            ifaces: Arc::new(AtomicU32::new(0)),
        };
        // No duplicate address detection in the lab (link-local addresses included), so IPv6
        // is usable as soon as a link is up.
        node.run_ok(&[
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
        ])?;
        Ok(node)
    }

    /// Reserves `size` (a power of two) consecutive IPv4 addresses from the lab's /24.
    fn alloc_v4(&self, size: u32) -> Result<Ipv4Addr> {
        let mut used = lock(&self.v4_used);
        let start = (*used + size - 1) & !(size - 1);
        if start + size > 256 {
            bail!(
                "lab {}: IPv4 block {} exhausted",
                self.prefix,
                self.v4_block()
            );
        }
        *used = start + size;
        Ok(Ipv4Addr::new(10, 99, self.block.index, start as u8))
    }

    /// Reserves one /64 from the lab's /56.
    fn alloc_v6(&self) -> Result<Ipv6Addr> {
        let mut used = lock(&self.v6_used);
        if *used >= 256 {
            bail!(
                "lab {}: IPv6 block {} exhausted",
                self.prefix,
                self.v6_block()
            );
        }
        let seg = ((self.block.index as u16) << 8) | (*used as u16);
        *used += 1;
        Ok(Ipv6Addr::new(0xfd00, 0x99, 0, seg, 0, 0, 0, 0))
    }

    /// A veth pair between `a` and `b`, with a /30 and a /64: `a` gets .1 / ::1, `b` .2 / ::2.
    pub fn link(&self, a: &Node, b: &Node) -> Result<Link> {
        if a.netns == b.netns {
            bail!("cannot link node {} to itself", a.name);
        }
        let v4 = self.alloc_v4(4)?;
        let v6 = self.alloc_v6()?;
        let ia = a.next_ifname(&b.name);
        let ib = b.next_ifname(&a.name);
        ip_cmd(&[
            "-n", &a.netns, "link", "add", &ia, "type", "veth", "peer", "name", &ib, "netns",
            &b.netns,
        ])?;
        let a_if = configure_iface(a, &ia, offset_v4(v4, 1), 30, offset_v6(v6, 1))?;
        let b_if = configure_iface(b, &ib, offset_v4(v4, 2), 30, offset_v6(v6, 2))?;
        Ok(Link { a: a_if, b: b_if })
    }

    /// A LAN segment for up to `hosts` nodes: a bridge in a switch namespace `sw_NAME`, with a
    /// subnet sized for it (at most 254 hosts) and one /64.
    pub fn segment(&self, name: &str, hosts: u32) -> Result<Segment> {
        let size = (hosts + 2).next_power_of_two().max(4);
        if size > 256 {
            bail!("segment {name}: {hosts} hosts do not fit in the lab's /24");
        }
        let v4_base = self.alloc_v4(size)?;
        let v6_base = self.alloc_v6()?;
        let switch = self.node(&format!("sw_{}", sanitize(name, 9)))?;
        switch.ip(&[
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ])?;
        switch.ip(&["link", "set", "br0", "up"])?;
        Ok(Segment {
            name: name.to_string(),
            switch,
            v4_base,
            v4_prefix_len: (32 - size.trailing_zeros()) as u8,
            v4_hosts: size - 2,
            v6_base,
            next_host: AtomicU32::new(1),
        })
    }

    /// Starts `cmd` (from `node.command(..)`) as a managed process named `name`; its output goes
    /// to NODE_DIR/NAME.out. It is stopped when the lab is dropped at the latest.
    pub fn spawn(&self, node: &Node, name: &str, cmd: Command) -> Result<Process> {
        let out = node.dir.join(format!("{name}.out"));
        let p = Process::spawn(&format!("{name}@{}", node.name), cmd, &out)?;
        lock(&self.processes).push(p.clone());
        self.register_log(&format!("{name}@{} output", node.name), &out);
        Ok(p)
    }

    /// Names a log file whose tail is printed if the test panics while the lab is alive.
    pub fn register_log(&self, label: &str, path: &Path) {
        lock(&self.logs).push((label.to_string(), path.to_path_buf()));
    }

    fn cleanup(&mut self) {
        let procs: Vec<Process> = std::mem::take(&mut *lock(&self.processes));
        // SIGTERM everything first so daemons shut down in parallel, then reap each.
        for p in &procs {
            if p.is_running() {
                let _ = p.signal(libc::SIGTERM);
                let _ = p.signal(libc::SIGCONT);
            }
        }
        for p in &procs {
            if let Err(e) = p.terminate(TERM_GRACE) {
                eprintln!("lab {}: stopping {p:?}: {e:#}", self.prefix);
            }
        }
        for ns in std::mem::take(&mut *lock(&self.namespaces)).iter().rev() {
            if let Err(e) = ip_cmd(&["netns", "del", ns]) {
                eprintln!("lab {}: {e:#}", self.prefix);
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            if e.kind() != io::ErrorKind::NotFound {
                eprintln!("lab {}: removing {}: {e}", self.prefix, self.dir.display());
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "lab {} (test {}) is being torn down after a panic; logs:",
                self.prefix, self.test
            );
            for (label, path) in lock(&self.logs).iter() {
                eprintln!(
                    "--- {label} ({}) ---\n{}",
                    path.display(),
                    tail_file(path, 25)
                );
            }
        }
        self.cleanup();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn offset_v4(base: Ipv4Addr, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(base) + n)
}

fn offset_v6(base: Ipv6Addr, n: u32) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(base) + n as u128)
}

fn configure_iface(
    node: &Node,
    ifname: &str,
    v4: Ipv4Addr,
    v4_len: u8,
    v6: Ipv6Addr,
) -> Result<Iface> {
    node.ip(&["addr", "add", &format!("{v4}/{v4_len}"), "dev", ifname])?;
    node.ip(&["addr", "add", &format!("{v6}/64"), "dev", ifname, "nodad"])?;
    node.ip(&["link", "set", ifname, "up"])?;
    Ok(Iface {
        node: node.name.clone(),
        ifname: ifname.to_string(),
        v4,
        v4_prefix_len: v4_len,
        v6,
        v6_prefix_len: 64,
    })
}

impl Node {
    /// The short name given to `Lab::node`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace name (for `ip netns exec NAME ...`).
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// This node's directory inside the lab's temp dir (configs, sockets, logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn next_ifname(&self, peer: &str) -> String {
        let n = self.ifaces.fetch_add(1, Ordering::Relaxed);
        let mut s = format!("e{n}{peer}");
        s.truncate(MAX_IFNAME);
        s
    }

    /// A `Command` for `program` that runs inside this namespace (setns before exec). Pass it to
    /// `Lab::spawn` for a long-running process or to `Node::run` for a one-shot command.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        let fd = Arc::clone(&self.fd);
        // SAFETY: setns is a plain syscall, async-signal-safe; the fd stays open via the Arc the
        // closure owns.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd
    }

    /// Runs a one-shot command in the namespace and returns its output (any exit status);
    /// killed after `COMMAND_TIMEOUT`.
    pub fn run(&self, argv: &[&str]) -> Result<Output> {
        self.run_timeout(argv, COMMAND_TIMEOUT)
    }

    pub fn run_timeout(&self, argv: &[&str], timeout: Duration) -> Result<Output> {
        let Some((prog, args)) = argv.split_first() else {
            bail!("empty command line");
        };
        let mut cmd = self.command(prog);
        cmd.args(args);
        run_with_timeout(cmd, timeout).with_context(|| format!("in namespace {}", self.netns))
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn run_ok(&self, argv: &[&str]) -> Result<String> {
        let out = self.run(argv)?;
        if !out.status.success() {
            bail!(
                "`{}` in {} failed ({}): {}{}",
                argv.join(" "),
                self.netns,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `ip ARGS` in this namespace.
    pub fn ip(&self, args: &[&str]) -> Result<()> {
        let mut full = vec!["-n", self.netns.as_str()];
        full.extend_from_slice(args);
        ip_cmd(&full)
    }

    /// Pings `addr` from this namespace until one reply arrives, for up to 5 s (a fresh link may
    /// need a moment); Err with ping's last output otherwise.
    pub fn ping(&self, addr: IpAddr) -> Result<()> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            match self.ping_once(addr) {
                Ok(()) => return Ok(()),
                Err(e) if std::time::Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Exactly one ping to `addr` with a 1 s timeout (for "must not be reachable" checks).
    pub fn ping_once(&self, addr: IpAddr) -> Result<()> {
        let a = addr.to_string();
        let out = self.run(&["ping", "-n", "-c", "1", "-W", "1", &a])?;
        if !out.status.success() {
            bail!(
                "ping {a} from {} got no reply: {}{}",
                self.name,
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

impl Segment {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The switch namespace holding the bridge `br0` (e.g. for tcpdump on a port).
    pub fn switch(&self) -> &Node {
        &self.switch
    }

    /// Connects `node` to the segment: a veth with one end in `node`, the other a port of the
    /// bridge. Hosts get consecutive addresses (.1, .2, ... and ::1, ::2, ...).
    pub fn attach(&self, node: &Node) -> Result<Iface> {
        let host = self.next_host.fetch_add(1, Ordering::Relaxed);
        if host > self.v4_hosts {
            bail!("segment {} is full ({} hosts)", self.name, self.v4_hosts);
        }
        let ifname = node.next_ifname(&self.name);
        let port = format!("p{host}");
        node.ip(&[
            "link",
            "add",
            &ifname,
            "type",
            "veth",
            "peer",
            "name",
            &port,
            "netns",
            &self.switch.netns,
        ])?;
        self.switch.ip(&["link", "set", &port, "master", "br0"])?;
        self.switch.ip(&["link", "set", &port, "up"])?;
        configure_iface(
            node,
            &ifname,
            offset_v4(self.v4_base, host),
            self.v4_prefix_len,
            offset_v6(self.v6_base, host),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_keeps_last_path_part_short_and_safe() {
        assert_eq!(sanitize("harness::frr_bird-IPv4", 14), "frr_bird_ipv4");
        assert_eq!(
            sanitize("a_very_long_test_name_indeed", 14),
            "a_very_long_te"
        );
        assert_eq!(sanitize("::", 5), "x");
    }

    #[test]
    fn blocks_are_exclusive_while_held() {
        let a = Block::acquire(7).unwrap();
        let b = Block::acquire(7).unwrap();
        assert_ne!(a.index, b.index, "two live labs got the same address block");
        let ia = a.index;
        drop(a);
        // Still exclusive after a release and a new acquire.
        let c = Block::acquire(ia as u64).unwrap();
        assert_ne!(c.index, b.index);
    }
}
