//! Incremental translation equals full translation. `translate_memo` with a
//! memo carried from earlier translations must give exactly the `Outputs` of
//! `translate_with` on the same inputs:
//!
//! - for every golden case, from an empty memo, from a memo primed by the
//!   golden case before it, and again from its own memo (everything reused);
//! - over generated sequences of changes (a seeded generator: HTTPRoutes,
//!   GRPCRoutes and TCPRoutes added, edited and removed, routes whose
//!   status alone or whose parentRefs or hostnames alone changed, Services,
//!   EndpointSlices, ReferenceGrants, BackendTLSPolicies and their CA
//!   ConfigMaps, certificate Secrets and Gateway listeners changed), after
//!   every step. Unchanged objects keep their `Arc` from one step to the
//!   next, as the watches keep them; some steps rebuild every object, so
//!   equal values in new `Arc`s are covered too.
//!
//! The quarantine's record of what snapshots are made of, built from what
//! changed since the last one (`quarantine::Record`), equals `made_of` over
//! the same generated sequences.

mod common;

use std::sync::Arc;

use gateway_api::apis::standard::backendtlspolicies::BackendTlsPolicy;
use gateway_api::experimental::gateways::Gateway;
use gateway_api::experimental::grpcroutes::GrpcRoute;
use gateway_api::experimental::httproutes::HttpRoute;
use gateway_api::experimental::referencegrants::ReferenceGrant;
use gateway_api::experimental::tcproutes::TcpRoute;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};

use portico::inputs::{InputObject, Inputs, InputsBuilder, ObjectKey, files};
use portico::translate::quarantine::{MadeOf, Record, made_of};
use portico::translate::{Memo, Options, Outputs, translate_memo, translate_with};

fn full(inputs: &Inputs) -> Outputs {
    translate_with(inputs, &Options::default())
}

fn incremental(inputs: &Inputs, memo: &mut Memo) -> Outputs {
    translate_memo(inputs, &Options::default(), memo)
}

#[test]
fn every_golden_case_from_empty_primed_and_own_memo() {
    let cases = common::cases();
    assert!(cases.len() >= 40);
    let mut carried = Memo::default();
    for (name, dir) in cases {
        let inputs = files::load(&dir.join("input.yaml")).unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = full(&inputs);
        assert!(
            incremental(&inputs, &mut Memo::default()) == expected,
            "{name}: from an empty memo"
        );
        assert!(
            incremental(&inputs, &mut carried) == expected,
            "{name}: from the memo of the case before"
        );
        assert!(
            incremental(&inputs, &mut carried) == expected,
            "{name}: from its own memo"
        );
    }
}

/// A small deterministic generator (xorshift64*), so no new dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const NAMESPACES: &[&str] = &["default", "team-a", "team-b"];
const HOSTS: &[&str] = &[
    "a.example.com",
    "b.example.com",
    "*.example.com",
    "c.example.org",
    "shared.example.com",
];
const PATHS: &[&str] = &["/", "/api", "/api/v2", "/static", "/login"];

fn object<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("generated objects are valid")
}

fn key(namespace: &str, name: &str) -> ObjectKey {
    ObjectKey::new(namespace, name)
}

fn parent_ref(rng: &mut Rng) -> Value {
    let gateway = format!("gw-{}", rng.below(2));
    let mut p = json!({"name": gateway, "namespace": "default"});
    if rng.chance(20) {
        p["sectionName"] = json!(*rng.pick(&["http", "https", "alt"]));
    }
    p
}

fn backend_ref(rng: &mut Rng, namespace: &str) -> Value {
    let target = if rng.chance(20) {
        *rng.pick(NAMESPACES)
    } else {
        namespace
    };
    let mut b = json!({
        "name": format!("svc-{}", rng.below(4)),
        "port": *rng.pick(&[80, 8080]),
        "weight": rng.below(4),
    });
    if target != namespace {
        b["namespace"] = json!(target);
    }
    b
}

