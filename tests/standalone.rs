//! `portico standalone` as a user runs it: a directory of YAML, a loopback
//! backend, real Envoys started by portico. Edits reach Envoy without a
//! restart, deleting the Gateway stops its Envoy, Ctrl-C stops everything.

mod common;

use common::standalone::Portico;
use common::traffic::{backend, backend_on, free_port, get, wait_for};

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn gateway(port: u16) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {{name: portico}}\n\
         spec: {{controllerName: portico.dev/gateway-controller}}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: default}}\n\
         spec:\n  gatewayClassName: portico\n  listeners:\n  - {{name: http, port: {port}, protocol: HTTP}}\n"
    )
}

fn routes(backend_port: u16, extra: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: web, namespace: default}}\n\
         spec:\n  parentRefs: [{{name: gw}}]\n  hostnames: [httpd.example.com]\n  rules:\n\
         {extra}  - backendRefs: [{{name: web, port: 80}}]\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: default}}\n\
         spec: {{ports: [{{name: http, port: 80}}]}}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: web-1, namespace: default, labels: {{kubernetes.io/service-name: web}}}}\n\
         addressType: IPv4\nports: [{{name: http, port: {backend_port}}}]\n\
         endpoints: [{{addresses: [127.0.0.1], conditions: {{ready: true}}}}]\n"
    )
}

#[test]
fn standalone_serves_edits_and_stops_cleanly() {
    let dir = std::env::temp_dir().join(format!("portico-standalone-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let listener_port = free_port();
    let admin_port = free_port();
    let backend_port = backend("<h1>It works!</h1>");
    std::fs::write(dir.join("gateway.yaml"), gateway(listener_port)).expect("write");
    std::fs::write(dir.join("routes.yaml"), routes(backend_port, "")).expect("write");

    let admin = format!("127.0.0.1:{admin_port}");
    let mut portico = Portico::start(&dir, &["--admin-address", &admin]);

    wait_for(
        "the seed route through Envoy",
        Duration::from_secs(30),
        || get(listener_port, "httpd.example.com", "/") == Some((200, "<h1>It works!</h1>".into())),
    );

    // Metrics tell what happened on the xDS side.
    wait_for(
        "metrics showing the stream and its ACKs",
        Duration::from_secs(10),
        || {
            get(admin_port, "admin", "/metrics").is_some_and(|(status, text)| {
                status == 200
                    && text.contains("portico_xds_streams{gateway=\"default/gw\"} 1")
                    && text.contains("portico_xds_acks_total{resource_type=\"route\"}")
            })
        },
    );

    // An edit: a redirect rule in front of the backend.
    let redirect = "  - matches: [{path: {type: PathPrefix, value: /old}}]\n    \
                    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}, statusCode: 301}}]\n";
    std::fs::write(dir.join("routes.yaml"), routes(backend_port, redirect)).expect("edit");
    wait_for("the redirect rule", Duration::from_secs(30), || {
        get(listener_port, "httpd.example.com", "/old/page").map(|r| r.0) == Some(301)
    });
    assert_eq!(
        get(listener_port, "httpd.example.com", "/").map(|r| r.0),
        Some(200)
    );

    // A broken edit keeps the last good configuration.
    std::fs::write(dir.join("routes.yaml"), "kind: [unclosed\n").expect("break");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        get(listener_port, "httpd.example.com", "/").map(|r| r.0),
        Some(200)
    );

    // Deleting the Gateway stops its Envoy.
    std::fs::write(dir.join("routes.yaml"), routes(backend_port, "")).expect("repair");
    std::fs::remove_file(dir.join("gateway.yaml")).expect("delete");
    wait_for("Envoy to stop", Duration::from_secs(30), || {
        TcpStream::connect(("127.0.0.1", listener_port)).is_err()
    });

    let _ = Command::new("kill")
        .args(["-INT", &portico.0.id().to_string()])
        .status();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = portico.0.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > Duration::from_secs(10) {
            panic!("portico did not stop on SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "portico exits 0 on Ctrl-C");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The seed journey without Kubernetes, exactly as the README shows it:
/// `portico standalone -f examples/` with the local backend on port 18091,
/// and `curl -H "Host: httpd.example.com" http://127.0.0.1/`.
#[test]
fn the_examples_directory_serves_the_seed() {
    backend_on(18091, "<h1>It works!</h1>\n");
    let portico = Portico(
        Command::new(env!("CARGO_BIN_EXE_portico"))
            .args(["standalone", "-f", "examples/"])
            .arg("--envoy")
            .arg(common::envoy_binary())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("portico starts"),
    );
    wait_for(
        "the seed through Envoy on port 80",
        Duration::from_secs(30),
        || get(80, "httpd.example.com", "/") == Some((200, "<h1>It works!</h1>\n".into())),
    );
    drop(portico);
}
