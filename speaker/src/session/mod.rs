//! The session runtime: one tokio task per configured peer drives a sans-IO
//! [`bgp::peer::Peer`] (see the contract in `bgp::fsm`'s module docs) over real TCP.
//!
//! Per peer ([`driver`]): outbound connects (bound source address, MD5 key, TTL set before the
//! SYN), inbound connections handed over by the shared [`listener`] (which accepts only the
//! configured peer addresses and closes anything else at once), timers from
//! `Peer::poll_timeout` with `tokio::time::sleep_until`, and every FSM output carried out.
//!
//! Per connection ([`conn`]): a reader task that frames the byte stream with
//! `wire::frame_len` (the driver decodes each frame with the context the `Peer` gives for it,
//! asked afresh per message), and a writer task with two queues: control messages (OPEN,
//! KEEPALIVE, NOTIFICATION, ROUTE-REFRESH) always go first, and UPDATEs are pulled from the
//! RIB ([`RibHandle::pull`]) in chunks of at most [`conn::BULK_CHUNK`] bytes; a control
//! message cuts in at the end of the UPDATE being written, and the kernel keeps at most
//! [`socket::NOTSENT_LOWAT`] bytes unsent ahead of it, so a KEEPALIVE is not delayed by the
//! size of the table however slowly the peer reads.
//!
//! TTL policy ([`SocketOptions`]): set on connecting sockets before the SYN and on accepted
//! ones; the listener answers with TTL 255 and checks GTSM from the SYN on (see [`listener`]).
//!
//! The RIB is behind [`RibHandle`]: the driver reports sessions going up and down and feeds
//! it UPDATEs and ROUTE-REFRESHes; the writer pulls what to send.

pub mod conn;
pub mod driver;
pub mod listener;
pub mod socket;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bgp::fsm::{DownReason, State};
use bgp::negotiate::Negotiated;
use bgp::wire::{Context, Family, RouteRefresh, Update};
use bytes::BytesMut;
use tokio::sync::Notify;

pub use driver::{spawn_peer, PeerHandle};
pub use socket::SocketOptions;

/// Index of a peer in the agent's peer table (also its key in the RIB).
pub type PeerId = usize;

/// Everything the runtime needs to run one peering.
#[derive(Debug, Clone)]
pub struct PeerSpec {
    pub id: PeerId,
    /// FSM parameters (ASNs, router id, timers, families, GR, passive).
    pub fsm: bgp::fsm::Config,
    pub address: IpAddr,
    /// Remote port for outbound connections.
    pub port: u16,
    /// Local address to bind outbound connections to.
    pub source: Option<IpAddr>,
    pub socket: SocketOptions,
}

impl PeerSpec {
    pub fn remote(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.port)
    }
}

/// Why the RIB wants a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPrefixExceeded {
    pub family: Family,
    pub limit: u32,
}

/// An Established session as the RIB sees it.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub negotiated: Negotiated,
    /// Our end of the TCP connection (next-hop-self for what we advertise).
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// What the session runtime needs from the RIB. Calls are short and synchronous; the
/// implementation wakes a peer's writer through the `Notify` given by [`RibHandle::waker`]
/// whenever it has something new to send to that peer.
pub trait RibHandle: Send + Sync + 'static {
    /// The session of `peer` is Established.
    fn peer_up(&self, peer: PeerId, session: &SessionInfo);
    /// The Established session of `peer` ended (GR: its routes may stay, stale).
    fn peer_down(&self, peer: PeerId, reason: &DownReason);
    /// An UPDATE from `peer`. `Err` when it pushed a family over its max-prefix limit.
    fn update(&self, peer: PeerId, update: Update) -> Result<(), MaxPrefixExceeded>;
    /// `peer` asked for our routes again (RFC 2918 / RFC 7313).
    fn route_refresh(&self, peer: PeerId, request: &RouteRefresh);
    /// Append encoded UPDATEs for `peer` (at most about `budget` bytes, always whole
    /// messages), End-of-RIB included, encoded with `cx`. Nothing appended: nothing to send.
    fn pull(&self, peer: PeerId, cx: &Context, budget: usize, out: &mut BytesMut);
    /// Notified when `peer` has something new for `pull`.
    fn waker(&self, peer: PeerId) -> Arc<Notify>;
}

/// A peer as the API shows it; kept current by its driver.
#[derive(Debug, Clone)]
pub struct PeerStatus {
    pub address: IpAddr,
    pub port: u16,
    pub local_as: u32,
    pub peer_as: u32,
    pub state: State,
    pub established_at: Option<Instant>,
    /// The peer's BGP identifier and what was negotiated, while Established.
    pub peer_id: Option<std::net::Ipv4Addr>,
    pub hold_time: Option<u16>,
    pub families: Vec<Family>,
    pub local: Option<SocketAddr>,
    pub last_error: Option<String>,
    /// Why the last Established session ended (what `last_error` returns to once a new
    /// session is up, so it never shows a stale connect error of this session's attempts).
    pub last_down: Option<String>,
    /// Completed Established sessions that went down.
    pub flaps: u32,
    pub passive: bool,
}

impl PeerStatus {
    pub fn new(spec: &PeerSpec) -> PeerStatus {
        PeerStatus {
            address: spec.address,
            port: spec.port,
            local_as: spec.fsm.local_as,
            peer_as: spec.fsm.peer_as,
            state: State::Idle,
            established_at: None,
            peer_id: None,
            hold_time: None,
            families: spec.fsm.families.clone(),
            local: None,
            last_error: None,
            last_down: None,
            flaps: 0,
            passive: spec.fsm.passive,
        }
    }

    pub fn uptime(&self) -> Option<Duration> {
        self.established_at.map(|t| t.elapsed())
    }
}
