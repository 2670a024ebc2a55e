//! `bgplane agent` end to end on loopback: two agents peering with each other (MD5, source
//! addresses, a passive side), and an agent against a raw TCP peer that speaks `bgp::wire`.
//! Each test uses its own 127.x.y.0/24 addresses (from the PID and a counter) and ports the
//! kernel handed out, its own API sockets and temp dir; agents are stopped by PID in a guard.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bgp::wire::{Capability, Context, Family, Message, Open};
use speaker::api::{self, PeerJson, RouteJson};

const BIN: &str = env!("CARGO_BIN_EXE_bgplane");

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A private 127.x.y.0/24 for one test, and a temp dir for its files.
struct Net {
    x: u8,
    y: u8,
    dir: PathBuf,
}

impl Net {
    fn new(test: &str) -> Net {
        let seq = SEQ.fetch_add(1, Ordering::SeqCst);
        let n = std::process::id().wrapping_mul(31).wrapping_add(seq * 7919);
        let x = 1 + (n % 250) as u8;
        let y = ((n / 250) % 256) as u8;
        let dir = std::env::temp_dir().join(format!(
            "bgplane-speaker-{}-{seq}-{test}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Net { x, y, dir }
    }

    fn ip(&self, host: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, self.x, self.y, host))
    }

