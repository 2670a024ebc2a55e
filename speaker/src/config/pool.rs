//! `bgp-communities`, `address-pools` (with their `bgp-advertisements`) and `bfd-profiles`, with
//! MetalLB v0.12's rules: pool names unique, protocol bgp or layer2, addresses as CIDRs or
//! `a-b` ranges that never overlap, no advertisements on layer2 pools, aggregation lengths no
//! shorter than the pool's prefixes, communities literal or aliases, BFD value ranges.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde_yaml::{Mapping, Value};

use super::community::Community;
use super::error::{Diags, FieldPath};
use super::raw::{RawAdvertisement, RawBfdProfile, RawPool};
use super::scalar;
use super::types::{BfdProfile, BgpAdvertisement, Pool, Protocol};

/// `bgp-communities`: alias -> value.
pub fn communities(d: &mut Diags, path: &FieldPath, m: &Mapping) -> BTreeMap<String, Community> {
    let mut out = BTreeMap::new();
    for (k, v) in m {
        let Some(name) = scalar::string(d, path, k, "an alias name") else {
            continue;
        };
        let kp = path.key(&name);
        let Some(text) = scalar::string(d, &kp, v, "a community like 65535:65281") else {
            continue;
        };
        match Community::parse(&text) {
            Ok(c) => {
                out.insert(name, c);
            }
            Err(why) => d.error(&kp, why),
        }
    }
    out
}

/// Parse a pool address: a CIDR (host bits are dropped, as Go's net.ParseCIDR does) or an
/// inclusive `start-end` range, summarized into the fewest CIDRs.
pub fn parse_addresses(s: &str) -> Result<Vec<IpNet>, String> {
    if let Some((a, b)) = s.split_once('-') {
        let start: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("invalid IP range {s:?}: invalid start IP {:?}", a.trim()))?;
        let end: IpAddr = b
            .trim()
            .parse()
            .map_err(|_| format!("invalid IP range {s:?}: invalid end IP {:?}", b.trim()))?;
        return match (start, end) {
            (IpAddr::V4(x), IpAddr::V4(y)) if x <= y => Ok(summarize(
                u128::from(u32::from(x)),
                u128::from(u32::from(y)),
                32,
            )
            .into_iter()
            .map(|(n, len)| IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::from(n as u32), len)))
            .collect()),
            (IpAddr::V6(x), IpAddr::V6(y)) if x <= y => {
                Ok(summarize(u128::from(x), u128::from(y), 128)
                    .into_iter()
                    .map(|(n, len)| IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::from(n), len)))
                    .collect())
            }
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => Err(format!(
                "invalid IP range {s:?}: start IP {start} is after the end IP {end}"
            )),
            _ => Err(format!(
                "invalid IP range {s:?}: start and end are of different address families"
            )),
        };
    }
    match s.trim().parse::<IpNet>() {
        Ok(n) => Ok(vec![n.trunc()]),
        Err(_) if s.trim().parse::<IpAddr>().is_ok() => Err(format!(
            "invalid CIDR {s:?}: a prefix length is required (write {}/{} for one address)",
            s.trim(),
            if s.contains(':') { 128 } else { 32 }
        )),
        Err(_) => Err(format!(
            "invalid CIDR {s:?}: expected a prefix like 192.168.1.0/24 or a range like 192.168.1.10-192.168.1.20"
        )),
    }
}

