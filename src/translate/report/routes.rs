//! Route statuses: one entry per route with at least one parentRef naming a
//! Gateway of ours (or one of its ListenerSets), as attachment and settling
//! left them.

use std::collections::BTreeMap;

use super::statuses::RouteStatus;
use crate::inputs::ObjectKey;
use crate::translate::attach::Attached;
use crate::translate::compile::Compiled;
use crate::translate::compile::routes::RouteKind;

/// The status of every route naming one of our Gateways.
pub fn routes(
    compiled: &Compiled,
    attached: Vec<Attached>,
) -> BTreeMap<(RouteKind, ObjectKey), RouteStatus> {
    compiled
        .heads()
        .zip(attached)
        .filter(|(_, a)| !a.parents.is_empty())
        .map(|((head, _), a)| {
            let status = RouteStatus { parents: a.parents };
            ((head.kind, head.key.clone()), status)
        })
        .collect()
}
