//! Writes statuses: GatewayClasses, Gateways and ListenerSets with server-side
//! apply on the status subresource (field manager `portico`; ListenerSets
//! first, so that a Gateway counting one never shows before the ListenerSet's
//! own status), route `status.parents` with a
//! merge patch guarded by `resourceVersion` that keeps other controllers'
//! entries exactly as they are (the list is shared, so applying it would take
//! ownership of theirs).
//!
//! In: `Inputs` (the live objects, whose statuses are what the API server
//! holds), translation's `Outputs`, and each Gateway's observed state. Out: only the writes whose content differs from the live
//! status, ignoring `lastTransitionTime`, at most `CONCURRENCY` at a time.
//! A condition keeps its live `lastTransitionTime` while its status stays.
//! What was sent for an object that no longer exists is forgotten.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use gateway_api::apis::standard::backendtlspolicies::{BackendTlsPolicy, BackendTlsPolicyStatus};
use gateway_api::experimental::gatewayclasses::{GatewayClass, GatewayClassStatus};
use gateway_api::experimental::gateways::{Gateway, GatewayStatus};
use gateway_api::experimental::grpcroutes::GrpcRoute;
use gateway_api::experimental::httproutes::{HttpRoute, HttpRouteStatus};
use gateway_api::experimental::listenersets::{ListenerSet, ListenerSetStatus};
use gateway_api::experimental::tcproutes::TcpRoute;
use gateway_api::experimental::tlsroutes::TlsRoute;
use gateway_api::experimental::udproutes::UdpRoute;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::gateway::{Observed, observe, requested};
use super::listener_set;
use crate::identity::CONTROLLER_NAME;
use crate::identity::FIELD_MANAGER;
use crate::inputs::{Inputs, ObjectKey};
use crate::metrics::ControlMetrics;
use crate::translate::Outputs;
use crate::translate::compile::routes::RouteKind;
use crate::translate::conditions::Condition;
use crate::translate::report::ListenerStatus;

/// Status writes in flight at once.
pub const CONCURRENCY: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    GatewayClass,
    ListenerSet,
    Gateway,
    Route(RouteKind),
    BackendTlsPolicy,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Self::GatewayClass => "GatewayClass",
            Self::Gateway => "Gateway",
            Self::Route(kind) => kind.name(),
            Self::BackendTlsPolicy => "BackendTLSPolicy",
            Self::ListenerSet => "ListenerSet",
        }
    }
}

/// A route object whose `status.parents` the writer reads.
trait LiveRoute: ResourceExt {
    fn status_json(&self) -> Value;
}

macro_rules! live_route {
    ($($t:ty),*) => {$(
        impl LiveRoute for $t {
            fn status_json(&self) -> Value {
                to_json(&self.status)
            }
        }
    )*};
}
live_route!(HttpRoute, GrpcRoute, TlsRoute, TcpRoute, UdpRoute);

/// One status write to make.
#[derive(Clone, Debug, PartialEq)]
pub struct Write {
    pub kind: Kind,
    pub key: ObjectKey,
    /// The whole status (classes, Gateways) or `{"parents": [...]}` (routes).
    pub status: Value,
    /// The live object's `resourceVersion` the write is based on.
    pub based_on: Option<String>,
}