fn http_route(rng: &mut Rng, namespace: &str, name: &str, created: usize) -> HttpRoute {
    let hostnames: Vec<&str> = (0..rng.below(3)).map(|_| *rng.pick(HOSTS)).collect();
    let rules: Vec<Value> = (0..1 + rng.below(3))
        .map(|_| {
            let mut rule = json!({
                "matches": [{"path": {"type": "PathPrefix", "value": *rng.pick(PATHS)}}],
                "backendRefs": (0..rng.below(3)).map(|_| backend_ref(rng, namespace)).collect::<Vec<_>>(),
            });
            if rng.chance(30) {
                rule["filters"] = json!([{"type": "RequestHeaderModifier",
                    "requestHeaderModifier": {"set": [{"name": "x-step", "value": format!("{}", rng.below(9))}]}}]);
            }
            if rng.chance(10) {
                rule["matches"] = json!([{"path": {"type": "RegularExpression", "value": "/(a|b"}}]);
            }
            rule
        })
        .collect();
    object(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"namespace": namespace, "name": name, "generation": 1,
                     "creationTimestamp": format!("2026-01-01T00:00:{:02}Z", created % 60)},
        "spec": {"parentRefs": (0..1 + rng.below(2)).map(|_| parent_ref(rng)).collect::<Vec<_>>(),
                 "hostnames": hostnames, "rules": rules}}))
}

fn grpc_route(rng: &mut Rng, namespace: &str, name: &str) -> GrpcRoute {
    object(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute",
        "metadata": {"namespace": namespace, "name": name, "generation": 1,
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"parentRefs": [parent_ref(rng)], "hostnames": [*rng.pick(HOSTS)],
                 "rules": [{"matches": [{"method": {"service": "echo.Echo", "method": *rng.pick(&["Call", "Stream"])}}],
                            "backendRefs": [backend_ref(rng, namespace)]}]}}))
}

fn tcp_route(rng: &mut Rng, name: &str) -> TcpRoute {
    object(json!({
        "apiVersion": "gateway.networking.k8s.io/v1alpha2", "kind": "TCPRoute",
        "metadata": {"namespace": "default", "name": name, "generation": 1,
                     "creationTimestamp": format!("2026-01-01T00:00:0{}Z", rng.below(9))},
        "spec": {"parentRefs": [{"name": format!("gw-{}", rng.below(2)), "sectionName": "tcp"}],
                 "rules": [{"backendRefs": [backend_ref(rng, "default")]}]}}))
}

fn gateway(rng: &mut Rng, name: &str) -> Gateway {
    let mut listeners = vec![json!({"name": "http", "port": 80, "protocol": "HTTP",
        "allowedRoutes": {"namespaces": {"from": *rng.pick(&["All", "Same"])}}})];
    if rng.chance(50) {
        listeners.push(json!({"name": "alt", "port": 8080, "protocol": "HTTP",
            "hostname": *rng.pick(&["*.example.com", "a.example.com"]),
            "allowedRoutes": {"namespaces": {"from": "All"}}}));
    }
    if rng.chance(50) {
        listeners.push(json!({"name": "https", "port": 443, "protocol": "HTTPS",
            "tls": {"certificateRefs": [{"name": "cert"}]},
            "allowedRoutes": {"namespaces": {"from": "All"}}}));
    }
    if rng.chance(40) {
        listeners.push(json!({"name": "tcp", "port": 5432, "protocol": "TCP"}));
    }
    object(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"namespace": "default", "name": name, "generation": 1 + rng.below(5)},
        "spec": {"gatewayClassName": "portico", "listeners": listeners}}))
}

fn service(rng: &mut Rng, namespace: &str, name: &str) -> Service {
    let mut ports = vec![json!({"name": "http", "port": 80, "targetPort": 8080})];
    if rng.chance(50) {
        let mut p = json!({"name": "alt", "port": 8080, "targetPort": 9090});
        if rng.chance(50) {
            p["appProtocol"] = json!("kubernetes.io/h2c");
        }
        ports.push(p);
    }
    object(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": namespace, "name": name}, "spec": {"ports": ports}}))
}

fn slice(rng: &mut Rng, namespace: &str, service: &str) -> EndpointSlice {
    let endpoints: Vec<Value> = (0..rng.below(3))
        .map(|e| {
            json!({"addresses": [format!("10.0.{}.{e}", rng.below(9))],
                        "conditions": {"ready": rng.chance(80)}})
        })
        .collect();
    object(
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"namespace": namespace, "name": format!("{service}-1"),
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080}, {"name": "alt", "port": 9090}],
        "endpoints": endpoints}),
    )
}

