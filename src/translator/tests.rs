use std::path::Path;

use super::*;
use crate::inputs::InputsBuilder;
use crate::inputs::files::parse_documents;
use crate::metrics::Metrics;
use crate::translate::quarantine::REJECTED_BY_ENVOY;

const GATEWAY: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: portico, generation: 1}\n\
    spec: {controllerName: portico.dev/gateway-controller}\n---\n\
    apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: default, generation: 1}\n\
    spec:\n  gatewayClassName: portico\n  listeners: [{name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}]\n\
    ---\napiVersion: v1\nkind: Service\nmetadata: {name: svc, namespace: tenant}\nspec: {ports: [{port: 80}]}\n";

/// An HTTPRoute `name` in namespace `tenant` with one rule matching `path`;
/// `status`, when given, is appended as its status.
fn route(name: &str, generation: i64, path: &str, status: &str) -> String {
    format!(
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
         metadata: {{name: {name}, namespace: tenant, generation: {generation}}}\n\
         spec:\n  parentRefs: [{{name: gw, namespace: default}}]\n  hostnames: [{name}.example]\n  rules:\n\
         \x20 - matches: [{{path: {{type: PathPrefix, value: {path}}}}}]\n    backendRefs: [{{name: svc, port: 80}}]\n{status}"
    )
}

/// The EndpointSlice of `svc` with one ready address.
fn endpoints(address: &str) -> String {
    format!(
        "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: svc-1, namespace: tenant, labels: {{kubernetes.io/service-name: svc}}}}\n\
         addressType: IPv4\nports: [{{port: 8080}}]\nendpoints: [{{addresses: [{address}]}}]\n"
    )
}

/// A route status saying Envoy rejected generation 1, as portico writes it.
const REJECTED_STATUS: &str = "status:\n  parents:\n  - parentRef: {name: gw, namespace: default}\n\
    \x20   controllerName: portico.dev/gateway-controller\n    conditions:\n\
    \x20   - {type: Accepted, status: \"False\", reason: RejectedByEnvoy, message: Envoy rejected it, \
    observedGeneration: 1, lastTransitionTime: \"2024-01-01T00:00:00Z\"}\n";

fn inputs(documents: &[String]) -> Arc<Inputs> {
    let mut b = InputsBuilder::default();
    let text = format!("{GATEWAY}{}", documents.concat());
    for o in parse_documents(Path::new("test.yaml"), &text).expect("parses") {
        b.insert(o);
    }
    Arc::new(b.build())
}

fn gateway() -> crate::inputs::ObjectKey {
    crate::inputs::ObjectKey::new("default", "gw")
}

/// Whether any route configuration of the Gateway names `path`.
fn serves(outputs: &Outputs, path: &str) -> bool {
    let gateway = &outputs.gateways[&gateway()];
    let needle = path.as_bytes();
    gateway
        .resources
        .routes
        .iter()
        .any(|r| r.body.windows(needle.len()).any(|w| w == needle))
}

/// The reason of the route's `Accepted` condition.
fn accepted_reason(outputs: &Outputs, name: &str) -> Option<String> {
    let id = (
        crate::translate::compile::routes::RouteKind::Http,
        crate::inputs::ObjectKey::new("tenant", name),
    );
    let status = outputs.routes.get(&id)?;
    status.parents[0]
        .conditions
        .iter()
        .find(|c| c.type_ == crate::translate::conditions::spec::ACCEPTED)
        .map(|c| c.reason.to_string())
}

fn translator() -> Translator {
    Translator::new(Options::default(), Arc::default())
}

/// The Gateway's published snapshot version.
fn published(hub: &Hub) -> Option<String> {
    hub.subscribe()
        .borrow()
        .get("default/gw")
        .map(|s| s.version())
}

/// Envoy's answer to the Gateway's current snapshot.
fn answer(hub: &Hub, rejected: Option<&str>) -> Answer {
    Answer {
        gateway: "default/gw".into(),
        snapshot: published(hub).expect("published"),
        rejected: rejected.map(str::to_string),
    }
}

#[test]
fn the_first_snapshot_is_translated_in_full_and_published() {
    let hub = Hub::new();
    let mut t = translator();
    let step = t.next(inputs(&[route("a", 1, "/a", "")]), &hub);
    assert_eq!(step.how, Translation::Full);
    assert!(serves(&step.outputs, "/a"));
    assert!(published(&hub).is_some());
}

