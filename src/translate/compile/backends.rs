//! Backend references: a route's `backendRefs` (and mirror targets) resolved to
//! Service ports, with the ReferenceGrant check for other namespaces.
//!
//! In: one reference and the referring route. Out: the `ClusterKey` Envoy will
//! route to, or the spec reason (InvalidKind, RefNotPermitted, BackendNotFound)
//! and a message naming the reference.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::inputs::{Inputs, ObjectKey};
pub use crate::translate::grants::{Referrer, grant_allows};

use crate::translate::compile::backend_tls::{BackendTls, BackendTlsIndex, PolicyTarget};
use crate::translate::conditions::spec;

/// One Envoy cluster: a Service port, spoken to in one protocol. Every
/// route to the same Service port in the same protocol shares it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterKey {
    pub service: ObjectKey,
    pub port: u16,
    pub protocol: UpstreamProtocol,
    /// TLS to the backend, from the BackendTLSPolicy that targets it.
    pub tls: Option<Arc<BackendTls>>,
    /// The Envoy cluster name, `<namespace>/<service>:<port>`, with `/h2c`
    /// appended for HTTP/2 and `/tls` for TLS.
    pub name: String,
}

/// How Envoy talks to a backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UpstreamProtocol {
    /// HTTP/1.1 (WebSocket upgrades included), or raw bytes for TCP routes.
    #[default]
    Http1,
    /// HTTP/2 with prior knowledge: GRPCRoute backends, and Service ports
    /// whose `appProtocol` is `kubernetes.io/h2c`.
    H2c,
}

/// `appProtocol` values with a meaning for portico.
pub const APP_PROTOCOL_H2C: &str = "kubernetes.io/h2c";

impl ClusterKey {
    pub fn upstream(
        service: ObjectKey,
        port: u16,
        protocol: UpstreamProtocol,
        tls: Option<Arc<BackendTls>>,
    ) -> Self {
        let suffix = match protocol {
            UpstreamProtocol::Http1 => "",
            UpstreamProtocol::H2c => "/h2c",
        };
        let tls_suffix = if tls.is_some() { "/tls" } else { "" };
        let name = format!(
            "{}/{}:{port}{suffix}{tls_suffix}",
            service.namespace, service.name
        );
        Self {
            service,
            port,
            protocol,
            tls,
            name,
        }
    }
}

impl fmt::Display for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// A reference as written in a route, with defaults not yet applied.
#[derive(Clone, Copy, Debug)]
pub struct BackendRef<'a> {
    pub group: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub name: &'a str,
    pub namespace: Option<&'a str>,
    pub port: Option<i32>,
}

/// Why a reference does not resolve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendError {
    pub reason: &'static str,
    pub message: String,
    /// Reported in the route's `ResolvedRefs`; false when the reference is
    /// fine but a BackendTLSPolicy refuses connections (its own status says
    /// why).
    pub report: bool,
}

/// Resolves references against one snapshot, remembering each answer: many
/// routes name the same Service port, and they then share one `ClusterKey`.
pub struct BackendResolver<'i> {
    inputs: &'i Inputs,
    tls: BackendTlsIndex,
    cache: HashMap<CacheKey, Result<Arc<ClusterKey>, BackendError>>,
    /// Services referenced since the last `take_referenced`.
    referenced: Vec<ObjectKey>,
}

/// Everything an answer depends on: referrer kind and namespace, and the
/// reference as written. Owned, since a route compiled in this translation
/// may be dropped before the next lookup.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CacheKey {
    referrer_kind: String,
    referrer_namespace: String,
    group: Option<String>,
    kind: Option<String>,
    name: String,
    namespace: Option<String>,
    port: Option<i32>,
}

impl CacheKey {
    fn of(from: Referrer<'_>, r: BackendRef<'_>) -> Self {
        Self {
            referrer_kind: from.kind.to_string(),
            referrer_namespace: from.namespace.to_string(),
            group: r.group.map(str::to_string),
            kind: r.kind.map(str::to_string),
            name: r.name.to_string(),
            namespace: r.namespace.map(str::to_string),
            port: r.port,
        }
    }
}

impl<'i> BackendResolver<'i> {
    pub fn new(inputs: &'i Inputs) -> Self {
        Self {
            inputs,
            tls: BackendTlsIndex::build(inputs),
            cache: HashMap::new(),
            referenced: Vec::new(),
        }
    }

