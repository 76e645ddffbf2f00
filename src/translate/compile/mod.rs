//! Stage 2, compile: every route of every kind compiled once, whichever
//! Gateway it names. HTTPRoutes and GRPCRoutes become `HttpRouteModel`s
//! (`http`, with `grpc` writing GRPCRoute rules as HTTPRoute rules first),
//! TLSRoutes, TCPRoutes and UDPRoutes `L4RouteModel`s (`l4`). Every
//! backendRef is resolved on the way (`backends`, with the BackendTLSPolicies
//! of `backend_tls`); each route's `RouteHead` (`routes`) keeps what later
//! stages read: identity, parentRefs, hostnames, dropped rules, unresolved
//! references and the Services it names.

pub mod backend_tls;
pub mod backends;
pub mod grpc;
pub mod http;
pub mod l4;
pub mod routes;

use gateway_api::experimental::httproutes::HttpRouteRules;

use self::backends::BackendResolver;
use self::http::HttpRouteModel;
use self::l4::L4RouteModel;
use self::routes::RouteHead;
use crate::inputs::Inputs;

/// Every route, compiled.
pub struct Compiled<'a> {
    /// HTTPRoutes, then GRPCRoutes, each in key order.
    pub http: Vec<HttpRouteModel<'a>>,
    /// TLSRoutes, TCPRoutes and UDPRoutes, oldest first (then by
    /// namespace/name): the order their claims are served in.
    pub l4: Vec<L4RouteModel<'a>>,
}

/// One route of either family, by its position in `Compiled::heads`.
pub type RouteId = usize;

impl<'a> Compiled<'a> {
    /// Every route's head with whether any rule survived compilation:
    /// `http` first, then `l4`. A `RouteId` is a position in this order.
    pub fn heads(&self) -> impl Iterator<Item = (&RouteHead<'a>, bool)> {
        let http = self.http.iter().map(|m| (&m.head, !m.rules.is_empty()));
        let l4 = self.l4.iter().map(|m| (&m.head, m.has_rule));
        http.chain(l4)
    }

    pub fn head(&self, route: RouteId) -> &RouteHead<'a> {
        match self.http.get(route) {
            Some(m) => &m.head,
            None => &self.l4[route - self.http.len()].head,
        }
    }

    /// The position of an L4 route among `l4`, if `route` is one.
    pub fn l4_index(&self, route: RouteId) -> Option<usize> {
        route.checked_sub(self.http.len())
    }
}

/// Each GRPCRoute's rules written as HTTPRoute rules; the compiled models
/// borrow them, so they live as long as the translation.
pub fn grpc_rules(inputs: &Inputs) -> Vec<Vec<Result<HttpRouteRules, String>>> {
    inputs
        .grpc_routes
        .values()
        .map(|r| grpc::http_rules(r))
        .collect()
}

/// Compiles every route of `inputs`.
pub fn routes<'a>(
    inputs: &'a Inputs,
    resolver: &mut BackendResolver<'a>,
    grpc_rules: &'a [Vec<Result<HttpRouteRules, String>>],
) -> Compiled<'a> {
    let mut http: Vec<_> = inputs
        .http_routes
        .values()
        .map(|r| http::compile_route(resolver, r))
        .collect();
    for (route, rules) in inputs.grpc_routes.values().zip(grpc_rules) {
        http.push(grpc::compile_route(resolver, route, rules));
    }
    let mut l4 = Vec::new();
    for r in inputs.tls_routes.values() {
        l4.push(l4::compile_tls(resolver, r));
    }
    for r in inputs.tcp_routes.values() {
        l4.push(l4::compile_tcp(resolver, r));
    }
    for r in inputs.udp_routes.values() {
        l4.push(l4::compile_udp(resolver, r));
    }
    // Oldest first: the first claim on a listener or SNI hostname wins.
    l4.sort_by(|a, b| a.head.age_order(&b.head));
    Compiled { http, l4 }
}
