//! Status plan benchmarks: one leader round over 5,000 HTTPRoutes (one
//! Gateway, each route with its own hostname) whose live statuses already
//! match translation's. `first round`: nothing remembered, every object
//! derived and compared (what every round cost before the memo);
//! `next round, one route changed`: the memo of the round before, one route
//! at a new `resourceVersion` (the other objects shared with the snapshot
//! before, as the watches' snapshots share them); `next round, nothing
//! changed`; `next round, new translation, one route changed`: as the one
//! before, each round with another translation's outputs (equal statuses),
//! so translation's route statuses are compared too.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::Criterion;
use serde_json::{Value, json};

use portico::inputs::{InputObject, Inputs, InputsBuilder, Kind, ObjectKey};
use portico::status::memo::Memo;
use portico::status::plan::{Write, plan, plan_with};
use portico::translate::{Outputs, translate};

const ROUTES: usize = 5_000;
const NOW: &str = "2026-01-01T00:00:00Z";

fn object<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("benchmark objects are valid")
}

/// The class, the Gateway and the routes as the API server would send them.
fn world() -> Vec<(Kind, Value)> {
    let mut objects = vec![
        (
            Kind::GatewayClass,
            json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
               "metadata": {"name": "portico", "resourceVersion": "1"},
               "spec": {"controllerName": "portico.dev/gateway-controller"}}),
        ),
        (
            Kind::Gateway,
            json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
               "metadata": {"namespace": "gateways", "name": "gw", "generation": 1, "resourceVersion": "1"},
               "spec": {"gatewayClassName": "portico", "listeners": [
                   {"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "All"}}}]}}),
        ),
    ];
    for r in 0..ROUTES {
        objects.push((
            Kind::HttpRoute,
            json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"namespace": format!("team-{}", r % 50), "name": format!("route-{r}"),
                         "generation": 1, "resourceVersion": "1"},
            "spec": {
                "parentRefs": [{"name": "gw", "namespace": "gateways"}],
                "hostnames": [format!("host-{r}.example.com")],
                "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                           "backendRefs": [{"name": "svc", "port": 80}]}]}}),
        ));
    }
    objects
}

fn build(objects: &[(Kind, Value)]) -> Inputs {
    let mut b = InputsBuilder::default();
    for (kind, v) in objects {
        b.insert(match kind {
            Kind::GatewayClass => InputObject::GatewayClass(object(v.clone())),
            Kind::Gateway => InputObject::Gateway(object(v.clone())),
            _ => InputObject::HttpRoute(object(v.clone())),
        });
    }
    b.build()
}

/// The objects after `writes` succeeded, at `resourceVersion` 2.
fn written(objects: &mut [(Kind, Value)], writes: &[Write]) {
    let by_key: BTreeMap<_, _> = writes
        .iter()
        .map(|w| {
            (
                (w.kind, w.key.namespace.as_str(), w.key.name.as_str()),
                &w.status,
            )
        })
        .collect();
    for (kind, v) in objects {
        let ns = v["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let name = v["metadata"]["name"].as_str().unwrap_or("").to_string();
        if let Some(status) = by_key.get(&(*kind, ns.as_str(), name.as_str())) {
            v["status"] = (*status).clone();
            v["metadata"]["resourceVersion"] = json!("2");
        }
    }
}

/// A round over `inputs` in which exactly one route is compared: the one
/// whose version or translated status changed since the memo's last round.
fn one_changed(memo: &mut Memo, inputs: &Inputs, outputs: &Arc<Outputs>) -> Vec<Write> {
    let writes = plan_with(memo, inputs, outputs, &BTreeMap::new(), NOW);
    assert_eq!(memo.tally().compared, 1);
    writes
}

fn main() {
    let mut objects = world();
    let fresh = build(&objects);
    let outputs = Arc::new(translate(&fresh));
    let writes = plan(&fresh, &outputs, &BTreeMap::new(), NOW);
    assert_eq!(writes.len(), ROUTES + 2, "every status to write");
    written(&mut objects, &writes);
    let settled = build(&objects);
    assert!(plan(&settled, &outputs, &BTreeMap::new(), NOW).is_empty());
    // The same snapshot with one route at a newer version (its status the
    // same), every other object shared.
    let mut touched = settled.clone();
    let key = ObjectKey::new("team-49", format!("route-{}", ROUTES - 1));
    let mut route = (*touched.http_routes[&key]).clone();
    route.metadata.resource_version = Some("3".into());
    touched.http_routes.insert(key, Arc::new(route));

    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("status_plan_5000_routes");
    group.sample_size(10);
    group.bench_function("first round", |b| {
        b.iter(|| {
            let mut memo = Memo::default();
            black_box(plan_with(
                &mut memo,
                &settled,
                &outputs,
                &BTreeMap::new(),
                NOW,
            ))
        })
    });
    let mut memo = Memo::default();
    plan_with(&mut memo, &settled, &outputs, &BTreeMap::new(), NOW);
    group.bench_function("next round, nothing changed", |b| {
        b.iter(|| {
            black_box(plan_with(
                &mut memo,
                &settled,
                &outputs,
                &BTreeMap::new(),
                NOW,
            ))
        })
    });
    // Alternating between the two worlds: each round finds one route at a
    // version the memo has not seen.
    let mut flip = false;
    group.bench_function("next round, one route changed", |b| {
        b.iter(|| {
            flip = !flip;
            let inputs = if flip { &touched } else { &settled };
            black_box(one_changed(&mut memo, inputs, &outputs))
        })
    });
    // Alternating between two translations (equal statuses, not the same
    // outputs): each round also compares translation's statuses.
    let retranslated = Arc::new(translate(&touched));
    let mut flip = false;
    group.bench_function("next round, new translation, one route changed", |b| {
        b.iter(|| {
            flip = !flip;
            let (inputs, outputs) = if flip {
                (&touched, &retranslated)
            } else {
                (&settled, &outputs)
            };
            black_box(one_changed(&mut memo, inputs, outputs))
        })
    });
    group.finish();
    c.final_summary();
}
