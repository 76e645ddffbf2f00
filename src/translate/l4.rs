//! TLSRoutes, TCPRoutes and UDPRoutes compiled into `L4RouteModel`s: no
//! matches and no filters, only weighted backends. These routes cannot tell
//! connections apart beyond the listener (and, for TLS, the SNI hostname), so
//! portico serves one rule per route: later rules are reported as dropped.
//!
//! Where several routes claim the same listener (TCP, UDP) or the same SNI
//! hostname on it (TLS), the oldest route wins, then the first by
//! namespace/name, as the specification orders competing routes; the others
//! are not accepted on that listener.

use std::collections::BTreeMap;
use std::sync::Arc;

use gateway_api::experimental::tcproutes::TcpRoute;
use gateway_api::experimental::tlsroutes::TlsRoute;
use gateway_api::experimental::udproutes::UdpRoute;

use super::attachment::Lost;
use super::backends::{BackendRef, BackendResolver, ClusterKey, Referrer};
use super::field_path::FieldPath;
use super::gateways::{GATEWAY_GROUP, GatewayModel};
use super::http::hostname_error;
use super::route_table;
use super::routes::{RouteHead, RouteKind, parent_refs};

#[derive(Clone, Debug, PartialEq)]
pub struct L4RouteModel<'a> {
    pub head: RouteHead<'a>,
    /// The backends of the served rule; empty when no rule is valid.
    pub backends: Vec<L4Backend>,
    pub has_rule: bool,
}

/// A backend and its share of connections (or datagram sessions).
/// `cluster: None` did not resolve: its share is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct L4Backend {
    pub cluster: Option<Arc<ClusterKey>>,
    pub weight: u32,
}

/// One rule's backendRefs, as all three kinds write them.
struct RawBackend<'a> {
    group: Option<&'a str>,
    kind: Option<&'a str>,
    name: &'a str,
    namespace: Option<&'a str>,
    port: Option<i32>,
    weight: Option<i32>,
}

macro_rules! raw_rules {
    ($rules:expr) => {
        $rules
            .iter()
            .map(|r| {
                r.backend_refs
                    .iter()
                    .map(|b| RawBackend {
                        group: b.group.as_deref(),
                        kind: b.kind.as_deref(),
                        name: &b.name,
                        namespace: b.namespace.as_deref(),
                        port: b.port,
                        weight: b.weight,
                    })
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
}

pub fn compile_tls<'a>(
    resolver: &mut BackendResolver<'a>,
    route: &'a TlsRoute,
) -> L4RouteModel<'a> {
    let parents = route.spec.parent_refs.as_deref().unwrap_or_default();
    let mut head = RouteHead::new(
        RouteKind::Tls,
        route,
        &route.spec.hostnames,
        parent_refs!(parents),
    );
    head.route_error = hostname_error(&route.spec.hostnames);
    compile(
        resolver,
        namespace_of(route),
        head,
        raw_rules!(route.spec.rules),
    )
}

pub fn compile_tcp<'a>(
    resolver: &mut BackendResolver<'a>,
    route: &'a TcpRoute,
) -> L4RouteModel<'a> {
    let parents = route.spec.parent_refs.as_deref().unwrap_or_default();
    let head = RouteHead::new(RouteKind::Tcp, route, &[], parent_refs!(parents));
    compile(
        resolver,
        namespace_of(route),
        head,
        raw_rules!(route.spec.rules),
    )
}

pub fn compile_udp<'a>(
    resolver: &mut BackendResolver<'a>,
    route: &'a UdpRoute,
) -> L4RouteModel<'a> {
    let parents = route.spec.parent_refs.as_deref().unwrap_or_default();
    let head = RouteHead::new(RouteKind::Udp, route, &[], parent_refs!(parents));
    compile(
        resolver,
        namespace_of(route),
        head,
        raw_rules!(route.spec.rules),
    )
}

fn namespace_of<K: kube::Resource>(route: &K) -> &str {
    route.meta().namespace.as_deref().unwrap_or_default()
}

