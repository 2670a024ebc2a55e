//! `bgplane agent --datapath` end to end, real kernel, real packets: a client namespace, a node
//! namespace where the agent runs (its tc programs on the node's devices, its socket programs on
//! a child of a private cgroup2 mount), backend namespaces running real TCP servers (threads of
//! this test process bound inside their namespace). The agent reads a Kubernetes objects file
//! the test writes and rewrites.
//!
//! Addresses: test k uses B = 200 + 10k: client link 10.99.B.0/24 + fd00:99:B::/64 (node .1,
//! client .2), backend i on B+1+i (node .1, backend .2), ClusterIPs in B+8, LoadBalancer VIPs
//! in B+9 (routed to the node by the client's default route).
//!
//! Everything a test makes (namespaces, the agent's bpffs mount, the cgroup2 mount and child,
//! files, the agent process by PID) is removed by a guard that also runs on panic.
//!
//! Also here (no root needed): the example objects in config-examples/standalone/ parse and plan.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use speaker::api::{self, ServiceJson, ServicesJson};

const BIN: &str = env!("CARGO_BIN_EXE_bgplane");
const NODE: &str = "node-1";

fn sh(cmd: &str) {
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

/// Runs `f` on a thread inside network namespace `ns`; sockets made there stay in it.
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("open netns");
        // SAFETY: setns on this thread only, with a valid netns fd.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("netns thread panicked")
}

/// One endpoint of the objects file.
#[derive(Clone)]
struct Ep {
    /// Backend index (namespace `b<i>`).
    i: usize,
    ready: bool,
    terminating: bool,
    node: &'static str,
    zone: &'static str,
    /// `hints.forZones`.
    hint: Option<&'static str>,
}

impl Ep {
    fn ready(i: usize) -> Ep {
        Ep {
            i,
            ready: true,
            terminating: false,
            node: NODE,
            zone: "zone-a",
            hint: None,
        }
    }
}

