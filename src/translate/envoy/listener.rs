//! One Envoy Listener per Gateway port: an HTTP connection manager with
//! edge-safe defaults that takes its routes over RDS.

use envoy_types::pb::envoy::config::accesslog::v3::{AccessLog, access_log};
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address, socket_address};
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use envoy_types::pb::envoy::extensions::access_loggers::stream::v3::StdoutAccessLog;
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::Cors;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager, http_filter,
};
use envoy_types::pb::google::protobuf::{BoolValue, UInt32Value};

use super::{ads_source, any};

/// Listener and route configuration names for a Gateway port.
pub fn name_for_port(port: i32) -> String {
    format!("http-{port}")
}

fn http_filter<M: prost::Message + prost::Name>(name: &str, config: &M) -> HttpFilter {
    HttpFilter {
        name: name.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(any(config))),
        ..HttpFilter::default()
    }
}

pub fn http_listener(port: i32, address: &str, container_port: u32) -> Listener {
    let name = name_for_port(port);
    let hcm = HttpConnectionManager {
        stat_prefix: name.clone(),
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
            config_source: Some(ads_source()),
            route_config_name: name.clone(),
        })),
        http_filters: vec![
            http_filter("envoy.filters.http.cors", &Cors::default()),
            http_filter(
                "envoy.filters.http.router",
                &Router {
                    suppress_envoy_headers: true,
                    ..Router::default()
                },
            ),
        ],
        // The client address is the one Envoy sees; nothing from the client is
        // trusted, and no peer counts as internal, so client-sent x-envoy-*
        // control headers are stripped.
        use_remote_address: Some(BoolValue { value: true }),
        xff_num_trusted_hops: 0,
        internal_address_config: Some(http_connection_manager::InternalAddressConfig::default()),
        // Envoy adds no `server` header of its own; a route may remove the
        // backend's.
        server_header_transformation:
            http_connection_manager::ServerHeaderTransformation::PassThrough as i32,
        normalize_path: Some(BoolValue { value: true }),
        merge_slashes: true,
        strip_port_mode: Some(http_connection_manager::StripPortMode::StripAnyHostPort(
            true,
        )),
        access_log: vec![AccessLog {
            name: "envoy.access_loggers.stdout".into(),
            config_type: Some(access_log::ConfigType::TypedConfig(any(
                &StdoutAccessLog::default(),
            ))),
            ..AccessLog::default()
        }],
        ..HttpConnectionManager::default()
    };
    Listener {
        name,
        address: Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: address.to_string(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(container_port)),
                ..SocketAddress::default()
            })),
        }),
        per_connection_buffer_limit_bytes: Some(UInt32Value { value: 32768 }),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(filter::ConfigType::TypedConfig(any(&hcm))),
            }],
            ..FilterChain::default()
        }],
        ..Listener::default()
    }
}