fn grant(from: &str, to: &str) -> ReferenceGrant {
    object(
        json!({"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
        "metadata": {"namespace": to, "name": format!("from-{from}")},
        "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": from}],
                 "to": [{"group": "", "kind": "Service"}]}}),
    )
}

/// A copy of the object `pick` finds in the inputs of golden case `name`.
fn from_golden<T: Clone>(name: &str, pick: impl FnOnce(&Inputs) -> Option<&Arc<T>>) -> T {
    let case = common::testdata().join(name).join("input.yaml");
    let inputs = files::load(&case).expect("golden case loads");
    (**pick(&inputs).expect("the case has the object")).clone()
}

/// A valid certificate Secret, taken from a golden case and renamed.
fn certificate(name: &str) -> Secret {
    let mut secret: Secret = from_golden("https-listeners-sni", |i| {
        i.secrets.get(&key("default", "a-cert"))
    });
    secret.metadata.name = Some(name.to_string());
    secret
}

/// A BackendTLSPolicy for one of the generated Services, reading CA
/// ConfigMap `ca` of its namespace.
fn backend_tls_policy(rng: &mut Rng, namespace: &str, service: &str) -> BackendTlsPolicy {
    let mut target = json!({"group": "", "kind": "Service", "name": service});
    if rng.chance(30) {
        target["sectionName"] = json!(*rng.pick(&["http", "alt"]));
    }
    object(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "BackendTLSPolicy",
        "metadata": {"namespace": namespace, "name": format!("tls-{service}"), "generation": 1},
        "spec": {"targetRefs": [target],
                 "validation": {"caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"}],
                                "hostname": *rng.pick(&["a.internal", "b.internal"])}}}))
}

/// ConfigMap `ca`: the valid CA of a golden case, or a broken one.
fn ca_config_map(rng: &mut Rng, namespace: &str) -> ConfigMap {
    let mut map: ConfigMap = from_golden("backend-tls-policy", |i| {
        i.config_maps.get(&key("default", "secure-ca"))
    });
    map.metadata.name = Some("ca".to_string());
    map.metadata.namespace = Some(namespace.to_string());
    if rng.chance(30) {
        map.data = Some([("ca.crt".to_string(), "not a certificate".to_string())].into());
    }
    map
}

/// A copy of one of the first HTTPRoutes, to edit.
fn some_route(rng: &mut Rng, inputs: &Inputs) -> Option<(ObjectKey, HttpRoute)> {
    let (k, route) = inputs.http_routes.iter().nth(rng.below(12))?;
    Some((k.clone(), (**route).clone()))
}

