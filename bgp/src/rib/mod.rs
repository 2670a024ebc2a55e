//! The RIB, sans-IO: Adj-RIBs-In, the Loc-RIB with the RFC 4271 §9.1 decision process, and an
//! Adj-RIB-Out per peer that packs UPDATEs; interned attribute sets; graceful restart (helper
//! role), route refresh, max-prefix. No sockets, no clock: `Instant`s are passed in.
//!
//! # How a runtime drives it
//! One [`Rib`] for the speaker, shared by every peer's session task (behind a mutex or owned by
//! one RIB task fed by channels).
//! 1. `add_peer(PeerConfig) -> PeerId` once per configured peer (`remove_peer` when
//!    deconfigured). `originate` / `withdraw_local` for the agent's own routes (pod CIDRs,
//!    VIPs) at any time.
//! 2. FSM `Output::Established(conn, negotiated)`: `peer_up(now, id, &negotiated, local_addr)`
//!    (`local_addr`: the TCP socket's local address, used as next hop self). This queues the
//!    initial dump of the Loc-RIB toward the peer, then End-of-RIB for every negotiated family.
//! 3. FSM `Output::UpdateReceived(conn, update)`: `apply_update(id, update)`. When the returned
//!    [`Applied::max_prefix_exceeded`] is set, feed the FSM
//!    `Input::MaxPrefixExceeded { family, limit }` (it sends Cease/1 with AFI, SAFI, limit;
//!    RFC 4486); the RIB has already dropped the peer's routes.
//! 4. FSM `Output::RouteRefreshReceived(conn, rr)`: `route_refresh(id, &rr)` (a request
//!    re-queues the family's Adj-RIB-Out, inside BoRR/EoRR when enhanced route refresh was
//!    negotiated; a BoRR/EoRR from the peer brackets its own re-advertisement).
//! 5. FSM `Output::PeerDown(conn, reason)`: `peer_down(now, id, &reason)`. With graceful
//!    restart (RFC 4724) the routes stay, stale, until `poll_timeout()`; call
//!    `handle_timeout(now)` once it has passed (re-read `poll_timeout()` after every call).
//! 6. Sending: after any of the above, every Established peer may have UPDATEs to send.
//!    `has_pending(id)` says so; `next_encoded(id, budget, buf)` appends the next messages
//!    (UPDATEs, End-of-RIB markers, BoRR/EoRR ROUTE-REFRESH) of about `budget` bytes in total,
//!    already encoded with the session's encode context — write them, then call again
//!    (`next_messages` returns the same as decoded values, for tests and tools). Asking for a
//!    bounded amount at a time lets the runtime interleave KEEPALIVEs during a large dump.
//!    Every message fits the negotiated maximum (4096, or 65535 with RFC 8654).
//!
//! Changes propagate incrementally: an UPDATE, a withdrawal, a session loss or a local route
//! marks only the prefixes whose Loc-RIB route changed as dirty for each Established peer
//! (not for a peer that was never sent the prefix and would not be sent its new route);
//! `next_encoded` exports just those (an UPDATE, or a withdrawal when the prefix lost its last
//! exportable route) and packs prefixes that share outgoing attributes into one UPDATE.
//! The Adj-RIB-Out is computed on demand (RFC 4271 §3.2): per peer and family a bitset of
//! what was announced and one of what changed, no copy of the attributes sent, so a prefix
//! whose best route changed but whose export did not is sent again (a duplicate UPDATE,
//! harmless). Exports are shared between peers of one class (same local AS, next hop self,
//! MED and LOCAL_PREF settings) and encoded once per attribute set (see `out.rs`).
//!
//! # Scope and choices
//! - Families: IPv4 and IPv6 unicast, with ADD-PATH receive (candidates keyed by prefix + path
//!   id). Toward ADD-PATH-send peers only the best path is sent (path id 0).
//! - RFC 7606 results: treat-as-withdraw removes the UPDATE's routes; attribute-discard keeps
//!   the routes without the bad attributes (the decoder already dropped them); AFI/SAFI disable
//!   drops the family's routes of the peer and ignores the family until the session ends.
//! - Import: routes whose AS_PATH holds the peer's local AS (RFC 4271 §9.1.2) or, from iBGP,
//!   whose ORIGINATOR_ID is our router id (RFC 4456 §8) are not accepted; from eBGP,
//!   LOCAL_PREF, ORIGINATOR_ID and CLUSTER_LIST are removed. RFC 6793 AS4_PATH is merged for
//!   2-octet peers. Next hops are not resolved (no IGP): every route is a candidate.
//! - Decision: see [`decision`](self) docs (`select`), locally originated routes first.
//! - Export rules and the policy hook: see `export.rs` and [`ExportPolicy`]. No route
//!   reflection, no confederations.
//! - Graceful restart, helper role: a session that ends without NOTIFICATION (or with one,
//!   except Hard Reset, when `PeerConfig::notification_gr` says both sides set the RFC 8538 N
//!   bit) keeps the routes of the families the peer listed, marked stale, for its restart
//!   time; when the peer is back, the new session's End-of-RIB for a family removes what was
//!   not refreshed (or `RibConfig::stale_path_time` after the reconnect, 360 s by default,
//!   as FRR). Families without the Forwarding State bit in the new OPEN lose their stale
//!   routes at once (RFC 4724 §4.2). Restarting-speaker role: the RIB sends End-of-RIB after
//!   each family's initial dump; the OPEN's restart and forwarding bits are the FSM config's.

mod attrs;
mod core;
mod decision;
mod export;
mod out;
mod table;

