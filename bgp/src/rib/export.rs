//! Export rules: the attributes a Loc-RIB route carries toward one peer (RFC 4271 §5, §9.1.3,
//! RFC 1997, RFC 4456, RFC 6793), before the optional export policy hook.
//!
//! - Never back to the peer it came from (split horizon; checked by the caller, per route).
//! - iBGP-learned routes are not sent to iBGP peers: bgplane is no route reflector (RFC 4456
//!   reflection is not implemented), so ORIGINATOR_ID and CLUSTER_LIST are never sent.
//! - NO_ADVERTISE: to nobody; NO_EXPORT and NO_EXPORT_SUBCONFED: not to eBGP peers (RFC 1997;
//!   no confederations here).
//! - eBGP: sender-side loop detection (skip a route whose AS_PATH holds the peer's AS, as FRR
//!   does), confederation segments removed and our AS prepended, next hop self, LOCAL_PREF
//!   removed, MED removed unless the route is ours or `PeerConfig::send_med` is set.
//! - iBGP: AS_PATH and next hop unchanged (next hop self for our own routes), LOCAL_PREF
//!   always present (the route's, else the default), MED kept.
//! - Unknown attributes of learned routes: optional transitive ones pass with the Partial bit,
//!   optional non-transitive ones are dropped (`Attr::for_readvertisement`).
//! - 4-octet ASes toward a 2-octet peer are handled when the UPDATE is built
//!   (`Update::split_for_old_speaker`), not here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::wire::{AsPath, Attr, AttrValue, Community, Segment, SegmentType};

use super::attrs::{PathAttrs, RouteNextHop};

/// Where a route came from, as export sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Source {
    Local,
    Ibgp,
    Ebgp,
}

/// The peer routes are exported to.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub local_as: u32,
    pub peer_as: u32,
    pub ebgp: bool,
    pub send_med: bool,
    pub next_hop_v4: Ipv4Addr,
    pub next_hop_v6: Ipv6Addr,
    pub default_local_pref: u32,
}

impl Target {
    pub fn next_hop_self(&self, v6: bool) -> RouteNextHop {
        if v6 {
            RouteNextHop::V6 {
                global: self.next_hop_v6,
                link_local: None,
            }
        } else {
            RouteNextHop::V4(self.next_hop_v4)
        }
    }
}

/// The next-hop-self addresses for a session whose local end is `local`.
pub(crate) fn self_addresses(
    local: IpAddr,
    v4: Option<Ipv4Addr>,
    v6: Option<Ipv6Addr>,
    router_id: Ipv4Addr,
) -> (Ipv4Addr, Ipv6Addr) {
    let nh4 = v4.unwrap_or(match local {
        IpAddr::V4(a) => a,
        // No IPv4 address on an IPv6 session: the router id is the best stand-in.
        IpAddr::V6(a) => a.to_ipv4_mapped().unwrap_or(router_id),
    });
    let nh6 = v6.unwrap_or(match local {
        IpAddr::V6(a) => a,
        // IPv6 routes over an IPv4 session: the IPv4-mapped address, as FRR sends.
        IpAddr::V4(a) => a.to_ipv6_mapped(),
    });
    (nh4, nh6)
}

fn prepend(path: &AsPath, asn: u32) -> AsPath {
    let mut segments: Vec<Segment> = path
        .segments
        .iter()
        .filter(|s| !s.kind.is_confed())
        .cloned()
        .collect();
    match segments.first_mut() {
        Some(s) if s.kind == SegmentType::Sequence && s.asns.len() < 255 => s.asns.insert(0, asn),
        _ => segments.insert(0, Segment::new(SegmentType::Sequence, [asn])),
    }
    AsPath { segments }
}

/// Whether the AS_PATH of `attrs` holds `asn` (any segment), read from the stored wire bytes
/// (4-octet encoding) without decoding: the eBGP sender-side loop check, done per peer
/// before the per-class export cache (`export` itself does not depend on the peer's AS).
pub(crate) fn path_holds(attrs: &PathAttrs, asn: u32) -> bool {
    let w = attrs.wire();
    let mut pos = 0;
    while pos + 3 <= w.len() {
        let flags = w[pos];
        let ty = w[pos + 1];
        let (hdr, len) = if flags & crate::wire::flag::EXTENDED_LENGTH != 0 {
            if pos + 4 > w.len() {
                return false;
            }
            (4, usize::from(u16::from_be_bytes([w[pos + 2], w[pos + 3]])))
        } else {
            (3, usize::from(w[pos + 2]))
        };
        let Some(v) = w.get(pos + hdr..pos + hdr + len) else {
            return false;
        };
        if ty == crate::wire::attr_type::AS_PATH {
            let mut i = 0;
            while i + 2 <= v.len() {
                let n = usize::from(v[i + 1]);
                let Some(asns) = v.get(i + 2..i + 2 + 4 * n) else {
                    return false;
                };
                if asns
                    .chunks_exact(4)
                    .any(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) == asn)
                {
                    return true;
                }
                i += 2 + 4 * n;
            }
            return false;
        }
        pos += hdr + len;
    }
    false
}

