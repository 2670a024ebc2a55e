//! `bgplane agent`: load the config, start one session task per peer, the listener and the
//! API, and run until SIGTERM/SIGINT; then end every session with Cease / Administrative
//! Shutdown and return. With `--datapath` the service load balancer runs beside the sessions
//! (`datapath`) and is left running, pinned, when the agent stops.

pub mod datapath;
mod rib;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use bgp::fsm::GracefulRestartConfig;
use ipnet::IpNet;
use tokio::sync::oneshot;

use crate::api::{self, ApiSource, PeerJson, RouteJson, RouteQuery, ServicesJson};
use crate::config::{self, Config, PeerConfig};
use crate::session::{self, listener, PeerHandle, PeerSpec, SocketOptions};

pub use rib::{AgentRib, RibPeer};

/// How the agent was started.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// The MetalLB-format config; None runs no BGP (only with `datapath`).
    pub config: Option<PathBuf>,
    pub socket: PathBuf,
    /// Prefixes to announce to every peer (until announcements come from the cluster).
    pub originate: Vec<IpNet>,
    /// BGP identifier for peers whose config has no `router-id`.
    pub router_id: Option<Ipv4Addr>,
    /// Node labels that `node-selectors` are matched against.
    pub node_labels: BTreeMap<String, String>,
    /// Connect-retry backoff bounds (default 2 s .. 120 s).
    pub retry: Option<bgp::fsm::Backoff>,
    /// `--datapath`: run the service load balancer.
    pub datapath: Option<datapath::DatapathOptions>,
}

/// Turn a validated peer config into what the session runtime runs.
pub fn peer_spec(
    id: session::PeerId,
    p: &PeerConfig,
    router_id: Ipv4Addr,
    retry: Option<bgp::fsm::Backoff>,
    restarting: bool,
) -> PeerSpec {
    let mut fsm = bgp::fsm::Config::new(p.my_asn, p.peer_asn, p.router_id.unwrap_or(router_id));
    fsm.hold_time = u16::try_from(p.hold_time.as_secs()).unwrap_or(u16::MAX);
    fsm.keepalive = p
        .keepalive_configured
        .then(|| u16::try_from(p.keepalive_time.as_secs()).unwrap_or(u16::MAX));
    fsm.passive = p.passive;
    fsm.families = p.families.clone();
    if let Some(r) = retry {
        fsm.retry = r;
    }
    fsm.graceful_restart = p.graceful_restart.map(|gr| GracefulRestartConfig {
        restart_time: u16::try_from(gr.restart_time.as_secs())
            .unwrap_or(4095)
            .min(4095),
        // RFC 4724 §3: the Restart State bit says we restarted, so routers that kept our
        // routes as stale wait for our End-of-RIB; the node kept forwarding meanwhile.
        restarting,
        forwarding_preserved: true,
    });
    PeerSpec {
        id,
        fsm,
        address: p.peer_address,
        port: p.peer_port,
        source: p.source_address,
        socket: SocketOptions {
            ttl: p.ttl.outgoing,
            min_ttl: p.ttl.min_incoming,
            md5_key: p.password.as_ref().map(|k| k.0.as_bytes().to_vec()),
        },
    }
}

/// The router id for peers without one: the flag, else the peer's IPv4 source address, else
/// the first non-loopback IPv4 address of this host.
fn default_router_id(
    flag: Option<Ipv4Addr>,
    peers: &[&PeerConfig],
) -> anyhow::Result<Option<Ipv4Addr>> {
    if flag.is_some() {
        return Ok(flag);
    }
    if peers.iter().all(|p| p.router_id.is_some()) {
        return Ok(None);
    }
    if let Some(IpAddr::V4(a)) = peers
        .iter()
        .find_map(|p| p.source_address.filter(IpAddr::is_ipv4))
    {
        return Ok(Some(a));
    }
    Ok(host_ipv4())
}

fn host_ipv4() -> Option<Ipv4Addr> {
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `ifap` with a list we walk read-only and free once.
    unsafe {
        if libc::getifaddrs(&mut ifap) != 0 {
            return None;
        }
        let mut found = None;
        let mut cur = ifap;
        while !cur.is_null() {
            let addr = (*cur).ifa_addr;
            if !addr.is_null() && libc::c_int::from((*addr).sa_family) == libc::AF_INET {
                let sin = addr.cast::<libc::sockaddr_in>();
                let ip = Ipv4Addr::from(u32::from_be((*sin).sin_addr.s_addr));
                if !ip.is_loopback() && found.is_none() {
                    found = Some(ip);
                }
            }
            cur = (*cur).ifa_next;
        }
        libc::freeifaddrs(ifap);
        found
    }
}

