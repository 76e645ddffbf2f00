//! Downstream TLS: listener certificates as SDS secrets (served over ADS by
//! name `<namespace>/<secret>`, never inlined in a listener, so a rotated
//! Secret reaches Envoy as a new secret version without touching listeners
//! or draining connections), the TLS context of a terminating filter chain,
//! and the TLS inspector that reads the SNI hostname filter chains match on.

use envoy_types::pb::envoy::config::core::v3::{
    DataSource, TransportSocket, data_source, transport_socket,
};
use envoy_types::pb::envoy::config::listener::v3::{ListenerFilter, listener_filter};
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CommonTlsContext, DownstreamTlsContext, SdsSecretConfig, Secret, TlsCertificate, TlsParameters,
    secret, tls_parameters,
};

use super::{ads_source, any};
use crate::inputs::ObjectKey;

/// The SDS name of a listener certificate Secret.
pub fn secret_name(key: &ObjectKey) -> String {
    format!("{}/{}", key.namespace, key.name)
}

/// The SDS resource of a checked `kubernetes.io/tls` Secret.
pub fn certificate_secret(key: &ObjectKey, chain: &[u8], private_key: &[u8]) -> Secret {
    let inline = |bytes: &[u8]| DataSource {
        specifier: Some(data_source::Specifier::InlineBytes(bytes.to_vec())),
        ..DataSource::default()
    };
    Secret {
        name: secret_name(key),
        r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: Some(inline(chain)),
            private_key: Some(inline(private_key)),
            ..TlsCertificate::default()
        })),
    }
}

/// TLS termination with the listener's certificates, offering `alpn`.
pub fn downstream_tls(certificates: &[ObjectKey], alpn: &[&str]) -> TransportSocket {
    let context = DownstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_params: Some(TlsParameters {
                tls_minimum_protocol_version: tls_parameters::TlsProtocol::TlSv12 as i32,
                ..TlsParameters::default()
            }),
            tls_certificate_sds_secret_configs: certificates
                .iter()
                .map(|key| SdsSecretConfig {
                    name: secret_name(key),
                    sds_config: Some(ads_source()),
                })
                .collect(),
            alpn_protocols: alpn.iter().map(|p| (*p).to_string()).collect(),
            ..CommonTlsContext::default()
        }),
        ..DownstreamTlsContext::default()
    };
    TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(any(&context))),
    }
}

/// Reads the ClientHello so filter chains can match the SNI hostname.
pub fn tls_inspector() -> ListenerFilter {
    ListenerFilter {
        name: "envoy.filters.listener.tls_inspector".into(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(any(
            &TlsInspector::default(),
        ))),
        ..ListenerFilter::default()
    }
}
