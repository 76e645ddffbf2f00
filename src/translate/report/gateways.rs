//! Gateway, listener and ListenerSet statuses from the index, once every
//! listener has counted its routes: `Accepted`, `ResolvedRefs`, and
//! `Programmed=False/Pending` (or `Invalid`) for the status writer to
//! decide from what Envoy acknowledged.

use super::statuses::{GatewayStatus, ListenerSetStatus, ListenerStatus};
use crate::translate::conditions::{ConditionStatus, Conditions, spec};
use crate::translate::index::model::ListenerSetModel;
use crate::translate::index::{GatewayModel, ListenerModel};

/// A Gateway's status; `Programmed` stays Pending for the status writer.
pub fn gateway(gateway: &GatewayModel) -> GatewayStatus {
    let mut conditions = Conditions::new(gateway.generation);
    let own = || gateway.listeners.iter().filter(|l| l.set.is_none());
    let total = own().count();
    let ready = own().filter(|l| l.is_ready()).count();
    let invalid: Vec<&str> = own()
        .filter(|l| !l.is_ready())
        .map(|l| l.name.as_str())
        .collect();
    if let Some(e) = &gateway.parameters_error {
        conditions.set(spec::ACCEPTED, false, spec::INVALID_PARAMETERS, e.clone());
    } else if let Some(e) = &gateway.address_error {
        conditions.set(spec::ACCEPTED, false, "UnsupportedAddress", e.clone());
    } else if ready == 0 {
        conditions.set(
            spec::ACCEPTED,
            false,
            spec::LISTENERS_NOT_VALID,
            if total == 0 {
                "the Gateway has no listeners".to_string()
            } else {
                format!("no listener is valid: {}", invalid.join(", "))
            },
        );
    } else if !invalid.is_empty() {
        conditions.set(
            spec::ACCEPTED,
            true,
            spec::LISTENERS_NOT_VALID,
            format!("invalid listeners are not served: {}", invalid.join(", ")),
        );
    } else {
        conditions.set(spec::ACCEPTED, true, "Accepted", "the Gateway is valid");
    }
    if conditions.is_true(spec::ACCEPTED) {
        conditions.set(
            spec::PROGRAMMED,
            false,
            spec::PENDING,
            "configuration translated; waiting for an address, an available Envoy and Envoy's acknowledgement",
        );
    } else {
        conditions.set(
            spec::PROGRAMMED,
            false,
            spec::INVALID,
            "the Gateway is not accepted",
        );
    }
    let unresolved: Vec<&str> = own()
        .filter(|l| {
            l.conditions
                .get(spec::RESOLVED_REFS)
                .is_some_and(|c| c.status == ConditionStatus::False)
        })
        .map(|l| l.name.as_str())
        .collect();
    match &gateway.backend_client {
        Some(Err(e)) => conditions.set(spec::RESOLVED_REFS, false, e.reason, e.message.clone()),
        _ if !unresolved.is_empty() => conditions.set(
            spec::RESOLVED_REFS,
            false,
            spec::LISTENERS_NOT_RESOLVED,
            format!(
                "listeners with unresolved references: {}",
                unresolved.join(", ")
            ),
        ),
        _ => conditions.set(
            spec::RESOLVED_REFS,
            true,
            "ResolvedRefs",
            "all references resolved",
        ),
    }
    if gateway.insecure_frontend {
        conditions.set(
            spec::INSECURE_FRONTEND_VALIDATION_MODE,
            true,
            "ConfigurationChanged",
            "spec.tls.frontend allows insecure fallback: clients without a valid certificate are served",
        );
    }
    let accepted = conditions.is_true(spec::ACCEPTED);
    let listeners = own().map(|l| listener_status(l, accepted)).collect();
    let attached = gateway
        .listener_sets
        .iter()
        .filter(|s| s.accepted())
        .count();
    GatewayStatus {
        conditions: conditions.into_vec(),
        listeners,
        attached_listener_sets: (gateway.allows_listener_sets || attached > 0)
            .then(|| i32::try_from(attached).unwrap_or(i32::MAX)),
    }
}

/// One listener's status; `Programmed` stays Pending for the status writer
/// to decide from what Envoy acknowledged. A ListenerSet's conflicted
/// listener says its conflict as the reason it is not programmed.
fn listener_status(l: &ListenerModel, parent_accepted: bool) -> ListenerStatus {
    let mut c = l.conditions.clone();
    if l.is_ready() && !parent_accepted {
        c.set(
            spec::PROGRAMMED,
            false,
            spec::INVALID,
            "the Gateway is not accepted",
        );
    } else if l.is_ready() {
        c.set(
            spec::PROGRAMMED,
            false,
            spec::PENDING,
            "waiting for Envoy to acknowledge the configuration",
        );
    } else {
        let conflict = l
            .conditions
            .get(spec::CONFLICTED)
            .filter(|c| l.set.is_some() && c.status == ConditionStatus::True)
            .map(|c| c.reason);
        c.set(
            spec::PROGRAMMED,
            false,
            conflict.unwrap_or(spec::INVALID),
            "the listener is not valid",
        );
    }
    ListenerStatus {
        name: l.name.clone(),
        supported_kinds: l.kinds.clone(),
        attached_routes: l.attached_routes,
        conditions: c.into_vec(),
    }
}

/// A ListenerSet's status: an accepted one is Programmed=False/Pending until
/// the status writer sees its Gateway programmed.
pub fn listener_set(set: &ListenerSetModel, gateway: &GatewayModel) -> ListenerSetStatus {
    let mut conditions = set.conditions.clone();
    let accepted = set.accepted();
    if accepted {
        conditions.set(
            spec::PROGRAMMED,
            false,
            spec::PENDING,
            format!(
                "listeners translated; waiting for Gateway {} to be programmed",
                gateway.key
            ),
        );
    }
    let listeners = set
        .listeners(gateway)
        .iter()
        .map(|l| listener_status(l, accepted))
        .collect();
    ListenerSetStatus {
        conditions: conditions.into_vec(),
        listeners,
    }
}
