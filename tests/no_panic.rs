//! No input may panic translation: arbitrary Gateways (every protocol, TLS
//! modes and certificate references), routes of every kind, and
//! BackendTLSPolicies (random names, hostnames, ports, protocols, matches,
//! filters, references, regexes and header names drawn from hostile
//! alphabets) go through `translate` and `render`; routes whose values carry
//! control characters never bring one into the Envoy configuration. Bounded:
//! `PROPTEST_CASES` (default 300) cases.

use std::sync::Arc;

use gateway_api::experimental::gateways::Gateway;
use proptest::prelude::*;
use serde_json::{Value, json};

use portico::inputs::{InputObject, InputsBuilder};
use portico::translate::translate;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z]{1,6}",
        "[a-z*.]{1,12}",
        "[ -~]{0,12}",
        "\\PC{0,8}",
        Just("(unclosed".to_string()),
        Just("/".to_string()),
        Just("*.example.com".to_string()),
        Just("a.example.com".to_string()),
        Just("x:y z".to_string()),
    ]
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("a".to_string()),
        1 => Just("b".to_string()),
        1 => Just("web".to_string()),
        1 => "[a-z]{1,3}",
    ]
}

/// Mostly the Gateway every route targets, sometimes anything.
fn gateway_name() -> impl Strategy<Value = String> {
    prop_oneof![4 => Just("gw".to_string()), 1 => name()]
}

fn number() -> impl Strategy<Value = i64> {
    prop_oneof![
        3 => Just(80i64),
        1 => Just(0),
        1 => Just(8080),
        1 => Just(-1),
        1 => Just(70000),
        1 => -5i64..100_000,
        1 => Just(i64::from(i32::MAX) + 1),
    ]
}

fn path_match() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just("Exact"), Just("PathPrefix"), Just("RegularExpression")],
        text(),
    )
        .prop_map(|(t, v)| json!({"type": t, "value": v}))
}

fn string_match() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just("Exact"), Just("RegularExpression")],
        text(),
        text(),
    )
        .prop_map(|(t, n, v)| json!({"type": t, "name": n, "value": v}))
}

fn backend() -> impl Strategy<Value = Value> {
    (name(), proptest::option::of(name()), proptest::option::of(number()), proptest::option::of(number()), proptest::option::of(text()))
        .prop_map(|(n, ns, port, weight, kind)| {
            json!({"name": n, "namespace": ns, "port": port, "weight": weight, "kind": kind})
        })
}

fn header_mod() -> impl Strategy<Value = Value> {
    (text(), text(), text()).prop_map(|(a, b, c)| {
        json!({"add": [{"name": a, "value": b}], "set": [{"name": c, "value": b}], "remove": [a]})
    })
}

fn filter() -> impl Strategy<Value = Value> {
    prop_oneof![
        header_mod()
            .prop_map(|m| json!({"type": "RequestHeaderModifier", "requestHeaderModifier": m})),
        header_mod()
            .prop_map(|m| json!({"type": "ResponseHeaderModifier", "responseHeaderModifier": m})),
        (
            text(),
            number(),
            text(),
            prop_oneof![Just("ReplaceFullPath"), Just("ReplacePrefixMatch")],
            number()
        )
            .prop_map(
                |(h, p, path, t, code)| json!({"type": "RequestRedirect", "requestRedirect": {
                "hostname": h, "port": p, "statusCode": code, "scheme": "https",
                "path": {"type": t, "replaceFullPath": path, "replacePrefixMatch": path}}})
            ),
        (text(), text()).prop_map(|(h, path)| json!({"type": "URLRewrite", "urlRewrite": {
            "hostname": h, "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": path}}})),
        (backend(), number(), number()).prop_map(
            |(b, n, d)| json!({"type": "RequestMirror", "requestMirror": {
            "backendRef": b, "fraction": {"numerator": n, "denominator": d}}})
        ),
        (text(), number()).prop_map(|(o, age)| json!({"type": "CORS", "cors": {
            "allowOrigins": [o], "allowHeaders": [o], "maxAge": age}})),
        text().prop_map(
            |k| json!({"type": "ExtensionRef", "extensionRef": {"group": k, "kind": k, "name": k}})
        ),
        Just(json!({"type": "RequestHeaderModifier"})),
    ]
}

