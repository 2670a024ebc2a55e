//! Real packets through real namespaces: a client namespace, a node namespace running lb.c on
//! its client-facing device (and sock.c on a cgroup2 child), backend namespaces running real
//! TCP/UDP servers (threads of this process, bound inside their namespace).
//!
//! Addresses: test k uses 10.99.B.0/24 .. 10.99.(B+9).0/24 and fd00:99:B::/64.. with
//! B = 100 + 10k: client link B (client .2, node .1), backend i on B+i (node .1, backend .2),
//! frontends (VIPs, ClusterIPs) in B+9, routed to the node by the client's default route.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use datapath::bpf_sys::ProgInfo;
use datapath::loader::{AttachStats, Datapath, LoadConfig, TC_INGRESS};
use datapath::plan::{FrontendKind, Protocol, ServicePlan};
use datapath::writer::Writer;

use crate::env::*;

pub(crate) const PORT: u16 = 8080;

pub(crate) struct Lab {
    pub(crate) base: u16,
    pub(crate) client: String,
    pub(crate) node: String,
    backends: Vec<String>,
    stop: Arc<AtomicBool>,
    bpffs: Option<Bpffs>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(30));
        for ns in std::iter::once(&self.client)
            .chain([&self.node])
            .chain(&self.backends)
        {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        self.bpffs.take();
    }
}

impl Lab {
    /// Builds the namespaces and starts a server in each backend namespace.
    pub(crate) fn new(k: u16, tag: &str, n_backends: u16) -> Lab {
        let base = 100 + 10 * k;
        let id = format!("{tag}{}", std::process::id());
        let mut lab = Lab {
            base,
            client: format!("dpc-{id}"),
            node: format!("dpn-{id}"),
            backends: (1..=n_backends).map(|i| format!("dpb{i}-{id}")).collect(),
            stop: Arc::new(AtomicBool::new(false)),
            bpffs: None,
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
            lab.serve(b, format!("be{}", i + 1));
        }
        lab.bpffs = Some(Bpffs::new(&format!("nl-{tag}")));
        lab
    }

    pub(crate) fn bpffs(&self) -> PathBuf {
        self.bpffs.as_ref().map(|b| b.path.clone()).expect("bpffs")
    }

    pub(crate) fn backend_ip(&self, i: usize, v6: bool) -> String {
        let net = self.base + 1 + i as u16;
        if v6 {
            format!("fd00:99:{net}::2")
        } else {
            format!("10.99.{net}.2")
        }
    }

    pub(crate) fn frontend(&self, host: u8, v6: bool) -> String {
        let net = self.base + 9;
        if v6 {
            format!("fd00:99:{net}::{host}")
        } else {
            format!("10.99.{net}.{host}")
        }
    }

    pub(crate) fn node_ip(&self, v6: bool) -> String {
        if v6 {
            format!("fd00:99:{}::1", self.base)
        } else {
            format!("10.99.{}.1", self.base)
        }
    }

    /// A TCP server (greets with `name`, then echoes lines) and a UDP server (answers `name`)
    /// on port 8080 of namespace `ns`, both families.
    fn serve(&self, ns: &str, name: String) {
        let (tcp, udp) = in_netns(Some(ns), || {
            let t = TcpListener::bind("[::]:8080").expect("bind tcp");
            let u = UdpSocket::bind("[::]:8080").expect("bind udp");
            (t, u)
        });
        tcp.set_nonblocking(true).expect("nonblocking");
        let stop = self.stop.clone();
        let greet = name.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match tcp.accept() {
                    Ok((s, _)) => {
                        let greet = greet.clone();
                        std::thread::spawn(move || echo(s, &greet));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        udp.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let stop = self.stop.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !stop.load(Ordering::SeqCst) {
                if let Ok((_, from)) = udp.recv_from(&mut buf) {
                    let _ = udp.send_to(name.as_bytes(), from);
                }
            }
        });
    }

    /// Loads the datapath in the node namespace, attaches tc on eth0 (and on every backend
    /// link when `all_devices`), and returns the attach counts.
    pub(crate) fn load(&self, cfg: LoadConfig, all_devices: bool) -> AttachStats {
        self.load_info(cfg, all_devices).0
    }