fn compile<'a>(
    resolver: &mut BackendResolver<'a>,
    namespace: &'a str,
    mut head: RouteHead<'a>,
    rules: Vec<Vec<RawBackend<'a>>>,
) -> L4RouteModel<'a> {
    let rules_field = FieldPath::Root("spec.rules");
    let mut backends = Vec::new();
    let mut has_rule = false;
    for (index, rule) in rules.into_iter().enumerate() {
        let field = rules_field.index(index);
        if has_rule {
            head.invalid_rules.push(format!(
                "{field}: a {} is served by its first valid rule; this rule is ignored",
                head.kind.name()
            ));
            continue;
        }
        let referrer = Referrer {
            group: GATEWAY_GROUP,
            kind: head.kind.name(),
            namespace,
        };
        match compile_rule(resolver, referrer, &mut head, &field.to_string(), rule) {
            Ok(b) => {
                backends = b;
                has_rule = true;
            }
            Err(e) => head.invalid_rules.push(e),
        }
    }
    head.services = resolver.take_referenced();
    if !has_rule && head.invalid_rules.is_empty() {
        head.invalid_rules.push("spec.rules: no rule".to_string());
    }
    L4RouteModel {
        head,
        backends,
        has_rule,
    }
}

fn compile_rule<'a>(
    resolver: &mut BackendResolver<'a>,
    referrer: Referrer<'a>,
    head: &mut RouteHead<'a>,
    field: &str,
    rule: Vec<RawBackend<'a>>,
) -> Result<Vec<L4Backend>, String> {
    if rule.is_empty() {
        return Err(format!(
            "{field}.backendRefs: at least one backend is required"
        ));
    }
    let mut out = Vec::new();
    for (i, b) in rule.into_iter().enumerate() {
        let weight = b.weight.unwrap_or(1);
        let weight = u32::try_from(weight)
            .ok()
            .filter(|w| *w <= 1_000_000)
            .ok_or_else(|| {
                format!("{field}.backendRefs[{i}].weight: {weight} is not within 0-1000000")
            })?;
        let reference = BackendRef {
            group: b.group,
            kind: b.kind,
            name: b.name,
            namespace: b.namespace,
            port: b.port,
        };
        let cluster = match resolver.resolve(referrer, reference) {
            Ok(c) => Some(c),
            Err(e) => {
                if e.report {
                    head.unresolved.push(e);
                }
                None
            }
        };
        out.push(L4Backend { cluster, weight });
    }
    Ok(out)
}

/// Where an L4 route attached on one Gateway: the route (an index into the
/// compiled models), its parent entry, the listener and the SNI hostnames
/// (`*` for TCP and UDP).
#[derive(Clone, Debug)]
pub struct L4Placement {
    pub route: usize,
    pub parent: usize,
    pub listener: usize,
    pub hostnames: Vec<String>,
}

/// Settles competing claims on one Gateway. `placements` come in route age
/// order (oldest first), so the first claim on a port and hostname wins.
/// A TLS hostname belongs to the most specific listener that covers it;
/// other listeners drop it. Placements left without hostnames are removed
/// and returned.
pub fn settle(
    gateway: &GatewayModel,
    models: &[L4RouteModel<'_>],
    placements: &mut Vec<L4Placement>,
) -> Vec<Lost> {
    let mut claims: BTreeMap<(i32, bool, String), usize> = BTreeMap::new();
    let mut lost = Vec::new();
    placements.retain_mut(|p| {
        let listener = &gateway.listeners[p.listener];
        let port = listener.port;
        let udp = listener.protocol.is_some_and(|x| x.is_udp());
        let mut taken_by = None;
        p.hostnames.retain(|h| {
            if models[p.route].head.kind == RouteKind::Tls
                && route_table::owner(gateway, port, h) != Some(p.listener)
            {
                return false;
            }
            match claims.get(&(port, udp, h.clone())) {
                Some(winner) if *winner != p.route => {
                    taken_by = Some(*winner);
                    false
                }
                _ => {
                    claims.insert((port, udp, h.clone()), p.route);
                    true
                }
            }
        });
        if !p.hostnames.is_empty() {
            return true;
        }
        let head = &models[p.route].head;
        let why = match taken_by {
            Some(w) => format!(
                "{} {} is older (or first by name) and already serves it",
                models[w].head.kind.name(),
                models[w].head.key
            ),
            None => "a more specific listener owns every hostname of the route".to_string(),
        };
        let message = if head.kind.uses_hostnames() {
            format!(
                "no hostname of the route is left on {}: {why}",
                listener.describe(&gateway.key)
            )
        } else {
            format!(
                "{} carries one {}: {why}",
                listener.describe(&gateway.key),
                head.kind.name()
            )
        };
        lost.push(Lost {
            route: p.route,
            parent: p.parent,
            listener: p.listener,
            message,
        });
        false
    });
    lost
}