fn rule() -> impl Strategy<Value = Value> {
    (
        proptest::collection::vec(
            (proptest::option::of(path_match()), proptest::collection::vec(string_match(), 0..3), proptest::collection::vec(string_match(), 0..2)),
            0..3,
        ),
        proptest::collection::vec(filter(), 0..3),
        proptest::collection::vec(backend(), 0..3),
        proptest::option::of((text(), text())),
        proptest::option::of((number(), text())),
    )
        .prop_map(|(matches, filters, backends, timeouts, retry)| {
            let matches: Vec<Value> = matches
                .into_iter()
                .map(|(p, h, q)| json!({"path": p, "headers": h, "queryParams": q}))
                .collect();
            json!({
                "matches": matches,
                "filters": filters,
                "backendRefs": backends,
                "timeouts": timeouts.map(|(r, b)| json!({"request": r, "backendRequest": b})),
                "retry": retry.map(|(a, b)| json!({"attempts": a, "backoff": b, "codes": [500, 7]})),
            })
        })
}

/// A GRPCRoute rule: method matches of any type and content, headers,
/// filters and backends.
fn grpc_rule() -> impl Strategy<Value = Value> {
    (
        proptest::collection::vec(
            (
                prop_oneof![Just("Exact"), Just("RegularExpression"), Just("Other")],
                proptest::option::of(text()),
                proptest::option::of(text()),
                proptest::collection::vec((text(), string_match()), 0..2),
            ),
            0..3,
        ),
        proptest::collection::vec(filter(), 0..2),
        proptest::collection::vec(backend(), 0..3),
    )
        .prop_map(|(matches, filters, backends)| {
            let matches: Vec<Value> = matches
                .into_iter()
                .map(|(kind, service, method, headers)| {
                    let headers: Vec<Value> = headers
                        .into_iter()
                        .map(|(n, m)| json!({"name": n, "type": m["type"], "value": m["value"]}))
                        .collect();
                    json!({"method": {"type": kind, "service": service, "method": method}, "headers": headers})
                })
                .collect();
            json!({"matches": matches, "filters": filters, "backendRefs": backends})
        })
}

fn route() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            3 => Just("HTTPRoute"),
            1 => Just("GRPCRoute"),
            1 => Just("TLSRoute"),
            1 => Just("TCPRoute"),
            1 => Just("UDPRoute"),
        ],
        name(),
        name(),
        proptest::collection::vec((gateway_name(), proptest::option::of(name()), proptest::option::of(text()), proptest::option::of(number())), 0..3),
        proptest::collection::vec(text(), 0..3),
        proptest::collection::vec(rule(), 0..3),
        proptest::collection::vec(grpc_rule(), 0..3),
        proptest::collection::vec(proptest::collection::vec(backend(), 0..3), 0..3),
    )
        .prop_map(|(kind, ns, n, parents, hostnames, rules, grpc_rules, l4_rules)| {
            let parents: Vec<Value> = parents
                .into_iter()
                .map(|(g, gns, section, port)| json!({"name": g, "namespace": gns, "sectionName": section, "port": port}))
                .collect();
            let l4_rules: Vec<Value> = l4_rules
                .into_iter()
                .map(|b| json!({"backendRefs": b}))
                .collect();
            let (version, spec) = match kind {
                "HTTPRoute" => ("v1", json!({"parentRefs": parents, "hostnames": hostnames, "rules": rules})),
                "GRPCRoute" => ("v1", json!({"parentRefs": parents, "hostnames": hostnames, "rules": grpc_rules})),
                "TLSRoute" => ("v1", json!({"parentRefs": parents, "hostnames": hostnames, "rules": l4_rules})),
                _ => ("v1alpha2", json!({"parentRefs": parents, "rules": l4_rules})),
            };
            json!({
                "apiVersion": format!("gateway.networking.k8s.io/{version}"), "kind": kind,
                "metadata": {"namespace": ns, "name": n, "generation": 1},
                "spec": spec,
            })
        })
}

