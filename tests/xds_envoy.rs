//! portico's ADS server driving a real Envoy (delta and state of the world):
//! Envoy boots from `portico bootstrap`'s template, receives the translated
//! configuration, routes a request to a loopback backend, ACKs (feedback
//! reaches the hub), and picks up a route change without a restart.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener as StdListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use portico::bootstrap::{self, BootstrapParams};
use portico::inputs::files;
use portico::translate::translate;
use portico::xds::hub::Hub;

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A backend that answers every request with `body`.
fn backend(body: &'static str) -> u16 {
    let listener = StdListener::bind("127.0.0.1:0").expect("bind backend");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve_one(stream, body));
        }
    });
    port
}

fn serve_one(mut stream: TcpStream, body: &str) {
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    let reply = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes());
}

/// One HTTP/1.1 request through Envoy: status code and body.
fn get(port: u16, host: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn inputs(listener_port: u16, backend_port: u16, extra_rule: &str) -> portico::inputs::Inputs {
    let yaml = format!(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: portico}}
spec: {{controllerName: portico.dev/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: default, generation: 1}}
spec:
  gatewayClassName: portico
  listeners:
  - {{name: http, port: {listener_port}, protocol: HTTP}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: web, namespace: default, generation: 1}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [httpd.example.com]
  rules:
  - backendRefs: [{{name: web, port: 80}}]
{extra_rule}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: default}}
spec:
  ports: [{{name: http, port: 80, targetPort: {backend_port}}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: default
  labels: {{kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{{name: http, port: {backend_port}}}]
endpoints:
- addresses: [127.0.0.1]
  conditions: {{ready: true}}
"#
    );
    let dir = std::env::temp_dir().join(format!(
        "portico-xds-{}-{listener_port}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("in.yaml");
    std::fs::write(&file, yaml).expect("write inputs");
    files::load(&file).expect("inputs load")
}

struct Envoy(Child);

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(delta: bool) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let hub = Hub::new();
    let xds = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind xds");
    let xds_port = xds.local_addr().expect("addr").port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(portico::xds::server::serve(Arc::clone(&hub), xds, async {
        let _ = stopped.await;
    }));

    let backend_port = backend("backend-ok");
    let listener_port = free_port();
    hub.publish(&translate(&inputs(listener_port, backend_port, "")));

    let mut params = BootstrapParams::new("default/gw", "127.0.0.1", xds_port);
    params.delta = delta;
    params.admin_port = free_port();
    params.ready_port = free_port();
    let dir = std::env::temp_dir().join(format!(
        "portico-xds-{}-{listener_port}",
        std::process::id()
    ));
    let config = dir.join("bootstrap.yaml");
    std::fs::write(
        &config,
        bootstrap::render(&params).expect("bootstrap renders"),
    )
    .expect("write");
    let envoy = Envoy(
        Command::new(common::envoy_binary())
            .args(["--disable-hot-restart", "--log-level", "warning", "-c"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("envoy starts"),
    );

    wait_for("Envoy to serve the route", Duration::from_secs(30), || {
        get(listener_port, "httpd.example.com", "/") == Some((200, "backend-ok".into()))
    });
    assert_eq!(
        get(listener_port, "other.example.com", "/").map(|r| r.0),
        Some(404)
    );
    wait_for(
        "Envoy's readiness listener",
        Duration::from_secs(10),
        || get(params.ready_port, "x", "/ready").map(|r| r.0) == Some(200),
    );
    let snapshot_version = || {
        hub.subscribe()
            .borrow()
            .get("default/gw")
            .map(|s| s.version())
    };
    wait_for(
        "the ACK of the current snapshot",
        Duration::from_secs(10),
        || hub.feedback("default/gw").acked == snapshot_version(),
    );
    assert_eq!(hub.feedback("default/gw").streams, 1);

    // A new rule reaches Envoy without a restart.
    let extra = "  - matches: [{path: {type: PathPrefix, value: /gone}}]\n    backendRefs: [{name: missing, port: 80}]";
    hub.publish(&translate(&inputs(listener_port, backend_port, extra)));
    wait_for("the new rule", Duration::from_secs(10), || {
        get(listener_port, "httpd.example.com", "/gone").map(|r| r.0) == Some(500)
    });
    assert_eq!(
        get(listener_port, "httpd.example.com", "/").map(|r| r.1),
        Some("backend-ok".into())
    );
    wait_for(
        "the ACK of the new snapshot",
        Duration::from_secs(10),
        || hub.feedback("default/gw").acked == snapshot_version(),
    );
    assert!(hub.feedback("default/gw").rejected.is_none());

    drop(envoy);
    let _ = stop.send(());
    let _ = rt.block_on(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn delta_ads_serves_a_real_envoy() {
    run(true);
}

#[test]
fn state_of_the_world_ads_serves_a_real_envoy() {
    run(false);
}
