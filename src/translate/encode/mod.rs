//! Stage 6, encode: the Envoy resources of one accepted Gateway, built from its tables with
//! `envoy-types`: one Listener and one RouteConfiguration per port, one Cluster
//! and one ClusterLoadAssignment per backend Service port.

pub mod cluster;
pub mod endpoints;
pub mod gateway;
pub mod listener;
pub mod route;
pub mod stream;
pub mod tls;

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiVersion, ConfigSource, config_source,
};
use envoy_types::pb::google::protobuf::{Any, Duration};
use prost::{Message, Name};

pub use crate::bootstrap::ENVOY_RE2_MAX_PROGRAM_SIZE;

/// Every Envoy resource of one Gateway, encoded, each list sorted by name.
/// Encoded resources are what xDS sends, compare cheaply, and take a fraction
/// of the memory of the message structs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnvoyResources {
    /// `envoy.config.listener.v3.Listener`
    pub listeners: Vec<Resource>,
    /// `envoy.config.route.v3.RouteConfiguration`
    pub routes: Vec<Resource>,
    /// `envoy.config.cluster.v3.Cluster`
    pub clusters: Vec<Resource>,
    /// `envoy.config.endpoint.v3.ClusterLoadAssignment`
    pub endpoints: Vec<Resource>,
    /// `envoy.extensions.transport_sockets.tls.v3.Secret` (served over SDS,
    /// never inlined); none until TLS listeners and backends exist.
    pub secrets: Vec<Resource>,
}

/// One Envoy resource: its name and its protobuf encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resource {
    pub name: String,
    pub body: Bytes,
}

impl Resource {
    pub fn encode<M: Message>(name: String, message: &M) -> Self {
        Self {
            name,
            body: Bytes::from(message.encode_to_vec()),
        }
    }

    pub fn decode<M: Message + Default>(&self) -> Result<M, prost::DecodeError> {
        M::decode(self.body.clone())
    }
}

/// Packs a message into `google.protobuf.Any` with its type URL.
pub fn any<M: Message + Name>(message: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: message.encode_to_vec(),
    }
}

/// Resources come over the ADS stream.
pub fn ads_source() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource::default(),
        )),
        ..ConfigSource::default()
    }
}

pub fn duration(d: std::time::Duration) -> Duration {
    Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: d.subsec_nanos() as i32,
    }
}
