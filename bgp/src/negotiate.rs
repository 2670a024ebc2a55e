//! Capability negotiation: the OPEN we send (built from the peering's config) and what a
//! session agreed on once both OPENs are known — families, 4-octet AS, route refresh, extended
//! messages, graceful restart, ADD-PATH per direction — and from that the wire `Context` for
//! each direction. Pure functions of the two OPENs; the OPEN *checks* (bad AS, bad id, ...)
//! live in `fsm::validate`.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::fsm::Config;
use crate::wire::{
    AddPathMode, Capability, Context, Family, GrFamily, GracefulRestart, LlgrFamily, Open,
};

/// What one session negotiated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub local_as: u32,
    /// The peer's AS (capability 65 when sent, else the OPEN's 2-octet field).
    pub peer_as: u32,
    pub local_id: Ipv4Addr,
    pub peer_id: Ipv4Addr,
    /// Negotiated hold time in seconds: the smaller of both offers; 0 = no hold timer.
    pub hold_time: u16,
    /// Our keepalive interval; `None` when the hold time is 0 (no keepalives at all).
    pub keepalive: Option<Duration>,
    /// Families both sides advertised (RFC 4760; IPv4 unicast when a side sent no MP
    /// capability at all), sorted.
    pub families: Vec<Family>,
    /// Both sent capability 65 (RFC 6793).
    pub four_octet_as: bool,
    /// The peer advertised route refresh (RFC 2918): we may send it ROUTE-REFRESH.
    pub route_refresh: bool,
    /// Both advertised enhanced route refresh (RFC 7313): BoRR/EoRR around a refresh.
    pub enhanced_route_refresh: bool,
    /// Both advertised extended messages (RFC 8654): 65535-byte messages both ways.
    pub extended_message: bool,
    /// Families on which the peer sends us path ids (we advertised receive, it send).
    pub add_path_receive: Vec<Family>,
    /// Families on which we send path ids (we advertised send, it receive).
    pub add_path_send: Vec<Family>,
    /// The peer's graceful restart capability, when both sides advertised one (RFC 4724):
    /// we act as its helper when the session drops.
    pub peer_graceful_restart: Option<PeerGracefulRestart>,
    /// We advertised graceful restart (the peer may act as our helper).
    pub local_graceful_restart: bool,
    /// The peer's long-lived graceful restart families (RFC 9494), when it sent capability 71.
    pub peer_long_lived_gr: Option<Vec<LlgrFamily>>,
}

/// The peer's side of graceful restart, restricted to negotiated families.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerGracefulRestart {
    /// How long (seconds) to keep its routes as stale after the session drops.
    pub restart_time: u16,
    /// R bit: the peer has just restarted; wait for its End-of-RIB before removing stale routes.
    pub restart_state: bool,
    /// N bit (RFC 8538): GR also covers sessions ended by NOTIFICATION (except Hard Reset).
    pub notification: bool,
    /// Families it can restart gracefully, with its Forwarding State (F) bit, sorted.
    pub families: Vec<(Family, bool)>,
}

impl Negotiated {
    /// iBGP session (same AS on both ends).
    pub fn is_ibgp(&self) -> bool {
        self.local_as == self.peer_as
    }

    /// Context to decode what the peer sends us.
    pub fn decode_context(&self) -> Context {
        Context {
            four_octet_as: self.four_octet_as,
            add_path: self.add_path_receive.clone(),
            extended_message: self.extended_message,
        }
    }

    /// Context to encode what we send the peer.
    pub fn encode_context(&self) -> Context {
        Context {
            four_octet_as: self.four_octet_as,
            add_path: self.add_path_send.clone(),
            extended_message: self.extended_message,
        }
    }
}