/// The fewest aligned blocks covering `start..=end` in a `bits`-wide space: (network, length).
fn summarize(mut start: u128, end: u128, bits: u8) -> Vec<(u128, u8)> {
    let mut out = Vec::new();
    loop {
        // The largest block aligned at `start` ...
        let mut host_bits = if start == 0 {
            u32::from(bits)
        } else {
            start.trailing_zeros().min(u32::from(bits))
        };
        // ... that does not run past `end`.
        while host_bits > 0 {
            let fits = if host_bits >= 128 {
                end == u128::MAX // and start == 0, since all its bits are host bits
            } else {
                start
                    .checked_add((1u128 << host_bits) - 1)
                    .is_some_and(|last| last <= end)
            };
            if fits {
                break;
            }
            host_bits -= 1;
        }
        out.push((start, bits - host_bits as u8));
        let size_minus_1 = if host_bits == 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        match start.checked_add(size_minus_1) {
            Some(last) if last < end => start = last + 1,
            _ => return out,
        }
    }
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Validate all pools. `ibgp_peers` / families tell warnings whether an advertisement can ever
/// be sent.
pub fn pools(
    d: &mut Diags,
    base: &FieldPath,
    raw: &[RawPool],
    communities: &BTreeMap<String, Community>,
) -> Vec<Option<Pool>> {
    let mut out: Vec<Option<Pool>> = Vec::new();
    let mut names: Vec<(String, usize)> = Vec::new();
    let mut all_cidrs: Vec<(IpNet, FieldPath, String)> = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let path = base.index(i);
        let errors_before = d.errors.len();
        let name = match &r.name {
            None => {
                d.error(&path.key("name"), "missing: every pool needs a name");
                None
            }
            Some(v) => scalar::string(d, &path.key("name"), v, "a pool name").and_then(|n| {
                if n.is_empty() {
                    d.error(&path.key("name"), "must not be empty");
                    None
                } else if let Some((_, j)) = names.iter().find(|(m, _)| *m == n) {
                    d.error(
                        &path.key("name"),
                        format!("duplicate definition of pool {n:?} (also {base}[{j}])"),
                    );
                    None
                } else {
                    names.push((n.clone(), i));
                    Some(n)
                }
            }),
        };
        let protocol = match &r.protocol {
            None => {
                d.error(
                    &path.key("protocol"),
                    "missing: address pool is missing the protocol field (bgp or layer2)",
                );
                None
            }
            Some(v) => {
                match scalar::string(d, &path.key("protocol"), v, "bgp or layer2").as_deref() {
                    Some("bgp") => Some(Protocol::Bgp),
                    Some("layer2") => Some(Protocol::Layer2),
                    Some(other) => {
                        d.error(
                            &path.key("protocol"),
                            format!("unknown protocol {other:?}: expected bgp or layer2"),
                        );
                        None
                    }
                    None => None,
                }
            }
        };

        // Addresses, each with the CIDRs it stands for.
        let mut per_address: Vec<(usize, String, Vec<IpNet>)> = Vec::new();
        let ap = path.key("addresses");
        match r.addresses.as_deref() {
            None | Some([]) => d.error(&ap, "pool has no prefixes defined"),
            Some(list) => {
                for (j, v) in list.iter().enumerate() {
                    let jp = ap.index(j);
                    let Some(text) = scalar::string(d, &jp, v, "a CIDR or an IP range") else {
                        continue;
                    };
                    match parse_addresses(&text) {
                        Err(why) => d.error(&jp, why),
                        Ok(nets) => {
                            if let (false, [n]) = (text.contains('-'), nets.as_slice()) {
                                if text.trim().parse::<IpNet>().is_ok_and(|orig| orig != *n) {
                                    d.warn(
                                        &jp,
                                        format!("{text:?} has host bits set: it means {n}"),
                                    );
                                }
                            }
                            // One error per address, naming the first clash.
                            if let Some((m, mp, mpool)) = nets
                                .iter()
                                .find_map(|n| all_cidrs.iter().find(|(m, _, _)| overlaps(m, n)))
                            {
                                d.error(
                                    &jp,
                                    format!(
                                        "{text:?} overlaps with already defined CIDR {m} ({mp}, pool {mpool:?})"
                                    ),
                                );
                            }
                            for n in &nets {
                                all_cidrs.push((*n, jp.clone(), name.clone().unwrap_or_default()));
                            }
                            per_address.push((j, text, nets));
                        }
                    }
                }
            }
        }

        let avoid_buggy_ips = r
            .avoid_buggy_ips
            .as_ref()
            .and_then(|v| scalar::boolean(d, &path.key("avoid-buggy-ips"), v))
            .unwrap_or(false);
        let auto_assign = r
            .auto_assign
            .as_ref()
            .and_then(|v| scalar::boolean(d, &path.key("auto-assign"), v))
            .unwrap_or(true);

        let adp = path.key("bgp-advertisements");
        let raw_ads = r.bgp_advertisements.as_deref().unwrap_or_default();
        let bgp_advertisements = match protocol {
            Some(Protocol::Layer2) => {
                if !raw_ads.is_empty() {
                    d.error(
                        &adp,
                        "cannot have bgp-advertisements configuration element in a layer2 address pool",
                    );
                }
                Vec::new()
            }
            _ if raw_ads.is_empty() => vec![BgpAdvertisement::default()],
            _ => advertisements(d, &adp, raw_ads, &ap, &per_address, communities),
        };

        if d.errors.len() != errors_before {
            out.push(None);
            continue;
        }
        match (name, protocol) {
            (Some(name), Some(protocol)) => out.push(Some(Pool {
                name,
                protocol,
                cidrs: per_address.into_iter().flat_map(|(_, _, n)| n).collect(),
                avoid_buggy_ips,
                auto_assign,
                bgp_advertisements,
            })),
            _ => out.push(None),
        }
    }
    out
}

