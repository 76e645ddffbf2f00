//! The ADS gRPC service: a thin tonic shell. Each stream gets its own task that
//! feeds requests and snapshot changes into the stream's state machine
//! (`delta` or `sotw`) and sends what comes out; ACK/NACK feedback goes to the
//! hub. Envoys are told apart by `node.cluster` (`<namespace>/<gateway>`).
//!
//! Bounded by `Limits`: connections are admitted by `incoming`; each
//! connection may carry `streams_per_connection` HTTP/2 streams and the
//! server `max_streams` ADS streams in all (one more is refused with
//! `RESOURCE_EXHAUSTED`); requests are decoded up to `max_request_bytes`,
//! header lists up to `max_header_list_bytes`; HTTP/2 keepalive pings drop
//! peers that stopped answering.

use std::collections::VecDeque;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::cache::{ResourceType, Snapshot};
use super::delta::{DeltaStream, Feedback, Handled, StreamError};
use super::hub::Hub;
use super::incoming;
use super::metrics::Refusal;
use super::sotw::SotwStream;
use crate::accept::Refusals;

/// ADS streams served at once by default: one per Envoy, so thousands of
/// Envoy replicas across Gateways per portico replica.
pub const MAX_STREAMS: usize = 4096;
/// Open connections by default: the streams, plus room for reconnects that
/// overlap their dead predecessor until keepalive drops it, for connections
/// in their handshake, and for a refused stream to be told why.
pub const MAX_CONNECTIONS: usize = MAX_STREAMS + 1024;
/// TLS handshakes in progress by default. A handshake costs about a
/// millisecond of CPU; this many at once is far more than two cores finish,
/// and bounds the memory of clients that stall.
pub const MAX_HANDSHAKES: usize = 256;

/// What one client, or many, may take from the ADS server.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Open connections, handshakes included; more are closed at once.
    pub max_connections: usize,
    /// TLS handshakes in progress; more wait for a turn.
    pub max_handshakes: usize,
    /// Time to get a handshake turn, then to complete the TLS handshake,
    /// then to send the first HTTP/2 bytes.
    pub handshake_timeout: Duration,
    /// ADS streams in all; more are refused with `RESOURCE_EXHAUSTED`.
    pub max_streams: usize,
    /// HTTP/2 streams one connection may open at once (Envoy opens one).
    pub streams_per_connection: u32,
    /// The largest request message decoded.
    pub max_request_bytes: usize,
    /// The largest HTTP/2 header list accepted.
    pub max_header_list_bytes: u32,
    /// A connection silent this long is pinged...
    pub keepalive_interval: Duration,
    /// ...and closed if the ping is not answered within this.
    pub keepalive_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: MAX_CONNECTIONS,
            max_handshakes: MAX_HANDSHAKES,
            handshake_timeout: Duration::from_secs(10),
            max_streams: MAX_STREAMS,
            // Envoy uses one; a few more let a client replace a stream
            // before the old one is gone.
            streams_per_connection: 8,
            // A reconnecting Envoy lists every resource it holds (name and
            // version) in one request: 4 MiB is tens of thousands of them.
            max_request_bytes: 4 * 1024 * 1024,
            // gRPC requests carry a handful of short headers.
            max_header_list_bytes: 16 * 1024,
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
        }
    }
}

/// One ADS stream's protocol logic, whichever variant.
trait Machine: Default + Send + 'static {
    type Req: Send + 'static;
    type Resp: prost::Message + Send + 'static;
    fn type_of(resp: &Self::Resp) -> Option<ResourceType>;
    fn node_of(req: &Self::Req) -> Option<&Node>;
    fn request(
        &mut self,
        req: &Self::Req,
        snapshot: &Snapshot,
    ) -> Result<Handled<Self::Resp>, StreamError>;
    fn snapshot(&mut self, snapshot: &Snapshot) -> Vec<Self::Resp>;
}

/// Both variants have the same shape: requests carry `node` and `type_url`,
/// responses `type_url`.
macro_rules! machine {
    ($stream:ty, $req:ty, $resp:ty) => {
        impl Machine for $stream {
            type Req = $req;
            type Resp = $resp;
            fn type_of(resp: &Self::Resp) -> Option<ResourceType> {
                ResourceType::from_type_url(&resp.type_url)
            }
            fn node_of(req: &Self::Req) -> Option<&Node> {
                req.node.as_ref()
            }
            fn request(
                &mut self,
                req: &Self::Req,
                snapshot: &Snapshot,
            ) -> Result<Handled<Self::Resp>, StreamError> {
                self.on_request(req, snapshot)
            }
            fn snapshot(&mut self, snapshot: &Snapshot) -> Vec<Self::Resp> {
                self.on_snapshot(snapshot)
            }
        }
    };
}

machine!(DeltaStream, DeltaDiscoveryRequest, DeltaDiscoveryResponse);
machine!(SotwStream, DiscoveryRequest, DiscoveryResponse);

static EMPTY: LazyLock<Arc<Snapshot>> = LazyLock::new(|| Arc::new(Snapshot::default()));

