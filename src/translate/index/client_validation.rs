//! Frontend client certificate validation (`Gateway.spec.tls.frontend`): the
//! CA bundle an HTTPS listener checks client certificates against, taken from
//! the `perPort` entry of the listener's port or else from `default`. CA
//! references are core ConfigMaps holding a PEM `ca.crt`, in the Gateway's
//! namespace or, through a ReferenceGrant, in another. Each bundle is parsed
//! before Envoy sees it; a listener none of whose references yields a CA is
//! not accepted (`NoValidCACertificate`), since serving it without the check
//! would let every client in.
//!
//! In: the Gateway, the listener's port, `Inputs`. Out: the validation a
//! listener applies, or the listener condition reasons and messages.

use gateway_api::experimental::gateways::{
    Gateway, GatewayTlsFrontendDefaultValidationMode, GatewayTlsFrontendPerPortTlsValidationMode,
};

use crate::identity::GATEWAY_GROUP;
use crate::inputs::{Inputs, ObjectKey};
use crate::translate::conditions::spec;
use crate::translate::grants::{Referrer, grant_allows};
use crate::translate::trust::check_ca;

/// How an HTTPS listener checks client certificates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientValidation {
    /// PEM bundle of every valid CA reference, concatenated.
    pub trusted_ca: Vec<u8>,
    /// `AllowInsecureFallback`: a client without a certificate, or with one
    /// the CAs do not sign, is served anyway.
    pub insecure_fallback: bool,
}

/// One problem with a CA reference: the listener `ResolvedRefs` reason and a
/// message naming the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaProblem {
    pub reason: &'static str,
    pub message: String,
}

/// What the Gateway asks of a listener on `port`, resolved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    pub validation: Option<ClientValidation>,
    pub problems: Vec<CaProblem>,
    /// Some references were given but none yields a CA.
    pub no_valid_ca: bool,
}

/// A CA reference with the default and per-port types made one.
struct CaRef<'a> {
    group: &'a str,
    kind: &'a str,
    name: &'a str,
    namespace: Option<&'a str>,
}

/// The CA references of a validation block and whether it allows insecure
/// fallback (the default and per-port blocks are distinct generated types
/// with the same fields).
macro_rules! validation_of {
    ($v:expr, $insecure:path) => {{
        let v = $v;
        let refs: Vec<CaRef<'_>> = v
            .ca_certificate_refs
            .iter()
            .map(|r| CaRef {
                group: &r.group,
                kind: &r.kind,
                name: &r.name,
                namespace: r.namespace.as_deref(),
            })
            .collect();
        (refs, matches!(v.mode, Some($insecure)))
    }};
}

/// The validation for an HTTPS listener on `port` of `gateway`; `None` when
/// the Gateway asks for none.
pub fn for_port(inputs: &Inputs, gateway: &Gateway, port: i32) -> Option<Resolved> {
    let frontend = gateway.spec.tls.as_ref()?.frontend.as_ref()?;
    let per_port = frontend
        .per_port
        .iter()
        .flatten()
        .enumerate()
        .find(|(_, p)| p.port == port);
    let (field, (refs, insecure)) = match per_port {
        Some((i, p)) => (
            format!("spec.tls.frontend.perPort[{i}].tls.validation.caCertificateRefs"),
            validation_of!(
                p.tls.validation.as_ref()?,
                GatewayTlsFrontendPerPortTlsValidationMode::AllowInsecureFallback
            ),
        ),
        None => (
            "spec.tls.frontend.default.validation.caCertificateRefs".to_string(),
            validation_of!(
                frontend.default.validation.as_ref()?,
                GatewayTlsFrontendDefaultValidationMode::AllowInsecureFallback
            ),
        ),
    };
    let namespace = gateway.metadata.namespace.as_deref().unwrap_or_default();
    Some(resolve(inputs, namespace, &field, &refs, insecure))
}

/// Whether any part of `spec.tls.frontend` allows insecure fallback (the
/// Gateway then carries `InsecureFrontendValidationMode=True`).
pub fn allows_insecure_fallback(gateway: &Gateway) -> bool {
    let Some(frontend) = gateway.spec.tls.as_ref().and_then(|t| t.frontend.as_ref()) else {
        return false;
    };
    let default = frontend.default.validation.as_ref().is_some_and(|v| {
        matches!(
            v.mode,
            Some(GatewayTlsFrontendDefaultValidationMode::AllowInsecureFallback)
        )
    });
    default
        || frontend.per_port.iter().flatten().any(|p| {
            p.tls.validation.as_ref().is_some_and(|v| {
                matches!(
                    v.mode,
                    Some(GatewayTlsFrontendPerPortTlsValidationMode::AllowInsecureFallback)
                )
            })
        })
}

fn resolve(
    inputs: &Inputs,
    gateway_namespace: &str,
    field: &str,
    refs: &[CaRef<'_>],
    insecure_fallback: bool,
) -> Resolved {
    let mut trusted_ca = Vec::new();
    let mut problems = Vec::new();
    for (i, r) in refs.iter().enumerate() {
        let field = format!("{field}[{i}]");
        match resolve_one(inputs, gateway_namespace, &field, r) {
            Ok(pem) => {
                trusted_ca.extend_from_slice(pem.as_bytes());
                if !pem.ends_with('\n') {
                    trusted_ca.push(b'\n');
                }
            }
            Err(p) => problems.push(p),
        }
    }
    if trusted_ca.is_empty() {
        return Resolved {
            validation: None,
            problems,
            no_valid_ca: true,
        };
    }
    Resolved {
        validation: Some(ClientValidation {
            trusted_ca,
            insecure_fallback,
        }),
        problems,
        no_valid_ca: false,
    }
}

fn resolve_one<'i>(
    inputs: &'i Inputs,
    gateway_namespace: &str,
    field: &str,
    r: &CaRef<'_>,
) -> Result<&'i str, CaProblem> {
    if !(r.group.is_empty() || r.group == "core") || r.kind != "ConfigMap" {
        return Err(CaProblem {
            reason: spec::INVALID_CA_CERTIFICATE_KIND,
            message: format!(
                "{field}: kind {}{} is not supported; only core ConfigMaps are",
                r.kind,
                if r.group.is_empty() {
                    String::new()
                } else {
                    format!(" of group {}", r.group)
                }
            ),
        });
    }
    let namespace = r.namespace.unwrap_or(gateway_namespace);
    let gateway = Referrer {
        group: GATEWAY_GROUP,
        kind: "Gateway",
        namespace: gateway_namespace,
    };
    if namespace != gateway_namespace
        && !grant_allows(inputs, gateway, namespace, "", "ConfigMap", r.name)
    {
        return Err(CaProblem {
            reason: spec::REF_NOT_PERMITTED,
            message: format!(
                "{field}: no ReferenceGrant in namespace {namespace} allows Gateways from namespace {gateway_namespace} to use ConfigMap {}",
                r.name
            ),
        });
    }
    let key = ObjectKey::new(namespace, r.name);
    let invalid = |message: String| CaProblem {
        reason: spec::INVALID_CA_CERTIFICATE_REF,
        message: format!("{field}: ConfigMap {key} {message}"),
    };
    let pem = inputs
        .config_maps
        .get(&key)
        .ok_or_else(|| invalid("not found".into()))?
        .data
        .as_ref()
        .and_then(|d| d.get("ca.crt"))
        .ok_or_else(|| invalid("has no key ca.crt".into()))?;
    check_ca(pem).map_err(|e| invalid(format!("ca.crt: {e}")))?;
    Ok(pem)
}
