//! What changed between two versions of an ordered map, walked side by
//! side in key order: the keys whose objects differ by pointer (`objects`:
//! snapshots share unchanged objects behind the same `Arc`,
//! `inputs::shared`), or whose entries differ by value (`entries`: two
//! translations' outputs). A leaf: the status round (`status::changes`) and
//! the quarantine's record of what snapshots were made of
//! (`translate::quarantine::record`) use it to cost what changed.

use std::cmp::Ordering;
use std::sync::Arc;

use crate::identity::ObjectKey;

/// How two versions of a map differ.
#[derive(Debug, PartialEq)]
pub struct Diff<Q = ObjectKey> {
    /// Keys added, or whose entry changed.
    pub changed: Vec<Q>,
    /// Keys no longer there.
    pub gone: Vec<Q>,
}

impl<Q> Default for Diff<Q> {
    fn default() -> Self {
        Self {
            changed: Vec::new(),
            gone: Vec::new(),
        }
    }
}

/// The objects of one kind in two snapshots, each in key order, compared:
/// an object under the same `Arc` is the same object (a map holds an object
/// under its own key, so not even the keys are compared), any other is
/// changed. Callers skip a map both snapshots share (`Held::identical`).
pub fn objects<'a, K: 'a>(
    last: impl Iterator<Item = (&'a ObjectKey, &'a Arc<K>)>,
    now: impl Iterator<Item = (&'a ObjectKey, &'a Arc<K>)>,
) -> Diff {
    walk(last, now, |a, b| Arc::ptr_eq(a, b), |_, _| false)
}

/// The keys whose entries differ by value between two maps, each walked in
/// key order: changed, added or removed.
pub fn entries<'a, Q: Ord + Clone + 'a, V: PartialEq + 'a>(
    last: impl Iterator<Item = (&'a Q, &'a V)>,
    now: impl Iterator<Item = (&'a Q, &'a V)>,
) -> Vec<Q> {
    let Diff { mut changed, gone } = walk(last, now, |_, _| false, V::eq);
    changed.extend(gone);
    changed
}

/// Both maps side by side: a pair of entries `at_once` holds for is the
/// same without a look at its keys; otherwise the keys are compared, and
/// entries under one key are the same when `same` holds.
fn walk<'a, Q: Ord + Clone + 'a, V: 'a>(
    mut last: impl Iterator<Item = (&'a Q, &'a V)>,
    mut now: impl Iterator<Item = (&'a Q, &'a V)>,
    at_once: impl Fn(&V, &V) -> bool,
    same: impl Fn(&V, &V) -> bool,
) -> Diff<Q> {
    let mut diff = Diff::default();
    let (mut a, mut b) = (last.next(), now.next());
    loop {
        match (a, b) {
            (None, None) => return diff,
            (Some((key, _)), None) => {
                diff.gone.push(key.clone());
                a = last.next();
            }
            (None, Some((key, _))) => {
                diff.changed.push(key.clone());
                b = now.next();
            }
            (Some((ka, va)), Some((kb, vb))) => {
                if at_once(va, vb) {
                    (a, b) = (last.next(), now.next());
                    continue;
                }
                match ka.cmp(kb) {
                    Ordering::Less => {
                        diff.gone.push(ka.clone());
                        a = last.next();
                    }
                    Ordering::Greater => {
                        diff.changed.push(kb.clone());
                        b = now.next();
                    }
                    Ordering::Equal => {
                        if !same(va, vb) {
                            diff.changed.push(kb.clone());
                        }
                        (a, b) = (last.next(), now.next());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new("ns", name)
    }

    #[test]
    fn objects_differ_where_their_pointers_do() {
        let shared = Arc::new(1);
        let last: BTreeMap<ObjectKey, Arc<i32>> = [
            (key("a"), Arc::clone(&shared)),
            (key("b"), Arc::new(2)),
            (key("c"), Arc::new(3)),
        ]
        .into_iter()
        .collect();
        let mut now = last.clone();
        now.remove(&key("b"));
        now.insert(key("c"), Arc::new(3));
        now.insert(key("d"), Arc::new(4));
        let diff = objects(last.iter(), now.iter());
        assert_eq!(
            diff,
            Diff {
                changed: vec![key("c"), key("d")],
                gone: vec![key("b")],
            },
            "an equal object under a new Arc counts as changed"
        );
        assert_eq!(objects(last.iter(), last.iter()), Diff::default());
        let empty = BTreeMap::new();
        assert_eq!(objects(empty.iter(), last.iter()).changed.len(), 3);
        assert_eq!(objects(last.iter(), empty.iter()).gone.len(), 3);
    }

    #[test]
    fn entries_differ_by_value() {
        let last: BTreeMap<u8, &str> = [(1, "a"), (2, "b"), (4, "d")].into_iter().collect();
        let now: BTreeMap<u8, &str> = [(1, "a"), (2, "B"), (3, "c")].into_iter().collect();
        assert_eq!(
            entries(last.iter(), now.iter()),
            vec![2, 3, 4],
            "changed, added, removed"
        );
        assert!(entries(last.iter(), last.clone().iter()).is_empty());
    }
}
