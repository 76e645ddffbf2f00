//! xDS over mutual TLS with real Envoys, as on Kubernetes: Envoy boots from
//! the bootstrap the provisioner ships (TLS transport, file-based SDS naming
//! the files of a Kubernetes-style Secret volume), gets its Gateway's
//! configuration and routes traffic; an Envoy presenting one Gateway's
//! certificate while claiming another Gateway gets nothing; a rotated client
//! certificate is picked up from the swapped files without a restart.
//!
//! A rotation of the xDS CA (deploy/README.md) with two Envoys behind a relay
//! that cuts their connections after each step, so every step is crossed by
//! fresh handshakes: (1) the new CA added to the bundle, (2) the new CA
//! signing, with portico's server certificate replaced in place and one
//! Envoy's client certificate reissued into its volume while the other's is
//! late, (3) the old CA dropped. Traffic through both Envoys answers 200
//! throughout, each step's new route reaches them over the new connections,
//! no handshake fails before step 3; after it the rotated Envoy keeps
//! getting configuration while the one still presenting a certificate of the
//! old CA is refused (and keeps serving what it had). Every reconnection is a
//! full handshake: a resumed TLS session would skip the client certificate
//! check and let the old CA's certificate back in.

mod common;

use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use common::traffic::{Envoy, backend, free_port, get, wait_for, world};
use portico::bootstrap::{self, BootstrapParams, XdsTls};
use portico::inputs::files::parse_documents;
use portico::inputs::{Inputs, InputsBuilder};
use portico::pki::{Authority, Issued};
use portico::translate::translate;
use portico::xds::hub::Hub;
use portico::xds::server::{Limits, serve_tls_with};
use portico::xds::tls;

const SERVER_NAME: &str = "portico-xds.portico-system.svc";

/// Writes the Secret's files the way the kubelet does: into a fresh
/// timestamped directory, then an atomic swap of the `..data` symlink, with
/// the visible names pointing through it.
fn write_secret_volume(dir: &Path, ca: &str, client: &Issued, generation: u32) {
    let data = dir.join(format!("..{generation}"));
    std::fs::create_dir_all(&data).expect("data dir");
    std::fs::write(data.join("ca.crt"), ca).expect("ca");
    std::fs::write(data.join("tls.crt"), &client.cert_pem).expect("crt");
    std::fs::write(data.join("tls.key"), &client.key_pem).expect("key");
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(format!("..{generation}"), &tmp).expect("symlink");
    std::fs::rename(&tmp, dir.join("..data")).expect("swap");
    for file in ["ca.crt", "tls.crt", "tls.key"] {
        let link = dir.join(file);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{file}"), &link).expect("link");
        }
    }
}

struct Pod {
    /// The process, stopped when the Pod is dropped.
    _envoy: Envoy,
    params: BootstrapParams,
    tls_dir: PathBuf,
    log: PathBuf,
}

impl Drop for Pod {
    /// A failing test shows what each of its Envoys logged last.
    fn drop(&mut self) {
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!(
                "--- last lines of {} ---\n{}",
                self.log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}

fn start_pod(base: &Path, gateway: &str, xds_port: u16, ca: &str, client: &Issued) -> Pod {
    let dir = base.join(gateway.replace('/', "-"));
    let tls_dir = dir.join("tls");
    let sds_dir = dir.join("bootstrap");
    std::fs::create_dir_all(&tls_dir).expect("tls dir");
    std::fs::create_dir_all(&sds_dir).expect("sds dir");
    write_secret_volume(&tls_dir, ca, client, 1);
    let xds_tls = XdsTls {
        server_name: SERVER_NAME.into(),
        sds_dir: sds_dir.display().to_string(),
        tls_dir: tls_dir.display().to_string(),
    };
    for (file, text) in bootstrap::sds_files(&xds_tls).expect("sds files") {
        std::fs::write(sds_dir.join(file), text).expect("sds file");
    }
    let mut params = BootstrapParams::new(gateway, "127.0.0.1", xds_port);
    params.admin_port = free_port();
    params.ready_port = free_port();
    params.tls = Some(xds_tls);
    let config = sds_dir.join("bootstrap.yaml");
    std::fs::write(&config, bootstrap::render(&params).expect("bootstrap")).expect("write");
    let log_path = dir.join("envoy.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let envoy = Envoy(
        Command::new(common::envoy_binary())
            .args([
                "--disable-hot-restart",
                "--log-level",
                "info",
                "--base-id",
                &params.admin_port.to_string(),
                "-c",
            ])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("envoy starts"),
    );
    Pod {
        _envoy: envoy,
        params,
        tls_dir,
        log: log_path,
    }
}

/// Envoy's admin `/certs` page (chunked; only searched for serial numbers).
fn certs_page(admin_port: u16) -> String {
    get(admin_port, "localhost", "/certs")
        .map(|r| r.1)
        .unwrap_or_default()
}

fn serial_of(pem: &str) -> String {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).expect("pem");
    let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("x509");
    cert.raw_serial()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .trim_start_matches('0')
        .to_string()
}

#[test]
fn envoys_get_only_the_gateway_their_certificate_names_and_reload_rotated_certificates() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let now = SystemTime::now();
    let ca = Authority::generate(now).expect("CA");
    let server = ca
        .issue_server(&[SERVER_NAME.to_string()], now)
        .expect("server certificate");
    let server_cert = tls::ServerCertificate::new(&server).expect("server cert");
    let acceptor = tls::acceptor(ca.cert_pem(), server_cert).expect("acceptor");
    let hub = Hub::new();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let xds_port = listener.local_addr().expect("addr").port();
    let _server = rt.spawn(portico::xds::server::serve_tls(
        Arc::clone(&hub),
        listener,
        acceptor,
        std::future::pending(),
    ));

