//! TLSRoute, TCPRoute and UDPRoute through `portico standalone` and a real
//! Envoy: TLS passed through by SNI to backends that present their own
//! certificates, TLS terminated by Envoy on the same port, TCP connections
//! split by weight, and UDP datagrams to one backend and split between two.

mod common;

use std::collections::BTreeMap;
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use common::standalone::{CLASS, Portico, Workdir, loopback_service};
use common::tls::{
    Ca, connect, exchange, peer_serial, pem_serial, secret_yaml, tcp_echo_backend, tls_echo_backend,
};
use common::traffic::{free_port, wait_for};

/// A Service `name` on port 7000 whose one endpoint is 127.0.0.1:`target`.
fn service(name: &str, protocol: &str, target: u16) -> String {
    loopback_service(name, 7000, protocol, None, target)
}

fn route(
    kind: &str,
    version: &str,
    name: &str,
    section: &str,
    extra: &str,
    backends: &str,
) -> String {
    format!(
        "---\napiVersion: gateway.networking.k8s.io/{version}\nkind: {kind}\n\
         metadata: {{name: {name}, namespace: default}}\n\
         spec:\n  parentRefs: [{{name: gw, sectionName: {section}}}]\n{extra}  rules: [{{backendRefs: {backends}}}]\n"
    )
}

#[test]
fn tls_passthrough_and_termination_share_a_port() {
    let ca = Ca::new();
    let db = tls_echo_backend(&ca.leaf(&["db.example.com"]), "db");
    let cache = tls_echo_backend(&ca.leaf(&["cache.example.com"]), "cache");
    let plain = tcp_echo_backend("plain");
    let term_cert = ca.leaf(&["term.example.org"]);
    let port = free_port();
    let dir = Workdir::new("tls-routes");
    let mut yaml = format!(
        "{CLASS}---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: default}}\n\
         spec:\n  gatewayClassName: portico\n  listeners:\n\
         \x20 - {{name: pass, port: {port}, protocol: TLS, hostname: \"*.example.com\", tls: {{mode: Passthrough}}}}\n\
         \x20 - {{name: term, port: {port}, protocol: TLS, hostname: term.example.org, tls: {{mode: Terminate, certificateRefs: [{{name: term-cert}}]}}}}\n"
    );
    let hostnames = |h: &str| format!("  hostnames: [{h}]\n");
    yaml += &route(
        "TLSRoute",
        "v1",
        "db",
        "pass",
        &hostnames("db.example.com"),
        "[{name: db, port: 7000}]",
    );
    yaml += &route(
        "TLSRoute",
        "v1",
        "cache",
        "pass",
        &hostnames("cache.example.com"),
        "[{name: cache, port: 7000}]",
    );
    yaml += &route(
        "TLSRoute",
        "v1",
        "term",
        "term",
        &hostnames("term.example.org"),
        "[{name: plain, port: 7000}]",
    );
    yaml += &service("db", "TCP", db);
    yaml += &service("cache", "TCP", cache);
    yaml += &service("plain", "TCP", plain);
    yaml += &secret_yaml("default", "term-cert", &term_cert);
    dir.write("all.yaml", &yaml);
    let _portico = Portico::start(&dir.0, &[]);
    let client = ca.client(&[]);

    // Passthrough: the backend's own certificate, end to end.
    wait_for("TLS passthrough to db", Duration::from_secs(30), || {
        connect(&client, port, "db.example.com")
            .ok()
            .and_then(|mut s| exchange(&mut s, "hello"))
            == Some("db:hello".into())
    });
    let mut cache_stream = connect(&client, port, "cache.example.com").expect("TLS to cache");
    assert_eq!(exchange(&mut cache_stream, "hi"), Some("cache:hi".into()));
    // Termination on the same port: Envoy's certificate, cleartext behind.
    let mut term = connect(&client, port, "term.example.org").expect("TLS to term");
    assert_eq!(peer_serial(&term), pem_serial(&term_cert.cert));
    assert_eq!(exchange(&mut term, "clear"), Some("plain:clear".into()));
    // An SNI name no route claims is not forwarded anywhere.
    assert!(
        connect(&client, port, "nobody.example.com")
            .ok()
            .and_then(|mut s| exchange(&mut s, "x"))
            .is_none()
    );
}

