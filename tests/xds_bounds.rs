//! The ADS server against clients that would exhaust it, on 127.0.0.1:
//! streams beyond the total limit are refused with `RESOURCE_EXHAUSTED`
//! while open ones keep working; a client that never completes TLS is
//! dropped after the handshake timeout and delays no good client; TLS
//! handshakes in progress are capped; connections beyond the cap are closed
//! at once; a connection that never sends its HTTP/2 preface is dropped;
//! each connection may open only a few streams; oversized header lists and
//! requests are refused; a peer that stops answering is dropped by HTTP/2
//! keepalive.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Status, Streaming};

use common::traffic::world;
use portico::pki::{Authority, Issued};
use portico::translate::translate;
use portico::xds::cache::ResourceType;
use portico::xds::hub::Hub;
use portico::xds::server::{self, Limits};
use portico::xds::tls;

const GATEWAY: &str = "default/gw";
const SERVER_NAME: &str = "portico-xds.portico-system.svc";
/// How long anything that should happen soon may take on a loaded machine.
const SOON: Duration = Duration::from_secs(20);

/// A hub serving one Gateway whose HTTP listener is on `listener_port`.
fn hub_with(listener_port: u16) -> Arc<Hub> {
    let hub = Hub::new();
    hub.publish(&translate(&world(&["gw"], listener_port, 9, "")));
    hub
}

/// The plain ADS server with `limits` on a free loopback port.
fn serve_plain(rt: &tokio::runtime::Runtime, hub: &Arc<Hub>, limits: Limits) -> SocketAddr {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let hub = Arc::clone(hub);
    rt.spawn(
        async move { server::serve_with(hub, listener, &limits, std::future::pending()).await },
    );
    address
}

/// A CA, the mutual TLS ADS server with `limits`, and a client certificate
/// for `GATEWAY`.
struct Tls {
    address: SocketAddr,
    ca: String,
    client: Issued,
}

fn serve_tls(rt: &tokio::runtime::Runtime, hub: &Arc<Hub>, limits: Limits) -> Tls {
    let now = SystemTime::now();
    let ca = Authority::generate(now).expect("CA");
    let server_cert = ca
        .issue_server(&[SERVER_NAME.to_string()], now)
        .expect("server certificate");
    let acceptor = tls::acceptor(
        ca.cert_pem(),
        tls::ServerCertificate::new(&server_cert).expect("server certificate"),
    )
    .expect("acceptor");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let hub = Arc::clone(hub);
    rt.spawn(async move {
        server::serve_tls_with(hub, listener, acceptor, &limits, std::future::pending()).await
    });
    Tls {
        address,
        ca: ca.cert_pem().to_string(),
        client: ca.issue_gateway(GATEWAY, now).expect("client certificate"),
    }
}

async fn plain_channel(address: SocketAddr) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(format!("http://{address}"))?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
}

async fn tls_channel(tls: &Tls) -> Result<Channel, tonic::transport::Error> {
    let config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&tls.ca))
        .identity(Identity::from_pem(
            &tls.client.cert_pem,
            &tls.client.key_pem,
        ))
        .domain_name(SERVER_NAME);
    Endpoint::from_shared(format!("https://{}", tls.address))?
        .connect_timeout(Duration::from_secs(5))
        .tls_config(config)?
        .connect()
        .await
}

/// One delta ADS stream subscribed to every listener of `GATEWAY`.
struct Stream {
    requests: mpsc::Sender<DeltaDiscoveryRequest>,
    responses: Streaming<DeltaDiscoveryResponse>,
}

impl Stream {
    async fn open(channel: Channel) -> Result<Self, Status> {
        Self::open_with(channel, Vec::new()).await
    }

    /// With `names` subscribed besides (a way to make the request large).
    async fn open_with(channel: Channel, names: Vec<String>) -> Result<Self, Status> {
        let (requests, rx) = mpsc::channel(8);
        let first = DeltaDiscoveryRequest {
            node: Some(Node {
                id: "test".into(),
                cluster: GATEWAY.into(),
                ..Node::default()
            }),
            type_url: ResourceType::Listener.type_url().into(),
            resource_names_subscribe: names,
            ..DeltaDiscoveryRequest::default()
        };
        requests
            .send(first)
            .await
            .map_err(|_| Status::internal("request channel"))?;
        let responses = AggregatedDiscoveryServiceClient::new(channel)
            .delta_aggregated_resources(ReceiverStream::new(rx))
            .await?
            .into_inner();
        Ok(Self {
            requests,
            responses,
        })
    }

