//! Maglev lookup tables (Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load
//! Balancer", NSDI 2016, §3.4, Pseudocode 1): each backend gets a permutation of the table's
//! slots from two hashes of its name, and backends take turns claiming their next free slot
//! until the table is full. Owns table-size validation and the (stable) hash; pure, no I/O.
//!
//! Every node must compute the same table for the same backends (a flow reaching any node picks
//! the same backend) and an agent upgrade must not reshuffle established flows, so the hash is
//! defined here (FNV-1a 64 + the murmur3 finaliser) rather than taken from std, whose `Hasher`
//! output may change between Rust releases.

use crate::plan::BackendAddr;

/// Default table size (prime), as Cilium's `--bpf-lb-maglev-table-size`.
pub const DEFAULT_TABLE_SIZE: u32 = 16381;
/// Largest table size accepted (prime), as Cilium.
pub const MAX_TABLE_SIZE: u32 = 131071;

/// Seeds of the two hashes (offset, skip). Part of the table's stable definition.
const SEED_OFFSET: u64 = 0x4d61_676c_6576_3031; // "Maglev01"
const SEED_SKIP: u64 = 0x4d61_676c_6576_3032; // "Maglev02"

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaglevError {
    #[error("Maglev table size {0} is not a prime number")]
    NotPrime(u32),
    #[error("Maglev table size {0} is larger than the maximum {MAX_TABLE_SIZE}")]
    TooLarge(u32),
    #[error("Maglev weights: {weights} weights given for {backends} backends")]
    WeightCount { weights: usize, backends: usize },
}

/// Checks that `m` is usable as a table size: prime and at most [`MAX_TABLE_SIZE`].
pub fn validate_table_size(m: u32) -> Result<(), MaglevError> {
    if m > MAX_TABLE_SIZE {
        return Err(MaglevError::TooLarge(m));
    }
    if !is_prime(m) {
        return Err(MaglevError::NotPrime(m));
    }
    Ok(())
}

fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u32;
    while d.saturating_mul(d) <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

/// The name a backend is hashed by: `ip:port` (`[v6]:port`), the same on every node.
pub fn backend_name(b: &BackendAddr) -> String {
    std::net::SocketAddr::new(b.addr, b.port).to_string()
}

/// Lookup table for `backends` (index i of the result = slot i, value = index into
/// `backends`). Empty when there are no backends.
pub fn lookup_table(backends: &[BackendAddr], table_size: u32) -> Result<Vec<u32>, MaglevError> {
    let names: Vec<String> = backends.iter().map(backend_name).collect();
    let refs: Vec<&[u8]> = names.iter().map(|n| n.as_bytes()).collect();
    populate(&refs, None, table_size)
}

/// Maglev population over backend names, optionally weighted. A backend with weight w claims
/// w/max(weights) slots per round (credit carried over), so equal weights give exactly the
/// paper's unweighted table and slot counts are proportional to weight; weight 0 gets no slot.
/// Empty result when there is no backend with a non-zero weight.
pub fn populate(
    names: &[&[u8]],
    weights: Option<&[u32]>,
    table_size: u32,
) -> Result<Vec<u32>, MaglevError> {
    validate_table_size(table_size)?;
    if let Some(w) = weights {
        if w.len() != names.len() {
            return Err(MaglevError::WeightCount {
                weights: w.len(),
                backends: names.len(),
            });
        }
    }
    let weight = |i: usize| weights.map_or(1u64, |w| u64::from(w[i]));
    let max_weight = (0..names.len()).map(weight).max().unwrap_or(0);
    if max_weight == 0 {
        return Ok(Vec::new());
    }

    let m = u64::from(table_size);
    // Per backend: current permutation position and skip. permutation[i][j] =
    // (offset + j * skip) mod M; M prime and 1 <= skip < M make it visit every slot.
    let mut pos: Vec<u64> = Vec::with_capacity(names.len());
    let mut skip: Vec<u64> = Vec::with_capacity(names.len());
    for name in names {
        pos.push(hash64(SEED_OFFSET, name) % m);
        skip.push(if m > 1 {
            hash64(SEED_SKIP, name) % (m - 1) + 1
        } else {
            1
        });
    }

    const EMPTY: u32 = u32::MAX;
    let mut entry = vec![EMPTY; table_size as usize];
    let mut credit = vec![0u64; names.len()];
    let mut filled = 0usize;
    let total = table_size as usize;
    'rounds: loop {
        for i in 0..names.len() {
            credit[i] += weight(i);
            while credit[i] >= max_weight {
                credit[i] -= max_weight;
                // Next free slot in backend i's permutation. Terminates: the permutation
                // covers all M slots and at least one is free while filled < M.
                let mut c = pos[i] as usize;
                while entry[c] != EMPTY {
                    pos[i] = (pos[i] + skip[i]) % m;
                    c = pos[i] as usize;
                }
                entry[c] = i as u32;
                pos[i] = (pos[i] + skip[i]) % m;
                filled += 1;
                if filled == total {
                    break 'rounds;
                }
            }
        }
    }
    Ok(entry)
}