/// Who is on the other end of a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Peer {
    /// A plain TCP connection (standalone mode): `node.cluster` is believed.
    Trusted,
    /// Mutual TLS: the Gateway the client certificate names, if any. Only
    /// that Gateway's configuration is served.
    Certified(Option<String>),
}

/// The ADS service over a hub.
#[derive(Clone)]
pub struct AdsServer {
    hub: Arc<Hub>,
    /// Whether streams must come with a client certificate naming their Gateway.
    authenticate: bool,
    /// One permit per open stream.
    streams: Arc<Semaphore>,
    max_streams: usize,
    refusals: Arc<Mutex<Refusals>>,
}

impl AdsServer {
    pub fn new(hub: Arc<Hub>) -> Self {
        Self::limited(hub, false, MAX_STREAMS)
    }

    fn limited(hub: Arc<Hub>, authenticate: bool, max_streams: usize) -> Self {
        let max_streams = max_streams.min(Semaphore::MAX_PERMITS);
        Self {
            hub,
            authenticate,
            streams: Arc::new(Semaphore::new(max_streams)),
            max_streams,
            refusals: Arc::new(Mutex::new(Refusals::new("xDS", "--xds-max-streams"))),
        }
    }

    fn start<M: Machine>(
        &self,
        request: Request<Streaming<M::Req>>,
    ) -> Result<ReceiverStream<Result<M::Resp, Status>>, Status>
    where
        M::Req: prost::Message + Default,
    {
        let Ok(permit) = Arc::clone(&self.streams).try_acquire_owned() else {
            self.hub.metrics.refused(Refusal::StreamLimit);
            self.refusals
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .refused(self.max_streams);
            return Err(Status::resource_exhausted(format!(
                "this portico replica serves at most {} ADS streams and all are open; \
                 retry later (another replica may have room) or raise --xds-max-streams",
                self.max_streams
            )));
        };
        let peer = if self.authenticate {
            Peer::Certified(
                request
                    .peer_certs()
                    .and_then(|certs| certs.first().and_then(|c| crate::pki::gateway_of(c))),
            )
        } else {
            Peer::Trusted
        };
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(drive::<M>(
            Arc::clone(&self.hub),
            peer,
            request.into_inner(),
            tx,
            permit,
        ));
        Ok(ReceiverStream::new(rx))
    }
}

/// Runs one stream until Envoy or the server ends it; its place under the
/// stream limit is given back when it ends.
async fn drive<M: Machine>(
    hub: Arc<Hub>,
    peer: Peer,
    mut inbound: Streaming<M::Req>,
    tx: mpsc::Sender<Result<M::Resp, Status>>,
    _permit: OwnedSemaphorePermit,
) where
    M::Req: prost::Message + Default,
{
    let mut machine = M::default();
    // The first request names the Gateway.
    let first = match inbound.message().await {
        Ok(Some(req)) => req,
        Ok(None) => return,
        // Say why (a request above the size limit, say), if anyone listens.
        Err(status) => {
            let _ = tx.send(Err(status)).await;
            return;
        }
    };
    // Nothing is answered before the first translation: an empty answer
    // would make a reconnecting Envoy drop the configuration it serves.
    hub.synced().await;
    let mut snapshots = hub.subscribe();
    let Some(gateway) = M::node_of(&first).map(|n| n.cluster.clone()) else {
        let _ = tx
            .send(Err(Status::invalid_argument(
                StreamError::NoNode.to_string(),
            )))
            .await;
        return;
    };
    if let Peer::Certified(certified) = &peer
        && certified.as_deref() != Some(gateway.as_str())
    {
        let named = certified.as_deref().unwrap_or("no Gateway");
        tracing::warn!(%gateway, certificate = named, "xDS stream refused: node.cluster is not the Gateway of the client certificate");
        let _ = tx
            .send(Err(Status::permission_denied(format!(
                "node.cluster {gateway:?} is not the Gateway of the client certificate ({named})"
            ))))
            .await;
        return;
    }
    hub.stream_opened(&gateway);
    // A Gateway without configuration (never accepted since portico
    // started) gets no answer yet: an empty one would make its Envoys drop
    // what they serve. Requests wait in order.
    let mut waiting = VecDeque::from([first]);
    while !snapshots.borrow_and_update().contains_key(&gateway) {
        tokio::select! {
            req = inbound.message() => match req {
                Ok(Some(req)) => waiting.push_back(req),
                Ok(None) => {
                    hub.stream_closed(&gateway);
                    return;
                }
                Err(status) => {
                    let _ = tx.send(Err(status)).await;
                    hub.stream_closed(&gateway);
                    return;
                }
            },
            changed = snapshots.changed() => if changed.is_err() {
                hub.stream_closed(&gateway);
                return;
            },
        }
    }
    let current = |snapshots: &tokio::sync::watch::Receiver<Arc<super::hub::Snapshots>>| {
        snapshots
            .borrow()
            .get(&gateway)
            .cloned()
            .unwrap_or_else(|| Arc::clone(&EMPTY))
    };
    let mut snapshot = current(&snapshots);
    snapshots.mark_unchanged();
    let mut next = waiting.pop_front();
    loop {
        if let Some(req) = next.take().or_else(|| waiting.pop_front()) {
            match machine.request(&req, &snapshot) {
                Ok(Handled {
                    feedback,
                    responses,
                }) => {
                    if let Some(f) = feedback {
                        answered(&gateway, &f, &hub);
                        hub.record(&gateway, &f);
                    }
                    hub.count_responses(responses.iter().filter_map(M::type_of));
                    if send_all(&tx, responses).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(Status::invalid_argument(e.to_string()))).await;
                    break;
                }
            }
        }
        if !waiting.is_empty() {
            continue;
        }
        tokio::select! {
            req = inbound.message() => match req {
                Ok(Some(req)) => next = Some(req),
                Ok(None) => break,
                Err(status) => {
                    let _ = tx.send(Err(status)).await;
                    break;
                }
            },
            changed = snapshots.changed() => {
                if changed.is_err() {
                    break;
                }
                let latest = current(&snapshots);
                if !Arc::ptr_eq(&latest, &snapshot) {
                    snapshot = latest;
                    let responses = machine.snapshot(&snapshot);
                    hub.count_responses(responses.iter().filter_map(M::type_of));
                    let latency = hub.since_publish();
                    hub.metrics.push_latency.observe(latency.as_secs_f64());
                    tracing::debug!(
                        %gateway,
                        snapshot = %snapshot.version(),
                        types = ?responses.iter().filter_map(M::type_of).collect::<Vec<_>>(),
                        bytes = responses.iter().map(prost::Message::encoded_len).sum::<usize>(),
                        since_publish = ?latency,
                        "pushed"
                    );
                    if send_all(&tx, responses).await.is_err() {
                        break;
                    }
                }
            }
        }
    }
    hub.stream_closed(&gateway);
}

