//! What earlier rounds of the status plan found already matching, so that a
//! round costs what changed rather than what exists.
//!
//! Routes and BackendTLSPolicies (thousands): the memo keeps the inputs and
//! outputs the round before saw, and the objects it could not confirm as
//! matching (`unsettled`: a write planned, or failed and planned again, or
//! no `resourceVersion`, as read from a file). A round looks at those and at
//! the objects whose live object or translated entry changed since
//! (`changes`); every other object matched the round before and neither
//! side of its comparison moved, so it still matches and is not looked at.
//! The desired status is a function of exactly those two sides (the clock
//! only stamps transition times, which the comparison ignores).
//!
//! Classes, Gateways and ListenerSets (a few, with what was observed of
//! their fleets and Envoys in their status): per object the live
//! `resourceVersion` and the status computed for it in the last round that
//! found the live status saying that; while both stay the same the object
//! costs one lookup. Each round forgets the entries it did not confirm.
//!
//! The memo is plain data the caller owns and passes to each round
//! (`plan::plan_with`); the plan stays pure.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::changes::Since;
use super::plan::{ObservedGateway, ObservedListenerSet};
use crate::inputs::kinds::Status;
use crate::inputs::{Inputs, Kind, ObjectKey};
use crate::translate::Outputs;
use crate::translate::report::GatewayClassStatus;

/// One object's remembered match.
#[derive(Clone, Debug)]
struct Entry<T> {
    version: String,
    computed: T,
    /// The last round that confirmed it.
    round: u64,
}

/// The remembered matches of one kind, each with its computed status `T`.
#[derive(Clone, Debug)]
pub struct Seen<T> {
    entries: HashMap<ObjectKey, Entry<T>>,
}

impl<T> Default for Seen<T> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
        }
    }
}

impl<T> Seen<T> {
    /// Whether `key` was found matching at live `version` with a computed
    /// status for which `same` holds; a hit is confirmed for this round.
    pub(super) fn hit(
        &mut self,
        round: &mut Round,
        key: &ObjectKey,
        version: Option<&str>,
        same: impl FnOnce(&T) -> bool,
    ) -> bool {
        round.tally.looked_at += 1;
        let hit = match (version, self.entries.get_mut(key)) {
            (Some(version), Some(entry)) if entry.version == version && same(&entry.computed) => {
                entry.round = round.number;
                true
            }
            _ => false,
        };
        if hit {
            round.tally.unchanged += 1;
        } else {
            round.tally.compared += 1;
        }
        hit
    }

    /// Remembers that `key`'s live status at `version` matches `computed`.
    pub(super) fn remember(
        &mut self,
        round: &Round,
        key: &ObjectKey,
        version: Option<&str>,
        computed: T,
    ) {
        let Some(version) = version else {
            return;
        };
        let entry = Entry {
            version: version.to_string(),
            computed,
            round: round.number,
        };
        match self.entries.get_mut(key) {
            Some(slot) => *slot = entry,
            None => {
                self.entries.insert(key.clone(), entry);
            }
        }
    }

