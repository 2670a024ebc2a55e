//! Full-table ingest benchmark: how fast, and with how much memory, does each receiver — the
//! bgplane agent, BIRD, FRR bgpd, GoBGP — take in a synthetic Internet-like table?
//!
//! For each scenario and receiver (one at a time, each in a fresh `Lab`), `bgp-feeder`
//! (src/bin/bgp-feeder.rs) streams the same `bgp::synth` table (distinct routable prefixes,
//! next hop = the feeder) as fast as TCP allows, and the harness polls the receiver's prefix
//! count until it holds every prefix. Reported per receiver:
//! - seconds from the first UPDATE byte written by a feeder (its CLOCK_MONOTONIC stamp) until a
//!   count query returns the whole table (resolution: the poll interval, 2% of the elapsed time
//!   but at least 50 ms, plus one query's latency);
//! - prefixes per second over that time;
//! - the receiver's peak RSS: VmHWM of its process (/proc/PID/status) right then;
//! - the CPU seconds (user + system, all threads) it had used by then, less sensitive than the
//!   wall-clock seconds to whatever else the machine is running (the load average is printed);
//! - when the feeders had written their last byte (the TCP side of the run).
//!
//! Scenarios: `full` (one session, 1,000,000 IPv4 + 200,000 IPv6 prefixes), `peers10` (10
//! feeders on one LAN segment, each 100,000 distinct prefixes: 83,333 IPv4 + 16,667 IPv6, and
//! every receiver re-advertises each route to the other 9 feeders, which read and discard them:
//! bgplane has no setting to stop that, so this is the like-for-like run) and `peers10-noexport`
//! (the same, receivers export nothing; no bgplane row). Receivers accept everything; no kernel
//! routes anywhere (BIRD without a kernel protocol, bgpd without zebra).
//!
//!     cargo build --release -p speaker        # for the bgplane row (else "not available")
//!     cargo bench -p interop-tests --bench ingest [-- [bgplane|bird|frr|gobgp]... \
//!         [--scenario full|peers10|peers10-noexport|all] [--timeout SECS] [--runs N]]
//!
//! Needs root and the lab packages (scripts/install-deps.sh). Each receiver run is bounded by
//! the timeout (default 180 s after the first UPDATE; "timeout" is reported instead of hanging).
//! `--runs N` repeats each receiver N times and reports the fastest run (the machine is shared;
//! the CPU seconds vary much less than the wall-clock ones). This is a benchmark, not a test:
//! it asserts nothing about time.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use interop_tests::process::mono_ns;
use interop_tests::{missing_capabilities, Iface, Lab, Node, Process};
use serde_json::Value;

const FEEDER: &str = env!("CARGO_BIN_EXE_bgp-feeder");
const RECEIVER_ASN: u32 = 65000;
/// Feeder i has AS FEEDER_ASN + i.
const FEEDER_ASN: u32 = 65100;
const HOLD: u16 = 180;
/// From starting the feeders until the first UPDATE (table generation + session setup).
const START_TIMEOUT: Duration = Duration::from_secs(90);
const READY_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Bgplane,
    Bird,
    Frr,
    GoBgp,
}

const KINDS: [Kind; 4] = [Kind::Bgplane, Kind::Bird, Kind::Frr, Kind::GoBgp];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Bgplane => "bgplane",
            Kind::Bird => "bird",
            Kind::Frr => "frr",
            Kind::GoBgp => "gobgp",
        }
    }

    fn binaries(self) -> Vec<&'static str> {
        match self {
            Kind::Bgplane => vec![],
            Kind::Bird => vec!["bird", "birdc"],
            Kind::Frr => vec!["/usr/lib/frr/bgpd", "vtysh"],
            Kind::GoBgp => vec!["gobgpd", "gobgp"],
        }
    }
}

#[derive(Clone, Copy)]
struct Scenario {
    name: &'static str,
    title: &'static str,
    feeders: u32,
    /// Per feeder.
    v4: usize,
    v6: usize,
    /// Whether receivers re-advertise what they learn to their other peers (bgplane, like any
    /// eBGP speaker without an export policy, always does; with one session there is nobody
    /// to re-advertise to).
    export: bool,
}

