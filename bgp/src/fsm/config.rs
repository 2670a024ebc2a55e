//! What one peering is configured to be: the parameters the FSM, the OPEN we send and the
//! OPEN checks depend on. Plain data with defaults; the speaker fills it from its config file.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::wire::Family;

/// RFC 4271 §10 suggests 90 s; FRR, BIRD and GoBGP all default to it.
pub const DEFAULT_HOLD_TIME: u16 = 90;
/// RFC 4271 §8: "a large value, 4 minutes is suggested" for the HoldTimer before the peer's
/// OPEN has told us the real one.
pub const OPEN_HOLD_TIME: Duration = Duration::from_secs(240);

/// Configuration of one peering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Our AS (sent in OPEN: 2-octet field, AS_TRANS if it needs 4 octets, plus capability 65).
    pub local_as: u32,
    /// The AS the peer must announce (OPEN error 2/2 otherwise).
    pub peer_as: u32,
    /// Our BGP Identifier.
    pub router_id: Ipv4Addr,
    /// Hold time we offer, seconds: 0 (no keepalives, no hold timer) or >= 3.
    pub hold_time: u16,
    /// Keepalive interval, seconds. `None`: a third of the negotiated hold time. Never more
    /// than a third of the negotiated hold time, whatever is configured.
    pub keepalive: Option<u16>,
    /// RFC 4271 PassiveTcpEstablishment: never initiate TCP, wait for the peer to connect.
    pub passive: bool,
    /// Address families we advertise (Multiprotocol capability each) and accept.
    pub families: Vec<Family>,
    /// Connect-retry / restart delay: starts at `min`, doubles after every attempt that does not
    /// reach Established, capped at `max`; back to `min` on Established.
    pub retry: Backoff,
    /// Advertise RFC 8654 extended messages.
    pub extended_message: bool,
    /// Advertise RFC 7313 enhanced route refresh (plain RFC 2918 route refresh always is).
    pub enhanced_route_refresh: bool,
    /// Families for which we advertise ADD-PATH receive (RFC 7911).
    pub add_path_receive: Vec<Family>,
    /// Families for which we advertise ADD-PATH send (RFC 7911).
    pub add_path_send: Vec<Family>,
    /// Advertise graceful restart (RFC 4724). `None`: no GR capability at all.
    pub graceful_restart: Option<GracefulRestartConfig>,
    /// Capability codes the peer must advertise; a missing one is OPEN error 2/7
    /// (e.g. `cap_code::FOUR_OCTET_AS`).
    pub required_capabilities: Vec<u8>,
    /// Initial HoldTimer in OpenSent (RFC 4271: 4 minutes).
    pub open_hold_time: Duration,
}

/// Exponential, deterministic (jitter-free) backoff bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            min: Duration::from_secs(2),
            max: Duration::from_secs(120),
        }
    }
}

/// Our side of graceful restart (RFC 4724 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GracefulRestartConfig {
    /// Restart Time we advertise, seconds (12 bits: at most 4095).
    pub restart_time: u16,
    /// Set the Restart State (R) bit: we have just restarted and the peer should wait for our
    /// End-of-RIB before removing stale routes. The speaker clears it once it has sent EoR.
    pub restarting: bool,
    /// Set the Forwarding State (F) bit for every advertised family: forwarding (the
    /// datapath, kernel routes) survived the restart.
    pub forwarding_preserved: bool,
}

impl Config {
    /// A peering with the defaults every mainstream BGP daemon uses: hold 90 s, keepalive
    /// 30 s, active, IPv4 unicast, route refresh + enhanced route refresh, no GR, retry 2..120 s.
    pub fn new(local_as: u32, peer_as: u32, router_id: Ipv4Addr) -> Config {
        Config {
            local_as,
            peer_as,
            router_id,
            hold_time: DEFAULT_HOLD_TIME,
            keepalive: None,
            passive: false,
            families: vec![Family::IPV4_UNICAST],
            retry: Backoff::default(),
            extended_message: false,
            enhanced_route_refresh: true,
            add_path_receive: Vec::new(),
            add_path_send: Vec::new(),
            graceful_restart: None,
            required_capabilities: Vec::new(),
            open_hold_time: OPEN_HOLD_TIME,
        }
    }

    /// iBGP: both ends in the same AS.
    pub fn is_ibgp(&self) -> bool {
        self.local_as == self.peer_as
    }

    /// Settings no peer would accept or the wire cannot carry.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if matches!(self.hold_time, 1 | 2) {
            return Err(ConfigError::HoldTime(self.hold_time));
        }
        if self.families.is_empty() {
            return Err(ConfigError::NoFamilies);
        }
        if self.router_id == Ipv4Addr::UNSPECIFIED {
            return Err(ConfigError::RouterId);
        }
        if let Some(gr) = &self.graceful_restart {
            if gr.restart_time > 0x0fff {
                return Err(ConfigError::RestartTime(gr.restart_time));
            }
        }
        if self.retry.min.is_zero() || self.retry.min > self.retry.max {
            return Err(ConfigError::Backoff(self.retry));
        }
        Ok(())
    }
}

/// A peering config that cannot work (`Config::validate`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("hold time {0} s: must be 0 or at least 3 (RFC 4271 §4.2)")]
    HoldTime(u16),
    #[error("no address family configured")]
    NoFamilies,
    #[error("router id 0.0.0.0 is not a valid BGP identifier")]
    RouterId,
    #[error("graceful restart time {0} s does not fit 12 bits (max 4095)")]
    RestartTime(u16),
    #[error("retry backoff {0:?}: min must be non-zero and not above max")]
    Backoff(Backoff),
}
