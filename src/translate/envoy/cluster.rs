//! Clusters and their endpoints: one EDS cluster per backend Service port, and
//! the ClusterLoadAssignment listing the ready endpoints of that port.

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address, socket_address};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::google::protobuf::UInt32Value;

use super::{ads_source, duration};
use crate::translate::backends::ClusterKey;
use crate::translate::endpoints::Endpoint as ReadyEndpoint;

pub fn eds_cluster(key: &ClusterKey) -> Cluster {
    let name = key.name.clone();
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
    let lb_endpoints = endpoints
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
        .collect::<Vec<_>>();
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
