//! HTTPS through `portico standalone` and a real Envoy, checked by a client
//! that trusts only the test CA: each listener's certificate by SNI, HTTP
//! redirected to HTTPS, 421 on an HTTP/2 connection reused for another
//! listener's host, and a rotated certificate served to new connections
//! while an open connection keeps working.

mod common;

use std::time::Duration;

use common::standalone::{CLASS, Portico, Workdir, loopback_service};
use common::tls::{Ca, connect, http_on, https_backend, peer_serial, pem_serial, secret_yaml};
use common::traffic::{backend, free_port, get, request, wait_for};

fn gateway(http: u16, https: u16) -> String {
    format!(
        "{CLASS}---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: default}}\n\
         spec:\n  gatewayClassName: portico\n  listeners:\n\
         \x20 - {{name: http, port: {http}, protocol: HTTP}}\n\
         \x20 - {{name: a, port: {https}, protocol: HTTPS, hostname: a.example.com, tls: {{certificateRefs: [{{name: a-cert}}]}}}}\n\
         \x20 - {{name: wild, port: {https}, protocol: HTTPS, hostname: \"*.example.com\", tls: {{certificateRefs: [{{name: wild-cert}}]}}}}\n"
    )
}

fn routes(a: u16, wild: u16) -> String {
    let service = |name: &str, target: u16| loopback_service(name, 80, "TCP", None, target);
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: to-https, namespace: default}}\n\
         spec:\n  parentRefs: [{{name: gw, sectionName: http}}]\n  rules:\n\
         \x20 - filters: [{{type: RequestRedirect, requestRedirect: {{scheme: https, statusCode: 301}}}}]\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: a, namespace: default}}\n\
         spec:\n  parentRefs: [{{name: gw, sectionName: a}}]\n  rules: [{{backendRefs: [{{name: a, port: 80}}]}}]\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: wild, namespace: default}}\n\
         spec:\n  parentRefs: [{{name: gw, sectionName: wild}}]\n  rules: [{{backendRefs: [{{name: wild, port: 80}}]}}]\n{}{}",
        service("a", a),
        service("wild", wild)
    )
}

#[test]
fn https_listeners_serve_their_certificates_and_rotate_without_dropping() {
    let ca = Ca::new();
    let a_cert = ca.leaf(&["a.example.com"]);
    let wild_cert = ca.leaf(&["*.example.com"]);
    let (http_port, https_port) = (free_port(), free_port());
    let dir = Workdir::new("https");
    dir.write("gateway.yaml", &gateway(http_port, https_port));
    dir.write(
        "routes.yaml",
        &routes(backend("from a"), backend("from wild")),
    );
    dir.write(
        "secrets.yaml",
        &(secret_yaml("default", "a-cert", &a_cert)
            + &secret_yaml("default", "wild-cert", &wild_cert)),
    );
    let _portico = Portico::start(&dir.0, &[]);
    let client = ca.client(&["http/1.1"]);

    // Each SNI name gets its listener's certificate, verified against the CA.
    wait_for("HTTPS for a.example.com", Duration::from_secs(30), || {
        connect(&client, https_port, "a.example.com")
            .ok()
            .and_then(|mut s| http_on(&mut s, "a.example.com", "/"))
            == Some((200, "from a".into()))
    });
    let mut a = connect(&client, https_port, "a.example.com").expect("TLS to a");
    assert_eq!(peer_serial(&a), pem_serial(&a_cert.cert));
    let mut b = connect(&client, https_port, "b.example.com").expect("TLS to b");
    assert_eq!(peer_serial(&b), pem_serial(&wild_cert.cert));
    assert_eq!(
        http_on(&mut b, "b.example.com", "/"),
        Some((200, "from wild".into()))
    );
    // A name no listener covers gets no TLS at all.
    assert!(connect(&client, https_port, "other.org").is_err());

    // The same connection asked for another listener's host: 421.
    assert_eq!(
        http_on(&mut a, "b.example.com", "/").map(|r| r.0),
        Some(421)
    );
    assert_eq!(
        http_on(&mut b, "a.example.com", "/").map(|r| r.0),
        Some(421)
    );
    assert_eq!(
        http_on(&mut a, "a.example.com", "/"),
        Some((200, "from a".into()))
    );

    // HTTP/2, negotiated by ALPN: a reused connection is told 421 too.
    let h2 = ca.client(&["h2"]);
    let statuses = h2_statuses(
        &h2,
        https_port,
        "a.example.com",
        &["a.example.com", "b.example.com"],
    );
    assert_eq!(statuses, vec![200, 421]);

    // Plain HTTP is redirected to HTTPS. The listener is on a test port, not
    // 80, so its clients name that port in Host and the Location names 443
    // rather than carry the client's port over.
    let host = format!("a.example.com:{http_port}");
    let redirect = request(http_port, "GET", &host, "/page", &[]).expect("HTTP answer");
    assert_eq!(redirect.status, 301);
    assert_eq!(
        redirect.header("location"),
        Some("https://a.example.com:443/page")
    );

    // Rotation: a new certificate in the Secret reaches new connections; the
    // open connection keeps working.
    let rotated = ca.leaf(&["a.example.com"]);
    dir.write(
        "secrets.yaml",
        &(secret_yaml("default", "a-cert", &rotated)
            + &secret_yaml("default", "wild-cert", &wild_cert)),
    );
    let want = pem_serial(&rotated.cert);
    wait_for("the rotated certificate", Duration::from_secs(30), || {
        connect(&client, https_port, "a.example.com").is_ok_and(|s| peer_serial(&s) == want)
    });
    assert_eq!(
        http_on(&mut a, "a.example.com", "/"),
        Some((200, "from a".into())),
        "the connection opened before the rotation still works"
    );
}

