use portico::inputs::{InputObject, Inputs, InputsBuilder};
use serde_json::json;
use std::time::Instant;
fn object<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("benchmark objects are valid")
}

/// `routes` HTTPRoutes in 50 namespaces, each with its own hostname and two
/// rules, spread over `gateways` Gateways; 20 Services per namespace with
/// three endpoints each.
fn inputs(routes: usize, gateways: usize) -> Inputs {
    let mut b = InputsBuilder::default();
    b.insert(InputObject::GatewayClass(object(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
        "metadata": {"name": "portico"}, "spec": {"controllerName": "portico.dev/gateway-controller"}}))));
    for g in 0..gateways {
        b.insert(InputObject::Gateway(object(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"namespace": "gateways", "name": format!("gw-{g}"), "generation": 1},
            "spec": {"gatewayClassName": "portico", "listeners": [
                {"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "All"}}}]}}))));
    }
    for ns in 0..50 {
        for s in 0..20 {
            let (namespace, name) = (format!("team-{ns}"), format!("svc-{s}"));
            b.insert(InputObject::Service(object(json!({
                "apiVersion": "v1", "kind": "Service", "metadata": {"namespace": namespace, "name": name},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}))));
            let endpoints: Vec<_> = (0..3)
                .map(|e| json!({"addresses": [format!("10.{ns}.{s}.{e}")], "conditions": {"ready": true}}))
                .collect();
            b.insert(InputObject::EndpointSlice(object(json!({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"namespace": namespace, "name": format!("{name}-1"),
                             "labels": {"kubernetes.io/service-name": name}},
                "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}], "endpoints": endpoints}))));
        }
    }
    for r in 0..routes {
        b.insert(InputObject::HttpRoute(object(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"namespace": format!("team-{}", r % 50), "name": format!("route-{r}"), "generation": 1},
            "spec": {
                "parentRefs": [{"name": format!("gw-{}", r % gateways), "namespace": "gateways"}],
                "hostnames": [format!("host-{r}.example.com")],
                "rules": [
                    {"matches": [{"path": {"type": "PathPrefix", "value": "/api"},
                                  "headers": [{"name": "x-version", "value": "2"}]}],
                     "filters": [{"type": "RequestHeaderModifier",
                                  "requestHeaderModifier": {"set": [{"name": "x-route", "value": format!("{r}")}]}}],
                     "backendRefs": [{"name": format!("svc-{}", r % 20), "port": 80, "weight": 3},
                                     {"name": format!("svc-{}", (r + 1) % 20), "port": 80, "weight": 1}]},
                    {"backendRefs": [{"name": format!("svc-{}", r % 20), "port": 80}]}
                ]}}))));
    }
    b.build()
}

#[test]
fn stages() {
    use portico::translate::*;
    let inputs = inputs(10_000, 100);
    for _ in 0..3 {
        let t0 = Instant::now();
        let mut idx = gateways::index(&inputs);
        let mut resolver = backends::BackendResolver::new(&inputs);
        let models: Vec<_> = inputs
            .http_routes
            .values()
            .map(|r| (r, http::compile_route(&mut resolver, r)))
            .collect();
        let t1 = Instant::now();
        let mut placements: std::collections::BTreeMap<_, Vec<_>> = Default::default();
        let mut statuses = std::collections::BTreeMap::new();
        for (route, model) in &models {
            let a = attachment::attach(
                &mut idx,
                &inputs,
                route.spec.parent_refs.as_deref().unwrap_or_default(),
                model,
                "HTTPRoute",
            );
            for (g, p) in a.placements {
                placements.entry(g).or_insert_with(Vec::new).push(p);
            }
            statuses.insert(model.key.clone(), a.parents);
        }
        let t2 = Instant::now();
        let mut tables = Vec::new();
        for (key, gw) in &idx.gateways {
            tables.push(route_table::build(
                gw,
                placements.get(key).map(Vec::as_slice).unwrap_or_default(),
            ));
        }
        let t3 = Instant::now();
        let mut n = 0;
        for t in &tables {
            for p in t {
                n += envoy::route::route_configuration("x".into(), p).len();
            }
        }
        let t4 = Instant::now();
        drop(tables);
        drop(placements);
        drop(statuses);
        drop(models);
        let t5 = Instant::now();
        let out = translate(&inputs);
        let t6 = Instant::now();
        drop(out);
        let t7 = Instant::now();
        eprintln!(
            "compile {:?} attach {:?} table {:?} envoy {:?} ({n} bytes) drop {:?} | full {:?} drop outputs {:?}",
            t1 - t0,
            t2 - t1,
            t3 - t2,
            t4 - t3,
            t5 - t4,
            t6 - t5,
            t7 - t6
        );
    }
}
