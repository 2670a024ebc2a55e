//! The writer's allocators: power-of-two regions of the slot array (a buddy allocator) and
//! 32-bit ids (backends, services). Both hold a released region or id back ("cooling") until no
//! BPF program can still be using it: one second after its release, or at once after an RCU
//! grace period that started after it (`bpf_sys::wait_for_programs`). Also a fast hasher for the
//! writer's big in-memory indexes.

use std::collections::{BTreeSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

/// How long a released region or id stays unused before it is handed out again.
pub const COOL_DOWN: Duration = Duration::from_secs(1);

/// A block of `1 << order` slots starting at `off` (a multiple of its size).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Block {
    pub off: u32,
    pub order: u8,
}

impl Block {
    pub fn len(self) -> usize {
        1usize << self.order
    }
    pub fn range(self) -> std::ops::Range<usize> {
        self.off as usize..self.off as usize + self.len()
    }
}

/// The order of the smallest block holding `n` slots (`n` >= 1).
pub fn order_for(n: usize) -> u8 {
    n.max(1).next_power_of_two().trailing_zeros() as u8
}

/// Items released at some instant, waiting out their cool-down.
#[derive(Debug)]
struct Cooling<T> {
    q: VecDeque<(Instant, T)>,
}

impl<T> Default for Cooling<T> {
    fn default() -> Self {
        Cooling { q: VecDeque::new() }
    }
}

impl<T> Cooling<T> {
    fn push(&mut self, now: Instant, t: T) {
        self.q.push_back((now, t));
    }
    /// Items released before `before`.
    fn ripe(&mut self, before: Instant, mut f: impl FnMut(T)) {
        while self.q.front().is_some_and(|(t, _)| *t <= before) {
            if let Some((_, x)) = self.q.pop_front() {
                f(x);
            }
        }
    }
    fn len(&self) -> usize {
        self.q.len()
    }
}

/// Buddy allocator over `len` slots.
#[derive(Debug)]
pub struct Buddy {
    len: u32,
    /// Free blocks by order.
    free: Vec<BTreeSet<u32>>,
    cooling: Cooling<Block>,
    in_use: usize,
}

