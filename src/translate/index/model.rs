//! The index's data: the classes portico is responsible for, each Gateway
//! of an accepted class with its validated listeners (its own, then those of
//! its accepted ListenerSets), and the ports Envoy keeps for itself. Built by
//! `gateways`, read by every later stage.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use gateway_api::experimental::gateways::GatewayListenersTlsMode;
use serde::Serialize;

use super::certificates::CertificateError;
use super::client_validation::ClientValidation;
use super::infra::{Infra, InfraPort};
use crate::inputs::parameters::{GatewayParameters, GatewayParametersSpec};
use crate::inputs::{Inputs, ObjectKey};
use crate::translate::conditions::{Conditions, spec};
use crate::translate::hostnames;
use crate::translate::labels::Selector;

/// A GatewayClass with our controller name, and whether we accept it.
#[derive(Debug)]
pub struct ClassModel {
    pub name: String,
    pub conditions: Conditions,
    /// The `GatewayParameters` the class references, when valid.
    pub parameters: Option<Arc<GatewayParameters>>,
}

impl ClassModel {
    pub fn accepted(&self) -> bool {
        self.conditions.is_true(spec::ACCEPTED)
    }
}

/// A Gateway of an accepted class with its validated listeners.
#[derive(Debug)]
pub struct GatewayModel {
    pub key: ObjectKey,
    pub generation: Option<i64>,
    /// The Gateway's own listeners first (`set` is None), then those of
    /// each accepted ListenerSet, in the specification's precedence.
    pub listeners: Vec<ListenerModel>,
    /// The ListenerSets whose parentRef names this Gateway, accepted or not,
    /// in precedence order.
    pub listener_sets: Vec<ListenerSetModel>,
    /// Whether `spec.allowedListeners` lets any ListenerSet attach (then the
    /// status reports how many did).
    pub allows_listener_sets: bool,
    /// Problems with `spec.addresses`, if any.
    pub address_error: Option<String>,
    /// Class and Gateway parameters, merged.
    pub parameters: GatewayParametersSpec,
    /// Why `spec.infrastructure.parametersRef` is invalid, if it is.
    pub parameters_error: Option<String>,
    /// `spec.tls.backend.clientCertificateRef`, resolved, when given.
    pub backend_client: Option<Result<ObjectKey, CertificateError>>,
    /// Some part of `spec.tls.frontend` allows insecure fallback.
    pub insecure_frontend: bool,
}

impl GatewayModel {
    /// The listener on `port` that owns requests (or TLS connections) for
    /// `host`: the one whose hostname matches it most specifically.
    pub fn owner(&self, port: i32, host: &str) -> Option<usize> {
        self.listeners
            .iter()
            .enumerate()
            .filter(|(_, l)| l.is_ready() && l.port == port)
            .filter(|(_, l)| !l.protocol.is_some_and(Protocol::is_udp))
            .filter(|(_, l)| match l.hostname.as_deref() {
                None => true,
                Some(h) => h == host || hostnames::covers(h, host),
            })
            .max_by(|(_, a), (_, b)| {
                let spec = |h: Option<&str>| h.map(hostnames::specificity);
                spec(a.hostname.as_deref()).cmp(&spec(b.hostname.as_deref()))
            })
            .map(|(i, _)| i)
    }

    /// The Secret Envoy presents to TLS backends, when valid.
    pub fn backend_client_certificate(&self) -> Option<&ObjectKey> {
        self.backend_client.as_ref().and_then(|r| r.as_ref().ok())
    }
}

/// Which namespaces may attach routes to a listener.
#[derive(Debug, Clone)]
pub enum NamespacePolicy {
    Same,
    All,
    Selector(Selector),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    Http,
    Https,
    /// TLS, terminated by Envoy (`Terminate`) or passed through (`Passthrough`).
    Tls(TlsMode),
    Tcp,
    Udp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsMode {
    Terminate,
    Passthrough,
}

impl Protocol {
    pub(super) fn parse(protocol: &str, mode: Option<&GatewayListenersTlsMode>) -> Option<Self> {
        let mode = match mode {
            Some(GatewayListenersTlsMode::Passthrough) => TlsMode::Passthrough,
            _ => TlsMode::Terminate,
        };
        Some(match protocol {
            "HTTP" => Self::Http,
            "HTTPS" => Self::Https,
            "TLS" => Self::Tls(mode),
            "TCP" => Self::Tcp,
            "UDP" => Self::Udp,
            _ => return None,
        })
    }

    /// Whether Envoy terminates TLS and so needs certificates.
    pub fn terminates_tls(self) -> bool {
        matches!(self, Self::Https | Self::Tls(TlsMode::Terminate))
    }

    /// Protocols carried over UDP can share a port number with TCP ones.
    pub fn is_udp(self) -> bool {
        self == Self::Udp
    }

    /// Listeners of these protocols tell requests apart by hostname.
    pub fn uses_hostname(self) -> bool {
        !matches!(self, Self::Tcp | Self::Udp)
    }
}

#[derive(Debug)]
pub struct ListenerModel {
    pub name: String,
    /// The ListenerSet declaring this listener; None for the Gateway's own.
    pub set: Option<ObjectKey>,
    /// The name Envoy resources of this listener carry: its name on the
    /// Gateway, `<namespace>/<set>/<name>` for a ListenerSet's (names are
    /// unique only within their object).
    pub envoy_name: String,
    pub port: i32,
    /// The port Envoy binds inside its pod.
    pub container_port: u32,
    pub protocol: Option<Protocol>,
    pub hostname: Option<String>,
    pub namespaces: NamespacePolicy,
    pub kinds: Vec<RouteGroupKind>,
    /// The TLS Secrets Envoy serves on a terminating listener, by key (the
    /// SDS resource names), in reference order.
    pub certificates: Vec<ObjectKey>,
    /// Client certificate validation on an HTTPS listener
    /// (`spec.tls.frontend`).
    pub client_validation: Option<Arc<ClientValidation>>,
    pub conditions: Conditions,
    pub attached_routes: i32,
}

impl ListenerModel {
    /// Accepted and not conflicted: routes attach to it and are counted in
    /// its `attachedRoutes`, even while its certificates do not resolve.
    pub fn is_attachable(&self) -> bool {
        self.conditions.is_true(spec::ACCEPTED) && !self.conditions.is_true(spec::CONFLICTED)
    }

