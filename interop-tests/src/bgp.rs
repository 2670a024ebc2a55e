//! What every router driver shares: the small config struct each one renders into its own
//! format, the observed state types (sessions, routes with attributes), and the `BgpRouter`
//! trait with the waits tests use ("established", "has this route", "route gone").

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use ipnet::IpNet;
use serde_json::Value;

use crate::process::Process;
use crate::wait::{wait_for, Check};

/// Address families (AFI/SAFI) a session carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    Ipv4Unicast,
    Ipv6Unicast,
}

impl Family {
    pub fn of(prefix: &IpNet) -> Family {
        match prefix {
            IpNet::V4(_) => Family::Ipv4Unicast,
            IpNet::V6(_) => Family::Ipv6Unicast,
        }
    }
}

/// ADD-PATH (RFC 7911) directions to negotiate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AddPath {
    #[default]
    Off,
    Receive,
    Send,
    Both,
}

impl AddPath {
    pub fn receives(self) -> bool {
        matches!(self, AddPath::Receive | AddPath::Both)
    }
    pub fn sends(self) -> bool {
        matches!(self, AddPath::Send | AddPath::Both)
    }
}

/// A standard community (RFC 1997), `asn:value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Community(pub u16, pub u16);

impl Community {
    pub fn as_u32(self) -> u32 {
        ((self.0 as u32) << 16) | self.1 as u32
    }
    pub fn from_u32(v: u32) -> Community {
        Community((v >> 16) as u16, v as u16)
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0, self.1)
    }
}

impl FromStr for Community {
    type Err = anyhow::Error;
    /// `a:b`, or one of the RFC well-known names FRR prints (`no-export`, ...).
    fn from_str(s: &str) -> Result<Community> {
        let well_known = match s {
            "graceful-shutdown" => Some(0xFFFF_0000),
            "accept-own" => Some(0xFFFF_0001),
            "llgr-stale" => Some(0xFFFF_0006),
            "no-llgr" => Some(0xFFFF_0007),
            "blackhole" => Some(0xFFFF_029A),
            "no-export" => Some(0xFFFF_FF01),
            "no-advertise" => Some(0xFFFF_FF02),
            "local-AS" | "no-export-subconfed" => Some(0xFFFF_FF03),
            "no-peer" => Some(0xFFFF_FF04),
            _ => None,
        };
        if let Some(v) = well_known {
            return Ok(Community::from_u32(v));
        }
        let (a, b) = s
            .split_once(':')
            .ok_or_else(|| anyhow!("community {s:?} is not asn:value"))?;
        Ok(Community(
            a.trim()
                .parse()
                .map_err(|e| anyhow!("community {s:?}: {e}"))?,
            b.trim()
                .parse()
                .map_err(|e| anyhow!("community {s:?}: {e}"))?,
        ))
    }
}

/// A large community (RFC 8092), `global:local1:local2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity(pub u32, pub u32, pub u32);

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.0, self.1, self.2)
    }
}

impl FromStr for LargeCommunity {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<LargeCommunity> {
        let parts: Vec<&str> = s.split(':').map(str::trim).collect();
        let [a, b, c] = parts[..] else {
            bail!("large community {s:?} is not a:b:c");
        };
        let p = |x: &str| {
            x.parse::<u32>()
                .map_err(|e| anyhow!("large community {s:?}: {e}"))
        };
        Ok(LargeCommunity(p(a)?, p(b)?, p(c)?))
    }
}

/// A prefix a router originates, with the attributes it is sent with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announce {
    pub prefix: IpNet,
    /// None: the router's own address on the session ("next-hop self").
    pub next_hop: Option<IpAddr>,
    pub med: Option<u32>,
    /// Only carried on iBGP sessions.
    pub local_pref: Option<u32>,
    pub communities: Vec<Community>,
    pub large_communities: Vec<LargeCommunity>,
}

impl Announce {
    /// `prefix` must be valid CIDR (`"198.51.100.0/24"`); panics otherwise — test input.
    pub fn new(prefix: &str) -> Announce {
        let prefix: IpNet = prefix
            .parse()
            .unwrap_or_else(|e| panic!("Announce::new({prefix:?}): {e}"));
        Announce {
            prefix: prefix.trunc(),
            next_hop: None,
            med: None,
            local_pref: None,
            communities: Vec::new(),
            large_communities: Vec::new(),
        }
    }
    pub fn next_hop(mut self, nh: IpAddr) -> Self {
        self.next_hop = Some(nh);
        self
    }
    pub fn med(mut self, med: u32) -> Self {
        self.med = Some(med);
        self
    }
    pub fn local_pref(mut self, lp: u32) -> Self {
        self.local_pref = Some(lp);
        self
    }
    pub fn community(mut self, asn: u16, value: u16) -> Self {
        self.communities.push(Community(asn, value));
        self
    }
    pub fn large_community(mut self, g: u32, l1: u32, l2: u32) -> Self {
        self.large_communities.push(LargeCommunity(g, l1, l2));
        self
    }
    pub fn family(&self) -> Family {
        Family::of(&self.prefix)
    }
}

