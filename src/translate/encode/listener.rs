//! One Envoy Listener per HTTP or HTTPS Gateway port: an HTTP connection
//! manager with edge-safe defaults that takes its routes over RDS. An HTTPS
//! port has one filter chain per Gateway listener, matched on the SNI
//! hostname, each terminating TLS with that listener's certificates and
//! routing with its own route configuration.
//!
//! The edge defaults (ARCHITECTURE.md, "Edge defaults"): nothing the client
//! sends is trusted as control input, paths are normalized and escaped
//! slashes redirected to their unescaped form before routing, header names
//! with underscores are refused, slow or idle clients are cut off, and HTTP/2
//! clients get bounded concurrency and flow-control windows.

use envoy_types::pb::envoy::config::accesslog::v3::{AccessLog, access_log};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{
    Address, Http2ProtocolOptions, HttpProtocolOptions, SocketAddress, address,
    http_protocol_options, socket_address,
};
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter, filter,
};
use envoy_types::pb::envoy::extensions::access_loggers::stream::v3::StdoutAccessLog;
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::Cors;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager, http_filter,
};
use envoy_types::pb::google::protobuf::{BoolValue, UInt32Value};

use super::{ads_source, any, duration, tls};
use crate::inputs::ObjectKey;
use crate::translate::index::client_validation::ClientValidation;

/// Listener and route configuration names for an HTTP Gateway port.
pub fn name_for_port(port: i32) -> String {
    format!("http-{port}")
}

/// The Envoy listener name of an HTTPS Gateway port.
pub fn https_name(port: i32) -> String {
    format!("https-{port}")
}

/// The route configuration of one HTTPS Gateway listener.
pub fn https_route_name(port: i32, listener: &str) -> String {
    format!("https-{port}-{listener}")
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
    let chain = FilterChain {
        filters: vec![hcm_filter(&name, &name)],
        ..FilterChain::default()
    };
    socket_listener(name, address, container_port, vec![chain], Vec::new())
}

/// One chain of an HTTPS port: a Gateway listener, its hostname (no SNI
/// match when it has none), its certificates and how it checks client
/// certificates.
pub struct HttpsChain<'a> {
    pub listener: &'a str,
    pub hostname: Option<&'a str>,
    pub certificates: &'a [ObjectKey],
    pub client_validation: Option<&'a ClientValidation>,
}

pub fn https_listener(
    port: i32,
    address: &str,
    container_port: u32,
    chains: &[HttpsChain<'_>],
) -> Listener {
    let chains = chains
        .iter()
        .map(|c| {
            let routes = https_route_name(port, c.listener);
            FilterChain {
                name: routes.clone(),
                filter_chain_match: c.hostname.map(|h| FilterChainMatch {
                    server_names: vec![h.to_string()],
                    ..FilterChainMatch::default()
                }),
                filters: vec![hcm_filter(&routes, &routes)],
                transport_socket: Some(tls::downstream_tls(
                    c.certificates,
                    c.client_validation,
                    &["h2", "http/1.1"],
                )),
                ..FilterChain::default()
            }
        })
        .collect();
    socket_listener(
        https_name(port),
        address,
        container_port,
        chains,
        vec![tls::tls_inspector()],
    )
}

/// A TCP listener on `address:container_port`.
pub fn socket_listener(
    name: String,
    address: &str,
    container_port: u32,
    filter_chains: Vec<FilterChain>,
    listener_filters: Vec<ListenerFilter>,
) -> Listener {
    Listener {
        name,
        address: Some(socket_address(address, container_port, false)),
        per_connection_buffer_limit_bytes: Some(UInt32Value { value: 32768 }),
        filter_chains,
        listener_filters,
        ..Listener::default()
    }
}

pub fn socket_address(address: &str, port: u32, udp: bool) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: address.to_string(),
            protocol: if udp {
                socket_address::Protocol::Udp as i32
            } else {
                socket_address::Protocol::Tcp as i32
            },
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
            ..SocketAddress::default()
        })),
    }
}

/// How long a client may take to send a request's headers, from its first
/// byte (slowloris clients hold connections otherwise).
pub const REQUEST_HEADERS_TIMEOUT: Duration = Duration::from_secs(10);
/// A stream with no bytes either way for this long is reset (Envoy's own
/// default, written out so it does not change under portico's feet).
pub const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// A connection without streams for this long is closed.
pub const CONNECTION_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Concurrent streams an HTTP/2 client may open on one connection.
pub const HTTP2_MAX_CONCURRENT_STREAMS: u32 = 100;
/// HTTP/2 flow-control windows: per stream, and per connection. They bound
/// what one client can make Envoy buffer.
pub const HTTP2_STREAM_WINDOW: u32 = 64 * 1024;
pub const HTTP2_CONNECTION_WINDOW: u32 = 1024 * 1024;