struct Lab {
    base: u16,
    client: String,
    node: String,
    backends: Vec<String>,
    dir: PathBuf,
    bpffs: PathBuf,
    cg_root: PathBuf,
    cg_child: PathBuf,
    stop: Arc<AtomicBool>,
    agent: Option<Child>,
    log_seq: u32,
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut a) = self.agent.take() {
            let _ = a.kill();
            let _ = a.wait();
        }
        if std::thread::panicking() {
            for e in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
                if e.path().extension().is_some_and(|x| x == "log") {
                    let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                    eprintln!("--- {}:\n{text}", e.path().display());
                }
            }
        }
        self.stop.store(true, Ordering::SeqCst);
        for ns in std::iter::once(&self.client)
            .chain([&self.node])
            .chain(&self.backends)
        {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = Command::new("umount").arg("-l").arg(&self.bpffs).status();
        let _ = std::fs::remove_dir(&self.cg_child);
        let _ = Command::new("umount").arg("-l").arg(&self.cg_root).status();
        let _ = std::fs::remove_dir(&self.cg_root);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Lab {
    fn new(k: u16, tag: &str, n_backends: usize) -> Lab {
        let base = 200 + 10 * k;
        let id = format!("{tag}{}", std::process::id());
        let dir = std::env::temp_dir().join(format!("bgplane-dpa-{id}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let lab = Lab {
            base,
            client: format!("spc-{id}"),
            node: format!("spn-{id}"),
            backends: (0..n_backends).map(|i| format!("spb{i}-{id}")).collect(),
            bpffs: dir.join("bpffs"),
            cg_root: PathBuf::from(format!("/tmp/bgplane-dpa-cg-{id}")),
            cg_child: PathBuf::from(format!("/tmp/bgplane-dpa-cg-{id}/bgplane-dpa-{id}")),
            dir,
            stop: Arc::new(AtomicBool::new(false)),
            agent: None,
            log_seq: 0,
        };
        let (c, n) = (lab.client.clone(), lab.node.clone());
        for ns in std::iter::once(&c).chain([&n]).chain(&lab.backends) {
            sh(&format!("ip netns add {ns} && ip -n {ns} link set lo up"));
        }
        sh(&format!(
            "ip -n {n} link add eth0 type veth peer name eth0 netns {c} && \
             ip -n {n} addr add 10.99.{base}.1/24 dev eth0 && \
             ip -n {n} addr add fd00:99:{base}::1/64 dev eth0 nodad && ip -n {n} link set eth0 up && \
             ip -n {c} addr add 10.99.{base}.2/24 dev eth0 && \
             ip -n {c} addr add fd00:99:{base}::2/64 dev eth0 nodad && ip -n {c} link set eth0 up && \
             ip -n {c} route add default via 10.99.{base}.1 && \
             ip -n {c} -6 route add default via fd00:99:{base}::1 && \
             ip netns exec {n} sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1"
        ));
        for (i, b) in lab.backends.iter().enumerate() {
            let net = base + 1 + i as u16;
            sh(&format!(
                "ip -n {n} link add b{i} type veth peer name eth0 netns {b} && \
                 ip -n {n} addr add 10.99.{net}.1/24 dev b{i} && \
                 ip -n {n} addr add fd00:99:{net}::1/64 dev b{i} nodad && ip -n {n} link set b{i} up && \
                 ip -n {b} addr add 10.99.{net}.2/24 dev eth0 && \
                 ip -n {b} addr add fd00:99:{net}::2/64 dev eth0 nodad && ip -n {b} link set eth0 up && \
                 ip -n {b} route add default via 10.99.{net}.1 && \
                 ip -n {b} -6 route add default via fd00:99:{net}::1"
            ));
        }
        for (i, b) in lab.backends.clone().iter().enumerate() {
            lab.serve(b, format!("be{i}"));
        }
        // A private cgroup2 mount and a child of it: the socket programs go on the child, so
        // only processes the test moves there are translated.
        std::fs::create_dir_all(&lab.cg_root).expect("cgroup dir");
        sh(&format!("mount -t cgroup2 none {}", lab.cg_root.display()));
        std::fs::create_dir_all(&lab.cg_child).expect("cgroup child");
        lab
    }

    fn node_ip(&self, v6: bool) -> String {
        if v6 {
            format!("fd00:99:{}::1", self.base)
        } else {
            format!("10.99.{}.1", self.base)
        }
    }

    fn backend_ip(&self, i: usize, v6: bool) -> String {
        let net = self.base + 1 + i as u16;
        if v6 {
            format!("fd00:99:{net}::2")
        } else {
            format!("10.99.{net}.2")
        }
    }

    fn cluster_ip(&self, v6: bool) -> String {
        let net = self.base + 8;
        if v6 {
            format!("fd00:99:{net}::10")
        } else {
            format!("10.99.{net}.10")
        }
    }

    fn vip(&self, v6: bool) -> SocketAddr {
        let net = self.base + 9;
        let ip = if v6 {
            format!("fd00:99:{net}::100")
        } else {
            format!("10.99.{net}.100")
        };
        SocketAddr::new(ip.parse().expect("vip"), 80)
    }

    fn nodeport(&self, v6: bool) -> SocketAddr {
        SocketAddr::new(self.node_ip(v6).parse().expect("node ip"), 30080)
    }

    fn objects_path(&self) -> PathBuf {
        self.dir.join("objects")
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("agent.sock")
    }

    /// A TCP server on port 8080 of `ns` (both families) that greets with `name`, then echoes
    /// lines.
    fn serve(&self, ns: &str, name: String) {
        let tcp = in_netns(ns, || TcpListener::bind("[::]:8080").expect("bind tcp"));
        tcp.set_nonblocking(true).expect("nonblocking");
        let stop = self.stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match tcp.accept() {
                    Ok((s, _)) => {
                        let greet = name.clone();
                        std::thread::spawn(move || echo(s, &greet));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
    }

    /// Node, a dual-stack LoadBalancer Service (ClusterIP, NodePort 30080, LB VIPs) and one
    /// EndpointSlice per family, as `kubectl get -o yaml` prints them.
    fn objects(&self, eps: &[Ep], topology: bool) -> String {
        let b = self.base;
        let annotations = if topology {
            "  annotations:\n    service.kubernetes.io/topology-mode: Auto\n"
        } else {
            ""
        };
        let mut y = format!(
            r#"apiVersion: v1
kind: Node
metadata:
  name: {NODE}
  labels:
    kubernetes.io/hostname: {NODE}
    topology.kubernetes.io/zone: zone-a
status:
  addresses:
  - {{type: InternalIP, address: 10.99.{b}.1}}
  - {{type: InternalIP, address: "fd00:99:{b}::1"}}
  - {{type: Hostname, address: {NODE}}}
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: test
{annotations}spec:
  type: LoadBalancer
  clusterIP: {c4}
  clusterIPs: [{c4}, "{c6}"]
  ipFamilies: [IPv4, IPv6]
  ipFamilyPolicy: RequireDualStack
  externalTrafficPolicy: Cluster
  internalTrafficPolicy: Cluster
  ports:
  - {{name: http, port: 80, protocol: TCP, targetPort: 8080, nodePort: 30080}}
  selector: {{app: web}}
status:
  loadBalancer:
    ingress:
    - {{ip: {v4}, ipMode: VIP}}
    - {{ip: "{v6}", ipMode: VIP}}
"#,
            c4 = self.cluster_ip(false),
            c6 = self.cluster_ip(true),
            v4 = self.vip(false).ip(),
            v6 = self.vip(true).ip(),
        );
        for v6 in [false, true] {
            let fam = if v6 { "IPv6" } else { "IPv4" };
            y.push_str(&format!(
                r#"---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-{fam}
  namespace: test
  labels:
    kubernetes.io/service-name: web
    endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io
addressType: {fam}
ports:
- {{name: http, port: 8080, protocol: TCP}}
endpoints:
"#
            ));
            for e in eps {
                y.push_str(&format!(
                    "- addresses: [\"{}\"]\n  conditions: {{ready: {}, serving: true, terminating: {}}}\n  nodeName: {}\n  zone: {}\n",
                    self.backend_ip(e.i, v6),
                    e.ready,
                    e.terminating,
                    e.node,
                    e.zone
                ));
                if let Some(h) = e.hint {
                    y.push_str(&format!("  hints: {{forZones: [{{name: {h}}}]}}\n"));
                }
            }
        }
        y
    }

    /// Replaces the objects file the way tools do: write a temp file, rename it into place.
    fn write_objects(&self, text: &str) {
        let tmp = self.dir.join(".objects.tmp");
        std::fs::write(&tmp, text).expect("write objects");
        std::fs::rename(&tmp, self.objects_path()).expect("rename objects");
    }

    /// Starts the agent inside the node namespace (same mount namespace as the test, so the
    /// bpffs it mounts outlives it).
    fn start_agent(&mut self, devices: &str) {
        self.log_seq += 1;
        let log = std::fs::File::create(self.dir.join(format!("agent{}.log", self.log_seq)))
            .expect("log file");
        let netns = std::fs::File::open(format!("/run/netns/{}", self.node)).expect("netns");
        let fd = netns.as_raw_fd();
        let mut cmd = Command::new(BIN);
        cmd.arg("agent")
            .arg("--datapath")
            .arg("--objects")
            .arg(self.objects_path())
            .args(["--node-name", NODE, "--devices", devices])
            .arg("--bpffs")
            .arg(&self.bpffs)
            .arg("--cgroup2")
            .arg(&self.cg_child)
            .arg("--socket")
            .arg(self.socket())
            .args(["--log", "info"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        // SAFETY: setns(2) between fork and exec touches only the child; `netns` stays open
        // in the parent until spawn returns.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        self.agent = Some(cmd.spawn().expect("spawn agent"));
        drop(netns);
    }

    /// SIGTERM, and the agent's exit status.
    fn terminate_agent(&mut self) -> std::process::ExitStatus {
        let mut a = self.agent.take().expect("agent running");
        // SAFETY: plain kill(2) on our own child's PID.
        unsafe { libc::kill(a.id() as i32, libc::SIGTERM) };
        a.wait().expect("reap agent")
    }

    /// SIGKILL, as a crash or an OOM kill would.
    fn kill_agent(&mut self) {
        let mut a = self.agent.take().expect("agent running");
        a.kill().expect("kill -9 agent");
        a.wait().expect("reap agent");
    }

    fn services(&self) -> Option<ServicesJson> {
        api::get(&self.socket(), "/v1/services").ok()
    }

    /// Polls the API until `f` holds (at most 20 s).
    fn wait(&mut self, what: &str, f: impl Fn(&ServicesJson) -> bool) -> ServicesJson {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = None;
        while Instant::now() < deadline {
            if let Some(a) = self.agent.as_mut() {
                if let Ok(Some(st)) = a.try_wait() {
                    panic!("the agent exited ({st}) while waiting for {what}");
                }
            }
            if let Some(s) = self.services() {
                if f(&s) {
                    return s;
                }
                last = Some(s);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("timed out waiting for {what}; last answer: {last:#?}");
    }

    /// `bgplane services` with these arguments, through the CLI binary.
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(BIN)
            .arg("--socket")
            .arg(self.socket())
            .arg("services")
            .args(args)
            .output()
            .expect("bgplane services");
        assert!(
            out.status.success(),
            "bgplane services {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn echo(s: TcpStream, greet: &str) {
    let Ok(mut w) = s.try_clone() else { return };
    if w.write_all(format!("{greet}\n").as_bytes()).is_err() {
        return;
    }
    let mut r = BufReader::new(s);
    let mut line = String::new();
    while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
        if w.write_all(line.as_bytes()).is_err() {
            return;
        }
        line.clear();
    }
}

/// A TCP connection from namespace `ns` and the backend's greeting.
fn connect(ns: &str, to: SocketAddr) -> std::io::Result<(TcpStream, String)> {
    in_netns(ns, move || {
        let s = TcpStream::connect_timeout(&to, Duration::from_secs(3))?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        let mut r = BufReader::new(s.try_clone()?);
        let mut line = String::new();
        r.read_line(&mut line)?;
        Ok((s, line.trim().to_string()))
    })
}

fn greeting(ns: &str, to: SocketAddr) -> String {
    connect(ns, to)
        .unwrap_or_else(|e| panic!("connect {to}: {e}"))
        .1
}

/// Which backends `n` new connections reached.
fn spread(ns: &str, to: SocketAddr, n: usize) -> std::collections::BTreeSet<String> {
    (0..n).map(|_| greeting(ns, to)).collect()
}

fn ping(s: &mut TcpStream, msg: &str) -> std::io::Result<String> {
    s.write_all(format!("{msg}\n").as_bytes())?;
    let mut buf = vec![0u8; msg.len() + 1];
    s.read_exact(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).trim().to_string())
}

fn set(names: &[&str]) -> std::collections::BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn vip_entry<'a>(s: &'a ServicesJson, addr: &IpAddr) -> &'a ServiceJson {
    s.services
        .iter()
        .find(|v| v.frontend.kind == "LoadBalancer" && v.frontend.address == addr.to_string())
        .unwrap_or_else(|| panic!("no LoadBalancer frontend {addr} in {s:#?}"))
}

/// `(address, state)` of a frontend's backends.
fn states(v: &ServiceJson) -> Vec<(String, String)> {
    v.backends
        .iter()
        .map(|b| (b.address.clone(), b.state.clone()))
        .collect()
}

/// A long-lived connection pinged every 20 ms on its own thread until stopped; counts round
/// trips and remembers the first failure.
struct Stream {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<(TcpStream, u64, Option<String>)>,
}

impl Stream {
    fn start(mut s: TcpStream) -> Stream {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let (mut n, mut err) = (0u64, None);
            while !flag.load(Ordering::SeqCst) {
                match ping(&mut s, &format!("tick{n}")) {
                    Ok(a) if a == format!("tick{n}") => n += 1,
                    Ok(a) => {
                        err = Some(format!("round trip {n}: answer {a:?}"));
                        break;
                    }
                    Err(e) => {
                        err = Some(format!("round trip {n}: {e}"));
                        break;
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (s, n, err)
        });
        Stream { stop, handle }
    }

    fn finish(self) -> (TcpStream, u64, Option<String>) {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().expect("stream thread")
    }
}

#[test]
fn agent_serves_vip_and_nodeport_drains_terminating_backends_and_survives_kill_9_and_restart() {
    let mut lab = Lab::new(0, "life", 3);
    let all: Vec<Ep> = (0..3).map(Ep::ready).collect();
    lab.write_objects(&lab.objects(&all, false));
    lab.start_agent("eth0");
    let s = lab.wait("the first apply", |s| s.datapath.applies >= 1);
    assert!(s.datapath.loaded, "{s:#?}");
    assert_eq!(
        (s.datapath.links_attached, s.datapath.links_adopted),
        (10, 0),
        "tc ingress+egress on eth0 and 8 socket programs: {s:#?}"
    );
    assert!(s.datapath.writes_total > 0);
    assert!(s.datapath.last_error.is_none(), "{s:#?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        mounts
            .lines()
            .any(|l| l.contains(&format!(" {} ", lab.bpffs.display())) && l.contains(" - bpf ")),
        "the agent did not mount bpffs at {}",
        lab.bpffs.display()
    );
    // Frontends: ClusterIP, NodePort and LoadBalancer per family.
    let kinds: Vec<(String, String)> = s
        .services
        .iter()
        .map(|v| (v.frontend.kind.clone(), v.frontend.address.clone()))
        .collect();
    assert_eq!(kinds.len(), 6, "{kinds:?}");

    let every = set(&["be0", "be1", "be2"]);
    for v6 in [false, true] {
        assert_eq!(
            spread(&lab.client, lab.vip(v6), 30),
            every,
            "VIP {}",
            lab.vip(v6)
        );
        let np = spread(&lab.client, lab.nodeport(v6), 15);
        assert!(np.len() >= 2 && np.is_subset(&every), "NodePort: {np:?}");
    }

    // lb.c counts per service entry; the API reads the counters from the pins.
    let s = lab.services().expect("API");
    let counted = vip_entry(&s, &lab.vip(false).ip())
        .counters
        .clone()
        .expect("VIP counters");
    assert!(
        counted.connections >= 30 && counted.packets >= 30 * 3 && counted.bytes > 0,
        "30 connections through the IPv4 VIP: {counted:?}"
    );

    // A long-lived connection; its backend turns terminating.
    let (mut long, name) = connect(&lab.client, lab.vip(false)).expect("long-lived");
    assert_eq!(ping(&mut long, "one").expect("echo"), "one");
    let idx: usize = name.trim_start_matches("be").parse().expect("greeting");
    let mut eps = all.clone();
    eps[idx].ready = false;
    eps[idx].terminating = true;
    let draining = lab.objects(&eps, false);
    lab.write_objects(&draining);
    let term_ip = lab.backend_ip(idx, false);
    let vip4 = lab.vip(false).ip();
    let s = lab.wait("the backend to turn terminating", |s| {
        states(vip_entry(s, &vip4))
            .iter()
            .any(|(a, st)| *a == term_ip && st == "terminating")
    });
    let v = vip_entry(&s, &lab.vip(false).ip());
    assert_eq!(
        v.backends.iter().filter(|b| b.state == "active").count(),
        2,
        "{v:#?}"
    );
    let rest: std::collections::BTreeSet<String> =
        every.iter().filter(|n| **n != name).cloned().collect();
    for v6 in [false, true] {
        assert_eq!(
            spread(&lab.client, lab.vip(v6), 20),
            rest,
            "new connections must avoid terminating {name}"
        );
    }
    assert_eq!(
        ping(&mut long, "still-here").expect("the long-lived connection broke"),
        "still-here"
    );

    // The CLI shows the same, as JSON and as a table.
    let cli: ServicesJson =
        serde_json::from_str(&lab.cli(&["-o", "json"])).expect("services -o json");
    let v = vip_entry(&cli, &lab.vip(true).ip());
    let term6 = lab.backend_ip(idx, true);
    assert!(
        states(v).contains(&(term6.clone(), "terminating".to_string())),
        "{v:#?}"
    );
    assert!(v
        .backends
        .iter()
        .all(|b| b.zone.as_deref() == Some("zone-a")
            && b.node.as_deref() == Some(NODE)
            && b.local));
    let table = lab.cli(&[]);
    println!("bgplane services:\n{table}");
    assert!(
        table.contains(&format!("[{term6}]:8080  terminating  zone-a  {NODE}")),
        "{table}"
    );

    // Broken objects: the error is shown, the previous state keeps serving.
    lab.write_objects("apiVersion: v1\nkind: Service\nmetadata: [broken\n");
    let s = lab.wait("the objects error", |s| {
        s.datapath.last_error.as_ref().is_some_and(|e| e.current)
    });
    let msg = &s.datapath.last_error.as_ref().expect("error").message;
    assert!(msg.contains("objects"), "{msg}");
    assert!(
        lab.cli(&[]).contains("Last error (failing now"),
        "table shows the error"
    );
    assert_eq!(spread(&lab.client, lab.vip(false), 10), rest);
    lab.write_objects(&draining);
    let s = lab.wait("recovery", |s| {
        s.datapath.last_error.as_ref().is_some_and(|e| !e.current)
    });
    assert_eq!(
        s.datapath.last_apply.as_ref().map(|a| a.writes),
        Some(0),
        "the same objects again must write nothing: {s:#?}"
    );

    // kill -9 mid-stream: the stream keeps flowing, new connections still work.
    let stream = Stream::start(long);
    std::thread::sleep(Duration::from_millis(200));
    lab.kill_agent();
    assert!(lab.services().is_none(), "the API is gone with the agent");
    std::thread::sleep(Duration::from_millis(300));
    for v6 in [false, true] {
        assert_eq!(
            spread(&lab.client, lab.vip(v6), 12),
            rest,
            "new connections while no agent runs"
        );
    }
    let np = spread(&lab.client, lab.nodeport(false), 8);
    assert!(
        np.is_subset(&rest) && !np.is_empty(),
        "NodePort while down: {np:?}"
    );

    // Restart: everything adopted, nothing rewritten, the stream never broke.
    lab.start_agent("eth0");
    let s = lab.wait("the restarted agent's first apply", |s| {
        s.datapath.applies >= 1
    });
    let (long, ticks, err) = stream.finish();
    assert_eq!(err, None, "the long-lived connection broke");
    assert!(ticks >= 10, "only {ticks} round trips");
    assert_eq!(
        (s.datapath.links_attached, s.datapath.links_adopted),
        (0, 10),
        "a restarted agent re-attached something: {s:#?}"
    );
    assert_eq!(
        s.datapath.writes_total, 0,
        "a restarted agent with the same objects must write nothing: {s:#?}"
    );
    let a = s.datapath.last_apply.as_ref().expect("last apply");
    assert!(
        a.full && a.frontends_adopted == 6,
        "every frontend found in the adopted maps as planned: {a:?}"
    );
    let after = vip_entry(&s, &lab.vip(false).ip())
        .counters
        .clone()
        .expect("VIP counters after restart");
    assert!(
        after.connections > counted.connections && after.packets > counted.packets,
        "the adopted counters kept counting: {counted:?} then {after:?}"
    );
    let mut long = long;
    assert_eq!(
        ping(&mut long, "after-restart").expect("connection after restart"),
        "after-restart"
    );
    assert_eq!(spread(&lab.client, lab.vip(true), 12), rest);

    // The restarted agent still applies changes: the backend is gone from the slice.
    eps.remove(idx);
    lab.write_objects(&lab.objects(&eps, false));
    let s = lab.wait("the backend to be removed", |s| {
        vip_entry(s, &vip4).backends.len() == 2
    });
    assert!(s.datapath.writes_total > 0);
    assert_eq!(spread(&lab.client, lab.vip(false), 12), rest);
}

#[test]
fn zone_hints_steer_vip_and_cluster_ip_traffic_and_objects_that_fail_at_start_load_nothing() {
    let mut lab = Lab::new(1, "zone", 3);
    // Start with a broken file: the agent runs, loads nothing and says why.
    lab.write_objects("kind: [\n");
    lab.start_agent("eth0,b0,b1,b2");
    let s = lab.wait("the objects error", |s| s.datapath.last_error.is_some());
    assert!(!s.datapath.loaded, "{s:#?}");
    assert!(s.services.is_empty());
    assert!(
        !lab.bpffs.join("links").exists(),
        "nothing may be attached before the objects plan"
    );

    // be0, be1 on this node (zone-a) hinted for zone-a; be2 on node-2 (zone-b), hinted for
    // zone-b, reached through SNAT to the node address.
    let mut eps: Vec<Ep> = (0..3).map(Ep::ready).collect();
    eps[0].hint = Some("zone-a");
    eps[1].hint = Some("zone-a");
    eps[2] = Ep {
        node: "node-2",
        zone: "zone-b",
        hint: Some("zone-b"),
        ..Ep::ready(2)
    };
    lab.write_objects(&lab.objects(&eps, true));
    let s = lab.wait("the first apply", |s| s.datapath.applies >= 1);
    assert!(s.datapath.loaded);
    assert_eq!(s.datapath.links_attached, 16, "4 devices x 2 + 8: {s:#?}");
    assert!(!s.datapath.last_error.as_ref().expect("kept").current);
    let v = vip_entry(&s, &lab.vip(false).ip());
    let zones: Vec<(String, String)> = v
        .backends
        .iter()
        .map(|b| (b.address.clone(), b.zone.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        zones,
        vec![
            (lab.backend_ip(0, false), "zone-a".to_string()),
            (lab.backend_ip(1, false), "zone-a".to_string())
        ],
        "only zone-a's endpoints serve node-1"
    );
    let zone_a = set(&["be0", "be1"]);

    for v6 in [false, true] {
        assert_eq!(spread(&lab.client, lab.vip(v6), 24), zone_a, "VIP v6={v6}");
    }

    // ClusterIP through the socket programs on the --cgroup2 directory, for a process in it,
    // after the VIP flows to the same backends: a socket-LB connection that gets the client
    // port of one of them connects (lb.c leaves a direct connection alone when it reuses the
    // tuple of a closed VIP flow; datapath/tests/kernel/ct.rs pins the rule on crafted packets).
    let script = r#"
import socket, sys
for fam, ip in ((socket.AF_INET, sys.argv[1]), (socket.AF_INET6, sys.argv[2])):
    for _ in range(12):
        s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(3); s.connect((ip, 80))
        print(s.recv(64).decode().strip(), s.getpeername()[0])
        s.close()
"#;
    let (c4, c6) = (lab.cluster_ip(false), lab.cluster_ip(true));
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec ip netns exec {} python3 -c '{script}' {c4} {c6}",
            lab.cg_child.display(),
            lab.client
        ))
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ClusterIP client: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<(&str, &str)> = stdout.lines().filter_map(|l| l.split_once(' ')).collect();
    assert_eq!(lines.len(), 24, "{stdout}");
    let seen: std::collections::BTreeSet<String> =
        lines.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(seen, zone_a, "ClusterIP: {stdout}");
    assert!(
        lines.iter().all(|(_, peer)| *peer == c4 || *peer == c6),
        "the application must see the ClusterIP: {stdout}"
    );

    // Without the topology annotation hints are ignored: all three, be2 via SNAT.
    lab.write_objects(&lab.objects(&eps, false));
    let vip4 = lab.vip(false).ip();
    lab.wait("all endpoints", |s| vip_entry(s, &vip4).backends.len() == 3);
    for v6 in [false, true] {
        assert_eq!(
            spread(&lab.client, lab.vip(v6), 40),
            set(&["be0", "be1", "be2"]),
            "VIP v6={v6} without topology"
        );
    }

    // A clean stop leaves the datapath serving, on purpose.
    let st = lab.terminate_agent();
    assert!(st.success(), "agent exit on SIGTERM: {st}");
    assert_eq!(spread(&lab.client, lab.vip(false), 20).len(), 3);

    // `bgplane datapath unload` removes every pin: the programs detach and the VIP is gone.
    let out = Command::new(BIN)
        .args(["datapath", "unload", "--bpffs"])
        .arg(&lab.bpffs)
        .output()
        .expect("bgplane datapath unload");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "unload: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("removed "), "{text}");
    let left: Vec<_> = std::fs::read_dir(&lab.bpffs)
        .expect("bpffs")
        .flatten()
        .map(|e| e.path())
        // The kernel's preloaded iterators, in the root of every bpffs mount.
        .filter(|p| !p.ends_with("maps.debug") && !p.ends_with("progs.debug"))
        .collect();
    assert!(left.is_empty(), "pins left after unload: {left:?}");
    // The kernel frees a link whose last reference went away from a work queue: give it a
    // moment.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut answered = 0;
    while connect(&lab.client, lab.vip(false)).is_ok() {
        answered += 1;
        assert!(
            Instant::now() < deadline,
            "the VIP still answers 3 s after unload"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("VIP answered {answered} times after unload");
}

/// `n` ClusterIP Services `s<i>` (10.99.B+8.(20+i):80), each with one IPv4 endpoint on
/// backend 0, port 9000+i; `s<i>` for i in `two` gets a second endpoint (an address in
/// backend 0's network that nothing sends to: this test only reads what the maps got).
fn cluster_services(lab: &Lab, n: usize, two: &[usize], skip: &[usize]) -> String {
    let mut y = String::new();
    let net = lab.base + 8;
    for i in (0..n).filter(|i| !skip.contains(i)) {
        let port = 9000 + i;
        y.push_str(&format!(
            r#"---
apiVersion: v1
kind: Service
metadata: {{name: s{i}, namespace: test}}
spec:
  type: ClusterIP
  clusterIP: 10.99.{net}.{ip}
  clusterIPs: [10.99.{net}.{ip}]
  ipFamilies: [IPv4]
  ipFamilyPolicy: SingleStack
  ports:
  - {{name: http, port: 80, protocol: TCP, targetPort: {port}}}
  selector: {{app: s{i}}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: s{i}-a
  namespace: test
  labels: {{kubernetes.io/service-name: s{i}}}
addressType: IPv4
ports:
- {{name: http, port: {port}, protocol: TCP}}
endpoints:
- addresses: ["{be}"]
  conditions: {{ready: true, serving: true, terminating: false}}
  nodeName: {NODE}
"#,
            ip = 20 + i,
            be = lab.backend_ip(0, false),
        ));
        if two.contains(&i) {
            y.push_str(&format!(
                "- addresses: [\"10.99.{}.3\"]\n  conditions: {{ready: true, serving: true, terminating: false}}\n  nodeName: {NODE}\n",
                lab.base + 1
            ));
        }
    }
    y
}

#[test]
fn an_edit_of_one_service_reaches_the_writer_as_that_change_alone() {
    let mut lab = Lab::new(2, "incr", 1);
    let base = lab.objects(&[Ep::ready(0)], false);
    lab.write_objects(&format!("{base}{}", cluster_services(&lab, 20, &[], &[])));
    lab.start_agent("eth0");
    let s = lab.wait("the first apply", |s| s.datapath.applies >= 1);
    let first = s.datapath.last_apply.clone().expect("last apply");
    assert!(
        first.full,
        "the first apply gives the writer every plan: {first:?}"
    );
    assert_eq!(first.frontends_changed, 6 + 20, "{first:?}");
    let total = s.datapath.writes_total;
    let ids: Vec<(String, Option<u32>)> = s
        .services
        .iter()
        .map(|v| (v.service.clone(), v.id))
        .collect();

    // s7 gains an endpoint: the writer gets that one frontend, which writes its backend, its
    // new slot region (2), the old region released (1) and its service entry flipped (1).
    lab.write_objects(&format!("{base}{}", cluster_services(&lab, 20, &[7], &[])));
    let s = lab.wait("the s7 edit", |s| s.datapath.applies >= 2);
    let a = s.datapath.last_apply.clone().expect("last apply");
    assert!(!a.full, "an edit must reach the writer as changes: {a:?}");
    assert_eq!((a.frontends_changed, a.frontends_removed), (1, 0), "{a:?}");
    assert_eq!(
        (
            a.services_written,
            a.backends_written,
            a.slots_written,
            a.slots_deleted,
            a.writes
        ),
        (1, 1, 2, 1, 5),
        "{a:?}"
    );
    assert_eq!(s.datapath.writes_total, total + 5);
    let s7 = s
        .services
        .iter()
        .find(|v| v.service == "test/s7")
        .expect("s7");
    assert_eq!(s7.backends.len(), 2, "{s7:#?}");
    let ids_now: Vec<(String, Option<u32>)> = s
        .services
        .iter()
        .map(|v| (v.service.clone(), v.id))
        .collect();
    assert_eq!(ids_now, ids, "service ids moved");

    // s3 goes: its entry, its slot region and its backend, nothing else.
    lab.write_objects(&format!("{base}{}", cluster_services(&lab, 20, &[7], &[3])));
    let s = lab.wait("s3 removed", |s| s.datapath.applies >= 3);
    let a = s.datapath.last_apply.clone().expect("last apply");
    assert!(!a.full, "{a:?}");
    assert_eq!((a.frontends_changed, a.frontends_removed), (0, 1), "{a:?}");
    assert_eq!(
        (
            a.services_deleted,
            a.backends_deleted,
            a.slots_deleted,
            a.writes
        ),
        (1, 1, 1, 3),
        "{a:?}"
    );
    assert!(!s.services.iter().any(|v| v.service == "test/s3"));
    // The VIP keeps serving throughout.
    assert_eq!(greeting(&lab.client, lab.vip(false)), "be0");
}

#[test]
fn standalone_examples_parse_and_plan_for_their_node() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config-examples/standalone");
    let objects = datapath::k8s::load(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert!(objects.skipped.is_empty(), "{:?}", objects.skipped);
    let node = datapath::planner::node_info(&objects, "node-a").expect("node-a");
    let planned =
        datapath::planner::plan_with_notes(&objects, &node, &datapath::planner::Options::default())
            .expect("plan");
    assert!(planned.notes.is_empty(), "{:?}", planned.notes);
    let kinds: std::collections::BTreeSet<_> =
        planned.plans.iter().map(|p| p.frontend.kind).collect();
    assert_eq!(
        kinds.len(),
        3,
        "ClusterIP, NodePort and LoadBalancer: {kinds:?}"
    );
    let lb = planned
        .plans
        .iter()
        .find(|p| p.frontend.kind == datapath::plan::FrontendKind::LoadBalancer)
        .expect("a LoadBalancer frontend");
    assert!(!lb.active.is_empty(), "{lb:?}");
    assert!(
        !lb.terminating.is_empty(),
        "the example shows a terminating endpoint: {lb:?}"
    );
    // Zone hints: node-a is in zone-a, so no zone-b-only endpoint serves it.
    assert!(
        lb.active.iter().all(|b| b.local),
        "zone-a's endpoints run on node-a: {lb:?}"
    );
    assert!(Path::new(&dir).join("README.md").exists());
}

/// The previous release's objects (map layout v2), as datapath's upgrade test builds them.
static LB_V2: &[u8] = include_bytes!("../../datapath/tests/kernel/obj/lb_v2.o");
static SOCK_V2: &[u8] = include_bytes!("../../datapath/tests/kernel/obj/sock_v2.o");

/// Pin names (files directly under the bpffs dir) ending in `suffix`.
fn pins_ending(dir: &Path, suffix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("read bpffs")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(suffix))
        .collect()
}

#[test]
fn an_agent_started_over_an_older_layouts_pinned_programs_switches_them_after_programming() {
    let mut lab = Lab::new(3, "upg", 2);
    // An older agent's datapath: its tc programs (layout v2) attached and pinned on eth0,
    // reading v2 maps that hold no services.
    let mut old = datapath::loader::LoadConfig::new(&lab.bpffs);
    old.objects = Some(datapath::loader::Objects {
        lb: LB_V2.to_vec(),
        sock: SOCK_V2.to_vec(),
    });
    let attached = in_netns(&lab.node, move || {
        let mut dp = datapath::loader::Datapath::load(&old).expect("load the v2 objects");
        dp.attach_tc("eth0").expect("attach v2").attached
    });
    assert_eq!(attached, 2, "v2 ingress + egress links");
    assert!(!pins_ending(&lab.bpffs, "_v2").is_empty(), "v2 maps pinned");

    // The new agent programs its own (v3) maps, then switches the pinned links to its
    // programs: only then does the VIP it programmed answer.
    lab.write_objects(&lab.objects(&[Ep::ready(0), Ep::ready(1)], false));
    lab.start_agent("eth0");
    lab.wait("the first apply", |s| s.datapath.applies >= 1);
    assert_eq!(
        spread(&lab.client, lab.vip(false), 20),
        set(&["be0", "be1"]),
        "the VIP is served by this agent's programs and maps"
    );
    assert_eq!(
        pins_ending(&lab.bpffs, "_v2"),
        Vec::<String>::new(),
        "the old layout's pins are removed once nothing uses them"
    );
    let log = std::fs::read_to_string(lab.dir.join("agent1.log")).unwrap_or_default();
    assert!(
        log.contains("2 links switched"),
        "the agent reports the switch:\n{log}"
    );
}