/// One BGP neighbor of a router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbor {
    pub address: IpAddr,
    pub asn: u32,
    /// Source address of the session (update-source / local address); None = kernel's choice.
    pub local_address: Option<IpAddr>,
    /// The neighbor's TCP port.
    pub port: u16,
    /// Never connect, only accept.
    pub passive: bool,
    /// TCP MD5 (RFC 2385).
    pub password: Option<String>,
    /// eBGP multihop TTL; None = directly connected (TTL 1).
    pub multihop: Option<u8>,
    pub hold_time: u16,
    /// None: hold_time / 3.
    pub keepalive: Option<u16>,
    pub connect_retry: u16,
    pub families: Vec<Family>,
    pub route_reflector_client: bool,
    pub add_path: AddPath,
}

impl Neighbor {
    /// A neighbor with test-friendly defaults: port 179, hold 9, connect-retry 2, and the
    /// address family of its transport address (IPv4 over IPv4, IPv6 over IPv6).
    pub fn new(address: IpAddr, asn: u32) -> Neighbor {
        let family = match address {
            IpAddr::V4(_) => Family::Ipv4Unicast,
            IpAddr::V6(_) => Family::Ipv6Unicast,
        };
        Neighbor {
            address,
            asn,
            local_address: None,
            port: 179,
            passive: false,
            password: None,
            multihop: None,
            hold_time: 9,
            keepalive: None,
            connect_retry: 2,
            families: vec![family],
            route_reflector_client: false,
            add_path: AddPath::Off,
        }
    }
    pub fn local_address(mut self, a: IpAddr) -> Self {
        self.local_address = Some(a);
        self
    }
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
    pub fn passive(mut self) -> Self {
        self.passive = true;
        self
    }
    pub fn password(mut self, p: &str) -> Self {
        self.password = Some(p.to_string());
        self
    }
    pub fn multihop(mut self, ttl: u8) -> Self {
        self.multihop = Some(ttl);
        self
    }
    pub fn hold_time(mut self, secs: u16) -> Self {
        self.hold_time = secs;
        self
    }
    pub fn keepalive(mut self, secs: u16) -> Self {
        self.keepalive = Some(secs);
        self
    }
    pub fn families(mut self, f: &[Family]) -> Self {
        self.families = f.to_vec();
        self
    }
    pub fn route_reflector_client(mut self) -> Self {
        self.route_reflector_client = true;
        self
    }
    pub fn add_path(mut self, a: AddPath) -> Self {
        self.add_path = a;
        self
    }
    pub fn keepalive_secs(&self) -> u16 {
        self.keepalive.unwrap_or(self.hold_time / 3)
    }
}

/// A router's configuration, rendered by each driver into its own config language.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterConfig {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    /// TCP port to listen on (FRR, GoBGP; BIRD and ExaBGP only support 179 here).
    pub listen_port: u16,
    pub neighbors: Vec<Neighbor>,
    pub announce: Vec<Announce>,
    /// Advertise graceful restart (RFC 4724) and act as restarting speaker and helper.
    pub graceful_restart: bool,
    /// Restart time advertised when graceful restart is on.
    pub restart_time: u16,
    /// Raw lines appended to the generated config (FRR: inside `router bgp`; BIRD, GoBGP,
    /// ExaBGP: at the end of the file) for what the struct does not cover.
    pub extra: Vec<String>,
}

impl RouterConfig {
    pub fn new(asn: u32, router_id: Ipv4Addr) -> RouterConfig {
        RouterConfig {
            asn,
            router_id,
            listen_port: 179,
            neighbors: Vec::new(),
            announce: Vec::new(),
            graceful_restart: false,
            restart_time: 120,
            extra: Vec::new(),
        }
    }
    pub fn neighbor(mut self, n: Neighbor) -> Self {
        self.neighbors.push(n);
        self
    }
    pub fn announce(mut self, a: Announce) -> Self {
        self.announce.push(a);
        self
    }
    pub fn graceful_restart(mut self, on: bool) -> Self {
        self.graceful_restart = on;
        self
    }
    pub fn extra(mut self, line: &str) -> Self {
        self.extra.push(line.to_string());
        self
    }
    pub fn listen_port(mut self, port: u16) -> Self {
        self.listen_port = port;
        self
    }
}