/// FNV-1a 64 over `seed` (8 bytes, little endian) then `data`, finished with murmur3's fmix64
/// so that the low bits (used modulo M) depend on every input bit.
fn hash64(seed: u64, data: &[u8]) -> u64 {
    fmix64(fnv1a64(&seed.to_le_bytes(), data))
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a64(prefix: &[u8], data: &[u8]) -> u64 {
    let mut h = FNV_OFFSET;
    for &b in prefix.iter().chain(data) {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::net::{IpAddr, Ipv4Addr};

    fn names(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("10.1.{}.{}:8080", i / 250, i % 250))
            .collect()
    }

    fn table(names: &[String], m: u32) -> Vec<u32> {
        let refs: Vec<&[u8]> = names.iter().map(|n| n.as_bytes()).collect();
        populate(&refs, None, m).unwrap()
    }

    fn counts(t: &[u32], n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for &i in t {
            c[i as usize] += 1;
        }
        c
    }

    #[test]
    fn fnv1a64_matches_published_vectors() {
        // Test vectors from the FNV reference (Fowler/Noll/Vo, draft-eastlake-fnv): "" and "a".
        assert_eq!(fnv1a64(b"", b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"", b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"", b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn table_size_must_be_prime_and_at_most_131071() {
        for ok in [2, 3, 251, 16381, 65521, 131071] {
            assert_eq!(validate_table_size(ok), Ok(()), "{ok}");
        }
        for bad in [0, 1, 4, 16383, 65536, 131070] {
            assert_eq!(validate_table_size(bad), Err(MaglevError::NotPrime(bad)));
        }
        assert_eq!(
            validate_table_size(131101), // prime, but above the maximum
            Err(MaglevError::TooLarge(131101))
        );
        assert_eq!(
            populate(&[b"a"], None, 16383),
            Err(MaglevError::NotPrime(16383))
        );
    }

    #[test]
    fn every_slot_filled_and_backends_balanced_within_one() {
        // Paper §3.4: with equal weights each backend gets floor(M/N) or ceil(M/N) slots.
        for n in [1, 2, 3, 7, 100, 1000] {
            let t = table(&names(n), DEFAULT_TABLE_SIZE);
            assert_eq!(t.len(), DEFAULT_TABLE_SIZE as usize);
            assert!(t.iter().all(|&i| (i as usize) < n));
            let c = counts(&t, n);
            let (min, max) = (*c.iter().min().unwrap(), *c.iter().max().unwrap());
            assert!(max - min <= 1, "n={n}: min {min} max {max}");
        }
    }

    #[test]
    fn deterministic_for_the_same_backend_set() {
        let a = table(&names(50), 251);
        let b = table(&names(50), 251);
        assert_eq!(a, b);
        // A different backend set gives a different table.
        assert_ne!(a, table(&names(51), 251));
    }

    #[test]
    fn removing_one_backend_moves_about_one_nth_of_the_slots() {
        // Paper §3.4 / §5.3: Maglev is near-minimal, not minimal: the removed backend's 1/N of
        // the slots must move, plus a small cascade among the others that shrinks as M/N grows.
        // Measured here (same numbers with SHA-256 in place of our hash, so it is the algorithm):
        // N=100, M=16381: 2.3/N changed; M=131071: 1.3/N.
        for (n, m, max_multiple) in [(100, DEFAULT_TABLE_SIZE, 3.0), (100, MAX_TABLE_SIZE, 1.6)] {
            let all = names(n);
            let before = table(&all, m);
            let mut fewer = all.clone();
            let gone = fewer.remove(37);
            let after = table(&fewer, m);
            let changed = (0..m as usize)
                .filter(|&s| all[before[s] as usize] != fewer[after[s] as usize])
                .count();
            let owned_by_gone = before.iter().filter(|&&i| all[i as usize] == gone).count();
            let multiple = changed as f64 / f64::from(m) * n as f64;
            println!(
                "N={n} M={m}: {changed} slots changed ({multiple:.2}/N), removed backend owned {owned_by_gone}"
            );
            assert!(changed >= owned_by_gone);
            assert!(
                multiple >= 0.9 && multiple < max_multiple,
                "{multiple:.2}/N changed"
            );
            // Adding it back restores the original table exactly (determinism).
            assert_eq!(table(&all, m), before);
        }
    }

    #[test]
    fn weights_scale_slot_counts_and_equal_weights_equal_unweighted() {
        let ns = names(3);
        let refs: Vec<&[u8]> = ns.iter().map(|n| n.as_bytes()).collect();
        let unweighted = populate(&refs, None, 16381).unwrap();
        let equal = populate(&refs, Some(&[5, 5, 5]), 16381).unwrap();
        assert_eq!(unweighted, equal);

        let t = populate(&refs, Some(&[1, 3, 0]), 16381).unwrap();
        let c = counts(&t, 3);
        assert_eq!(c[2], 0, "weight 0 gets no slot");
        let ratio = c[1] as f64 / c[0] as f64;
        assert!((ratio - 3.0).abs() < 0.01, "counts {c:?}");

        assert_eq!(
            populate(&refs, Some(&[0, 0, 0]), 251).unwrap(),
            Vec::<u32>::new()
        );
        assert_eq!(
            populate(&refs, Some(&[1]), 251),
            Err(MaglevError::WeightCount {
                weights: 1,
                backends: 3
            })
        );
    }

    #[test]
    fn lookup_table_indexes_backend_addrs() {
        let backends: Vec<BackendAddr> = (1..=4)
            .map(|i| BackendAddr {
                addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)),
                port: 80,
                local: false,
            })
            .collect();
        assert_eq!(backend_name(&backends[0]), "10.0.0.1:80");
        let t = lookup_table(&backends, 251).unwrap();
        let mut per: BTreeMap<u32, usize> = BTreeMap::new();
        for i in &t {
            *per.entry(*i).or_default() += 1;
        }
        assert_eq!(per.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        // `local` is not part of the name: the table is the same on every node.
        let mut flipped = backends.clone();
        flipped[2].local = true;
        assert_eq!(lookup_table(&flipped, 251).unwrap(), t);
        assert!(lookup_table(&[], 251).unwrap().is_empty());
    }
}
