//! The agent's RIB: one `bgp::rib::Rib` behind a mutex, shared by every peer's session task
//! (the runtime's [`RibHandle`]) and read by the API. Calls are short: apply one UPDATE, cut
//! one bounded chunk of messages. After anything that can change the Loc-RIB, the writers of
//! the peers with pending messages are woken; a timer task removes graceful-restart stale
//! routes when their time is up.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bgp::fsm::DownReason;
use bgp::rib::{self, Rib, RibConfig, RouteNextHop};
use bgp::wire::{Context, Family, Nlri, RouteRefresh, Update};
use bytes::BytesMut;
use ipnet::IpNet;
use tokio::sync::Notify;

use crate::api::{Counts, RouteJson, RouteKind};
use crate::session::{MaxPrefixExceeded, PeerId, RibHandle, SessionInfo};

/// Per peer of the agent (indexed by the session runtime's `PeerId`).
struct Slot {
    id: rib::PeerId,
    address: IpAddr,
    waker: Arc<Notify>,
}

pub struct AgentRib {
    rib: Mutex<Rib>,
    slots: Vec<Slot>,
}

/// What a peer is configured with, as far as the RIB cares.
pub struct RibPeer {
    pub address: IpAddr,
    pub local_as: u32,
    pub peer_as: u32,
    pub max_prefixes: Option<u32>,
}

fn next_hop_text(nh: Option<RouteNextHop>) -> Option<String> {
    match nh? {
        RouteNextHop::V4(a) => Some(a.to_string()),
        RouteNextHop::V6 { global, .. } => Some(global.to_string()),
    }
}

impl AgentRib {
    /// A RIB with these peers (session `PeerId` i = `peers[i]`) and locally originated
    /// prefixes.
    pub fn new(
        router_id: std::net::Ipv4Addr,
        peers: &[RibPeer],
        originate: &[IpNet],
    ) -> Result<AgentRib, rib::RibError> {
        let mut r = Rib::new(RibConfig::new(router_id));
        let mut slots = Vec::new();
        for p in peers {
            let mut cfg = rib::PeerConfig::new(p.address, p.local_as, p.peer_as);
            cfg.max_prefix = p.max_prefixes;
            slots.push(Slot {
                id: r.add_peer(cfg)?,
                address: p.address,
                waker: Arc::new(Notify::new()),
            });
        }
        for prefix in originate {
            r.originate(*prefix, Vec::new(), None)?;
        }
        Ok(AgentRib {
            rib: Mutex::new(r),
            slots,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Rib> {
        match self.rib.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Wake the writer of every peer that has something to send.
    fn wake_pending(&self, rib: &Rib) {
        for s in &self.slots {
            if rib.has_pending(s.id) {
                s.waker.notify_one();
            }
        }
    }

    /// Received and advertised prefix counts of a peer.
    pub fn counts(&self, peer: PeerId) -> (Counts, Counts) {
        let Some(s) = self.slots.get(peer) else {
            return (Counts::default(), Counts::default());
        };
        let c = self.lock().counts(s.id);
        (
            Counts::from_families(c.iter().map(|c| (c.family, c.received as u64))),
            Counts::from_families(c.iter().map(|c| (c.family, c.advertised as u64))),
        )
    }

    /// Routes of one peer for the API. `local`: the session's local address, shown as the
    /// next hop of what we advertise with next-hop-self.
    pub fn routes(
        &self,
        kind: RouteKind,
        peer: PeerId,
        family: Option<Family>,
        local: Option<IpAddr>,
    ) -> Vec<RouteJson> {
        let Some(s) = self.slots.get(peer) else {
            return Vec::new();
        };
        let families: Vec<Family> = match family {
            Some(f) => vec![f],
            None => rib::FAMILIES.to_vec(),
        };
        let r = self.lock();
        let mut out = Vec::new();
        for f in families {
            match kind {
                RouteKind::Received => {
                    for v in r.received_routes(s.id, f) {
                        let nlri = Nlri {
                            prefix: v.prefix,
                            path_id: (v.path_id != 0).then_some(v.path_id),
                        };
                        let mut j = RouteJson::new(
                            s.address,
                            f,
                            &nlri,
                            &v.attrs.attrs(),
                            next_hop_text(v.attrs.next_hop()),
                        );
                        j.stale = v.stale;
                        j.best = v.best;
                        out.push(j);
                    }
                }
                RouteKind::Advertised => {
                    for a in r.advertised_routes(s.id, f) {
                        let nh = next_hop_text(a.attrs.next_hop()).or_else(|| {
                            local.map(|l| match (f == Family::IPV6_UNICAST, l) {
                                (true, IpAddr::V4(v4)) => v4.to_ipv6_mapped().to_string(),
                                _ => l.to_string(),
                            })
                        });
                        let attrs = a.attrs.attrs();
                        out.push(RouteJson::new(
                            s.address,
                            f,
                            &Nlri::new(a.prefix),
                            &attrs,
                            nh,
                        ));
                    }
                }
            }
        }
        out
    }

    /// Remove graceful-restart stale routes whose time is up, until the task is aborted.
    pub fn spawn_timer(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let next = me.lock().poll_timeout();
                let wait = next
                    .map(|t| t.saturating_duration_since(Instant::now()))
                    .unwrap_or(Duration::from_secs(1))
                    .min(Duration::from_secs(1));
                tokio::time::sleep(wait).await;
                let now = Instant::now();
                let mut r = me.lock();
                if r.poll_timeout().is_some_and(|t| t <= now) {
                    r.handle_timeout(now);
                    me.wake_pending(&r);
                }
            }
        })
    }
}

impl RibHandle for AgentRib {
    fn peer_up(&self, peer: PeerId, session: &SessionInfo) {
        let Some(s) = self.slots.get(peer) else {
            return;
        };
        let mut r = self.lock();
        if let Err(e) = r.peer_up(
            Instant::now(),
            s.id,
            &session.negotiated,
            crate::session::socket::canonical(session.local.ip()),
        ) {
            tracing::error!(peer = %s.address, "RIB peer_up: {e}");
        }
        self.wake_pending(&r);
    }