fn advertisements(
    d: &mut Diags,
    base: &FieldPath,
    raw: &[RawAdvertisement],
    addresses_path: &FieldPath,
    per_address: &[(usize, String, Vec<IpNet>)],
    communities: &BTreeMap<String, Community>,
) -> Vec<BgpAdvertisement> {
    let mut out: Vec<BgpAdvertisement> = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let path = base.index(i);
        let errors_before = d.errors.len();
        let mut ad = BgpAdvertisement::default();
        for (key, v6, slot) in [
            ("aggregation-length", false, &mut ad.aggregation_length),
            ("aggregation-length-v6", true, &mut ad.aggregation_length_v6),
        ] {
            let value = if v6 {
                r.aggregation_length_v6.as_ref()
            } else {
                r.aggregation_length.as_ref()
            };
            let Some(v) = value else { continue };
            let kp = path.key(key);
            let max = if v6 { 128 } else { 32 };
            let what = if v6 {
                "a prefix length for IPv6"
            } else {
                "a prefix length for IPv4"
            };
            let Some(len) = scalar::uint(d, &kp, v, 0, max, what) else {
                continue;
            };
            let len = len as u8;
            *slot = len;
            // MetalLB: an address whose widest CIDR is narrower than the aggregate is refused,
            // since announcing the aggregate would claim addresses outside the pool.
            for (j, text, nets) in per_address {
                let fam: Vec<&IpNet> = nets
                    .iter()
                    .filter(|n| matches!(n, IpNet::V6(_)) == v6)
                    .collect();
                let Some(widest) = fam.iter().min_by_key(|n| n.prefix_len()) else {
                    continue;
                };
                if len < widest.prefix_len() {
                    d.error(
                        &kp,
                        format!(
                            "{len} is shorter than prefix {widest} of {addresses_path}[{j}] {text:?}: the aggregate would cover addresses outside the pool"
                        ),
                    );
                }
            }
        }
        if let Some(v) = &r.localpref {
            ad.local_pref = scalar::uint(
                d,
                &path.key("localpref"),
                v,
                0,
                u64::from(u32::MAX),
                "a LOCAL_PREF value",
            )
            .map(|n| n as u32);
        }
        for (j, v) in r
            .communities
            .as_deref()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let cp = path.key("communities").index(j);
            let Some(text) = scalar::string(d, &cp, v, "a community or a bgp-communities alias")
            else {
                continue;
            };
            let c = match communities.get(&text) {
                Some(c) => *c,
                None => match Community::parse(&text) {
                    Ok(c) => c,
                    Err(why) => {
                        let hint = if text.contains(':') {
                            String::new()
                        } else {
                            " and not an alias defined in bgp-communities".to_string()
                        };
                        d.error(&cp, format!("{why}{hint}"));
                        continue;
                    }
                },
            };
            if ad.communities.contains(&c) {
                d.error(
                    &cp,
                    format!("duplicate definition of community {text:?} ({c})"),
                );
                continue;
            }
            ad.communities.push(c);
        }
        ad.communities.sort();
        if d.errors.len() != errors_before {
            continue;
        }
        if let Some(j) = out.iter().position(|o| *o == ad) {
            d.error(
                &path,
                format!("duplicate definition of bgp-advertisements: equal to {base}[{j}]"),
            );
            continue;
        }
        out.push(ad);
    }
    out
}

