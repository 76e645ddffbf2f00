//! xDS metrics in the Prometheus text format: open streams per Gateway,
//! responses pushed, ACKs and NACKs by resource type, the time from a
//! snapshot change to the responses for it being handed to the stream, and
//! the server's limits at work (open connections, TLS handshakes in progress,
//! connections and streams refused by reason).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::cache::ResourceType;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GatewayLabel {
    pub gateway: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    pub resource_type: String,
}

impl TypeLabel {
    pub fn of(kind: ResourceType) -> Self {
        let name = match kind {
            ResourceType::Secret => "secret",
            ResourceType::Cluster => "cluster",
            ResourceType::Endpoint => "endpoint",
            ResourceType::Listener => "listener",
            ResourceType::Route => "route",
        };
        Self {
            resource_type: name.into(),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

/// Why a connection or stream was dropped before it was served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `--xds-max-connections` connections were open.
    ConnectionLimit,
    /// `--xds-max-streams` ADS streams were open.
    StreamLimit,
    /// No TLS handshake (or HTTP/2 preface) within the handshake timeout.
    HandshakeTimeout,
    /// The TLS handshake failed (no or a wrong client certificate, not TLS).
    HandshakeFailed,
}

impl Refusal {
    fn label(self) -> ReasonLabel {
        let reason = match self {
            Refusal::ConnectionLimit => "connection_limit",
            Refusal::StreamLimit => "stream_limit",
            Refusal::HandshakeTimeout => "handshake_timeout",
            Refusal::HandshakeFailed => "handshake_failed",
        };
        ReasonLabel { reason }
    }
}

#[derive(Debug)]
pub struct XdsMetrics {
    pub streams: Family<GatewayLabel, Gauge>,
    pub pushes: Family<TypeLabel, Counter>,
    pub acks: Family<TypeLabel, Counter>,
    pub nacks: Family<TypeLabel, Counter>,
    pub push_latency: Histogram,
    /// Open connections, from accept (TLS handshake included) to close.
    pub connections: Gauge,
    /// TLS handshakes in progress.
    pub handshakes: Gauge,
    refused: Family<ReasonLabel, Counter>,
    registry: Registry,
}

impl Default for XdsMetrics {
    fn default() -> Self {
        let streams = Family::<GatewayLabel, Gauge>::default();
        let pushes = Family::<TypeLabel, Counter>::default();
        let acks = Family::<TypeLabel, Counter>::default();
        let nacks = Family::<TypeLabel, Counter>::default();
        // 0.1 ms to about 1.6 s.
        let push_latency = Histogram::new(exponential_buckets(0.0001, 2.0, 15));
        let connections = Gauge::default();
        let handshakes = Gauge::default();
        let refused = Family::<ReasonLabel, Counter>::default();
        let mut registry = Registry::with_prefix("portico_xds");
        registry.register("streams", "Open ADS streams per Gateway", streams.clone());
        registry.register("pushes", "Responses sent to Envoys", pushes.clone());
        registry.register("acks", "Responses Envoys accepted", acks.clone());
        registry.register("nacks", "Responses Envoys rejected", nacks.clone());
        registry.register(
            "push_latency_seconds",
            "Time from a snapshot change to its responses being queued on a stream",
            push_latency.clone(),
        );
        registry.register(
            "connections",
            "Open xDS connections, TLS handshakes included",
            connections.clone(),
        );
        registry.register(
            "handshakes",
            "TLS handshakes in progress",
            handshakes.clone(),
        );
        registry.register(
            "refused",
            "Connections and streams dropped before being served, by reason",
            refused.clone(),
        );
        Self {
            streams,
            pushes,
            acks,
            nacks,
            push_latency,
            connections,
            handshakes,
            refused,
            registry,
        }
    }
}

impl XdsMetrics {
    pub fn refused(&self, why: Refusal) {
        self.refused.get_or_create(&why.label()).inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
