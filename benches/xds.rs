//! xDS benchmarks (`make bench`), printed as percentiles:
//! 1. route change → first 200 through a real Envoy: 100 sequential route
//!    additions (each with a new hostname and a new cluster), delta ADS;
//! 2. fan-out: 1,000 simulated delta ADS streams over 100 Gateways; time from a
//!    change of every Gateway's routes to every stream having received it, and
//!    the server's resident memory per idle stream.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use portico::translate::translate;
use portico::xds::cache::ResourceType;
use portico::xds::hub::Hub;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use common::traffic::{backend, free_port, get, serve_xds, start_envoy, wait_for};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name}: n={} p50={:.1} ms p99={:.1} ms max={:.1} ms",
        samples.len(),
        percentile(&samples, 0.50).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        samples.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

fn route_change_to_first_200(rt: &tokio::runtime::Runtime) {
    let hub = Hub::new();
    let backend_port = backend("ok");
    let listener_port = free_port();
    let mut hosts = vec![0usize];
    hub.publish(&translate(&common::one_route_per_host(
        listener_port,
        backend_port,
        &hosts,
    )));
    let (xds, server) = serve_xds(rt, &hub);
    let xds_port = xds.port();
    let dir = std::env::temp_dir().join(format!("portico-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (_envoy, _) = start_envoy(xds_port, true, &dir);
    wait_for("the first route", Duration::from_secs(30), || {
        get(listener_port, "h0.example.com", "/").map(|r| r.0) == Some(200)
    });
    let mut samples = Vec::new();
    for h in 1..=100 {
        hosts.push(h);
        let inputs = common::one_route_per_host(listener_port, backend_port, &hosts);
        let host = format!("h{h}.example.com");
        let start = Instant::now();
        hub.publish(&translate(&inputs));
        while get(listener_port, &host, "/").map(|r| r.0) != Some(200) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "route {h} never served"
            );
        }
        samples.push(start.elapsed());
    }
    report(
        "route change -> first 200 (real Envoy, delta ADS, 100 additions; includes translation)",
        samples,
    );
    server.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn fan_out(rt: &tokio::runtime::Runtime) {
    const GATEWAYS: usize = 100;
    const STREAMS: usize = 1000;
    let hub = Hub::new();
    let inputs_for = |generation: usize| {
        let mut all = portico::inputs::InputsBuilder::default();
        for g in 0..GATEWAYS {
            let port = 20000 + g as u16;
            let one = common::one_route_per_host(port, 8080, &[generation]);
            for (_, gw) in one.gateways {
                let mut gw = (*gw).clone();
                gw.metadata.name = Some(format!("gw{g}"));
                all.insert(portico::inputs::InputObject::Gateway(gw));
            }
            for (_, r) in one.http_routes {
                let mut r = (*r).clone();
                r.metadata.name = Some(format!("r{g}"));
                if let Some(p) = r.spec.parent_refs.as_mut().and_then(|p| p.first_mut()) {
                    p.name = format!("gw{g}");
                }
                all.insert(portico::inputs::InputObject::HttpRoute(r));
            }
            for (_, c) in one.gateway_classes {
                all.insert(portico::inputs::InputObject::GatewayClass((*c).clone()));
            }
            for (_, s) in one.services {
                all.insert(portico::inputs::InputObject::Service((*s).clone()));
            }
            for slices in one.endpoint_slices.into_values() {
                for (_, s) in slices {
                    all.insert(portico::inputs::InputObject::EndpointSlice((*s).clone()));
                }
            }
        }
        all.build()
    };
    hub.publish(&translate(&inputs_for(0)));
    let (xds, server) = serve_xds(rt, &hub);
    let addr = format!("http://{xds}");
    let before = resident_kib();

    // Each simulated Envoy subscribes to listeners and routes, ACKs, and
    // reports when it sees a route configuration version it has not seen.
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<(usize, Instant)>();
    let mut clients = Vec::new();
    for i in 0..STREAMS {
        let seen = seen_tx.clone();
        // Connect one Envoy at a time (as a fleet rolling out would), retrying
        // while the accept queue is full.
        let mut client = rt.block_on(async {
            for _ in 0..50 {
                if let Ok(c) = AggregatedDiscoveryServiceClient::connect(addr.clone()).await {
                    return c;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("cannot connect to the xDS server");
        });
        clients.push(rt.spawn(async move {
            let (tx, rx) = mpsc::channel(16);
            let node = Node {
                id: format!("sim-{i}"),
                cluster: format!("default/gw{}", i % GATEWAYS),
                ..Node::default()
            };
            for kind in [ResourceType::Listener, ResourceType::Route] {
                let names = if kind == ResourceType::Route {
                    vec![format!("http-{}", 20000 + i % GATEWAYS)]
                } else {
                    vec![]
                };
                tx.send(DeltaDiscoveryRequest {
                    node: Some(node.clone()),
                    type_url: kind.type_url().into(),
                    resource_names_subscribe: names,
                    ..DeltaDiscoveryRequest::default()
                })
                .await
                .expect("send");
            }
            let Ok(responses) = client
                .delta_aggregated_resources(ReceiverStream::new(rx))
                .await
            else {
                return;
            };
            let mut responses = responses.into_inner();
            while let Some(Ok(r)) = responses.next().await {
                if r.type_url == ResourceType::Route.type_url() {
                    let _ = seen.send((i, Instant::now()));
                }
                let _ = tx
                    .send(DeltaDiscoveryRequest {
                        type_url: r.type_url.clone(),
                        response_nonce: r.nonce.clone(),
                        ..DeltaDiscoveryRequest::default()
                    })
                    .await;
            }
        }));
    }
    // Initial configuration everywhere.
    let mut initial = 0;
    rt.block_on(async {
        while initial < STREAMS {
            if seen_rx.recv().await.is_some() {
                initial += 1;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let after = resident_kib();
    println!(
        "fan-out: {STREAMS} idle delta streams over {GATEWAYS} Gateways: server-side process memory +{:.1} MiB, {:.1} KiB per stream (clients run in the same process)",
        (after.saturating_sub(before)) as f64 / 1024.0,
        (after.saturating_sub(before)) as f64 / STREAMS as f64
    );

    let mut samples = Vec::new();
    for round in 1..=5 {
        let inputs = inputs_for(round);
        let start = Instant::now();
        hub.publish(&translate(&inputs));
        let mut got = 0;
        rt.block_on(async {
            while got < STREAMS {
                if let Some((_, at)) = seen_rx.recv().await {
                    samples.push(at - start);
                    got += 1;
                }
            }
        });
    }
    report(
        &format!(
            "fan-out: change of every Gateway -> each of {STREAMS} streams received it (5 rounds; includes translation)"
        ),
        samples,
    );
    for c in clients {
        c.abort();
    }
    server.abort();
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    route_change_to_first_200(&rt);
    fan_out(&rt);
}