/// Logs Envoy's answer to a response (debug): with the time since the
/// current snapshots were published, what Envoy took to apply a push.
fn answered(gateway: &str, feedback: &Feedback, hub: &Hub) {
    let (kind, snapshot, accepted) = match feedback {
        Feedback::Ack { kind, snapshot } => (kind, snapshot, true),
        Feedback::Nack { kind, snapshot, .. } => (kind, snapshot, false),
    };
    tracing::debug!(
        gateway,
        ?kind,
        snapshot = %snapshot,
        accepted,
        since_publish = ?hub.since_publish(),
        "answered"
    );
}

async fn send_all<T>(tx: &mpsc::Sender<Result<T, Status>>, items: Vec<T>) -> Result<(), ()> {
    for item in items {
        tx.send(Ok(item)).await.map_err(|_| ())?;
    }
    Ok(())
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsServer {
    type StreamAggregatedResourcesStream = ReceiverStream<Result<DiscoveryResponse, Status>>;
    type DeltaAggregatedResourcesStream = ReceiverStream<Result<DeltaDiscoveryResponse, Status>>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        self.start::<SotwStream>(request).map(Response::new)
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        self.start::<DeltaStream>(request).map(Response::new)
    }
}

/// Serves ADS over mutual TLS on `listener` with the default limits until
/// `shutdown` completes. Each Envoy gets only the configuration of the
/// Gateway its certificate names.
pub async fn serve_tls(
    hub: Arc<Hub>,
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    serve_tls_with(hub, listener, acceptor, &Limits::default(), shutdown).await
}

/// `serve_tls` with `limits`.
pub async fn serve_tls_with(
    hub: Arc<Hub>,
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    limits: &Limits,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let service = AdsServer::limited(Arc::clone(&hub), true, limits.max_streams);
    builder(limits)
        .add_service(service_of(service, limits))
        .serve_with_incoming_shutdown(incoming::tls(listener, acceptor, limits, hub), shutdown)
        .await
}

/// Serves ADS on `listener` with the default limits until `shutdown`
/// completes, believing each Envoy's `node.cluster` (loopback and
/// standalone use).
pub async fn serve(
    hub: Arc<Hub>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    serve_with(hub, listener, &Limits::default(), shutdown).await
}

/// `serve` with `limits` (the TLS ones do not apply).
pub async fn serve_with(
    hub: Arc<Hub>,
    listener: TcpListener,
    limits: &Limits,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let service = AdsServer::limited(Arc::clone(&hub), false, limits.max_streams);
    builder(limits)
        .add_service(service_of(service, limits))
        .serve_with_incoming_shutdown(incoming::plain(listener, limits, hub), shutdown)
        .await
}

fn service_of(service: AdsServer, limits: &Limits) -> AggregatedDiscoveryServiceServer<AdsServer> {
    AggregatedDiscoveryServiceServer::new(service)
        .max_decoding_message_size(limits.max_request_bytes)
}

/// HTTP/2 settings of every connection.
fn builder(limits: &Limits) -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .max_concurrent_streams(limits.streams_per_connection)
        .http2_max_header_list_size(limits.max_header_list_bytes)
        .http2_keepalive_interval(Some(limits.keepalive_interval))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout))
}
