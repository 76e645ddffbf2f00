//! The memo as a user sees it: a quiet round does no work, a round after
//! one route changed looks at that route and its parents only, and anything
//! that may change a status (a new live version, a failed write, a new
//! translation, an object gone) is planned again. Every round's writes are
//! checked against a plan without memory.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;

use crate::inputs::kinds::Status;
use crate::inputs::{Inputs, InputsBuilder, Kind, ObjectKey};
use crate::status::memo::{Memo, Tally};
use crate::status::plan::{Write, plan, plan_with};
use crate::translate::compile::routes::RouteKind;
use crate::translate::{Outputs, translate};

const ROUTES: usize = 20;
/// The class, the Gateway and the routes.
const OBJECTS: usize = ROUTES + 2;

/// A class, a Gateway and `ROUTES` HTTPRoutes on it, each at
/// `resourceVersion` 1 without a status.
fn world() -> Inputs {
    let mut yaml = String::from(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\n\
         metadata: {name: portico, resourceVersion: '1'}\n\
         spec: {controllerName: portico.dev/gateway-controller}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n\
         metadata: {name: gw, namespace: default, resourceVersion: '1', generation: 1}\n\
         spec:\n  gatewayClassName: portico\n  listeners: [{name: http, port: 80, protocol: HTTP}]\n",
    );
    for r in 0..ROUTES {
        yaml.push_str(&format!(
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
             metadata: {{name: r{r}, namespace: default, resourceVersion: '1', generation: 1}}\n\
             spec:\n  parentRefs: [{{name: gw}}]\n  hostnames: [h{r}.example.com]\n\
             \x20 rules: [{{backendRefs: [{{name: svc, port: 80}}]}}]\n"
        ));
    }
    let mut b = InputsBuilder::default();
    for o in
        crate::inputs::files::parse_documents(std::path::Path::new("t.yaml"), &yaml).expect("valid")
    {
        b.insert(o);
    }
    b.build()
}

