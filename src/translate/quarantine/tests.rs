use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::inputs::InputsBuilder;
use crate::inputs::files::parse_documents;
use crate::translate::compile::routes::RouteKind;
use crate::translate::conditions::spec;
use crate::xds::cache::Snapshot;

const GATEWAY: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: portico}\n\
    spec: {controllerName: portico.dev/gateway-controller}\n---\n\
    apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: default, generation: GEN}\n\
    spec:\n  gatewayClassName: portico\n  listeners: [{name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}]\n";

/// An HTTPRoute `name` (in namespace `tenant`) with one rule matching `path`.
fn route(name: &str, generation: i64, path: &str) -> String {
    format!(
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
         metadata: {{name: {name}, namespace: tenant, generation: {generation}}}\n\
         spec:\n  parentRefs: [{{name: gw, namespace: default}}]\n  hostnames: [{name}.example]\n  rules:\n\
         \x20 - matches: [{{path: {{type: PathPrefix, value: {path}}}}}]\n    backendRefs: [{{name: svc, port: 80}}]\n"
    )
}

fn inputs(gateway_generation: i64, routes: &[String]) -> Inputs {
    let mut text = GATEWAY.replace("GEN", &gateway_generation.to_string());
    text.push_str(
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: svc, namespace: tenant}\n\
         spec: {ports: [{port: 80}]}\n",
    );
    for r in routes {
        text.push_str(r);
    }
    let mut b = InputsBuilder::default();
    for o in parse_documents(Path::new("test.yaml"), &text).expect("parses") {
        b.insert(o);
    }
    b.build()
}

fn gw() -> ObjectKey {
    ObjectKey::new("default", "gw")
}

fn id(name: &str) -> RouteId {
    (RouteKind::Http, ObjectKey::new("tenant", name))
}

/// The route configuration Envoy would be given, as text.
fn routes_text(outputs: &Outputs) -> String {
    outputs.gateways[&gw()]
        .resources
        .routes
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect()
}

/// A loop of portico and an Envoy that rejects every configuration with a
/// path containing `/evil`: translate, publish, answer, until quiet.
struct World {
    q: Quarantine,
    last_good: LastGood,
    outputs: Outputs,
    rounds: usize,
}

impl World {
    fn new() -> Self {
        Self {
            q: Quarantine::default(),
            last_good: LastGood::default(),
            outputs: Outputs::default(),
            rounds: 0,
        }
    }

    /// Translates and publishes once; returns the snapshot version.
    fn publish(&mut self, inputs: &Inputs) -> String {
        self.q.refresh(inputs);
        let (outputs, next) = self
            .q
            .translate(inputs, &Options::default(), &self.last_good);
        self.last_good = next;
        let version = Snapshot::from_resources(&outputs.gateways[&gw()].resources).version();
        let versions = BTreeMap::from([(gw(), version.clone())]);
        let outputs = Arc::new(outputs);
        self.q.publish(&versions, inputs, &outputs);
        self.outputs = Arc::unwrap_or_clone(outputs);
        version
    }

    /// Envoy's answer to what was just published.
    fn envoy_answers(&mut self, version: &str) -> bool {
        let rejected = routes_text(&self.outputs)
            .contains("/evil")
            .then_some("invalid route");
        let outputs = self.outputs.clone();
        self.q.answer(&gw(), version, rejected, &outputs)
    }

    /// Publishes `inputs` and keeps answering until nothing changes.
    fn settle(&mut self, inputs: &Inputs) {
        loop {
            self.rounds += 1;
            assert!(self.rounds < 100, "the quarantine does not settle");
            let v = self.publish(inputs);
            if !self.envoy_answers(&v) {
                return;
            }
        }
    }

    fn accepted(&self, name: &str) -> Option<(ConditionStatus, &'static str, String, Option<i64>)> {
        let status = self.outputs.routes.get(&id(name))?;
        let c = status.parents[0]
            .conditions
            .iter()
            .find(|c| c.type_ == spec::ACCEPTED)?;
        Some((
            c.status,
            c.reason,
            c.message.to_string(),
            c.observed_generation,
        ))
    }
}

use crate::translate::conditions::ConditionStatus;

#[test]
fn a_rejected_new_route_is_held_back_and_the_others_keep_updating() {
    let mut w = World::new();
    let a = route("a", 1, "/a");
    w.settle(&inputs(1, std::slice::from_ref(&a)));
    assert!(w.q.held().is_empty());

    let bad = route("bad", 1, "/evil");
    w.settle(&inputs(1, &[a.clone(), bad.clone()]));
    assert_eq!(
        w.q.held().keys().cloned().collect::<Vec<_>>(),
        vec![id("bad")]
    );
    let text = routes_text(&w.outputs);
    assert!(!text.contains("/evil") && text.contains("/a"));
    let (status, reason, message, generation) = w.accepted("bad").expect("bad has a status");
    assert_eq!(
        (status, reason),
        (ConditionStatus::False, REJECTED_BY_ENVOY)
    );
    assert!(
        message.contains("invalid route") && message.contains("it is not served"),
        "{message}"
    );
    assert!(message.contains("Gateway default/gw"), "{message}");
    assert_eq!(generation, Some(1));
    assert_eq!(w.accepted("a").map(|a| a.0), Some(ConditionStatus::True));

    // Another tenant's new route is served: the port keeps updating.
    let c = route("c", 1, "/c");
    w.settle(&inputs(1, &[a.clone(), bad.clone(), c.clone()]));
    assert!(routes_text(&w.outputs).contains("/c"));
    assert_eq!(w.q.held().len(), 1);

    // The owner fixes the route: its next edit goes through.
    let fixed = route("bad", 2, "/fixed");
    w.settle(&inputs(1, &[a, fixed, c]));
    assert!(w.q.held().is_empty());
    assert!(routes_text(&w.outputs).contains("/fixed"));
    assert_eq!(w.accepted("bad").map(|a| a.0), Some(ConditionStatus::True));
}

