//! GatewayClasses and Gateways: which classes are ours, which Gateways we serve,
//! and the listeners of each Gateway (its own, then those of the ListenerSets
//! it accepts, see `listener_sets`) with every listener validated (port,
//! protocol, hostname, allowed routes) and checked for conflicts on a shared port.
//!
//! In: `Inputs`. Out: a `GatewayIndex` the route attachment reads, plus the
//! class and listener conditions that end up in statuses.

use std::collections::BTreeMap;
use std::sync::Arc;

use gateway_api::experimental::gateways::{
    Gateway, GatewayListeners, GatewayListenersAllowedRoutesNamespacesFrom, GatewayListenersTlsMode,
};
use kube::ResourceExt;

use super::certificates;
use super::client_validation::{self, ClientValidation};
use super::conditions::{ConditionStatus, Conditions, spec};
use super::hostnames;
use super::infra;
use super::labels::Selector;
use super::listener_sets::{self, ListenerSetModel};
use super::status::RouteGroupKind;
use crate::inputs::parameters::{GatewayParameters, GatewayParametersSpec};
use crate::inputs::{Inputs, ObjectKey};

/// The controller name portico answers to.
pub const CONTROLLER_NAME: &str = "portico.dev/gateway-controller";
pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

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
    pub backend_client: Option<Result<ObjectKey, certificates::CertificateError>>,
    /// Some part of `spec.tls.frontend` allows insecure fallback.
    pub insecure_frontend: bool,
}

impl GatewayModel {
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
    fn parse(protocol: &str, mode: Option<&GatewayListenersTlsMode>) -> Option<Self> {
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

pub fn index(inputs: &Inputs, shift_privileged: bool, reserved: &[ReservedPort]) -> GatewayIndex {
    let mut idx = GatewayIndex::default();
    for class in inputs.gateway_classes.values() {
        if class.spec.controller_name != CONTROLLER_NAME {
            continue;
        }
        let mut conditions = Conditions::new(class.metadata.generation);
        let parameters = match infra::class_parameters(inputs, class) {
            Ok(p) => {
                conditions.set(
                    spec::ACCEPTED,
                    true,
                    "Accepted",
                    "portico accepts this class",
                );
                p
            }
            Err(e) => {
                conditions.set(spec::ACCEPTED, false, spec::INVALID_PARAMETERS, e);
                None
            }
        };
        idx.classes.insert(
            class.name_any(),
            ClassModel {
                name: class.name_any(),
                conditions,
                parameters,
            },
        );
    }
    let sets = listener_sets::by_parent(inputs);
    for gateway in inputs.gateways.values() {
        let Some(class) = idx.classes.get(&gateway.spec.gateway_class_name) else {
            continue;
        };
        // A Gateway of portico's class that is not accepted is reported
        // (and keeps what it served, see `last_good`) rather than ignored.
        let class_error = (!class.accepted()).then(|| {
            let why = class
                .conditions
                .get(spec::ACCEPTED)
                .map(|c| c.message.to_string())
                .unwrap_or_default();
            format!(
                "spec.gatewayClassName: GatewayClass {} is not accepted: {why}",
                class.name
            )
        });
        let own = infra::gateway_parameters(inputs, gateway);
        let parameters = infra::merge(
            class.parameters.as_deref().map(|p| &p.spec),
            own.as_ref()
                .ok()
                .and_then(|p| p.as_deref())
                .map(|p| &p.spec),
        );
        let shift = shift_privileged && parameters.listener_port_as_container_port != Some(true);
        let mut model = gateway_model(inputs, gateway, shift, reserved);
        model.parameters = parameters;
        model.parameters_error = class_error.or(own.err());
        let candidates = sets.get(&model.key).map(Vec::as_slice).unwrap_or_default();
        let merge = listener_sets::Merge {
            inputs,
            shift_privileged: shift,
            reserved,
        };
        merge.attach(gateway, &mut model, candidates);
        mark_overlapping_tls(&mut model.listeners);
        for set in &model.listener_sets {
            idx.listener_sets.insert(set.key.clone(), model.key.clone());
        }
        idx.gateways.insert(model.key.clone(), model);
    }
    idx
}

fn gateway_model(
    inputs: &Inputs,
    gateway: &Gateway,
    shift_privileged: bool,
    reserved: &[ReservedPort],
) -> GatewayModel {
    let generation = gateway.metadata.generation;
    let namespace = gateway.metadata.namespace.as_deref().unwrap_or_default();
    let mut listeners: Vec<ListenerModel> = gateway
        .spec
        .listeners
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let mut model = listener_model(l, generation, shift_privileged);
            listener_certificates(inputs, "Gateway", namespace, i, l, &mut model);
            listener_client_validation(inputs, gateway, &mut model);
            model
        })
        .collect();
    mark_duplicate_names(&mut listeners);
    mark_reserved_ports(&mut listeners, reserved);
    mark_conflicts(&mut listeners);
    GatewayModel {
        key: ObjectKey::of(gateway),
        generation,
        listeners,
        listener_sets: Vec::new(),
        allows_listener_sets: listener_sets::allows_any(gateway),
        address_error: address_error(gateway),
        parameters: GatewayParametersSpec::default(),
        parameters_error: None,
        backend_client: gateway
            .spec
            .tls
            .as_ref()
            .and_then(|t| t.backend.as_ref())
            .and_then(|b| b.client_certificate_ref.as_ref())
            .map(|r| certificates::resolve_backend_client(inputs, namespace, r)),
        insecure_frontend: client_validation::allows_insecure_fallback(gateway),
    }
}

