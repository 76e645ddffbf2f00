//! Stage 2, compile: every route of every kind compiled once, whichever
//! Gateway it names. HTTPRoutes and GRPCRoutes become `HttpRouteModel`s
//! (`http`, with `grpc` writing GRPCRoute rules as HTTPRoute rules first),
//! TLSRoutes, TCPRoutes and UDPRoutes `L4RouteModel`s (`l4`). Every
//! backendRef is resolved on the way (`backends`, with the BackendTLSPolicies
//! of `backend_tls`); each route's `RouteHead` (`routes`) keeps what later
//! stages read: identity, parentRefs, hostnames, dropped rules, unresolved
//! references and the Services it names.
//!
//! Models own their values, so a route that did not change keeps the model
//! an earlier translation compiled (`translate::memo::routes` decides); with
//! the memo off every route is compiled.

pub mod backend_tls;
pub mod backends;
pub mod grpc;
pub mod http;
pub mod l4;
pub mod routes;

use std::sync::Arc;

use self::backends::BackendResolver;
use self::http::HttpRouteModel;
use self::l4::L4RouteModel;
use self::routes::RouteHead;
use crate::inputs::Inputs;
use crate::translate::memo::CompileScope;

/// Every route, compiled. Models are shared: a route that did not change
/// keeps the model the last translation compiled (`translate::memo`).
pub struct Compiled {
    /// HTTPRoutes, then GRPCRoutes, each in key order.
    pub http: Vec<Arc<HttpRouteModel>>,
    /// TLSRoutes, TCPRoutes and UDPRoutes, oldest first (then by
    /// namespace/name): the order their claims are served in.
    pub l4: Vec<Arc<L4RouteModel>>,
}

/// One route of either family, by its position in `Compiled::heads`.
pub type RouteId = usize;

impl Compiled {
    /// Every route's head with whether any rule survived compilation:
    /// `http` first, then `l4`. A `RouteId` is a position in this order.
    pub fn heads(&self) -> impl Iterator<Item = (&RouteHead, bool)> {
        let http = self.http.iter().map(|m| (&m.head, !m.rules.is_empty()));
        let l4 = self.l4.iter().map(|m| (&m.head, m.has_rule));
        http.chain(l4)
    }

    pub fn head(&self, route: RouteId) -> &RouteHead {
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

/// Compiles every route of `inputs`, or takes its model from `memo` when
/// neither the route nor anything its compilation read changed.
pub fn routes(
    inputs: &Inputs,
    resolver: &mut BackendResolver<'_>,
    memo: &mut CompileScope<'_>,
) -> Compiled {
    let mut http: Vec<_> = inputs
        .http_routes
        .iter()
        .map(|(key, r)| memo.route(key, r, || http::compile_route(resolver, r)))
        .collect();
    for (key, r) in inputs.grpc_routes.iter() {
        http.push(memo.route(key, r, || grpc::compile_route(resolver, r)));
    }
    let mut l4 = Vec::new();
    for (key, r) in inputs.tls_routes.iter() {
        l4.push(memo.route(key, r, || l4::compile_tls(resolver, r)));
    }
    for (key, r) in inputs.tcp_routes.iter() {
        l4.push(memo.route(key, r, || l4::compile_tcp(resolver, r)));
    }
    for (key, r) in inputs.udp_routes.iter() {
        l4.push(memo.route(key, r, || l4::compile_udp(resolver, r)));
    }
    // Oldest first: the first claim on a listener or SNI hostname wins.
    l4.sort_by(|a, b| a.head.age_order(&b.head));
    Compiled { http, l4 }
}