const SCENARIOS: [Scenario; 3] = [
    Scenario {
        name: "full",
        title: "1 session: 1,000,000 IPv4 + 200,000 IPv6 prefixes",
        feeders: 1,
        v4: 1_000_000,
        v6: 200_000,
        export: false,
    },
    Scenario {
        name: "peers10",
        title: "10 sessions on one segment, each 100,000 distinct prefixes (83,333 IPv4 + \
                16,667 IPv6); every receiver re-advertises each route to the other 9 peers",
        feeders: 10,
        v4: 83_333,
        v6: 16_667,
        export: true,
    },
    Scenario {
        name: "peers10-noexport",
        title: "the same 10 sessions, receivers export nothing (bgplane has no such setting)",
        feeders: 10,
        v4: 83_333,
        v6: 16_667,
        export: false,
    },
];

impl Scenario {
    fn expected(&self) -> u64 {
        u64::from(self.feeders) * (self.v4 + self.v6) as u64
    }
}

/// A running receiver and how to ask it how many prefixes it holds (summed over its peers and
/// both families).
struct Receiver {
    process: Process,
    count: Box<dyn Fn() -> Result<u64>>,
    log: PathBuf,
}

/// What one run measured.
enum Outcome {
    Done {
        secs: f64,
        rss_mb: f64,
        cpu_secs: f64,
        sent_secs: f64,
        updates: u64,
        load: String,
    },
    Timeout {
        count: u64,
        rss_mb: f64,
    },
    NotAvailable(String),
}

fn main() {
    let mut kinds = Vec::new();
    let mut scenarios: Vec<Scenario> = SCENARIOS.to_vec();
    let mut timeout = Duration::from_secs(180);
    let mut runs = 1u32;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bench" => {} // added by `cargo bench`
            "--scenario" => {
                let s = args.next().unwrap_or_default();
                scenarios = SCENARIOS
                    .iter()
                    .filter(|x| s == "all" || x.name == s)
                    .copied()
                    .collect();
                if scenarios.is_empty() {
                    eprintln!("--scenario {s:?}: expected full, peers10, peers10-noexport or all");
                    std::process::exit(2);
                }
            }
            "--timeout" => match args.next().and_then(|s| s.parse().ok()) {
                Some(s) => timeout = Duration::from_secs(s),
                None => {
                    eprintln!("--timeout needs whole seconds");
                    std::process::exit(2);
                }
            },
            "--runs" => match args.next().and_then(|s| s.parse().ok()) {
                Some(n) if n >= 1 => runs = n,
                _ => {
                    eprintln!("--runs needs a count >= 1");
                    std::process::exit(2);
                }
            },
            name => match KINDS.iter().find(|k| k.name() == name) {
                Some(k) => kinds.push(*k),
                None => {
                    eprintln!("unknown argument {name:?}: receivers are bgplane, bird, frr, gobgp");
                    std::process::exit(2);
                }
            },
        }
    }
    if kinds.is_empty() {
        kinds = KINDS.to_vec();
    }
    if let Some(why) = missing_capabilities(&[]) {
        eprintln!("ingest benchmark: cannot run here: {why}");
        std::process::exit(1);
    }
    for sc in &scenarios {
        println!(
            "\ningest {}: {} ({} prefixes in total), timeout {} s",
            sc.name,
            sc.title,
            sc.expected(),
            timeout.as_secs()
        );
        let mut rows = Vec::new();
        for kind in &kinds {
            // Best (fastest) of `runs`; the first run that is not a completed one ends it.
            let mut best: Option<Outcome> = None;
            for i in 1..=runs {
                let outcome = match run(*kind, sc, timeout) {
                    Ok(o) => o,
                    Err(e) => Outcome::NotAvailable(format!("{e:#}")),
                };
                if runs > 1 {
                    println!("  run {i}: {}", format_row(*kind, sc, &outcome));
                }
                let done = matches!(outcome, Outcome::Done { .. });
                let better = match (&best, &outcome) {
                    (Some(Outcome::Done { secs: b, .. }), Outcome::Done { secs, .. }) => secs < b,
                    (Some(_), _) => false,
                    (None, _) => true,
                };
                if better {
                    best = Some(outcome);
                }
                if !done {
                    break;
                }
            }
            let Some(outcome) = best else { continue };
            let row = format_row(*kind, sc, &outcome);
            println!("{row}");
            rows.push(row);
        }
        println!(
            "\n{:<9} {:>8} {:>12} {:>12} {:>9}",
            "receiver", "seconds", "prefixes/s", "peak RSS MB", "CPU s"
        );
        for r in rows {
            println!("{r}");
        }
    }
}