/// The API server after `writes` succeeded: each status as written, under a
/// new `resourceVersion`.
fn apply(inputs: &mut Inputs, writes: &[Write], version: &str) {
    fn put<K: Clone + kube::Resource>(
        store: &mut BTreeMap<ObjectKey, Arc<K>>,
        key: &ObjectKey,
        version: &str,
        set: impl FnOnce(&mut K),
    ) {
        let mut object = (*store[key]).clone();
        object.meta_mut().resource_version = Some(version.to_string());
        set(&mut object);
        store.insert(key.clone(), Arc::new(object));
    }
    for w in writes {
        match w.kind {
            Kind::GatewayClass => put(&mut inputs.gateway_classes, &w.key, version, |o| {
                o.status = Some(serde_json::from_value(w.status.clone()).expect("a valid status"));
            }),
            Kind::Gateway => put(&mut inputs.gateways, &w.key, version, |o| {
                o.status = Some(serde_json::from_value(w.status.clone()).expect("a valid status"));
            }),
            Kind::HttpRoute => put(&mut inputs.http_routes, &w.key, version, |o| {
                o.status = Some(serde_json::from_value(w.status.clone()).expect("a valid status"));
            }),
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Another controller empties the route's `status.parents`, the API
/// server giving it `version`.
fn wipe(inputs: &mut Inputs, key: &ObjectKey, version: &str) {
    let wiped = Write {
        kind: Kind::HttpRoute,
        key: key.clone(),
        status: json!({"parents": []}),
        based_on: None,
    };
    apply(inputs, &[wiped], version);
}

/// One round with `memo`; its writes are the ones a plan without memory
/// finds.
fn round(memo: &mut Memo, inputs: &Inputs, outputs: &Arc<Outputs>) -> Vec<Write> {
    let now = "2026-01-01T00:00:00Z";
    let writes = plan_with(memo, inputs, outputs, &BTreeMap::new(), now);
    assert_eq!(writes, plan(inputs, outputs, &BTreeMap::new(), now));
    writes
}

/// The world with every status written, and a memo that has seen it.
fn settled() -> (Memo, Inputs, Arc<Outputs>) {
    let mut inputs = world();
    let outputs = Arc::new(translate(&inputs));
    let mut memo = Memo::default();
    let writes = round(&mut memo, &inputs, &outputs);
    assert_eq!(writes.len(), OBJECTS, "{writes:#?}");
    assert_eq!(
        memo.tally(),
        Tally {
            unchanged: 0,
            compared: OBJECTS,
            looked_at: OBJECTS,
        }
    );
    apply(&mut inputs, &writes, "2");
    // The writes come back through the watches: each one compared once more.
    assert!(round(&mut memo, &inputs, &outputs).is_empty());
    assert_eq!(memo.tally().compared, OBJECTS);
    (memo, inputs, outputs)
}

fn route(r: usize) -> ObjectKey {
    ObjectKey::new("default", format!("r{r}"))
}

#[test]
fn a_round_with_nothing_changed_plans_nothing_and_compares_nothing() {
    let (mut memo, inputs, outputs) = settled();
    for _ in 0..2 {
        assert!(round(&mut memo, &inputs, &outputs).is_empty());
        assert_eq!(
            memo.tally(),
            Tally {
                unchanged: OBJECTS,
                compared: 0,
                // The class and the Gateway; no route.
                looked_at: 2,
            }
        );
        assert_eq!(memo.remembered(), OBJECTS);
    }
}

#[test]
fn a_status_someone_else_changed_is_planned_again() {
    let (mut memo, mut inputs, outputs) = settled();
    // Another controller wipes portico's entry: a new version.
    let key = route(3);
    wipe(&mut inputs, &key, "3");
    let writes = round(&mut memo, &inputs, &outputs);
    let planned: Vec<_> = writes.iter().map(|w| (w.kind, w.key.clone())).collect();
    assert_eq!(planned, vec![(Kind::HttpRoute, key.clone())]);
    assert_eq!(writes[0].based_on.as_deref(), Some("3"));
    assert_eq!(memo.tally().compared, 1);
    // The write fails (a conflict): yet another edit came first. Planned
    // again, from that version.
    wipe(&mut inputs, &key, "4");
    let again = round(&mut memo, &inputs, &outputs);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].based_on.as_deref(), Some("4"));
    assert_eq!(
        memo.tally().looked_at,
        3,
        "the class, the Gateway, the route"
    );

    // A new version with the same status: compared once, nothing to write.
    let (mut memo, mut inputs, outputs) = settled();
    let same = (*inputs.http_routes[&key]).clone();
    let mut touched = same.clone();
    touched.metadata.resource_version = Some("4".into());
    inputs.http_routes.insert(key, Arc::new(touched));
    assert!(round(&mut memo, &inputs, &outputs).is_empty());
    assert_eq!(
        memo.tally(),
        Tally {
            unchanged: OBJECTS - 1,
            compared: 1,
            looked_at: 3,
        }
    );
}

#[test]
fn a_write_that_failed_is_planned_again() {
    let (mut memo, inputs, mut outputs) = settled();
    let key = route(7);
    let entry = Arc::make_mut(&mut outputs)
        .routes
        .get_mut(&(RouteKind::Http, key.clone()))
        .expect("route 7's status");
    entry.parents[0].conditions[0].message = "changed".into();
    let first = round(&mut memo, &inputs, &outputs);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].key, key);
    // The write failed: the API server still holds the old status.
    for _ in 0..2 {
        assert_eq!(round(&mut memo, &inputs, &outputs), first);
        assert_eq!(memo.tally().compared, 1);
    }
}

#[test]
fn a_changed_translation_is_planned_and_only_it_compared() {
    let (mut memo, mut inputs, _) = settled();
    // Route 5 now names a listener the Gateway does not have.
    let key = route(5);
    let mut changed = (*inputs.http_routes[&key]).clone();
    changed.spec.parent_refs.as_mut().expect("parentRefs")[0].section_name = Some("nope".into());
    inputs.http_routes.insert(key.clone(), Arc::new(changed));
    let outputs = Arc::new(translate(&inputs));
    let writes = round(&mut memo, &inputs, &outputs);
    let planned: Vec<_> = writes.iter().map(|w| (w.kind, w.key.clone())).collect();
    // The route itself, and the Gateway whose attachedRoutes changed.
    assert_eq!(
        planned,
        vec![
            (Kind::Gateway, ObjectKey::new("default", "gw")),
            (Kind::HttpRoute, key)
        ]
    );
    assert_eq!(memo.tally().compared, 2, "{writes:#?}");
    assert_eq!(
        memo.tally().looked_at,
        3,
        "the class, the Gateway, the route"
    );
}