fn address_error(gateway: &Gateway) -> Option<String> {
    for (i, a) in gateway.spec.addresses.iter().flatten().enumerate() {
        let kind = a.r#type.as_deref().unwrap_or("IPAddress");
        if kind != "IPAddress" {
            return Some(format!(
                "spec.addresses[{i}].type {kind:?} is not supported; use IPAddress"
            ));
        }
        let value = a.value.as_deref().unwrap_or_default();
        if value.parse::<std::net::IpAddr>().is_err() {
            return Some(format!(
                "spec.addresses[{i}].value {value:?} is not an IP address"
            ));
        }
    }
    None
}

pub(super) fn listener_model(
    l: &GatewayListeners,
    generation: Option<i64>,
    shift_privileged: bool,
) -> ListenerModel {
    let mut conditions = Conditions::new(generation);
    let mode = l.tls.as_ref().and_then(|t| t.mode.as_ref());
    let protocol = Protocol::parse(&l.protocol, mode);
    let mut accepted: Result<(), (&str, String)> = Ok(());
    if !(1..=65535).contains(&l.port) {
        accepted = Err((
            spec::PORT_UNAVAILABLE,
            format!("port {} is outside 1-65535", l.port),
        ));
    } else if protocol.is_none() {
        accepted = Err((
            spec::UNSUPPORTED_PROTOCOL,
            format!("protocol {:?} is not a protocol portico knows", l.protocol),
        ));
    } else if let Some(Err(e)) = l.hostname.as_deref().map(hostnames::validate) {
        accepted = Err((spec::UNSUPPORTED_VALUE, format!("hostname: {e}")));
    } else if let Some(e) = protocol.and_then(|p| tls_error(p, l)) {
        accepted = Err((spec::UNSUPPORTED_VALUE, e));
    }
    let (namespaces, ns_error) = namespace_policy(l);
    if let (Ok(()), Some((reason, message))) = (&accepted, ns_error) {
        accepted = Err((reason, message));
    }
    match &accepted {
        Ok(()) => conditions.set(spec::ACCEPTED, true, "Accepted", "listener is valid"),
        Err((reason, message)) => conditions.set(spec::ACCEPTED, false, reason, message.clone()),
    }

    let (kinds, kind_error) = route_kinds(l);
    match kind_error {
        None => conditions.set(
            spec::RESOLVED_REFS,
            true,
            "ResolvedRefs",
            "all references resolved",
        ),
        Some((reason, message)) => conditions.set(spec::RESOLVED_REFS, false, reason, message),
    }
    ListenerModel {
        name: l.name.clone(),
        set: None,
        envoy_name: l.name.clone(),
        port: l.port,
        container_port: container_port(l.port, shift_privileged),
        protocol,
        hostname: l
            .hostname
            .clone()
            .filter(|_| protocol.is_none_or(Protocol::uses_hostname)),
        namespaces,
        kinds,
        certificates: Vec::new(),
        client_validation: None,
        conditions,
        attached_routes: 0,
    }
}