fn format_row(kind: Kind, sc: &Scenario, o: &Outcome) -> String {
    match o {
        Outcome::Done {
            secs,
            rss_mb,
            cpu_secs,
            sent_secs,
            updates,
            load,
        } => format!(
            "{:<9} {secs:>8.2} {:>12.0} {rss_mb:>12.0} {cpu_secs:>9.2}  (feeders wrote {updates} UPDATEs in {sent_secs:.2} s; load before: {load})",
            kind.name(),
            sc.expected() as f64 / secs,
        ),
        Outcome::Timeout { count, rss_mb } => format!(
            "{:<9} {:>8} {:>12} {rss_mb:>12.0} {:>9}  (held {count} of {} prefixes)",
            kind.name(),
            "timeout",
            "-",
            "",
            sc.expected()
        ),
        Outcome::NotAvailable(why) => {
            let why = why.lines().next().unwrap_or("").to_string();
            format!("{:<9} not available: {why}", kind.name())
        }
    }
}

/// One receiver, one scenario, in its own lab (dropped, so torn down, on return).
fn run(kind: Kind, sc: &Scenario, timeout: Duration) -> Result<Outcome> {
    if let Some(why) = missing_capabilities(&kind.binaries()) {
        return Ok(Outcome::NotAvailable(why));
    }
    if kind == Kind::Bgplane && sc.feeders > 1 && !sc.export {
        return Ok(Outcome::NotAvailable(
            "bgplane always re-advertises learned routes to its other peers (no export \
             policy setting yet); see the scenario with export"
                .into(),
        ));
    }
    let bgplane = if kind == Kind::Bgplane {
        match bgplane_binary() {
            Ok(p) => Some(p),
            Err(e) => return Ok(Outcome::NotAvailable(format!("{e:#}"))),
        }
    } else {
        None
    };
    let lab = Lab::new(&format!("ingest_{}_{}", kind.name(), sc.name))?;
    let rx_node = lab.node("rx")?;
    let mut feeder_nodes = Vec::new();
    let (rx, feeders): (Iface, Vec<Iface>) = if sc.feeders == 1 {
        let f = lab.node("feed0")?;
        let l = lab.link(&f, &rx_node)?;
        feeder_nodes.push(f);
        (l.b, vec![l.a])
    } else {
        let seg = lab.segment("lan", sc.feeders + 1)?;
        let rx = seg.attach(&rx_node)?;
        let mut ifs = Vec::new();
        for i in 0..sc.feeders {
            let f = lab.node(&format!("feed{i}"))?;
            ifs.push(seg.attach(&f)?);
            feeder_nodes.push(f);
        }
        (rx, ifs)
    };
    let peers: Vec<(IpAddr, u32)> = feeders
        .iter()
        .enumerate()
        .map(|(i, f)| (IpAddr::V4(f.v4), FEEDER_ASN + i as u32))
        .collect();
    let receiver = match kind {
        Kind::Bird => start_bird(&lab, &rx_node, &rx, &peers, sc.export)?,
        Kind::Frr => start_frr(&lab, &rx_node, &rx, &peers, sc.export)?,
        Kind::GoBgp => start_gobgp(&lab, &rx_node, &rx, &peers, sc.export)?,
        Kind::Bgplane => start_bgplane(&lab, &rx_node, &rx, &peers, bgplane.as_deref())?,
    };
    wait_ready(&receiver)?;
    // 1-minute load average before the run: other work on the machine skews the seconds.
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into());

    let mut procs = Vec::new();
    for (i, (node, f)) in feeder_nodes.iter().zip(&feeders).enumerate() {
        let mut cmd = node.command(FEEDER);
        cmd.args(["--connect", &rx.v4.to_string()])
            .args(["--asn", &(FEEDER_ASN + i as u32).to_string()])
            .args(["--peer-asn", &RECEIVER_ASN.to_string()])
            .args(["--router-id", &f.v4.to_string()])
            .args(["--next-hop-v4", &f.v4.to_string()])
            .args(["--next-hop-v6", &f.v6.to_string()])
            .args(["--hold", &HOLD.to_string()])
            .args(["--v4", &sc.v4.to_string(), "--v6", &sc.v6.to_string()])
            .args(["--part", &i.to_string(), "--parts", &sc.feeders.to_string()]);
        procs.push(lab.spawn(node, "feeder", cmd)?);
    }
    let outcome = measure(&receiver, &procs, sc.expected(), timeout, load);
    if let Err(e) = &outcome {
        eprintln!(
            "{} {}: {e:#}\n--- receiver output ---\n{}\n--- receiver log ---\n{}\n--- feeder 0 ---\n{}",
            kind.name(),
            sc.name,
            receiver.process.output_tail(15),
            interop_tests::process::tail_file(&receiver.log, 15),
            procs.first().map(|p| p.output_tail(10)).unwrap_or_default()
        );
    }
    drop(lab);
    outcome
}

