//! One kind's map, shared between snapshots until one of them changes it.
//!
//! A snapshot of the Kubernetes source is the previous snapshot with the
//! objects that changed since put in: cloning a snapshot clones one pointer
//! per kind, and the first change to a kind's map in the new snapshot copies
//! that map alone (clone on write), so the kinds a batch of events did not
//! touch stay the very same map in both. Two snapshots holding the same map
//! are equal in that kind without looking inside (`Shared::ptr_eq`).
//!
//! Reading goes through `Deref` to the map, so code that reads a snapshot
//! reads a `BTreeMap`; writing (`DerefMut`) copies a map still shared first.

use std::collections::BTreeMap;
use std::collections::btree_map;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

/// A map behind a shared pointer, copied on the first write while shared.
pub struct Shared<M>(Arc<M>);

impl<M> Shared<M> {
    /// Whether both are the same map (and so equal, without comparing).
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

impl<M> Clone for Shared<M> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<M: Default> Default for Shared<M> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl<M> Deref for Shared<M> {
    type Target = M;

    fn deref(&self) -> &M {
        &self.0
    }
}

impl<M: Clone> DerefMut for Shared<M> {
    fn deref_mut(&mut self) -> &mut M {
        Arc::make_mut(&mut self.0)
    }
}

impl<M: PartialEq> PartialEq for Shared<M> {
    fn eq(&self, other: &Self) -> bool {
        Self::ptr_eq(self, other) || *self.0 == *other.0
    }
}

impl<M: fmt::Debug> fmt::Debug for Shared<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<K, V> From<BTreeMap<K, V>> for Shared<BTreeMap<K, V>> {
    fn from(map: BTreeMap<K, V>) -> Self {
        Self(Arc::new(map))
    }
}

impl<K: Ord, V> FromIterator<(K, V)> for Shared<BTreeMap<K, V>> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(Arc::new(iter.into_iter().collect()))
    }
}

impl<K: Clone, V: Clone> Shared<BTreeMap<K, V>> {
    /// The values, taken out (copied while the map is still shared).
    pub fn into_values(self) -> btree_map::IntoValues<K, V> {
        Arc::unwrap_or_clone(self.0).into_values()
    }
}

impl<K: Clone, V: Clone> IntoIterator for Shared<BTreeMap<K, V>> {
    type Item = (K, V);
    type IntoIter = btree_map::IntoIter<K, V>;

    fn into_iter(self) -> Self::IntoIter {
        Arc::unwrap_or_clone(self.0).into_iter()
    }
}

impl<'a, K, V> IntoIterator for &'a Shared<BTreeMap<K, V>> {
    type Item = (&'a K, &'a V);
    type IntoIter = btree_map::Iter<'a, K, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_copies_a_shared_map_and_leaves_the_other_alone() {
        let a: Shared<BTreeMap<u8, u8>> = [(1, 1), (2, 2)].into_iter().collect();
        let mut b = a.clone();
        assert!(Shared::ptr_eq(&a, &b));
        b.insert(3, 3);
        assert!(!Shared::ptr_eq(&a, &b));
        assert_eq!(a.len(), 2);
        assert_eq!(b.len(), 3);
        let before = b.clone();
        b.remove(&3);
        assert_eq!(a, b, "equal by content once apart");
        assert_eq!(before.len(), 3);
    }
}