/// A BackendTLSPolicy on a Service, with CA references good, missing or of
/// other kinds, and any hostname and subjectAltNames.
fn policy() -> impl Strategy<Value = Value> {
    (
        name(),
        name(),
        proptest::collection::vec((prop_oneof![Just("ConfigMap"), Just("Secret")], prop_oneof![Just("ca"), Just("missing"), Just("bad-ca")]), 0..3),
        text(),
        proptest::option::of(text()),
        proptest::collection::vec((prop_oneof![Just("Hostname"), Just("URI")], proptest::option::of(text())), 0..2),
        proptest::option::of(text()),
    )
        .prop_map(|(ns, n, cas, hostname, known, sans, section)| {
            let cas: Vec<Value> = cas.into_iter().map(|(k, c)| json!({"group": "", "kind": k, "name": c})).collect();
            let sans: Vec<Value> = sans.into_iter().map(|(t, v)| json!({"type": t, "hostname": v, "uri": v})).collect();
            json!({
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "BackendTLSPolicy",
                "metadata": {"namespace": ns, "name": n, "generation": 1},
                "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": "web", "sectionName": section}],
                         "validation": {"caCertificateRefs": cas, "hostname": hostname,
                                        "wellKnownCACertificates": known, "subjectAltNames": sans}},
            })
        })
}

/// One object of any kind the file source reads, or None when the schema
/// refuses it.
fn object(v: Value) -> Option<InputObject> {
    let text = serde_json::to_string(&strip_nulls(v)).ok()?;
    let mut objects =
        portico::inputs::files::parse_documents(std::path::Path::new("generated.json"), &text)
            .ok()?;
    objects.pop()
}

fn gateway() -> impl Strategy<Value = Value> {
    (
        name(),
        gateway_name(),
        proptest::collection::vec(
            (
                text(),
                number(),
                prop_oneof![
                    Just("HTTP".to_string()),
                    Just("HTTPS".to_string()),
                    Just("TLS".to_string()),
                    Just("TCP".to_string()),
                    Just("UDP".to_string()),
                    text()
                ],
                proptest::option::of(text()),
                prop_oneof![Just("Same"), Just("All"), Just("Selector")],
                proptest::option::of(text()),
                proptest::option::of((
                    prop_oneof![Just("Terminate"), Just("Passthrough")],
                    proptest::collection::vec((prop_oneof![Just("cert"), Just("bad-cert"), Just("nope")], proptest::option::of(name()), proptest::option::of(text())), 0..3),
                )),
            ),
            0..4,
        ),
    )
        .prop_map(|(ns, n, listeners)| {
            let listeners: Vec<Value> = listeners
                .into_iter()
                .map(|(ln, port, proto, host, from, op, tls)| {
                    let op = op.unwrap_or_else(|| "In".to_string());
                    let tls = tls.map(|(mode, refs)| {
                        let refs: Vec<Value> = refs
                            .into_iter()
                            .map(|(c, cns, kind)| json!({"name": c, "namespace": cns, "kind": kind}))
                            .collect();
                        json!({"mode": mode, "certificateRefs": refs})
                    });
                    json!({
                        "name": ln, "port": port, "protocol": proto, "hostname": host, "tls": tls,
                        "allowedRoutes": {"namespaces": {"from": from, "selector": {
                            "matchLabels": {"team": "a"},
                            "matchExpressions": [{"key": "k", "operator": op, "values": ["v"]}]}},
                            "kinds": [{"kind": "HTTPRoute"}, {"kind": "GRPCRoute"}, {"kind": "TLSRoute"}, {"kind": "TCPRoute"}, {"kind": "UDPRoute"}, {"kind": op}]},
                    })
                })
                .collect();
            json!({
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                "metadata": {"namespace": ns, "name": n, "generation": 2},
                "spec": {"gatewayClassName": "portico", "listeners": listeners},
            })
        })
}

