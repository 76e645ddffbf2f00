//! Listeners that proxy streams and datagrams rather than HTTP: TLS ports
//! (one filter chain per SNI hostname, passing TLS through or terminating
//! it), TCP ports (one chain for the port's route) and UDP ports (a UDP
//! proxy). Weighted backends become TCP proxy weighted clusters; a backend
//! that did not resolve keeps its share, and those connections are closed.

use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter, UdpListenerConfig, filter,
    listener_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use envoy_types::pb::envoy::extensions::filters::udp::udp_proxy::v3::{
    Route as UdpRoute, UdpProxyConfig, udp_proxy_config,
};
use envoy_types::pb::xds::core::v3::TypedExtensionConfig;
use envoy_types::pb::xds::r#type::matcher::v3::{Matcher, matcher};

use super::listener::{socket_address, socket_listener};
use super::route::INVALID_BACKEND;
use super::{any, tls};
use crate::inputs::ObjectKey;
use crate::translate::compile::l4::L4Backend;

pub fn tls_name(port: i32) -> String {
    format!("tls-{port}")
}

pub fn tcp_name(port: i32) -> String {
    format!("tcp-{port}")
}

pub fn udp_name(port: i32) -> String {
    format!("udp-{port}")
}

/// One filter chain of a TLS port: the SNI hostnames it matches (`*` alone
/// matches any, and connections without SNI), the certificates when Envoy
/// terminates TLS (none for passthrough), and the route's backends.
pub struct TlsChain<'a> {
    pub name: String,
    pub server_names: Vec<String>,
    pub certificates: &'a [ObjectKey],
    pub backends: &'a [L4Backend],
}

pub fn tls_listener(
    port: i32,
    address: &str,
    container_port: u32,
    chains: &[TlsChain<'_>],
) -> Listener {
    let chains = chains
        .iter()
        .map(|c| {
            let names: Vec<String> = c
                .server_names
                .iter()
                .filter(|h| h.as_str() != "*")
                .cloned()
                .collect();
            FilterChain {
                name: c.name.clone(),
                filter_chain_match: (!names.is_empty()).then(|| FilterChainMatch {
                    server_names: names,
                    ..FilterChainMatch::default()
                }),
                filters: vec![tcp_proxy(&c.name, c.backends)],
                transport_socket: (!c.certificates.is_empty())
                    .then(|| tls::downstream_tls(c.certificates, None, &[])),
                ..FilterChain::default()
            }
        })
        .collect();
    socket_listener(
        tls_name(port),
        address,
        container_port,
        chains,
        vec![tls::tls_inspector()],
    )
}

pub fn tcp_listener(
    port: i32,
    address: &str,
    container_port: u32,
    backends: &[L4Backend],
) -> Listener {
    let name = tcp_name(port);
    let chain = FilterChain {
        filters: vec![tcp_proxy(&name, backends)],
        ..FilterChain::default()
    };
    socket_listener(name, address, container_port, vec![chain], Vec::new())
}

fn cluster_name(b: &L4Backend) -> String {
    b.cluster
        .as_ref()
        .map_or_else(|| INVALID_BACKEND.to_string(), |c| c.name.clone())
}

fn tcp_proxy(stat_prefix: &str, backends: &[L4Backend]) -> Filter {
    let live: Vec<&L4Backend> = backends.iter().filter(|b| b.weight > 0).collect();
    let specifier = match live.as_slice() {
        [one] => tcp_proxy::ClusterSpecifier::Cluster(cluster_name(one)),
        // All weights zero: nothing may be reached.
        [] => tcp_proxy::ClusterSpecifier::Cluster(INVALID_BACKEND.to_string()),
        many => tcp_proxy::ClusterSpecifier::WeightedClusters(tcp_proxy::WeightedCluster {
            clusters: many
                .iter()
                .map(|b| tcp_proxy::weighted_cluster::ClusterWeight {
                    name: cluster_name(b),
                    weight: b.weight,
                    ..Default::default()
                })
                .collect(),
        }),
    };
    let proxy = TcpProxy {
        stat_prefix: stat_prefix.to_string(),
        cluster_specifier: Some(specifier),
        ..TcpProxy::default()
    };
    Filter {
        name: "envoy.filters.network.tcp_proxy".into(),
        config_type: Some(filter::ConfigType::TypedConfig(any(&proxy))),
    }
}

/// A UDP port forwarding every datagram session to `cluster`.
pub fn udp_listener(port: i32, address: &str, container_port: u32, cluster: &str) -> Listener {
    let name = udp_name(port);
    let route = TypedExtensionConfig {
        name: "route".into(),
        typed_config: Some(any(&UdpRoute {
            cluster: cluster.to_string(),
        })),
    };
    let proxy = UdpProxyConfig {
        stat_prefix: name.clone(),
        route_specifier: Some(udp_proxy_config::RouteSpecifier::Matcher(Matcher {
            on_no_match: Some(Box::new(matcher::OnMatch {
                on_match: Some(matcher::on_match::OnMatch::Action(route)),
                ..matcher::OnMatch::default()
            })),
            ..Matcher::default()
        })),
        ..UdpProxyConfig::default()
    };
    Listener {
        name,
        address: Some(socket_address(address, container_port, true)),
        udp_listener_config: Some(UdpListenerConfig::default()),
        listener_filters: vec![ListenerFilter {
            name: "envoy.filters.udp_listener.udp_proxy".into(),
            config_type: Some(listener_filter::ConfigType::TypedConfig(any(&proxy))),
            ..ListenerFilter::default()
        }],
        ..Listener::default()
    }
}