pub use attrs::{Interner, PathAttrs, RouteNextHop};
pub use core::Rib;
pub use decision::DecisionConfig;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::wire::{Attr, Family};

/// A peer of the RIB. `PeerId::LOCAL` stands for routes this speaker originates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u16);

impl PeerId {
    pub const LOCAL: PeerId = PeerId(0);
}

/// Speaker-wide settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RibConfig {
    /// Our BGP identifier (for locally originated routes in the decision process, and the
    /// RFC 4456 ORIGINATOR_ID loop check).
    pub router_id: Ipv4Addr,
    pub decision: DecisionConfig,
    /// After a graceful-restart peer reconnects, how long to wait for its End-of-RIB before
    /// removing the stale routes anyway.
    pub stale_path_time: Duration,
}

impl RibConfig {
    pub fn new(router_id: Ipv4Addr) -> RibConfig {
        RibConfig {
            router_id,
            decision: DecisionConfig::default(),
            stale_path_time: Duration::from_secs(360),
        }
    }
}

/// One configured peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    pub address: IpAddr,
    /// Our AS on this session (MetalLB's per-peer my-asn).
    pub local_as: u32,
    pub peer_as: u32,
    /// Accepted prefixes per family above which the session is to be closed (RFC 4486).
    pub max_prefix: Option<u32>,
    /// eBGP: pass on MEDs learnt from other peers (off: only our own routes carry MED).
    pub send_med: bool,
    /// Next hop self addresses; default: the session's local address (for IPv6 routes over
    /// an IPv4 session, its IPv4-mapped form).
    pub next_hop_v4: Option<Ipv4Addr>,
    pub next_hop_v6: Option<Ipv6Addr>,
    /// Both sides advertised the RFC 8538 N bit: graceful restart also after a NOTIFICATION
    /// (except Cease / Hard Reset). bgplane's OPEN does not set N today, so leave it off.
    pub notification_gr: bool,
}

impl PeerConfig {
    pub fn new(address: IpAddr, local_as: u32, peer_as: u32) -> PeerConfig {
        PeerConfig {
            address,
            local_as,
            peer_as,
            max_prefix: None,
            send_med: false,
            next_hop_v4: None,
            next_hop_v6: None,
            notification_gr: false,
        }
    }

    pub fn is_ebgp(&self) -> bool {
        self.local_as != self.peer_as
    }
}

/// What an export policy decides for one route toward one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportAction {
    /// Send with the attributes the default rules produced.
    Accept,
    /// Do not send (withdraw if it was sent).
    Reject,
    /// Send with these attributes instead (next hop is kept from the default rules).
    Replace(Vec<Attr>),
}

/// A hook run after the default export rules, for every route toward a peer.
pub trait ExportPolicy: Send + Sync {
    /// `attrs`: the outgoing attributes (NEXT_HOP excluded) the default rules produced.
    fn export(&self, peer: PeerId, prefix: IpNet, attrs: &[Attr]) -> ExportAction;
}

impl<F> ExportPolicy for F
where
    F: Fn(PeerId, IpNet, &[Attr]) -> ExportAction + Send + Sync,
{
    fn export(&self, peer: PeerId, prefix: IpNet, attrs: &[Attr]) -> ExportAction {
        self(peer, prefix, attrs)
    }
}

/// What `apply_update` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Routes added or replaced.
    pub announced: usize,
    /// Routes removed (withdrawals, treat-as-withdraw).
    pub withdrawn: usize,
    /// The UPDATE was this family's End-of-RIB marker.
    pub end_of_rib: Option<Family>,
    /// Set when the peer exceeded its max-prefix limit: close the session with Cease/1
    /// (`fsm::Input::MaxPrefixExceeded`). The peer's routes were removed.
    pub max_prefix_exceeded: Option<(Family, u32)>,
    /// Families disabled by RFC 7606 AFI/SAFI disable in this UPDATE.
    pub disabled: Vec<Family>,
    /// Announced routes refused at import (AS loop, ORIGINATOR_ID loop, family not
    /// negotiated).
    pub rejected: usize,
}

/// What `peer_down` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerDownOutcome {
    pub removed: usize,
    /// Routes kept as stale (graceful restart).
    pub stale: usize,
    /// When the stale routes go if the peer does not come back.
    pub stale_until: Option<Instant>,
}

/// One route of a peer's Adj-RIB-In (or of the Loc-RIB).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteView {
    pub prefix: IpNet,
    pub path_id: u32,
    pub peer: PeerId,
    pub attrs: Arc<PathAttrs>,
    pub stale: bool,
    /// It is the Loc-RIB route of its prefix.
    pub best: bool,
}

/// One route of a peer's Adj-RIB-Out: a prefix announced (or queued to be) and the
/// attributes of its current export (what was sent, unless a change is still queued).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertised {
    pub prefix: IpNet,
    pub attrs: Arc<PathAttrs>,
}

/// Per-family counts of one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FamilyCounts {
    pub family: Family,
    pub received: usize,
    pub stale: usize,
    pub advertised: usize,
}

/// Errors of RIB calls (caller mistakes, not peer input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RibError {
    #[error("no peer with id {0:?}")]
    UnknownPeer(PeerId),
    #[error("peer {0:?} has no Established session")]
    NotEstablished(PeerId),
    #[error("too many peers (at most 65534)")]
    TooManyPeers,
    #[error("prefix {0} is not IPv4 or IPv6 unicast")]
    UnsupportedPrefix(IpNet),
}

/// The families the RIB stores.
pub const FAMILIES: [Family; 2] = [Family::IPV4_UNICAST, Family::IPV6_UNICAST];