/// `bfd-profiles`, with MetalLB's value ranges.
pub fn bfd_profiles(d: &mut Diags, base: &FieldPath, raw: &[RawBfdProfile]) -> Vec<BfdProfile> {
    let mut out: Vec<BfdProfile> = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let path = base.index(i);
        let errors_before = d.errors.len();
        let name = match &r.name {
            None => {
                d.error(&path.key("name"), "missing bfd profile name");
                None
            }
            Some(v) => scalar::string(d, &path.key("name"), v, "a profile name"),
        };
        if let Some(n) = &name {
            if out.iter().any(|b| &b.name == n) {
                d.error(
                    &path.key("name"),
                    format!("found duplicate bfd profile name {n}"),
                );
            }
        }
        let mut range = |key: &str, v: &Option<Value>, min: u64, max: u64, what: &str| {
            v.as_ref()
                .and_then(|v| scalar::uint(d, &path.key(key), v, min, max, what))
                .map(|n| n as u32)
        };
        let receive_interval = range(
            "receive-interval",
            &r.receive_interval,
            10,
            60000,
            "milliseconds",
        );
        let transmit_interval = range(
            "transmit-interval",
            &r.transmit_interval,
            10,
            60000,
            "milliseconds",
        );
        let detect_multiplier = range(
            "detect-multiplier",
            &r.detect_multiplier,
            2,
            255,
            "a multiplier",
        );
        let echo_interval = range("echo-interval", &r.echo_interval, 10, 60000, "milliseconds");
        let minimum_ttl = range("minimum-ttl", &r.minimum_ttl, 1, 254, "a TTL");
        let echo_mode = r
            .echo_mode
            .as_ref()
            .and_then(|v| scalar::boolean(d, &path.key("echo-mode"), v))
            .unwrap_or(false);
        let passive_mode = r
            .passive_mode
            .as_ref()
            .and_then(|v| scalar::boolean(d, &path.key("passive-mode"), v))
            .unwrap_or(false);
        if d.errors.len() != errors_before {
            continue;
        }
        if let Some(name) = name {
            out.push(BfdProfile {
                name,
                receive_interval,
                transmit_interval,
                detect_multiplier,
                echo_interval,
                echo_mode,
                passive_mode,
                minimum_ttl,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(s: &str) -> Vec<String> {
        parse_addresses(s)
            .unwrap()
            .iter()
            .map(|n| n.to_string())
            .collect()
    }

    #[test]
    fn ranges_summarize_into_the_fewest_cidrs() {
        assert_eq!(
            nets("192.168.1.240-192.168.1.250"),
            ["192.168.1.240/29", "192.168.1.248/31", "192.168.1.250/32"]
        );
        assert_eq!(nets("10.0.0.0-10.0.0.255"), ["10.0.0.0/24"]);
        assert_eq!(nets("10.0.0.5 - 10.0.0.5"), ["10.0.0.5/32"]);
        assert_eq!(nets("0.0.0.0-255.255.255.255"), ["0.0.0.0/0"]);
        assert_eq!(
            nets("255.255.255.254-255.255.255.255"),
            ["255.255.255.254/31"]
        );
        assert_eq!(nets("fd00::-fd00::ff"), ["fd00::/120"]);
        assert_eq!(nets("fd00::1-fd00::2"), ["fd00::1/128", "fd00::2/128"]);
        assert_eq!(nets("::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), ["::/0"]);
        assert_eq!(nets("192.168.1.7/24"), ["192.168.1.0/24"]);
        assert_eq!(nets("fd00:99::/64"), ["fd00:99::/64"]);
    }

    #[test]
    fn bad_addresses_say_why() {
        let cases = [
            (
                "10.0.0.9-10.0.0.1",
                "start IP 10.0.0.9 is after the end IP 10.0.0.1",
            ),
            ("10.0.0.1-fd00::1", "different address families"),
            ("10.0.0.x-10.0.0.1", "invalid start IP \"10.0.0.x\""),
            ("10.0.0.1-", "invalid end IP \"\""),
            ("10.0.0.1", "a prefix length is required (write 10.0.0.1/32"),
            ("fd00::1", "(write fd00::1/128"),
            ("10.0.0.0/33", "expected a prefix like"),
            ("banana", "expected a prefix like"),
        ];
        for (s, want) in cases {
            let err = parse_addresses(s).expect_err(s);
            assert!(err.contains(want), "{s}: {err}");
        }
    }

    #[test]
    fn summarize_covers_exactly_the_range() {
        // Every range of a small space: the blocks are aligned, disjoint, in order, and cover it.
        for start in 0u128..64 {
            for end in start..64 {
                let blocks = summarize(start, end, 6);
                let mut next = start;
                for (net, len) in &blocks {
                    let size = 1u128 << (6 - len);
                    assert_eq!(*net, next, "{start}-{end}: {blocks:?}");
                    assert_eq!(net % size, 0, "aligned");
                    next = net + size;
                }
                assert_eq!(next, end + 1, "{start}-{end}: {blocks:?}");
            }
        }
    }
}
