//! TLSRoutes, TCPRoutes and UDPRoutes compiled into `L4RouteModel`s: no
//! matches and no filters, only weighted backends. These routes cannot tell
//! connections apart beyond the listener (and, for TLS, the SNI hostname), so
//! portico serves one rule per route: later rules are reported as dropped.
//! Competing claims on a listener are settled by `settle::streams`.

use std::sync::Arc;

use gateway_api::experimental::tcproutes::TcpRoute;
use gateway_api::experimental::tlsroutes::TlsRoute;
use gateway_api::experimental::udproutes::UdpRoute;

use crate::identity::GATEWAY_GROUP;
use crate::translate::compile::backends::{BackendRef, BackendResolver, ClusterKey, Referrer};
use crate::translate::compile::http::hostname_error;
use crate::translate::compile::routes::{RouteHead, RouteKind, parent_refs};
use crate::translate::field_path::FieldPath;

/// A compiled TLSRoute, TCPRoute or UDPRoute; owned, like `HttpRouteModel`.
#[derive(Clone, Debug, PartialEq)]
pub struct L4RouteModel {
    pub head: RouteHead,
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

pub fn compile_tls(resolver: &mut BackendResolver<'_>, route: &TlsRoute) -> L4RouteModel {
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

pub fn compile_tcp(resolver: &mut BackendResolver<'_>, route: &TcpRoute) -> L4RouteModel {
    let parents = route.spec.parent_refs.as_deref().unwrap_or_default();
    let head = RouteHead::new(RouteKind::Tcp, route, &[], parent_refs!(parents));
    compile(
        resolver,
        namespace_of(route),
        head,
        raw_rules!(route.spec.rules),
    )
}

pub fn compile_udp(resolver: &mut BackendResolver<'_>, route: &UdpRoute) -> L4RouteModel {
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

fn compile(
    resolver: &mut BackendResolver<'_>,
    namespace: &str,
    mut head: RouteHead,
    rules: Vec<Vec<RawBackend<'_>>>,
) -> L4RouteModel {
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

fn compile_rule(
    resolver: &mut BackendResolver<'_>,
    referrer: Referrer<'_>,
    head: &mut RouteHead,
    field: &str,
    rule: Vec<RawBackend<'_>>,
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
