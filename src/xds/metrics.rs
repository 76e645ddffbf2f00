//! xDS metrics in the Prometheus text format: open streams per Gateway,
//! responses pushed, ACKs and NACKs by resource type and by Gateway, each
//! Gateway's snapshot size, the time from a snapshot change to the responses
//! for it being handed to the stream, and the server's limits at work (open
//! connections, TLS handshakes in progress, connections and streams refused
//! by reason). Series labelled by Gateway go when the Gateway does, so their
//! number is bounded by the Gateways served.

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
pub struct GatewayTypeLabel {
    pub gateway: String,
    pub resource_type: String,
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
    pub gateway_acks: Family<GatewayLabel, Counter>,
    pub gateway_nacks: Family<GatewayLabel, Counter>,
    /// Resources in each Gateway's current snapshot, by type.
    pub snapshot_resources: Family<GatewayTypeLabel, Gauge>,
    /// Encoded bytes of each Gateway's current snapshot.
    pub snapshot_bytes: Family<GatewayLabel, Gauge>,
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
        let mut metrics = Self {
            streams: Family::default(),
            pushes: Family::default(),
            acks: Family::default(),
            nacks: Family::default(),
            gateway_acks: Family::default(),
            gateway_nacks: Family::default(),
            snapshot_resources: Family::default(),
            snapshot_bytes: Family::default(),
            // 0.1 ms to about 1.6 s.
            push_latency: Histogram::new(exponential_buckets(0.0001, 2.0, 15)),
            connections: Gauge::default(),
            handshakes: Gauge::default(),
            refused: Family::default(),
            registry: Registry::default(),
        };
        for why in [
            Refusal::ConnectionLimit,
            Refusal::StreamLimit,
            Refusal::HandshakeTimeout,
            Refusal::HandshakeFailed,
        ] {
            drop(metrics.refused.get_or_create(&why.label()));
        }
        let mut registry = Registry::default();
        metrics.register(registry.sub_registry_with_prefix("portico_xds"));
        metrics.registry = registry;
        metrics
    }
}

impl XdsMetrics {
    /// Registers every metric (shared, not copied) in `registry`, which
    /// carries the `portico_xds` prefix.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "streams",
            "Open ADS streams per Gateway",
            self.streams.clone(),
        );
        registry.register("pushes", "Responses sent to Envoys", self.pushes.clone());
        registry.register("acks", "Responses Envoys accepted", self.acks.clone());
        registry.register("nacks", "Responses Envoys rejected", self.nacks.clone());
        registry.register(
            "gateway_acks",
            "Responses Envoys accepted, per Gateway",
            self.gateway_acks.clone(),
        );
        registry.register(
            "gateway_nacks",
            "Responses Envoys rejected, per Gateway",
            self.gateway_nacks.clone(),
        );
        registry.register(
            "snapshot_resources",
            "Resources in the Gateway's current snapshot, by type",
            self.snapshot_resources.clone(),
        );
        registry.register(
            "snapshot_bytes",
            "Encoded size of the Gateway's current snapshot",
            self.snapshot_bytes.clone(),
        );
        registry.register(
            "push_latency_seconds",
            "Time from a snapshot change to its responses being queued on a stream",
            self.push_latency.clone(),
        );
        registry.register(
            "connections",
            "Open xDS connections, TLS handshakes included",
            self.connections.clone(),
        );
        registry.register(
            "handshakes",
            "TLS handshakes in progress",
            self.handshakes.clone(),
        );
        registry.register(
            "refused",
            "Connections and streams dropped before being served, by reason",
            self.refused.clone(),
        );
    }

    /// Drops every series labelled with `gateway`.
    pub fn forget(&self, gateway: &str) {
        let label = GatewayLabel {
            gateway: gateway.into(),
        };
        self.streams.remove(&label);
        self.gateway_acks.remove(&label);
        self.gateway_nacks.remove(&label);
        self.snapshot_bytes.remove(&label);
        for kind in ResourceType::PUSH_ORDER {
            self.snapshot_resources.remove(&GatewayTypeLabel {
                gateway: gateway.into(),
                resource_type: TypeLabel::of(kind).resource_type,
            });
        }
    }

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