/// What is wrong with a listener's `tls` for its protocol, if anything.
fn tls_error(protocol: Protocol, l: &GatewayListeners) -> Option<String> {
    let passthrough = matches!(
        l.tls.as_ref().and_then(|t| t.mode.as_ref()),
        Some(GatewayListenersTlsMode::Passthrough)
    );
    match protocol {
        Protocol::Http | Protocol::Tcp | Protocol::Udp if l.tls.is_some() => {
            Some(format!("tls: not allowed on a {} listener", l.protocol))
        }
        Protocol::Https | Protocol::Tls(_) if l.tls.is_none() => {
            Some(format!("tls: required on a {} listener", l.protocol))
        }
        Protocol::Https if passthrough => Some(
            "tls.mode: Passthrough is for TLS listeners; an HTTPS listener terminates TLS"
                .to_string(),
        ),
        _ => None,
    }
}

/// Resolves the certificates of a listener that terminates TLS, declared by
/// an object of `kind` in `namespace`; bad references set
/// `ResolvedRefs=False` (the first one's reason, every message).
pub(super) fn listener_certificates(
    inputs: &Inputs,
    kind: &str,
    namespace: &str,
    index: usize,
    l: &GatewayListeners,
    model: &mut ListenerModel,
) {
    if !model.protocol.is_some_and(Protocol::terminates_tls)
        || !model.conditions.is_true(spec::ACCEPTED)
    {
        return;
    }
    let refs = l
        .tls
        .as_ref()
        .and_then(|t| t.certificate_refs.as_deref())
        .unwrap_or_default();
    let field = format!("spec.listeners[{index}].tls.certificateRefs");
    let (served, errors) = certificates::resolve(inputs, kind, namespace, &field, refs);
    model.certificates = served;
    if refs.is_empty() {
        model.conditions.set(
            spec::RESOLVED_REFS,
            false,
            spec::INVALID_CERTIFICATE_REF,
            format!("{field}: a {} listener needs a certificate", l.protocol),
        );
    } else if let Some(first) = errors.first() {
        let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
        model.conditions.set(
            spec::RESOLVED_REFS,
            false,
            first.reason,
            messages.join("; "),
        );
    }
}

/// Applies `spec.tls.frontend` to an accepted HTTPS listener: bad CA
/// references make `ResolvedRefs` False (after any certificate problem), and
/// with no valid CA at all the listener is not accepted.
pub(super) fn listener_client_validation(
    inputs: &Inputs,
    gateway: &Gateway,
    model: &mut ListenerModel,
) {
    if model.protocol != Some(Protocol::Https) || !model.conditions.is_true(spec::ACCEPTED) {
        return;
    }
    let Some(resolved) = client_validation::for_port(inputs, gateway, model.port) else {
        return;
    };
    if let Some(first) = resolved.problems.first() {
        let mut messages: Vec<String> = model
            .conditions
            .get(spec::RESOLVED_REFS)
            .filter(|c| c.status == ConditionStatus::False)
            .map(|c| c.message.to_string())
            .into_iter()
            .collect();
        let reason = match model.conditions.get(spec::RESOLVED_REFS) {
            Some(c) if c.status == ConditionStatus::False => c.reason,
            _ => first.reason,
        };
        messages.extend(resolved.problems.iter().map(|p| p.message.clone()));
        model
            .conditions
            .set(spec::RESOLVED_REFS, false, reason, messages.join("; "));
    }
    if resolved.no_valid_ca {
        model.conditions.set(
            spec::ACCEPTED,
            false,
            spec::NO_VALID_CA_CERTIFICATE,
            "no CA certificate reference for client certificate validation is valid; the listener is not served",
        );
    }
    model.client_validation = resolved.validation.map(Arc::new);
}