/// One random change to `inputs`, unchanged objects kept as they are.
fn change(rng: &mut Rng, inputs: &mut Inputs, step: usize) -> &'static str {
    let ns = *rng.pick(NAMESPACES);
    match rng.below(112) {
        0..30 => {
            let name = format!("route-{}", rng.below(12));
            inputs
                .http_routes
                .insert(key(ns, &name), Arc::new(http_route(rng, ns, &name, step)));
            "HTTPRoute added or edited"
        }
        30..35 => {
            let name = format!("route-{}", rng.below(12));
            inputs.http_routes.remove(&key(ns, &name));
            "HTTPRoute removed"
        }
        35..40 => {
            // Same rules, matches and hostnames; another path or weight.
            let Some((k, mut route)) = some_route(rng, inputs) else {
                return "nothing to edit";
            };
            for rule in route.spec.rules.iter_mut().flatten() {
                for m in rule.matches.iter_mut().flatten() {
                    if let Some(path) = m.path.as_mut() {
                        path.value = Some(rng.pick(PATHS).to_string());
                    }
                }
                for b in rule.backend_refs.iter_mut().flatten() {
                    b.weight = Some(rng.below(4) as i32);
                }
            }
            inputs.http_routes.insert(k, Arc::new(route));
            "HTTPRoute edited in place"
        }
        40..46 => {
            let name = format!("grpc-{}", rng.below(3));
            if rng.chance(70) {
                inputs
                    .grpc_routes
                    .insert(key(ns, &name), Arc::new(grpc_route(rng, ns, &name)));
            } else {
                inputs.grpc_routes.remove(&key(ns, &name));
            }
            "GRPCRoute"
        }
        46..50 => {
            let name = format!("tcp-{}", rng.below(2));
            if rng.chance(70) {
                inputs
                    .tcp_routes
                    .insert(key("default", &name), Arc::new(tcp_route(rng, &name)));
            } else {
                inputs.tcp_routes.remove(&key("default", &name));
            }
            "TCPRoute"
        }
        50..60 => {
            let name = format!("svc-{}", rng.below(4));
            if rng.chance(80) {
                inputs
                    .services
                    .insert(key(ns, &name), Arc::new(service(rng, ns, &name)));
            } else {
                inputs.services.remove(&key(ns, &name));
            }
            "Service"
        }
        60..72 => {
            let name = format!("svc-{}", rng.below(4));
            let s = Arc::new(slice(rng, ns, &name));
            let mut b = InputsBuilder::default();
            b.insert(InputObject::EndpointSlice((*s).clone()));
            let group = b.build().endpoint_slices;
            for (service, slices) in group {
                inputs.endpoint_slices.insert(service, slices);
            }
            "EndpointSlice"
        }
        72..78 => {
            let from = *rng.pick(NAMESPACES);
            let k = key(ns, &format!("from-{from}"));
            if rng.chance(60) {
                inputs.reference_grants.insert(k, Arc::new(grant(from, ns)));
            } else {
                inputs.reference_grants.remove(&k);
            }
            "ReferenceGrant"
        }
        78..84 => {
            let k = key("default", "cert");
            if inputs.secrets.remove(&k).is_none() {
                inputs.secrets.insert(k, Arc::new(certificate("cert")));
            }
            "Secret"
        }
        84..94 => {
            let name = format!("gw-{}", rng.below(2));
            inputs
                .gateways
                .insert(key("default", &name), Arc::new(gateway(rng, &name)));
            "Gateway"
        }
        94..100 => {
            // The same objects in new `Arc`s: equal values must hit too.
            for route in inputs.http_routes.values_mut() {
                *route = Arc::new((**route).clone());
            }
            for service in inputs.services.values_mut() {
                *service = Arc::new((**service).clone());
            }
            "everything rebuilt"
        }
        100..104 => {
            // A status write: a new object, the same spec.
            let Some((k, mut route)) = some_route(rng, inputs) else {
                return "nothing to edit";
            };
            route.metadata.resource_version = Some(format!("{step}"));
            route.status = Some(object(json!({"parents": []})));
            inputs.http_routes.insert(k, Arc::new(route));
            "HTTPRoute status"
        }
        104..108 => {
            // Where it attaches changes; its rules do not.
            let Some((k, mut route)) = some_route(rng, inputs) else {
                return "nothing to edit";
            };
            if rng.chance(50) {
                route.spec.hostnames = Some(vec![rng.pick(HOSTS).to_string()]);
            } else {
                route.spec.parent_refs = Some(vec![object(parent_ref(rng))]);
            }
            inputs.http_routes.insert(k, Arc::new(route));
            "HTTPRoute parentRefs or hostnames"
        }
        _ => {
            let name = format!("svc-{}", rng.below(4));
            if rng.chance(40) {
                inputs
                    .config_maps
                    .insert(key(ns, "ca"), Arc::new(ca_config_map(rng, ns)));
                "CA ConfigMap"
            } else if rng.chance(70) {
                let policy = backend_tls_policy(rng, ns, &name);
                inputs
                    .backend_tls_policies
                    .insert(key(ns, &format!("tls-{name}")), Arc::new(policy));
                "BackendTLSPolicy"
            } else {
                inputs
                    .backend_tls_policies
                    .remove(&key(ns, &format!("tls-{name}")));
                "BackendTLSPolicy removed"
            }
        }
    }
}

