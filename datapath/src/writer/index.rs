//! The writer's index of backends by (address, port): a hash table of backend ids only (4
//! bytes a bucket), the (address, port) of each id kept by the caller (`BeMeta`). At a
//! million backends its buckets fit in the last-level cache, where a map holding the keys
//! (24 bytes a bucket) did not: resolving the backends of 100,000 services was bound by
//! cache misses on that map.

use std::hash::BuildHasher;

use hashbrown::hash_table::{Entry, HashTable};

use super::alloc::FxBuild;
use super::BeIdent;

/// Ids by (address, port); `at(id)` must give the (address, port) of every id in the index.
#[derive(Debug, Default)]
pub struct BackendIndex {
    table: HashTable<u32>,
}

fn hash(k: &BeIdent) -> u64 {
    FxBuild::default().hash_one(k)
}

impl BackendIndex {
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn reserve(&mut self, additional: usize, at: impl Fn(u32) -> BeIdent) {
        self.table.reserve(additional, |id| hash(&at(*id)));
    }

    pub fn get(&self, k: &BeIdent, at: impl Fn(u32) -> BeIdent) -> Option<u32> {
        self.table.find(hash(k), |id| at(*id) == *k).copied()
    }

    /// The id of `k`, or a slot to insert it into: `Err(slot)`; the caller makes `at(id)`
    /// give `k` and then calls `slot.insert(id)`.
    pub fn find_or_slot(
        &mut self,
        k: &BeIdent,
        at: impl Fn(u32) -> BeIdent,
    ) -> Result<u32, Slot<'_>> {
        match self
            .table
            .entry(hash(k), |id| at(*id) == *k, |id| hash(&at(*id)))
        {
            Entry::Occupied(e) => Ok(*e.get()),
            Entry::Vacant(v) => Err(Slot(v)),
        }
    }

    /// Removes `k` (while `at` still gives it for its id); returns its id.
    pub fn remove(&mut self, k: &BeIdent, at: impl Fn(u32) -> BeIdent) -> Option<u32> {
        match self.table.find_entry(hash(k), |id| at(*id) == *k) {
            Ok(e) => Some(e.remove().0),
            Err(_) => None,
        }
    }
}

/// Where a missing backend goes in the index.
pub struct Slot<'a>(hashbrown::hash_table::VacantEntry<'a, u32>);

impl Slot<'_> {
    pub fn insert(self, id: u32) {
        self.0.insert(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maps::LbAddr;

    #[test]
    fn finds_inserts_and_removes_by_address_and_port() {
        let mut at: Vec<BeIdent> = vec![(LbAddr::default(), 0)];
        let mut ix = BackendIndex::default();
        for n in 0u32..5000 {
            let mut a = [0u8; 16];
            a[12..].copy_from_slice(&n.to_be_bytes());
            let k = (LbAddr(a), 1024 + (n % 7) as u16);
            let id = at.len() as u32;
            at.push(k);
            match ix.find_or_slot(&k, |i| at[i as usize]) {
                Ok(_) => panic!("{n} found before it was inserted"),
                Err(s) => s.insert(id),
            }
        }
        assert_eq!(ix.len(), 5000);
        for (id, k) in at.iter().enumerate().skip(1) {
            assert_eq!(ix.get(k, |i| at[i as usize]), Some(id as u32));
            assert_eq!(ix.find_or_slot(k, |i| at[i as usize]).ok(), Some(id as u32));
        }
        let gone = at[17];
        assert_eq!(ix.remove(&gone, |i| at[i as usize]), Some(17));
        assert_eq!(ix.get(&gone, |i| at[i as usize]), None);
        assert_eq!(ix.remove(&gone, |i| at[i as usize]), None);
        assert_eq!(ix.len(), 4999);
        // Other port, same address: a different backend.
        assert_eq!(ix.get(&(at[18].0, 1), |i| at[i as usize]), None);
    }
}
