//! The hub between translation and the ADS streams: the current snapshot of
//! every Gateway (published as one value on a watch channel, unchanged
//! Gateways keeping their `Arc`), and the feedback Envoys sent back (last ACKed
//! snapshot version, last NACK message) for the status side. A Gateway's
//! feedback and its stream metric are forgotten once it is no longer
//! published and none of its Envoys is connected. Every answer (one per
//! resource type and snapshot version) is also queued, in order, for the one
//! consumer that takes the queue: the translator, which isolates what Envoy
//! rejects (`translate::quarantine`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::cache::{ResourceType, Snapshot};
use super::delta::Feedback;
use super::metrics::{GatewayLabel, GatewayTypeLabel, TypeLabel, XdsMetrics};
use crate::identity::gateway_id;
use crate::inputs::ObjectKey;
use crate::translate::Outputs;
use crate::translate::encode::EnvoyResources;
use crate::translate::quarantine::Quarantine;

/// Every Gateway's snapshot, keyed by `<namespace>/<name>` (Envoy's `node.cluster`).
pub type Snapshots = BTreeMap<String, Arc<Snapshot>>;

/// Answers queued for the translator before it falls behind; beyond them an
/// answer is dropped (and counted as a lost answer in the log).
const ANSWER_QUEUE: usize = 1024;

/// One answer of an Envoy: the snapshot version a response came from, and
/// Envoy's message when it rejected it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The Gateway's id (`<namespace>/<name>`).
    pub gateway: String,
    pub snapshot: String,
    pub rejected: Option<String>,
}

impl Answer {
    /// Gives this answer to `quarantine` (`outputs`: the latest translation),
    /// logging what it holds back; true when the held routes changed.
    pub fn tell(&self, quarantine: &mut Quarantine, outputs: &Outputs) -> bool {
        let Some((namespace, name)) = self.gateway.split_once('/') else {
            return false;
        };
        let gateway = ObjectKey::new(namespace, name);
        let changed =
            quarantine.answer(&gateway, &self.snapshot, self.rejected.as_deref(), outputs);
        if changed {
            let held: Vec<String> = quarantine
                .held()
                .keys()
                .map(|(kind, key)| format!("{} {}/{}", kind.name(), key.namespace, key.name))
                .collect();
            tracing::warn!(gateway = %self.gateway, snapshot = %self.snapshot, ?held, "Envoy's answer changed the routes held back");
        }
        changed
    }
}

/// The next answer of an Envoy, or never when nobody queues them.
pub async fn next_answer(answers: &mut Option<mpsc::Receiver<Answer>>) -> Option<Answer> {
    match answers {
        Some(queue) => queue.recv().await,
        None => std::future::pending().await,
    }
}

/// What Envoys of one Gateway reported (shared with the other replicas as
/// JSON: `replicas`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GatewayFeedback {
    /// Open ADS streams from this Gateway's Envoys.
    #[serde(default)]
    pub streams: usize,
    /// Snapshot version of the last ACK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked: Option<String>,
    /// The last NACK: snapshot version and Envoy's `error_detail` message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<(String, String)>,
}

#[derive(Debug)]
pub struct Hub {
    snapshots: watch::Sender<Arc<Snapshots>>,
    /// Responses sent on all streams since start.
    responses: AtomicU64,
    pub metrics: XdsMetrics,
    /// When the current snapshots were published, for push latency.
    published_at: Mutex<Instant>,
    feedback: Mutex<BTreeMap<String, GatewayFeedback>>,
    feedback_changed: watch::Sender<u64>,
    /// Set by the first publish. Streams wait for it: an Envoy reconnecting
    /// to a portico that has not translated yet must not be told that its
    /// Gateway has no configuration.
    synced: watch::Sender<bool>,
    answers: mpsc::Sender<Answer>,
    /// The receiving end, until a consumer takes it.
    answers_taken: Mutex<Option<mpsc::Receiver<Answer>>>,
}

impl Default for Hub {
    fn default() -> Self {
        let (answers, receiver) = mpsc::channel(ANSWER_QUEUE);
        Self {
            answers,
            answers_taken: Mutex::new(Some(receiver)),
            snapshots: watch::Sender::new(Arc::new(Snapshots::new())),
            responses: AtomicU64::new(0),
            metrics: XdsMetrics::default(),
            published_at: Mutex::new(Instant::now()),
            feedback: Mutex::new(BTreeMap::new()),
            feedback_changed: watch::Sender::new(0),
            synced: watch::Sender::new(false),
        }
    }
}

