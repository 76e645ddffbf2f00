//! Quarantine: when Envoy rejects a Gateway's configuration although
//! translation accepted every object in it, only the route that caused the
//! rejection is held back; the rest of the Gateway (every other route on the
//! same port, of every tenant) keeps updating, and a new or restarted Envoy
//! gets a configuration it accepts.
//!
//! In: what each published snapshot was made of (`made_of`; recorded from
//! what changed since the last publish, `record`), and Envoy's answers (snapshot version, rejected or not). Out: the routes held back,
//! each with the edit Envoy rejected and the previous edit Envoy accepted (put
//! back in its place, or nothing when there was none), and their statuses
//! (`held`). A rejected snapshot is compared with the last accepted one: the
//! routes changed between the two are the suspects. One suspect is the
//! culprit. Several are all held back and then let through half at a time
//! (a half Envoy accepts is cleared; a half it rejects is split again) until
//! the culprits are alone. When the Gateway itself changed, or nothing was
//! accepted yet and nothing is left to let through, the rejection cannot be
//! pinned on a route: nothing is held for it, and the Gateway's `Programmed`
//! condition reports it as before. A held route is let through again at its
//! next edit, or when it is deleted. A replica that starts reads the routes
//! held before from their statuses (`RejectedByEnvoy` for their current
//! generation). Pure: the caller (the translator loop)
//! feeds it and translates again when `answer` says so; no clock.

mod held;
mod made_of;
mod record;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

pub use self::held::REJECTED_BY_ENVOY;
pub use self::made_of::{MadeOf, RouteId, RouteObject, Version, made_of};
pub use self::record::Record;
use super::{Memo, Options, Outputs};
use crate::inputs::{Inputs, ObjectKey};
use crate::translate::last_good::{self, LastGood};
use crate::translate::report::RouteStatus;

/// Published snapshots of one Gateway remembered until Envoy answers (Envoy
/// answers in order, within a round trip; a Gateway without Envoys forgets
/// the oldest).
const PENDING: usize = 4;

/// Why a route is held back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Envoy rejected the configuration this edit of the route produced.
    Rejected,
    /// Envoy rejected a configuration that changed this route and others;
    /// the suspects are being let through half at a time.
    Suspected { with: usize },
    /// The route's status said so when this replica started.
    Remembered,
}

/// One route held back.
#[derive(Clone, Debug)]
pub struct Held {
    /// The edit Envoy rejected; any other edit lets the route through.
    pub version: Version,
    /// The edit Envoy last accepted, served in its place.
    pub previous: Option<RouteObject>,
    pub verdict: Verdict,
    pub gateway: ObjectKey,
    /// The rejected snapshot version and Envoy's message.
    pub snapshot: String,
    pub message: String,
    /// The route's status as translated from the rejected edit.
    pub status: Option<RouteStatus>,
}

/// One Gateway's published snapshots and the state of its suspects.
#[derive(Debug, Default)]
struct Track {
    /// Published and not yet answered: sequence, version, what it was made of.
    pending: VecDeque<(u64, String, Arc<MadeOf>)>,
    /// The last snapshot Envoy accepted, and the one before it (a late
    /// rejection of another resource type of the same snapshot falls back).
    accepted: Option<(String, Arc<MadeOf>)>,
    before: Option<(String, Arc<MadeOf>)>,
    /// Suspects held back, in groups to be halved.
    groups: VecDeque<Vec<RouteId>>,
    /// Suspects let through, and the first publish that carries them.
    trial: Option<(u64, Vec<RouteId>)>,
}

#[derive(Debug, Default)]
pub struct Quarantine {
    tracks: BTreeMap<ObjectKey, Track>,
    held: BTreeMap<RouteId, Held>,
    /// Publishes so far.
    sequence: u64,
    /// What the last publish was made of, for the next (`record`).
    record: Record,
}

impl Quarantine {
    pub fn held(&self) -> &BTreeMap<RouteId, Held> {
        &self.held
    }

