//! xDS over mutual TLS with real Envoys, as on Kubernetes: Envoy boots from
//! the bootstrap the provisioner ships (TLS transport, file-based SDS naming
//! the files of a Kubernetes-style Secret volume), gets its Gateway's
//! configuration and routes traffic; an Envoy presenting one Gateway's
//! certificate while claiming another Gateway gets nothing; a rotated client
//! certificate is picked up from the swapped files without a restart.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::traffic::{Envoy, backend, free_port, get, wait_for, world};
use portico::bootstrap::{self, BootstrapParams, XdsTls};
use portico::pki::{Authority, Issued};
use portico::translate::translate;
use portico::xds::hub::Hub;
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
    envoy: Envoy,
    params: BootstrapParams,
    tls_dir: PathBuf,
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
    let log = std::fs::File::create(dir.join("envoy.log")).expect("log");
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
        envoy,
        params,
        tls_dir,
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
    drop(pod.envoy);
    let _ = std::fs::remove_dir_all(&base);
}