    /// [`Lab::load`], also returning what the loaded ingress program is.
    pub(crate) fn load_info(&self, cfg: LoadConfig, all_devices: bool) -> (AttachStats, ProgInfo) {
        let devices: Vec<String> = if all_devices {
            std::iter::once("eth0".to_string())
                .chain((0..self.backends.len()).map(|i| format!("b{i}")))
                .collect()
        } else {
            vec!["eth0".to_string()]
        };
        in_netns(Some(&self.node), move || {
            let mut dp = Datapath::load(&cfg).expect("load");
            let mut st = AttachStats::default();
            for d in &devices {
                let s = dp.attach_tc(d).expect("attach tc");
                st.attached += s.attached;
                st.adopted += s.adopted;
                st.replaced += s.replaced;
                st.staged += s.staged;
            }
            (st, dp.program_info(TC_INGRESS).expect("program info"))
        })
    }

    pub(crate) fn writer(&self) -> Writer {
        let cfg = writer_cfg(vec![
            self.node_ip(false).parse().unwrap(),
            self.node_ip(true).parse().unwrap(),
        ]);
        Writer::open(&self.bpffs(), cfg).expect("writer")
    }

    /// The local IPv4 backend whose server greeted with `name` ("be1", "be2", ...), and the
    /// greeting of the other backend of a two-backend lab.
    pub(crate) fn greeted_by(&self, name: &str) -> (datapath::plan::BackendAddr, &'static str) {
        let idx = name
            .trim_start_matches("be")
            .parse::<usize>()
            .expect("greeting")
            - 1;
        let other = if idx == 0 { "be2" } else { "be1" };
        (be(&self.backend_ip(idx, false), PORT, true), other)
    }

    pub(crate) fn backends_of(&self, v6: bool, local: bool) -> Vec<datapath::plan::BackendAddr> {
        (0..self.backends.len())
            .map(|i| be(&self.backend_ip(i, v6), PORT, local))
            .collect()
    }
}

fn echo(s: TcpStream, greet: &str) {
    let mut w = match s.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    if w.write_all(format!("{greet}\n").as_bytes()).is_err() {
        return;
    }
    let mut r = BufReader::new(s);
    let mut line = String::new();
    let peer = w
        .peer_addr()
        .map(|a| a.ip().to_canonical().to_string())
        .unwrap_or_default();
    while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
        // "peer" asks who the backend thinks it talks to (SNAT shows the node here).
        let answer = if line.trim() == "peer" {
            format!("{peer}\n")
        } else {
            line.clone()
        };
        if w.write_all(answer.as_bytes()).is_err() {
            return;
        }
        line.clear();
    }
}

pub(crate) fn sa(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse::<IpAddr>().expect("ip"), port)
}

/// Opens a TCP connection from namespace `ns` and reads the backend's greeting.
pub(crate) fn connect(ns: &str, to: SocketAddr) -> std::io::Result<(TcpStream, String)> {
    in_netns(Some(ns), move || {
        let s = TcpStream::connect_timeout(&to, Duration::from_secs(3))?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        let mut r = BufReader::new(s.try_clone()?);
        let mut line = String::new();
        r.read_line(&mut line)?;
        Ok((s, line.trim().to_string()))
    })
}

pub(crate) fn greeting(ns: &str, to: SocketAddr) -> String {
    connect(ns, to)
        .unwrap_or_else(|e| panic!("connect {to}: {e}"))
        .1
}

/// The client address the backend sees on this connection.
fn peer_seen(s: &mut TcpStream) -> String {
    s.write_all(b"peer\n").expect("ask peer");
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut line = String::new();
    r.read_line(&mut line).expect("peer answer");
    line.trim().to_string()
}

/// One echo round trip on an established connection.
pub(crate) fn ping(s: &mut TcpStream, msg: &str) -> std::io::Result<String> {
    s.write_all(format!("{msg}\n").as_bytes())?;
    let mut buf = vec![0u8; msg.len() + 1];
    s.read_exact(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).trim().to_string())
}

fn udp_ask(ns: &str, to: SocketAddr) -> (String, SocketAddr) {
    in_netns(Some(ns), move || {
        let bind = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
        let u = UdpSocket::bind(bind).expect("bind");
        u.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        u.send_to(b"who", to).expect("send");
        let mut buf = [0u8; 64];
        let (n, from) = u
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("UDP reply from {to}: {e}"));
        (String::from_utf8_lossy(&buf[..n]).to_string(), from)
    })
}

fn names(v: impl IntoIterator<Item = String>) -> std::collections::BTreeSet<String> {
    v.into_iter().collect()
}