/// The largest aligned power-of-two blocks that tile `[0, len)`.
fn tiles(len: u32) -> Vec<Block> {
    let mut out = Vec::new();
    let mut off: u64 = 0;
    while off < len as u64 {
        let mut order = 31u8;
        while order > 0
            && (!off.is_multiple_of(1u64 << order) || off + (1u64 << order) > len as u64)
        {
            order -= 1;
        }
        out.push(Block {
            off: off as u32,
            order,
        });
        off += 1u64 << order;
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdoptError {
    #[error("region {off}+{len} is not aligned to its size, or lies past the array's {cap} slots")]
    Misplaced { off: u32, len: usize, cap: u32 },
    #[error("regions {a}+{alen} and {b}+{blen} overlap")]
    Overlap {
        a: u32,
        alen: usize,
        b: u32,
        blen: usize,
    },
}

impl Buddy {
    #[cfg(test)]
    pub fn new(len: u32) -> Self {
        let mut b = Buddy {
            len,
            free: vec![BTreeSet::new(); 32],
            cooling: Cooling::default(),
            in_use: 0,
        };
        for t in tiles(len) {
            b.free[t.order as usize].insert(t.off);
        }
        b
    }

    /// An allocator whose `used` blocks (found in the maps) are taken and all else is free.
    pub fn with_used(len: u32, mut used: Vec<Block>) -> Result<Self, AdoptError> {
        used.sort();
        for u in &used {
            if !(u.off as u64).is_multiple_of(u.len() as u64)
                || u.off as u64 + u.len() as u64 > len as u64
            {
                return Err(AdoptError::Misplaced {
                    off: u.off,
                    len: u.len(),
                    cap: len,
                });
            }
        }
        for w in used.windows(2) {
            if w[0].off as usize + w[0].len() > w[1].off as usize {
                return Err(AdoptError::Overlap {
                    a: w[0].off,
                    alen: w[0].len(),
                    b: w[1].off,
                    blen: w[1].len(),
                });
            }
        }
        let mut b = Buddy {
            len,
            free: vec![BTreeSet::new(); 32],
            cooling: Cooling::default(),
            in_use: used.iter().map(|u| u.len()).sum(),
        };
        for t in tiles(len) {
            b.carve(t, &used);
        }
        Ok(b)
    }

    /// Frees the parts of `blk` not covered by `used` (sorted, inside or overlapping blk).
    fn carve(&mut self, blk: Block, used: &[Block]) {
        let lo = used.partition_point(|u| (u.off as usize + u.len()) <= blk.off as usize);
        let hi = used.partition_point(|u| (u.off as usize) < blk.off as usize + blk.len());
        let inside = &used[lo..hi];
        if inside.is_empty() {
            self.free[blk.order as usize].insert(blk.off);
            return;
        }
        if inside.len() == 1 && inside[0] == blk {
            return;
        }
        if blk.order == 0 {
            return; // covered by a used block
        }
        let half = blk.order - 1;
        self.carve(
            Block {
                off: blk.off,
                order: half,
            },
            inside,
        );
        self.carve(
            Block {
                off: blk.off + (1u32 << half),
                order: half,
            },
            inside,
        );
    }

    pub fn capacity(&self) -> u32 {
        self.len
    }

    pub fn in_use(&self) -> usize {
        self.in_use
    }

    pub fn cooling(&self) -> usize {
        self.cooling.len()
    }

    /// A free block of `order`, or None when none is free (see [`Buddy::ripen`]).
    pub fn alloc(&mut self, order: u8) -> Option<Block> {
        let o = order as usize;
        let k = (o..self.free.len()).find(|k| !self.free[*k].is_empty())?;
        let off = self.free[k].pop_first()?;
        for j in (o..k).rev() {
            self.free[j].insert(off + (1u32 << j));
        }
        self.in_use += 1 << o;
        Some(Block { off, order })
    }

    /// Returns a block nothing ever pointed at (no cool-down needed).
    pub fn free_now(&mut self, b: Block) {
        self.in_use -= b.len();
        self.insert_free(b);
    }

    /// Releases a block programs may still read: reusable after the cool-down.
    pub fn release(&mut self, now: Instant, b: Block) {
        self.in_use -= b.len();
        self.cooling.push(now, b);
    }

    /// Makes blocks released before `before` allocatable.
    pub fn ripen(&mut self, before: Instant) {
        let mut ripe = Vec::new();
        self.cooling.ripe(before, |b| ripe.push(b));
        for b in ripe {
            self.insert_free(b);
        }
    }

    fn insert_free(&mut self, mut b: Block) {
        while (b.order as usize) + 1 < self.free.len() {
            let buddy = b.off ^ (1u32 << b.order);
            if !self.free[b.order as usize].remove(&buddy) {
                break;
            }
            b.off = b.off.min(buddy);
            b.order += 1;
        }
        self.free[b.order as usize].insert(b.off);
    }
}

/// 32-bit ids from 1 up to `limit` (exclusive); 0 is never handed out.
#[derive(Debug)]
pub struct Ids {
    next: u32,
    limit: u32,
    ripe: Vec<u32>,
    cooling: Cooling<u32>,
}

impl Ids {
    #[cfg(test)]
    pub fn new(limit: u32) -> Self {
        Ids {
            next: 1,
            limit,
            ripe: Vec::new(),
            cooling: Cooling::default(),
        }
    }

    /// Ids after adoption: `used` are taken, every other one below the highest is free.
    pub fn with_used(limit: u32, used: &[u32]) -> Self {
        let max = used.iter().copied().max().unwrap_or(0);
        let mut taken = vec![false; max as usize + 1];
        for u in used {
            taken[*u as usize] = true;
        }
        let ripe = (1..max).rev().filter(|i| !taken[*i as usize]).collect();
        Ids {
            next: max + 1,
            limit,
            ripe,
            cooling: Cooling::default(),
        }
    }

    pub fn alloc(&mut self) -> Option<u32> {
        if let Some(id) = self.ripe.pop() {
            return Some(id);
        }
        if self.next >= self.limit {
            return None;
        }
        self.next += 1;
        Some(self.next - 1)
    }

    /// Returns an id nothing ever pointed at.
    pub fn free_now(&mut self, id: u32) {
        self.ripe.push(id);
    }

    /// Releases an id programs or flows may still use: reusable after the cool-down.
    pub fn release(&mut self, now: Instant, id: u32) {
        self.cooling.push(now, id);
    }

    pub fn ripen(&mut self, before: Instant) {
        let ripe = &mut self.ripe;
        self.cooling.ripe(before, |id| ripe.push(id));
    }

    pub fn cooling(&self) -> usize {
        self.cooling.len()
    }
}

/// A small Fx-style hasher with a folded multiply: a fast, non-cryptographic hash for in-memory indexes keyed by data we
/// produced ourselves (addresses, ports), where HashDoS does not apply.
#[derive(Debug, Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    /// A folded multiply (as foldhash/ahash): the 128-bit product's halves xored, so every
    /// input bit reaches the low bits too (Fx's plain multiply only carries upwards, which
    /// made IPv4-mapped addresses, varying in the top of their last word, collide).
    #[inline]
    fn add(&mut self, w: u64) {
        let r = ((self.hash ^ w) as u128).wrapping_mul(SEED as u128);
        self.hash = (r as u64) ^ ((r >> 64) as u64);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut c = bytes.chunks_exact(8);
        for w in &mut c {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            self.add(u64::from_le_bytes(b));
        }
        let r = c.remainder();
        if !r.is_empty() {
            let mut b = [0u8; 8];
            b[..r.len()].copy_from_slice(r);
            self.add(u64::from_le_bytes(b));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.hash
    }
}

pub type FxBuild = BuildHasherDefault<FxHasher>;
pub type FxHashMap<K, V> = std::collections::HashMap<K, V, FxBuild>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buddy_splits_merges_and_never_overlaps() {
        let mut b = Buddy::new(64);
        let x = b.alloc(4).unwrap();
        let y = b.alloc(4).unwrap();
        let z = b.alloc(5).unwrap();
        assert_eq!(b.in_use(), 64);
        assert!(b.alloc(0).is_none(), "full");
        for (p, q) in [(x, y), (x, z), (y, z)] {
            assert!(p.range().end <= q.range().start || q.range().end <= p.range().start);
        }
        b.free_now(x);
        b.free_now(y);
        // x and y were buddies: merged back into one order-5 block.
        assert_eq!(b.alloc(5).map(|b| b.order), Some(5));
    }

    #[test]
    fn released_blocks_cool_down_before_reuse() {
        let mut b = Buddy::new(16);
        let x = b.alloc(4).unwrap();
        let t = Instant::now();
        b.release(t, x);
        assert!(b.alloc(0).is_none(), "a cooling block was handed out");
        assert_eq!(b.cooling(), 1);
        b.ripen(t);
        assert_eq!(b.alloc(4), Some(x));
    }

    #[test]
    fn adopted_regions_stay_taken_and_the_rest_is_free() {
        let used = vec![
            Block { off: 16, order: 4 },
            Block { off: 3, order: 0 },
            Block { off: 64, order: 6 },
        ];
        let mut b = Buddy::with_used(200, used.clone()).unwrap();
        assert_eq!(b.in_use(), 16 + 1 + 64);
        let mut got = Vec::new();
        while let Some(x) = b.alloc(0) {
            got.push(x.off);
        }
        assert_eq!(got.len(), 200 - 81);
        for g in got {
            assert!(
                !used.iter().any(|u| u.range().contains(&(g as usize))),
                "{g}"
            );
        }
        assert!(matches!(
            Buddy::with_used(64, vec![Block { off: 8, order: 4 }]),
            Err(AdoptError::Misplaced { .. })
        ));
        assert!(matches!(
            Buddy::with_used(
                64,
                vec![Block { off: 0, order: 4 }, Block { off: 4, order: 2 }]
            ),
            Err(AdoptError::Overlap { .. })
        ));
    }

    #[test]
    fn ids_skip_zero_reuse_after_cool_down_and_respect_the_limit() {
        let mut ids = Ids::new(4);
        assert_eq!(
            (ids.alloc(), ids.alloc(), ids.alloc()),
            (Some(1), Some(2), Some(3))
        );
        assert_eq!(ids.alloc(), None);
        let t = Instant::now();
        ids.release(t, 2);
        assert_eq!(ids.alloc(), None);
        ids.ripen(t);
        assert_eq!(ids.alloc(), Some(2));
        let mut a = Ids::with_used(100, &[5, 2]);
        let got: Vec<u32> = (0..4).filter_map(|_| a.alloc()).collect();
        assert_eq!(got, vec![1, 3, 4, 6]);
    }

    #[test]
    fn hasher_keeps_ipv4_mapped_addresses_and_ports_apart() {
        // 10.99.x.y:1024..1039 (the shape that collided with a plain Fx multiply).
        let mut seen = std::collections::HashSet::new();
        for n in 0u32..200_000 {
            let mut a = [0u8; 16];
            a[10] = 0xff;
            a[11] = 0xff;
            a[12..].copy_from_slice(&(0x0a63_0000 + (n % 65536)).to_be_bytes());
            let port = 1024 + (n / 65536) as u16;
            let mut h = FxHasher::default();
            std::hash::Hash::hash(&(a, port), &mut h);
            seen.insert(h.finish());
        }
        assert_eq!(seen.len(), 200_000, "hash collisions");
    }

    #[test]
    fn order_for_rounds_up_to_a_power_of_two() {
        assert_eq!(
            [1, 2, 3, 10, 16, 17, 16381].map(order_for),
            [0, 1, 2, 4, 4, 5, 14]
        );
    }
}