/// The running agent's state, as the API sees it.
pub struct AgentState {
    peers: Vec<PeerHandle>,
    rib: Arc<AgentRib>,
    datapath: Option<datapath::DatapathHandle>,
}

impl AgentState {
    fn peer_index(&self, addr: IpAddr) -> Option<usize> {
        self.peers.iter().position(|p| p.spec.address == addr)
    }
}

impl ApiSource for AgentState {
    fn peers(&self) -> Vec<PeerJson> {
        self.peers
            .iter()
            .map(|h| {
                let s = h.status();
                let (received, advertised) = self.rib.counts(h.spec.id);
                PeerJson {
                    peer_address: s.address.to_string(),
                    peer_port: s.port,
                    peer_asn: s.peer_as,
                    local_asn: s.local_as,
                    state: s.state.name().to_string(),
                    uptime_seconds: s.uptime().map_or(0, |d| d.as_secs()),
                    received,
                    advertised,
                    last_error: s.last_error.clone(),
                    peer_router_id: s.peer_id.map(|i| i.to_string()),
                    local_address: s.local.map(|a| a.to_string()),
                    hold_time: s.hold_time,
                    families: s.families.iter().map(|f| f.to_string()).collect(),
                    passive: s.passive,
                    flaps: s.flaps,
                }
            })
            .collect()
    }

    fn routes(&self, q: &RouteQuery) -> Result<Vec<RouteJson>, String> {
        let ids: Vec<usize> = match q.peer {
            Some(a) => vec![self
                .peer_index(a)
                .ok_or_else(|| format!("{a} is not a configured peer"))?],
            None => (0..self.peers.len()).collect(),
        };
        Ok(ids
            .into_iter()
            .flat_map(|i| {
                let local = self.peers[i].status().local.map(|a| a.ip());
                self.rib.routes(q.kind, i, q.family, local)
            })
            .collect())
    }

    fn services(&self) -> Result<ServicesJson, String> {
        match &self.datapath {
            Some(d) => Ok(d.snapshot()),
            None => Err(api::DATAPATH_OFF.into()),
        }
    }
}

/// Load and check the config, resolve the peers this node runs.
pub fn load(
    opts: &AgentOptions,
    restart: &RestartMarker,
) -> anyhow::Result<(Config, Vec<PeerSpec>, Vec<Option<u32>>)> {
    let Some(path) = &opts.config else {
        // No BGP: no peers, never listen.
        let cfg = Config {
            source: config::ConfigSource::Bare,
            peers: Vec::new(),
            pools: Vec::new(),
            communities: BTreeMap::new(),
            bfd_profiles: Vec::new(),
            listen: None,
            warnings: Vec::new(),
        };
        return Ok((cfg, Vec::new(), Vec::new()));
    };
    let cfg = config::load(path)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("config {}", path.display()))?;
    for w in &cfg.warnings {
        tracing::warn!("config: {w}");
    }
    let selected: Vec<&PeerConfig> = cfg.peers_for_node(&opts.node_labels).collect();
    if selected.len() < cfg.peers.len() {
        tracing::info!(
            "{} of {} peers apply to this node (node-selectors against --node-label)",
            selected.len(),
            cfg.peers.len()
        );
    }
    let fallback = default_router_id(opts.router_id, &selected)?;
    let mut specs = Vec::new();
    let mut limits = Vec::new();
    for (i, p) in selected.iter().enumerate() {
        let Some(rid) = p.router_id.or(fallback) else {
            bail!(
                "peer {}: no router-id in the config, no --router-id, no IPv4 source-address and no IPv4 address on this host",
                p.peer_address
            );
        };
        specs.push(peer_spec(i, p, rid, opts.retry, restart.restarted));
        limits.push(p.max_prefixes);
    }
    Ok((cfg, specs, limits))
}

