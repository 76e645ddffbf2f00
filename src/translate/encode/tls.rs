//! Downstream TLS: listener certificates as SDS secrets (served over ADS by
//! name `<namespace>/<secret>`, never inlined in a listener, so a rotated
//! Secret reaches Envoy as a new secret version without touching listeners
//! or draining connections), the TLS context of a terminating filter chain
//! (with client certificate validation when the Gateway asks for it: the CA
//! bundle inline, a certificate required unless insecure fallback is
//! allowed), and the TLS inspector that reads the SNI hostname filter chains
//! match on.

use envoy_types::pb::envoy::config::core::v3::{
    DataSource, TransportSocket, data_source, transport_socket,
};
use envoy_types::pb::envoy::config::listener::v3::{ListenerFilter, listener_filter};
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, SdsSecretConfig, Secret,
    TlsCertificate, TlsParameters, certificate_validation_context, common_tls_context, secret,
    tls_parameters,
};
use envoy_types::pb::google::protobuf::BoolValue;

use super::{ads_source, any};
use crate::inputs::ObjectKey;
use crate::translate::index::client_validation::ClientValidation;

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

/// TLS termination with the listener's certificates, offering `alpn`, and
/// checking client certificates when `validation` is given.
pub fn downstream_tls(
    certificates: &[ObjectKey],
    validation: Option<&ClientValidation>,
    alpn: &[&str],
) -> TransportSocket {
    let validation_context = validation.map(|v| {
        common_tls_context::ValidationContextType::ValidationContext(CertificateValidationContext {
            trusted_ca: Some(DataSource {
                specifier: Some(data_source::Specifier::InlineBytes(v.trusted_ca.clone())),
                ..DataSource::default()
            }),
            trust_chain_verification: if v.insecure_fallback {
                certificate_validation_context::TrustChainVerification::AcceptUntrusted
            } else {
                certificate_validation_context::TrustChainVerification::VerifyTrustChain
            } as i32,
            ..CertificateValidationContext::default()
        })
    });
    let require_client_certificate = validation
        .is_some_and(|v| !v.insecure_fallback)
        .then_some(BoolValue { value: true });
    let context = DownstreamTlsContext {
        require_client_certificate,
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
            validation_context_type: validation_context,
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