    fn peer_down(&self, peer: PeerId, reason: &DownReason) {
        let Some(s) = self.slots.get(peer) else {
            return;
        };
        let mut r = self.lock();
        match r.peer_down(Instant::now(), s.id, reason) {
            Ok(o) if o.stale > 0 => tracing::info!(peer = %s.address,
                "graceful restart: keeping {} routes as stale, {} removed", o.stale, o.removed),
            Ok(o) => tracing::info!(peer = %s.address, "{} routes removed", o.removed),
            Err(e) => tracing::error!(peer = %s.address, "RIB peer_down: {e}"),
        }
        self.wake_pending(&r);
    }

    fn update(&self, peer: PeerId, update: Update) -> Result<(), MaxPrefixExceeded> {
        let Some(s) = self.slots.get(peer) else {
            return Ok(());
        };
        let mut r = self.lock();
        let applied = match r.apply_update(s.id, update) {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(peer = %s.address, "UPDATE not applied: {e}");
                return Ok(());
            }
        };
        if let Some(f) = applied.end_of_rib {
            tracing::info!(peer = %s.address, "End-of-RIB for {f}");
        }
        if !applied.disabled.is_empty() {
            tracing::warn!(peer = %s.address, "RFC 7606: families disabled: {:?}", applied.disabled);
        }
        if applied.announced + applied.withdrawn > 0 || applied.end_of_rib.is_some() {
            self.wake_pending(&r);
        }
        match applied.max_prefix_exceeded {
            Some((family, limit)) => Err(MaxPrefixExceeded { family, limit }),
            None => Ok(()),
        }
    }

    fn route_refresh(&self, peer: PeerId, request: &RouteRefresh) {
        let Some(s) = self.slots.get(peer) else {
            return;
        };
        let mut r = self.lock();
        if let Err(e) = r.route_refresh(s.id, request) {
            tracing::debug!(peer = %s.address, "route refresh: {e}");
        }
        self.wake_pending(&r);
    }

    fn pull(&self, peer: PeerId, cx: &Context, budget: usize, out: &mut BytesMut) {
        let Some(s) = self.slots.get(peer) else {
            return;
        };
        // The RIB encodes with the session's context, which is `cx` (both come from the same
        // negotiation): straight from the interned attribute bytes, no Message values.
        let _ = cx;
        let mut r = self.lock();
        if !r.has_pending(s.id) {
            return;
        }
        if let Err(e) = r.next_encoded(s.id, budget, out) {
            tracing::debug!(peer = %s.address, "next_encoded: {e}");
        }
    }

    fn waker(&self, peer: PeerId) -> Arc<Notify> {
        self.slots
            .get(peer)
            .map(|s| s.waker.clone())
            .unwrap_or_else(|| Arc::new(Notify::new()))
    }
}
