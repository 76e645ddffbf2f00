//! BackendTLSPolicies: which Service ports Envoy reaches over TLS, with the
//! CA and names it checks. Each policy is validated (CA ConfigMaps holding a
//! PEM `ca.crt`, SAN entries); of the policies targeting the same Service
//! and sectionName, the oldest wins and the others are `Conflicted`.
//!
//! In: `Inputs`. Out: per targeted Service (and port name, if the targetRef
//! has a sectionName) the `BackendTls` settings, or `Refused` when the policy
//! has no valid CA certificate (connections then fail with a 5xx, as the
//! specification requires), plus each policy's conditions, which become
//! `status.ancestors` entries for the Gateways whose routes use the Service.

use std::collections::BTreeMap;
use std::sync::Arc;

use gateway_api::apis::standard::backendtlspolicies::{
    BackendTlsPolicy, BackendTlsPolicyValidationSubjectAltNamesType,
};

use crate::inputs::{Inputs, ObjectKey};
use crate::translate::conditions::{Conditions, spec};
use crate::translate::control_chars::check_text;
use crate::translate::field_path::FieldPath;
use crate::translate::hostnames;
pub use crate::translate::trust::check_ca;

/// What Envoy checks when it connects to a backend over TLS.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackendTls {
    /// The policy these settings come from.
    pub policy: ObjectKey,
    /// Sent as SNI; the backend's certificate must name it unless
    /// `subject_alt_names` is set.
    pub hostname: String,
    /// PEM CA bundle (every valid `ca.crt`, concatenated).
    pub ca_pem: Vec<u8>,
    pub subject_alt_names: Vec<SubjectAltName>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SubjectAltName {
    Dns(String),
    Uri(String),
}

/// How a policy says a Service port is reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyTarget {
    Tls(Arc<BackendTls>),
    /// The policy has no valid CA certificate: connections must fail.
    Refused(ObjectKey),
}

/// Every policy's verdict and the Service ports they cover.
#[derive(Debug, Default)]
pub struct BackendTlsIndex {
    /// (Service, port name or None for every port) -> how to reach it.
    targets: BTreeMap<(ObjectKey, Option<String>), PolicyTarget>,
    /// Per policy: its conditions and the Services it targets.
    pub policies: BTreeMap<ObjectKey, PolicyVerdict>,
}

#[derive(Debug)]
pub struct PolicyVerdict {
    pub conditions: Conditions,
    pub services: Vec<ObjectKey>,
}

impl BackendTlsIndex {
    pub fn build(inputs: &Inputs) -> Self {
        let mut policies: Vec<&Arc<BackendTlsPolicy>> =
            inputs.backend_tls_policies.values().collect();
        policies.sort_by(|a, b| {
            let created = |p: &BackendTlsPolicy| p.metadata.creation_timestamp.clone();
            match (created(a), created(b)) {
                (Some(x), Some(y)) => x.cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            }
            .then_with(|| ObjectKey::of(a.as_ref()).cmp(&ObjectKey::of(b.as_ref())))
        });
        let mut index = Self::default();
        for policy in policies {
            let key = ObjectKey::of(policy.as_ref());
            let (upstream, mut conditions) = validate(inputs, &key, policy);
            let mut services = Vec::new();
            let mut conflicted = None;
            let mut unsupported = None;
            for (i, t) in policy.spec.target_refs.iter().enumerate() {
                if !(t.group.is_empty() || t.group == "core") || t.kind != "Service" {
                    unsupported = Some(format!(
                        "spec.targetRefs[{i}]: kind {} is not supported; only core Services are",
                        t.kind
                    ));
                    continue;
                }
                let service = ObjectKey::new(key.namespace.clone(), t.name.clone());
                services.push(service.clone());
                let slot = (service, t.section_name.clone());
                match index.targets.get(&slot) {
                    Some(PolicyTarget::Tls(other)) => conflicted = Some(other.policy.clone()),
                    Some(PolicyTarget::Refused(other)) => conflicted = Some(other.clone()),
                    None => {
                        if let Some(u) = &upstream {
                            index.targets.insert(slot, u.clone());
                        }
                    }
                }
            }
            if let Some(other) = conflicted {
                conditions.set(
                    spec::ACCEPTED,
                    false,
                    "Conflicted",
                    format!("BackendTLSPolicy {other} is older (or first by name) and targets the same Service"),
                );
            } else if let Some(message) = unsupported.filter(|_| services.is_empty()) {
                conditions.set(spec::ACCEPTED, false, spec::INVALID, message);
            }
            index.policies.insert(
                key,
                PolicyVerdict {
                    conditions,
                    services,
                },
            );
        }
        index
    }

    /// How to reach port `port_name` of `service`, if a policy covers it.
    pub fn upstream(&self, service: &ObjectKey, port_name: Option<&str>) -> Option<&PolicyTarget> {
        port_name
            .and_then(|n| self.targets.get(&(service.clone(), Some(n.to_string()))))
            .or_else(|| self.targets.get(&(service.clone(), None)))
    }
}

