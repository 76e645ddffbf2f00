//! Stage 4, settle: where routes compete for one listener, the oldest route
//! (then the first by namespace/name) keeps it, once, for every route kind,
//! before any listener counts its routes.
//!
//! In: the compiled routes and their attachments. Out: the same attachments
//! with the lost placements (or, for TLSRoutes, hostnames) removed, and each
//! parent left with no placement at all turned `Accepted=False/
//! NotAllowedByListeners` saying which route won. Two rules: `hostnames`
//! (an HTTPRoute and a GRPCRoute may not share a hostname on a listener) and
//! `streams` (a TCP or UDP listener carries one route, a TLS listener one
//! route per SNI hostname, held by the most specific listener).

mod hostnames;
mod streams;

use crate::translate::attach::Attached;
use crate::translate::compile::{Compiled, RouteId};
use crate::translate::conditions::{self, spec};
use crate::translate::index::GatewayIndex;

/// A placement a route lost: its parent entry and why.
struct Loss {
    parent: usize,
    message: String,
}

/// Settles every competing claim, oldest route first.
pub fn conflicts(index: &GatewayIndex, compiled: &Compiled, attached: &mut [Attached]) {
    let mut order: Vec<RouteId> = (0..attached.len()).collect();
    order.sort_by(|a, b| compiled.head(*a).age_order(compiled.head(*b)));
    let mut http = hostnames::Claims::default();
    let mut l4 = streams::Claims::default();
    for route in order {
        let Some(placements) = attached.get_mut(route).map(|a| &mut a.placements) else {
            continue;
        };
        let losses = match compiled.l4_index(route) {
            None => http.settle(index, compiled, route, placements),
            Some(_) => l4.settle(index, compiled, route, placements),
        };
        if let Some(a) = attached.get_mut(route) {
            refuse(a, losses);
        }
    }
}

/// A parent left without any placement is no longer accepted; the last
/// loss names why.
fn refuse(attached: &mut Attached, losses: Vec<Loss>) {
    for loss in losses {
        let kept = attached.placements.iter().any(|a| a.parent == loss.parent);
        if kept {
            continue;
        }
        if let Some(parent) = attached.parents.get_mut(loss.parent) {
            conditions::replace(
                &mut parent.conditions,
                spec::ACCEPTED,
                false,
                spec::NOT_ALLOWED_BY_LISTENERS,
                loss.message,
            );
        }
    }
}
