//! The translator loop, the same for `portico run` and `portico standalone`:
//! a state machine between a source of `Inputs` and the xDS hub.
//!
//! In: each new snapshot of the inputs, and Envoy's answers (`hub::Answer`).
//! Out: a `Step` per snapshot: what was done (`Translation`), the inputs and
//! the outputs the sinks read, published to the hub when they changed. It
//! decides what a snapshot needs: nothing new when only statuses changed (a
//! status write coming back), endpoints only when only EndpointSlices
//! changed (`translate::refresh_endpoints`), a full translation otherwise
//! and whenever Envoy's answers changed the routes held back
//! (`translate::quarantine`). It carries from one snapshot to the next the
//! last accepted configuration (`translate::last_good`), the quarantine and
//! the last step, and it counts every step in `metrics::ControlMetrics`.
//! The drivers keep only their own I/O: watches and the leader's sinks
//! (`runtime`), file polling and Envoy processes (`standalone`).

use std::sync::Arc;
use std::time::Instant;

use crate::inputs::Inputs;
use crate::metrics::{ControlMetrics, Translation};
use crate::translate::last_good::LastGood;
use crate::translate::quarantine::Quarantine;
use crate::translate::{self, Memo, Options, Outputs};
use crate::xds::hub::{Answer, Hub};

#[cfg(test)]
mod tests;

/// What the loop did with one snapshot of the inputs.
#[derive(Clone, Debug)]
pub struct Step {
    pub how: Translation,
    pub inputs: Arc<Inputs>,
    /// The same `Arc` as the step before when only statuses changed.
    pub outputs: Arc<Outputs>,
}

/// The loop's memory from one snapshot to the next.
#[derive(Debug)]
pub struct Translator {
    options: Options,
    metrics: Arc<ControlMetrics>,
    last: Option<Step>,
    last_good: LastGood,
    quarantine: Quarantine,
    /// What the last full translation computed, reused by the next where
    /// its inputs did not change (`translate::memo`).
    memo: Memo,
    /// Envoy's answers (or edits) changed the routes held back since the
    /// last step: the next one translates in full.
    held_changed: bool,
    /// Whether the first snapshot's statuses say which routes Envoy
    /// rejected before (`Quarantine::remember`); still to be read.
    remember: bool,
}

impl Translator {
    pub fn new(options: Options, metrics: Arc<ControlMetrics>) -> Self {
        Self {
            options,
            metrics,
            last: None,
            last_good: LastGood::default(),
            quarantine: Quarantine::default(),
            memo: Memo::default(),
            held_changed: false,
            remember: false,
        }
    }

    /// Holds back, from the first snapshot on, every route whose status
    /// says Envoy rejected its current edit: statuses written by an earlier
    /// run (the operator's; standalone's files carry none of its own).
    pub fn remembering_held_routes(mut self) -> Self {
        self.remember = true;
        self
    }

    /// The last step, if any.
    pub fn last(&self) -> Option<&Step> {
        self.last.as_ref()
    }

    /// What a new snapshot of the inputs needs, given the last one.
    pub fn decide(&self, inputs: &Inputs) -> Translation {
        match &self.last {
            Some(last) if !self.held_changed && last.inputs.same_but_status(inputs) => {
                Translation::StatusOnly
            }
            Some(last) if !self.held_changed && last.inputs.same_but_endpoints(inputs) => {
                Translation::Endpoints
            }
            _ => Translation::Full,
        }
    }

    /// Handles a new snapshot of the inputs: decides, translates as much as
    /// needed, publishes changed outputs to `hub` and records what they were
    /// made of for the quarantine.
    pub fn next(&mut self, inputs: Arc<Inputs>, hub: &Hub) -> &Step {
        if std::mem::take(&mut self.remember) {
            self.quarantine.remember(&inputs);
        }
        self.held_changed |= self.quarantine.refresh(&inputs);
        let clock = Instant::now();
        let how = self.decide(&inputs);
        let outputs = match (&self.last, how) {
            (Some(last), Translation::StatusOnly) => Arc::clone(&last.outputs),
            (Some(last), Translation::Endpoints) => {
                Arc::new(translate::refresh_endpoints(&inputs, &last.outputs))
            }
            _ => {
                let (outputs, next) = self.quarantine.translate_memo(
                    &inputs,
                    &self.options,
                    &self.last_good,
                    &mut self.memo,
                );
                self.last_good = next;
                Arc::new(outputs)
            }
        };
        let translated = clock.elapsed();
        self.metrics.translated(how, translated.as_secs_f64());
        self.held_changed = false;
        if how != Translation::StatusOnly {
            // Published before anything else is done with the outputs:
            // the ADS streams push while the rest of the step runs.
            hub.publish(&outputs);
            tracing::debug!(
                ?how,
                translate = ?translated,
                publish = ?clock.elapsed().saturating_sub(translated),
                "published"
            );
            self.quarantine
                .publish(&hub.versions(&outputs), &inputs, &outputs);
        }
        if how == Translation::Full {
            self.metrics.observe(&inputs, &outputs);
        }
        tracing::debug!(elapsed = ?clock.elapsed(), ?how, gateways = outputs.gateways.len(), "translated");
        self.last.insert(Step {
            how,
            inputs,
            outputs,
        })
    }

    /// Gives Envoy's answer to the quarantine. True when it changed the
    /// routes held back: the next step (`again`, or `next` with newer
    /// inputs) translates in full.
    pub fn answer(&mut self, answer: &Answer) -> bool {
        let Some(last) = &self.last else {
            return false;
        };
        let changed = answer.tell(&mut self.quarantine, &last.outputs);
        self.held_changed |= changed;
        changed
    }

    /// The last inputs handled again (after an answer changed what is held).
    pub fn again(&mut self, hub: &Hub) -> Option<&Step> {
        let inputs = Arc::clone(&self.last.as_ref()?.inputs);
        Some(self.next(inputs, hub))
    }
}
