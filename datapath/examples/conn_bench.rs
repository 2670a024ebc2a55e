//! Benchmark (not a test): new TCP connections/s through the node, side by side in one run, for
//! N services, in three modes:
//! - `no-lb`: the client connects straight to a backend address, routed by the node with
//!   nothing else on it (the ceiling);
//! - `iptables`: kube-proxy-style nat rules in the node namespace (KUBE-SERVICES -> KUBE-SVC-x
//!   with the statistic match per endpoint -> KUBE-SEP-x DNAT, from PREROUTING and OUTPUT), the
//!   measured service last in KUBE-SERVICES, loaded by iptables-restore;
//! - `bgplane`: lb.c on the node's client-facing device, the same services written through
//!   `Writer::apply`.
//!
//! Every service has 10 endpoints; the measured one is the LAST of N and its endpoints are ten
//! addresses of one nginx in the backend namespace, so all modes share one client, one server and
//! one path (client ns -> node ns -> backend ns) and only the node differs. The other services'
//! endpoints are addresses nobody answers on (they are never dialled).
//!
//! Each mode gets its own set of fresh namespaces (names carry this process's id), built and
//! programmed before any measurement, so measurements of the modes are interleaved: each round
//! measures every mode once, starting one mode later than the round before, and the table shows
//! the median of the rounds and, per mode, the median of its rate over the same round's no-lb
//! rate.
//! Everything (nginx by PID, namespaces by name, the bpffs mount, the temp dir) is removed on
//! exit, on error and on Ctrl-C.
//!
//! Addresses (all inside the namespaces made here): client link 10.99.250.0/24 (node .1,
//! client .2); backend link 10.99.251.0/24 (node .1, nginx on .2-.11); VIP of service i:
//! 10.99.(1 + i/256).(i%256):80; fake endpoints in 10.99.128.0/17 (ports 1024+).
//!
//!     datapath/bench/conn-bench.sh [-- --services 1,1000,10000,30000 --secs 3 --rounds 5]
//!
//! Needs root, ab (apache2-utils) and nginx; the wrapper script installs them if missing.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use datapath::loader::{Datapath, LoadConfig};
use datapath::plan::{
    BackendAddr, Frontend, FrontendKind, NoBackends, Protocol, Selection, ServicePlan,
};
use datapath::writer::{Writer, WriterConfig};

const ENDPOINTS: u32 = 10;
const MAX_SERVICES: u32 = 127 * 256;
const NODE_CLIENT_IP: &str = "10.99.250.1";
const CLIENT_IP: &str = "10.99.250.2";
const NODE_BACKEND_IP: &str = "10.99.251.1";

/// ab and nginx run at a raised priority so other work on the (2-core) machine disturbs the
/// measurement less; the same for every mode.
const NICE: &str = "-n-10";

type Res<T> = Result<T, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    NoLb,
    Iptables,
    Bgplane,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::NoLb => "no-lb",
            Mode::Iptables => "iptables",
            Mode::Bgplane => "bgplane",
        }
    }
    fn parse(s: &str) -> Res<Mode> {
        match s {
            "no-lb" | "none" => Ok(Mode::NoLb),
            "iptables" => Ok(Mode::Iptables),
            "bgplane" => Ok(Mode::Bgplane),
            _ => Err(format!("unknown mode {s:?} (no-lb, iptables, bgplane)")),
        }
    }
}

#[derive(Debug, Clone)]
struct Args {
    services: Vec<u32>,
    modes: Vec<Mode>,
    secs: u32,
    warmup: u32,
    rounds: usize,
    concurrency: u32,
    /// iptables-restore binary. Default: the legacy (x_tables) backend, which on this machine
    /// both restores and matches faster than iptables-nft-restore (the stronger baseline).
    restore: String,
    /// Remote-backend case: bgplane SNATs to the node, iptables marks + MASQUERADEs.
    snat: bool,
}

fn usage() -> String {
    "conn_bench [--services 1,1000,10000,30000] [--modes no-lb,iptables,bgplane] [--secs 3] \
     [--warmup 1] [--rounds 5] [--concurrency 16] [--iptables-restore iptables-legacy-restore] [--snat]"
        .to_string()
}

