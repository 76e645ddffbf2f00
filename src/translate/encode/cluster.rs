//! Clusters and their endpoints: one EDS cluster per backend Service port, and
//! the ClusterLoadAssignment listing the ready endpoints of that port. A UDP
//! route with several backends gets one cluster of its own whose endpoints
//! are grouped per backend, each group weighted: the UDP proxy names one
//! cluster, so backend weights become locality weights.

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{
    Address, DataSource, Http2ProtocolOptions, Locality, SocketAddress, TransportSocket, address,
    data_source, socket_address, transport_socket,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, SdsSecretConfig, SubjectAltNameMatcher,
    UpstreamTlsContext, common_tls_context, subject_alt_name_matcher,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions, http_protocol_options,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};
use envoy_types::pb::google::protobuf::UInt32Value;

use super::{ads_source, any, duration};
use crate::inputs::ObjectKey;
use crate::translate::compile::backend_tls::{BackendTls, SubjectAltName};
use crate::translate::compile::backends::{ClusterKey, UpstreamProtocol};
use crate::translate::compile::l4::L4Backend;
use crate::translate::encode::endpoints::Endpoint as ReadyEndpoint;

/// Where a cluster's endpoints come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Upstream {
    /// One Service port.
    Service(ClusterKey),
    /// Several Service ports, each with its weight.
    Weighted {
        name: String,
        parts: Vec<(ClusterKey, u32)>,
    },
}

impl Upstream {
    /// Whether Envoy speaks TLS to this upstream.
    pub fn has_tls(&self) -> bool {
        matches!(self, Self::Service(key) if key.tls.is_some())
    }

    pub fn name(&self) -> &str {
        match self {
            Self::Service(key) => &key.name,
            Self::Weighted { name, .. } => name,
        }
    }
}

/// The live, resolved backends of a UDP route with their weights. Backends
/// that did not resolve are left out.
pub fn udp_parts(backends: &[L4Backend]) -> Vec<(&ClusterKey, u32)> {
    backends
        .iter()
        .filter(|b| b.weight > 0)
        .filter_map(|b| Some((b.cluster.as_deref()?, b.weight)))
        .collect()
}

/// The cluster of its own that a UDP route with several backends (or none
/// that resolved) gets.
pub fn udp_weighted(route: &ObjectKey, parts: &[(&ClusterKey, u32)]) -> Upstream {
    Upstream::Weighted {
        name: format!("portico/udp/{}/{}", route.namespace, route.name),
        parts: parts.iter().map(|(k, w)| ((*k).clone(), *w)).collect(),
    }
}

/// The cluster of `upstream`; TLS clusters present `client_certificate`
/// (an SDS secret name) when the Gateway names one.
pub fn cluster(upstream: &Upstream, client_certificate: Option<&str>) -> Cluster {
    match upstream {
        Upstream::Service(key) => eds_cluster(key, client_certificate),
        Upstream::Weighted { name, .. } => Cluster {
            common_lb_config: Some(cluster::CommonLbConfig {
                locality_config_specifier: Some(
                    cluster::common_lb_config::LocalityConfigSpecifier::LocalityWeightedLbConfig(
                        cluster::common_lb_config::LocalityWeightedLbConfig::default(),
                    ),
                ),
                ..cluster::CommonLbConfig::default()
            }),
            ..named_eds_cluster(name)
        },
    }
}

pub fn eds_cluster(key: &ClusterKey, client_certificate: Option<&str>) -> Cluster {
    let mut cluster = named_eds_cluster(&key.name);
    if key.protocol == UpstreamProtocol::H2c {
        let options = HttpProtocolOptions {
            upstream_protocol_options: Some(
                http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
                    http_protocol_options::ExplicitHttpConfig {
                        protocol_config: Some(
                            http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(
                                Http2ProtocolOptions::default(),
                            ),
                        ),
                    },
                ),
            ),
            ..HttpProtocolOptions::default()
        };
        cluster.typed_extension_protocol_options.insert(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".into(),
            any(&options),
        );
    }
    if let Some(tls) = &key.tls {
        cluster.transport_socket = Some(upstream_tls(tls, key.protocol, client_certificate));
    }
    cluster
}

