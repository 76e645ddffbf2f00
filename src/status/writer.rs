//! The status client: sends the writes `plan` found. GatewayClasses,
//! Gateways and ListenerSets by server-side apply on the status subresource
//! (field manager `portico`), routes' and BackendTLSPolicies' shared lists by
//! a merge patch guarded by `resourceVersion` that keeps other controllers'
//! entries as the plan read them. At most `CONCURRENCY` writes in flight; a
//! write already sent for the same live version is skipped; a failed one
//! (a conflict: the object moved on) is planned again on the next round from
//! the newer live object. What was sent for an object that no longer exists
//! is forgotten.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use super::plan::{Write, strip_times};
use crate::identity::FIELD_MANAGER;
use crate::inputs::kinds::Status;
use crate::inputs::{Inputs, Kind, ObjectKey};
use crate::metrics::ControlMetrics;

/// Status writes in flight at once.
pub const CONCURRENCY: usize = 8;

/// Per object: the last status written and the live version it was based on.
type Sent = BTreeMap<(Kind, ObjectKey), (Value, Option<String>)>;

/// Drops what was sent for objects that no longer exist.
fn forget_gone(sent: &mut Sent, inputs: &Inputs) {
    sent.retain(|(kind, key), _| kind.contains(inputs, key));
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

    /// Forgets what was sent for objects `inputs` no longer holds.
    pub fn forget_gone(&self, inputs: &Inputs) {
        forget_gone(
            &mut self.sent.lock().unwrap_or_else(|e| e.into_inner()),
            inputs,
        );
    }

    /// Writes what `plan` found; returns how many writes succeeded.
    pub async fn write(&self, writes: Vec<Write>) -> usize {
        let fresh: Vec<Write> = {
            let sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
            writes
                .into_iter()
                .filter(|w| {
                    let without_times = |v: &Value| {
                        let mut v = v.clone();
                        strip_times(&mut v);
                        v
                    };
                    sent.get(&(w.kind, w.key.clone())).is_none_or(|(s, based)| {
                        without_times(s) != without_times(&w.status) || *based != w.based_on
                    })
                })
                .collect()
        };
        let results: Vec<bool> = futures::stream::iter(fresh)
            .map(|w| async move {
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
                            .insert((w.kind, w.key.clone()), (w.status, w.based_on));
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
    fn what_was_sent_for_deleted_objects_is_forgotten() {
        let inputs = inputs();
        let mut sent = Sent::new();
        let entry = (json!({}), None);
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
}