/// The settings a policy gives (None when it gives none at all) and its
/// conditions.
fn validate(
    inputs: &Inputs,
    key: &ObjectKey,
    policy: &BackendTlsPolicy,
) -> (Option<PolicyTarget>, Conditions) {
    let mut conditions = Conditions::new(policy.metadata.generation);
    let v = &policy.spec.validation;
    if let Some(known) = v
        .well_known_ca_certificates
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        conditions.set(
            spec::ACCEPTED,
            false,
            spec::INVALID,
            format!("spec.validation.wellKnownCACertificates: {known:?} is not supported by portico; reference a CA ConfigMap in caCertificateRefs"),
        );
        conditions.set(
            spec::RESOLVED_REFS,
            true,
            "ResolvedRefs",
            "no references to resolve",
        );
        // The backend asked for TLS: refused like a policy without a valid
        // CA, never reached in plain text.
        return (Some(PolicyTarget::Refused(key.clone())), conditions);
    }
    let mut ca_pem = Vec::new();
    let mut problems: Vec<(&'static str, String)> = Vec::new();
    let refs = v.ca_certificate_refs.as_deref().unwrap_or_default();
    for (i, r) in refs.iter().enumerate() {
        let field = format!("spec.validation.caCertificateRefs[{i}]");
        if !(r.group.is_empty() || r.group == "core") || r.kind != "ConfigMap" {
            problems.push((
                spec::INVALID_KIND,
                format!(
                    "{field}: kind {} is not supported; only core ConfigMaps are",
                    r.kind
                ),
            ));
            continue;
        }
        let cm_key = ObjectKey::new(key.namespace.clone(), r.name.clone());
        let pem = inputs
            .config_maps
            .get(&cm_key)
            .and_then(|cm| cm.data.as_ref())
            .and_then(|d| d.get("ca.crt"));
        match pem {
            None => problems.push((
                "InvalidCACertificateRef",
                format!("{field}: ConfigMap {cm_key} has no key ca.crt (or does not exist)"),
            )),
            Some(pem) => match check_ca(pem) {
                Ok(()) => {
                    ca_pem.extend_from_slice(pem.as_bytes());
                    if !pem.ends_with('\n') {
                        ca_pem.push(b'\n');
                    }
                }
                Err(e) => problems.push((
                    "InvalidCACertificateRef",
                    format!("{field}: ConfigMap {cm_key} ca.crt: {e}"),
                )),
            },
        }
    }
    match problems.first() {
        None => conditions.set(
            spec::RESOLVED_REFS,
            true,
            "ResolvedRefs",
            "all references resolved",
        ),
        Some((reason, _)) => {
            let messages: Vec<&str> = problems.iter().map(|(_, m)| m.as_str()).collect();
            conditions.set(spec::RESOLVED_REFS, false, reason, messages.join("; "));
        }
    }
    if ca_pem.is_empty() {
        conditions.set(
            spec::ACCEPTED,
            false,
            "NoValidCACertificate",
            "no CA certificate reference is valid; connections to the targeted Services fail",
        );
        return (Some(PolicyTarget::Refused(key.clone())), conditions);
    }
    if let Err(e) = check_hostname(&v.hostname, false) {
        conditions.set(
            spec::ACCEPTED,
            false,
            spec::INVALID,
            format!("spec.validation.hostname: {e}"),
        );
        return (Some(PolicyTarget::Refused(key.clone())), conditions);
    }
    let mut subject_alt_names = Vec::new();
    let sans_field = FieldPath::Root("spec.validation.subjectAltNames");
    for (i, san) in v.subject_alt_names.iter().flatten().enumerate() {
        let san_field = sans_field.index(i);
        let problem = match (&san.hostname, &san.uri) {
            (Some(h), _)
                if san.r#type == BackendTlsPolicyValidationSubjectAltNamesType::Hostname =>
            {
                check_hostname(h, true)
                    .err()
                    .map(|e| format!("{}: {e}", san_field.key("hostname")))
            }
            (_, Some(u)) if san.r#type == BackendTlsPolicyValidationSubjectAltNamesType::Uri => {
                check_text(&san_field.key("uri"), u).err()
            }
            _ => None,
        };
        if let Some(message) = problem {
            conditions.set(spec::ACCEPTED, false, spec::INVALID, message);
            return (Some(PolicyTarget::Refused(key.clone())), conditions);
        }
        let value = match san.r#type {
            BackendTlsPolicyValidationSubjectAltNamesType::Hostname => {
                san.hostname.clone().map(SubjectAltName::Dns)
            }
            BackendTlsPolicyValidationSubjectAltNamesType::Uri => {
                san.uri.clone().map(SubjectAltName::Uri)
            }
        };
        match value.filter(
            |v| !matches!(v, SubjectAltName::Dns(s) | SubjectAltName::Uri(s) if s.is_empty()),
        ) {
            Some(v) => subject_alt_names.push(v),
            None => {
                conditions.set(
                    spec::ACCEPTED,
                    false,
                    spec::INVALID,
                    format!(
                        "spec.validation.subjectAltNames[{i}]: the value for its type is missing"
                    ),
                );
                return (Some(PolicyTarget::Refused(key.clone())), conditions);
            }
        }
    }
    conditions.set(spec::ACCEPTED, true, "Accepted", "the policy is valid");
    let tls = BackendTls {
        policy: key.clone(),
        hostname: v.hostname.clone(),
        ca_pem,
        subject_alt_names,
    };
    (Some(PolicyTarget::Tls(Arc::new(tls))), conditions)
}

/// A DNS name Envoy sends as SNI or checks a certificate against: RFC 1123,
/// a leading `*.` only where `wildcard` allows it.
fn check_hostname(hostname: &str, wildcard: bool) -> Result<(), String> {
    hostnames::validate(hostname)?;
    if !wildcard && hostname.starts_with('*') {
        return Err(format!(
            "hostname {hostname:?} is a wildcard; the backend's exact name is required"
        ));
    }
    Ok(())
}
