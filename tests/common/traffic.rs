//! Real traffic helpers: free loopback ports, a fixed-answer HTTP backend, a
//! minimal HTTP/1.1 client, polling, and an Envoy process started from
//! portico's bootstrap (killed when dropped).

use std::io::{Read, Write};
use std::net::{TcpListener as StdListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use portico::bootstrap::{self, BootstrapParams};

/// A loopback port free for a listener the test starts later.
///
/// Ports come from below the kernel's ephemeral range (where outgoing
/// connections take their source ports, so an Envoy's xDS or upstream
/// connection cannot occupy a listener port before Envoy binds it), and no
/// port is handed out twice in one test process (so two listeners of one
/// test never share a port). Each candidate is checked free by binding it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let offset = NEXT.fetch_add(1, Ordering::SeqCst) % SPAN;
        let Ok(port) = u16::try_from(LOW + offset) else {
            continue;
        };
        if StdListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between {LOW} and {}", LOW + SPAN)
}

/// A backend that answers every request with `body`.
pub fn backend(body: &'static str) -> u16 {
    backend_on(0, body)
}

/// The same on a given port (0 picks a free one).
pub fn backend_on(port: u16, body: &'static str) -> u16 {
    let listener = StdListener::bind(("127.0.0.1", port)).expect("bind backend");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve_one(stream, body));
        }
    });
    port
}

pub fn serve_one(mut stream: TcpStream, body: &str) {
    serve_one_on(&mut stream, body);
}

/// Reads one request head from any stream and answers 200 with `body`.
pub fn serve_one_on<S: Read + Write>(stream: &mut S, body: &str) {
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
    let _ = stream.flush();
}

/// One HTTP/1.1 request through Envoy: status code and body.
pub fn get(port: u16, host: &str, path: &str) -> Option<(u16, String)> {
    request(port, "GET", host, path, &[]).map(|r| (r.status, r.body))
}

pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An Envoy process, killed when dropped.
pub struct Envoy(pub Child);

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts Envoy for `default/gw` against an xDS port; returns it with its ready port.
pub fn start_envoy(xds_port: u16, delta: bool, dir: &Path) -> (Envoy, BootstrapParams) {
    let mut params = BootstrapParams::new("default/gw", "127.0.0.1", xds_port);
    params.delta = delta;
    params.admin_port = free_port();
    params.ready_port = free_port();
    let config = dir.join(format!("bootstrap-{}.yaml", params.admin_port));
    std::fs::write(
        &config,
        bootstrap::render(&params).expect("bootstrap renders"),
    )
    .expect("write");
    let envoy = Envoy(
        Command::new(super::envoy_binary())
            .args(["--disable-hot-restart", "--log-level", "warning", "-c"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("envoy starts"),
    );
    (envoy, params)
}

/// One request as an echo backend saw it: the backend's name, the method, the
/// path with its query, and every header (names lowercased, in order).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    pub backend: String,
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Seen {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).into_iter().next()
    }

    /// Every value of a header: repeated lines and comma-joined values alike.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .collect()
    }

    /// The echo body: `backend=`, `method=` and `path=` lines, an empty line,
    /// then one `name: value` line per header.
    pub fn to_body(&self) -> String {
        let mut body = format!(
            "backend={}\nmethod={}\npath={}\n\n",
            self.backend, self.method, self.path
        );
        for (k, v) in &self.headers {
            body.push_str(&format!("{k}: {v}\n"));
        }
        body
    }

    /// Reads an echo body back; `None` when `body` is not one.
    pub fn parse(body: &str) -> Option<Seen> {
        let (top, headers) = body.split_once("\n\n")?;
        let mut lines = top.lines();
        let backend = lines.next()?.strip_prefix("backend=")?.to_string();
        let method = lines.next()?.strip_prefix("method=")?.to_string();
        let path = lines.next()?.strip_prefix("path=")?.to_string();
        let headers = headers
            .lines()
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Some(Seen {
            backend,
            method,
            path,
            headers,
        })
    }
}

/// An echo backend: its port and every request it received, in order.
#[derive(Clone, Debug)]
pub struct Echo {
    pub port: u16,
    pub seen: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
}

impl Echo {
    pub fn requests(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// A backend on 127.0.0.1 answering every request with 200 and the request
/// as it saw it (`Seen::to_body`). It answers with the response headers
/// `x-backend: <name>` and `x-remove-me: yes`, and waits `x-delay-ms`
/// milliseconds first when the request carries that header.
pub fn echo_backend(name: &str) -> Echo {
    let listener = StdListener::bind("127.0.0.1:0").expect("bind echo backend");
    let port = listener.local_addr().expect("addr").port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let echo = Echo {
        port,
        seen: std::sync::Arc::clone(&seen),
    };
    let name = name.to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let name = name.clone();
            let seen = std::sync::Arc::clone(&seen);
            std::thread::spawn(move || echo_one(stream, &name, &seen));
        }
    });
    echo
}

