//! HTTPRoutes and GRPCRoutes on one listener: a route of one kind loses its
//! placement where an older route of the other kind already serves an
//! intersecting hostname, since requests for that hostname could not be
//! told apart.

use std::collections::BTreeMap;

use super::Loss;
use crate::inputs::ObjectKey;
use crate::translate::attach::Attachment;
use crate::translate::compile::routes::RouteKind;
use crate::translate::compile::{Compiled, RouteId};
use crate::translate::hostnames;
use crate::translate::index::GatewayIndex;

/// A route kept on a listener, with the hostnames it serves there.
type Kept = (RouteId, Vec<String>);

/// Per Gateway and listener, the routes kept there so far, by kind (HTTP,
/// then GRPC): a route looks for rivals among the other kind's only, so
/// thousands of routes of one kind on a listener cost one pass.
#[derive(Default)]
pub(super) struct Claims {
    kept: BTreeMap<(ObjectKey, usize), [Vec<Kept>; 2]>,
}

/// The slot of a kind among a listener's kept routes.
fn slot_of(kind: RouteKind) -> usize {
    usize::from(kind != RouteKind::Http)
}

impl Claims {
    /// Keeps the placements of `route` no older route of the other kind
    /// contests; returns the others' losses.
    pub(super) fn settle(
        &mut self,
        index: &GatewayIndex,
        compiled: &Compiled,
        route: RouteId,
        placements: &mut Vec<Attachment>,
    ) -> Vec<Loss> {
        let kind = compiled.head(route).kind;
        let mut losses = Vec::new();
        placements.retain(|a| {
            let slots = self
                .kept
                .entry((a.gateway.clone(), a.listener))
                .or_default();
            let [http, grpc] = slots;
            let (own, others) = if slot_of(kind) == 0 {
                (http, &*grpc)
            } else {
                (grpc, &*http)
            };
            let rival = others.iter().find(|(other, hosts)| {
                compiled.head(*other).kind != kind && intersects(hosts, &a.hostnames)
            });
            let Some((other, _)) = rival else {
                own.push((route, a.hostnames.clone()));
                return true;
            };
            let other = compiled.head(*other);
            let listener = index
                .gateways
                .get(&a.gateway)
                .and_then(|g| g.listeners.get(a.listener))
                .map(|l| l.describe(&a.gateway))
                .unwrap_or_default();
            losses.push(Loss {
                parent: a.parent,
                message: format!(
                    "{} {} is older (or first by name) and serves an intersecting hostname on {listener}; an HTTPRoute and a GRPCRoute cannot share one",
                    other.kind.name(),
                    other.key,
                ),
            });
            false
        });
        losses
    }
}

fn intersects(a: &[String], b: &[String]) -> bool {
    let meet = |x: &str, y: &str| {
        x == y || x == "*" || y == "*" || hostnames::covers(x, y) || hostnames::covers(y, x)
    };
    a.iter().any(|x| b.iter().any(|y| meet(x, y)))
}
