//! The status client: sends the writes `plan` found. GatewayClasses,
//! Gateways and ListenerSets by server-side apply on the status subresource
//! (field manager `portico`), routes' and BackendTLSPolicies' shared lists by
//! a merge patch guarded by `resourceVersion` that keeps other controllers'
//! entries as the plan read them. At most `CONCURRENCY` writes in flight; a
//! write already sent for the same live version is skipped (until its own
//! watch event brings the new version, rounds plan it again); a failed one
//! (a conflict: the object moved on) is planned again on the next round from
//! the newer live object. What was sent for an object that no longer exists
//! is forgotten: the objects the plan found gone since its round before
//! (`forget`), or, with no round before, every object checked
//! (`forget_gone`). What was sent is kept as a fingerprint of the status
//! without transition times, not as the status.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use super::plan::Write;
use crate::identity::FIELD_MANAGER;
use crate::inputs::kinds::Status;
use crate::inputs::{Inputs, Kind, ObjectKey};
use crate::metrics::ControlMetrics;

/// Status writes in flight at once. kube's client has no rate limit of its
/// own; the API server's priority and fairness gives a ServiceAccount's
/// requests (`workload-low`) a share of about a hundred seats, so 32 keep a
/// burst's writes flowing without queueing behind that share (each in-flight
/// request holds one HTTP/1.1 connection).
pub const CONCURRENCY: usize = 32;

/// Per object: the fingerprint of the last status written (`fingerprint`)
/// and the live version it was based on.
type Sent = BTreeMap<(Kind, ObjectKey), (u64, Option<String>)>;

/// A status's fingerprint, `lastTransitionTime` left out: two statuses equal
/// but for their transition times have the same one. Read in place, no copy.
fn fingerprint(status: &Value) -> u64 {
    fn feed(v: &Value, h: &mut DefaultHasher) {
        match v {
            Value::Null => 0u8.hash(h),
            Value::Bool(b) => (1u8, b).hash(h),
            Value::Number(n) => {
                2u8.hash(h);
                match (n.as_u64(), n.as_i64()) {
                    (Some(u), _) => (0u8, u).hash(h),
                    (None, Some(i)) => (1u8, i).hash(h),
                    _ => (2u8, n.as_f64().map(f64::to_bits)).hash(h),
                }
            }
            Value::String(s) => (3u8, s).hash(h),
            Value::Array(items) => {
                (4u8, items.len()).hash(h);
                items.iter().for_each(|i| feed(i, h));
            }
            Value::Object(map) => {
                5u8.hash(h);
                for (k, v) in map.iter().filter(|(k, _)| *k != "lastTransitionTime") {
                    k.hash(h);
                    feed(v, h);
                }
                6u8.hash(h);
            }
        }
    }
    let mut h = DefaultHasher::new();
    feed(status, &mut h);
    h.finish()
}

/// Drops what was sent for objects that no longer exist, looking at each.
fn forget_gone(sent: &mut Sent, inputs: &Inputs) {
    sent.retain(|(kind, key), _| kind.contains(inputs, key));
}

/// Drops what was sent for the objects `gone`.
fn forget(sent: &mut Sent, gone: &[(Kind, ObjectKey)]) {
    for key in gone {
        sent.remove(key);
    }
}

/// Sends planned writes, skipping any already sent for the same live version.
pub struct StatusWriter {
    client: Client,
    sent: Mutex<Sent>,
    metrics: Option<Arc<ControlMetrics>>,
}