/// The writes that would make live statuses match `outputs`. Pure.
pub fn plan(
    inputs: &Inputs,
    outputs: &Outputs,
    observed: &BTreeMap<ObjectKey, Observed<'_>>,
    now: &str,
) -> Vec<Write> {
    let mut writes = Vec::new();
    for (name, status) in &outputs.gateway_classes {
        let key = ObjectKey::new("", name.clone());
        let Some(live) = inputs.gateway_classes.get(&key) else {
            continue;
        };
        let live_status = to_json(&live.status);
        let desired = json!({
            "conditions": stamp(&status.conditions, live_status.get("conditions"), now),
            "supportedFeatures": status.supported_features,
        });
        if !same::<GatewayClassStatus>(&desired, &live_status) {
            writes.push(Write {
                kind: Kind::GatewayClass,
                key,
                status: desired,
                based_on: live.resource_version(),
            });
        }
    }
    plan_listener_sets(&mut writes, inputs, outputs, observed, now);
    for (key, output) in &outputs.gateways {
        let Some(live) = inputs.gateways.get(key) else {
            continue;
        };
        let live_status = to_json(&live.status);
        let requested = requested(live);
        let seen = Observed {
            requested: &requested,
            ..observed.get(key).copied().unwrap_or_default()
        };
        let (status, addresses) = observe(&output.status, seen);
        let mut desired = json!({
            "conditions": stamp(&status.conditions, live_status.get("conditions"), now),
            "listeners": listener_entries(&status.listeners, &live_status, now),
        });
        if !addresses.is_empty() {
            desired["addresses"] = json!(addresses);
        }
        if let Some(n) = status.attached_listener_sets {
            desired["attachedListenerSets"] = json!(n);
        }
        if seen.feedback.is_none() {
            keep_live_programmed(&mut desired, &live_status);
        }
        if !same::<GatewayStatus>(&desired, &live_status) {
            writes.push(Write {
                kind: Kind::Gateway,
                key: key.clone(),
                status: desired,
                based_on: live.resource_version(),
            });
        }
    }
    plan_routes(
        &mut writes,
        RouteKind::Http,
        &inputs.http_routes,
        outputs,
        now,
    );
    plan_routes(
        &mut writes,
        RouteKind::Grpc,
        &inputs.grpc_routes,
        outputs,
        now,
    );
    plan_routes(
        &mut writes,
        RouteKind::Tls,
        &inputs.tls_routes,
        outputs,
        now,
    );
    plan_routes(
        &mut writes,
        RouteKind::Tcp,
        &inputs.tcp_routes,
        outputs,
        now,
    );
    plan_routes(
        &mut writes,
        RouteKind::Udp,
        &inputs.udp_routes,
        outputs,
        now,
    );
    plan_policies(&mut writes, inputs, outputs, now);
    writes
}

/// ListenerSet statuses, `Programmed` decided from what was observed of
/// each one's Gateway.
fn plan_listener_sets(
    writes: &mut Vec<Write>,
    inputs: &Inputs,
    outputs: &Outputs,
    observed: &BTreeMap<ObjectKey, Observed<'_>>,
    now: &str,
) {
    for (key, output) in &outputs.listener_sets {
        let Some(live) = inputs.listener_sets.get(key) else {
            continue;
        };
        let live_status = to_json(&live.status);
        let requested = inputs
            .gateways
            .get(&output.gateway)
            .map(|g| requested(g))
            .unwrap_or_default();
        let seen = Observed {
            requested: &requested,
            ..observed.get(&output.gateway).copied().unwrap_or_default()
        };
        let status = listener_set::observe(&output.status, seen);
        let mut desired = json!({
            "conditions": stamp(&status.conditions, live_status.get("conditions"), now),
        });
        if !status.listeners.is_empty() {
            desired["listeners"] = json!(listener_entries(&status.listeners, &live_status, now));
        }
        if seen.feedback.is_none() {
            keep_live_programmed(&mut desired, &live_status);
        }
        if !same::<ListenerSetStatus>(&desired, &live_status) {
            writes.push(Write {
                kind: Kind::ListenerSet,
                key: key.clone(),
                status: desired,
                based_on: live.resource_version(),
            });
        }
    }
}

/// `status.listeners` of a Gateway or ListenerSet, each condition keeping
/// its live transition time.
fn listener_entries(listeners: &[ListenerStatus], live_status: &Value, now: &str) -> Vec<Value> {
    listeners
        .iter()
        .map(|l| {
            let live_listener = live_status
                .get("listeners")
                .and_then(Value::as_array)
                .and_then(|ls| ls.iter().find(|x| x.get("name") == Some(&json!(l.name))));
            json!({
                "name": l.name,
                "supportedKinds": l.supported_kinds,
                "attachedRoutes": l.attached_routes,
                "conditions": stamp(&l.conditions, live_listener.and_then(|x| x.get("conditions")), now),
            })
        })
        .collect()
}

