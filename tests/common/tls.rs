//! TLS for real-traffic tests: a test CA issuing server certificates, the
//! Secret YAML that carries them, a verifying client (it trusts only the
//! test CA and checks the name), and TLS backends that answer with a tag.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, StreamOwned};

pub struct Ca {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pub pem: String,
}

/// A certificate and its key, as PEM.
#[derive(Clone)]
pub struct Leaf {
    pub cert: String,
    pub key: String,
}

impl Ca {
    pub fn new() -> Self {
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "portico test CA");
        let cert = params.self_signed(&key).expect("CA cert");
        Self {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A server certificate for `names` (each may be a `*.` wildcard).
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("leaf params");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf cert");
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    /// A client that trusts only this CA, offering `alpn`.
    pub fn client(&self, alpn: &[&str]) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(self.pem.as_bytes()) {
            roots.add(c.expect("CA PEM")).expect("CA added");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Arc::new(config)
    }
}

/// A `kubernetes.io/tls` Secret document.
pub fn secret_yaml(namespace: &str, name: &str, leaf: &Leaf) -> String {
    let indent = |pem: &str| {
        pem.lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    };
    format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
         type: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
        indent(&leaf.cert),
        indent(&leaf.key)
    )
}

pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// A verified TLS connection to 127.0.0.1:`port` for `sni`, handshake done.
pub fn connect(config: &Arc<ClientConfig>, port: u16, sni: &str) -> Result<TlsStream, String> {
    let name = ServerName::try_from(sni.to_string()).map_err(|e| e.to_string())?;
    let conn = ClientConnection::new(Arc::clone(config), name).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut stream = StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream
            .conn
            .complete_io(&mut stream.sock)
            .map_err(|e| e.to_string())?;
    }
    Ok(stream)
}

/// The serial number of the certificate the server presented, in hex.
pub fn peer_serial(stream: &TlsStream) -> String {
    let certs = stream.conn.peer_certificates().expect("a peer certificate");
    let (_, cert) = x509_parser::parse_x509_certificate(&certs[0]).expect("x509");
    cert.raw_serial_as_string()
}

/// The serial of a PEM certificate, as `peer_serial` prints it.
pub fn pem_serial(pem: &str) -> String {
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).expect("PEM");
    let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("x509");
    cert.raw_serial_as_string()
}

/// One HTTP/1.1 request on an open keep-alive connection: status and body.
pub fn http_on<S: Read + Write>(stream: &mut S, host: &str, path: &str) -> Option<(u16, String)> {
    let req = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\n\r\n");
    stream.write_all(req.as_bytes()).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        let Some(end) = text.find("\r\n\r\n") else {
            continue;
        };
        let head = &text[..end];
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        if buf.len() >= end + 4 + length {
            let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).to_string();
            return Some((status, body));
        }
    }
}

/// A TLS server on 127.0.0.1 presenting `leaf`; for each connection it reads
/// one line and answers `<tag>:<line>`. Returns its port.
pub fn tls_echo_backend(leaf: &Leaf, tag: &'static str) -> u16 {
    tls_server(leaf, move |stream| echo_line(stream, tag))
}

/// An HTTPS server on 127.0.0.1 presenting `leaf`, answering every request
/// with 200 and `body`. Returns its port.
pub fn https_backend(leaf: &Leaf, body: &'static str) -> u16 {
    tls_server(leaf, move |stream| {
        super::traffic::serve_one_on(stream, body)
    })
}

type ServerStream = StreamOwned<rustls::ServerConnection, TcpStream>;

/// A TLS server on 127.0.0.1 presenting `leaf` that hands each connection,
/// after the handshake, to `serve` on its own thread. Returns its port.
fn tls_server(leaf: &Leaf, serve: impl Fn(&mut ServerStream) + Copy + Send + 'static) -> u16 {
    let certs = CertificateDer::pem_slice_iter(leaf.cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("cert PEM");
    let key = PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).expect("key PEM");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = Arc::new(
        ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server config"),
    );
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let config = Arc::clone(&config);
            std::thread::spawn(move || {
                let Ok(conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                serve(&mut StreamOwned::new(conn, tcp));
            });
        }
    });
    port
}

/// A plain TCP server on 127.0.0.1 doing what `tls_echo_backend` does.
pub fn tcp_echo_backend(tag: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut tcp in listener.incoming().flatten() {
            std::thread::spawn(move || echo_line(&mut tcp, tag));
        }
    });
    port
}

fn echo_line<S: Read + Write>(stream: &mut S, tag: &str) {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\n") {
        match stream.read(&mut byte) {
            Ok(1) => line.push(byte[0]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&line);
    let _ = stream.write_all(format!("{tag}:{}\n", text.trim_end()).as_bytes());
    let _ = stream.flush();
}

/// Sends one line on a stream and reads the one-line answer.
pub fn exchange<S: Read + Write>(stream: &mut S, line: &str) -> Option<String> {
    stream.write_all(format!("{line}\n").as_bytes()).ok()?;
    stream.flush().ok()?;
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\n") {
        match stream.read(&mut byte) {
            Ok(1) => answer.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&answer).trim_end().to_string())
}
