//! The operator's metrics and their exposition on `/metrics`: what the
//! control plane does besides xDS (`xds::metrics` has that) — translations
//! by kind and how long they take, the objects read by kind and how many of
//! them are accepted, provisioning failures by step, status writes by kind
//! and result with their latency, and whether this replica leads. Every
//! label takes a fixed set of values (kinds, steps, results), so the number
//! of series does not grow with the cluster.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::inputs::{Inputs, Kind};
use crate::translate::Outputs;
use crate::translate::conditions::{holds, spec};
use crate::xds::metrics::XdsMetrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AcceptedLabel {
    pub kind: &'static str,
    pub accepted: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabel {
    pub step: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabel {
    pub kind: &'static str,
    pub result: &'static str,
}

/// What the translator did with a new snapshot of the inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Translation {
    /// Everything translated again.
    Full,
    /// Only endpoints recomputed.
    Endpoints,
    /// Only statuses changed: nothing translated.
    StatusOnly,
}

impl Translation {
    fn label(self) -> KindLabel {
        KindLabel {
            kind: match self {
                Self::Full => "full",
                Self::Endpoints => "endpoints",
                Self::StatusOnly => "status_only",
            },
        }
    }
}

#[derive(Debug)]
pub struct ControlMetrics {
    translations: Family<KindLabel, Counter>,
    translation_seconds: Family<KindLabel, Histogram>,
    objects: Family<KindLabel, Gauge>,
    accepted: Family<AcceptedLabel, Gauge>,
    provision_errors: Family<StepLabel, Counter>,
    status_writes: Family<WriteLabel, Counter>,
    status_write_seconds: Histogram,
    leader: Gauge,
}

/// Steps of provisioning that can fail.
const PROVISION_STEPS: [&str; 4] = ["certificate", "render", "apply", "remove"];
/// How a status write ends.
const WRITE_RESULTS: [&str; 3] = ["written", "conflict", "failed"];

impl Default for ControlMetrics {
    fn default() -> Self {
        let metrics = Self::empty();
        // Every series exists from the start, at zero: a rate or an alert
        // over it works before the first event.
        for how in [
            Translation::Full,
            Translation::Endpoints,
            Translation::StatusOnly,
        ] {
            drop(metrics.translations.get_or_create(&how.label()));
            drop(metrics.translation_seconds.get_or_create(&how.label()));
        }
        for step in PROVISION_STEPS {
            drop(metrics.provision_errors.get_or_create(&StepLabel { step }));
        }
        let written = Kind::ALL.iter().filter(|k| k.status().written());
        for kind in written.map(|k| k.name()) {
            for result in WRITE_RESULTS {
                drop(
                    metrics
                        .status_writes
                        .get_or_create(&WriteLabel { kind, result }),
                );
            }
        }
        metrics
    }
}

impl ControlMetrics {
    fn empty() -> Self {
        Self {
            translations: Family::default(),
            // 0.1 ms to about 3 s.
            translation_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0001, 2.0, 16))
            }),
            objects: Family::default(),
            accepted: Family::default(),
            provision_errors: Family::default(),
            status_writes: Family::default(),
            // 1 ms to about 16 s.
            status_write_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            leader: Gauge::default(),
        }
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "translations",
            "Snapshots of the inputs handled, by what was recomputed",
            self.translations.clone(),
        );
        registry.register(
            "translation_duration_seconds",
            "Time to handle a snapshot of the inputs, by what was recomputed",
            self.translation_seconds.clone(),
        );
        registry.register(
            "objects",
            "Objects read from the cluster, by kind",
            self.objects.clone(),
        );
        registry.register(
            "objects_accepted",
            "Gateways, routes and policies portico is responsible for, by kind and whether they are accepted",
            self.accepted.clone(),
        );
        registry.register(
            "provision_errors",
            "Failures provisioning Envoy fleets, by step",
            self.provision_errors.clone(),
        );
        registry.register(
            "status_writes",
            "Status writes, by kind and result (written, conflict, failed)",
            self.status_writes.clone(),
        );
        registry.register(
            "status_write_duration_seconds",
            "Time one status write takes",
            self.status_write_seconds.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica leads (provisions and writes statuses)",
            self.leader.clone(),
        );
    }

    /// One snapshot of the inputs handled in `seconds`.
    pub fn translated(&self, how: Translation, seconds: f64) {
        self.translations.get_or_create(&how.label()).inc();
        self.translation_seconds
            .get_or_create(&how.label())
            .observe(seconds);
    }

    /// The object counts of `inputs` and the accepted counts of `outputs`.
    pub fn observe(&self, inputs: &Inputs, outputs: &Outputs) {
        for (kind, count) in inputs.counts() {
            self.objects
                .get_or_create(&KindLabel { kind })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        for (kind, accepted, rejected) in accepted_counts(outputs) {
            for (flag, n) in [("true", accepted), ("false", rejected)] {
                self.accepted
                    .get_or_create(&AcceptedLabel {
                        kind,
                        accepted: flag,
                    })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    }

    pub fn provision_failed(&self, step: &'static str) {
        self.provision_errors
            .get_or_create(&StepLabel { step })
            .inc();
    }

    pub fn status_written(&self, kind: &'static str, result: &'static str, seconds: f64) {
        self.status_writes
            .get_or_create(&WriteLabel { kind, result })
            .inc();
        self.status_write_seconds.observe(seconds);
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }
}

/// Per kind: objects accepted and objects not accepted. A Gateway counts by
/// its `Accepted` condition, a route or policy as accepted when every parent
/// (ancestor) accepts it.
fn accepted_counts(outputs: &Outputs) -> Vec<(&'static str, usize, usize)> {
    let gateway =
        |s: &crate::translate::report::GatewayStatus| holds(&s.conditions, spec::ACCEPTED);
    let mut out = vec![(
        "Gateway",
        outputs
            .gateways
            .values()
            .filter(|g| gateway(&g.status))
            .count(),
        outputs
            .gateways
            .values()
            .filter(|g| !gateway(&g.status))
            .count(),
    )];
    let sets = outputs
        .listener_sets
        .values()
        .filter(|s| holds(&s.status.conditions, spec::ACCEPTED))
        .count();
    out.push(("ListenerSet", sets, outputs.listener_sets.len() - sets));
    for (kind, parents) in outputs.route_parents() {
        let accepted = parents.iter().filter(|all_accepted| **all_accepted).count();
        out.push((kind, accepted, parents.len() - accepted));
    }
    out
}

/// Every metric of a running portico, in one exposition.
pub struct Metrics {
    pub control: Arc<ControlMetrics>,
    registry: Registry,
}

impl Metrics {
    pub fn new(xds: &XdsMetrics) -> Self {
        let control = Arc::new(ControlMetrics::default());
        let mut registry = Registry::default();
        xds.register(registry.sub_registry_with_prefix("portico_xds"));
        control.register(registry.sub_registry_with_prefix("portico"));
        Self { control, registry }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::{InputsBuilder, files};
    use std::path::Path;

    const CASE: &str = "
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: portico}
spec: {controllerName: portico.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: portico
  listeners: [{name: http, protocol: HTTP, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: broken, namespace: default}
spec:
  gatewayClassName: portico
  listeners: [{name: x, protocol: SCTP, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ok, namespace: default}
spec:
  parentRefs: [{name: gw}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: wrong-section, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: nope}]
";

    #[test]
    fn objects_and_acceptance_are_counted_by_kind() {
        let mut builder = InputsBuilder::default();
        for object in files::parse_documents(Path::new("case.yaml"), CASE).expect("parses") {
            builder.insert(object);
        }
        let inputs = builder.build();
        let outputs = crate::translate::translate(&inputs);
        let xds = XdsMetrics::default();
        let metrics = Metrics::new(&xds);
        // The xDS families are shared, not copied.
        xds.gateway_acks
            .get_or_create(&crate::xds::metrics::GatewayLabel {
                gateway: "default/gw".into(),
            })
            .inc();
        metrics.control.translated(Translation::Full, 0.002);
        metrics.control.observe(&inputs, &outputs);
        metrics.control.set_leader(true);
        let text = metrics.encode();
        for line in [
            "portico_objects{kind=\"HTTPRoute\"} 2",
            "portico_objects{kind=\"Gateway\"} 2",
            "portico_objects_accepted{kind=\"Gateway\",accepted=\"true\"} 1",
            "portico_objects_accepted{kind=\"Gateway\",accepted=\"false\"} 1",
            "portico_objects_accepted{kind=\"HTTPRoute\",accepted=\"true\"} 1",
            "portico_objects_accepted{kind=\"HTTPRoute\",accepted=\"false\"} 1",
            "portico_translations_total{kind=\"full\"} 1",
            "portico_leader 1",
            "portico_xds_gateway_acks_total{gateway=\"default/gw\"} 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert_eq!(text.matches("# EOF").count(), 1, "one exposition");
    }
}