    /// The next response (ACKed), or the status that ended the stream.
    async fn next(&mut self) -> Result<DeltaDiscoveryResponse, Status> {
        let response = tokio::time::timeout(SOON, self.responses.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no response in time"))??
            .ok_or_else(|| Status::unknown("the stream ended"))?;
        let ack = DeltaDiscoveryRequest {
            type_url: response.type_url.clone(),
            response_nonce: response.nonce.clone(),
            ..DeltaDiscoveryRequest::default()
        };
        let _ = self.requests.send(ack).await;
        Ok(response)
    }
}

/// A listener resource named after `port` (what `world` puts on it).
fn names_port(response: &DeltaDiscoveryResponse, port: u16) -> bool {
    response
        .resources
        .iter()
        .any(|r| r.name.contains(&port.to_string()))
}

/// A metric's value in the server's exposition (0 when absent).
fn metric(hub: &Hub, series: &str) -> f64 {
    hub.metrics
        .encode()
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether the server closed `stream`, waiting up to `within` for it.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).expect("timeout");
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            // The server's HTTP/2 SETTINGS or TLS alerts: read on.
            Ok(_) => continue,
            Err(e) => return !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        }
    }
}

/// Whether `stream` is still open now.
fn open_now(stream: &mut TcpStream) -> bool {
    stream.set_nonblocking(true).expect("non-blocking");
    let mut buf = [0u8; 256];
    let open = loop {
        match stream.read(&mut buf) {
            Ok(0) => break false,
            Ok(_) => continue,
            Err(e) => break e.kind() == ErrorKind::WouldBlock,
        }
    };
    stream.set_nonblocking(false).expect("blocking");
    open
}

#[test]
fn streams_beyond_the_total_limit_get_resource_exhausted_while_open_ones_keep_working() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let hub = hub_with(20001);
    let address = serve_plain(
        &rt,
        &hub,
        Limits {
            max_streams: 2,
            ..Limits::default()
        },
    );
    rt.block_on(async {
        // Two Envoys, each on its own connection, get their listeners.
        let mut first = Stream::open(plain_channel(address).await.expect("connect"))
            .await
            .expect("first stream");
        let mut second = Stream::open(plain_channel(address).await.expect("connect"))
            .await
            .expect("second stream");
        assert!(names_port(
            &first.next().await.expect("first answered"),
            20001
        ));
        assert!(names_port(
            &second.next().await.expect("second answered"),
            20001
        ));

        // A third is refused, saying why.
        let refused = Stream::open(plain_channel(address).await.expect("connect")).await;
        let status = refused.err().expect("the third stream is refused");
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(
            status.message().contains("at most 2 ADS streams"),
            "{status:?}"
        );
        assert_eq!(
            metric(&hub, "portico_xds_refused_total{reason=\"stream_limit\"}"),
            1.0
        );

        // The open ones keep working: a change reaches them.
        hub.publish(&translate(&world(&["gw"], 20002, 9, "")));
        let change = first.next().await.expect("the change reaches the first");
        assert!(names_port(&change, 20002), "{change:?}");

        // One leaves; its place is free again.
        drop(second);
        let deadline = Instant::now() + SOON;
        loop {
            let channel = plain_channel(address).await.expect("connect");
            match Stream::open(channel).await {
                Ok(mut again) => {
                    assert!(names_port(&again.next().await.expect("answered"), 20002));
                    break;
                }
                Err(s) if s.code() == Code::ResourceExhausted && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(s) => panic!("a stream after one left: {s:?}"),
            }
        }
    });
}

#[test]
fn a_client_that_never_completes_tls_is_dropped_after_the_timeout_and_blocks_no_one() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let hub = hub_with(20011);
    // The default limits: a 10 s handshake timeout.
    let tls = serve_tls(&rt, &hub, Limits::default());
    let started = Instant::now();
    // One sends nothing; one starts a ClientHello record and stops.
    let mut silent = TcpStream::connect(tls.address).expect("connect");
    let mut partial = TcpStream::connect(tls.address).expect("connect");
    partial
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .expect("partial hello");
    wait_until("both stallers in their handshake", SOON, || {
        metric(&hub, "portico_xds_handshakes") == 2.0
    });

    // A good client is served meanwhile.
    rt.block_on(async {
        let channel = tls_channel(&tls).await.expect("TLS connect");
        let mut stream = Stream::open(channel).await.expect("stream");
        assert!(names_port(&stream.next().await.expect("answered"), 20011));
    });
    // Still in their handshakes then (unless this machine is very slow).
    if started.elapsed() + Duration::from_secs(2) < Limits::default().handshake_timeout {
        assert!(open_now(&mut silent) && open_now(&mut partial));
    }

    for staller in [&mut silent, &mut partial] {
        assert!(
            closed_within(staller, Duration::from_secs(40)),
            "a staller is dropped"
        );
    }
    assert!(
        started.elapsed() >= Limits::default().handshake_timeout,
        "dropped before the handshake timeout"
    );
    wait_until("both counted", SOON, || {
        metric(
            &hub,
            "portico_xds_refused_total{reason=\"handshake_timeout\"}",
        ) == 2.0
    });
}