    /// The BackendTLSPolicies and their verdicts.
    pub fn backend_tls(&self) -> &BackendTlsIndex {
        &self.tls
    }

    /// The Services named by the references resolved since the last call
    /// (one route's, when called after each route), sorted and deduplicated,
    /// whether they resolved or not.
    pub fn take_referenced(&mut self) -> Vec<ObjectKey> {
        let mut out = std::mem::take(&mut self.referenced);
        out.sort();
        out.dedup();
        out
    }

    pub fn inputs(&self) -> &'i Inputs {
        self.inputs
    }

    pub fn resolve(
        &mut self,
        from: Referrer<'_>,
        r: BackendRef<'_>,
    ) -> Result<Arc<ClusterKey>, BackendError> {
        let key = CacheKey::of(from, r);
        let inputs = self.inputs;
        let tls = &self.tls;
        // Policy statuses and the references report read these.
        self.referenced.push(ObjectKey::new(
            r.namespace.unwrap_or(from.namespace),
            r.name,
        ));
        self.cache
            .entry(key)
            .or_insert_with(|| resolve(inputs, tls, from, r).map(Arc::new))
            .clone()
    }
}

pub fn resolve(
    inputs: &Inputs,
    tls: &BackendTlsIndex,
    from: Referrer<'_>,
    r: BackendRef<'_>,
) -> Result<ClusterKey, BackendError> {
    let group = r.group.unwrap_or("");
    let kind = r.kind.unwrap_or("Service");
    let namespace = r.namespace.unwrap_or(from.namespace);
    let shown = ShownRef(namespace, r.name);
    if !(group.is_empty() || group == "core") || kind != "Service" {
        return Err(BackendError {
            reason: spec::INVALID_KIND,
            message: format!(
                "backend {shown}: kind {group}/{kind} is not supported; only core Services are"
            ),
            report: true,
        });
    }
    if namespace != from.namespace && !grant_allows(inputs, from, namespace, "", "Service", r.name)
    {
        return Err(BackendError {
            reason: spec::REF_NOT_PERMITTED,
            message: format!(
                "backend {shown}: no ReferenceGrant in namespace {namespace} allows {} from namespace {} to reach it",
                from.kind, from.namespace
            ),
            report: true,
        });
    }
    let key = ObjectKey::new(namespace, r.name);
    let Some(service) = inputs.services.get(&key) else {
        return Err(BackendError {
            reason: spec::BACKEND_NOT_FOUND,
            message: format!("backend {shown}: Service not found"),
            report: true,
        });
    };
    let Some(port) = r.port else {
        return Err(BackendError {
            reason: spec::BACKEND_NOT_FOUND,
            message: format!("backend {shown}: port is required for a Service"),
            report: true,
        });
    };
    let service_port = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .and_then(|ports| ports.iter().find(|p| p.port == port));
    let Some(port) = u16::try_from(port).ok().filter(|_| service_port.is_some()) else {
        return Err(BackendError {
            reason: spec::BACKEND_NOT_FOUND,
            message: format!("backend {shown}: Service has no port {port}"),
            report: true,
        });
    };
    let h2c = from.kind == "GRPCRoute"
        || service_port.and_then(|p| p.app_protocol.as_deref()) == Some(APP_PROTOCOL_H2C);
    let protocol = if h2c {
        UpstreamProtocol::H2c
    } else {
        UpstreamProtocol::Http1
    };
    let port_name = service_port.and_then(|p| p.name.as_deref());
    let tls = match tls.upstream(&key, port_name) {
        None => None,
        Some(PolicyTarget::Tls(t)) => Some(Arc::clone(t)),
        Some(PolicyTarget::Refused(policy)) => {
            return Err(BackendError {
                reason: spec::INVALID_KIND,
                message: format!(
                    "backend {shown}: BackendTLSPolicy {policy} has no valid CA certificate"
                ),
                report: false,
            });
        }
    };
    Ok(ClusterKey::upstream(key, port, protocol, tls))
}

/// `namespace/name` of a reference, formatted only when a message needs it.
struct ShownRef<'a>(&'a str, &'a str);

impl fmt::Display for ShownRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.0, self.1)
    }
}