fn typed<T: serde::de::DeserializeOwned>(v: Value) -> Option<T> {
    // Values the API server's schema would refuse to store cannot reach us either.
    serde_json::from_value(strip_nulls(v)).ok()
}

fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

fn fixed_objects(b: &mut InputsBuilder) {
    let class = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
        "metadata": {"name": "portico"}, "spec": {"controllerName": "portico.dev/gateway-controller"}});
    b.insert(InputObject::GatewayClass(
        serde_json::from_value(class).expect("class"),
    ));
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["a.example.com".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    for ns in ["a", "b", "web"] {
        for (name, crt, pem_key) in [
            ("cert", cert.pem(), key.serialize_pem()),
            ("bad-cert", "garbage".to_string(), key.serialize_pem()),
        ] {
            let secret = json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                "metadata": {"namespace": ns, "name": name},
                "stringData": {"tls.crt": crt, "tls.key": pem_key}});
            b.insert(object(secret).expect("secret"));
        }
        for (name, ca) in [
            ("ca", cert.pem()),
            ("bad-ca", "not a certificate".to_string()),
        ] {
            let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"namespace": ns, "name": name}, "data": {"ca.crt": ca}});
            b.insert(object(cm).expect("config map"));
        }
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": ns, "name": "web"},
            "spec": {"ports": [{"name": "http", "port": 80}, {"port": 8080}]}});
        b.insert(InputObject::Service(
            serde_json::from_value(svc).expect("service"),
        ));
        let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"namespace": ns, "name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8000}],
            "endpoints": [{"addresses": ["10.0.0.1", "not-an-ip"], "conditions": {"ready": true}}]});
        b.insert(InputObject::EndpointSlice(
            serde_json::from_value(slice).expect("slice"),
        ));
    }
}

