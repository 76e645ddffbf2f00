//! Listener certificates: a listener's `tls.certificateRefs` resolved to
//! `kubernetes.io/tls` Secrets, a Secret in another namespace only through a
//! ReferenceGrant, and each Secret checked (a PEM certificate chain and the
//! private key that belongs to its first certificate) before Envoy ever sees
//! it, so a bad Secret is reported on its listener instead of being NACKed.
//!
//! The Gateway's client certificate for TLS to backends
//! (`spec.tls.backend.clientCertificateRef`) is checked the same way.
//!
//! In: the references and `Inputs`. Out: the Secrets a listener serves (their
//! keys are the SDS resource names) and, per bad reference, the listener
//! condition reason and a message naming it.

use gateway_api::experimental::gateways::{
    GatewayListenersTlsCertificateRefs, GatewayTlsBackendClientCertificateRef,
};
use k8s_openapi::api::core::v1::Secret;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::identity::GATEWAY_GROUP;
use crate::inputs::{Inputs, ObjectKey};
use crate::translate::conditions::spec;
use crate::translate::grants::{Referrer, grant_allows};

/// Why one certificate reference is not served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateError {
    pub reason: &'static str,
    pub message: String,
}

/// The Secrets of a listener's references that can be served, in reference
/// order, and the problems with the others. `kind` is the kind of the object
/// declaring the listener (`Gateway` or `ListenerSet`), in `namespace`: a
/// ReferenceGrant must name that kind for a Secret elsewhere.
pub fn resolve(
    inputs: &Inputs,
    kind: &str,
    namespace: &str,
    field: &str,
    refs: &[GatewayListenersTlsCertificateRefs],
) -> (Vec<ObjectKey>, Vec<CertificateError>) {
    let mut served = Vec::new();
    let mut errors = Vec::new();
    let from = Referrer {
        group: GATEWAY_GROUP,
        kind,
        namespace,
    };
    for (i, r) in refs.iter().enumerate() {
        let field = format!("{field}[{i}]");
        match resolve_one(inputs, &from, &field, &r.into()) {
            Ok(key) if !served.contains(&key) => served.push(key),
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
    }
    (served, errors)
}

/// A reference to a certificate Secret, whichever field it comes from.
pub struct SecretRef<'a> {
    pub group: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub name: &'a str,
    pub namespace: Option<&'a str>,
}

impl<'a> From<&'a GatewayListenersTlsCertificateRefs> for SecretRef<'a> {
    fn from(r: &'a GatewayListenersTlsCertificateRefs) -> Self {
        Self {
            group: r.group.as_deref(),
            kind: r.kind.as_deref(),
            name: &r.name,
            namespace: r.namespace.as_deref(),
        }
    }
}

/// The Gateway's client certificate for backends
/// (`spec.tls.backend.clientCertificateRef`), checked like a listener
/// certificate; a bad one is reported with the Gateway condition reasons.
pub fn resolve_backend_client(
    inputs: &Inputs,
    gateway_namespace: &str,
    r: &GatewayTlsBackendClientCertificateRef,
) -> Result<ObjectKey, CertificateError> {
    let r = SecretRef {
        group: r.group.as_deref(),
        kind: r.kind.as_deref(),
        name: &r.name,
        namespace: r.namespace.as_deref(),
    };
    let field = "spec.tls.backend.clientCertificateRef";
    let from = Referrer {
        group: GATEWAY_GROUP,
        kind: "Gateway",
        namespace: gateway_namespace,
    };
    resolve_one(inputs, &from, field, &r).map_err(|e| CertificateError {
        reason: if e.reason == spec::REF_NOT_PERMITTED {
            spec::REF_NOT_PERMITTED
        } else {
            spec::INVALID_CLIENT_CERTIFICATE_REF
        },
        message: e.message,
    })
}