#[test]
fn vip_and_nodeport_reach_backends_over_ipv4_and_ipv6_tcp_and_udp() {
    let lab = Lab::new(0, "vip", 3);
    let st = lab.load(LoadConfig::new(lab.bpffs()), false);
    assert_eq!(st.attached, 2);
    let mut w = lab.writer();
    let mut plans: Vec<ServicePlan> = Vec::new();
    for v6 in [false, true] {
        let vip = lab.frontend(100, v6);
        plans.push(plan(
            &format!("lb{v6}"),
            FrontendKind::LoadBalancer,
            &vip,
            80,
            Protocol::Tcp,
            lab.backends_of(v6, true),
        ));
        plans.push(plan(
            &format!("udp{v6}"),
            FrontendKind::LoadBalancer,
            &vip,
            53,
            Protocol::Udp,
            lab.backends_of(v6, true),
        ));
        let any = if v6 { "::" } else { "0.0.0.0" };
        plans.push(plan(
            &format!("np{v6}"),
            FrontendKind::NodePort,
            any,
            30080,
            Protocol::Tcp,
            lab.backends_of(v6, true),
        ));
    }
    w.apply(&plans).expect("apply");
    let all = names(["be1", "be2", "be3"].map(String::from));
    for v6 in [false, true] {
        let vip = sa(&lab.frontend(100, v6), 80);
        let (mut s, _) = connect(&lab.client, vip).expect("connect");
        let client = if v6 {
            format!("fd00:99:{}::2", lab.base)
        } else {
            format!("10.99.{}.2", lab.base)
        };
        assert_eq!(
            peer_seen(&mut s),
            client,
            "a local backend sees the client (no SNAT)"
        );
        let seen = names((0..30).map(|_| greeting(&lab.client, vip)));
        assert_eq!(
            seen, all,
            "30 connections to {vip} did not use all backends"
        );
        let np = sa(&lab.node_ip(v6), 30080);
        let seen = names((0..15).map(|_| greeting(&lab.client, np)));
        assert!(
            seen.len() >= 2 && seen.is_subset(&all),
            "NodePort {np}: {seen:?}"
        );
        let udp = sa(&lab.frontend(100, v6), 53);
        for _ in 0..3 {
            let (name, from) = udp_ask(&lab.client, udp);
            assert!(all.contains(&name), "UDP answer {name:?}");
            assert_eq!(from, udp, "the UDP reply must come from the VIP");
        }
        // tc counted those connections and their packets on the VIP's service.
        let c = counters_of(&w, &format!("test/lb{v6}"));
        assert_eq!(c.connections, 31, "{v6}: {c:?}");
        assert!(
            c.packets >= 3 * 31 && c.bytes > 40 * c.packets,
            "{v6}: {c:?}"
        );
        assert_eq!(counters_of(&w, &format!("test/udp{v6}")).connections, 3);
    }
}

fn counters_of(w: &Writer, service: &str) -> datapath::maps::SvcCounters {
    let cs = w.counters().expect("counters");
    cs.iter()
        .find(|c| c.service.as_deref() == Some(service))
        .unwrap_or_else(|| panic!("no counters for {service}: {cs:?}"))
        .counters
}

#[test]
fn remote_backends_are_reached_through_snat_and_answer_through_the_node() {
    let lab = Lab::new(1, "snat", 2);
    let mut cfg = LoadConfig::new(lab.bpffs());
    cfg.node_ip4 = Some(lab.node_ip(false).parse().unwrap());
    cfg.node_ip6 = Some(lab.node_ip(true).parse().unwrap());
    lab.load(cfg, true);
    let mut w = lab.writer();
    let plans: Vec<ServicePlan> = [false, true]
        .map(|v6| {
            plan(
                &format!("r{v6}"),
                FrontendKind::LoadBalancer,
                &lab.frontend(100, v6),
                80,
                Protocol::Tcp,
                lab.backends_of(v6, false),
            )
        })
        .into();
    w.apply(&plans).expect("apply");
    for v6 in [false, true] {
        let vip = sa(&lab.frontend(100, v6), 80);
        let (mut s, name) = connect(&lab.client, vip).unwrap_or_else(|e| panic!("{vip}: {e}"));
        assert!(name == "be1" || name == "be2", "{name}");
        assert_eq!(ping(&mut s, "through-snat").expect("echo"), "through-snat");
        assert_eq!(
            peer_seen(&mut s),
            lab.node_ip(v6),
            "the remote backend must see the node (SNAT)"
        );
    }
}