fn parse_args() -> Res<Args> {
    let mut a = Args {
        services: vec![1, 1000, 10000, 30000],
        modes: vec![Mode::NoLb, Mode::Iptables, Mode::Bgplane],
        secs: 3,
        warmup: 1,
        rounds: 5,
        concurrency: 16,
        restore: "iptables-legacy-restore".into(),
        snat: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = || {
            it.next()
                .ok_or_else(|| format!("{k} needs a value\n{}", usage()))
        };
        let num = |v: String| -> Res<u32> {
            v.parse().map_err(|_| format!("{k}: {v:?} is not a number"))
        };
        match k.as_str() {
            "--services" => {
                a.services = val()?
                    .split(',')
                    .map(|s| {
                        s.trim()
                            .parse::<u32>()
                            .map_err(|_| format!("--services: {s:?} is not a number"))
                    })
                    .collect::<Res<_>>()?;
            }
            "--modes" => {
                a.modes = val()?.split(',').map(Mode::parse).collect::<Res<_>>()?;
            }
            "--secs" => a.secs = num(val()?)?,
            "--warmup" => a.warmup = num(val()?)?,
            "--rounds" => a.rounds = num(val()?)? as usize,
            "--concurrency" => a.concurrency = num(val()?)?,
            "--iptables-restore" => a.restore = val()?,
            "--snat" => a.snat = true,
            "-h" | "--help" => return Err(usage()),
            _ => return Err(format!("unknown argument {k:?}\n{}", usage())),
        }
    }
    if let Some(n) = a.services.iter().find(|n| **n == 0 || **n > MAX_SERVICES) {
        return Err(format!(
            "--services: {n} is outside 1..={MAX_SERVICES} (the VIP block)"
        ));
    }
    if a.secs == 0 || a.rounds == 0 || a.concurrency == 0 {
        return Err("--secs, --rounds and --concurrency must be at least 1".into());
    }
    Ok(a)
}

// ---------------------------------------------------------------------------------------------
// The services, the same for iptables and bgplane.

fn vip(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, 99, (1 + i / 256) as u8, (i % 256) as u8)
}

/// Endpoint `j` of service `i` of `n`: the last service's are the nginx addresses, the others'
/// are unique addr:port pairs in 10.99.128.0/17 that nobody dials.
fn endpoint(i: u32, j: u32, n: u32) -> (Ipv4Addr, u16) {
    if i == n - 1 {
        return (Ipv4Addr::new(10, 99, 251, 2 + j as u8), 80);
    }
    let k = i * ENDPOINTS + j;
    (
        Ipv4Addr::new(10, 99, (128 + (k / 256) % 120) as u8, (k % 256) as u8),
        1024 + (k / (256 * 120)) as u16,
    )
}