    /// A port that was free on `ip` a moment ago.
    fn port(&self, ip: IpAddr) -> u16 {
        TcpListener::bind(SocketAddr::new(ip, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running `bgplane agent`, killed (by PID) on drop.
struct Agent {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
}

impl Agent {
    fn start(net: &Net, name: &str, config: &str, extra: &[&str]) -> Agent {
        let conf = net.dir.join(format!("{name}.yaml"));
        std::fs::write(&conf, config).unwrap();
        let socket = net.dir.join(format!("{name}.sock"));
        let log = net.dir.join(format!("{name}.log"));
        let child = Command::new(BIN)
            .args(["agent", "--config"])
            .arg(&conf)
            .arg("--socket")
            .arg(&socket)
            .args(["--log", "debug"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Agent { child, socket, log }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn peers(&self) -> Option<Vec<PeerJson>> {
        api::get(&self.socket, "/v1/peers").ok()
    }

    fn routes(&self, kind: &str) -> Vec<RouteJson> {
        api::get(&self.socket, &format!("/v1/routes/{kind}")).unwrap()
    }

    /// Wait until the only peer satisfies `f`; panic with the last view and the log.
    fn wait_peer(&self, what: &str, timeout: Duration, f: impl Fn(&PeerJson) -> bool) -> PeerJson {
        let start = Instant::now();
        let mut last = None;
        while start.elapsed() < timeout {
            if let Some(p) = self.peers().and_then(|v| v.into_iter().next()) {
                if f(&p) {
                    return p;
                }
                last = Some(p);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "timed out waiting for {what}; last: {last:?}\n--- log ---\n{}",
            self.log_text()
        );
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: plain kill(2) on our own child's PID.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "agent did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn peer_config(
    my: u32,
    peer: u32,
    addr: IpAddr,
    port: u16,
    src: IpAddr,
    rid: &str,
    extra: &str,
) -> String {
    format!(
        "peers:\n- my-asn: {my}\n  peer-asn: {peer}\n  peer-address: {addr}\n  peer-port: {port}\n  source-address: {src}\n  router-id: {rid}\n  hold-time: 9s\n{extra}listen-address: {src}\nlisten-port: {port}\n"
    )
}

#[test]
fn two_agents_establish_exchange_routes_and_stop_with_cease() {
    let net = Net::new("two_agents");
    let (a, b) = (net.ip(2), net.ip(3));
    let port = net.port(a).max(net.port(b));
    // a is active, b passive; both sign with MD5.
    let ca = peer_config(
        65001,
        4200000002,
        b,
        port,
        a,
        "10.0.0.1",
        "  password: s3cret\n",
    );
    let cb = peer_config(
        4200000002,
        65001,
        a,
        port,
        b,
        "10.0.0.2",
        "  password: s3cret\n  passive: true\n",
    );
    let mut agent_a = Agent::start(
        &net,
        "a",
        &ca,
        &[
            "--originate",
            "198.51.100.0/24",
            "--originate",
            "198.51.100.128/25",
        ],
    );
    let agent_b = Agent::start(&net, "b", &cb, &["--originate", "203.0.113.0/24"]);

    let pa = agent_a.wait_peer(
        "a Established with 2 routes",
        Duration::from_secs(15),
        |p| p.state == "Established" && p.received.total == 1 && p.advertised.total == 2,
    );
    assert_eq!(pa.peer_address, b.to_string());
    assert_eq!((pa.local_asn, pa.peer_asn), (65001, 4200000002));
    assert_eq!(pa.peer_router_id.as_deref(), Some("10.0.0.2"));
    assert_eq!(pa.hold_time, Some(9));
    assert_eq!(pa.received.families.get("ipv4-unicast"), Some(&1));
    assert!(
        pa.local_address
            .as_deref()
            .unwrap()
            .starts_with(&format!("{a}:")),
        "{pa:?}"
    );
    let pb = agent_b.wait_peer("b Established", Duration::from_secs(15), |p| {
        p.state == "Established" && p.received.total == 2
    });
    assert!(pb.passive);

    // What b received from a: a's prefixes, AS path [65001], next hop a (next-hop-self).
    let rb = agent_b.routes("received");
    let mut prefixes: Vec<&str> = rb.iter().map(|r| r.prefix.as_str()).collect();
    prefixes.sort();
    assert_eq!(prefixes, ["198.51.100.0/24", "198.51.100.128/25"]);
    for r in &rb {
        assert_eq!(r.as_path, vec![65001]);
        assert_eq!(r.next_hop.as_deref(), Some(a.to_string().as_str()));
        assert_eq!(r.origin, "igp");
        assert_eq!(r.peer_address, a.to_string());
    }
    let ra = agent_a.routes("received");
    assert_eq!(ra.len(), 1);
    assert_eq!(ra[0].prefix, "203.0.113.0/24");
    assert_eq!(ra[0].as_path, vec![4200000002]);
    assert_eq!(agent_a.routes("advertised").len(), 2);

    // The CLI prints the same through the same socket.
    let out = Command::new(BIN)
        .args(["peers", "-o", "json", "--socket"])
        .arg(&agent_a.socket)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Vec<PeerJson> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli[0].state, "Established");
    let table = Command::new(BIN)
        .args(["routes", "received", "--family", "ipv4", "--peer"])
        .arg(b.to_string())
        .arg("--socket")
        .arg(&agent_a.socket)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("203.0.113.0/24") && table.contains("4200000002"),
        "{table}"
    );

    // SIGTERM: exit 0, and b saw a Cease / Administrative Shutdown.
    let status = agent_a.terminate();
    assert!(status.success(), "{status:?}\n{}", agent_a.log_text());
    let pb = agent_b.wait_peer("b down after a's Cease", Duration::from_secs(5), |p| {
        p.state != "Established"
    });
    let err = pb.last_error.unwrap_or_default();
    assert!(
        err.contains("received Cease / Administrative Shutdown"),
        "{err}"
    );
    assert!(
        !Path::new(&agent_a.socket).exists(),
        "API socket left behind"
    );
}

#[test]
fn wrong_md5_password_never_establishes() {
    let net = Net::new("md5");
    let (a, b) = (net.ip(2), net.ip(3));
    let port = net.port(a).max(net.port(b));
    let ca = peer_config(65001, 65002, b, port, a, "10.0.0.1", "  password: right\n");
    let cb = peer_config(65002, 65001, a, port, b, "10.0.0.2", "  password: wrong\n");
    let agent_a = Agent::start(&net, "a", &ca, &["--connect-retry", "1"]);
    let _agent_b = Agent::start(&net, "b", &cb, &["--connect-retry", "1"]);
    let start = Instant::now();
    let mut seen = false;
    while start.elapsed() < Duration::from_secs(5) {
        if let Some(p) = agent_a.peers().and_then(|v| v.into_iter().next()) {
            seen = true;
            assert!(
                !matches!(p.state.as_str(), "OpenSent" | "OpenConfirm" | "Established"),
                "a session came up with mismatched MD5 keys: {p:?}"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(seen, "the API never answered:\n{}", agent_a.log_text());
}

/// Read one BGP message from a blocking stream.
fn read_msg(s: &mut TcpStream) -> std::io::Result<Message> {
    let mut head = [0u8; 19];
    s.read_exact(&mut head)?;
    let len = usize::from(u16::from_be_bytes([head[16], head[17]]));
    let mut buf = head.to_vec();
    buf.resize(len.max(19), 0);
    s.read_exact(&mut buf[19..])?;
    Message::decode(&buf, &Context::modern())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
}

fn connect_from(src: IpAddr, dst: SocketAddr) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(src, 0)).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(sock.connect(dst)).unwrap().into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

#[test]
fn raw_peers_unknown_address_closed_and_bad_as_gets_open_error() {
    let net = Net::new("raw");
    let (a, peer, stranger) = (net.ip(2), net.ip(3), net.ip(9));
    let port = net.port(a);
    // Passive: the agent only waits for the raw peer.
    let ca = peer_config(65001, 65002, peer, port, a, "10.0.0.1", "  passive: true\n");
    let agent = Agent::start(&net, "a", &ca, &[]);
    agent.wait_peer("agent up", Duration::from_secs(10), |p| p.state == "Active");
    let listen = SocketAddr::new(a, port);

    // Not a configured peer: closed at once, nothing sent.
    let mut s = connect_from(stranger, listen);
    let mut buf = [0u8; 64];
    let t = Instant::now();
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the agent sent {n} bytes to an unconfigured address");
    assert!(t.elapsed() < Duration::from_secs(2));
    let log = agent.log_text();
    assert!(log.contains("not a configured peer"), "{log}");

    // The configured address gets our OPEN; announcing the wrong AS gets 2/2 Bad Peer AS.
    let mut s = connect_from(peer, listen);
    let Message::Open(open) = read_msg(&mut s).unwrap() else {
        panic!("no OPEN first")
    };
    assert_eq!(open.asn(), 65001);
    assert_eq!(open.bgp_id, Ipv4Addr::new(10, 0, 0, 1));
    assert!(open.families().contains(&Family::IPV4_UNICAST));
    let bad = Open::new(
        65099,
        9,
        Ipv4Addr::new(10, 0, 0, 3),
        vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::FourOctetAs(65099),
        ],
    );
    s.write_all(&Message::Open(bad).to_bytes(&Context::default()).unwrap())
        .unwrap();
    let Message::Notification(n) = read_msg(&mut s).unwrap() else {
        panic!("no NOTIFICATION")
    };
    assert_eq!((n.code, n.subcode), (2, 2));
    let p = agent.wait_peer("last_error set", Duration::from_secs(5), |p| {
        p.last_error.is_some()
    });
    assert!(p.last_error.as_deref().unwrap().contains("2/2"), "{p:?}");

    // A well-behaved raw peer reaches Established and gets End-of-RIB.
    let mut s = connect_from(peer, listen);
    let Message::Open(_) = read_msg(&mut s).unwrap() else {
        panic!("no OPEN")
    };
    let good = Open::new(
        65002,
        9,
        Ipv4Addr::new(10, 0, 0, 3),
        vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::FourOctetAs(65002),
        ],
    );
    s.write_all(&Message::Open(good).to_bytes(&Context::default()).unwrap())
        .unwrap();
    assert_eq!(read_msg(&mut s).unwrap(), Message::Keepalive);
    s.write_all(&Message::Keepalive.to_bytes(&Context::default()).unwrap())
        .unwrap();
    let mut eor = false;
    for _ in 0..4 {
        match read_msg(&mut s).unwrap() {
            Message::Update(u) if u.end_of_rib_family() == Some(Family::IPV4_UNICAST) => {
                eor = true;
                break;
            }
            _ => {}
        }
    }
    assert!(eor, "no End-of-RIB for IPv4 unicast");
    agent.wait_peer(
        "Established with the raw peer",
        Duration::from_secs(5),
        |p| p.state == "Established",
    );
}

#[test]
fn raw_peer_over_max_prefixes_gets_cease_1() {
    let net = Net::new("maxpfx");
    let (a, peer) = (net.ip(2), net.ip(3));
    let port = net.port(a);
    let ca = peer_config(
        65001,
        65002,
        peer,
        port,
        a,
        "10.0.0.1",
        "  passive: true\n  max-prefixes: 2\n",
    );
    let agent = Agent::start(&net, "a", &ca, &[]);
    agent.wait_peer("agent up", Duration::from_secs(10), |p| p.state == "Active");
    let mut s = connect_from(peer, SocketAddr::new(a, port));
    let Message::Open(_) = read_msg(&mut s).unwrap() else {
        panic!("no OPEN")
    };
    let open = Open::new(
        65002,
        9,
        Ipv4Addr::new(10, 0, 0, 3),
        vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::FourOctetAs(65002),
        ],
    );
    let cx = Context::modern();
    s.write_all(&Message::Open(open).to_bytes(&Context::default()).unwrap())
        .unwrap();
    assert_eq!(read_msg(&mut s).unwrap(), Message::Keepalive);
    s.write_all(&Message::Keepalive.to_bytes(&cx).unwrap())
        .unwrap();
    let attrs = vec![
        bgp::wire::Attr::new(bgp::wire::AttrValue::Origin(bgp::wire::Origin::Igp)),
        bgp::wire::Attr::new(bgp::wire::AttrValue::AsPath(bgp::wire::AsPath::sequence(
            vec![65002],
        ))),
        bgp::wire::Attr::new(bgp::wire::AttrValue::NextHop(Ipv4Addr::new(127, 0, 0, 3))),
    ];
    let nlri: Vec<bgp::wire::Nlri> = ["192.0.2.0/26", "192.0.2.64/26", "192.0.2.128/26"]
        .iter()
        .map(|p| bgp::wire::Nlri::new(p.parse::<ipnet::Ipv4Net>().unwrap()))
        .collect();
    let update = bgp::wire::Update::announce(attrs, nlri, None);
    s.write_all(&Message::Update(update).to_bytes(&cx).unwrap())
        .unwrap();
    // Whatever the agent sent before (KEEPALIVE, End-of-RIB), a Cease / 1 must follow.
    let mut cease = None;
    for _ in 0..8 {
        match read_msg(&mut s) {
            Ok(Message::Notification(n)) => {
                cease = Some(n);
                break;
            }
            Ok(_) => {}
            Err(e) => panic!("no NOTIFICATION: {e}\n{}", agent.log_text()),
        }
    }
    let n = cease.unwrap();
    assert_eq!((n.code, n.subcode), (6, 1));
    // RFC 4486: AFI 1, SAFI 1, limit 2.
    assert_eq!(&n.data[..], &[0, 1, 1, 0, 0, 0, 2]);
    let p = agent.wait_peer("max-prefix in last_error", Duration::from_secs(5), |p| {
        p.last_error.is_some()
    });
    assert!(p.last_error.unwrap().contains("6/1"));
}

/// The GR Restart State bit in the OPEN the agent sends to a raw passive-side peer.
fn restart_bit_in_open(agent: &Agent, peer: IpAddr, listen: SocketAddr) -> bool {
    agent.wait_peer("agent up", Duration::from_secs(10), |p| p.state == "Active");
    let mut s = connect_from(peer, listen);
    let Message::Open(open) = read_msg(&mut s).unwrap() else {
        panic!("no OPEN first")
    };
    let gr = open
        .capabilities()
        .find_map(|c| match c {
            Capability::GracefulRestart(gr) => Some(gr.clone()),
            _ => None,
        })
        .expect("graceful restart capability");
    assert_eq!(gr.restart_time, 30);
    gr.restart_state()
}

#[test]
fn restart_bit_only_after_an_unclean_exit() {
    let net = Net::new("grbit");
    let (a, peer) = (net.ip(2), net.ip(3));
    let port = net.port(a);
    let listen = SocketAddr::new(a, port);
    let ca = peer_config(
        65001,
        65002,
        peer,
        port,
        a,
        "10.0.0.1",
        "  passive: true\n  graceful-restart: true\n  graceful-restart-time: 30s\n",
    );
    // A fresh start: nothing to recover, so no Restart State bit (RFC 4724 §3).
    let mut agent = Agent::start(&net, "a", &ca, &[]);
    assert!(
        !restart_bit_in_open(&agent, peer, listen),
        "R bit on a fresh start"
    );
    // kill -9: routers may hold our routes as stale, so the next start is a restart.
    agent.child.kill().unwrap();
    agent.child.wait().unwrap();
    drop(agent);
    let mut agent = Agent::start(&net, "a", &ca, &[]);
    assert!(
        restart_bit_in_open(&agent, peer, listen),
        "no R bit after kill -9"
    );
    // A clean shutdown sent Cease to every peer: the next start is fresh again.
    assert!(agent.terminate().success());
    drop(agent);
    let agent = Agent::start(&net, "a", &ca, &[]);
    assert!(
        !restart_bit_in_open(&agent, peer, listen),
        "R bit after a clean stop"
    );
}

/// A raw peer's side of the handshake on `s`: read the agent's OPEN, send ours (`asn`,
/// hold time 3 s), KEEPALIVE both ways. Returns the hold time the agent offered.
fn raw_handshake(s: &mut TcpStream, asn: u32, id: Ipv4Addr) -> u16 {
    let Message::Open(theirs) = read_msg(s).unwrap() else {
        panic!("no OPEN first")
    };
    let ours = Open::new(
        asn,
        3,
        id,
        vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::FourOctetAs(asn),
        ],
    );
    s.write_all(&Message::Open(ours).to_bytes(&Context::default()).unwrap())
        .unwrap();
    assert_eq!(read_msg(s).unwrap(), Message::Keepalive);
    s.write_all(&Message::Keepalive.to_bytes(&Context::modern()).unwrap())
        .unwrap();
    theirs.hold_time
}

/// Sends a KEEPALIVE on a clone of `s` every `every` until `stop` is set (a raw peer's own
/// keepalive timer, independent of how fast it reads).
fn keepalive_thread(
    s: &TcpStream,
    every: Duration,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let mut w = s.try_clone().unwrap();
    let ka = Message::Keepalive.to_bytes(&Context::modern()).unwrap();
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            if w.write_all(&ka).is_err() {
                return;
            }
            std::thread::sleep(every);
        }
    })
}

/// What a raw peer's reader saw: when each KEEPALIVE arrived, prefixes announced, and
/// whether a NOTIFICATION came.
#[derive(Default)]
struct Seen {
    keepalives: Vec<Instant>,
    first_route: Option<Instant>,
    last_route: Option<Instant>,
    prefixes: usize,
    notification: Option<bgp::wire::Notification>,
    error: Option<String>,
}

/// The longest stretch without a KEEPALIVE between `from` and `to` (both ends count).
fn longest_keepalive_gap(keepalives: &[Instant], from: Instant, to: Instant) -> Duration {
    let mut marks: Vec<Instant> = keepalives
        .iter()
        .copied()
        .filter(|t| *t > from && *t < to)
        .collect();
    marks.insert(0, from);
    marks.push(to);
    marks
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default()
}

/// Read `s` until `want` prefixes were announced, EOF, an error or `deadline`; at most
/// `chunk` bytes per read with `pause` after each (a slow reader), or as fast as possible.
fn read_routes(
    s: &mut TcpStream,
    want: usize,
    chunk: usize,
    pause: Duration,
    deadline: Instant,
) -> Seen {
    let cx = Context::modern();
    let mut seen = Seen::default();
    let mut buf: Vec<u8> = Vec::new();
    let mut tmp = vec![0u8; chunk];
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    while seen.prefixes < want && Instant::now() < deadline {
        match s.read(&mut tmp) {
            Ok(0) => {
                seen.error = Some("EOF".into());
                break;
            }
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => {
                seen.error = Some(e.to_string());
                break;
            }
        }
        let mut off = 0;
        while let Ok(Some(len)) = bgp::wire::frame_len(&buf[off..], bgp::wire::MAX_EXTENDED_LEN) {
            let now = Instant::now();
            match Message::decode(&buf[off..off + len], &cx) {
                Ok(Message::Keepalive) => seen.keepalives.push(now),
                Ok(Message::Update(u)) if !u.nlri.is_empty() => {
                    seen.first_route.get_or_insert(now);
                    seen.last_route = Some(now);
                    seen.prefixes += u.nlri.len();
                }
                Ok(Message::Notification(n)) => {
                    seen.notification = Some(n);
                    return seen;
                }
                Ok(_) => {}
                Err(e) => {
                    seen.error = Some(format!("decode: {e}"));
                    return seen;
                }
            }
            off += len;
        }
        buf.drain(..off);
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
    seen
}

/// Keepalives never starve behind a large send. Hold time 3 s on both sessions; a fast raw
/// peer announces 200,000 prefixes (2,000 AS paths x 100) that the agent re-advertises to a
/// second raw peer that reads slowly (4 KiB receive buffer, 2 KiB per read, 15 ms between
/// reads: about 130 KB/s, so the ~1 MB of UPDATEs takes seconds to drain). While those
/// UPDATEs are queued the slow peer must still see a KEEPALIVE at least every hold/3 + 1 s
/// (2 s), and so must the fast peer while the agent ingests; no NOTIFICATION on either
/// session, both still Established without a flap at the end, every prefix delivered.
#[test]
fn keepalives_keep_flowing_to_a_slow_reader_behind_a_200k_prefix_readvertisement() {
    const PREFIXES: usize = 200_000;
    const PER_PATH: usize = 100;
    let net = Net::new("slowrd");
    let (a, fast, slow) = (net.ip(2), net.ip(3), net.ip(4));
    let port = net.port(a);
    let peer = |asn: u32, addr: IpAddr| {
        format!(
            "- my-asn: 65001\n  peer-asn: {asn}\n  peer-address: {addr}\n  peer-port: {port}\n  source-address: {a}\n  router-id: 10.0.0.1\n  hold-time: 3s\n  passive: true\n"
        )
    };
    let config = format!(
        "peers:\n{}{}listen-address: {a}\nlisten-port: {port}\n",
        peer(65002, fast),
        peer(65003, slow)
    );
    let agent = Agent::start(&net, "a", &config, &[]);
    agent.wait_peer("agent up", Duration::from_secs(10), |p| p.state == "Active");
    let listen = SocketAddr::new(a, port);
    let deadline = Instant::now() + Duration::from_secs(60);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));

    // The slow peer first: a tiny receive buffer, set before the SYN so the window stays small.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.bind(SocketAddr::new(slow, 0)).unwrap();
    let mut s_slow = rt
        .block_on(sock.connect(listen))
        .unwrap()
        .into_std()
        .unwrap();
    s_slow.set_nonblocking(false).unwrap();
    s_slow
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(
        raw_handshake(&mut s_slow, 65003, Ipv4Addr::new(10, 0, 0, 4)),
        3
    );
    let ka_slow = keepalive_thread(&s_slow, Duration::from_secs(1), stop.clone());
    // The reader hands the stream back, so the session stays open until both are checked.
    let slow_reader = std::thread::spawn(move || {
        let pause = Duration::from_millis(15);
        let seen = read_routes(&mut s_slow, PREFIXES, 2048, pause, deadline);
        (seen, s_slow)
    });

    // The fast peer: its reader drains the agent as fast as it can (and times keepalives);
    // its writer sends the table with a KEEPALIVE at least every second in between.
    let mut s_fast = connect_from(fast, listen);
    raw_handshake(&mut s_fast, 65002, Ipv4Addr::new(10, 0, 0, 3));
    let mut r_fast = s_fast.try_clone().unwrap();
    let fast_reader = std::thread::spawn(move || {
        read_routes(&mut r_fast, usize::MAX, 64 * 1024, Duration::ZERO, deadline)
    });
    let cx = Context::modern();
    let ka = Message::Keepalive.to_bytes(&cx).unwrap();
    let mut last_ka = Instant::now();
    let feed_start = Instant::now();
    for path in 0..PREFIXES / PER_PATH {
        let attrs = vec![
            bgp::wire::Attr::new(bgp::wire::AttrValue::Origin(bgp::wire::Origin::Igp)),
            bgp::wire::Attr::new(bgp::wire::AttrValue::AsPath(bgp::wire::AsPath::sequence(
                vec![65002, 4_200_000_000 + path as u32],
            ))),
            bgp::wire::Attr::new(bgp::wire::AttrValue::NextHop(Ipv4Addr::new(127, 0, 0, 3))),
        ];
        let nlri: Vec<bgp::wire::Nlri> = (0..PER_PATH)
            .map(|i| {
                let n = (path * PER_PATH + i) as u32;
                // 10.0.0.0/24, 10.0.1.0/24, ...: 200,000 distinct /24s from 10.0.0.0 on.
                let net = Ipv4Addr::from((10u32 << 24) + (n << 8));
                bgp::wire::Nlri::new(ipnet::Ipv4Net::new(net, 24).unwrap())
            })
            .collect();
        let update = bgp::wire::Update::announce(attrs, nlri, None);
        s_fast
            .write_all(&Message::Update(update).to_bytes(&cx).unwrap())
            .unwrap();
        if last_ka.elapsed() >= Duration::from_secs(1) {
            s_fast.write_all(&ka).unwrap();
            last_ka = Instant::now();
        }
    }
    let fed = feed_start.elapsed();
    let ka_fast = keepalive_thread(&s_fast, Duration::from_secs(1), stop.clone());

    let (slow_seen, s_slow) = slow_reader.join().unwrap();
    let done = Instant::now();
    // The agent re-advertised everything; now check both sessions are still up.
    let peers = agent.peers().unwrap();
    stop.store(true, Ordering::SeqCst);
    let _ = s_fast.shutdown(std::net::Shutdown::Both);
    drop(s_slow);
    let fast_seen = fast_reader.join().unwrap();
    ka_slow.join().unwrap();
    ka_fast.join().unwrap();

    let log = agent.log_text();
    assert!(
        slow_seen.notification.is_none() && slow_seen.error.is_none(),
        "slow peer: NOTIFICATION {:?} / error {:?} after {} prefixes\n{log}",
        slow_seen.notification,
        slow_seen.error,
        slow_seen.prefixes
    );
    assert_eq!(
        slow_seen.prefixes, PREFIXES,
        "slow peer got only part of the table\n{log}"
    );
    assert!(
        fast_seen.notification.is_none(),
        "fast peer got {:?}\n{log}",
        fast_seen.notification
    );
    for p in &peers {
        assert!(
            p.state == "Established" && p.flaps == 0,
            "session not up without a flap: {p:?}\n{log}"
        );
    }
    let (first, last) = (
        slow_seen.first_route.unwrap(),
        slow_seen.last_route.unwrap(),
    );
    let slow_gap = longest_keepalive_gap(&slow_seen.keepalives, first, last);
    let fast_gap = longest_keepalive_gap(&fast_seen.keepalives, feed_start, done);
    eprintln!(
        "fed {PREFIXES} prefixes in {:.2}s; slow peer drained them in {:.2}s with {} keepalives, longest gap {:.2}s; fast peer's longest keepalive gap {:.2}s",
        fed.as_secs_f64(),
        (last - first).as_secs_f64(),
        slow_seen.keepalives.iter().filter(|t| **t > first && **t < last).count(),
        slow_gap.as_secs_f64(),
        fast_gap.as_secs_f64()
    );
    let limit = Duration::from_secs(2);
    assert!(
        slow_gap <= limit,
        "the slow peer waited {slow_gap:?} for a KEEPALIVE while UPDATEs were queued (hold 3 s)"
    );
    assert!(
        fast_gap <= limit,
        "the fast peer waited {fast_gap:?} for a KEEPALIVE while the agent ingested (hold 3 s)"
    );
}