/// TLS to a backend as its BackendTLSPolicy says: SNI, the policy's CA
/// bundle, and the names the certificate must carry (the SNI hostname unless
/// `subjectAltNames` lists others), presenting the Gateway's client
/// certificate if it has one.
fn upstream_tls(
    tls: &BackendTls,
    protocol: UpstreamProtocol,
    client_certificate: Option<&str>,
) -> TransportSocket {
    let exact = |v: &str| StringMatcher {
        match_pattern: Some(string_matcher::MatchPattern::Exact(v.to_string())),
        ..StringMatcher::default()
    };
    let san = |t: subject_alt_name_matcher::SanType, v: &str| SubjectAltNameMatcher {
        san_type: t as i32,
        matcher: Some(exact(v)),
        ..SubjectAltNameMatcher::default()
    };
    let names = if tls.subject_alt_names.is_empty() {
        vec![san(subject_alt_name_matcher::SanType::Dns, &tls.hostname)]
    } else {
        tls.subject_alt_names
            .iter()
            .map(|n| match n {
                SubjectAltName::Dns(v) => san(subject_alt_name_matcher::SanType::Dns, v),
                SubjectAltName::Uri(v) => san(subject_alt_name_matcher::SanType::Uri, v),
            })
            .collect()
    };
    let context = UpstreamTlsContext {
        sni: tls.hostname.clone(),
        common_tls_context: Some(CommonTlsContext {
            alpn_protocols: match protocol {
                UpstreamProtocol::H2c => vec!["h2".into()],
                UpstreamProtocol::Http1 => Vec::new(),
            },
            validation_context_type: Some(
                common_tls_context::ValidationContextType::ValidationContext(
                    CertificateValidationContext {
                        trusted_ca: Some(DataSource {
                            specifier: Some(data_source::Specifier::InlineBytes(
                                tls.ca_pem.clone(),
                            )),
                            ..DataSource::default()
                        }),
                        match_typed_subject_alt_names: names,
                        ..CertificateValidationContext::default()
                    },
                ),
            ),
            tls_certificate_sds_secret_configs: client_certificate
                .map(|name| SdsSecretConfig {
                    name: name.to_string(),
                    sds_config: Some(ads_source()),
                })
                .into_iter()
                .collect(),
            ..CommonTlsContext::default()
        }),
        ..UpstreamTlsContext::default()
    };
    TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(any(&context))),
    }
}

fn named_eds_cluster(name: &str) -> Cluster {
    let name = name.to_string();
    Cluster {
        name: name.clone(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cluster::EdsClusterConfig {
            eds_config: Some(ads_source()),
            service_name: name,
        }),
        connect_timeout: Some(duration(std::time::Duration::from_secs(5))),
        per_connection_buffer_limit_bytes: Some(UInt32Value { value: 32768 }),
        ..Cluster::default()
    }
}

pub fn load_assignment(key: &ClusterKey, endpoints: &[ReadyEndpoint]) -> ClusterLoadAssignment {
    let lb_endpoints = lb_endpoints(endpoints);
    ClusterLoadAssignment {
        cluster_name: key.name.clone(),
        endpoints: if lb_endpoints.is_empty() {
            Vec::new()
        } else {
            vec![LocalityLbEndpoints {
                lb_endpoints,
                ..LocalityLbEndpoints::default()
            }]
        },
        ..ClusterLoadAssignment::default()
    }
}

/// One locality per backend, named after its Service port and weighted.
pub fn weighted_load_assignment(
    name: &str,
    parts: &[(&ClusterKey, u32, Vec<ReadyEndpoint>)],
) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: name.to_string(),
        endpoints: parts
            .iter()
            .filter(|(_, weight, endpoints)| *weight > 0 && !endpoints.is_empty())
            .map(|(key, weight, endpoints)| LocalityLbEndpoints {
                locality: Some(Locality {
                    sub_zone: key.name.clone(),
                    ..Locality::default()
                }),
                lb_endpoints: lb_endpoints(endpoints),
                load_balancing_weight: Some(UInt32Value { value: *weight }),
                ..LocalityLbEndpoints::default()
            })
            .collect(),
        ..ClusterLoadAssignment::default()
    }
}

fn lb_endpoints(endpoints: &[ReadyEndpoint]) -> Vec<LbEndpoint> {
    endpoints
        .iter()
        .map(|e| LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: e.address.to_string(),
                        port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(
                            e.port,
                        ))),
                        ..SocketAddress::default()
                    })),
                }),
                ..Endpoint::default()
            })),
            ..LbEndpoint::default()
        })
        .collect()
}
