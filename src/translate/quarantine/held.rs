//! Held routes in translation: the `Inputs` translated have each held route
//! replaced by the edit Envoy last accepted (or left out), and the outputs
//! carry the held route's status as its rejected edit deserves: `Accepted`
//! false, Envoy's message, what is served instead, and the route's current
//! generation. Held routes are also read back from statuses (`remembered`),
//! so a restarted portico does not send Envoy again what it rejected.

use std::collections::BTreeMap;

use super::made_of::{RouteId, RouteObject, Version, parent_gateway, remove};
use super::{Held, Verdict};
use crate::identity::CONTROLLER_NAME;
use crate::inputs::{Inputs, ObjectKey};
use crate::translate::Outputs;
use crate::translate::compile::routes::RouteKind;
use crate::translate::conditions::{self, spec};
use crate::translate::report::{RouteParentStatus, RouteStatus};

/// The `Accepted` reason of a route Envoy rejected (portico's own; the
/// specification allows implementation reasons besides its list).
pub const REJECTED_BY_ENVOY: &str = "RejectedByEnvoy";

/// `inputs` with every held route replaced by its previous edit, or
/// removed; `None` when nothing is held.
pub fn apply(held: &BTreeMap<RouteId, Held>, inputs: &Inputs) -> Option<Inputs> {
    if held.is_empty() {
        return None;
    }
    let mut patched = inputs.clone();
    for (id, h) in held {
        match &h.previous {
            Some(previous) => previous.put(&mut patched, &id.1),
            None => remove(&mut patched, id),
        }
    }
    Some(patched)
}

/// Writes each held route's status into `outputs`.
pub fn report(held: &BTreeMap<RouteId, Held>, inputs: &Inputs, outputs: &mut Outputs) {
    for (id, h) in held {
        let Some(current) = RouteObject::find(inputs, id) else {
            continue;
        };
        let mut status = h
            .status
            .clone()
            .or_else(|| outputs.routes.get(id).cloned())
            .unwrap_or_else(|| from_parent_refs(&current, &id.1, outputs));
        let (reason, message) = explain(id.0, h);
        let generation = current.generation();
        for parent in &mut status.parents {
            conditions::replace(
                &mut parent.conditions,
                spec::ACCEPTED,
                false,
                reason,
                message.clone(),
            );
            for c in &mut parent.conditions {
                c.observed_generation = generation;
            }
        }
        if !status.parents.is_empty() {
            outputs.routes.insert(id.clone(), status);
        }
    }
}

/// Parent statuses for a route translation never saw: one per parentRef
/// naming a Gateway of the outputs.
fn from_parent_refs(route: &RouteObject, key: &ObjectKey, outputs: &Outputs) -> RouteStatus {
    let parents = route
        .parent_refs()
        .into_iter()
        .filter(|p| outputs.gateways.keys().any(|g| p.names(&key.namespace, g)))
        .map(|parent_ref| RouteParentStatus {
            parent_ref,
            controller_name: CONTROLLER_NAME,
            conditions: Vec::new(),
        })
        .collect();
    RouteStatus { parents }
}

fn explain(kind: RouteKind, h: &Held) -> (&'static str, String) {
    let served = match &h.previous {
        Some(p) => format!("its {} is still served", p.version().describe()),
        None => "it is not served".to_string(),
    };
    let gateway = format!("{}/{}", h.gateway.namespace, h.gateway.name);
    match &h.verdict {
        Verdict::Rejected => (
            REJECTED_BY_ENVOY,
            format!(
                "Envoy rejected configuration {} of Gateway {gateway}, made with this edit of the {}: {}. \
                 This edit is held back ({served}) and the Gateway's other routes keep updating; \
                 the route's next edit is tried again",
                h.snapshot,
                kind.name(),
                h.message
            ),
        ),
        Verdict::Suspected { with } => (
            spec::PENDING,
            format!(
                "Envoy rejected configuration {} of Gateway {gateway}, which changed this {} and {with} other \
                 route(s): {}. This edit is held back ({served}) while the changed routes are let \
                 through a half at a time to find the one Envoy rejects",
                h.snapshot,
                kind.name(),
                h.message
            ),
        ),
        Verdict::Remembered => (REJECTED_BY_ENVOY, h.message.clone()),
    }
}

/// Routes whose status (written by portico, for their current generation)
/// says Envoy rejected them.
pub fn remembered(inputs: &Inputs) -> BTreeMap<RouteId, Held> {
    let mut found = BTreeMap::new();
    macro_rules! scan {
        ($store:ident, $kind:expr) => {
            for (key, route) in &inputs.$store {
                let Some(generation) = route.metadata.generation else {
                    continue;
                };
                let parents = route.status.iter().flat_map(|s| s.parents.iter());
                for parent in parents.filter(|p| p.controller_name == CONTROLLER_NAME) {
                    let rejected = parent.conditions.iter().find(|c| {
                        c.type_ == spec::ACCEPTED
                            && c.reason == REJECTED_BY_ENVOY
                            && c.observed_generation == Some(generation)
                    });
                    if let Some(c) = rejected {
                        let gateway = parent_gateway(
                            parent.parent_ref.namespace.as_deref(),
                            &parent.parent_ref.name,
                            key,
                        );
                        found.insert(
                            ($kind, key.clone()),
                            Held {
                                version: Version::Generation(generation),
                                previous: None,
                                verdict: Verdict::Remembered,
                                gateway,
                                snapshot: String::new(),
                                message: c.message.clone(),
                                status: None,
                            },
                        );
                    }
                }
            }
        };
    }
    scan!(http_routes, RouteKind::Http);
    scan!(grpc_routes, RouteKind::Grpc);
    scan!(tls_routes, RouteKind::Tls);
    scan!(tcp_routes, RouteKind::Tcp);
    scan!(udp_routes, RouteKind::Udp);
    found
}