#[test]
fn long_lived_connection_survives_its_backend_terminating_and_a_deleted_backend_resets() {
    let lab = Lab::new(2, "term", 2);
    lab.load(LoadConfig::new(lab.bpffs()), false);
    let mut w = lab.writer();
    let vip = lab.frontend(100, false);
    let mut p = plan(
        "term",
        FrontendKind::LoadBalancer,
        &vip,
        80,
        Protocol::Tcp,
        lab.backends_of(false, true),
    );
    w.apply(std::slice::from_ref(&p)).expect("apply");
    let (mut long, name) = connect(&lab.client, sa(&vip, 80)).expect("connect");
    assert_eq!(ping(&mut long, "one").expect("echo"), "one");
    let (chosen, other_name) = lab.greeted_by(&name);

    p.active.retain(|b| *b != chosen);
    p.terminating = vec![chosen.clone()];
    w.apply(std::slice::from_ref(&p)).expect("terminating");
    for _ in 0..10 {
        assert_eq!(
            greeting(&lab.client, sa(&vip, 80)),
            other_name,
            "a new connection hit the terminating backend"
        );
    }
    assert_eq!(
        ping(&mut long, "still-here").expect("long-lived connection broke"),
        "still-here"
    );

    // Deleted: the flow is reselected to the other backend, which does not know it and resets
    // it; the client sees an error at once, not a hang.
    p.terminating.clear();
    w.apply(std::slice::from_ref(&p)).expect("delete");
    long.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = std::time::Instant::now();
    let r = ping(&mut long, "gone?");
    assert!(
        r.is_err(),
        "a deleted backend's connection still answered: {r:?}"
    );
    let e = r.unwrap_err();
    assert!(
        !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "blackholed: no RST within {:?} ({e})",
        started.elapsed()
    );
}

#[test]
fn socket_lb_rewrites_connect_and_sendmsg_for_a_process_in_the_cgroup() {
    let lab = Lab::new(3, "sock", 2);
    let cg_root = PathBuf::from(format!("/tmp/bgplane-dp-cg-{}", std::process::id()));
    let child = cg_root.join("dp-sock");
    struct CgGuard(PathBuf, PathBuf);
    impl Drop for CgGuard {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.1);
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    std::fs::create_dir_all(&cg_root).unwrap();
    sh(&format!("mount -t cgroup2 none {}", cg_root.display()));
    let _cg = CgGuard(cg_root.clone(), child.clone());
    std::fs::create_dir_all(&child).unwrap();

    let bpffs = lab.bpffs();
    let cgdir = child.clone();
    let st = in_netns(Some(&lab.node), move || {
        let mut dp = Datapath::load(&LoadConfig::new(&bpffs)).expect("load");
        dp.attach_cgroup(&cgdir).expect("attach cgroup")
    });
    assert_eq!(st.attached, 8);
    let mut w = lab.writer();
    let mut plans = Vec::new();
    for v6 in [false, true] {
        let cip = lab.frontend(200, v6);
        plans.push(plan(
            &format!("c{v6}"),
            FrontendKind::ClusterIp,
            &cip,
            80,
            Protocol::Tcp,
            lab.backends_of(v6, true),
        ));
        plans.push(plan(
            &format!("u{v6}"),
            FrontendKind::ClusterIp,
            &cip,
            80,
            Protocol::Udp,
            lab.backends_of(v6, true),
        ));
    }
    w.apply(&plans).expect("apply");

    let script = r#"
import socket, sys
for fam, ip in ((socket.AF_INET, sys.argv[1]), (socket.AF_INET6, sys.argv[2])):
    for _ in range(4):
        s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(3); s.connect((ip, 80))
        print("tcp", ip, s.recv(64).decode().strip(), s.getpeername()[0], s.getpeername()[1])
        s.close()
    u = socket.socket(fam, socket.SOCK_DGRAM); u.settimeout(3)
    for _ in range(3):
        u.sendto(b"who", (ip, 80)); data, frm = u.recvfrom(64)
        print("udp", ip, data.decode(), frm[0], frm[1])
"#;
    let (c4, c6) = (lab.frontend(200, false), lab.frontend(200, true));
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec ip netns exec {} python3 -c '{script}' {c4} {c6}",
            child.display(),
            lab.client
        ))
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines.len(), 14, "{stdout}");
    let mut per_socket_udp = std::collections::BTreeMap::new();
    for l in &lines {
        let (kind, dialled, name, peer, port) = (l[0], l[1], l[2], l[3], l[4]);
        assert!(name == "be1" || name == "be2", "{stdout}");
        assert_eq!(
            (peer, port),
            (dialled, "80"),
            "the application must see the ClusterIP: {stdout}"
        );
        if kind == "udp" {
            per_socket_udp
                .entry(dialled)
                .or_insert_with(Vec::new)
                .push(name);
        }
    }
    for (ip, ns) in per_socket_udp {
        assert!(
            ns.windows(2).all(|w| w[0] == w[1]),
            "unconnected UDP socket to {ip} switched backends: {ns:?}"
        );
    }
    // The socket hooks counted each connect() and the one selection per UDP socket.
    for v6 in [false, true] {
        assert_eq!(counters_of(&w, &format!("test/c{v6}")).connections, 4);
        assert_eq!(counters_of(&w, &format!("test/u{v6}")).connections, 1);
    }
    // Outside the cgroup nothing is translated: the ClusterIP is not routed anywhere.
    assert!(
        connect(&lab.client, sa(&c4, 80)).is_err(),
        "a process outside the cgroup reached the ClusterIP"
    );
}

