//! One listener validated on its own (port, protocol, TLS mode and
//! certificates, client validation, hostname, allowed route kinds and
//! namespaces), then a Gateway's listeners checked against each other
//! (duplicate names, ports Envoy reserves, conflicts on a shared port,
//! overlapping TLS hostnames).

use std::sync::Arc;

use gateway_api::experimental::gateways::{
    Gateway, GatewayListeners, GatewayListenersAllowedRoutesNamespacesFrom, GatewayListenersTlsMode,
};

use super::certificates;
use super::client_validation;
use super::model::RouteGroupKind;
use super::model::{ListenerModel, NamespacePolicy, Protocol, ReservedPort, container_port};
use crate::identity::GATEWAY_GROUP;
use crate::inputs::Inputs;
use crate::translate::conditions::{ConditionStatus, Conditions, spec};
use crate::translate::hostnames;
use crate::translate::labels::Selector;

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
pub(super) fn mark_conflicts(listeners: &mut [ListenerModel]) {
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