    fn sweep(&mut self, round: u64) {
        self.entries.retain(|_, e| e.round == round);
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The objects of one kind with a shared status list that a round looks
/// at, and what it found.
#[derive(Debug)]
pub(super) enum Look<'m> {
    /// Every object (no round before): `unsettled` is filled anew.
    Every(&'m mut BTreeSet<ObjectKey>),
    /// These, each confirmed (left out of `unsettled`) or not.
    Only(BTreeSet<ObjectKey>, &'m mut BTreeSet<ObjectKey>),
}

/// What one round of the plan did, per object it looked at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Objects not compared: same live object and computed status as a
    /// round that found them matching.
    pub unchanged: usize,
    /// Objects whose desired status was derived and compared with the live one.
    pub compared: usize,
    /// Objects the round looked at at all (looked up in the memo or the
    /// snapshot); the others it did not touch.
    pub looked_at: usize,
}

/// Whether objects of `kind` have a status list shared with other
/// controllers (routes, BackendTLSPolicies).
fn shared_list(kind: Kind) -> bool {
    matches!(kind.status(), Status::Parents(_) | Status::Ancestors)
}

/// The round being planned: its number and what it did so far.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Round {
    number: u64,
    pub(super) tally: Tally,
}

/// What the round before saw.
#[derive(Clone, Debug)]
struct Last {
    inputs: Inputs,
    outputs: Arc<Outputs>,
}

/// The status plan's memory between rounds (see the module comment).
#[derive(Clone, Debug, Default)]
pub struct Memo {
    pub(super) round: Round,
    pub(super) classes: Seen<GatewayClassStatus>,
    pub(super) gateways: Seen<ObservedGateway>,
    pub(super) listener_sets: Seen<ObservedListenerSet>,
    last: Option<Last>,
    /// Per kind with a shared status list: the objects the last round did
    /// not confirm as matching.
    unsettled: BTreeMap<Kind, BTreeSet<ObjectKey>>,
    /// What this round found changed since the round before; `None` with
    /// no round before (every object looked at).
    since: Option<Since>,
}

impl Memo {
    /// What the last round did.
    pub fn tally(&self) -> Tally {
        self.round.tally
    }

    /// How many objects are remembered as matching.
    pub fn remembered(&self) -> usize {
        let shared: usize = self
            .last
            .as_ref()
            .map(|last| {
                Kind::ALL
                    .iter()
                    .filter(|kind| shared_list(**kind))
                    .map(|kind| {
                        let unsettled = self.unsettled.get(kind).map_or(0, BTreeSet::len);
                        kind.count(&last.inputs).saturating_sub(unsettled)
                    })
                    .sum()
            })
            .unwrap_or_default();
        self.classes.len() + self.gateways.len() + self.listener_sets.len() + shared
    }

    /// The objects found gone since the round before, per kind portico
    /// writes a status into; `None` when there was no round before.
    pub fn gone(&self) -> Option<&[(Kind, ObjectKey)]> {
        self.since.as_ref().map(|s| s.gone.as_slice())
    }

    /// What changed since the round before, if there was one, for a round
    /// over `inputs` and `outputs`.
    pub(super) fn since_last(&self, inputs: &Inputs, outputs: &Arc<Outputs>) -> Option<Since> {
        self.last
            .as_ref()
            .map(|last| Since::between(&last.inputs, &last.outputs, inputs, outputs))
    }

    /// Starts a round; `since`: what changed since the round before (none:
    /// every object is looked at).
    pub(super) fn begin(&mut self, since: Option<Since>) {
        self.round = Round {
            number: self.round.number.wrapping_add(1),
            tally: Tally::default(),
        };
        self.since = since;
    }

    /// The objects of `kind` (with a shared status list) this round looks
    /// at, and the round.
    pub(super) fn look(&mut self, kind: Kind) -> (Look<'_>, &mut Round) {
        let unsettled = self.unsettled.entry(kind).or_default();
        let look = match &mut self.since {
            None => {
                unsettled.clear();
                Look::Every(unsettled)
            }
            Some(since) => {
                let mut keys = since.changed.remove(&kind).unwrap_or_default();
                keys.extend(unsettled.iter().cloned());
                Look::Only(keys, unsettled)
            }
        };
        (look, &mut self.round)
    }

    /// Ends a round: what the Seen kinds did not confirm is forgotten, and
    /// what the round saw is kept for the next.
    pub(super) fn end(&mut self, seen: Option<(&Inputs, &Arc<Outputs>)>) {
        let round = self.round.number;
        self.classes.sweep(round);
        self.gateways.sweep(round);
        self.listener_sets.sweep(round);
        self.unsettled.retain(|_, keys| !keys.is_empty());
        self.last = seen.map(|(inputs, outputs)| Last {
            inputs: inputs.clone(),
            outputs: Arc::clone(outputs),
        });
    }
}

#[cfg(test)]
mod tests;
