//! The `render` view of `Outputs`: per Gateway, its Envoy resources in Envoy's
//! JSON form and its status, plus the statuses of classes, ListenerSets and
//! routes, as one JSON document (printed as JSON or YAML by the CLI,
//! snapshotted by tests).

pub mod envoy_json;

use serde_json::{Value, json};

use crate::inputs::ObjectKey;
use crate::translate::Outputs;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;

use crate::translate::encode::{EnvoyResources, Resource};

/// Envoy resources of one Gateway as JSON lists.
pub fn envoy_resources(r: &EnvoyResources) -> Result<Value, String> {
    fn list<M: prost::Name>(items: &[Resource]) -> Result<Value, String> {
        let full_name = M::full_name();
        items
            .iter()
            .map(|r| envoy_json::encoded_to_json(&full_name, &r.body))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array)
    }
    let mut out = json!({
        "listeners": list::<Listener>(&r.listeners)?,
        "routes": list::<RouteConfiguration>(&r.routes)?,
        "clusters": list::<Cluster>(&r.clusters)?,
        "endpoints": list::<ClusterLoadAssignment>(&r.endpoints)?,
    });
    if !r.secrets.is_empty() {
        let mut secrets = list::<Secret>(&r.secrets)?;
        for s in secrets.as_array_mut().into_iter().flatten() {
            redact_private_key(s);
        }
        out["secrets"] = secrets;
    }
    Ok(out)
}

/// Private keys never leave portico except to Envoy: the rendered form
/// keeps only their size.
fn redact_private_key(secret: &mut Value) {
    let Some(key) = secret.pointer_mut("/tls_certificate/private_key") else {
        return;
    };
    let size = key
        .get("inline_bytes")
        .and_then(Value::as_str)
        .map_or(0, str::len);
    *key = json!({ "inline_bytes": format!("<redacted: {size} base64 characters>") });
}

/// Statuses only: every class, Gateway and route portico owns.
pub fn statuses(outputs: &Outputs) -> Value {
    let gateways: Vec<Value> = outputs
        .gateways
        .iter()
        .map(|(key, gw)| json!({"namespace": key.namespace, "name": key.name, "status": gw.status}))
        .collect();
    let routes: Vec<Value> = outputs
        .routes
        .iter()
        .map(|((kind, key), status)| json!({"kind": kind.name(), "namespace": key.namespace, "name": key.name, "status": status}))
        .collect();
    let mut doc =
        json!({"gatewayClasses": classes(outputs), "gateways": gateways, "routes": routes});
    add_listener_sets(&mut doc, outputs, None);
    add_policies(&mut doc, outputs, None);
    doc
}

/// ListenerSet statuses, when there are any (of the Gateway `only`, if
/// given).
fn add_listener_sets(doc: &mut Value, outputs: &Outputs, only: Option<&ObjectKey>) {
    let sets: Vec<Value> = outputs
        .listener_sets
        .iter()
        .filter(|(_, set)| only.is_none_or(|o| *o == set.gateway))
        .map(|(key, set)| {
            json!({
                "namespace": key.namespace,
                "name": key.name,
                "gateway": set.gateway.to_string(),
                "status": set.status,
            })
        })
        .collect();
    if !sets.is_empty() {
        doc["listenerSets"] = Value::Array(sets);
    }
}

/// BackendTLSPolicy statuses, when there are any (limited to the ancestors
/// that are `only`, if given).
fn add_policies(doc: &mut Value, outputs: &Outputs, only: Option<&ObjectKey>) {
    let policies: Vec<Value> = outputs
        .backend_tls_policies
        .iter()
        .filter_map(|(key, status)| {
            let ancestors: Vec<_> = status
                .ancestors
                .iter()
                .filter(|a| only.is_none_or(|o| a.ancestor_ref.names(&key.namespace, o)))
                .collect();
            (!ancestors.is_empty()).then(|| {
                json!({"kind": "BackendTLSPolicy", "namespace": key.namespace, "name": key.name, "status": {"ancestors": ancestors}})
            })
        })
        .collect();
    if !policies.is_empty() {
        doc["policies"] = Value::Array(policies);
    }
}

fn classes(outputs: &Outputs) -> Vec<Value> {
    outputs
        .gateway_classes
        .iter()
        .map(|(name, status)| json!({"name": name, "status": status}))
        .collect()
}

/// The whole render document; `only` limits it to one Gateway (and the
/// routes attached to it).
pub fn document(outputs: &Outputs, only: Option<&ObjectKey>) -> Result<Value, String> {
    let mut gateways = Vec::new();
    for (key, gw) in &outputs.gateways {
        if only.is_some_and(|o| o != key) {
            continue;
        }
        gateways.push(json!({
            "namespace": key.namespace,
            "name": key.name,
            "status": gw.status,
            "envoy": envoy_resources(&gw.resources)?,
        }));
    }
    let routes: Vec<Value> = outputs
        .routes
        .iter()
        .filter_map(|((kind, key), status)| {
            let parents: Vec<_> = status
                .parents
                .iter()
                .filter(|p| only.is_none_or(|o| names_gateway(outputs, &p.parent_ref, &key.namespace, o)))
                .collect();
            (!parents.is_empty()).then(|| {
                json!({"kind": kind.name(), "namespace": key.namespace, "name": key.name, "status": {"parents": parents}})
            })
        })
        .collect();
    let mut doc = json!({
        "gatewayClasses": classes(outputs),
        "gateways": gateways,
        "routes": routes,
    });
    add_listener_sets(&mut doc, outputs, only);
    add_policies(&mut doc, outputs, only);
    Ok(doc)
}

/// Whether a route's parentRef (written in `namespace`) names `gateway`, or
/// one of its ListenerSets.
fn names_gateway(
    outputs: &Outputs,
    parent: &crate::translate::report::ParentRef,
    namespace: &str,
    gateway: &ObjectKey,
) -> bool {
    if parent.kind.as_deref() != Some("ListenerSet") {
        return parent.names(namespace, gateway);
    }
    outputs
        .listener_sets
        .iter()
        .any(|(key, set)| set.gateway == *gateway && parent.names(namespace, key))
}