    let backend_port = backend("through-mtls");
    let listener_port = free_port();
    hub.publish(&translate(&world(
        &["gw", "other"],
        listener_port,
        backend_port,
        "",
    )));

    let base = std::env::temp_dir().join(format!("portico-mtls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let gw_cert = ca.issue_gateway("default/gw", now).expect("client cert");
    let pod = start_pod(&base, "default/gw", xds_port, ca.cert_pem(), &gw_cert);
    wait_for(
        "Envoy to serve the route over mTLS-delivered config",
        Duration::from_secs(30),
        || get(listener_port, "httpd.example.com", "/") == Some((200, "through-mtls".into())),
    );
    assert_eq!(hub.feedback("default/gw").streams, 1);

    // The same certificate, claiming the other Gateway: refused, nothing served.
    let impostor = start_pod(&base, "default/other", xds_port, ca.cert_pem(), &gw_cert);
    wait_for(
        "the impostor Envoy to come up",
        Duration::from_secs(20),
        || get(impostor.params.admin_port, "localhost", "/ready").is_some(),
    );
    std::thread::sleep(Duration::from_secs(2));
    let other = hub.feedback("default/other");
    assert_eq!(
        (other.streams, other.acked),
        (0, None),
        "an Envoy gets nothing of a Gateway its certificate does not name"
    );
    let listeners = get(impostor.params.admin_port, "localhost", "/listeners")
        .map(|r| r.1)
        .unwrap_or_default();
    assert!(
        !listeners.contains("http-"),
        "no Gateway listener reached the impostor: {listeners}"
    );
    drop(impostor);

    // Rotation: new files swapped in; Envoy loads them without a restart.
    let serial = serial_of(&gw_cert.cert_pem);
    wait_for(
        "Envoy to report its client certificate",
        Duration::from_secs(10),
        || certs_page(pod.params.admin_port).contains(&serial),
    );
    let rotated = ca.issue_gateway("default/gw", now).expect("rotated cert");
    write_secret_volume(&pod.tls_dir, ca.cert_pem(), &rotated, 2);
    let new_serial = serial_of(&rotated.cert_pem);
    wait_for(
        "Envoy to load the rotated certificate",
        Duration::from_secs(20),
        || certs_page(pod.params.admin_port).contains(&new_serial),
    );
    assert_eq!(
        get(listener_port, "httpd.example.com", "/"),
        Some((200, "through-mtls".into())),
        "traffic keeps flowing after rotation"
    );
    drop(pod);
    let _ = std::fs::remove_dir_all(&base);
}

/// A TCP relay in front of the ADS server. `cut` closes every connection
/// through it (a network blip, a node drain): each Envoy then reconnects with
/// a fresh TLS handshake under whatever certificates and trust are current
/// on both sides, to the same server process (which, like portico, replaced
/// its certificate and trust in place).
struct Relay {
    port: u16,
    /// Both sockets of every relayed connection.
    open: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
        let port = listener.local_addr().expect("relay address").port();
        let open = Arc::new(Mutex::new(Vec::<TcpStream>::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (sockets, stopped) = (Arc::clone(&open), Arc::clone(&stop));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let copies =
                    |a: &TcpStream, b: &TcpStream| Some((a.try_clone().ok()?, b.try_clone().ok()?));
                let (Some((c1, s1)), Some((s2, c2))) =
                    (copies(&client, &server), copies(&server, &client))
                else {
                    continue;
                };
                pipe(c1, s1);
                pipe(s2, c2);
                sockets
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend([client, server]);
            }
        });
        Self { port, open, stop }
    }