fn plans(n: u32, snat: bool) -> Vec<ServicePlan> {
    (0..n)
        .map(|i| ServicePlan {
            service: format!("bench/s{i}"),
            frontend: Frontend {
                addr: IpAddr::V4(vip(i)),
                port: 80,
                proto: Protocol::Tcp,
                kind: FrontendKind::LoadBalancer,
            },
            active: (0..ENDPOINTS)
                .map(|j| {
                    let (a, p) = endpoint(i, j, n);
                    BackendAddr {
                        addr: IpAddr::V4(a),
                        port: p,
                        local: !snat,
                    }
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

/// kube-proxy's chain-name hash: base32 of a SHA-256 prefix there; any stable 16-char name does
/// here (FNV-1a, hex).
fn chain_hash(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016X}")
}

/// The nat table kube-proxy (iptables mode) writes for these services. With more than 1,000
/// endpoints kube-proxy is in "large cluster mode" and leaves the comments off the KUBE-SVC and
/// KUBE-SEP rules; the KUBE-SERVICES rules keep theirs. `snat`: the service chain first marks
/// the packet for masquerade (kube-proxy's KUBE-EXT chain for externalTrafficPolicy Cluster),
/// and KUBE-POSTROUTING masquerades marked packets.
fn iptables_rules(n: u32, snat: bool) -> String {
    let large = n * ENDPOINTS > 1000;
    let mut chains = String::new();
    let mut rules = String::new();
    let chain = |c: &mut String, name: &str| {
        let _ = writeln!(c, ":{name} - [0:0]");
    };
    for c in ["KUBE-SERVICES", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"] {
        chain(&mut chains, c);
    }
    rules.push_str(
        "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
         -A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
         -A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n\
         -A KUBE-MARK-MASQ -j MARK --or-mark 0x4000\n\
         -A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n\
         -A KUBE-POSTROUTING -j MARK --xor-mark 0x4000\n\
         -A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" \
         -j MASQUERADE --random-fully\n",
    );
    for i in 0..n {
        let svc = format!("bench/s{i}:http");
        let svc_chain = format!("KUBE-SVC-{}", chain_hash(&svc));
        chain(&mut chains, &svc_chain);
        let _ = writeln!(
            rules,
            "-A KUBE-SERVICES -m comment --comment \"{svc} loadbalancer IP\" -d {}/32 -p tcp \
             -m tcp --dport 80 -j {svc_chain}",
            vip(i)
        );
        if snat {
            let _ = writeln!(
                rules,
                "-A {svc_chain} -m comment --comment \"masquerade traffic for {svc} external \
                 destinations\" -j KUBE-MARK-MASQ"
            );
        }
        for j in 0..ENDPOINTS {
            let (ep, port) = endpoint(i, j, n);
            let sep = format!("KUBE-SEP-{}", chain_hash(&format!("{svc}/{ep}:{port}")));
            chain(&mut chains, &sep);
            let comment = if large {
                String::new()
            } else {
                format!(" -m comment --comment \"{svc} -> {ep}:{port}\"")
            };
            let left = ENDPOINTS - j;
            let stat = if left > 1 {
                format!(
                    " -m statistic --mode random --probability {:.11}",
                    1.0 / left as f64
                )
            } else {
                String::new()
            };
            let _ = writeln!(rules, "-A {svc_chain}{comment}{stat} -j {sep}");
            let sep_comment = if large {
                String::new()
            } else {
                format!(" -m comment --comment {svc}")
            };
            let _ = writeln!(rules, "-A {sep}{sep_comment} -s {ep}/32 -j KUBE-MARK-MASQ");
            let _ = writeln!(
                rules,
                "-A {sep}{sep_comment} -m tcp -p tcp -j DNAT --to-destination {ep}:{port}"
            );
        }
    }
    format!("*nat\n{chains}{rules}COMMIT\n")
}

// ---------------------------------------------------------------------------------------------
// Namespaces, nginx, cleanup.

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn interrupted() -> Res<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        Err("interrupted".into())
    } else {
        Ok(())
    }
}

fn sh(cmd: &str) -> Res<String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running sh: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{cmd}` failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `f` on a thread that joined network namespace `ns`.
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> Res<T> + Send + 'static) -> Res<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).map_err(|e| format!("open {path}: {e}"))?;
        // SAFETY: setns affects this thread only; the fd is valid while `file` lives.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(format!("setns {path}: {}", std::io::Error::last_os_error()));
        }
        f()
    })
    .join()
    .map_err(|_| "netns thread panicked".to_string())?
}

/// One client / node / backend triple of namespaces with nginx in the backend, programmed for
/// one mode. Drop removes all of it.
struct Lab {
    mode: Mode,
    client: String,
    node: String,
    backend: String,
    dir: PathBuf,
    nginx: Option<Child>,
    bpffs: Option<PathBuf>,
    namespaces: Vec<String>,
    /// What programming the node took, for the table.
    program: String,
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut c) = self.nginx.take() {
            // nginx runs with master_process off: this PID is the whole server.
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in self.namespaces.drain(..).rev() {
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
        if let Some(b) = self.bpffs.take() {
            let _ = Command::new("umount").arg("-l").arg(&b).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Lab {
    fn new(mode: Mode, tag: usize) -> Res<Lab> {
        let id = format!(
            "{}{}-{}",
            mode.name().chars().next().unwrap_or('x'),
            tag,
            std::process::id()
        );
        let dir = PathBuf::from(format!("/tmp/bgplane-conn-bench-{id}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let mut lab = Lab {
            mode,
            client: format!("cbc-{id}"),
            node: format!("cbn-{id}"),
            backend: format!("cbb-{id}"),
            dir,
            nginx: None,
            bpffs: None,
            namespaces: Vec::new(),
            program: String::new(),
        };
        let (c, nd, b) = (lab.client.clone(), lab.node.clone(), lab.backend.clone());
        for ns in [&c, &nd, &b] {
            sh(&format!("ip netns add {ns}"))?;
            lab.namespaces.push(ns.clone());
            sh(&format!("ip -n {ns} link set lo up"))?;
        }
        let mut be_addrs = String::new();
        for j in 0..ENDPOINTS {
            let _ = write!(
                be_addrs,
                " && ip -n {b} addr add 10.99.251.{}/24 dev eth0",
                2 + j
            );
        }
        sh(&format!(
            "ip -n {nd} link add eth0 type veth peer name eth0 netns {c} && \
             ip -n {nd} addr add {NODE_CLIENT_IP}/24 dev eth0 && ip -n {nd} link set eth0 up && \
             ip -n {c} addr add {CLIENT_IP}/24 dev eth0 && ip -n {c} link set eth0 up && \
             ip -n {c} route add default via {NODE_CLIENT_IP} && \
             ip -n {nd} link add b0 type veth peer name eth0 netns {b} && \
             ip -n {nd} addr add {NODE_BACKEND_IP}/24 dev b0 && ip -n {nd} link set b0 up\
             {be_addrs} && ip -n {b} link set eth0 up && \
             ip -n {b} route add default via {NODE_BACKEND_IP} && \
             ip netns exec {nd} sysctl -qw net.ipv4.ip_forward=1 && \
             ip netns exec {c} sysctl -qw net.ipv4.ip_local_port_range='1024 65535' && \
             ip netns exec {b} sysctl -qw net.core.somaxconn=4096 net.ipv4.tcp_max_syn_backlog=4096"
        ))?;
        lab.start_nginx()?;
        Ok(lab)
    }

    fn start_nginx(&mut self) -> Res<()> {
        let d = self.dir.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\nworker_rlimit_nofile 65536;\n\
             events {{ worker_connections 16384; multi_accept on; }}\n\
             http {{\n  access_log off;\n  keepalive_timeout 0;\n\
               client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n\
               scgi_temp_path {d}/scgi;\n\
               server {{\n    listen 80 backlog=4096;\n\
                 location / {{ return 200 \"ok\\n\"; }}\n  }}\n}}\n"
        );
        let path = self.dir.join("nginx.conf");
        std::fs::write(&path, conf).map_err(|e| format!("write {}: {e}", path.display()))?;
        let log = std::fs::File::create(self.dir.join("nginx.out"))
            .map_err(|e| format!("nginx log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| format!("nginx log: {e}"))?;
        // `nice` and `ip netns exec` both exec, so the child PID is nginx's.
        let child = Command::new("nice")
            .args([NICE, "ip", "netns", "exec", &self.backend, "nginx", "-e"])
            .arg(self.dir.join("error.log"))
            .arg("-c")
            .arg(&path)
            .arg("-p")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("starting nginx: {e}"))?;
        self.nginx = Some(child);
        let to = SocketAddr::from((Ipv4Addr::new(10, 99, 251, 2), 80));
        let started = Instant::now();
        loop {
            let ok = in_netns(&self.client, move || {
                Ok(TcpStream::connect_timeout(&to, Duration::from_millis(200)).is_ok())
            })?;
            if ok {
                return Ok(());
            }
            if let Some(Ok(Some(st))) = self.nginx.as_mut().map(|c| c.try_wait()) {
                let out = std::fs::read_to_string(self.dir.join("nginx.out")).unwrap_or_default();
                return Err(format!("nginx exited ({st}): {out}"));
            }
            if started.elapsed() > Duration::from_secs(5) {
                return Err("nginx did not answer on 10.99.251.2:80 within 5 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Programs the node for `self.mode` with `n` services; returns what that took.
    fn program(&mut self, n: u32, args: &Args) -> Res<()> {
        match self.mode {
            Mode::NoLb => self.program = "-".into(),
            Mode::Iptables => {
                let text = iptables_rules(n, args.snat);
                let file = self.dir.join("rules.txt");
                std::fs::write(&file, &text).map_err(|e| format!("write rules: {e}"))?;
                let lines = text.lines().count();
                let t = Instant::now();
                sh(&format!(
                    "ip netns exec {} {} < {}",
                    self.node,
                    args.restore,
                    file.display()
                ))?;
                let took = t.elapsed();
                self.program = format!(
                    "{}: {:.3} s ({lines} lines)",
                    args.restore,
                    took.as_secs_f64()
                );
            }
            Mode::Bgplane => {
                let bpffs = self.dir.join("bpffs");
                std::fs::create_dir_all(&bpffs).map_err(|e| format!("mkdir bpffs: {e}"))?;
                sh(&format!("mount -t bpf bpf {}", bpffs.display()))?;
                self.bpffs = Some(bpffs.clone());
                let mut cfg = LoadConfig::new(&bpffs);
                if args.snat {
                    cfg.node_ip4 = NODE_BACKEND_IP.parse().ok();
                }
                let snat = args.snat;
                let t = Instant::now();
                in_netns(&self.node, move || {
                    let mut dp = Datapath::load(&cfg).map_err(|e| format!("load: {e}"))?;
                    dp.attach_tc("eth0").map_err(|e| format!("attach: {e}"))?;
                    if snat {
                        // SNATed replies come back to the node address on the backend link.
                        dp.attach_tc("b0").map_err(|e| format!("attach b0: {e}"))?;
                    }
                    Ok(())
                })?;
                let attach = t.elapsed();
                let node_addrs = vec![IpAddr::V4(Ipv4Addr::new(10, 99, 250, 1))];
                let mut w = Writer::open(&bpffs, WriterConfig::new(node_addrs))
                    .map_err(|e| format!("writer: {e}"))?;
                let ps = plans(n, args.snat);
                let t = Instant::now();
                let st = w.apply(&ps).map_err(|e| format!("apply: {e}"))?;
                let took = t.elapsed();
                self.program = format!(
                    "Writer::apply: {:.3} s ({} svc, {} backends; load+attach {:.3} s)",
                    took.as_secs_f64(),
                    st.services_written,
                    st.backends_written,
                    attach.as_secs_f64()
                );
            }
        }
        Ok(())
    }

    fn target(&self, n: u32) -> String {
        match self.mode {
            Mode::NoLb => "10.99.251.2:80".into(),
            _ => format!("{}:80", vip(n - 1)),
        }
    }

    /// One `ab` run of `secs` seconds without keep-alive.
    fn ab(&self, n: u32, secs: u32, concurrency: u32) -> Res<AbResult> {
        let url = format!("http://{}/", self.target(n));
        let out = Command::new("nice")
            .args([
                NICE,
                "ip",
                "netns",
                "exec",
                &self.client,
                "ab",
                "-q",
                "-r",
                "-s",
                "5",
            ])
            .args(["-c", &concurrency.to_string(), "-t", &secs.to_string()])
            // -t implies -n 50000; a later -n lifts that so the time limit decides.
            .args(["-n", "100000000", &url])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running ab: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let field = |name: &str| -> Option<f64> {
            text.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l[name.len()..].split_whitespace().next())
                .and_then(|v| v.parse().ok())
        };
        let (Some(rps), Some(complete)) =
            (field("Requests per second:"), field("Complete requests:"))
        else {
            return Err(format!(
                "ab against {url} printed no result: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        };
        Ok(AbResult {
            rps,
            complete: complete as u64,
            failed: field("Failed requests:").unwrap_or(0.0) as u64,
            non2xx: field("Non-2xx responses:").unwrap_or(0.0) as u64,
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct AbResult {
    rps: f64,
    complete: u64,
    failed: u64,
    non2xx: u64,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        0.0
    } else if s.len() % 2 == 1 {
        s[s.len() / 2]
    } else {
        (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0
    }
}

struct Row {
    n: u32,
    mode: Mode,
    rps: Vec<f64>,
    errors: u64,
    program: String,
}

fn run_n(n: u32, args: &Args, out: &mut Vec<Row>) -> Res<()> {
    let mut labs = Vec::new();
    for (k, m) in args.modes.iter().enumerate() {
        interrupted()?;
        eprintln!("  N={n}: building and programming the {} node", m.name());
        let mut lab = Lab::new(*m, k)?;
        lab.program(n, args)?;
        eprintln!("    {}", lab.program);
        labs.push(lab);
    }
    let mut rows: Vec<Row> = labs
        .iter()
        .map(|l| Row {
            n,
            mode: l.mode,
            rps: Vec::new(),
            errors: 0,
            program: l.program.clone(),
        })
        .collect();
    for r in 0..args.rounds {
        // Each round starts with the next mode, so a load that drifts during a round does
        // not always fall on the same mode.
        let m = labs.len();
        for k in 0..m {
            let (lab, row) = (&labs[(r + k) % m], &mut rows[(r + k) % m]);
            interrupted()?;
            if args.warmup > 0 {
                lab.ab(n, args.warmup, args.concurrency)?;
            }
            let res = lab.ab(n, args.secs, args.concurrency)?;
            eprintln!(
                "    round {}: {:<8} {:>9.0} conn/s ({} complete, {} failed, {} non-2xx)",
                r + 1,
                lab.mode.name(),
                res.rps,
                res.complete,
                res.failed,
                res.non2xx
            );
            row.rps.push(res.rps);
            row.errors += res.failed + res.non2xx;
        }
    }
    out.extend(rows);
    Ok(())
}

fn print_table(rows: &[Row], args: &Args) {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n{} rounds x {} s (after {} s warm-up each), ab -c {} without keep-alive, {}",
        args.rounds,
        args.secs,
        args.warmup,
        args.concurrency,
        if args.snat {
            "remote backends (SNAT to the node)"
        } else {
            "backends route via the node (DNAT only)"
        }
    );
    let _ = writeln!(
        s,
        "| services | mode | conn/s (median) | min - max | vs no-lb (same round) | errors | program |"
    );
    let _ = writeln!(s, "|---:|---|---:|---:|---:|---:|---|");
    for r in rows {
        let ceiling = rows
            .iter()
            .find(|c| c.n == r.n && c.mode == Mode::NoLb)
            .filter(|c| !c.rps.is_empty());
        let med = median(&r.rps);
        let lo = r.rps.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = r.rps.iter().copied().fold(0.0, f64::max);
        // Each round's rate over the same round's no-lb rate (the rounds are interleaved, so
        // this pairs measurements taken under the same machine load), median over rounds.
        let rel = ceiling.map_or("-".to_string(), |c| {
            let ratios: Vec<f64> = r
                .rps
                .iter()
                .zip(&c.rps)
                .filter(|(_, c)| **c > 0.0)
                .map(|(x, c)| x / c)
                .collect();
            format!("{:.0}%", 100.0 * median(&ratios))
        });
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} | {:.0} - {:.0} | {} | {} | {} |",
            r.n,
            r.mode.name(),
            med,
            lo,
            hi,
            rel,
            r.errors,
            r.program
        );
    }
    let _ = writeln!(s, "load average at the end: {}", loadavg());
    print!("{s}");
    let _ = std::io::stdout().flush();
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    // SAFETY: the handler only stores into an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    for tool in ["ab", "nginx", "ip", &args.restore] {
        if sh(&format!("command -v {tool}")).is_err() {
            eprintln!("{tool} not found (datapath/bench/conn-bench.sh installs ab and nginx)");
            std::process::exit(2);
        }
    }
    let backend = sh(&format!("{} --version 2>&1 || true", args.restore)).unwrap_or_default();
    eprintln!(
        "iptables: {}; load average at the start: {}",
        backend.trim(),
        loadavg()
    );
    let mut rows = Vec::new();
    for n in args.services.clone() {
        eprintln!("services={n}");
        if let Err(e) = run_n(n, &args, &mut rows) {
            eprintln!("conn_bench: N={n}: {e}");
            print_table(&rows, &args);
            std::process::exit(1);
        }
        // Each N's labs are dropped (namespaces, nginx, bpffs gone) before the next is built.
    }
    print_table(&rows, &args);
}