impl Hub {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Publishes the Envoy resources of every accepted (or held) Gateway in
    /// `outputs`. Gateways
    /// whose snapshot did not change keep the same `Arc`, and streams see a
    /// change only when something changed.
    pub fn publish(&self, outputs: &Outputs) {
        let current = self.snapshots.borrow().clone();
        let mut next = Snapshots::new();
        for (key, gateway) in &outputs.gateways {
            // A Gateway with nothing accepted has no configuration to serve:
            // its Envoys (after a restart of portico, say) keep what they have.
            if gateway.infra.is_none() {
                continue;
            }
            let id = gateway_id(key);
            let old = current.get(&id);
            let snapshot = Snapshot::following(&gateway.resources, old.map(|o| &**o));
            let entry = match old {
                Some(old) if **old == snapshot => Arc::clone(old),
                _ => {
                    self.measure(&id, &gateway.resources);
                    Arc::new(snapshot)
                }
            };
            next.insert(id, entry);
        }
        let changed = next.len() != current.len()
            || next
                .iter()
                .zip(current.iter())
                .any(|((ka, a), (kb, b))| ka != kb || !Arc::ptr_eq(a, b));
        self.synced
            .send_if_modified(|s| !std::mem::replace(s, true));
        if changed {
            *self
                .published_at
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Instant::now();
            self.snapshots.send_replace(Arc::new(next));
            self.forget_gone();
        }
    }

