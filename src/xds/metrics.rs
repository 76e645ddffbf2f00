//! xDS metrics in the Prometheus text format: open streams per Gateway,
//! responses pushed, ACKs and NACKs by resource type, and the time from a
//! snapshot change to the responses for it being handed to the stream.

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

#[derive(Debug)]
pub struct XdsMetrics {
    pub streams: Family<GatewayLabel, Gauge>,
    pub pushes: Family<TypeLabel, Counter>,
    pub acks: Family<TypeLabel, Counter>,
    pub nacks: Family<TypeLabel, Counter>,
    pub push_latency: Histogram,
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
        Self {
            streams,
            pushes,
            acks,
            nacks,
            push_latency,
            registry,
        }
    }
}

impl XdsMetrics {
    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