/// Every string of the rendered Envoy configuration that came from a route
/// or policy field, as (JSON path, value), where it holds a control character
/// other than a tab. Names are skipped: they carry listener names, which
/// nothing copies into a request or a header.
fn control_characters(v: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(s) if s.chars().any(|c| c != '\t' && (c < ' ' || c == '\u{7f}')) => {
            out.push((path.to_string(), s.clone()));
        }
        Value::Object(m) => {
            for (k, v) in m {
                if !matches!(k.as_str(), "name" | "route_config_name" | "stat_prefix") {
                    control_characters(v, &format!("{path}.{k}"), out);
                }
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                control_characters(v, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Generated strategies are deep; debug builds need more stack than a test
/// thread's default to build them.
const STACK: usize = 64 * 1024 * 1024;

#[test]
fn translate_never_panics() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(300);
    let run = move || {
        let config = ProptestConfig {
            cases,
            failure_persistence: None,
            ..ProptestConfig::default()
        };
        let mut runner = proptest::test_runner::TestRunner::new(config);
        let strategy = (
            proptest::collection::vec(gateway(), 0..3),
            proptest::collection::vec(route(), 1..5),
            proptest::collection::vec(policy(), 0..2),
        );
        let typed_routes = std::cell::Cell::new(0usize);
        let attached = std::cell::Cell::new(0usize);
        runner
            .run(&strategy, |(gateways, routes, policies)| {
                let mut b = InputsBuilder::default();
                fixed_objects(&mut b);
                for g in gateways.into_iter().filter_map(typed::<Gateway>) {
                    b.insert(InputObject::Gateway(g));
                }
                for r in routes.into_iter().filter_map(object) {
                    typed_routes.set(typed_routes.get() + 1);
                    b.insert(r);
                }
                for p in policies.into_iter().filter_map(object) {
                    b.insert(p);
                }
                let inputs = Arc::new(b.build());
                let outputs = translate(&inputs);
                attached.set(attached.get() + outputs.routes.len());
                prop_assert!(portico::render::document(&outputs, None).is_ok());
                // Translation is deterministic.
                prop_assert_eq!(translate(&inputs), outputs);
                Ok(())
            })
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((typed_routes.get(), attached.get()))
    };
    let (typed_routes, attached) = std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(run)
        .expect("spawn")
        .join()
        .expect("no panic")
        .expect("no failing case");
    eprintln!("{typed_routes} routes parsed, {attached} reached a Gateway");
    // The generator must really exercise translation, not only the parser.
    assert!(
        typed_routes >= cases as usize / 2,
        "only {typed_routes} routes parsed"
    );
    // About 10-15% of generated routes reach a Gateway (58 to 86 in 300
    // cases over random seeds); a generator that stopped reaching them would
    // fall far below this floor.
    assert!(
        attached >= cases as usize / 10,
        "only {attached} routes reached a Gateway"
    );
}

/// A value for a field of `control_route`: mostly fine, often with a control
/// character (a tab sometimes, which only header values may hold inside).
fn maybe_hostile(good: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        2 => Just(good.to_string()),
        3 => (0usize..=good.len(), "[\\x00-\\x1f\\x7f]").prop_map(move |(at, c)| {
            let at = (0..=at).rev().find(|i| good.is_char_boundary(*i)).unwrap_or(0);
            format!("{}{c}{}", &good[..at], &good[at..])
        }),
    ]
}

/// An HTTPRoute on the Gateway `gw` whose rules each copy one possibly
/// hostile value into Envoy configuration, and a GRPCRoute likewise.
fn control_routes() -> impl Strategy<Value = [Value; 2]> {
    (
        (
            maybe_hostile("/exact"),
            maybe_hostile("/prefix"),
            maybe_hostile("header-value"),
            maybe_hostile("query-value"),
            maybe_hostile("query"),
            maybe_hostile("rule-name"),
        ),
        (
            maybe_hostile("set-value"),
            maybe_hostile("added value"),
            maybe_hostile("response-value"),
            maybe_hostile("backend-value"),
            maybe_hostile("/redirected"),
            maybe_hostile("/rewritten"),
            maybe_hostile("https://origin.example.com"),
        ),
        maybe_hostile("grpc-header"),
    )
        .prop_map(|((exact, prefix, header, query, query_name, rule_name), (set, add, response, backend, redirect, rewrite, origin), grpc)| {
            let to_web = json!([{"name": "web", "port": 80}]);
            let http = json!({
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                "metadata": {"namespace": "a", "name": "hostile", "generation": 1},
                "spec": {"parentRefs": [{"name": "gw"}], "rules": [
                    {"matches": [{"path": {"type": "Exact", "value": exact}}], "backendRefs": to_web},
                    {"matches": [{"path": {"type": "PathPrefix", "value": prefix}}], "backendRefs": to_web},
                    {"matches": [{"path": {"value": "/h"}, "headers": [{"name": "x-h", "value": header}]}], "backendRefs": to_web},
                    {"matches": [{"path": {"value": "/q"}, "queryParams": [{"name": query_name, "value": query}]}], "backendRefs": to_web},
                    {"name": rule_name, "matches": [{"path": {"value": "/named"}}], "backendRefs": to_web},
                    {"matches": [{"path": {"value": "/mods"}}], "filters": [
                        {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x-s", "value": set}], "add": [{"name": "x-a", "value": add}]}},
                        {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"set": [{"name": "x-r", "value": response}]}},
                    ], "backendRefs": to_web},
                    {"matches": [{"path": {"value": "/backend"}}], "backendRefs": [{"name": "web", "port": 80, "filters": [
                        {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x-b", "value": backend}]}}]}]},
                    {"matches": [{"path": {"value": "/redirect"}}], "filters": [
                        {"type": "RequestRedirect", "requestRedirect": {"path": {"type": "ReplaceFullPath", "replaceFullPath": redirect}}}]},
                    {"matches": [{"path": {"value": "/rewrite"}}], "filters": [
                        {"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": rewrite}}}], "backendRefs": to_web},
                    {"matches": [{"path": {"value": "/cors"}}], "filters": [
                        {"type": "CORS", "cors": {"allowOrigins": [origin]}}], "backendRefs": to_web},
                ]},
            });
            let grpc = json!({
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute",
                "metadata": {"namespace": "a", "name": "hostile-grpc", "generation": 1},
                "spec": {"parentRefs": [{"name": "gw"}], "hostnames": ["grpc.example.com"], "rules": [
                    {"matches": [{"method": {"service": "s.S"}, "headers": [{"name": "x-g", "value": grpc}]}],
                     "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x-g", "value": grpc}]}}],
                     "backendRefs": to_web},
                ]},
            });
            [http, grpc]
        })
}

