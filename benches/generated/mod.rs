//! The inputs the translation benchmarks share: Gateways, HTTPRoutes each
//! with its own hostname, Services with their EndpointSlices.

use serde_json::json;

use portico::inputs::{InputObject, Inputs, InputsBuilder};

fn object<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("benchmark objects are valid")
}

/// `routes` HTTPRoutes in 50 namespaces, each with its own hostname and two
/// rules, spread over `gateways` Gateways; 20 Services per namespace with
/// three endpoints each.
pub fn inputs(routes: usize, gateways: usize) -> Inputs {
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
        b.insert(route(r, gateways));
    }
    b.build()
}

/// HTTPRoute number `r` of the generated set.
pub fn route(r: usize, gateways: usize) -> InputObject {
    InputObject::HttpRoute(object(json!({
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
        ]}})))
}