fn resolve_one(
    inputs: &Inputs,
    from: &Referrer<'_>,
    field: &str,
    r: &SecretRef<'_>,
) -> Result<ObjectKey, CertificateError> {
    let invalid = |message: String| CertificateError {
        reason: spec::INVALID_CERTIFICATE_REF,
        message: format!("{field}: {message}"),
    };
    let group = r.group.unwrap_or("");
    let kind = r.kind.unwrap_or("Secret");
    if !(group.is_empty() || group == "core") || kind != "Secret" {
        return Err(invalid(format!(
            "kind {kind}{} is not supported; only core Secrets are",
            if group.is_empty() {
                String::new()
            } else {
                format!(" of group {group}")
            }
        )));
    }
    let namespace = r.namespace.unwrap_or(from.namespace);
    if namespace != from.namespace && !grant_allows(inputs, *from, namespace, "", "Secret", r.name)
    {
        return Err(CertificateError {
            reason: spec::REF_NOT_PERMITTED,
            message: format!(
                "{field}: no ReferenceGrant in namespace {namespace} allows {}s from namespace {} to use Secret {}",
                from.kind, from.namespace, r.name
            ),
        });
    }
    let key = ObjectKey::new(namespace, r.name);
    let secret = inputs
        .secrets
        .get(&key)
        .ok_or_else(|| invalid(format!("Secret {key} not found")))?;
    check(secret).map_err(|e| invalid(format!("Secret {key}: {e}")))?;
    Ok(key)
}

/// The certificate chain and key of a Secret, as PEM bytes.
pub fn pem_pair(secret: &Secret) -> Option<(&[u8], &[u8])> {
    let data = secret.data.as_ref()?;
    Some((&data.get("tls.crt")?.0, &data.get("tls.key")?.0))
}

/// Whether Envoy can serve the Secret: type `kubernetes.io/tls`, a PEM chain
/// in `tls.crt`, and in `tls.key` a PEM private key matching the first
/// certificate.
pub fn check(secret: &Secret) -> Result<(), String> {
    let kind = secret.type_.as_deref().unwrap_or("Opaque");
    if kind != "kubernetes.io/tls" {
        return Err(format!("type is {kind:?}, not \"kubernetes.io/tls\""));
    }
    let (crt, key) = pem_pair(secret).ok_or("data must hold tls.crt and tls.key")?;
    let chain = CertificateDer::pem_slice_iter(crt)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls.crt is not PEM: {e}"))?;
    let Some(leaf) = chain.first() else {
        return Err("tls.crt holds no certificate".into());
    };
    for (i, c) in chain.iter().enumerate() {
        x509_parser::parse_x509_certificate(c)
            .map_err(|e| format!("tls.crt certificate {}: {e}", i + 1))?;
    }
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| format!("tls.key: {e}"))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| format!("tls.key: {e}"))?;
    let certified = rustls::sign::CertifiedKey::new(vec![leaf.clone()], signer);
    certified
        .keys_match()
        .map_err(|_| "tls.key does not match the first certificate of tls.crt".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn secret(kind: &str, crt: &str, key: &str) -> Secret {
        Secret {
            type_: Some(kind.into()),
            data: Some(
                [
                    ("tls.crt".to_string(), ByteString(crt.as_bytes().to_vec())),
                    ("tls.key".to_string(), ByteString(key.as_bytes().to_vec())),
                ]
                .into(),
            ),
            ..Secret::default()
        }
    }

    fn pair(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec![name.to_string()]).expect("params");
        let cert = params.self_signed(&key).expect("cert");
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn accepts_a_matching_pair_and_names_what_is_wrong_otherwise() {
        let (crt, key) = pair("a.example.com");
        let (_, other_key) = pair("b.example.com");
        assert_eq!(check(&secret("kubernetes.io/tls", &crt, &key)), Ok(()));
        let wrong_type = check(&secret("Opaque", &crt, &key)).expect_err("type");
        assert!(wrong_type.contains("Opaque"), "{wrong_type}");
        let mismatch = check(&secret("kubernetes.io/tls", &crt, &other_key)).expect_err("pair");
        assert!(mismatch.contains("does not match"), "{mismatch}");
        let garbage = check(&secret("kubernetes.io/tls", "not pem", &key)).expect_err("pem");
        assert!(garbage.contains("tls.crt"), "{garbage}");
        let no_key = check(&secret("kubernetes.io/tls", &crt, "")).expect_err("key");
        assert!(no_key.contains("tls.key"), "{no_key}");
    }
}