fn wait_ready(r: &Receiver) -> Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        match (r.count)() {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                return Err(e).context(format!(
                    "receiver not answering after {} s; output: {}",
                    READY_TIMEOUT.as_secs(),
                    r.process.output_tail(5)
                ))
            }
            Err(_) if !r.process.is_running() => {
                bail!("receiver exited at start: {}", r.process.output_tail(10))
            }
            Err(_) => thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// What a feeder has printed so far.
#[derive(Default)]
struct FeederLog {
    first_update: Option<u64>,
    sent: Option<u64>,
    updates: u64,
    error: Option<String>,
}

fn feeder_log(p: &Process) -> FeederLog {
    let text = std::fs::read_to_string(p.output_path()).unwrap_or_default();
    let mut log = FeederLog::default();
    let field = |line: &str, key: &str| -> Option<u64> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
    };
    for line in text.lines() {
        if line.starts_with("first_update ") {
            log.first_update = field(line, "mono_ns");
        } else if line.starts_with("sent ") {
            log.sent = field(line, "mono_ns");
            log.updates = field(line, "updates").unwrap_or(0);
        } else if let Some(e) = line.strip_prefix("error ") {
            log.error = Some(e.to_string());
        }
    }
    log
}

/// VmHWM (peak resident set) of `pid` in MB (10^6 bytes).
fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb * 1024.0 / 1e6)
}

/// User + system CPU seconds `pid` has used so far (all its threads), from /proc/PID/stat.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name: state is [0], utime [11], stime [12].
    let rest: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, r)| r)
        .split_whitespace()
        .collect();
    // SAFETY: plain libc call.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let ticks = |i: usize| rest.get(i).and_then(|v| v.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(u), Some(s)) if tck > 0.0 => (u + s) / tck,
        _ => f64::NAN,
    }
}