    /// A translation of `inputs` with every held route replaced by its last
    /// accepted edit (or left out), and its status saying why; the rest as
    /// `last_good::translate` does it.
    pub fn translate(
        &self,
        inputs: &Inputs,
        options: &Options,
        last: &LastGood,
    ) -> (Outputs, LastGood) {
        self.translate_memo(inputs, options, last, &mut Memo::off())
    }

    /// `translate`, reusing and keeping results in `memo`
    /// (`translate::translate_memo`).
    pub fn translate_memo(
        &self,
        inputs: &Inputs,
        options: &Options,
        last: &LastGood,
        memo: &mut Memo,
    ) -> (Outputs, LastGood) {
        let patched = held::apply(&self.held, inputs);
        let used = patched.as_ref().unwrap_or(inputs);
        let (mut outputs, next) = last_good::translate_memo(used, options, last, memo);
        held::report(&self.held, inputs, &mut outputs);
        (outputs, next)
    }

    /// Holds back every route whose status says Envoy rejected its current
    /// edit: what a restarted replica knows before any Envoy answers it.
    pub fn remember(&mut self, inputs: &Inputs) {
        for (id, h) in held::remembered(inputs) {
            self.held.entry(id).or_insert(h);
        }
    }

    /// Lets through every held route that was edited or deleted since it was
    /// held. True when something was let through (translate again).
    pub fn refresh(&mut self, inputs: &Inputs) -> bool {
        let before = self.held.len();
        self.held.retain(|id, h| {
            RouteObject::find(inputs, id).is_some_and(|r| r.version() == h.version)
        });
        let held = &self.held;
        for track in self.tracks.values_mut() {
            for group in &mut track.groups {
                group.retain(|id| held.contains_key(id));
            }
            track.groups.retain(|g| !g.is_empty());
        }
        self.held.len() != before
    }

    /// Records what the Gateways' new snapshots, translated from `inputs`
    /// as `outputs`, were made of (`published`), from what changed since
    /// the last call (`record`).
    pub fn publish(
        &mut self,
        versions: &BTreeMap<ObjectKey, String>,
        inputs: &Inputs,
        outputs: &Arc<Outputs>,
    ) {
        let made = self.record.made_of(inputs, outputs);
        self.published(versions, made);
    }

    /// Records what the Gateways' new snapshots were made of; `versions`
    /// gives each Gateway's snapshot version as served. Gateways no longer
    /// published are forgotten.
    pub fn published(
        &mut self,
        versions: &BTreeMap<ObjectKey, String>,
        made: BTreeMap<ObjectKey, Arc<MadeOf>>,
    ) {
        self.tracks.retain(|k, _| versions.contains_key(k));
        for (key, m) in made {
            let Some(version) = versions.get(&key) else {
                continue;
            };
            let track = self.tracks.entry(key).or_default();
            if track.pending.back().is_some_and(|(_, v, _)| v == version) {
                continue;
            }
            self.sequence += 1;
            // Unchanged routes (an endpoint change, say): share the record.
            let made = match track.pending.back() {
                Some((_, _, last)) if Arc::ptr_eq(last, &m) || last.same_as(&m) => Arc::clone(last),
                _ => m,
            };
            track
                .pending
                .push_back((self.sequence, version.clone(), made));
            while track.pending.len() > PENDING {
                track.pending.pop_front();
            }
        }
    }