fn start(rng: &mut Rng) -> Inputs {
    let mut b = InputsBuilder::default();
    b.insert(InputObject::GatewayClass(object(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
        "metadata": {"name": "portico"}, "spec": {"controllerName": "portico.dev/gateway-controller"}}))));
    for g in 0..2 {
        b.insert(InputObject::Gateway(gateway(rng, &format!("gw-{g}"))));
    }
    for ns in NAMESPACES {
        for s in 0..3 {
            let name = format!("svc-{s}");
            b.insert(InputObject::Service(service(rng, ns, &name)));
            b.insert(InputObject::EndpointSlice(slice(rng, ns, &name)));
        }
    }
    b.build()
}

#[test]
fn generated_sequences_of_changes() {
    for seed in [1_u64, 7, 42, 2026] {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut inputs = start(&mut rng);
        let mut memo = Memo::default();
        let mut served = 0;
        for step in 0..250 {
            let mut what = Vec::new();
            for _ in 0..1 + rng.below(3) {
                what.push(change(&mut rng, &mut inputs, step));
            }
            let expected = full(&inputs);
            let got = incremental(&inputs, &mut memo);
            if got != expected {
                let doc = |o: &Outputs| {
                    serde_json::to_string_pretty(
                        &portico::render::document(o, None).expect("renders"),
                    )
                    .unwrap_or_default()
                };
                panic!(
                    "seed {seed}, step {step} ({what:?}): incremental differs from full\n\
                     full:\n{}\nincremental:\n{}",
                    doc(&expected),
                    doc(&got)
                );
            }
            served += expected
                .gateways
                .values()
                .filter(|g| !g.resources.routes.is_empty())
                .count();
        }
        assert!(served > 100, "seed {seed}: too few steps served routes");
    }
}

/// 250 steps of the generated sequence `seed`, each handed to `each`
/// with the inputs after it and what it changed.
fn steps(seed: u64, mut each: impl FnMut(usize, &Inputs, &[&str])) {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut inputs = start(&mut rng);
    for step in 0..250 {
        let mut what = Vec::new();
        for _ in 0..1 + rng.below(3) {
            what.push(change(&mut rng, &mut inputs, step));
        }
        each(step, &inputs, &what);
    }
}

/// Whether two records of what a Gateway's snapshot is made of are equal:
/// the same versions and the very same route objects.
fn same_made(a: &MadeOf, b: &MadeOf) -> bool {
    a.gateway == b.gateway
        && a.listener_sets == b.listener_sets
        && a.routes.len() == b.routes.len()
        && a.routes
            .iter()
            .zip(&b.routes)
            .all(|((ia, (va, oa)), (ib, (vb, ob)))| ia == ib && va == vb && oa.same(ob))
}

#[test]
fn what_snapshots_are_made_of_is_recorded_from_what_changed() {
    for seed in [3_u64, 11] {
        let mut record = Record::default();
        let mut routes = 0;
        steps(seed, |step, inputs, what| {
            let outputs = Arc::new(full(inputs));
            let expected = made_of(inputs, &outputs);
            let got = record.made_of(inputs, &outputs);
            let equal = expected.len() == got.len()
                && expected
                    .iter()
                    .zip(&got)
                    .all(|((ka, a), (kb, b))| ka == kb && same_made(a, b));
            assert!(
                equal,
                "seed {seed}, step {step} ({what:?}): recorded differs from made_of\n\
                 made_of: {expected:#?}\nrecorded: {got:#?}"
            );
            // Nothing changed since: every Gateway's record shared.
            let again = record.made_of(inputs, &outputs);
            assert!(
                again
                    .iter()
                    .zip(&got)
                    .all(|((_, a), (_, b))| Arc::ptr_eq(a, b))
            );
            routes += expected.values().map(|m| m.routes.len()).sum::<usize>();
        });
        assert!(
            routes > 500,
            "seed {seed}: too few routes recorded ({routes})"
        );
    }
}
