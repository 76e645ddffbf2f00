//! Real traffic helpers: free loopback ports, a fixed-answer HTTP backend, a
//! minimal HTTP/1.1 client, polling, and an Envoy process started from
//! portico's bootstrap (killed when dropped).

use std::io::{Read, Write};
use std::net::{TcpListener as StdListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use portico::bootstrap::{self, BootstrapParams};

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A backend that answers every request with `body`.
pub fn backend(body: &'static str) -> u16 {
    let listener = StdListener::bind("127.0.0.1:0").expect("bind backend");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve_one(stream, body));
        }
    });
    port
}

pub fn serve_one(mut stream: TcpStream, body: &str) {
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
pub fn get(port: u16, host: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    // Read the head, then exactly content-length bytes: no waiting for the
    // server to close the connection.
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
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while data.len() < head_end + length {
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
    }
    let body = String::from_utf8_lossy(&data[head_end..]).to_string();
    Some((status, body))
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
