//! Stage 5, tables: each Gateway's settled placements arranged for Envoy.
//! HTTPRoutes and GRPCRoutes go into route tables (`http`: per port, per
//! hostname, entries in the specification's precedence with wildcard
//! fallbacks); TLS, TCP and UDP routes stay a list of placements in route
//! age order, one filter chain each.

pub mod http;

use std::collections::BTreeMap;

use self::http::{Placement, PortRoutes};
use crate::inputs::ObjectKey;
use crate::translate::attach::Attached;
use crate::translate::compile::Compiled;
use crate::translate::index::GatewayIndex;

/// Where an L4 route is served on one Gateway: the route (an index into
/// `Compiled::l4`), the listener and the SNI hostnames (`*` for TCP and
/// UDP).
#[derive(Clone, Debug)]
pub struct L4Placement {
    pub route: usize,
    pub listener: usize,
    pub hostnames: Vec<String>,
}

/// What one Gateway serves.
#[derive(Debug, Default)]
pub struct GatewayTables<'a> {
    pub http: Vec<PortRoutes<'a>>,
    pub l4: Vec<L4Placement>,
}

/// The tables of every Gateway of the index.
pub fn build<'a>(
    index: &GatewayIndex,
    compiled: &'a Compiled,
    attached: &[Attached],
) -> BTreeMap<ObjectKey, GatewayTables<'a>> {
    let mut routes: BTreeMap<&ObjectKey, Vec<Placement<'a>>> = BTreeMap::new();
    let mut l4: BTreeMap<&ObjectKey, Vec<L4Placement>> = BTreeMap::new();
    for (route, a) in attached.iter().enumerate() {
        for p in &a.placements {
            match compiled.l4_index(route) {
                None => routes.entry(&p.gateway).or_default().push(Placement {
                    route: &compiled.http[route],
                    listener: p.listener,
                    hostnames: p.hostnames.clone(),
                }),
                Some(route) => l4.entry(&p.gateway).or_default().push(L4Placement {
                    route,
                    listener: p.listener,
                    hostnames: p.hostnames.clone(),
                }),
            }
        }
    }
    index
        .gateways
        .iter()
        .map(|(key, gateway)| {
            let placements = routes.remove(key).unwrap_or_default();
            let tables = GatewayTables {
                http: http::build(gateway, &placements),
                l4: l4.remove(key).unwrap_or_default(),
            };
            (key.clone(), tables)
        })
        .collect()
}
