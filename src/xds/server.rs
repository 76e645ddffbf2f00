//! The ADS gRPC service: a thin tonic shell. Each stream gets its own task that
//! feeds requests and snapshot changes into the stream's state machine
//! (`delta` or `sotw`) and sends what comes out; ACK/NACK feedback goes to the
//! hub. Envoys are told apart by `node.cluster` (`<namespace>/<gateway>`).

use std::collections::VecDeque;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

use super::cache::{ResourceType, Snapshot};
use super::delta::{DeltaStream, Handled, StreamError};
use super::hub::Hub;
use super::sotw::SotwStream;

/// One ADS stream's protocol logic, whichever variant.
trait Machine: Default + Send + 'static {
    type Req: Send + 'static;
    type Resp: Send + 'static;
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
}

impl AdsServer {
    pub fn new(hub: Arc<Hub>) -> Self {
        Self {
            hub,
            authenticate: false,
        }
    }

    fn start<M: Machine>(
        &self,
        request: Request<Streaming<M::Req>>,
    ) -> ReceiverStream<Result<M::Resp, Status>>
    where
        M::Req: prost::Message + Default,
    {
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
        ));
        ReceiverStream::new(rx)
    }
}

/// Runs one stream until Envoy or the server ends it.
async fn drive<M: Machine>(
    hub: Arc<Hub>,
    peer: Peer,
    mut inbound: Streaming<M::Req>,
    tx: mpsc::Sender<Result<M::Resp, Status>>,
) where
    M::Req: prost::Message + Default,
{
    let mut machine = M::default();
    // The first request names the Gateway.
    let first = match inbound.message().await {
        Ok(Some(req)) => req,
        _ => return,
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
                _ => {
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
                _ => break,
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
                    hub.metrics.push_latency.observe(hub.since_publish().as_secs_f64());
                    if send_all(&tx, responses).await.is_err() {
                        break;
                    }
                }
            }
        }
    }
    hub.stream_closed(&gateway);
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
        Ok(Response::new(self.start::<SotwStream>(request)))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Ok(Response::new(self.start::<DeltaStream>(request)))
    }
}

/// Serves ADS over mutual TLS on `listener` until `shutdown` completes. Each
/// Envoy gets only the configuration of the Gateway its certificate names.
pub async fn serve_tls(
    hub: Arc<Hub>,
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let service = AdsServer {
        hub,
        authenticate: true,
    };
    builder()
        .add_service(AggregatedDiscoveryServiceServer::new(service))
        .serve_with_incoming_shutdown(super::tls::incoming(listener, acceptor), shutdown)
        .await
}

fn builder() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
}

/// Serves ADS on `listener` until `shutdown` completes, believing each
/// Envoy's `node.cluster` (loopback and standalone use).
pub async fn serve(
    hub: Arc<Hub>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    builder()
        .add_service(AggregatedDiscoveryServiceServer::new(AdsServer::new(hub)))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
}