/// Route `status.parents`: other controllers' entries as they are, ours as
/// computed (an entry for a parent we no longer serve is dropped).
fn plan_routes<K: LiveRoute>(
    writes: &mut Vec<Write>,
    kind: RouteKind,
    live_routes: &BTreeMap<ObjectKey, std::sync::Arc<K>>,
    outputs: &Outputs,
    now: &str,
) {
    for (key, live) in live_routes {
        let live_status = live.status_json();
        let computed = outputs.routes.get(&(kind, key.clone())).map(|s| {
            s.parents
                .iter()
                .map(|p| (json!(p.parent_ref), p.conditions.as_slice()))
                .collect()
        });
        let Some(desired) = shared_list(&live_status, SharedList::PARENTS, computed, now) else {
            continue;
        };
        // Every route kind's status has HTTPRoute's shape.
        if !same::<HttpRouteStatus>(&desired, &live_status) {
            writes.push(Write {
                kind: Kind::Route(kind),
                key: key.clone(),
                status: desired,
                based_on: live.resource_version(),
            });
        }
    }
}

/// BackendTLSPolicy `status.ancestors`: other controllers' entries as they
/// are, ours (one per Gateway using a targeted Service) as computed.
fn plan_policies(writes: &mut Vec<Write>, inputs: &Inputs, outputs: &Outputs, now: &str) {
    for (key, live) in &inputs.backend_tls_policies {
        let live_status = to_json(&live.status);
        let computed = outputs.backend_tls_policies.get(key).map(|s| {
            s.ancestors
                .iter()
                .map(|a| (json!(a.ancestor_ref), a.conditions.as_slice()))
                .collect()
        });
        let Some(desired) = shared_list(&live_status, SharedList::ANCESTORS, computed, now) else {
            continue;
        };
        if !same::<BackendTlsPolicyStatus>(&desired, &live_status) {
            writes.push(Write {
                kind: Kind::BackendTlsPolicy,
                key: key.clone(),
                status: desired,
                based_on: live.resource_version(),
            });
        }
    }
}

/// A status list several controllers share, and the key naming each
/// entry's object.
struct SharedList {
    list: &'static str,
    reference: &'static str,
}

impl SharedList {
    const PARENTS: Self = Self {
        list: "parents",
        reference: "parentRef",
    };
    const ANCESTORS: Self = Self {
        list: "ancestors",
        reference: "ancestorRef",
    };
}

/// Our entries of one shared list: each object's reference and conditions.
type Computed<'c> = Option<Vec<(Value, &'c [Condition])>>;

/// The desired shared list (`{"<list>": [...]}`): other controllers' entries
/// as read, ours as computed, each condition keeping its live transition
/// time. None when neither side has an entry of ours.
fn shared_list(
    live_status: &Value,
    shape: SharedList,
    computed: Computed<'_>,
    now: &str,
) -> Option<Value> {
    let live_entries: Vec<Value> = live_status
        .get(shape.list)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ours = |p: &Value| p.get("controllerName") == Some(&json!(CONTROLLER_NAME));
    if computed.is_none() && !live_entries.iter().any(ours) {
        return None;
    }
    let mut entries: Vec<Value> = live_entries.iter().filter(|p| !ours(p)).cloned().collect();
    for (reference, conditions) in computed.unwrap_or_default() {
        let live_entry = live_entries
            .iter()
            .find(|x| ours(x) && x.get(shape.reference) == Some(&reference));
        entries.push(json!({
            shape.reference: reference,
            "controllerName": CONTROLLER_NAME,
            "conditions": stamp(conditions, live_entry.and_then(|x| x.get("conditions")), now),
        }));
    }
    Some(json!({ shape.list: entries }))
}

/// Without any word from Envoy yet (portico just started), `Programmed`
/// stays what the API server holds rather than turning Pending for the
/// seconds Envoys take to reconnect.
fn keep_live_programmed(desired: &mut Value, live: &Value) {
    fn programmed(conditions: Option<&Value>) -> Option<Value> {
        conditions?
            .as_array()?
            .iter()
            .find(|c| c.get("type") == Some(&json!("Programmed")))
            .cloned()
    }
    fn replace(conditions: Option<&mut Value>, with: Value) {
        if let Some(list) = conditions.and_then(Value::as_array_mut)
            && let Some(c) = list
                .iter_mut()
                .find(|c| c.get("type") == Some(&json!("Programmed")))
        {
            *c = with;
        }
    }
    if let Some(p) = programmed(live.get("conditions")) {
        replace(desired.get_mut("conditions"), p);
    }
    let live_listeners = live.get("listeners").and_then(Value::as_array);
    if let Some(listeners) = desired.get_mut("listeners").and_then(Value::as_array_mut) {
        for l in listeners {
            let previous = live_listeners
                .and_then(|ls| ls.iter().find(|x| x.get("name") == l.get("name")))
                .and_then(|x| programmed(x.get("conditions")));
            if let Some(p) = previous {
                replace(l.get_mut("conditions"), p);
            }
        }
    }
}