/// Whether this start is a restart in the RFC 4724 sense. A marker file beside the API socket
/// (normally under /run, so a reboot clears it) exists while an agent runs and is removed by a
/// clean shutdown, which sent every peer a Cease and so ended graceful restart there. Finding
/// it at start means the previous agent died (kill -9, crash, OOM) while routers may still
/// hold our routes as stale: only then do we set the Restart State bit.
pub struct RestartMarker {
    path: PathBuf,
    pub restarted: bool,
}

impl RestartMarker {
    pub fn acquire(socket: &std::path::Path) -> anyhow::Result<RestartMarker> {
        let mut name = socket.as_os_str().to_owned();
        name.push(".running");
        let path = PathBuf::from(name);
        let restarted = path.exists();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&path, std::process::id().to_string())
            .with_context(|| format!("writing restart marker {}", path.display()))?;
        if restarted {
            tracing::info!(
                "{} was left by an agent that did not shut down cleanly: graceful restart \
                 (Restart State bit) toward peers that support it",
                path.display()
            );
        }
        Ok(RestartMarker { path, restarted })
    }

    /// After a clean shutdown: the next start is a fresh start.
    pub fn release(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Run the agent until SIGTERM or SIGINT.
pub async fn run(opts: AgentOptions) -> anyhow::Result<()> {
    let restart = RestartMarker::acquire(&opts.socket)?;
    let (cfg, specs, limits) = load(&opts, &restart)?;
    let rib_peers: Vec<RibPeer> = specs
        .iter()
        .zip(&limits)
        .map(|(s, l)| RibPeer {
            address: s.address,
            local_as: s.fsm.local_as,
            peer_as: s.fsm.peer_as,
            max_prefixes: *l,
        })
        .collect();
    let router_id = specs
        .first()
        .map(|s| s.fsm.router_id)
        .or(opts.router_id)
        .unwrap_or(Ipv4Addr::UNSPECIFIED);
    let rib = Arc::new(AgentRib::new(router_id, &rib_peers, &opts.originate).context("RIB setup")?);
    let rib_timer = rib.spawn_timer();

    // Bind everything before any session starts, so errors surface at once.
    let listener = match cfg.listen {
        Some(l) => {
            let addr = SocketAddr::new(l.address.unwrap_or(IpAddr::from([0u16; 8])), l.port);
            let l = listener::bind(addr, &specs)?;
            tracing::info!("listening for BGP on {addr}");
            Some(l)
        }
        None => {
            tracing::info!("listen-port 0: not accepting BGP connections");
            None
        }
    };

    let mut handles = Vec::new();
    for spec in specs {
        handles.push(session::spawn_peer(spec, rib.clone()));
    }
    let mut dispatch: listener::Dispatch = HashMap::new();
    for h in &handles {
        dispatch
            .entry(h.spec.address)
            .or_insert_with(|| h.cmd.clone());
    }
    let accept = listener.map(|l| listener::spawn(l, dispatch));

    let datapath = match &opts.datapath {
        Some(d) => Some(datapath::spawn(d.clone()).context("datapath thread")?),
        None => None,
    };
    let state = Arc::new(AgentState {
        peers: handles,
        rib,
        datapath,
    });
    let api = api::serve(&opts.socket, state.clone())
        .with_context(|| format!("API socket {}", opts.socket.display()))?;
    tracing::info!("API on {}", opts.socket.display());

    wait_for_signal().await?;
    tracing::info!("shutting down: Cease / Administrative Shutdown to every peer");
    if let Some(a) = accept {
        a.abort();
    }
    let mut waits = Vec::new();
    for h in &state.peers {
        let (tx, rx) = oneshot::channel();
        let _ = h.cmd.send(session::driver::PeerCmd::Shutdown {
            message: "bgplane agent shutting down".into(),
            done: tx,
        });
        waits.push(rx);
    }
    for w in waits {
        let _ = tokio::time::timeout(Duration::from_secs(5), w).await;
    }
    api.abort();
    rib_timer.abort();
    let _ = std::fs::remove_file(&opts.socket);
    restart.release();
    if let Some(d) = &opts.datapath {
        // On purpose: the pinned programs and maps keep serving until the next agent adopts
        // them (`bgplane datapath unload` removes them).
        tracing::info!("datapath left running, pinned under {}", d.bpffs.display());
    }
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = int.recv() => tracing::info!("SIGINT"),
    }
    Ok(())
}