/// Control characters in route values never reach Envoy: each rule holding
/// one is dropped (the route says which field), the others are served.
#[test]
fn control_characters_never_reach_envoy() {
    let gateway = json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"namespace": "a", "name": "gw", "generation": 1},
        "spec": {"gatewayClassName": "portico", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]},
    });
    let config = ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let dropped = std::cell::Cell::new(0usize);
    runner
        .run(&control_routes(), |routes| {
            let mut b = InputsBuilder::default();
            fixed_objects(&mut b);
            b.insert(object(gateway.clone()).expect("gateway"));
            // Typed directly, as from the API server: YAML (the file source)
            // cannot even carry some control characters.
            let [http, grpc] = routes;
            b.insert(InputObject::HttpRoute(
                typed(http).expect("the HTTPRoute is typed"),
            ));
            b.insert(InputObject::GrpcRoute(
                typed(grpc).expect("the GRPCRoute is typed"),
            ));
            let outputs = translate(&b.build());
            for status in outputs.routes.values() {
                let text = serde_json::to_string(status).expect("status serializes");
                dropped.set(dropped.get() + text.matches("control character U+").count());
            }
            let doc = portico::render::document(&outputs, None).map_err(TestCaseError::fail)?;
            let mut found = Vec::new();
            for g in doc["gateways"].as_array().into_iter().flatten() {
                control_characters(&g["envoy"], "envoy", &mut found);
            }
            prop_assert!(
                found.is_empty(),
                "control characters reach Envoy: {found:?}"
            );
            Ok(())
        })
        .expect("no failing case");
    assert!(dropped.get() > 100, "only {} values refused", dropped.get());
}

/// The file source never panics either: arbitrary text made of YAML-ish
/// pieces is either loaded or refused with an error naming the document.
#[test]
fn file_source_never_panics() {
    let piece = prop_oneof![
        Just("---\n".to_string()),
        Just("apiVersion: gateway.networking.k8s.io/v1\n".to_string()),
        Just("apiVersion: v1\n".to_string()),
        Just("kind: HTTPRoute\n".to_string()),
        Just("kind: Gateway\n".to_string()),
        Just("kind: Service\n".to_string()),
        Just("metadata: {name: a}\n".to_string()),
        Just("spec:\n  rules: [{}]\n".to_string()),
        Just("spec: [\n".to_string()),
        Just("  - x: &a [*a]\n".to_string()),
        "[ -~\\n]{0,20}",
    ];
    let config = ProptestConfig {
        cases: 500,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    runner
        .run(&proptest::collection::vec(piece, 0..12), |pieces| {
            let text = pieces.concat();
            match portico::inputs::files::parse_documents(std::path::Path::new("in.yaml"), &text) {
                Ok(_) => {}
                Err(e) => prop_assert!(e.to_string().starts_with("in.yaml: document ")),
            }
            Ok(())
        })
        .expect("no failing case");
}