    /// Closes every connection through the relay; new ones are accepted.
    fn cut(&self) {
        for socket in self
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag and closes the port.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        self.cut();
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

/// Requests `httpd.example.com` through an Envoy listener every 50 ms until
/// stopped, counting answers of 200 with the backend's body and keeping
/// every other outcome.
struct Traffic {
    ok: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Traffic {
    fn start(port: u16, body: &'static str) -> Self {
        let ok = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, failed, stopped) = (Arc::clone(&ok), Arc::clone(&failures), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                match get(port, "httpd.example.com", "/") {
                    Some((200, b)) if b == body => {
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    other => failed
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(format!("{other:?}")),
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Self {
            ok,
            failures,
            stop,
            thread: Some(thread),
        }
    }

    fn ok(&self) -> usize {
        self.ok.load(Ordering::SeqCst)
    }

    fn failures(&self) -> Vec<String> {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Asserts that requests answered during the step just ended (since
    /// `before` answers) and that none ever failed.
    fn flowed(&self, before: usize, step: &str, envoy: &str) -> usize {
        wait_for(
            &format!("a request through {envoy} during {step}"),
            Duration::from_secs(10),
            || self.ok() > before,
        );
        assert_eq!(
            self.failures(),
            Vec::<String>::new(),
            "traffic through {envoy} failed by {step}"
        );
        self.ok()
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Gateways `gw` and `late` (each on its own listener port), the route `web`
/// for `httpd.example.com` on both, and per step `n` of `steps` a route
/// `step-<n>` for `step-<n>.example.com` on both; all to one loopback backend.
fn rotation_world(gw_port: u16, late_port: u16, backend_port: u16, steps: &[u32]) -> Inputs {
    let mut yaml = String::from(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\n\
         metadata: {name: portico}\nspec: {controllerName: portico.dev/gateway-controller}\n",
    );
    for (gateway, port) in [("gw", gw_port), ("late", late_port)] {
        yaml += &format!(
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n\
             metadata: {{name: {gateway}, namespace: default, generation: 1}}\n\
             spec:\n  gatewayClassName: portico\n  listeners:\n\
             \x20 - {{name: http, port: {port}, protocol: HTTP}}\n"
        );
    }
    let routes = std::iter::once(("web".to_string(), "httpd.example.com".to_string())).chain(
        steps
            .iter()
            .map(|n| (format!("step-{n}"), format!("step-{n}.example.com"))),
    );
    for (name, host) in routes {
        yaml += &format!(
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
             metadata: {{name: {name}, namespace: default, generation: 1}}\n\
             spec:\n  parentRefs: [{{name: gw}}, {{name: late}}]\n  hostnames: [{host}]\n\
             \x20 rules:\n  - backendRefs: [{{name: web, port: 80}}]\n"
        );
    }
    yaml += &format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: default}}\n\
         spec:\n  ports: [{{name: http, port: 80, targetPort: {backend_port}}}]\n\
         ---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n\
         \x20 name: web-1\n  namespace: default\n  labels: {{kubernetes.io/service-name: web}}\n\
         addressType: IPv4\nports: [{{name: http, port: {backend_port}}}]\n\
         endpoints:\n- addresses: [127.0.0.1]\n  conditions: {{ready: true}}\n"
    );
    let mut builder = InputsBuilder::default();
    for object in parse_documents(Path::new("rotation.yaml"), &yaml).expect("the world parses") {
        builder.insert(object);
    }
    builder.build()
}

/// One counter or gauge of an Envoy's admin `/stats`, 0 when absent.
fn envoy_stat(admin_port: u16, name: &str) -> u64 {
    let page = get(admin_port, "localhost", "/stats?filter=portico-xds")
        .map(|r| r.1)
        .unwrap_or_default();
    page.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(": ")?.parse().ok())
        .unwrap_or(0)
}

/// Whether `host` is routed by the Envoy listening on `port`.
fn serves(port: u16, host: &str) -> bool {
    get(port, host, "/") == Some((200, "through-rotation".into()))
}

#[test]
fn an_xds_ca_rotation_keeps_envoys_served_and_then_refuses_the_old_ca() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let now = SystemTime::now();
    let names = [SERVER_NAME.to_string()];
    // The CA in use, and the one that replaces it.
    let old = Authority::generate(now).expect("old CA");
    let new = Authority::generate(now).expect("new CA");

    // portico as `run` wires it: one trust and one server certificate,
    // replaced in place when the CA Secret changes.
    let server_cert =
        tls::ServerCertificate::new(&old.issue_server(&names, now).expect("server certificate"))
            .expect("server cert");
    let trust = tls::ClientTrust::new(old.cert_pem()).expect("trust");
    let acceptor =
        tls::acceptor_with(Arc::clone(&trust), Arc::clone(&server_cert)).expect("acceptor");
    let hub = Hub::new();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let xds_port = listener.local_addr().expect("addr").port();
    let _server = rt.spawn({
        let hub = Arc::clone(&hub);
        async move {
            let limits = Limits::default();
            serve_tls_with(hub, listener, acceptor, &limits, std::future::pending()).await
        }
    });
    let relay = Relay::start(xds_port);

    let backend_port = backend("through-rotation");
    let (gw_port, late_port) = (free_port(), free_port());
    let publish = |steps: &[u32]| {
        hub.publish(&translate(&rotation_world(
            gw_port,
            late_port,
            backend_port,
            steps,
        )));
    };
    publish(&[]);

    let base = std::env::temp_dir().join(format!("portico-ca-rotation-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let gw_old = old.issue_gateway("default/gw", now).expect("gw cert");
    let late_cert = old.issue_gateway("default/late", now).expect("late cert");
    let gw = start_pod(&base, "default/gw", relay.port, old.cert_pem(), &gw_old);
    let late = start_pod(
        &base,
        "default/late",
        relay.port,
        old.cert_pem(),
        &late_cert,
    );
    wait_for("both Envoys to serve", Duration::from_secs(60), || {
        serves(gw_port, "httpd.example.com") && serves(late_port, "httpd.example.com")
    });
    let gw_admin = gw.params.admin_port;
    let late_admin = late.params.admin_port;
    let gw_traffic = Traffic::start(gw_port, "through-rotation");
    let late_traffic = Traffic::start(late_port, "through-rotation");
    let (old_serial, new_serial) = (serial_of(old.cert_pem()), serial_of(new.cert_pem()));

    // Cuts every xDS connection; waits for both Envoys to make a new TLS
    // handshake and for a route published afterwards (so only over the new
    // connections) to be served by the Envoys of `serving`.
    let reconnect = |step: u32, serving: &[(&str, u16, u16)]| {
        let handshakes: Vec<u64> = serving
            .iter()
            .map(|(_, _, admin)| envoy_stat(*admin, "cluster.portico-xds.ssl.handshake"))
            .collect();
        relay.cut();
        let steps: Vec<u32> = (1..=step).collect();
        publish(&steps);
        let host = format!("step-{step}.example.com");
        for ((gateway, port, admin), before) in serving.iter().zip(handshakes) {
            wait_for(
                &format!("{gateway}'s Envoy to reconnect after step {step}"),
                Duration::from_secs(60),
                || envoy_stat(*admin, "cluster.portico-xds.ssl.handshake") > before,
            );
            wait_for(
                &format!("{gateway}'s Envoy to serve the route of step {step}"),
                Duration::from_secs(60),
                || serves(*port, &host),
            );
            wait_for(
                &format!("portico to count one stream of {gateway} after step {step}"),
                Duration::from_secs(30),
                || hub.feedback(gateway).streams == 1,
            );
        }
    };
    let both = [
        ("default/gw", gw_port, gw_admin),
        ("default/late", late_port, late_admin),
    ];

    // Step 1: the new CA added to the bundle, the old one still signing: no
    // certificate is reissued, every Gateway's Secret gets the bundle.
    let step1 = Authority::from_pem(
        &format!("{}{}", old.cert_pem(), new.cert_pem()),
        old.key_pem(),
    )
    .expect("step 1");
    assert!(!step1.needs_renewal(&gw_old.cert_pem, now));
    trust.replace(step1.cert_pem()).expect("trust both");
    write_secret_volume(&gw.tls_dir, step1.cert_pem(), &gw_old, 2);
    write_secret_volume(&late.tls_dir, step1.cert_pem(), &late_cert, 2);
    for (gateway, admin) in [("gw", gw_admin), ("late", late_admin)] {
        wait_for(
            &format!("{gateway}'s Envoy to trust both CAs"),
            Duration::from_secs(20),
            || {
                let page = certs_page(admin);
                page.contains(&old_serial) && page.contains(&new_serial)
            },
        );
    }
    reconnect(1, &both);
    let gw_ok = gw_traffic.flowed(0, "step 1", "gw");
    let late_ok = late_traffic.flowed(0, "step 1", "late");

    // Step 2: the new CA signs. portico replaces its server certificate at
    // once and reissues every Gateway's client certificate; gw's new one
    // reaches its volume, late's is not there yet (the kubelet takes up to a
    // minute): late reconnects with its old certificate to the new server
    // certificate, gw with its new one.
    let step2 = Authority::from_pem(
        &format!("{}{}", new.cert_pem(), old.cert_pem()),
        new.key_pem(),
    )
    .expect("step 2");
    assert!(step2.needs_renewal(&gw_old.cert_pem, now), "reissued");
    trust
        .replace(step2.cert_pem())
        .expect("trust both, new first");
    server_cert
        .replace(
            &step2
                .issue_server(&names, now)
                .expect("new server certificate"),
        )
        .expect("server certificate replaced");
    let gw_new = step2.issue_gateway("default/gw", now).expect("new gw cert");
    write_secret_volume(&gw.tls_dir, step2.cert_pem(), &gw_new, 3);
    let gw_new_serial = serial_of(&gw_new.cert_pem);
    wait_for(
        "gw's Envoy to load its certificate of the new CA",
        Duration::from_secs(20),
        || certs_page(gw_admin).contains(&gw_new_serial),
    );
    reconnect(2, &both);
    let gw_ok = gw_traffic.flowed(gw_ok, "step 2", "gw");
    let late_ok = late_traffic.flowed(late_ok, "step 2", "late");
    for (gateway, admin) in [("gw", gw_admin), ("late", late_admin)] {
        assert_eq!(
            envoy_stat(admin, "cluster.portico-xds.ssl.connection_error"),
            0,
            "no xDS handshake of {gateway} failed during steps 1 and 2"
        );
    }

    // Step 3: the old CA dropped. gw's Secret holds the new CA only; late
    // still presents its certificate of the old CA.
    let step3 = Authority::from_pem(new.cert_pem(), new.key_pem()).expect("step 3");
    assert!(!step3.needs_renewal(&gw_new.cert_pem, now));
    trust
        .replace(step3.cert_pem())
        .expect("trust the new CA only");
    write_secret_volume(&gw.tls_dir, step3.cert_pem(), &gw_new, 4);
    wait_for(
        "gw's Envoy to trust the new CA only",
        Duration::from_secs(20),
        || {
            let page = certs_page(gw_admin);
            page.contains(&new_serial) && !page.contains(&old_serial)
        },
    );
    assert_eq!(
        hub.feedback("default/late").streams,
        1,
        "trust is checked when a connection is made: late's open stream stays"
    );
    let late_errors = envoy_stat(late_admin, "cluster.portico-xds.ssl.connection_error");
    reconnect(3, &both[..1]);
    // Refused, and refused again when it retries.
    wait_for(
        "late's Envoy to be refused twice",
        Duration::from_secs(60),
        || envoy_stat(late_admin, "cluster.portico-xds.ssl.connection_error") >= late_errors + 2,
    );
    assert_eq!(
        envoy_stat(late_admin, "cluster.portico-xds.ssl.fail_verify_error"),
        0,
        "late's Envoy itself verified the server: the refusal is portico's"
    );
    wait_for(
        "portico to count no stream of late",
        Duration::from_secs(30),
        || hub.feedback("default/late").streams == 0,
    );
    assert_eq!(
        get(late_port, "step-3.example.com", "/").map(|r| r.0),
        Some(404),
        "late's Envoy got nothing after step 3"
    );
    gw_traffic.flowed(gw_ok, "step 3", "gw");
    late_traffic.flowed(late_ok, "step 3", "late (keeping what it had)");
    assert_eq!(
        envoy_stat(gw_admin, "cluster.portico-xds.ssl.connection_error"),
        0,
        "no xDS handshake of gw failed"
    );
    for (gateway, admin) in [("gw", gw_admin), ("late", late_admin)] {
        assert_eq!(
            envoy_stat(admin, "cluster.portico-xds.ssl.session_reused"),
            0,
            "every xDS connection of {gateway} was a full handshake, its certificates \
             checked under the trust of the moment"
        );
    }

    drop((gw_traffic, late_traffic, gw, late, relay));
    let _ = std::fs::remove_dir_all(&base);
}
