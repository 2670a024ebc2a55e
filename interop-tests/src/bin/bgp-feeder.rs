//! bgp-feeder: a BGP sender for ingest benchmarks. It generates a synthetic Internet-like table
//! (`bgp::synth`, distinct routable prefixes, next hops = the feeder), opens one session
//! (connecting out, or accepting one connection), streams the pre-encoded UPDATEs as fast as
//! the socket takes them, sends End-of-RIB, and then keeps the session alive (keepalives every
//! hold/3, hold timer enforced) until SIGTERM/SIGINT, when it sends a Cease NOTIFICATION.
//!
//! It is not a BGP implementation: no FSM, no RIB; whatever the peer sends besides KEEPALIVE
//! and NOTIFICATION is read and ignored.
//!
//! Progress goes to stdout, one `key value...` line per event, with CLOCK_MONOTONIC stamps
//! (`mono_ns`) that another process on the machine can compare with its own:
//!
//! ```text
//! table updates=221634 v4=1000000 v6=200000 bytes=25561234 gen_s=0.512
//! established mono_ns=... peer_asn=65000 hold=180
//! first_update mono_ns=...
//! sent mono_ns=... bytes=... secs=0.31
//! ```
//!
//! Usage: `bgp-feeder (--connect ADDR[:PORT] | --listen ADDR[:PORT]) --asn N --router-id A
//!   --next-hop-v4 A --next-hop-v6 A [--next-hop-v6-ll A] [--peer-asn N] [--local ADDR]
//!   [--hold SECS] [--v4 N] [--v6 N] [--part I --parts P]`

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use bgp::synth::{self, NextHops, Spec};
use bgp::wire::{
    frame_len, Capability, Context, Family, Message, Notification, Open, Update, HEADER_LEN,
    MAX_LEN,
};
use interop_tests::process::mono_ns;

/// BGP message type of UPDATE (RFC 4271 §4.1).
const UPDATE: u8 = 2;

const USAGE: &str = "usage: bgp-feeder (--connect ADDR[:PORT] | --listen ADDR[:PORT]) --asn N \
--router-id A --next-hop-v4 A --next-hop-v6 A [--next-hop-v6-ll A] [--peer-asn N] \
[--local ADDR] [--hold SECS] [--v4 N] [--v6 N] [--part I --parts P]";

/// Bytes handed to one write() while holding the socket: whole messages, so a KEEPALIVE from
/// the timer thread never lands inside an UPDATE.
const CHUNK: usize = 256 << 10;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

struct Args {
    connect: Option<SocketAddr>,
    listen: Option<SocketAddr>,
    local: Option<IpAddr>,
    asn: u32,
    peer_asn: Option<u32>,
    router_id: Ipv4Addr,
    hold: u16,
    v4: usize,
    v6: usize,
    part: u32,
    parts: u32,
    next_hop_v4: Ipv4Addr,
    next_hop_v6: Ipv6Addr,
    next_hop_v6_ll: Option<Ipv6Addr>,
}

fn parse_sockaddr(s: &str) -> Result<SocketAddr> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let ip: IpAddr = s
        .parse()
        .with_context(|| format!("{s:?} is neither ADDR nor ADDR:PORT"))?;
    Ok(SocketAddr::new(ip, 179))
}