/// The role this test binary plays when a test re-executes it as a separate loader process.
fn child_role() -> Option<String> {
    std::env::var("BGPLANE_DP_CHILD").ok()
}

fn pinned_plans(lab_base: u16) -> Vec<ServicePlan> {
    let vip = format!("10.99.{}.100", lab_base + 9);
    vec![plan(
        "pin",
        FrontendKind::LoadBalancer,
        &vip,
        80,
        Protocol::Tcp,
        (0..2)
            .map(|i| be(&format!("10.99.{}.2", lab_base + 1 + i), PORT, true))
            .collect(),
    )]
}

#[test]
fn pinned_datapath_serves_after_the_loader_exits_and_a_second_process_adopts_it() {
    if let Some(role) = child_role() {
        // Child process: load + attach + write, print what happened, exit.
        let env = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} unset"));
        let (bpffs, node, base) = (
            PathBuf::from(env("BGPLANE_DP_BPFFS")),
            env("BGPLANE_DP_NODE"),
            env("BGPLANE_DP_BASE"),
        );
        let base: u16 = base.parse().expect("base");
        let b2 = bpffs.clone();
        let st = in_netns(Some(&node), move || {
            let mut dp = Datapath::load(&LoadConfig::new(&b2)).expect("child load");
            dp.attach_tc("eth0").expect("child attach")
        });
        let mut w = Writer::open(&bpffs, writer_cfg(vec![])).expect("child writer");
        let writes = w.apply(&pinned_plans(base)).expect("child apply").writes();
        println!(
            "CHILD {role} attached={} adopted={} writes={writes}",
            st.attached, st.adopted
        );
        return;
    }
    let lab = Lab::new(4, "pin", 2);
    let spawn = |role: &str| -> String {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "netns::pinned_datapath_serves_after_the_loader_exits_and_a_second_process_adopts_it", "--nocapture", "--test-threads=1"])
            .env("BGPLANE_DP_CHILD", role)
            .env("BGPLANE_DP_BPFFS", lab.bpffs())
            .env("BGPLANE_DP_NODE", &lab.node)
            .env("BGPLANE_DP_BASE", lab.base.to_string())
            .output()
            .expect("spawn child");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "child {role}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
            .lines()
            .find_map(|l| l.find("CHILD ").map(|i| &l[i..]))
            .unwrap_or_else(|| panic!("no CHILD line: {stdout}"))
            .to_string()
    };
    let first = spawn("load");
    assert!(first.contains("attached=2 adopted=0"), "{first}");
    assert!(!first.contains("writes=0"), "{first}");
    // The loader is gone: only pins hold the programs and maps.
    let vip = sa(&format!("10.99.{}.100", lab.base + 9), 80);
    let seen = names((0..12).map(|_| greeting(&lab.client, vip)));
    assert!(seen.len() == 2, "after the loader exited: {seen:?}");
    let (mut long, _) = connect(&lab.client, vip).expect("long-lived");
    let second = spawn("adopt");
    assert_eq!(
        second, "CHILD adopt attached=0 adopted=2 writes=0",
        "the second process re-did work"
    );
    assert_eq!(
        ping(&mut long, "across-restart").expect("connection broke across the restart"),
        "across-restart"
    );
}