fn measure(
    r: &Receiver,
    feeders: &[Process],
    expected: u64,
    timeout: Duration,
    load: String,
) -> Result<Outcome> {
    let started = Instant::now();
    let mut last_count = 0;
    let mut last_err = None;
    loop {
        let logs: Vec<FeederLog> = feeders.iter().map(feeder_log).collect();
        for (i, (l, p)) in logs.iter().zip(feeders).enumerate() {
            if let Some(e) = &l.error {
                bail!("feeder {i} failed: {e}");
            }
            if !p.is_running() {
                bail!("feeder {i} exited: {}", p.output_tail(5));
            }
        }
        if !r.process.is_running() {
            bail!("the receiver exited: {}", r.process.output_tail(10));
        }
        let first = logs.iter().filter_map(|l| l.first_update).min();
        let all_started = logs.iter().all(|l| l.first_update.is_some());
        match (r.count)() {
            Ok(n) => last_count = n,
            Err(e) => last_err = Some(e), // busy receivers may miss a query now and then
        }
        let now = mono_ns();
        if let (true, Some(first)) = (all_started && last_count >= expected, first) {
            let rss_mb = peak_rss_mb(r.process.pid());
            let cpu_secs = cpu_secs(r.process.pid());
            // The feeders are done writing long before any receiver is done reading; if one
            // is not, wait for its stamp (it only affects the informational column).
            let sent = wait_sent(feeders);
            return Ok(Outcome::Done {
                secs: (now - first) as f64 / 1e9,
                rss_mb,
                cpu_secs,
                sent_secs: sent.map_or(f64::NAN, |s| s.saturating_sub(first) as f64 / 1e9),
                updates: feeders.iter().map(|p| feeder_log(p).updates).sum(),
                load,
            });
        }
        match first {
            None if started.elapsed() > START_TIMEOUT => bail!(
                "no feeder sent an UPDATE within {} s; last count error: {last_err:?}; feeder: {}",
                START_TIMEOUT.as_secs(),
                feeders[0].output_tail(5)
            ),
            Some(first) if now.saturating_sub(first) > timeout.as_nanos() as u64 => {
                return Ok(Outcome::Timeout {
                    count: last_count,
                    rss_mb: peak_rss_mb(r.process.pid()),
                })
            }
            _ => {}
        }
        // Poll every 2% of the elapsed time (50 ms..1 s): fine resolution for fast receivers,
        // little overhead on slow ones.
        let since = Duration::from_nanos(first.map_or(0, |f| now.saturating_sub(f)));
        thread::sleep((since / 50).clamp(Duration::from_millis(50), Duration::from_secs(1)));
    }
}

fn wait_sent(feeders: &[Process]) -> Option<u64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let sent: Vec<Option<u64>> = feeders.iter().map(|p| feeder_log(p).sent).collect();
        if sent.iter().all(Option::is_some) {
            return sent.into_iter().flatten().max();
        }
        if Instant::now() > deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

// ---- receivers -------------------------------------------------------------------------------

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn start_bird(
    lab: &Lab,
    node: &Node,
    rx: &Iface,
    peers: &[(IpAddr, u32)],
    export: bool,
) -> Result<Receiver> {
    let dir = node.dir().join("bird");
    std::fs::create_dir_all(&dir)?;
    let log = dir.join("bird.log");
    let mut conf = format!(
        "router id {};\nlog \"{}\" {{ info, remote, warning, error, auth, fatal, bug }};\nprotocol device {{ scan time 10; }}\n",
        rx.v4,
        log.display()
    );
    let export = if export { "all" } else { "none" };
    for (i, (addr, asn)) in peers.iter().enumerate() {
        conf.push_str(&format!(
            "protocol bgp f{i} {{\n  local {} as {RECEIVER_ASN};\n  neighbor {addr} as {asn};\n  passive on;\n  hold time {HOLD};\n  ipv4 {{ import all; export {export}; }};\n  ipv6 {{ import all; export {export}; }};\n}}\n",
            rx.v4
        ));
    }
    write(&dir.join("bird.conf"), &conf)?;
    let sock = dir.join("bird.ctl");
    let mut cmd = node.command("bird");
    cmd.arg("-f")
        .arg("-c")
        .arg(dir.join("bird.conf"))
        .arg("-s")
        .arg(&sock)
        .arg("-P")
        .arg(dir.join("bird.pid"));
    let process = lab.spawn(node, "bird", cmd)?;
    let node = node.clone();
    let sock = sock.to_string_lossy().into_owned();
    Ok(Receiver {
        process,
        log,
        count: Box::new(move || {
            let out = node.run_ok(&["birdc", "-s", &sock, "show", "protocols", "all"])?;
            Ok(bird_imported(&out))
        }),
    })
}