fn echo_one(mut stream: TcpStream, name: &str, seen: &std::sync::Mutex<Vec<Seen>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    // Envoy keeps upstream connections open: serve requests until it closes.
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let head_end = loop {
            if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => data.extend_from_slice(&buf[..n]),
            }
        };
        let head = String::from_utf8_lossy(&data[..head_end]).to_string();
        let mut lines = head.split("\r\n");
        let mut request_line = lines.next().unwrap_or_default().split(' ');
        let method = request_line.next().unwrap_or_default().to_string();
        let path = request_line.next().unwrap_or_default().to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let request = Seen {
            backend: name.to_string(),
            method,
            path,
            headers,
        };
        let length: usize = request
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while data.len() < head_end + length {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => data.extend_from_slice(&buf[..n]),
            }
        }
        data.drain(..head_end + length);
        if let Some(ms) = request.header("x-delay-ms").and_then(|v| v.parse().ok()) {
            std::thread::sleep(Duration::from_millis(ms));
        }
        let body = request.to_body();
        seen.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(request);
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-backend: {name}\r\n\
             x-remove-me: yes\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// A response as the client received it (header names lowercased).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The request as the echo backend that answered saw it.
    pub fn seen(&self) -> Option<Seen> {
        Seen::parse(&self.body)
    }
}

/// One HTTP/1.1 request to 127.0.0.1:`port` with extra headers; `None` when
/// the connection fails or the answer is not HTTP.
pub fn request(
    port: u16,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<Response> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !matches!(method, "GET" | "HEAD") {
        head.push_str("content-length: 0\r\n");
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).ok()?;
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: Option<usize> = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok());
    let bodyless = method == "HEAD" || status == 204 || status == 304 || status < 200;
    let wanted = if bodyless { Some(0) } else { length };
    loop {
        if wanted.is_some_and(|n| data.len() >= head_end + n) {
            break;
        }
        // Without a length the body ends when the server closes.
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(_) if wanted.is_none() => break,
            Err(_) => return None,
        }
    }
    let end = wanted.map_or(data.len(), |n| (head_end + n).min(data.len()));
    let body = String::from_utf8_lossy(&data[head_end..end]).to_string();
    Some(Response {
        status,
        headers,
        body,
    })
}

/// portico's ADS server on a free loopback port, running on `rt` until the
/// returned task is aborted or the runtime dropped.
pub fn serve_xds(
    rt: &tokio::runtime::Runtime,
    hub: &std::sync::Arc<portico::xds::hub::Hub>,
) -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
) {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind the xDS port");
    let address = listener.local_addr().expect("xDS address");
    let server = rt.spawn(portico::xds::server::serve(
        std::sync::Arc::clone(hub),
        listener,
        std::future::pending(),
    ));
    (address, server)
}

/// A class, HTTP Gateways named `gateways` (namespace `default`) listening on
/// `listener_port`, an HTTPRoute `web` for `httpd.example.com` attached to all
/// of them and sending to Service `web`, whose one ready endpoint is
/// 127.0.0.1:`backend_port`. `extra_rule` is appended to the route's rules.
pub fn world(
    gateways: &[&str],
    listener_port: u16,
    backend_port: u16,
    extra_rule: &str,
) -> portico::inputs::Inputs {
    let mut yaml = String::from(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\n\
         metadata: {name: portico}\nspec: {controllerName: portico.dev/gateway-controller}\n",
    );
    for g in gateways {
        yaml += &format!(
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n\
             metadata: {{name: {g}, namespace: default, generation: 1}}\n\
             spec:\n  gatewayClassName: portico\n  listeners:\n\
             \x20 - {{name: http, port: {listener_port}, protocol: HTTP}}\n"
        );
    }
    let parents: Vec<String> = gateways.iter().map(|g| format!("{{name: {g}}}")).collect();
    yaml += &format!(
        r#"---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: web, namespace: default, generation: 1}}
spec:
  parentRefs: [{parents}]
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
"#,
        parents = parents.join(", ")
    );
    let mut b = portico::inputs::InputsBuilder::default();
    for o in portico::inputs::files::parse_documents(Path::new("world.yaml"), &yaml)
        .expect("the test world parses")
    {
        b.insert(o);
    }
    b.build()
}