type Problem = Option<(&'static str, String)>;

fn namespace_policy(l: &GatewayListeners) -> (NamespacePolicy, Problem) {
    let ns = l
        .allowed_routes
        .as_ref()
        .and_then(|a| a.namespaces.as_ref());
    let from = ns.and_then(|n| n.from.clone());
    match from {
        None | Some(GatewayListenersAllowedRoutesNamespacesFrom::Same) => {
            (NamespacePolicy::Same, None)
        }
        Some(GatewayListenersAllowedRoutesNamespacesFrom::All) => (NamespacePolicy::All, None),
        Some(GatewayListenersAllowedRoutesNamespacesFrom::Selector) => {
            let raw = ns.and_then(|n| n.selector.as_ref());
            match raw.map(Selector::from_listener) {
                Some(Ok(selector)) => (NamespacePolicy::Selector(selector), None),
                Some(Err(e)) => (
                    NamespacePolicy::Selector(Selector::nothing()),
                    Some((
                        spec::UNSUPPORTED_VALUE,
                        format!("allowedRoutes.namespaces.selector: {e}"),
                    )),
                ),
                None => (
                    NamespacePolicy::Selector(Selector::nothing()),
                    Some((
                        spec::UNSUPPORTED_VALUE,
                        "allowedRoutes.namespaces.from is Selector but no selector is set"
                            .to_string(),
                    )),
                ),
            }
        }
    }
}

/// Route kinds a protocol can carry.
fn supported_kinds(protocol: &str) -> &'static [&'static str] {
    match protocol {
        "HTTP" | "HTTPS" => &["HTTPRoute", "GRPCRoute"],
        "TLS" => &["TLSRoute"],
        "TCP" => &["TCPRoute"],
        "UDP" => &["UDPRoute"],
        _ => &[],
    }
}

fn route_kinds(l: &GatewayListeners) -> (Vec<RouteGroupKind>, Problem) {
    let supported = supported_kinds(&l.protocol);
    let requested = l.allowed_routes.as_ref().and_then(|a| a.kinds.as_ref());
    let Some(requested) = requested.filter(|k| !k.is_empty()) else {
        let kinds = supported
            .iter()
            .map(|k| RouteGroupKind {
                group: GATEWAY_GROUP.into(),
                kind: (*k).into(),
            })
            .collect();
        return (kinds, None);
    };
    let mut kinds = Vec::new();
    let mut invalid = Vec::new();
    for k in requested {
        let group = k.group.as_deref().unwrap_or(GATEWAY_GROUP);
        if group == GATEWAY_GROUP && supported.contains(&k.kind.as_str()) {
            let kind = RouteGroupKind {
                group: group.into(),
                kind: k.kind.clone(),
            };
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        } else {
            invalid.push(format!("{group}/{}", k.kind));
        }
    }
    let problem = (!invalid.is_empty()).then(|| {
        (
            spec::INVALID_ROUTE_KINDS,
            format!(
                "allowedRoutes.kinds: {} not supported on a {} listener",
                invalid.join(", "),
                l.protocol
            ),
        )
    });
    (kinds, problem)
}

/// Listener names must be unique; later duplicates are not accepted.
pub(super) fn mark_duplicate_names(listeners: &mut [ListenerModel]) {
    for i in 0..listeners.len() {
        if listeners[..i].iter().any(|l| l.name == listeners[i].name) {
            let msg = format!("another listener is already named {:?}", listeners[i].name);
            listeners[i]
                .conditions
                .set(spec::ACCEPTED, false, spec::UNSUPPORTED_VALUE, msg);
        }
    }
}

/// Listeners whose container port is one Envoy binds for itself (admin,
/// readiness) are not accepted (`PortUnavailable`): Envoy could not bind
/// them, and would reject the whole listener update. UDP listeners do not
/// collide with those TCP ports. Runs before the conflict checks, so such a
/// listener conflicts with no other.
pub(super) fn mark_reserved_ports(listeners: &mut [ListenerModel], reserved: &[ReservedPort]) {
    for (i, l) in listeners.iter_mut().enumerate() {
        if !l.conditions.is_true(spec::ACCEPTED) || l.protocol.is_some_and(Protocol::is_udp) {
            continue;
        }
        if let Some(r) = reserved.iter().find(|r| r.port == l.container_port) {
            let message = format!(
                "spec.listeners[{i}].port: port {} maps to container port {}, which Envoy uses for {}; choose another port",
                l.port, l.container_port, r.used_for
            );
            l.conditions
                .set(spec::ACCEPTED, false, spec::PORT_UNAVAILABLE, message);
        }
    }
}