    /// Sets the snapshot size metrics of Gateway `id`.
    fn measure(&self, id: &str, r: &EnvoyResources) {
        let mut bytes = 0usize;
        for (kind, list) in [
            (ResourceType::Secret, &r.secrets),
            (ResourceType::Cluster, &r.clusters),
            (ResourceType::Endpoint, &r.endpoints),
            (ResourceType::Listener, &r.listeners),
            (ResourceType::Route, &r.routes),
        ] {
            bytes += list.iter().map(|x| x.body.len()).sum::<usize>();
            self.metrics
                .snapshot_resources
                .get_or_create(&GatewayTypeLabel {
                    gateway: id.into(),
                    resource_type: TypeLabel::of(kind).resource_type,
                })
                .set(i64::try_from(list.len()).unwrap_or(i64::MAX));
        }
        self.metrics
            .snapshot_bytes
            .get_or_create(&GatewayLabel { gateway: id.into() })
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Drops the feedback and stream metric of every Gateway that is not
    /// published and has no open stream.
    fn forget_gone(&self) {
        let mut all = self.lock();
        let published = self.snapshots.borrow();
        all.retain(|gateway, f| {
            let keep = f.streams > 0 || published.contains_key(gateway);
            if !keep {
                self.metrics.forget(gateway);
            }
            keep
        });
    }

    /// Responses sent to Envoys since start (every response carries changes).
    pub fn responses_sent(&self) -> u64 {
        self.responses.load(Ordering::Relaxed)
    }

    /// Time since the current snapshots were published.
    pub(crate) fn since_publish(&self) -> Duration {
        self.published_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed()
    }

    pub(crate) fn count_responses(&self, type_urls: impl Iterator<Item = ResourceType>) {
        for kind in type_urls {
            self.responses.fetch_add(1, Ordering::Relaxed);
            self.metrics
                .pushes
                .get_or_create(&TypeLabel::of(kind))
                .inc();
        }
    }

    /// Publishes snapshots directly, for tests that need a configuration
    /// translation would never produce (such as one Envoy rejects).
    pub fn publish_snapshots(&self, snapshots: Snapshots) {
        self.snapshots.send_replace(Arc::new(snapshots));
        self.synced.send_replace(true);
        self.forget_gone();
    }

    /// Resolves once the first snapshots have been published.
    pub async fn synced(&self) {
        let mut synced = self.synced.subscribe();
        let _ = synced.wait_for(|s| *s).await;
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshots>> {
        self.snapshots.subscribe()
    }

    pub fn feedback(&self, gateway: &str) -> GatewayFeedback {
        self.lock().get(gateway).cloned().unwrap_or_default()
    }

    /// What this replica's Envoys reported, for every Gateway they did.
    pub fn all_feedback(&self) -> BTreeMap<String, GatewayFeedback> {
        self.lock().clone()
    }

    /// The snapshot version served to each Gateway of `outputs` that is
    /// published.
    pub fn versions(&self, outputs: &Outputs) -> BTreeMap<ObjectKey, String> {
        let snapshots = self.snapshots.borrow();
        outputs
            .gateways
            .keys()
            .filter_map(|key| Some((key.clone(), snapshots.get(&gateway_id(key))?.version())))
            .collect()
    }

    /// Every answer from now on, in order; the first caller gets the queue.
    pub fn take_answers(&self) -> Option<mpsc::Receiver<Answer>> {
        self.answers_taken
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Ticks whenever any feedback changes.
    pub fn feedback_changes(&self) -> watch::Receiver<u64> {
        self.feedback_changed.subscribe()
    }

    pub(crate) fn record(&self, gateway: &str, feedback: &Feedback) {
        let label = GatewayLabel {
            gateway: gateway.into(),
        };
        match feedback {
            Feedback::Ack { kind, .. } => {
                self.metrics.acks.get_or_create(&TypeLabel::of(*kind)).inc();
                self.metrics.gateway_acks.get_or_create(&label).inc();
            }
            Feedback::Nack { kind, .. } => {
                self.metrics
                    .nacks
                    .get_or_create(&TypeLabel::of(*kind))
                    .inc();
                self.metrics.gateway_nacks.get_or_create(&label).inc();
            }
        };
        {
            let mut all = self.lock();
            let entry = all.entry(gateway.to_string()).or_default();
            match feedback {
                Feedback::Ack { snapshot, .. } => entry.acked = Some(snapshot.clone()),
                Feedback::Nack {
                    snapshot, message, ..
                } => entry.rejected = Some((snapshot.clone(), message.clone())),
            }
        }
        self.feedback_changed.send_modify(|n| *n += 1);
        let untaken = self
            .answers_taken
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some();
        if untaken {
            return;
        }
        let answer = match feedback {
            Feedback::Ack { snapshot, .. } => Answer {
                gateway: gateway.to_string(),
                snapshot: snapshot.clone(),
                rejected: None,
            },
            Feedback::Nack {
                snapshot, message, ..
            } => Answer {
                gateway: gateway.to_string(),
                snapshot: snapshot.clone(),
                rejected: Some(message.clone()),
            },
        };
        // A consumer that is gone hears nothing. A full queue loses this
        // answer; the next one still counts.
        if let Err(mpsc::error::TrySendError::Full(a)) = self.answers.try_send(answer) {
            tracing::warn!(gateway = %a.gateway, snapshot = %a.snapshot, "Envoy answer dropped: the translator is behind");
        }
    }

    pub(crate) fn stream_opened(&self, gateway: &str) {
        {
            // The metric changes under the feedback lock, so a concurrent
            // close that forgets the Gateway cannot remove a fresh count.
            let mut all = self.lock();
            all.entry(gateway.to_string()).or_default().streams += 1;
            let label = GatewayLabel {
                gateway: gateway.into(),
            };
            self.metrics.streams.get_or_create(&label).inc();
            // Zero until the first answer: a rate over them works at once.
            drop(self.metrics.gateway_acks.get_or_create(&label));
            drop(self.metrics.gateway_nacks.get_or_create(&label));
        }
        self.feedback_changed.send_modify(|n| *n += 1);
    }

    pub(crate) fn stream_closed(&self, gateway: &str) {
        {
            let mut all = self.lock();
            let label = GatewayLabel {
                gateway: gateway.into(),
            };
            let streams = all.get_mut(gateway).map(|entry| {
                entry.streams = entry.streams.saturating_sub(1);
                entry.streams
            });
            if streams == Some(0) && !self.snapshots.borrow().contains_key(gateway) {
                // The last Envoy of a Gateway that is gone.
                all.remove(gateway);
                self.metrics.forget(gateway);
            } else {
                self.metrics.streams.get_or_create(&label).dec();
            }
        }
        self.feedback_changed.send_modify(|n| *n += 1);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, GatewayFeedback>> {
        // The map stays consistent even if a holder panicked: every update is
        // a single assignment.
        self.feedback.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack() -> Feedback {
        Feedback::Ack {
            kind: ResourceType::Listener,
            snapshot: "v1".into(),
        }
    }

    #[test]
    fn feedback_and_stream_metrics_of_removed_gateways_are_forgotten() {
        let hub = Hub::default();
        hub.publish(&Outputs::of_gateways(&["a", "b"], true));
        for g in ["default/a", "default/b"] {
            hub.stream_opened(g);
            hub.record(g, &ack());
        }
        assert_eq!(hub.lock().len(), 2);
        assert!(hub.metrics.encode().contains("gateway=\"default/b\""));

        // b is removed while its Envoy is still connected: kept until it
        // disconnects, then forgotten.
        hub.publish(&Outputs::of_gateways(&["a"], true));
        assert_eq!(hub.lock().len(), 2);
        hub.stream_closed("default/b");
        assert_eq!(hub.lock().len(), 1);
        assert_eq!(hub.feedback("default/b"), GatewayFeedback::default());
        assert!(!hub.metrics.encode().contains("default/b"));

        // a's Envoy disconnects while a still exists: kept.
        hub.stream_closed("default/a");
        assert_eq!(hub.feedback("default/a").acked.as_deref(), Some("v1"));
        assert!(hub.metrics.encode().contains("gateway=\"default/a\""));
        // ...and a's removal forgets it at once.
        hub.publish(&Outputs::of_gateways(&[], true));
        assert!(hub.lock().is_empty());
        assert!(!hub.metrics.encode().contains("default/a"));

        // An Envoy of a Gateway that never existed leaves nothing behind.
        hub.stream_opened("default/stray");
        hub.stream_closed("default/stray");
        assert!(hub.lock().is_empty());
        assert!(!hub.metrics.encode().contains("stray"));
    }
}