/// RFC 4271 §8.2.2 session states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SessionState {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

impl FromStr for SessionState {
    type Err = anyhow::Error;
    /// Accepts the spellings FRR, BIRD and GoBGP use ("Established", "ESTABLISHED",
    /// "BGP_FSM_ESTABLISHED", "openconfirm", "Clearing" = Idle...).
    fn from_str(s: &str) -> Result<SessionState> {
        let k = s.trim().to_ascii_lowercase().replace(['_', ' ', '-'], "");
        let k = k.strip_prefix("bgpfsm").unwrap_or(&k);
        Ok(match k {
            "idle" | "clearing" | "deleted" | "down" | "" => SessionState::Idle,
            "connect" => SessionState::Connect,
            "active" => SessionState::Active,
            "opensent" => SessionState::OpenSent,
            "openconfirm" => SessionState::OpenConfirm,
            "established" => SessionState::Established,
            _ => bail!("unknown BGP session state {s:?}"),
        })
    }
}

/// A session as a router reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    pub address: IpAddr,
    pub remote_asn: Option<u32>,
    pub state: SessionState,
    /// Prefixes accepted from the peer, all families, when the router reports it.
    pub prefixes_received: Option<u64>,
    /// The router's last error / reset reason text, when it reports one.
    pub last_error: Option<String>,
}

/// BGP ORIGIN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Igp,
    Egp,
    Incomplete,
}

impl FromStr for Origin {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Origin> {
        match s.trim().to_ascii_lowercase().as_str() {
            "igp" | "i" | "0" => Ok(Origin::Igp),
            "egp" | "e" | "1" => Ok(Origin::Egp),
            "incomplete" | "?" | "2" => Ok(Origin::Incomplete),
            _ => bail!("unknown origin {s:?}"),
        }
    }
}

/// One path for a prefix in a router's RIB (or what ExaBGP received), with its attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub prefix: IpNet,
    /// The neighbor the path came from; None for locally originated paths.
    pub peer: Option<IpAddr>,
    /// None when the router shows no usable next hop (local routes: 0.0.0.0 / ::).
    pub next_hop: Option<IpAddr>,
    /// AS_PATH flattened (sequences and sets in order), first AS first.
    pub as_path: Vec<u32>,
    pub origin: Option<Origin>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub communities: Vec<Community>,
    pub large_communities: Vec<LargeCommunity>,
    /// Kept after the peer's session went down (graceful restart helper) and not yet refreshed.
    pub stale: bool,
    /// Selected as best path.
    pub best: bool,
}

impl Route {
    pub(crate) fn empty(prefix: IpNet) -> Route {
        Route {
            prefix,
            peer: None,
            next_hop: None,
            as_path: Vec::new(),
            origin: None,
            med: None,
            local_pref: None,
            communities: Vec::new(),
            large_communities: Vec::new(),
            stale: false,
            best: false,
        }
    }
}

/// Parses a prefix as routers print it ("10.0.0.0/24").
pub(crate) fn parse_prefix(s: &str) -> Result<IpNet> {
    s.trim()
        .parse::<IpNet>()
        .map_err(|e| anyhow!("bad prefix {s:?}: {e}"))
}

/// An address from a JSON string; None when absent, unparsable or unspecified (0.0.0.0 / ::),
/// which routers print for "no address".
pub(crate) fn parse_ip(v: &Value) -> Option<IpAddr> {
    let ip: IpAddr = v.as_str()?.parse().ok()?;
    (!ip.is_unspecified()).then_some(ip)
}

/// A JSON number that fits in a u32.
pub(crate) fn u32_of(v: &Value) -> Option<u32> {
    v.as_u64().and_then(|x| u32::try_from(x).ok())
}

/// A running router the tests can inspect. Implemented by `Frr`, `Bird`, `GoBgp`, `ExaBgp`.
pub trait BgpRouter {
    /// "frr@r1" and the like, for messages.
    fn label(&self) -> String;
    /// Every configured session with its state.
    fn peers(&self) -> Result<Vec<PeerInfo>>;
    /// Every path in the RIB for `family` (ExaBGP: every route it received).
    fn routes(&self, family: Family) -> Result<Vec<Route>>;
    /// The daemon's own log (FRR bgpd.log, BIRD's log file, GoBGP's and ExaBGP's output).
    fn log_tail(&self, lines: usize) -> String;
    /// The daemon process (pause/resume/kill9).
    fn process(&self) -> &Process;

    /// The session with `neighbor`, if configured.
    fn peer(&self, neighbor: IpAddr) -> Result<Option<PeerInfo>> {
        Ok(self.peers()?.into_iter().find(|p| p.address == neighbor))
    }