fn parse_args(argv: &[String]) -> Result<Args> {
    fn value<'a>(it: &mut impl Iterator<Item = &'a String>, flag: &str) -> Result<&'a str> {
        it.next()
            .map(String::as_str)
            .with_context(|| format!("{flag} needs a value"))
    }
    fn num<T: std::str::FromStr>(s: &str, flag: &str) -> Result<T>
    where
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        s.parse().with_context(|| format!("{flag} {s:?}"))
    }
    let (mut connect, mut listen, mut local, mut asn, mut peer_asn) =
        (None, None, None, None, None);
    let (mut router_id, mut nh4, mut nh6, mut nh6_ll) = (None, None, None, None);
    let (mut hold, mut v4, mut v6, mut part, mut parts) =
        (180u16, Spec::INTERNET_V4, Spec::INTERNET_V6, 0u32, 1u32);
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let f = flag.as_str();
        match f {
            "--connect" => connect = Some(parse_sockaddr(value(&mut it, f)?)?),
            "--listen" => listen = Some(parse_sockaddr(value(&mut it, f)?)?),
            "--local" => local = Some(num(value(&mut it, f)?, f)?),
            "--asn" => asn = Some(num(value(&mut it, f)?, f)?),
            "--peer-asn" => peer_asn = Some(num(value(&mut it, f)?, f)?),
            "--router-id" => router_id = Some(num(value(&mut it, f)?, f)?),
            "--hold" => hold = num(value(&mut it, f)?, f)?,
            "--v4" => v4 = num(value(&mut it, f)?, f)?,
            "--v6" => v6 = num(value(&mut it, f)?, f)?,
            "--part" => part = num(value(&mut it, f)?, f)?,
            "--parts" => parts = num(value(&mut it, f)?, f)?,
            "--next-hop-v4" => nh4 = Some(num(value(&mut it, f)?, f)?),
            "--next-hop-v6" => nh6 = Some(num(value(&mut it, f)?, f)?),
            "--next-hop-v6-ll" => nh6_ll = Some(num(value(&mut it, f)?, f)?),
            "-h" | "--help" => bail!("{USAGE}"),
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if connect.is_some() == listen.is_some() {
        bail!("give exactly one of --connect and --listen\n{USAGE}");
    }
    if parts == 0 || part >= parts {
        bail!("--part {part} must be below --parts {parts}");
    }
    if hold != 0 && hold < 3 {
        bail!("--hold {hold}: a hold time is 0 or at least 3 seconds (RFC 4271 §4.2)");
    }
    Ok(Args {
        connect,
        listen,
        local,
        asn: asn.context("--asn is required")?,
        peer_asn,
        router_id: router_id.context("--router-id is required")?,
        hold,
        v4,
        v6,
        part,
        parts,
        next_hop_v4: nh4.context("--next-hop-v4 is required")?,
        next_hop_v6: nh6.context("--next-hop-v6 is required")?,
        next_hop_v6_ll: nh6_ll,
    })
}