#[test]
fn objects_gone_are_forgotten() {
    let (mut memo, mut inputs, _) = settled();
    for r in 0..5 {
        inputs.http_routes.remove(&route(r));
    }
    let outputs = Arc::new(translate(&inputs));
    let writes = round(&mut memo, &inputs, &outputs);
    let gone: Vec<(Kind, ObjectKey)> = (0..5).map(|r| (Kind::HttpRoute, route(r))).collect();
    assert_eq!(memo.gone(), Some(gone.as_slice()), "handed to the writer");
    assert!(
        writes.iter().all(|w| w.kind.status() == Status::Owned),
        "only the Gateway's attachedRoutes: {writes:#?}"
    );
    assert_eq!(memo.remembered(), OBJECTS - 5 - writes.len());
    // Nothing translated: portico's entries are to be removed, and no
    // object is remembered as matching.
    let writes = round(&mut memo, &inputs, &Arc::new(Outputs::default()));
    assert_eq!(writes.len(), ROUTES - 5);
    assert_eq!(memo.remembered(), 0);
}

#[test]
fn objects_without_a_version_are_never_remembered() {
    let inputs = crate::status::plan::tests::inputs();
    let outputs = Arc::new(translate(&inputs));
    let mut memo = Memo::default();
    round(&mut memo, &inputs, &outputs);
    round(&mut memo, &inputs, &outputs);
    assert_eq!(memo.remembered(), 0);
    assert_eq!(memo.tally().unchanged, 0);
}

#[test]
fn a_round_after_one_route_is_added_looks_at_it_and_its_parents_only() {
    let (mut memo, mut inputs, _) = settled();
    let mut added = (*inputs.http_routes[&route(0)]).clone();
    added.metadata.name = Some("added".into());
    added.metadata.resource_version = Some("1".into());
    added.status = None;
    added.spec.hostnames = Some(vec!["added.example.com".into()]);
    let key = ObjectKey::new("default", "added");
    inputs.http_routes.insert(key.clone(), Arc::new(added));
    let outputs = Arc::new(translate(&inputs));
    let writes = round(&mut memo, &inputs, &outputs);
    let planned: Vec<_> = writes.iter().map(|w| (w.kind, w.key.clone())).collect();
    let gateway = (Kind::Gateway, ObjectKey::new("default", "gw"));
    assert_eq!(planned, vec![gateway, (Kind::HttpRoute, key.clone())]);
    assert_eq!(
        memo.tally(),
        Tally {
            unchanged: OBJECTS - 1,
            compared: 2,
            looked_at: 3,
        }
    );
    // Both writes succeed and come back through the watches: looked at once
    // more, nothing to write; then nothing to look at but the Gateway side.
    apply(&mut inputs, &writes, "5");
    assert!(round(&mut memo, &inputs, &outputs).is_empty());
    assert_eq!(memo.tally().compared, 2);
    assert_eq!(memo.tally().looked_at, 3);
    assert!(round(&mut memo, &inputs, &outputs).is_empty());
    assert_eq!(memo.tally().compared, 0);
    assert_eq!(memo.tally().looked_at, 2);
    assert_eq!(memo.remembered(), OBJECTS + 1);
}

#[test]
fn an_equal_translation_in_new_outputs_is_compared_not_planned() {
    let (mut memo, inputs, outputs) = settled();
    let again = Arc::new((*outputs).clone());
    assert!(round(&mut memo, &inputs, &again).is_empty());
    assert_eq!(memo.tally().compared, 0);
    assert_eq!(memo.tally().looked_at, 2);
}
