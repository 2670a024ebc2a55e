//! The `bgplane` command line: `agent` runs the agent; `peers` and `routes` ask a running
//! agent over its unix socket and print tables (like `gobgp neighbor`) or, with `-o json`,
//! the API's JSON unchanged.

mod table;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;

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
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// MetalLB-format config YAML, or a whole ConfigMap manifest.
    #[arg(long)]
    pub config: PathBuf,
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
            let peers: Vec<PeerJson> = api::get(&cli.socket, "/v1/peers")?;
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&peers)?),
                Output::Table => print!("{}", table::peers(&peers)),
            }
            Ok(())
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
            let routes: Vec<RouteJson> = api::get(&cli.socket, &path)?;
            match r.output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&routes)?),
                Output::Table => print!("{}", table::routes(&routes)),
            }
            Ok(())
        }
    }
}

fn run_agent(socket: PathBuf, a: AgentArgs) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&a.log))
        .with_context(|| format!("--log {:?}", a.log))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let opts = AgentOptions {
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