/// The HTTP connection manager, routing with RDS configuration `routes`.
fn hcm_filter(stat_prefix: &str, routes: &str) -> Filter {
    let hcm = HttpConnectionManager {
        stat_prefix: stat_prefix.to_string(),
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
            config_source: Some(ads_source()),
            route_config_name: routes.to_string(),
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
        // WebSocket upgrades pass to any backend that accepts them
        // (`appProtocol: kubernetes.io/ws` backends among them).
        upgrade_configs: vec![http_connection_manager::UpgradeConfig {
            upgrade_type: "websocket".into(),
            ..http_connection_manager::UpgradeConfig::default()
        }],
        normalize_path: Some(BoolValue { value: true }),
        merge_slashes: true,
        // `/admin%2Fx` would otherwise miss a route for `/admin/` and reach a
        // backend that decodes it as `/admin/x`: the client is redirected to
        // the unescaped path, which routes like any other.
        path_with_escaped_slashes_action:
            http_connection_manager::PathWithEscapedSlashesAction::UnescapeAndRedirect as i32,
        common_http_protocol_options: Some(HttpProtocolOptions {
            // Backends (CGI, many frameworks) read `x_foo` and `x-foo` as one
            // header; such names could slip past a header match or a removal.
            headers_with_underscores_action:
                http_protocol_options::HeadersWithUnderscoresAction::RejectRequest as i32,
            idle_timeout: Some(duration(CONNECTION_IDLE_TIMEOUT)),
            ..HttpProtocolOptions::default()
        }),
        request_headers_timeout: Some(duration(REQUEST_HEADERS_TIMEOUT)),
        stream_idle_timeout: Some(duration(STREAM_IDLE_TIMEOUT)),
        http2_protocol_options: Some(Http2ProtocolOptions {
            max_concurrent_streams: Some(UInt32Value {
                value: HTTP2_MAX_CONCURRENT_STREAMS,
            }),
            initial_stream_window_size: Some(UInt32Value {
                value: HTTP2_STREAM_WINDOW,
            }),
            initial_connection_window_size: Some(UInt32Value {
                value: HTTP2_CONNECTION_WINDOW,
            }),
            ..Http2ProtocolOptions::default()
        }),
        access_log: vec![AccessLog {
            name: "envoy.access_loggers.stdout".into(),
            config_type: Some(access_log::ConfigType::TypedConfig(any(
                &StdoutAccessLog::default(),
            ))),
            ..AccessLog::default()
        }],
        ..HttpConnectionManager::default()
    };
    Filter {
        name: "envoy.filters.network.http_connection_manager".into(),
        config_type: Some(filter::ConfigType::TypedConfig(any(&hcm))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::http_protocol_options::HeadersWithUnderscoresAction;
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::PathWithEscapedSlashesAction;
    use prost::Message;

    fn hcm_of(listener: &Listener) -> Vec<HttpConnectionManager> {
        listener
            .filter_chains
            .iter()
            .flat_map(|c| &c.filters)
            .filter_map(|f| match &f.config_type {
                Some(filter::ConfigType::TypedConfig(any)) => {
                    HttpConnectionManager::decode(any.value.as_slice()).ok()
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn every_connection_manager_has_the_edge_defaults() {
        let certificates = [ObjectKey::new("default", "cert")];
        let chains = [
            HttpsChain {
                listener: "a",
                hostname: Some("a.example.com"),
                certificates: &certificates,
                client_validation: None,
            },
            HttpsChain {
                listener: "b",
                hostname: None,
                certificates: &certificates,
                client_validation: None,
            },
        ];
        let listeners = [
            http_listener(80, "0.0.0.0", 10080),
            https_listener(443, "0.0.0.0", 10443, &chains),
        ];
        let all: Vec<HttpConnectionManager> = listeners.iter().flat_map(hcm_of).collect();
        assert_eq!(all.len(), 3);
        for hcm in all {
            assert_eq!(
                hcm.path_with_escaped_slashes_action,
                PathWithEscapedSlashesAction::UnescapeAndRedirect as i32
            );
            let common = hcm.common_http_protocol_options.expect("common options");
            assert_eq!(
                common.headers_with_underscores_action,
                HeadersWithUnderscoresAction::RejectRequest as i32
            );
            assert_eq!(common.idle_timeout, Some(duration(CONNECTION_IDLE_TIMEOUT)));
            assert_eq!(
                hcm.request_headers_timeout,
                Some(duration(Duration::from_secs(10)))
            );
            assert_eq!(
                hcm.stream_idle_timeout,
                Some(duration(Duration::from_secs(300)))
            );
            let h2 = hcm.http2_protocol_options.expect("HTTP/2 options");
            assert_eq!(h2.max_concurrent_streams, Some(UInt32Value { value: 100 }));
            assert_eq!(
                h2.initial_stream_window_size,
                Some(UInt32Value { value: 65536 })
            );
            assert_eq!(
                h2.initial_connection_window_size,
                Some(UInt32Value { value: 1 << 20 })
            );
        }
    }
}
