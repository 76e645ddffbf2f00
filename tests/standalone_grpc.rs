//! gRPC, HTTP/2 backends and WebSocket through `portico standalone` and a
//! real Envoy, with real peers (Python grpcio and websockets): GRPCRoute
//! method and header matches with a header filter, weighted backends, over
//! cleartext HTTP/2 and over HTTPS; an HTTPRoute to a Service port with `appProtocol:
//! kubernetes.io/h2c` carrying gRPC (which needs HTTP/2 to the backend); and
//! a WebSocket through an HTTPRoute to a `kubernetes.io/ws` backend.

mod common;

use std::time::Duration;

use common::peers::{call, serve};
use common::standalone::{CLASS, Portico, Workdir, loopback_service};
use common::tls::{Ca, secret_yaml};
use common::traffic::{free_port, wait_for};

/// A Service `name` on port 9000 whose one endpoint is 127.0.0.1:`target`.
fn service(name: &str, target: u16, app_protocol: Option<&str>) -> String {
    loopback_service(name, 9000, "TCP", app_protocol, target)
}

#[test]
fn grpc_h2c_and_websocket_reach_real_peers() {
    let (a_port, b_port, ws_port) = (free_port(), free_port(), free_port());
    let _a = serve(&["grpc-serve", &a_port.to_string(), "a"]);
    let _b = serve(&["grpc-serve", &b_port.to_string(), "b"]);
    let _ws = serve(&["ws-serve", &ws_port.to_string()]);
    let ca = Ca::new();
    let ca_file = Workdir::new("grpc-ca");
    ca_file.write("ca.pem", &ca.pem);
    let (http, https) = (free_port(), free_port());
    let dir = Workdir::new("grpc");
    let mut yaml = format!(
        "{CLASS}---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: default}}\n\
         spec:\n  gatewayClassName: portico\n  listeners:\n\
         \x20 - {{name: http, port: {http}, protocol: HTTP}}\n\
         \x20 - {{name: https, port: {https}, protocol: HTTPS, hostname: grpc.example.com, tls: {{certificateRefs: [{{name: grpc-cert}}]}}}}\n\
         ---\napiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {{name: echo, namespace: default}}\n\
         spec:\n  parentRefs: [{{name: gw}}]\n  hostnames: [grpc.example.com]\n  rules:\n\
         \x20 - matches: [{{method: {{service: echo.Echo, method: Call}}, headers: [{{name: x-tenant, value: blue}}]}}]\n\
         \x20   filters: [{{type: RequestHeaderModifier, requestHeaderModifier: {{set: [{{name: x-via, value: portico}}]}}}}]\n\
         \x20   backendRefs: [{{name: a, port: 9000}}]\n\
         \x20 - matches: [{{method: {{service: echo.Echo}}}}]\n\
         \x20   backendRefs: [{{name: b, port: 9000}}]\n\
         ---\napiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {{name: split, namespace: default}}\n\
         spec:\n  parentRefs: [{{name: gw, sectionName: http}}]\n  hostnames: [split.example.com]\n\
         \x20 rules: [{{backendRefs: [{{name: a, port: 9000, weight: 1}}, {{name: b, port: 9000, weight: 1}}]}}]\n\
         ---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: h2c, namespace: default}}\n\
         spec:\n  parentRefs: [{{name: gw, sectionName: http}}]\n  hostnames: [h2c.example.com]\n\
         \x20 rules: [{{backendRefs: [{{name: b-h2c, port: 9000}}]}}]\n\
         ---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: http1, namespace: default}}\n\
         spec:\n  parentRefs: [{{name: gw, sectionName: http}}]\n  hostnames: [http1.example.com]\n\
         \x20 rules: [{{backendRefs: [{{name: b, port: 9000}}]}}]\n\
         ---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: ws, namespace: default}}\n\
         spec:\n  parentRefs: [{{name: gw, sectionName: http}}]\n  hostnames: [ws.example.com]\n\
         \x20 rules: [{{backendRefs: [{{name: ws, port: 9000}}]}}]\n"
    );
    yaml += &service("a", a_port, None);
    yaml += &service("b", b_port, None);
    yaml += &service("b-h2c", b_port, Some("kubernetes.io/h2c"));
    yaml += &service("ws", ws_port, Some("kubernetes.io/ws"));
    yaml += &secret_yaml("default", "grpc-cert", &ca.leaf(&["grpc.example.com"]));
    dir.write("all.yaml", &yaml);
    let _portico = Portico::start(&dir.0, &[]);

    let target = format!("127.0.0.1:{http}");
    let grpc = |authority: &str, method: &str, extra: &[&str]| {
        let mut args = vec!["grpc-call", target.as_str(), authority, method];
        args.extend_from_slice(extra);
        call(&args)
    };
    wait_for("a gRPC call through Envoy", Duration::from_secs(30), || {
        grpc("grpc.example.com", "echo.Echo/Ping", &[]) == "b:Ping:hello:"
    });
    // Method and header match, with the filter's header on the way.
    assert_eq!(
        grpc("grpc.example.com", "echo.Echo/Call", &["x-tenant=blue"]),
        "a:Call:hello:portico"
    );
    // Without the header, the service-wide rule.
    assert_eq!(
        grpc("grpc.example.com", "echo.Echo/Call", &[]),
        "b:Call:hello:"
    );
    // No rule for another service: Envoy answers 404, which gRPC reads as
    // UNIMPLEMENTED.
    assert_eq!(
        grpc("grpc.example.com", "other.Service/Call", &[]),
        "status:UNIMPLEMENTED"
    );

    // Weighted backends: calls reach both.
    let mut seen = std::collections::BTreeSet::new();
    wait_for(
        "calls on both weighted backends",
        Duration::from_secs(30),
        || {
            seen.insert(grpc("split.example.com", "echo.Echo/Ping", &[]));
            seen.contains("a:Ping:hello:") && seen.contains("b:Ping:hello:")
        },
    );
    assert_eq!(seen.len(), 2, "{seen:?}");

    // The same over HTTPS, HTTP/2 negotiated by ALPN.
    let ca_path = ca_file.0.join("ca.pem");
    let tls_target = format!("127.0.0.1:{https}");
    assert_eq!(
        call(&[
            "grpc-call",
            &tls_target,
            "grpc.example.com",
            "echo.Echo/Call",
            "x-tenant=blue",
            "--tls",
            ca_path.to_str().expect("path"),
            "grpc.example.com",
        ]),
        "a:Call:hello:portico"
    );

    // An HTTPRoute carries gRPC only when Envoy speaks HTTP/2 to the backend:
    // with appProtocol kubernetes.io/h2c it does; without, the call fails.
    assert_eq!(
        grpc("h2c.example.com", "echo.Echo/Ping", &[]),
        "b:Ping:hello:"
    );
    assert!(
        grpc("http1.example.com", "echo.Echo/Ping", &[]).starts_with("status:"),
        "HTTP/1.1 to a gRPC server cannot carry a call"
    );

    // WebSocket upgrade through an HTTPRoute.
    assert_eq!(
        call(&[
            "ws-call",
            "ws://ws.example.com/chat",
            "hi",
            &http.to_string()
        ]),
        "ws:hi"
    );
}