/// Sets `OverlappingTLSConfig=True/OverlappingHostnames` on listeners that
/// terminate TLS on one port with hostnames that overlap (one covers the
/// other, or one has none): a client may reuse a connection made for one of
/// them for the other's hosts, and is then answered 421. The condition is
/// absent, not False, when there is no overlap.
pub(super) fn mark_overlapping_tls(listeners: &mut [ListenerModel]) {
    let terminating: Vec<usize> = (0..listeners.len())
        .filter(|i| {
            let l = &listeners[*i];
            l.is_ready() && l.protocol.is_some_and(Protocol::terminates_tls)
        })
        .collect();
    let overlap = |a: Option<&str>, b: Option<&str>| match (a, b) {
        (Some(a), Some(b)) => a == b || hostnames::covers(a, b) || hostnames::covers(b, a),
        _ => true,
    };
    for &i in &terminating {
        let me = &listeners[i];
        let others: Vec<String> = terminating
            .iter()
            .filter(|j| **j != i)
            .map(|j| &listeners[*j])
            .filter(|o| o.port == me.port && overlap(o.hostname.as_deref(), me.hostname.as_deref()))
            .map(|o| format!("{:?}", o.name))
            .collect();
        if !others.is_empty() {
            let message = format!(
                "hostnames overlap with listener(s) {} on port {}; a reused connection for another listener's host is answered 421",
                others.join(", "),
                me.port
            );
            listeners[i].conditions.set(
                spec::OVERLAPPING_TLS_CONFIG,
                true,
                spec::OVERLAPPING_HOSTNAMES,
                message,
            );
        }
    }
}

/// Marks listeners that cannot share their port: different protocols
/// (ProtocolConflict), the same hostname twice (HostnameConflict), or two
/// listener ports that land on the same container port (PortUnavailable).
fn mark_conflicts(listeners: &mut [ListenerModel]) {
    let accepted: Vec<bool> = listeners
        .iter()
        .map(|l| l.conditions.is_true(spec::ACCEPTED))
        .collect();
    let mut verdicts: Vec<Option<(&str, String)>> = vec![None; listeners.len()];
    for i in 0..listeners.len() {
        if !accepted[i] {
            continue;
        }
        let me = &listeners[i];
        for (j, other) in listeners.iter().enumerate() {
            if i == j || !accepted[j] {
                continue;
            }
            let udp = |l: &ListenerModel| l.protocol.is_some_and(Protocol::is_udp);
            if other.port != me.port || udp(other) != udp(me) {
                continue;
            }
            // TLS listeners of both modes share a port, told apart by SNI.
            let family = |l: &ListenerModel| l.protocol.as_ref().map(std::mem::discriminant);
            if family(other) != family(me) {
                verdicts[i] = Some((
                    spec::PROTOCOL_CONFLICT,
                    format!(
                        "port {} is also used by listener {:?} with another protocol",
                        me.port, other.name
                    ),
                ));
                break;
            }
            if other.hostname == me.hostname {
                let message = if me.protocol.is_some_and(Protocol::uses_hostname) {
                    format!(
                        "listener {:?} uses the same port {} and hostname {:?}",
                        other.name,
                        me.port,
                        me.hostname.as_deref().unwrap_or("")
                    )
                } else {
                    format!(
                        "listener {:?} uses the same port {} and protocol",
                        other.name, me.port
                    )
                };
                verdicts[i] = Some((spec::HOSTNAME_CONFLICT, message));
                break;
            }
        }
    }
    for i in 0..listeners.len() {
        if !accepted[i] || verdicts[i].is_some() {
            continue;
        }
        let me = &listeners[i];
        // Only a served listener of the same transport (TCP or UDP) holds
        // the container port.
        let udp = |l: &ListenerModel| l.protocol.is_some_and(Protocol::is_udp);
        if let Some((_, other)) = listeners
            .iter()
            .enumerate()
            .find(|(j, o)| {
                accepted[*j]
                    && o.port != me.port
                    && o.container_port == me.container_port
                    && udp(o) == udp(me)
            })
            .filter(|_| me.port < 1024)
        {
            let msg = format!(
                "port {} maps to container port {}, which listener {:?} uses",
                me.port, me.container_port, other.name
            );
            listeners[i]
                .conditions
                .set(spec::ACCEPTED, false, spec::PORT_UNAVAILABLE, msg);
        }
    }
    for (l, verdict) in listeners.iter_mut().zip(verdicts) {
        match verdict {
            Some((reason, message)) => {
                l.conditions
                    .set(spec::CONFLICTED, true, reason, message.clone());
                l.conditions.set(spec::ACCEPTED, false, reason, message);
            }
            None => l
                .conditions
                .set(spec::CONFLICTED, false, spec::NO_CONFLICTS, "no conflicts"),
        }
    }
}