#[test]
fn a_status_only_change_translates_nothing_and_publishes_nothing() {
    let hub = Hub::new();
    let mut t = translator();
    let first = Arc::clone(&t.next(inputs(&[route("a", 1, "/a", "")]), &hub).outputs);
    let snapshots = hub.subscribe().borrow().clone();
    // The same generation with a status written back.
    let step = t.next(inputs(&[route("a", 1, "/a", REJECTED_STATUS)]), &hub);
    assert_eq!(step.how, Translation::StatusOnly);
    assert!(Arc::ptr_eq(&first, &step.outputs), "the same outputs");
    assert!(
        Arc::ptr_eq(&snapshots, &hub.subscribe().borrow()),
        "nothing published"
    );
    // A new generation is no status change.
    let step = t.next(inputs(&[route("a", 2, "/b", "")]), &hub);
    assert_eq!(step.how, Translation::Full);
    assert!(serves(&step.outputs, "/b"));
}

#[test]
fn an_endpoints_only_change_takes_the_fast_path_and_equals_a_full_translation() {
    let hub = Hub::new();
    let mut t = translator();
    t.next(
        inputs(&[route("a", 1, "/a", ""), endpoints("10.0.0.1")]),
        &hub,
    );
    let before = published(&hub);
    let now = inputs(&[route("a", 1, "/a", ""), endpoints("10.0.0.2")]);
    let step = t.next(Arc::clone(&now), &hub);
    assert_eq!(step.how, Translation::Endpoints);
    let full = translator().next(now, &Hub::new()).outputs.clone();
    assert_eq!(*step.outputs, *full);
    assert_ne!(published(&hub), before, "the new endpoints are published");
}

#[test]
fn an_envoy_rejection_translates_again_with_the_route_held_back() {
    let hub = Hub::new();
    let mut t = translator();
    t.next(inputs(&[route("a", 1, "/a", "")]), &hub);
    assert!(!t.answer(&answer(&hub, None)), "an ACK holds nothing back");

    let bad = inputs(&[route("a", 1, "/a", ""), route("bad", 1, "/evil", "")]);
    let step = t.next(Arc::clone(&bad), &hub);
    assert!(serves(&step.outputs, "/evil"));
    assert!(t.answer(&answer(&hub, Some("invalid route"))));
    assert_eq!(
        t.decide(&bad),
        Translation::Full,
        "the same inputs again: held routes changed, so in full"
    );
    let step = t.again(&hub).expect("a last step");
    assert_eq!(step.how, Translation::Full);
    assert!(serves(&step.outputs, "/a") && !serves(&step.outputs, "/evil"));
    assert_eq!(
        accepted_reason(&step.outputs, "bad").as_deref(),
        Some(REJECTED_BY_ENVOY)
    );
    // Envoy accepts that: nothing changes, and the same inputs are no news.
    assert!(!t.answer(&answer(&hub, None)));
    assert_eq!(t.next(bad, &hub).how, Translation::StatusOnly);
}

#[test]
fn an_answer_before_any_step_changes_nothing() {
    let hub = Hub::new();
    let mut t = translator();
    let a = Answer {
        gateway: "default/gw".into(),
        snapshot: "x".into(),
        rejected: Some("no".into()),
    };
    assert!(!t.answer(&a));
    assert!(t.again(&hub).is_none());
}

#[test]
fn held_routes_are_read_from_statuses_only_when_asked() {
    let documents = [
        route("a", 1, "/a", ""),
        route("bad", 1, "/evil", REJECTED_STATUS),
    ];
    let remembering = translator()
        .remembering_held_routes()
        .next(inputs(&documents), &Hub::new())
        .outputs
        .clone();
    assert!(!serves(&remembering, "/evil"));
    assert_eq!(
        accepted_reason(&remembering, "bad").as_deref(),
        Some(REJECTED_BY_ENVOY)
    );
    let fresh = translator()
        .next(inputs(&documents), &Hub::new())
        .outputs
        .clone();
    assert!(serves(&fresh, "/evil"));
}

#[test]
fn every_step_is_counted_by_kind() {
    let hub = Hub::new();
    let metrics = Metrics::new(&hub.metrics);
    let mut t = Translator::new(Options::default(), Arc::clone(&metrics.control));
    t.next(
        inputs(&[route("a", 1, "/a", ""), endpoints("10.0.0.1")]),
        &hub,
    );
    t.next(
        inputs(&[route("a", 1, "/a", ""), endpoints("10.0.0.2")]),
        &hub,
    );
    t.next(
        inputs(&[route("a", 1, "/a", ""), endpoints("10.0.0.2")]),
        &hub,
    );
    let text = metrics.encode();
    for kind in ["full", "endpoints", "status_only"] {
        assert!(
            text.contains(&format!("portico_translations_total{{kind=\"{kind}\"}} 1")),
            "{kind}: {text}"
        );
    }
    assert!(
        text.contains("portico_objects{kind=\"HTTPRoute\"} 1"),
        "{text}"
    );
}
