//! What earlier rounds of the status plan found already matching, so that a
//! round costs what changed rather than what exists.
//!
//! Per object the memo keeps the live `resourceVersion` and the status
//! computed for it (translation's entry; for a Gateway or ListenerSet, the
//! status after what was observed of its fleet and Envoys) in the last round
//! that found the live status already saying that. The desired status is a
//! function of exactly those two (the live status, which the version pins,
//! and the computed one; the clock only stamps transition times, which the
//! comparison ignores), so while both stay the same the verdict stays
//! "matching" and the object needs no serialization and no comparison.
//!
//! Only a match is remembered: an object the plan wrote for (or whose write
//! failed) is derived and compared again the next round. An object without
//! a `resourceVersion` (read from a file) is never remembered. Each round
//! forgets the entries it did not confirm, so deleted objects, and objects
//! found differing, leave the memo. The memo is plain data the caller owns
//! and passes to each round (`plan::plan_with`); the plan stays pure.

use std::collections::HashMap;

use super::plan::{ObservedGateway, ObservedListenerSet};
use crate::inputs::{Kind, ObjectKey};
use crate::translate::report::{GatewayClassStatus, PolicyStatus, RouteStatus};

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

/// What one round of the plan did, per object it looked at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Objects skipped: same live version and computed status as a round
    /// that found them matching.
    pub unchanged: usize,
    /// Objects whose desired status was derived and compared with the live one.
    pub compared: usize,
}

/// The round being planned: its number and what it did so far.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Round {
    number: u64,
    tally: Tally,
}

/// The status plan's memory between rounds (see the module comment).
#[derive(Clone, Debug, Default)]
pub struct Memo {
    pub(super) round: Round,
    pub(super) classes: Seen<GatewayClassStatus>,
    pub(super) gateways: Seen<ObservedGateway>,
    pub(super) listener_sets: Seen<ObservedListenerSet>,
    /// Per route kind: translation's entry for the route, if any.
    pub(super) routes: HashMap<Kind, Seen<Option<RouteStatus>>>,
    pub(super) policies: Seen<Option<PolicyStatus>>,
}

impl Memo {
    /// What the last round did.
    pub fn tally(&self) -> Tally {
        self.round.tally
    }

    /// How many objects are remembered as matching.
    pub fn remembered(&self) -> usize {
        self.classes.len()
            + self.gateways.len()
            + self.listener_sets.len()
            + self.routes.values().map(Seen::len).sum::<usize>()
            + self.policies.len()
    }

    /// Starts a round.
    pub(super) fn begin(&mut self) {
        self.round = Round {
            number: self.round.number.wrapping_add(1),
            tally: Tally::default(),
        };
    }

    /// Ends a round: what it did not confirm is forgotten.
    pub(super) fn end(&mut self) {
        let round = self.round.number;
        self.classes.sweep(round);
        self.gateways.sweep(round);
        self.listener_sets.sweep(round);
        self.routes.values_mut().for_each(|s| s.sweep(round));
        self.routes.retain(|_, s| s.len() > 0);
        self.policies.sweep(round);
    }
}

#[cfg(test)]
mod tests;