fn to_json<T: Serialize>(v: &Option<T>) -> Value {
    v.as_ref()
        .and_then(|v| serde_json::to_value(v).ok())
        .unwrap_or_else(|| json!({}))
}

/// Conditions as the API wants them, each keeping its live
/// `lastTransitionTime` while its status is unchanged.
fn stamp(conditions: &[Condition], live: Option<&Value>, now: &str) -> Vec<Value> {
    conditions
        .iter()
        .map(|c| {
            let mut v = json!(c);
            let previous = live
                .and_then(Value::as_array)
                .and_then(|l| l.iter().find(|x| x.get("type") == Some(&json!(c.type_))))
                .filter(|x| x.get("status") == v.get("status"))
                .and_then(|x| x.get("lastTransitionTime"))
                .cloned();
            v["lastTransitionTime"] = previous.unwrap_or_else(|| json!(now));
            v
        })
        .collect()
}

/// Equal once both go through the typed status (so defaults and omitted
/// fields compare alike) with `lastTransitionTime` removed.
fn same<T: Serialize + DeserializeOwned>(desired: &Value, live: &Value) -> bool {
    let norm = |v: &Value| -> Option<Value> {
        let typed: T = serde_json::from_value(v.clone()).ok()?;
        let mut v = serde_json::to_value(typed).ok()?;
        strip_times(&mut v);
        Some(v)
    };
    match (norm(desired), norm(live)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

fn strip_times(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.remove("lastTransitionTime");
            map.values_mut().for_each(strip_times);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_times),
        _ => {}
    }
}