/// BackendTLSPolicy: Envoy connects to the backend over TLS, trusting only
/// the policy's CA and checking the name; a backend with another name or
/// another CA's certificate is refused (503), and a policy without a valid
/// CA makes its Service answer 500.
#[test]
fn backend_tls_policies_verify_the_backend() {
    let ca = Ca::new();
    let stranger = Ca::new();
    let good = https_backend(&ca.leaf(&["secure.internal"]), "over TLS");
    let misnamed = https_backend(&ca.leaf(&["other.internal"]), "misnamed");
    let untrusted = https_backend(&stranger.leaf(&["secure.internal"]), "untrusted");
    let port = free_port();
    let dir = Workdir::new("backend-tls");
    let service = |name: &str, target: u16| loopback_service(name, 443, "TCP", None, target);
    let policy = |name: &str, ca_map: &str, hostname: &str| {
        format!(
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\n\
             metadata: {{name: {name}, namespace: default}}\n\
             spec:\n  targetRefs: [{{group: \"\", kind: Service, name: {name}}}]\n\
             \x20 validation: {{caCertificateRefs: [{{group: \"\", kind: ConfigMap, name: {ca_map}}}], hostname: {hostname}}}\n"
        )
    };
    let ca_pem: String = ca.pem.lines().map(|l| format!("    {l}\n")).collect();
    let mut yaml = format!(
        "{CLASS}---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: default}}\n\
         spec:\n  gatewayClassName: portico\n  listeners: [{{name: http, port: {port}, protocol: HTTP}}]\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r, namespace: default}}\n\
         spec:\n  parentRefs: [{{name: gw}}]\n  rules:\n\
         \x20 - {{matches: [{{path: {{type: PathPrefix, value: /good}}}}], backendRefs: [{{name: good, port: 443}}]}}\n\
         \x20 - {{matches: [{{path: {{type: PathPrefix, value: /misnamed}}}}], backendRefs: [{{name: misnamed, port: 443}}]}}\n\
         \x20 - {{matches: [{{path: {{type: PathPrefix, value: /untrusted}}}}], backendRefs: [{{name: untrusted, port: 443}}]}}\n\
         \x20 - {{matches: [{{path: {{type: PathPrefix, value: /no-ca}}}}], backendRefs: [{{name: no-ca, port: 443}}]}}\n\
         ---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: ca, namespace: default}}\ndata:\n  ca.crt: |\n{ca_pem}"
    );
    yaml += &service("good", good);
    yaml += &service("misnamed", misnamed);
    yaml += &service("untrusted", untrusted);
    yaml += &service("no-ca", good);
    yaml += &policy("good", "ca", "secure.internal");
    yaml += &policy("misnamed", "ca", "secure.internal");
    yaml += &policy("untrusted", "ca", "secure.internal");
    yaml += &policy("no-ca", "missing", "secure.internal");
    dir.write("all.yaml", &yaml);
    let _portico = Portico::start(&dir.0, &[]);

    wait_for("TLS to the backend", Duration::from_secs(30), || {
        get(port, "any.example.com", "/good") == Some((200, "over TLS".into()))
    });
    assert_eq!(
        get(port, "any.example.com", "/misnamed").map(|r| r.0),
        Some(503)
    );
    assert_eq!(
        get(port, "any.example.com", "/untrusted").map(|r| r.0),
        Some(503)
    );
    assert_eq!(
        get(port, "any.example.com", "/no-ca").map(|r| r.0),
        Some(500)
    );
}

/// Requests for each `authority` in turn on one HTTP/2 connection made with
/// `sni`; their status codes.
fn h2_statuses(
    config: &std::sync::Arc<rustls::ClientConfig>,
    port: u16,
    sni: &str,
    authorities: &[&str],
) -> Vec<u16> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let name = rustls::pki_types::ServerName::try_from(sni.to_string()).expect("name");
        let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::clone(config))
            .connect(name, tcp)
            .await
            .expect("TLS");
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (mut client, connection) = h2::client::handshake(tls).await.expect("h2 handshake");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut out = Vec::new();
        for authority in authorities {
            let request = http::Request::get(format!("https://{authority}/"))
                .body(())
                .expect("request");
            let (response, _) = client.send_request(request, true).expect("send");
            out.push(response.await.expect("response").status().as_u16());
        }
        out
    })
}