/// The OPEN we send on every connection of this peering.
pub fn our_open(config: &Config) -> Open {
    let mut caps: Vec<Capability> = config
        .families
        .iter()
        .map(|f| Capability::Multiprotocol(*f))
        .collect();
    caps.push(Capability::RouteRefresh);
    if config.enhanced_route_refresh {
        caps.push(Capability::EnhancedRouteRefresh);
    }
    caps.push(Capability::FourOctetAs(config.local_as));
    if config.extended_message {
        caps.push(Capability::ExtendedMessage);
    }
    if let Some(gr) = &config.graceful_restart {
        let family_flags = if gr.forwarding_preserved {
            GrFamily::FORWARDING
        } else {
            0
        };
        caps.push(Capability::GracefulRestart(GracefulRestart {
            flags: if gr.restarting {
                GracefulRestart::RESTART_STATE
            } else {
                0
            },
            restart_time: gr.restart_time.min(0x0fff),
            families: config
                .families
                .iter()
                .map(|f| GrFamily {
                    family: *f,
                    flags: family_flags,
                })
                .collect(),
        }));
    }
    let add_path: Vec<(Family, AddPathMode)> = config
        .families
        .iter()
        .filter_map(|f| {
            let mode = u8::from(config.add_path_receive.contains(f))
                | (u8::from(config.add_path_send.contains(f)) << 1);
            (mode != 0).then_some((*f, AddPathMode(mode)))
        })
        .collect();
    if !add_path.is_empty() {
        caps.push(Capability::AddPath(add_path));
    }
    Open::new(config.local_as, config.hold_time, config.router_id, caps)
}

fn has(open: &Open, code: u8) -> bool {
    open.capabilities().any(|c| c.code() == code)
}