/// Sum of the "Routes: N imported, ..." lines of `birdc show protocols all` (one per channel).
fn bird_imported(text: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Routes:"))
        .filter_map(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn start_frr(
    lab: &Lab,
    node: &Node,
    rx: &Iface,
    peers: &[(IpAddr, u32)],
    export: bool,
) -> Result<Receiver> {
    let dir = node.dir().join("frr");
    std::fs::create_dir_all(&dir)?;
    let log = dir.join("bgpd.log");
    let mut c = vec![
        "hostname ingest".to_string(),
        format!("log file {} informational", log.display()),
        "route-map NONE deny 10".into(),
        "exit".into(),
        format!("router bgp {RECEIVER_ASN}"),
        format!(" bgp router-id {}", rx.v4),
        " no bgp ebgp-requires-policy".into(),
        " no bgp default ipv4-unicast".into(),
    ];
    for (addr, asn) in peers {
        c.push(format!(" neighbor {addr} remote-as {asn}"));
        c.push(format!(" neighbor {addr} passive"));
        c.push(format!(" neighbor {addr} timers {} {HOLD}", HOLD / 3));
    }
    for af in ["ipv4", "ipv6"] {
        c.push(format!(" address-family {af} unicast"));
        for (addr, _) in peers {
            c.push(format!("  neighbor {addr} activate"));
            if !export {
                c.push(format!("  neighbor {addr} route-map NONE out"));
            }
        }
        c.push(" exit-address-family".into());
    }
    c.push("exit".into());
    let conf = dir.join("bgpd.conf");
    write(&conf, &(c.join("\n") + "\n"))?;
    let mut cmd = node.command("/usr/lib/frr/bgpd");
    cmd.args(["-Z", "-n", "-S", "-P", "0", "-f"])
        .arg(&conf)
        .arg("-i")
        .arg(dir.join("bgpd.pid"))
        .arg("--vty_socket")
        .arg(&dir)
        .args(["-p", "179"]);
    let process = lab.spawn(node, "bgpd", cmd)?;
    let node = node.clone();
    let vty = dir.to_string_lossy().into_owned();
    Ok(Receiver {
        process,
        log,
        count: Box::new(move || {
            let out =
                node.run_ok(&["vtysh", "--vty_socket", &vty, "-c", "show bgp summary json"])?;
            let v: Value = serde_json::from_str(&out)
                .with_context(|| format!("vtysh summary is not JSON: {out:.200}"))?;
            frr_received(&v)
        }),
    })
}

/// Sum of pfxRcd over the peers of every address family in `show bgp summary json`.
fn frr_received(v: &Value) -> Result<u64> {
    let Some(obj) = v.as_object() else {
        bail!("show bgp summary json: not an object: {v:.200}");
    };
    let afs: Vec<&Value> = if obj.contains_key("peers") {
        vec![v]
    } else {
        obj.values().collect()
    };
    Ok(afs
        .iter()
        .filter_map(|af| af["peers"].as_object())
        .flat_map(|p| p.values())
        .filter_map(|p| p["pfxRcd"].as_u64())
        .sum())
}

fn start_gobgp(
    lab: &Lab,
    node: &Node,
    rx: &Iface,
    peers: &[(IpAddr, u32)],
    export: bool,
) -> Result<Receiver> {
    let dir = node.dir().join("gobgp");
    std::fs::create_dir_all(&dir)?;
    let mut t = format!(
        "[global.config]\n  as = {RECEIVER_ASN}\n  router-id = \"{}\"\n  port = 179\n[global.apply-policy.config]\n  default-export-policy = \"{}\"\n",
        rx.v4,
        if export { "accept-route" } else { "reject-route" }
    );
    for (addr, asn) in peers {
        t.push_str(&format!(
            "\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{addr}\"\n    peer-as = {asn}\n  [neighbors.timers.config]\n    hold-time = {HOLD}\n    keepalive-interval = {}\n  [neighbors.transport.config]\n    passive-mode = true\n",
            HOLD / 3
        ));
        for af in ["ipv4", "ipv6"] {
            t.push_str(&format!(
                "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{af}-unicast\"\n"
            ));
        }
    }
    let conf = dir.join("gobgpd.toml");
    write(&conf, &t)?;
    let api = format!("unix://{}", dir.join("api.sock").display());
    let mut cmd = node.command("gobgpd");
    cmd.arg("-f")
        .arg(&conf)
        .args(["-p", "-l", "warn", "--pprof-disable"])
        .arg(format!("--api-hosts={api}"));
    let process = lab.spawn(node, "gobgpd", cmd)?;
    let log = process.output_path().to_path_buf();
    let node = node.clone();
    Ok(Receiver {
        process,
        log,
        count: Box::new(move || {
            let out = node.run_ok(&["gobgp", "--target", &api, "neighbor", "-j"])?;
            let v: Value = serde_json::from_str(&out)
                .with_context(|| format!("gobgp neighbor -j is not JSON: {out:.200}"))?;
            Ok(v.as_array()
                .into_iter()
                .flatten()
                .flat_map(|n| n["afi_safis"].as_array().into_iter().flatten())
                .filter_map(|af| af["state"]["accepted"].as_u64())
                .sum())
        }),
    })
}

fn bgplane_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("BGPLANE_BIN") {
        return Ok(PathBuf::from(p));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let p = target.join("release/bgplane");
    if p.is_file() {
        return Ok(p);
    }
    bail!(
        "{} not built (run `cargo build --release -p speaker`, or set BGPLANE_BIN)",
        p.display()
    )
}

fn start_bgplane(
    lab: &Lab,
    node: &Node,
    rx: &Iface,
    peers: &[(IpAddr, u32)],
    bin: Option<&Path>,
) -> Result<Receiver> {
    let Some(bin) = bin else {
        bail!("no bgplane binary");
    };
    let dir = node.dir().join("bgplane");
    std::fs::create_dir_all(&dir)?;
    let mut y = String::from("peers:\n");
    for (addr, asn) in peers {
        y.push_str(&format!(
            "- peer-address: {addr}\n  peer-asn: {asn}\n  my-asn: {RECEIVER_ASN}\n  router-id: {}\n  passive: true\n  hold-time: {HOLD}s\n  families: [ipv4-unicast, ipv6-unicast]\n",
            rx.v4
        ));
    }
    let conf = dir.join("config.yaml");
    write(&conf, &y)?;
    let sock = dir.join("bgplane.sock");
    let mut cmd = node.command(bin);
    cmd.arg("agent")
        .arg("--config")
        .arg(&conf)
        .arg("--socket")
        .arg(&sock);
    let process = lab.spawn(node, "bgplane", cmd)?;
    let log = process.output_path().to_path_buf();
    let node = node.clone();
    let bin = bin.to_string_lossy().into_owned();
    let sock = sock.to_string_lossy().into_owned();
    Ok(Receiver {
        process,
        log,
        count: Box::new(move || {
            let out = node.run_ok(&[bin.as_str(), "peers", "-o", "json", "--socket", &sock])?;
            let v: Value = serde_json::from_str(&out)
                .with_context(|| format!("bgplane peers -o json is not JSON: {out:.200}"))?;
            bgplane_received(&v)
        }),
    })
}

/// Sum of `received.total` over the peers of `bgplane peers -o json`.
fn bgplane_received(v: &Value) -> Result<u64> {
    let Some(peers) = v.as_array() else {
        bail!("bgplane peers -o json: not an array: {v:.200}");
    };
    Ok(peers
        .iter()
        .filter_map(|p| p["received"]["total"].as_u64())
        .sum())
}