/// The outgoing attributes of a route with `attrs` from `src` toward `target`, or `None` when
/// the rules above forbid sending it. `v6`: the route is IPv6 (for next hop self). The
/// sender-side loop check (`path_holds`) is the caller's: the result does not depend on
/// `target.peer_as`, so peers that differ only in their AS share it.
pub(crate) fn export(
    attrs: &PathAttrs,
    src: Source,
    target: &Target,
    v6: bool,
) -> Option<PathAttrs> {
    if src == Source::Ibgp && !target.ebgp {
        return None;
    }
    let decoded = attrs.attrs();
    let mut out = Vec::with_capacity(decoded.len() + 2);
    let mut have_path = false;
    for a in decoded {
        match &a.value {
            AttrValue::Communities(cs) => {
                if cs.contains(&Community::NO_ADVERTISE) {
                    return None;
                }
                if target.ebgp
                    && (cs.contains(&Community::NO_EXPORT)
                        || cs.contains(&Community::NO_EXPORT_SUBCONFED))
                {
                    return None;
                }
                out.push(a);
            }
            AttrValue::AsPath(p) => {
                have_path = true;
                if target.ebgp {
                    out.push(Attr {
                        flags: a.flags,
                        value: AttrValue::AsPath(prepend(p, target.local_as)),
                    });
                } else {
                    out.push(a);
                }
            }
            AttrValue::MultiExitDisc(_) => {
                if !target.ebgp || src == Source::Local || target.send_med {
                    out.push(a);
                }
            }
            AttrValue::LocalPref(_)
            | AttrValue::OriginatorId(_)
            | AttrValue::ClusterList(_)
            | AttrValue::As4Path(_)
            | AttrValue::As4Aggregator(_)
            | AttrValue::NextHop(_)
            | AttrValue::MpReach(_)
            | AttrValue::MpUnreach(_) => {}
            AttrValue::Unknown { .. } => {
                if src == Source::Local {
                    out.push(a);
                } else if let Some(a) = a.for_readvertisement() {
                    out.push(a);
                }
            }
            _ => out.push(a),
        }
    }
    if !have_path {
        let path = if target.ebgp {
            AsPath::sequence([target.local_as])
        } else {
            AsPath::default()
        };
        out.push(Attr::new(AttrValue::AsPath(path)));
    }
    if !target.ebgp {
        out.push(Attr::new(AttrValue::LocalPref(
            attrs.local_pref().unwrap_or(target.default_local_pref),
        )));
    }
    // Ascending type order, as FRR and BIRD send (stable: equal codes cannot occur).
    out.sort_by_key(Attr::type_code);
    let next_hop = match attrs.next_hop() {
        Some(nh) if !target.ebgp => nh,
        _ => target.next_hop_self(v6),
    };
    Some(PathAttrs::new(&out, Some(next_hop)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Community, Origin};

    /// The wire-byte loop check agrees with the decoded path: every segment kind, a path long
    /// enough for the Extended Length form, and attributes before and after AS_PATH.
    #[test]
    fn path_holds_reads_every_segment_of_the_stored_path() {
        let long: Vec<u32> = (1..=100).map(|i| 4_200_000_000 + i).collect();
        let path = AsPath {
            segments: vec![
                Segment::new(SegmentType::Sequence, long.clone()),
                Segment::new(SegmentType::Set, [64512, 64513]),
                Segment::new(SegmentType::ConfedSequence, [65100]),
            ],
        };
        let attrs = PathAttrs::new(
            &[
                Attr::new(AttrValue::Origin(Origin::Igp)),
                Attr::new(AttrValue::AsPath(path.clone())),
                Attr::new(AttrValue::Communities(vec![Community::new(65000, 1)])),
            ],
            None,
        );
        for asn in [long[0], long[99], 64513, 65100, 65000, 1, 4_200_000_101] {
            assert_eq!(
                path_holds(&attrs, asn),
                path.asns().any(|n| n == asn),
                "AS{asn}"
            );
        }
        let no_path = PathAttrs::new(&[Attr::new(AttrValue::Origin(Origin::Igp))], None);
        assert!(!path_holds(&no_path, 65000));
    }
}