#[test]
fn a_rejected_edit_keeps_the_previous_edit_served() {
    let mut w = World::new();
    w.settle(&inputs(1, &[route("a", 1, "/first")]));
    w.settle(&inputs(1, &[route("a", 2, "/evil")]));
    let text = routes_text(&w.outputs);
    assert!(text.contains("/first") && !text.contains("/evil"), "{text}");
    let (status, reason, message, generation) = w.accepted("a").expect("status");
    assert_eq!(
        (status, reason),
        (ConditionStatus::False, REJECTED_BY_ENVOY)
    );
    assert!(
        message.contains("its generation 1 is still served"),
        "{message}"
    );
    assert_eq!(
        generation,
        Some(2),
        "the status speaks of the current generation"
    );
}

#[test]
fn several_changed_routes_are_halved_until_the_culprit_is_alone() {
    let mut w = World::new();
    let base = route("base", 1, "/base");
    w.settle(&inputs(1, std::slice::from_ref(&base)));
    let mut all = vec![base];
    for n in 0..7 {
        all.push(route(&format!("r{n}"), 1, &format!("/r{n}")));
    }
    all.push(route("zbad", 1, "/evil"));
    let rounds = w.rounds;
    w.settle(&inputs(1, &all));
    assert_eq!(
        w.q.held().keys().cloned().collect::<Vec<_>>(),
        vec![id("zbad")]
    );
    assert!(matches!(w.q.held()[&id("zbad")].verdict, Verdict::Rejected));
    let text = routes_text(&w.outputs);
    for n in 0..7 {
        assert!(text.contains(&format!("/r{n}")), "r{n} is served");
    }
    // Eight suspects: a few halvings, not one round per route.
    assert!(w.rounds - rounds <= 6, "{} rounds", w.rounds - rounds);
}

#[test]
fn suspects_say_they_are_pending_while_halved() {
    let mut w = World::new();
    w.settle(&inputs(1, &[route("a", 1, "/a")]));
    let both = inputs(
        1,
        &[
            route("a", 1, "/a"),
            route("b", 1, "/evil"),
            route("c", 1, "/c"),
        ],
    );
    let v = w.publish(&both);
    assert!(w.envoy_answers(&v));
    // Both suspects held, then the first half (b) let through.
    let (held, reason): (Vec<_>, Vec<_>) =
        w.q.held()
            .iter()
            .map(|(k, h)| (k.clone(), h.verdict.clone()))
            .unzip();
    assert_eq!(held, vec![id("c")]);
    assert_eq!(reason, vec![Verdict::Suspected { with: 1 }]);
    w.publish(&both);
    let (status, reason, message, _) = w.accepted("c").expect("c");
    assert_eq!((status, reason), (ConditionStatus::False, spec::PENDING));
    assert!(message.contains("1 other route"), "{message}");
}

#[test]
fn a_rejection_that_is_not_a_route_holds_nothing() {
    let mut w = World::new();
    // Nothing accepted yet: what the Envoys run is unknown.
    let v = w.publish(&inputs(1, &[route("bad", 1, "/evil")]));
    assert!(!w.envoy_answers(&v));
    assert!(w.q.held().is_empty());

    // The Gateway itself changed with the route: not pinned on the route.
    let mut w = World::new();
    w.settle(&inputs(1, &[route("a", 1, "/a")]));
    let v = w.publish(&inputs(2, &[route("a", 1, "/a"), route("bad", 1, "/evil")]));
    assert!(!w.envoy_answers(&v));
    assert!(w.q.held().is_empty());
}

#[test]
fn an_accepted_resource_type_then_a_rejected_one_still_finds_the_culprit() {
    let mut w = World::new();
    w.settle(&inputs(1, &[route("a", 1, "/a")]));
    let v = w.publish(&inputs(1, &[route("a", 1, "/a"), route("bad", 1, "/evil")]));
    let outputs = w.outputs.clone();
    // Clusters accepted first, then the route configuration rejected.
    assert!(!w.q.answer(&gw(), &v, None, &outputs));
    assert!(w.q.answer(&gw(), &v, Some("invalid route"), &outputs));
    assert_eq!(
        w.q.held().keys().cloned().collect::<Vec<_>>(),
        vec![id("bad")]
    );
}

#[test]
fn a_replica_that_starts_remembers_rejections_from_statuses() {
    let status = |generation: i64| {
        format!(
            "status:\n  parents:\n  - parentRef: {{name: gw, namespace: default}}\n    \
             controllerName: portico.dev/gateway-controller\n    conditions:\n    \
             - {{type: Accepted, status: 'False', reason: RejectedByEnvoy, message: 'Envoy rejected it', \
             observedGeneration: {generation}, lastTransitionTime: '2026-01-01T00:00:00Z'}}\n"
        )
    };
    let held_route = format!("{}{}", route("bad", 3, "/evil"), status(3));
    let edited = format!("{}{}", route("edited", 4, "/e"), status(3));
    let i = inputs(1, &[held_route, edited]);
    let mut q = Quarantine::default();
    q.remember(&i);
    assert_eq!(
        q.held().keys().cloned().collect::<Vec<_>>(),
        vec![id("bad")]
    );
    let (outputs, _) = q.translate(&i, &Options::default(), &LastGood::default());
    let bad = &outputs.routes[&id("bad")].parents[0].conditions;
    assert!(
        bad.iter()
            .any(|c| c.reason == REJECTED_BY_ENVOY && c.message == "Envoy rejected it")
    );
    assert!(!routes_text(&outputs).contains("/evil"));
}