fn event(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Reads whole BGP messages off a socket that has a read timeout.
struct Reader {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Start of the first unread message in `buf` (compacted before each read).
    pos: usize,
}

/// What `Reader::next` got.
enum Got {
    Message(Message),
    /// An UPDATE, skipped undecoded (receivers that re-advertise send plenty).
    Update,
    /// The read timed out first.
    Nothing,
}

impl Reader {
    /// Err on EOF or bad framing.
    fn next(&mut self, cx: &Context) -> Result<Got> {
        loop {
            let rest = &self.buf[self.pos..];
            if let Some(n) = frame_len(rest, MAX_LEN.max(cx.max_message_len()))
                .map_err(|e| anyhow::anyhow!("bad message from the peer: {e}"))?
            {
                let got = if rest[HEADER_LEN - 1] == UPDATE {
                    Ok(Got::Update)
                } else {
                    Message::decode(&rest[..n], cx)
                        .map(Got::Message)
                        .map_err(|e| anyhow::anyhow!("undecodable message from the peer: {e}"))
                };
                self.pos += n;
                return got;
            }
            self.buf.drain(..self.pos);
            self.pos = 0;
            let mut tmp = [0u8; 64 << 10];
            match self.stream.read(&mut tmp) {
                Ok(0) => bail!("the peer closed the connection"),
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut
                        || e.kind() == io::ErrorKind::Interrupted =>
                {
                    return Ok(Got::Nothing)
                }
                Err(e) => return Err(e).context("reading from the peer"),
            }
        }
    }
}

fn open_session(args: &Args) -> Result<TcpStream> {
    if let Some(addr) = args.listen {
        let l = TcpListener::bind(addr).with_context(|| format!("listening on {addr}"))?;
        event(&format!("listening addr={addr}"));
        let (s, from) = l.accept().context("accepting")?;
        event(&format!("accepted from={from}"));
        return Ok(s);
    }
    let Some(addr) = args.connect else {
        bail!("no --connect address");
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let attempt = (|| -> io::Result<TcpStream> {
            let Some(local) = args.local else {
                return TcpStream::connect_timeout(&addr, Duration::from_secs(3));
            };
            // Bind the source address first (std has no bind-then-connect): via libc.
            let domain = if addr.is_ipv4() {
                libc::AF_INET
            } else {
                libc::AF_INET6
            };
            // SAFETY: plain socket syscalls on an fd we own until it becomes a TcpStream.
            unsafe {
                let fd = libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                use std::os::fd::FromRawFd;
                let s = TcpStream::from_raw_fd(fd);
                let (sa, len) = sockaddr(SocketAddr::new(local, 0));
                if libc::bind(fd, &sa as *const _ as *const libc::sockaddr, len) < 0 {
                    return Err(io::Error::last_os_error());
                }
                let (sa, len) = sockaddr(addr);
                if libc::connect(fd, &sa as *const _ as *const libc::sockaddr, len) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(s)
            }
        })();
        match attempt {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() < deadline && !STOP.load(Ordering::SeqCst) => {
                event(&format!("connect_retry addr={addr} error={e}"));
                thread::sleep(Duration::from_millis(500));
            }
            Err(e) => return Err(e).with_context(|| format!("connecting to {addr}")),
        }
    }
}

fn sockaddr(a: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match a {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*v4.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in, sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in6, sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

/// Splits the table into runs of whole messages of at most `CHUNK` bytes.
fn chunks(bytes: &[u8], cx: &Context) -> Result<Vec<Range<usize>>> {
    let mut out = Vec::new();
    let (mut start, mut pos) = (0, 0);
    while pos < bytes.len() {
        let n = frame_len(&bytes[pos..], cx.max_message_len())
            .map_err(|e| anyhow::anyhow!("table framing at byte {pos}: {e}"))?
            .with_context(|| format!("table ends inside a message at byte {pos}"))?;
        if pos + n - start > CHUNK && pos > start {
            out.push(start..pos);
            start = pos;
        }
        pos += n;
    }
    if pos > start {
        out.push(start..pos);
    }
    Ok(out)
}

fn run(args: Args) -> Result<()> {
    let cx = Context::modern();
    let t = Instant::now();
    let spec = Spec::feed(
        args.v4,
        args.v6,
        args.part,
        args.parts,
        NextHops::Fixed {
            v4: args.next_hop_v4,
            v6: args.next_hop_v6,
            v6_link_local: args.next_hop_v6_ll,
        },
    );
    let table = synth::table(&spec, &cx).context("encoding the table")?;
    let ranges = chunks(&table.bytes, &cx)?;
    event(&format!(
        "table updates={} v4={} v6={} bytes={} gen_s={:.3}",
        table.updates,
        table.v4_prefixes,
        table.v6_prefixes,
        table.bytes.len(),
        t.elapsed().as_secs_f64()
    ));

    let stream = open_session(&args)?;
    stream.set_nodelay(true).context("TCP_NODELAY")?;
    let mut writer = stream.try_clone().context("cloning the socket")?;
    let families = [Family::IPV4_UNICAST, Family::IPV6_UNICAST];
    let mut caps: Vec<Capability> = families
        .iter()
        .map(|f| Capability::Multiprotocol(*f))
        .collect();
    caps.push(Capability::RouteRefresh);
    caps.push(Capability::FourOctetAs(args.asn));
    let open = Open::new(args.asn, args.hold, args.router_id, caps);
    writer
        .write_all(&Message::Open(open).to_bytes(&cx)?)
        .context("sending OPEN")?;

    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .context("SO_RCVTIMEO")?;
    let mut reader = Reader {
        stream,
        buf: Vec::new(),
        pos: 0,
    };
    let open_deadline = Instant::now() + Duration::from_secs(60);
    let peer_open = loop {
        match reader.next(&Context::default())? {
            Got::Message(Message::Open(o)) => break o,
            Got::Message(Message::Notification(n)) => {
                bail!("NOTIFICATION instead of OPEN: {}", n.describe())
            }
            Got::Message(other) => bail!("expected OPEN, got {other:?}"),
            Got::Update => bail!("expected OPEN, got an UPDATE"),
            Got::Nothing if Instant::now() > open_deadline => {
                bail!("no OPEN from the peer within 60 s")
            }
            Got::Nothing => {}
        }
    };
    if let Some(want) = args.peer_asn {
        if peer_open.asn() != want {
            send_quietly(&mut writer, &cx, Notification::new(2, 2, Vec::new()));
            bail!("peer AS {} but --peer-asn {want}", peer_open.asn());
        }
    }
    if peer_open.four_octet_as().is_none() {
        bail!("the peer does not support 4-octet AS numbers; the table is encoded with them");
    }
    let peer_families = peer_open.families();
    for f in &families {
        if !peer_families.contains(f) {
            bail!("the peer did not offer {f:?} (it offered {peer_families:?})");
        }
    }
    let hold = match (args.hold, peer_open.hold_time) {
        (0, _) | (_, 0) => 0,
        (a, b) => a.min(b),
    };
    writer
        .write_all(&Message::Keepalive.to_bytes(&cx)?)
        .context("sending KEEPALIVE")?;
    loop {
        match reader.next(&cx)? {
            Got::Message(Message::Keepalive) => break,
            Got::Message(Message::Notification(n)) => {
                bail!("NOTIFICATION in OpenConfirm: {}", n.describe())
            }
            Got::Message(other) => bail!("expected KEEPALIVE, got {other:?}"),
            Got::Update => bail!("expected KEEPALIVE, got an UPDATE"),
            Got::Nothing if Instant::now() > open_deadline => bail!("no KEEPALIVE within 60 s"),
            Got::Nothing => {}
        }
    }
    event(&format!(
        "established mono_ns={} peer_asn={} hold={hold}",
        mono_ns(),
        peer_open.asn()
    ));

    let sock = Arc::new(Mutex::new(writer));
    let keepalive = Message::Keepalive.to_bytes(&cx)?.to_vec();
    if hold > 0 {
        let sock = Arc::clone(&sock);
        let every = Duration::from_secs(u64::from(hold / 3).max(1));
        let keepalive = keepalive.clone();
        thread::spawn(move || loop {
            thread::sleep(every);
            let mut s = sock.lock().unwrap_or_else(|e| e.into_inner());
            if s.write_all(&keepalive).is_err() {
                return;
            }
        });
    }
    let sender = {
        let sock = Arc::clone(&sock);
        let mut eor = Vec::new();
        for f in families {
            eor.extend_from_slice(&Message::Update(Update::end_of_rib(f)).to_bytes(&cx)?);
        }
        thread::spawn(move || -> Result<()> {
            let start = mono_ns();
            for (i, r) in ranges.iter().enumerate() {
                let mut s = sock.lock().unwrap_or_else(|e| e.into_inner());
                s.write_all(&table.bytes[r.clone()])
                    .context("sending UPDATEs")?;
                drop(s);
                if i == 0 {
                    event(&format!("first_update mono_ns={start}"));
                }
            }
            sock.lock()
                .unwrap_or_else(|e| e.into_inner())
                .write_all(&eor)
                .context("sending End-of-RIB")?;
            let end = mono_ns();
            event(&format!(
                "sent mono_ns={end} bytes={} updates={} secs={:.3}",
                table.bytes.len(),
                table.updates,
                (end - start) as f64 / 1e9
            ));
            Ok(())
        })
    };

    let mut last_rx = Instant::now();
    let mut sender = Some(sender);
    let mut ignored = 0u64;
    loop {
        if STOP.load(Ordering::SeqCst) {
            if let Ok(mut s) = sock.try_lock() {
                send_quietly(
                    &mut s,
                    &cx,
                    Notification::cease_with_message(2, "bgp-feeder stopped"),
                );
            }
            event(&format!("stopped ignored_messages={ignored}"));
            return Ok(());
        }
        if sender.as_ref().is_some_and(|h| h.is_finished()) {
            if let Some(h) = sender.take() {
                match h.join() {
                    Ok(r) => r?,
                    Err(_) => bail!("the sender thread panicked"),
                }
            }
        }
        match reader.next(&cx)? {
            Got::Message(Message::Notification(n)) => {
                bail!("NOTIFICATION from the peer: {}", n.describe())
            }
            Got::Message(_) | Got::Update => {
                // KEEPALIVE (or anything else, ignored): either way the peer is alive.
                last_rx = Instant::now();
                ignored += 1;
            }
            Got::Nothing => {}
        }
        if hold > 0 && last_rx.elapsed() > Duration::from_secs(u64::from(hold)) {
            if let Ok(mut s) = sock.try_lock() {
                send_quietly(&mut s, &cx, Notification::new(4, 0, Vec::new()));
            }
            bail!("hold timer expired: nothing from the peer for {hold} s");
        }
    }
}

fn send_quietly(s: &mut TcpStream, cx: &Context, n: Notification) {
    if let Ok(b) = Message::Notification(n).to_bytes(cx) {
        let _ = s.write_all(&b);
    }
}

fn main() {
    // SAFETY: installing an async-signal-safe handler (it only stores to an atomic).
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let result = parse_args(&argv).and_then(run);
    if let Err(e) = result {
        event(&format!("error {e:#}"));
        eprintln!("bgp-feeder: {e:#}");
        std::process::exit(1);
    }
}