#[test]
fn tls_handshakes_in_progress_are_capped() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let hub = hub_with(20021);
    let tls = serve_tls(
        &rt,
        &hub,
        Limits {
            max_handshakes: 2,
            handshake_timeout: Duration::from_secs(2),
            ..Limits::default()
        },
    );
    let _stallers: Vec<TcpStream> = (0..5)
        .map(|_| TcpStream::connect(tls.address).expect("connect"))
        .collect();
    wait_until("five connections open", SOON, || {
        metric(&hub, "portico_xds_connections") == 5.0
    });
    // Two handshakes at a time while the stallers wait; never more.
    let mut seen_two = false;
    let deadline = Instant::now() + SOON;
    while metric(
        &hub,
        "portico_xds_refused_total{reason=\"handshake_timeout\"}",
    ) < 5.0
    {
        assert!(Instant::now() < deadline, "every staller timed out");
        let in_progress = metric(&hub, "portico_xds_handshakes");
        assert!(in_progress <= 2.0, "{in_progress} handshakes at once");
        seen_two |= in_progress == 2.0;
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(seen_two, "the two turns were used");
    wait_until("every staller's connection closed", SOON, || {
        metric(&hub, "portico_xds_connections") == 0.0
    });
    // A good client after them is served.
    rt.block_on(async {
        let channel = tls_channel(&tls).await.expect("TLS connect");
        let mut stream = Stream::open(channel).await.expect("stream");
        assert!(names_port(&stream.next().await.expect("answered"), 20021));
    });
}

#[test]
fn connections_beyond_the_cap_are_closed_at_once_and_served_again_when_the_hogs_leave() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let hub = hub_with(20031);
    const CAP: usize = 3;
    let address = serve_plain(
        &rt,
        &hub,
        Limits {
            max_connections: CAP,
            // Only the cap closes anything here.
            handshake_timeout: Duration::from_secs(120),
            ..Limits::default()
        },
    );
    let mut hogs: Vec<TcpStream> = (0..CAP)
        .map(|_| TcpStream::connect(address).expect("connect"))
        .collect();
    wait_until("the hogs hold every slot", SOON, || {
        metric(&hub, "portico_xds_connections") == CAP as f64
    });
    for i in 0..CAP {
        let mut excess = TcpStream::connect(address).expect("connect");
        assert!(
            closed_within(&mut excess, Duration::from_secs(10)),
            "connection {} beyond the cap is closed at once",
            i + 1
        );
    }
    for hog in &mut hogs {
        assert!(open_now(hog), "a hog keeps its slot");
    }
    wait_until("the refusals counted", SOON, || {
        metric(
            &hub,
            "portico_xds_refused_total{reason=\"connection_limit\"}",
        ) == CAP as f64
    });
    drop(hogs);
    rt.block_on(async {
        let deadline = Instant::now() + SOON;
        loop {
            let attempt = async { Stream::open(plain_channel(address).await.ok()?).await.ok() };
            if let Some(mut stream) = attempt.await
                && let Ok(response) = stream.next().await
            {
                assert!(names_port(&response, 20031));
                break;
            }
            assert!(Instant::now() < deadline, "served once the hogs left");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

#[test]
fn a_connection_that_never_sends_its_http2_preface_is_dropped() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let hub = hub_with(20041);
    let timeout = Duration::from_secs(2);
    let address = serve_plain(
        &rt,
        &hub,
        Limits {
            handshake_timeout: timeout,
            ..Limits::default()
        },
    );
    let started = Instant::now();
    let mut idle = TcpStream::connect(address).expect("connect");
    assert!(
        closed_within(&mut idle, Duration::from_secs(40)),
        "the idle connection is dropped"
    );
    assert!(started.elapsed() >= timeout);
    wait_until("its slot is free", SOON, || {
        metric(&hub, "portico_xds_connections") == 0.0
    });
}

/// A raw HTTP/2 connection to the ADS server.
async fn h2_connect(address: SocketAddr) -> h2::client::SendRequest<bytes::Bytes> {
    let tcp = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let (send, connection) = h2::client::handshake(tcp).await.expect("HTTP/2");
    tokio::spawn(connection);
    send
}

fn ads_request(extra: Option<(&str, String)>) -> http::Request<()> {
    let mut request = http::Request::post(
        "http://portico/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources",
    )
    .header("content-type", "application/grpc")
    .header("te", "trailers");
    if let Some((name, value)) = extra {
        request = request.header(name, value);
    }
    request.body(()).expect("request")
}

#[test]
fn each_connection_may_open_a_few_streams_and_header_lists_are_bounded() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let hub = hub_with(20051);
    let address = serve_plain(&rt, &hub, Limits::default());
    rt.block_on(async {
        let mut send = h2_connect(address).await;
        // The first response means the server's SETTINGS were read.
        send = send.ready().await.expect("ready");
        let (response, _body) = send.send_request(ads_request(None), false).expect("send");
        let response = tokio::time::timeout(SOON, response)
            .await
            .expect("in time")
            .expect("a response");
        assert_eq!(response.status(), 200);
        assert_eq!(
            send.current_max_send_streams(),
            Limits::default().streams_per_connection as usize,
            "the server's SETTINGS_MAX_CONCURRENT_STREAMS"
        );

        // A 32 KiB header is refused (431 or a reset stream); the
        // connection still serves.
        let mut send = send.ready().await.expect("ready");
        let (response, _body) = send
            .send_request(ads_request(Some(("x-big", "a".repeat(32 * 1024)))), true)
            .expect("send");
        match tokio::time::timeout(SOON, response).await.expect("in time") {
            Ok(r) => assert_eq!(r.status(), 431),
            Err(e) => assert!(e.is_reset(), "{e}"),
        }
        let mut send = send.ready().await.expect("ready");
        let (response, _body) = send.send_request(ads_request(None), false).expect("send");
        let response = tokio::time::timeout(SOON, response)
            .await
            .expect("in time")
            .expect("a response");
        assert_eq!(response.status(), 200);
    });
}

#[test]
fn a_request_above_the_decoding_limit_ends_its_stream_only() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let hub = hub_with(20061);
    let address = serve_plain(
        &rt,
        &hub,
        Limits {
            max_request_bytes: 64 * 1024,
            ..Limits::default()
        },
    );
    rt.block_on(async {
        let channel = plain_channel(address).await.expect("connect");
        let names: Vec<String> = (0..2000).map(|i| format!("listener-{i:060}")).collect();
        let outcome = match Stream::open_with(channel.clone(), names).await {
            Ok(mut stream) => stream.next().await.map(|_| ()),
            Err(status) => Err(status),
        };
        let status = outcome.expect_err("a 130 KB request is refused");
        assert!(
            matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
            "{status:?}"
        );
        // The same connection serves a normal stream.
        let mut stream = Stream::open(channel).await.expect("stream");
        assert!(names_port(&stream.next().await.expect("answered"), 20061));
    });
}