impl StatusWriter {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            sent: Mutex::default(),
            metrics: None,
        }
    }

    /// Counts writes and their latency in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<ControlMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Forgets what was sent for these objects, gone.
    pub fn forget(&self, gone: &[(Kind, ObjectKey)]) {
        if !gone.is_empty() {
            forget(
                &mut self.sent.lock().unwrap_or_else(|e| e.into_inner()),
                gone,
            );
        }
    }

    /// Forgets what was sent for objects `inputs` no longer holds, looking
    /// at every one.
    pub fn forget_gone(&self, inputs: &Inputs) {
        forget_gone(
            &mut self.sent.lock().unwrap_or_else(|e| e.into_inner()),
            inputs,
        );
    }

    /// Writes what `plan` found; returns how many writes succeeded.
    pub async fn write(&self, writes: Vec<Write>) -> usize {
        let fresh: Vec<(Write, u64)> = {
            let sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
            writes
                .into_iter()
                .map(|w| {
                    let print = fingerprint(&w.status);
                    (w, print)
                })
                .filter(|(w, print)| {
                    sent.get(&(w.kind, w.key.clone()))
                        .is_none_or(|(s, based)| *s != *print || *based != w.based_on)
                })
                .collect()
        };
        let results: Vec<bool> = futures::stream::iter(fresh)
            .map(|(w, print)| async move {
                let started = Instant::now();
                let result = self.send(&w).await;
                if let Some(m) = &self.metrics {
                    let outcome = match &result {
                        Ok(()) => "written",
                        Err(kube::Error::Api(e)) if e.code == 409 => "conflict",
                        Err(_) => "failed",
                    };
                    m.status_written(w.kind.name(), outcome, started.elapsed().as_secs_f64());
                }
                match result {
                    Ok(()) => {
                        self.sent
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert((w.kind, w.key), (print, w.based_on));
                        true
                    }
                    Err(e) => {
                        tracing::info!(kind = ?w.kind, object = %w.key, error = %e, "status write failed; retried on the next round");
                        false
                    }
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        results.into_iter().filter(|ok| *ok).count()
    }

    /// The whole status by server-side apply, or a shared list by a merge
    /// patch guarded by `resourceVersion` (the list is shared, so applying
    /// it would take ownership of other controllers' entries).
    async fn send(&self, w: &Write) -> Result<(), kube::Error> {
        let resource = w.kind.api_resource();
        let api: Api<DynamicObject> = if w.key.namespace.is_empty() {
            Api::all_with(self.client.clone(), &resource)
        } else {
            Api::namespaced_with(self.client.clone(), &w.key.namespace, &resource)
        };
        let (params, patch) = if w.kind.status() == Status::Owned {
            let mut metadata = json!({ "name": w.key.name });
            if !w.key.namespace.is_empty() {
                metadata["namespace"] = json!(w.key.namespace);
            }
            let body = json!({
                "apiVersion": resource.api_version,
                "kind": resource.kind,
                "metadata": metadata,
                "status": w.status,
            });
            (
                PatchParams::apply(FIELD_MANAGER).force(),
                Patch::Apply(body),
            )
        } else {
            let body = json!({
                "metadata": { "resourceVersion": w.based_on },
                "status": w.status,
            });
            (PatchParams::default(), Patch::Merge(body))
        };
        api.patch_status(&w.key.name, &params, &patch).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::plan::tests::inputs;

    #[test]
    fn fingerprints_differ_but_for_transition_times() {
        let status = |time: &str, reason: &str| {
            json!({"parents": [{"controllerName": "portico.dev/gateway-controller",
                "parentRef": {"name": "gw"},
                "conditions": [{"type": "Accepted", "status": "True", "reason": reason,
                                "observedGeneration": 1, "lastTransitionTime": time}]}]})
        };
        let a = fingerprint(&status("2026-01-01T00:00:00Z", "Accepted"));
        assert_eq!(a, fingerprint(&status("2027-01-01T00:00:00Z", "Accepted")));
        assert_ne!(
            a,
            fingerprint(&status("2026-01-01T00:00:00Z", "NotAllowed"))
        );
        assert_ne!(
            fingerprint(&json!({"a": [1]})),
            fingerprint(&json!({"a": [[1]]}))
        );
        assert_ne!(
            fingerprint(&json!({"a": "1"})),
            fingerprint(&json!({"a": 1}))
        );
        assert_ne!(fingerprint(&json!([{}, {}])), fingerprint(&json!([{}])));
    }

    #[test]
    fn what_was_sent_for_deleted_objects_is_forgotten() {
        let inputs = inputs();
        let mut sent = Sent::new();
        let entry = (fingerprint(&json!({})), None);
        for (kind, key) in [
            (Kind::GatewayClass, ObjectKey::new("", "portico")),
            (Kind::Gateway, ObjectKey::new("default", "gw")),
            (Kind::Gateway, ObjectKey::new("default", "deleted")),
            (Kind::GatewayClass, ObjectKey::new("", "deleted")),
            (Kind::HttpRoute, ObjectKey::new("default", "r")),
            (Kind::UdpRoute, ObjectKey::new("default", "u")),
            (Kind::BackendTlsPolicy, ObjectKey::new("default", "p")),
        ] {
            sent.insert((kind, key), entry.clone());
        }
        forget_gone(&mut sent, &inputs);
        let left: Vec<_> = sent.keys().cloned().collect();
        assert_eq!(
            left,
            vec![
                (Kind::GatewayClass, ObjectKey::new("", "portico")),
                (Kind::Gateway, ObjectKey::new("default", "gw")),
            ]
        );
        forget_gone(&mut sent, &Inputs::default());
        assert!(sent.is_empty());
    }

    #[test]
    fn what_was_sent_for_objects_found_gone_is_forgotten_alone() {
        let mut sent = Sent::new();
        let entry = (fingerprint(&json!({})), Some("1".to_string()));
        let route = |name: &str| (Kind::HttpRoute, ObjectKey::new("default", name));
        for name in ["a", "b", "c"] {
            sent.insert(route(name), entry.clone());
        }
        forget(&mut sent, &[route("b"), route("never-sent")]);
        let left: Vec<_> = sent.keys().cloned().collect();
        assert_eq!(left, vec![route("a"), route("c")]);
    }
}