/// The current time as Kubernetes writes it.
pub fn now() -> String {
    serde_json::to_value(Time(k8s_openapi::jiff::Timestamp::now()))
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Per object: the last status written and the live version it was based on.
type Sent = BTreeMap<(Kind, ObjectKey), (Value, Option<String>)>;

/// Whether the object a write was for still exists.
fn exists(inputs: &Inputs, kind: Kind, key: &ObjectKey) -> bool {
    match kind {
        Kind::GatewayClass => inputs.gateway_classes.contains_key(key),
        Kind::Gateway => inputs.gateways.contains_key(key),
        Kind::ListenerSet => inputs.listener_sets.contains_key(key),
        Kind::Route(RouteKind::Http) => inputs.http_routes.contains_key(key),
        Kind::Route(RouteKind::Grpc) => inputs.grpc_routes.contains_key(key),
        Kind::Route(RouteKind::Tls) => inputs.tls_routes.contains_key(key),
        Kind::Route(RouteKind::Tcp) => inputs.tcp_routes.contains_key(key),
        Kind::Route(RouteKind::Udp) => inputs.udp_routes.contains_key(key),
        Kind::BackendTlsPolicy => inputs.backend_tls_policies.contains_key(key),
    }
}

/// Drops what was sent for objects that no longer exist.
fn forget_gone(sent: &mut Sent, inputs: &Inputs) {
    sent.retain(|(kind, key), _| exists(inputs, *kind, key));
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

    async fn send(&self, w: &Write) -> Result<(), kube::Error> {
        let apply = PatchParams::apply(FIELD_MANAGER).force();
        match w.kind {
            Kind::GatewayClass => {
                let api: Api<GatewayClass> = Api::all(self.client.clone());
                let body = json!({
                    "apiVersion": "gateway.networking.k8s.io/v1",
                    "kind": "GatewayClass",
                    "metadata": { "name": w.key.name },
                    "status": w.status,
                });
                api.patch_status(&w.key.name, &apply, &Patch::Apply(body))
                    .await?;
            }
            Kind::Gateway => {
                let api: Api<Gateway> = Api::namespaced(self.client.clone(), &w.key.namespace);
                let body = json!({
                    "apiVersion": "gateway.networking.k8s.io/v1",
                    "kind": "Gateway",
                    "metadata": { "name": w.key.name, "namespace": w.key.namespace },
                    "status": w.status,
                });
                api.patch_status(&w.key.name, &apply, &Patch::Apply(body))
                    .await?;
            }
            Kind::ListenerSet => {
                let api: Api<ListenerSet> = Api::namespaced(self.client.clone(), &w.key.namespace);
                let body = json!({
                    "apiVersion": "gateway.networking.k8s.io/v1",
                    "kind": "ListenerSet",
                    "metadata": { "name": w.key.name, "namespace": w.key.namespace },
                    "status": w.status,
                });
                api.patch_status(&w.key.name, &apply, &Patch::Apply(body))
                    .await?;
            }
            Kind::Route(RouteKind::Http) => self.patch_route::<HttpRoute>(w).await?,
            Kind::Route(RouteKind::Grpc) => self.patch_route::<GrpcRoute>(w).await?,
            Kind::Route(RouteKind::Tls) => self.patch_route::<TlsRoute>(w).await?,
            Kind::Route(RouteKind::Tcp) => self.patch_route::<TcpRoute>(w).await?,
            Kind::Route(RouteKind::Udp) => self.patch_route::<UdpRoute>(w).await?,
            // The same merge patch: `status.ancestors` is shared like
            // `status.parents`.
            Kind::BackendTlsPolicy => self.patch_route::<BackendTlsPolicy>(w).await?,
        }
        Ok(())
    }

    /// A merge patch of a shared status list, guarded by `resourceVersion`.
    async fn patch_route<K>(&self, w: &Write) -> Result<(), kube::Error>
    where
        K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), &w.key.namespace);
        let body = json!({
            "metadata": { "resourceVersion": w.based_on },
            "status": w.status,
        });
        api.patch_status(&w.key.name, &PatchParams::default(), &Patch::Merge(body))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::conditions::{CUT_MARKER, MAX_MESSAGE};
    use crate::xds::hub::GatewayFeedback;

    fn inputs() -> Inputs {
        let yaml = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: portico}\n\
                    spec: {controllerName: portico.dev/gateway-controller}\n---\n\
                    apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: default}\n\
                    spec:\n  gatewayClassName: portico\n  listeners: [{name: http, port: 80, protocol: HTTP}]\n";
        let mut b = crate::inputs::InputsBuilder::default();
        for o in crate::inputs::files::parse_documents(std::path::Path::new("t.yaml"), yaml)
            .expect("valid")
        {
            b.insert(o);
        }
        b.build()
    }

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
            (Kind::Route(RouteKind::Http), ObjectKey::new("default", "r")),
            (Kind::Route(RouteKind::Udp), ObjectKey::new("default", "u")),
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
    fn an_envoy_rejection_of_100_kib_is_written_capped() {
        let inputs = inputs();
        let outputs = crate::translate::translate(&inputs);
        let key = ObjectKey::new("default", "gw");
        let nack = "x".repeat(100 * 1024);
        let feedback = GatewayFeedback {
            streams: 1,
            acked: None,
            rejected: Some(("v1".into(), nack)),
        };
        let observed = BTreeMap::from([(
            key.clone(),
            Observed {
                feedback: Some(&feedback),
                current_version: Some("v1"),
                ..Observed::default()
            },
        )]);
        let writes = plan(&inputs, &outputs, &observed, "2026-01-01T00:00:00Z");
        let gateway = writes
            .iter()
            .find(|w| w.kind == Kind::Gateway && w.key == key)
            .expect("a Gateway status write");
        let mut messages = Vec::new();
        let mut conditions: Vec<&Value> = gateway.status["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        for l in gateway.status["listeners"].as_array().into_iter().flatten() {
            conditions.extend(l["conditions"].as_array().into_iter().flatten());
        }
        for c in conditions {
            let m = c["message"].as_str().expect("message");
            assert!(m.len() <= MAX_MESSAGE, "{} bytes", m.len());
            messages.push(m);
        }
        let capped = messages
            .iter()
            .filter(|m| m.ends_with(CUT_MARKER) && m.contains("Envoy rejected"))
            .count();
        assert_eq!(capped, 2, "the Gateway's and the listener's Programmed");
    }
}