/// A TCP relay to `upstream` that can be frozen: it then forwards nothing
/// more in either direction but keeps both connections open, like a peer
/// that vanished without closing.
fn freezable_relay(upstream: SocketAddr) -> (SocketAddr, Arc<AtomicBool>) {
    let listener = StdListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    let frozen = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&frozen);
    std::thread::spawn(move || {
        let Ok((client, _)) = listener.accept() else {
            return;
        };
        let Ok(server) = TcpStream::connect(upstream) else {
            return;
        };
        let pipe = |mut from: TcpStream, mut to: TcpStream, frozen: Arc<AtomicBool>| {
            std::thread::spawn(move || {
                let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
                let mut buf = [0u8; 16 * 1024];
                let started = Instant::now();
                // Bounded: the test is over long before.
                while started.elapsed() < Duration::from_secs(120) {
                    if frozen.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                    match from.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => {
                            if frozen.load(Ordering::SeqCst) {
                                continue;
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                        Err(e)
                            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                        Err(_) => return,
                    }
                }
            });
        };
        let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
            return;
        };
        pipe(client, server, Arc::clone(&flag));
        pipe(server2, client2, flag);
    });
    (address, frozen)
}

#[test]
fn a_peer_that_stops_answering_is_dropped_by_keepalive() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let hub = hub_with(20071);
    let address = serve_plain(
        &rt,
        &hub,
        Limits {
            keepalive_interval: Duration::from_secs(1),
            keepalive_timeout: Duration::from_secs(3),
            ..Limits::default()
        },
    );
    let (relay, frozen) = freezable_relay(address);
    let _stream = rt.block_on(async {
        let mut stream = Stream::open(plain_channel(relay).await.expect("connect"))
            .await
            .expect("stream");
        assert!(names_port(&stream.next().await.expect("answered"), 20071));
        stream
    });
    assert_eq!(hub.feedback(GATEWAY).streams, 1);
    // Alive and answering pings: still there after a few intervals.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(hub.feedback(GATEWAY).streams, 1, "a live peer is kept");
    frozen.store(true, Ordering::SeqCst);
    wait_until(
        "the silent peer's stream closed",
        Duration::from_secs(30),
        || hub.feedback(GATEWAY).streams == 0,
    );
    wait_until("its connection closed", SOON, || {
        metric(&hub, "portico_xds_connections") == 0.0
    });
}