fn add_path_modes(open: &Open) -> Vec<(Family, AddPathMode)> {
    open.capabilities()
        .filter_map(|c| match c {
            Capability::AddPath(v) => Some(v.iter().copied()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn mode_for(modes: &[(Family, AddPathMode)], f: Family) -> AddPathMode {
    // RFC 7911 §4: the last occurrence of a family wins... implementations disagree; take the
    // union, which is what the peer offered in any of its tuples.
    AddPathMode(
        modes
            .iter()
            .filter(|(g, _)| *g == f)
            .fold(0, |acc, (_, m)| acc | m.0),
    )
}

/// The families both OPENs carry (the session is useless if this is empty: `validate` refuses
/// such an OPEN with 2/7).
pub fn common_families(ours: &Open, theirs: &Open) -> Vec<Family> {
    let their_families = theirs.families();
    let mut v: Vec<Family> = ours
        .families()
        .into_iter()
        .filter(|f| their_families.contains(f))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Negotiate from our OPEN and the peer's (already validated) OPEN. `keepalive` is the
/// configured keepalive (seconds), `None` for hold/3.
pub fn negotiate(ours: &Open, theirs: &Open, keepalive: Option<u16>) -> Negotiated {
    use crate::wire::cap_code;
    let families = common_families(ours, theirs);
    let hold_time = ours.hold_time.min(theirs.hold_time);
    let keepalive = (hold_time != 0).then(|| {
        let third = Duration::from_secs(u64::from(hold_time)) / 3;
        match keepalive {
            Some(k) if k > 0 => Duration::from_secs(u64::from(k)).min(third),
            _ => third,
        }
    });
    let four_octet_as = ours.four_octet_as().is_some() && theirs.four_octet_as().is_some();

    let our_modes = add_path_modes(ours);
    let their_modes = add_path_modes(theirs);
    let mut add_path_receive = Vec::new();
    let mut add_path_send = Vec::new();
    for f in &families {
        let (o, t) = (mode_for(&our_modes, *f), mode_for(&their_modes, *f));
        if o.receive() && t.send() {
            add_path_receive.push(*f);
        }
        if o.send() && t.receive() {
            add_path_send.push(*f);
        }
    }

    let find_gr = |open: &Open| {
        open.capabilities().find_map(|c| match c {
            Capability::GracefulRestart(gr) => Some(gr.clone()),
            _ => None,
        })
    };
    let local_gr = find_gr(ours);
    let peer_graceful_restart = match (&local_gr, find_gr(theirs)) {
        (Some(_), Some(gr)) => {
            let mut gr_families: Vec<(Family, bool)> = gr
                .families
                .iter()
                .filter(|g| families.contains(&g.family))
                .map(|g| (g.family, g.forwarding()))
                .collect();
            gr_families.sort();
            gr_families.dedup_by_key(|(f, _)| *f);
            Some(PeerGracefulRestart {
                restart_time: gr.restart_time,
                restart_state: gr.restart_state(),
                notification: gr.notification(),
                families: gr_families,
            })
        }
        _ => None,
    };
    let peer_long_lived_gr = theirs.capabilities().find_map(|c| match c {
        Capability::LongLivedGr(v) => Some(v.clone()),
        _ => None,
    });

    Negotiated {
        local_as: ours.asn(),
        peer_as: theirs.asn(),
        local_id: ours.bgp_id,
        peer_id: theirs.bgp_id,
        hold_time,
        keepalive,
        families,
        four_octet_as,
        route_refresh: has(theirs, cap_code::ROUTE_REFRESH),
        enhanced_route_refresh: has(ours, cap_code::ENHANCED_ROUTE_REFRESH)
            && has(theirs, cap_code::ENHANCED_ROUTE_REFRESH),
        extended_message: has(ours, cap_code::EXTENDED_MESSAGE)
            && has(theirs, cap_code::EXTENDED_MESSAGE),
        add_path_receive,
        add_path_send,
        peer_graceful_restart,
        local_graceful_restart: local_gr.is_some(),
        peer_long_lived_gr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsm::GracefulRestartConfig;
    use crate::wire::{cap_code, Message, AS_TRANS};

    fn config() -> Config {
        Config::new(4_200_000_001, 65002, Ipv4Addr::new(10, 99, 0, 1))
    }

    #[test]
    fn our_open_carries_what_the_config_asks_for() {
        let mut c = config();
        c.families = vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST];
        c.extended_message = true;
        c.add_path_receive = vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST];
        c.add_path_send = vec![Family::IPV6_UNICAST];
        c.graceful_restart = Some(GracefulRestartConfig {
            restart_time: 5000, // more than 12 bits: capped
            restarting: true,
            forwarding_preserved: true,
        });
        let open = our_open(&c);
        assert_eq!(open.my_as, AS_TRANS);
        assert_eq!(open.asn(), 4_200_000_001);
        assert_eq!(open.hold_time, 90);
        assert_eq!(open.families(), c.families);
        let caps: Vec<&Capability> = open.capabilities().collect();
        assert!(caps.contains(&&Capability::RouteRefresh));
        assert!(caps.contains(&&Capability::EnhancedRouteRefresh));
        assert!(caps.contains(&&Capability::ExtendedMessage));
        let gr = caps
            .iter()
            .find_map(|c| match c {
                Capability::GracefulRestart(g) => Some(g.clone()),
                _ => None,
            })
            .expect("GR advertised");
        assert!(gr.restart_state());
        assert_eq!(gr.restart_time, 0x0fff);
        assert!(gr.families.iter().all(GrFamily::forwarding));
        assert_eq!(gr.families.len(), 2);
        let ap = caps
            .iter()
            .find_map(|c| match c {
                Capability::AddPath(v) => Some(v.clone()),
                _ => None,
            })
            .expect("ADD-PATH advertised");
        assert_eq!(
            ap,
            vec![
                (Family::IPV4_UNICAST, AddPathMode::RECEIVE),
                (Family::IPV6_UNICAST, AddPathMode::BOTH)
            ]
        );
        // It goes on the wire and comes back unchanged.
        let cx = Context::default();
        let bytes = Message::Open(open.clone()).to_bytes(&cx).expect("encode");
        assert_eq!(
            Message::decode(&bytes, &cx).expect("decode"),
            Message::Open(open)
        );
    }

    #[test]
    fn minimal_config_advertises_no_optional_extras() {
        let open = our_open(&config());
        let codes: Vec<u8> = open.capabilities().map(Capability::code).collect();
        assert_eq!(
            codes,
            vec![
                cap_code::MULTIPROTOCOL,
                cap_code::ROUTE_REFRESH,
                cap_code::ENHANCED_ROUTE_REFRESH,
                cap_code::FOUR_OCTET_AS
            ]
        );
    }

    /// A peer OPEN with the given capabilities.
    fn peer_open(hold: u16, caps: Vec<Capability>) -> Open {
        Open::new(65002, hold, Ipv4Addr::new(10, 99, 0, 2), caps)
    }

    #[test]
    fn a_peer_without_capabilities_is_ipv4_unicast_2_octet_as() {
        let mut c = config();
        c.local_as = 65001;
        c.families = vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST];
        let n = negotiate(&our_open(&c), &peer_open(180, Vec::new()), None);
        assert_eq!(n.families, vec![Family::IPV4_UNICAST]);
        assert!(!n.four_octet_as && !n.route_refresh && !n.extended_message);
        assert_eq!(
            (n.hold_time, n.keepalive),
            (90, Some(Duration::from_secs(30)))
        );
        assert_eq!(n.decode_context(), Context::default());
        assert_eq!(n.peer_long_lived_gr, None);
    }

    #[test]
    fn add_path_needs_the_opposite_mode_and_a_common_family() {
        let mut c = config();
        c.add_path_receive = vec![Family::IPV4_UNICAST];
        c.add_path_send = vec![Family::IPV4_UNICAST];
        let theirs = peer_open(
            90,
            vec![
                Capability::Multiprotocol(Family::IPV4_UNICAST),
                Capability::FourOctetAs(65002),
                // Receive only: we may send path ids, it will not.
                Capability::AddPath(vec![
                    (Family::IPV4_UNICAST, AddPathMode::RECEIVE),
                    (Family::IPV6_UNICAST, AddPathMode::BOTH),
                ]),
            ],
        );
        let n = negotiate(&our_open(&c), &theirs, None);
        assert_eq!(n.add_path_send, vec![Family::IPV4_UNICAST]);
        assert!(n.add_path_receive.is_empty());
        assert_eq!(n.encode_context().add_path, vec![Family::IPV4_UNICAST]);
        assert!(n.decode_context().add_path.is_empty());
    }

    #[test]
    fn graceful_restart_needs_both_sides_and_llgr_is_reported() {
        let theirs = peer_open(
            90,
            vec![
                Capability::GracefulRestart(GracefulRestart {
                    flags: GracefulRestart::NOTIFICATION,
                    restart_time: 90,
                    families: vec![GrFamily {
                        family: Family::IPV4_UNICAST,
                        flags: 0,
                    }],
                }),
                Capability::LongLivedGr(vec![LlgrFamily {
                    family: Family::IPV4_UNICAST,
                    flags: 0,
                    stale_time: 3600,
                }]),
            ],
        );
        let n = negotiate(&our_open(&config()), &theirs, None);
        assert_eq!(n.peer_graceful_restart, None, "we did not advertise GR");
        assert!(!n.local_graceful_restart);
        assert_eq!(n.peer_long_lived_gr.map(|v| v[0].stale_time), Some(3600));
        let mut c = config();
        c.graceful_restart = Some(GracefulRestartConfig {
            restart_time: 120,
            restarting: false,
            forwarding_preserved: false,
        });
        let n = negotiate(&our_open(&c), &theirs, None);
        let gr = n.peer_graceful_restart.expect("both advertised");
        assert_eq!(gr.restart_time, 90);
        assert!(gr.notification && !gr.restart_state);
        assert_eq!(gr.families, vec![(Family::IPV4_UNICAST, false)]);
    }

    #[test]
    fn hold_time_is_the_minimum_and_zero_disables_keepalives() {
        let ours = our_open(&config());
        for (theirs, hold, keepalive) in [(30, 30, Some(10)), (0, 0, None), (600, 90, Some(30))] {
            let n = negotiate(&ours, &peer_open(theirs, Vec::new()), None);
            assert_eq!(n.hold_time, hold, "peer offers {theirs}");
            assert_eq!(n.keepalive, keepalive.map(Duration::from_secs));
        }
        // A configured keepalive of 0 means the default, not "never".
        let n = negotiate(&ours, &peer_open(90, Vec::new()), Some(0));
        assert_eq!(n.keepalive, Some(Duration::from_secs(30)));
    }
}
