//! The `bgplane` command line: `agent` runs the agent; `peers`, `routes` and `services` ask a
//! running agent over its unix socket and print tables (like `gobgp neighbor`) or, with
//! `-o json`, the API's JSON unchanged; `datapath unload` removes the pinned load balancer.

mod table;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;

use crate::agent::datapath::{DatapathOptions, DEFAULT_BPFFS, POLL};
use crate::agent::AgentOptions;
use crate::api::{self, PeerJson, RouteJson, DEFAULT_SOCKET};

#[derive(Debug, Parser)]
#[command(
    name = "bgplane",
    version,
    about = "BGP speaker + eBPF service load balancer agent"
)]
pub struct Cli {
    /// The agent's API socket (the agent listens on it, the other commands connect to it).
    #[arg(long, global = true, default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size of the agent's flags does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent in the foreground (SIGTERM/SIGINT stop it cleanly).
    Agent(AgentArgs),
    /// Show the BGP peers and their sessions.
    Peers {
        #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Show routes received from or advertised to peers.
    Routes(RoutesArgs),
    /// Show the load-balanced services: frontends, backends with state and zone, selection.
    Services {
        #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Manage the pinned eBPF datapath directly (no agent needed).
    #[command(subcommand)]
    Datapath(DatapathCommand),
}

#[derive(Debug, Subcommand)]
pub enum DatapathCommand {
    /// Remove every pin under the bpffs directory: detaches the programs and frees the maps
    /// (service traffic through this node stops). Run it with no agent running.
    Unload {
        #[arg(long, value_name = "DIR", default_value = DEFAULT_BPFFS)]
        bpffs: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// MetalLB-format config YAML, or a whole ConfigMap manifest (optional with --datapath:
    /// without it the agent runs no BGP).
    #[arg(long, required_unless_present = "datapath")]
    pub config: Option<PathBuf>,
    /// Announce PREFIX to every peer (repeatable; until announcements come from the cluster).
    #[arg(long = "originate", value_name = "PREFIX")]
    pub originate: Vec<IpNet>,
    /// BGP identifier for peers whose config has no router-id.
    #[arg(long)]
    pub router_id: Option<Ipv4Addr>,
    /// A node label KEY=VALUE that peers' node-selectors are matched against (repeatable).
    #[arg(long = "node-label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub node_labels: Vec<(String, String)>,
    /// Smallest connect-retry delay in seconds (doubles per failed attempt up to 120 s).
    #[arg(long, value_name = "SECONDS")]
    pub connect_retry: Option<u64>,
    /// Log filter (tracing env-filter syntax); RUST_LOG also works.
    #[arg(long, default_value = "info")]
    pub log: String,
    /// Run the eBPF service load balancer (kube-proxy replacement). Its programs and maps are
    /// pinned and stay in place when the agent stops; the next agent adopts them.
    #[arg(long)]
    pub datapath: bool,
    /// Kubernetes objects (Node, Service, EndpointSlice) as `kubectl get -o yaml` prints them:
    /// a file or a directory, re-read when it changes (polled every second).
    #[arg(long, value_name = "PATH", requires = "datapath")]
    pub objects: Option<PathBuf>,
    /// Which Node among the objects is this one (default: the host name).
    #[arg(long, value_name = "NAME", requires = "datapath")]
    pub node_name: Option<String>,
    /// Devices the tc programs attach to (LoadBalancer, ExternalIP, NodePort traffic and
    /// replies from SNATed backends), comma-separated.
    #[arg(
        long,
        value_name = "DEV,...",
        value_delimiter = ',',
        requires = "datapath"
    )]
    pub devices: Vec<String>,
    /// bpffs directory for the pins (bpffs is mounted there if it is not).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_BPFFS)]
    pub bpffs: PathBuf,
    /// cgroup2 directory the socket programs (ClusterIP) attach to; cgroup2 is mounted there
    /// unless it already is one (default: the first cgroup2 mount, else one mounted at
    /// /run/bgplane/cgroupv2).
    #[arg(long, value_name = "DIR", requires = "datapath")]
    pub cgroup2: Option<PathBuf>,
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Direction {
    Received,
    Advertised,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FamilyArg {
    Ipv4,
    Ipv6,
}

#[derive(Debug, Args)]
pub struct RoutesArgs {
    pub direction: Direction,
    /// Only this peer's routes.
    #[arg(long)]
    pub peer: Option<std::net::IpAddr>,
    #[arg(long, value_enum)]
    pub family: Option<FamilyArg>,
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Agent(a) => run_agent(cli.socket, a),
        Command::Peers { output } => {
            show::<Vec<PeerJson>>(&cli.socket, "/v1/peers", output, |p| table::peers(p))
        }
        Command::Routes(r) => {
            let kind = match r.direction {
                Direction::Received => "received",
                Direction::Advertised => "advertised",
            };
            let family = r.family.map(|f| match f {
                FamilyArg::Ipv4 => "ipv4",
                FamilyArg::Ipv6 => "ipv6",
            });
            let peer = r.peer.map(|p| p.to_string());
            let path = api::routes_path(kind, peer.as_deref(), family);
            show::<Vec<RouteJson>>(&cli.socket, &path, r.output, |r| table::routes(r))
        }
        Command::Services { output } => show(&cli.socket, "/v1/services", output, table::services),
        Command::Datapath(DatapathCommand::Unload { bpffs }) => {
            let removed = crate::agent::datapath::unload(&bpffs)
                .map_err(|e| anyhow::anyhow!("removing the pins under {}: {e}", bpffs.display()))?;
            println!("removed {} pins under {}", removed.len(), bpffs.display());
            Ok(())
        }
    }
}

/// GETs `path` and prints the document as pretty JSON or as the table `table` makes of it.
fn show<T: serde::de::DeserializeOwned + serde::Serialize>(
    socket: &std::path::Path,
    path: &str,
    output: Output,
    table: impl Fn(&T) -> String,
) -> anyhow::Result<()> {
    let doc: T = api::get(socket, path)?;
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&doc)?),
        Output::Table => print!("{}", table(&doc)),
    }
    Ok(())
}

fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    std::str::from_utf8(&buf[..end])
        .ok()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn datapath_options(a: &AgentArgs) -> anyhow::Result<Option<DatapathOptions>> {
    if !a.datapath {
        return Ok(None);
    }
    let Some(objects) = a.objects.clone() else {
        anyhow::bail!(
            "--datapath needs --objects PATH (a file or directory of Node, Service and EndpointSlice YAML)"
        );
    };
    let Some(node_name) = a.node_name.clone().or_else(hostname) else {
        anyhow::bail!("--datapath needs --node-name (the host name could not be read)");
    };
    if a.devices.is_empty() {
        tracing::warn!("--datapath without --devices: only the socket LB (ClusterIP) runs");
    }
    Ok(Some(DatapathOptions {
        objects,
        node_name,
        devices: a.devices.clone(),
        bpffs: a.bpffs.clone(),
        cgroup2: a.cgroup2.clone(),
        poll: POLL,
    }))
}

fn run_agent(socket: PathBuf, a: AgentArgs) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&a.log))
        .with_context(|| format!("--log {:?}", a.log))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let datapath = datapath_options(&a)?;
    let opts = AgentOptions {
        datapath,
        config: a.config,
        socket,
        originate: a.originate,
        router_id: a.router_id,
        node_labels: a.node_labels.into_iter().collect::<BTreeMap<_, _>>(),
        retry: a.connect_retry.map(|s| bgp::fsm::Backoff {
            min: std::time::Duration::from_secs(s.max(1)),
            max: std::time::Duration::from_secs(120),
        }),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    rt.block_on(crate::agent::run(opts))
}