    /// Paths for `prefix` (all peers).
    fn route(&self, prefix: &IpNet) -> Result<Vec<Route>> {
        Ok(self
            .routes(Family::of(prefix))?
            .into_iter()
            .filter(|r| r.prefix == *prefix)
            .collect())
    }

    /// Polls `probe` against this router; on timeout the error carries the last observation
    /// and the tail of the router's log.
    fn wait<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut probe: impl FnMut(&Self) -> Result<Check<T>>,
    ) -> Result<T>
    where
        Self: Sized,
    {
        let label = self.label();
        wait_for(&format!("{what} on {label}"), timeout, || {
            if !self.process().is_running() {
                return Check::NotYet(format!(
                    "{label} is not running (exit {:?}); output:\n{}",
                    self.process().exit_status(),
                    self.process().output_tail(20)
                ));
            }
            match probe(self) {
                Ok(c) => c,
                Err(e) => Check::NotYet(format!("query failed: {e:#}")),
            }
        })
        .map_err(|e| {
            anyhow!(
                "{e:#}\n--- last lines of {label}'s log ---\n{}",
                self.log_tail(30)
            )
        })
    }

    /// Waits until the session with `neighbor` is Established.
    fn wait_established(&self, neighbor: IpAddr, timeout: Duration) -> Result<PeerInfo>
    where
        Self: Sized,
    {
        self.wait(
            &format!("session with {neighbor} Established"),
            timeout,
            |r| {
                Ok(match r.peer(neighbor)? {
                    Some(p) if p.state == SessionState::Established => Check::Done(p),
                    other => Check::NotYet(format!("{other:?}")),
                })
            },
        )
    }

    /// Waits until a path for `prefix` satisfying `accept` exists; returns it.
    fn wait_route(
        &self,
        prefix: &str,
        timeout: Duration,
        accept: impl Fn(&Route) -> bool,
    ) -> Result<Route>
    where
        Self: Sized,
    {
        let net = parse_prefix(prefix)?;
        self.wait(&format!("a matching route for {net}"), timeout, |r| {
            let paths = r.route(&net)?;
            Ok(match paths.iter().find(|p| accept(p)) {
                Some(p) => Check::Done(p.clone()),
                None => Check::NotYet(format!("paths for {net}: {paths:?}")),
            })
        })
    }

    /// Waits until no path for `prefix` from `peer` remains (None: from anyone).
    fn wait_route_gone(&self, prefix: &str, peer: Option<IpAddr>, timeout: Duration) -> Result<()>
    where
        Self: Sized,
    {
        let net = parse_prefix(prefix)?;
        self.wait(&format!("{net} withdrawn"), timeout, |r| {
            let paths: Vec<Route> = r
                .route(&net)?
                .into_iter()
                .filter(|p| peer.is_none() || p.peer == peer)
                .collect();
            Ok(if paths.is_empty() {
                Check::Done(())
            } else {
                Check::NotYet(format!("still present: {paths:?}"))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_state_spellings() {
        for (s, want) in [
            ("Established", SessionState::Established),
            ("BGP_FSM_ESTABLISHED", SessionState::Established),
            ("OpenConfirm", SessionState::OpenConfirm),
            ("opensent", SessionState::OpenSent),
            ("Active", SessionState::Active),
            ("Clearing", SessionState::Idle),
        ] {
            assert_eq!(s.parse::<SessionState>().unwrap(), want, "{s}");
        }
        assert!("Establishing".parse::<SessionState>().is_err());
    }

    #[test]
    fn communities_parse_and_print() {
        assert_eq!("65001:7".parse::<Community>().unwrap(), Community(65001, 7));
        assert_eq!(
            "no-export".parse::<Community>().unwrap(),
            Community(65535, 65281)
        );
        assert_eq!(Community::from_u32(4260036609), Community(65003, 1));
        assert_eq!(Community(65003, 1).as_u32(), 4260036609);
        assert!("65536:1".parse::<Community>().is_err());
        assert_eq!(
            "4200000001:1:2".parse::<LargeCommunity>().unwrap(),
            LargeCommunity(4200000001, 1, 2)
        );
        assert!("1:2".parse::<LargeCommunity>().is_err());
        assert_eq!(LargeCommunity(1, 2, 3).to_string(), "1:2:3");
    }

    #[test]
    fn neighbor_defaults_follow_transport_family() {
        let n = Neighbor::new("fd00:99::1".parse().unwrap(), 65001);
        assert_eq!(n.families, vec![Family::Ipv6Unicast]);
        assert_eq!(
            (n.hold_time, n.keepalive_secs(), n.connect_retry),
            (9, 3, 2)
        );
    }
}