#[test]
fn tcp_and_udp_routes_forward_by_weight() {
    let (tcp_port, udp_one, udp_split) = (free_port(), free_port(), free_udp_port());
    let heavy = tcp_echo_backend("heavy");
    let light = tcp_echo_backend("light");
    let (echo, _e) = udp_echo("echo");
    let (left, _l) = udp_echo("left");
    let (right, _r) = udp_echo("right");
    let dir = Workdir::new("tcp-udp-routes");
    let mut yaml = format!(
        "{CLASS}---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: default}}\n\
         spec:\n  gatewayClassName: portico\n  listeners:\n\
         \x20 - {{name: tcp, port: {tcp_port}, protocol: TCP}}\n\
         \x20 - {{name: udp, port: {udp_one}, protocol: UDP}}\n\
         \x20 - {{name: split, port: {udp_split}, protocol: UDP}}\n"
    );
    yaml += &route(
        "TCPRoute",
        "v1alpha2",
        "tcp",
        "tcp",
        "",
        "[{name: heavy, port: 7000, weight: 3}, {name: light, port: 7000, weight: 1}]",
    );
    yaml += &route(
        "UDPRoute",
        "v1alpha2",
        "udp",
        "udp",
        "",
        "[{name: echo, port: 7000}]",
    );
    yaml += &route(
        "UDPRoute",
        "v1alpha2",
        "split",
        "split",
        "",
        "[{name: left, port: 7000}, {name: right, port: 7000}]",
    );
    yaml += &service("heavy", "TCP", heavy);
    yaml += &service("light", "TCP", light);
    yaml += &service("echo", "UDP", echo);
    yaml += &service("left", "UDP", left);
    yaml += &service("right", "UDP", right);
    dir.write("all.yaml", &yaml);
    let _portico = Portico::start(&dir.0, &[]);

    let tcp_answer = || {
        let mut s = TcpStream::connect(("127.0.0.1", tcp_port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        exchange(&mut s, "ping")
    };
    wait_for("TCP through Envoy", Duration::from_secs(30), || {
        tcp_answer().is_some()
    });
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..80 {
        *counts.entry(tcp_answer().expect("an answer")).or_default() += 1;
    }
    let heavy_n = counts.get("heavy:ping").copied().unwrap_or(0);
    let light_n = counts.get("light:ping").copied().unwrap_or(0);
    assert_eq!(heavy_n + light_n, 80, "{counts:?}");
    assert!(
        light_n > 0 && heavy_n > light_n,
        "weights 3:1 gave {counts:?}"
    );

    wait_for("UDP through Envoy", Duration::from_secs(30), || {
        udp_exchange(udp_one, "dig") == Some("echo:dig".into())
    });
    // Each client socket is its own session; sessions spread over both.
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    wait_for(
        "UDP split over both backends",
        Duration::from_secs(30),
        || {
            if let Some(answer) = udp_exchange(udp_split, "n") {
                *seen.entry(answer).or_default() += 1;
            }
            seen.len() == 2
        },
    );
    assert!(
        seen.keys().all(|k| k == "left:n" || k == "right:n"),
        "{seen:?}"
    );
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port")
}

/// A UDP server answering each datagram with `<tag>:<datagram>`; the
/// returned socket keeps it alive.
fn udp_echo(tag: &'static str) -> (u16, std::sync::Arc<UdpSocket>) {
    let socket = std::sync::Arc::new(UdpSocket::bind("127.0.0.1:0").expect("bind UDP"));
    let port = socket.local_addr().expect("addr").port();
    let server = std::sync::Arc::clone(&socket);
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = server.recv_from(&mut buf) {
            let answer = format!("{tag}:{}", String::from_utf8_lossy(&buf[..n]));
            let _ = server.send_to(answer.as_bytes(), from);
        }
    });
    (port, socket)
}

/// One datagram from a fresh socket to Envoy, and the answer.
fn udp_exchange(port: u16, text: &str) -> Option<String> {
    let socket = UdpSocket::bind("127.0.0.1:0").ok()?;
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    socket.send_to(text.as_bytes(), ("127.0.0.1", port)).ok()?;
    let mut buf = [0u8; 1500];
    let (n, _) = socket.recv_from(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).to_string())
}