    /// Envoy's answer for `gateway`'s snapshot `snapshot`; `current` are the
    /// latest outputs (their route statuses are kept for held routes). True
    /// when the held routes changed (translate again).
    pub fn answer(
        &mut self,
        gateway: &ObjectKey,
        snapshot: &str,
        rejected: Option<&str>,
        current: &Outputs,
    ) -> bool {
        let Some(track) = self.tracks.get_mut(gateway) else {
            return false;
        };
        match rejected {
            None => {
                // An accepted snapshot stays pending: another resource type
                // of the same snapshot may still be rejected.
                let Some((seq, _, made)) = track.pending.iter().find(|(_, v, _)| v == snapshot)
                else {
                    return false;
                };
                let (seq, made) = (*seq, Arc::clone(made));
                track.pending.retain(|(s, _, _)| *s >= seq);
                if track.accepted.as_ref().is_none_or(|(v, _)| v != snapshot) {
                    track.before = track.accepted.take();
                    track.accepted = Some((snapshot.to_string(), made));
                }
                if track.trial.as_ref().is_some_and(|(since, _)| seq >= *since) {
                    track.trial = None;
                }
                next_trial(track, &mut self.held, self.sequence + 1)
            }
            Some(message) => {
                let Some(index) = track.pending.iter().position(|(_, v, _)| v == snapshot) else {
                    return false;
                };
                let (seq, _, made) = track.pending.remove(index).unwrap_or_default();
                track.pending.retain(|(s, _, _)| *s > seq);
                if track.accepted.as_ref().is_some_and(|(v, _)| v == snapshot) {
                    track.accepted = track.before.take();
                }
                let Isolation { culprits, verdict } = isolate(track, &made, &self.held);
                if culprits.is_empty() {
                    return false;
                }
                let base = track.accepted.as_ref().map(|(_, m)| Arc::clone(m));
                for id in &culprits {
                    let Some((version, _)) = made.routes.get(id) else {
                        continue;
                    };
                    let previous = base
                        .as_ref()
                        .and_then(|b| b.routes.get(id))
                        .map(|(_, o)| o.clone());
                    self.held.insert(
                        id.clone(),
                        Held {
                            version: *version,
                            previous,
                            verdict: verdict.clone(),
                            gateway: gateway.clone(),
                            snapshot: snapshot.to_string(),
                            message: message.to_string(),
                            status: current.routes.get(id).cloned(),
                        },
                    );
                }
                if let Verdict::Suspected { .. } = verdict {
                    track.groups.push_front(culprits);
                }
                track.trial = None;
                next_trial(track, &mut self.held, self.sequence + 1);
                true
            }
        }
    }
}

/// Whom a rejection points at.
struct Isolation {
    culprits: Vec<RouteId>,
    verdict: Verdict,
}

/// The routes of a rejected snapshot `made` that changed since the last
/// accepted one and are not held already: alone, the culprit; several,
/// suspects. Nobody when nothing was accepted yet (what the Envoys run is
/// unknown: holding routes back could take working routes away from them),
/// when the Gateway itself (or a ListenerSet attached to it) changed, or
/// when no route changed.
fn isolate(track: &Track, made: &MadeOf, held: &BTreeMap<RouteId, Held>) -> Isolation {
    let nobody = Isolation {
        culprits: Vec::new(),
        verdict: Verdict::Rejected,
    };
    let Some((_, base)) = &track.accepted else {
        return nobody;
    };
    if !base.same_listeners(made) {
        return nobody;
    }
    let changed: Vec<RouteId> = made
        .routes
        .iter()
        .filter(|(id, (v, _))| {
            !held.contains_key(*id) && base.routes.get(*id).is_none_or(|(bv, _)| bv != v)
        })
        .map(|(id, _)| id.clone())
        .collect();
    let verdict = match changed.len() {
        0 => return nobody,
        1 => Verdict::Rejected,
        n => Verdict::Suspected { with: n - 1 },
    };
    Isolation {
        culprits: changed,
        verdict,
    }
}

/// Once Envoy has accepted something and no trial runs, lets the first half
/// of the first group of suspects through. True when it did.
/// `next` is the sequence of the next publish, the first to carry them.
fn next_trial(track: &mut Track, held: &mut BTreeMap<RouteId, Held>, next: u64) -> bool {
    if track.trial.is_some() || track.accepted.is_none() {
        return false;
    }
    track.groups.retain(|g| !g.is_empty());
    let Some(group) = track.groups.front_mut() else {
        return false;
    };
    let half = (group.len() / 2).max(1);
    let members: Vec<RouteId> = group.drain(..half).collect();
    for id in &members {
        held.remove(id);
    }
    track.trial = Some((next, members));
    true
}

#[cfg(test)]
mod tests;