    /// Attachable, and with a certificate when it terminates TLS: it goes
    /// into the Envoy configuration.
    pub fn is_ready(&self) -> bool {
        self.is_attachable()
            && (!self.protocol.is_some_and(Protocol::terminates_tls)
                || !self.certificates.is_empty())
    }

    pub fn allows_kind(&self, kind: &str) -> bool {
        self.kinds.iter().any(|k| k.kind == kind)
    }

    /// Whether routes of `route_ns` may attach; `Same` is the namespace of
    /// the object declaring the listener (`owner_ns`).
    pub fn allows_namespace(&self, inputs: &Inputs, owner_ns: &str, route_ns: &str) -> bool {
        match &self.namespaces {
            NamespacePolicy::Same => owner_ns == route_ns,
            NamespacePolicy::All => true,
            NamespacePolicy::Selector(selector) => {
                selector.matches(&inputs.namespace_labels(route_ns))
            }
        }
    }

    /// How messages name this listener: `listener "x" of Gateway ns/g` or
    /// `listener "x" of ListenerSet ns/s`.
    pub fn describe(&self, gateway: &ObjectKey) -> String {
        match &self.set {
            None => format!("listener {:?} of Gateway {gateway}", self.name),
            Some(set) => format!("listener {:?} of ListenerSet {set}", self.name),
        }
    }
}

impl GatewayModel {
    /// Why the Gateway itself is not accepted (its class or parameters, its
    /// addresses, no valid listener of its own), if it is not.
    pub fn rejection(&self) -> Option<String> {
        if let Some(e) = self
            .parameters_error
            .as_ref()
            .or(self.address_error.as_ref())
        {
            return Some(e.clone());
        }
        let own_ready = self
            .listeners
            .iter()
            .any(|l| l.set.is_none() && l.is_ready());
        (!own_ready).then(|| "no listener of the Gateway is valid".to_string())
    }
}

/// Every class and Gateway portico is responsible for.
#[derive(Debug, Default)]
pub struct GatewayIndex {
    pub classes: BTreeMap<String, ClassModel>,
    pub gateways: BTreeMap<ObjectKey, GatewayModel>,
    /// Each ListenerSet naming one of `gateways`, to that Gateway.
    pub listener_sets: BTreeMap<ObjectKey, ObjectKey>,
}

/// The port Envoy binds for a listener port: with `shift_privileged`, ports
/// below 1024 move up by 10000 so Envoy can bind them without privileges.
pub fn container_port(port: i32, shift_privileged: bool) -> u32 {
    let port = port.clamp(0, 65535) as u32;
    if shift_privileged && port < 1024 {
        port + 10000
    } else {
        port
    }
}

/// A port Envoy itself binds inside its container, which no Gateway
/// listener may take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReservedPort {
    pub port: u32,
    /// What Envoy uses it for, as a message says it.
    pub used_for: &'static str,
}

/// One ListenerSet naming a Gateway portico serves.
#[derive(Debug)]
pub struct ListenerSetModel {
    pub key: ObjectKey,
    pub generation: Option<i64>,
    /// `Accepted` and, for one not accepted, `Programmed` (the same reason).
    pub conditions: Conditions,
    pub listeners: SetListeners,
}

/// Where a ListenerSet's validated listeners are.
#[derive(Debug)]
pub enum SetListeners {
    /// Accepted: these listeners of the Gateway.
    Merged(Range<usize>),
    /// Not accepted: its listeners as validated, served nowhere (none when
    /// the ListenerSet may not attach at all).
    Aside(Vec<ListenerModel>),
}

impl ListenerSetModel {
    pub fn accepted(&self) -> bool {
        self.conditions.is_true(spec::ACCEPTED)
    }

    /// The listeners of this ListenerSet, wherever they are.
    pub fn listeners<'m>(&'m self, gateway: &'m GatewayModel) -> &'m [ListenerModel] {
        match &self.listeners {
            SetListeners::Merged(range) => gateway.listeners.get(range.clone()).unwrap_or_default(),
            SetListeners::Aside(list) => list,
        }
    }
}

impl GatewayModel {
    /// The infrastructure of an accepted Gateway.
    pub fn infra(&self) -> Infra {
        let mut ports: Vec<InfraPort> = Vec::new();
        for l in self.listeners.iter().filter(|l| l.is_ready()) {
            let udp = l.protocol.is_some_and(|p| p.is_udp());
            let protocol = if udp { "UDP" } else { "TCP" };
            if ports
                .iter()
                .any(|p| p.port == l.port && p.protocol == protocol)
            {
                continue;
            }
            ports.push(InfraPort {
                port: l.port,
                container_port: l.container_port,
                protocol,
            });
        }
        ports.sort_by_key(|p| (p.port, p.protocol));
        Infra {
            parameters: self.parameters.clone(),
            ports,
        }
    }
}

/// A kind of route a listener supports (its status `supportedKinds`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct RouteGroupKind {
    pub group: String,
    pub kind: String,
}
