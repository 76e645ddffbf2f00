//! portico's ADS server driving a real Envoy (delta and state of the world):
//! Envoy boots from `portico bootstrap`'s template, receives the translated
//! configuration, routes a request to a loopback backend, ACKs (feedback
//! reaches the hub), and picks up a route change without a restart.

mod common;

use common::traffic::{backend, free_port, get, serve_xds, start_envoy, wait_for, world};

use std::sync::Arc;
use std::time::Duration;

use portico::translate::translate;
use portico::xds::hub::Hub;

fn inputs(listener_port: u16, backend_port: u16, extra_rule: &str) -> portico::inputs::Inputs {
    world(&["gw"], listener_port, backend_port, extra_rule)
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

    let dir = std::env::temp_dir().join(format!(
        "portico-xds-{}-{listener_port}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let (envoy, params) = start_envoy(xds_port, delta, &dir);

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

/// portico goes away and comes back while Envoy serves: no request fails, and
/// the new server has nothing to push to an Envoy that is up to date.
fn restart(delta: bool) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let backend_port = backend("backend-ok");
    let listener_port = free_port();
    let outputs = translate(&inputs(listener_port, backend_port, ""));
    let dir = std::env::temp_dir().join(format!(
        "portico-xds-{}-{listener_port}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("dir");

    // The first portico lives in its own runtime: dropping that runtime ends
    // every connection and task, as killing the process would.
    let first_rt = tokio::runtime::Runtime::new().expect("runtime");
    let first_hub = Hub::new();
    first_hub.publish(&outputs);
    let xds = first_rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let xds_port = xds.local_addr().expect("addr").port();
    first_rt.spawn(portico::xds::server::serve(
        Arc::clone(&first_hub),
        xds,
        std::future::pending(),
    ));
    let (_envoy, _) = start_envoy(xds_port, delta, &dir);
    wait_for("Envoy to serve the route", Duration::from_secs(30), || {
        get(listener_port, "httpd.example.com", "/").map(|r| r.0) == Some(200)
    });

    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let client = {
        let running = Arc::clone(&running);
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0u32, 0u32);
            while running.load(std::sync::atomic::Ordering::Relaxed) {
                match get(listener_port, "httpd.example.com", "/") {
                    Some((200, _)) => ok += 1,
                    _ => failed += 1,
                }
            }
            (ok, failed)
        })
    };

    first_rt.shutdown_timeout(Duration::from_secs(1));
    std::thread::sleep(Duration::from_millis(500));
    let second_hub = Hub::new();
    second_hub.publish(&outputs);
    let xds = rt
        .block_on(tokio::net::TcpListener::bind(("127.0.0.1", xds_port)))
        .expect("rebind the xDS port");
    let second = rt.spawn(portico::xds::server::serve(
        Arc::clone(&second_hub),
        xds,
        std::future::pending(),
    ));
    wait_for("Envoy to reconnect", Duration::from_secs(30), || {
        second_hub.feedback("default/gw").streams == 1
    });
    std::thread::sleep(Duration::from_millis(1000));
    running.store(false, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = client.join().expect("client");
    assert!(ok > 20, "the client loop ran ({ok} requests)");
    assert_eq!(failed, 0, "no request failed while portico restarted");
    assert_eq!(
        second_hub.responses_sent(),
        0,
        "nothing was re-pushed after reconnecting"
    );
    second.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn delta_restart_loses_no_request_and_pushes_nothing() {
    restart(true);
}

#[test]
fn sotw_restart_loses_no_request_and_pushes_nothing() {
    restart(false);
}

/// A configuration Envoy rejects: Envoy keeps serving the last good one and
/// its error message reaches the hub.
#[test]
fn rejected_configuration_is_reported_and_the_last_good_one_kept() {
    use envoy_types::pb::envoy::config::listener::v3::Listener;
    use portico::translate::encode::Resource;
    use portico::xds::cache::Snapshot;

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let hub = Hub::new();
    let backend_port = backend("backend-ok");
    let listener_port = free_port();
    let outputs = translate(&inputs(listener_port, backend_port, ""));
    hub.publish(&outputs);
    let (xds, server) = serve_xds(&rt, &hub);
    let xds_port = xds.port();
    let dir = std::env::temp_dir().join(format!(
        "portico-xds-{}-{listener_port}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let (_envoy, _) = start_envoy(xds_port, true, &dir);
    wait_for("Envoy to serve the route", Duration::from_secs(30), || {
        get(listener_port, "httpd.example.com", "/").map(|r| r.0) == Some(200)
    });

    // Test-only input: a listener without an address, which Envoy refuses.
    let mut resources = outputs
        .gateways
        .values()
        .next()
        .expect("one gateway")
        .resources
        .clone();
    resources.listeners.push(Resource::encode(
        "broken".into(),
        &Listener {
            name: "broken".into(),
            ..Listener::default()
        },
    ));
    let mut snapshots = portico::xds::hub::Snapshots::new();
    snapshots.insert(
        "default/gw".into(),
        Arc::new(Snapshot::from_resources(&resources)),
    );
    hub.publish_snapshots(snapshots);

    wait_for("the NACK", Duration::from_secs(10), || {
        hub.feedback("default/gw").rejected.is_some()
    });
    let (_, message) = hub.feedback("default/gw").rejected.expect("rejected");
    assert!(
        message.contains("broken"),
        "Envoy's message names the listener: {message}"
    );
    assert_eq!(
        get(listener_port, "httpd.example.com", "/").map(|r| r.0),
        Some(200)
    );
    server.abort();
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

/// Routes (each with a new cluster) are added and removed while a client
/// loop runs: every answer is the old or the new behaviour (200 or 404),
/// never a 503 from a cluster pushed after the route that names it.
fn live_changes(delta: bool) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let hub = Hub::new();
    let backend_port = backend("backend-ok");
    let listener_port = free_port();
    hub.publish(&translate(&common::one_route_per_host(
        listener_port,
        backend_port,
        &[0],
    )));
    let (xds, server) = serve_xds(&rt, &hub);
    let xds_port = xds.port();
    let dir = std::env::temp_dir().join(format!(
        "portico-live-{}-{listener_port}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let (_envoy, _) = start_envoy(xds_port, delta, &dir);
    wait_for("the first route", Duration::from_secs(30), || {
        get(listener_port, "h0.example.com", "/").map(|r| r.0) == Some(200)
    });

    const HOSTS: usize = 12;
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let client = {
        let running = Arc::clone(&running);
        std::thread::spawn(move || {
            let mut answers: std::collections::BTreeMap<u16, u32> = Default::default();
            let mut i = 0;
            while running.load(std::sync::atomic::Ordering::Relaxed) {
                let host = format!("h{}.example.com", i % HOSTS);
                let status = get(listener_port, &host, "/").map_or(0, |r| r.0);
                *answers.entry(status).or_default() += 1;
                i += 1;
            }
            answers
        })
    };
    // Add routes one by one, then remove every other one.
    let mut present: Vec<usize> = vec![0];
    for h in 1..HOSTS {
        present.push(h);
        hub.publish(&translate(&common::one_route_per_host(
            listener_port,
            backend_port,
            &present,
        )));
        std::thread::sleep(Duration::from_millis(150));
    }
    for h in (0..HOSTS).step_by(2) {
        present.retain(|p| *p != h);
        hub.publish(&translate(&common::one_route_per_host(
            listener_port,
            backend_port,
            &present,
        )));
        std::thread::sleep(Duration::from_millis(150));
    }
    std::thread::sleep(Duration::from_millis(500));
    running.store(false, std::sync::atomic::Ordering::Relaxed);
    let answers = client.join().expect("client");
    let total: u32 = answers.values().sum();
    assert!(total > 100, "the client loop ran: {answers:?}");
    assert!(
        answers.keys().all(|s| *s == 200 || *s == 404),
        "only 200 and 404 while routes change: {answers:?}"
    );
    for h in 0..HOSTS {
        let expected = if present.contains(&h) { 200 } else { 404 };
        assert_eq!(
            get(listener_port, &format!("h{h}.example.com"), "/").map(|r| r.0),
            Some(expected)
        );
    }
    server.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn delta_live_changes_never_answer_503() {
    live_changes(true);
}

#[test]
fn sotw_live_changes_never_answer_503() {
    live_changes(false);
}
