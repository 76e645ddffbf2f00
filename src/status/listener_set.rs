//! What only the running system knows about a ListenerSet: whether the Envoys
//! of its Gateway serve it. An accepted ListenerSet is `Programmed` exactly
//! when its Gateway is (an address, an available Envoy, the configuration
//! holding its listeners acknowledged), and its valid listeners with it; an
//! Envoy rejection makes it `Invalid` with Envoy's message, anything else the
//! Gateway still waits for `ParentNotProgrammed`. Pure: everything comes in
//! as arguments.

use super::gateway::{Observed, addresses, program_listeners, programmed, set};
use crate::translate::conditions::{holds, spec};
use crate::translate::index::listener_sets::PARENT_NOT_PROGRAMMED;
use crate::translate::report::ListenerSetStatus;

/// The ListenerSet's status with `Programmed` decided from what was observed
/// of its Gateway (`gateway`).
pub fn observe(translated: &ListenerSetStatus, gateway: Observed<'_>) -> ListenerSetStatus {
    let mut status = translated.clone();
    let accepted = holds(&status.conditions, spec::ACCEPTED);
    if !accepted {
        return status;
    }
    let addresses = addresses(gateway.service);
    let (ok, reason, message) = programmed(&addresses, gateway);
    let generation = status.conditions.iter().find_map(|c| c.observed_generation);
    let (own_reason, own_message) = match (ok, reason) {
        (true, _) => (spec::PROGRAMMED, message.clone()),
        (false, spec::INVALID) => (spec::INVALID, message.clone()),
        (false, _) => (
            PARENT_NOT_PROGRAMMED,
            format!("the Gateway is not programmed: {message}").into(),
        ),
    };
    set(
        &mut status.conditions,
        ok,
        own_reason,
        own_message,
        generation,
    );
    program_listeners(&mut status.listeners, ok, reason, message);
    status
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Service;

    use super::*;
    use crate::translate::conditions::Condition;
    use crate::translate::conditions::ConditionStatus;
    use crate::translate::report::ListenerStatus;
    use crate::xds::hub::GatewayFeedback;

    fn condition(type_: &'static str, status: bool, reason: &'static str) -> Condition {
        Condition {
            type_,
            status: status.into(),
            reason,
            message: "".into(),
            observed_generation: Some(3),
        }
    }

    fn translated(accepted: bool) -> ListenerSetStatus {
        let reason = if accepted { "Accepted" } else { "NotAllowed" };
        ListenerSetStatus {
            conditions: vec![
                condition(spec::ACCEPTED, accepted, reason),
                condition(spec::PROGRAMMED, false, spec::PENDING),
            ],
            listeners: vec![
                ListenerStatus {
                    name: "ok".into(),
                    supported_kinds: vec![],
                    attached_routes: 0,
                    conditions: vec![
                        condition(spec::ACCEPTED, true, "Accepted"),
                        condition(spec::PROGRAMMED, false, spec::PENDING),
                    ],
                },
                ListenerStatus {
                    name: "conflicted".into(),
                    supported_kinds: vec![],
                    attached_routes: 0,
                    conditions: vec![
                        condition(spec::ACCEPTED, false, spec::HOSTNAME_CONFLICT),
                        condition(spec::CONFLICTED, true, spec::HOSTNAME_CONFLICT),
                        condition(spec::PROGRAMMED, false, spec::HOSTNAME_CONFLICT),
                    ],
                },
            ],
        }
    }

    fn programmed_of(conditions: &[Condition]) -> (ConditionStatus, &'static str) {
        conditions
            .iter()
            .find(|c| c.type_ == spec::PROGRAMMED)
            .map(|c| (c.status, c.reason))
            .expect("Programmed")
    }

    #[test]
    fn programmed_follows_the_gateway() {
        let service: Service = serde_json::from_value(serde_json::json!({
            "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.7"}]}}
        }))
        .expect("service");
        let deployment: Deployment =
            serde_json::from_value(serde_json::json!({"status": {"availableReplicas": 1}}))
                .expect("deployment");
        let acked = GatewayFeedback {
            streams: 1,
            acked: Some("v1".into()),
            rejected: None,
        };
        let mut gateway = Observed {
            service: Some(&service),
            deployment: Some(&deployment),
            feedback: Some(&acked),
            current_version: Some("v1"),
            requested: &[],
        };
        let s = observe(&translated(true), gateway);
        assert_eq!(
            programmed_of(&s.conditions),
            (ConditionStatus::True, spec::PROGRAMMED)
        );
        assert_eq!(
            programmed_of(&s.listeners[0].conditions),
            (ConditionStatus::True, spec::PROGRAMMED)
        );
        assert_eq!(
            programmed_of(&s.listeners[1].conditions),
            (ConditionStatus::False, spec::HOSTNAME_CONFLICT),
            "a conflicted listener keeps its reason"
        );

        gateway.service = None;
        let s = observe(&translated(true), gateway);
        assert_eq!(
            programmed_of(&s.conditions),
            (ConditionStatus::False, PARENT_NOT_PROGRAMMED)
        );

        let rejected = GatewayFeedback {
            streams: 1,
            acked: None,
            rejected: Some(("v1".into(), "bad".into())),
        };
        gateway.feedback = Some(&rejected);
        let s = observe(&translated(true), gateway);
        assert_eq!(
            programmed_of(&s.conditions),
            (ConditionStatus::False, spec::INVALID)
        );

        let s = observe(&translated(false), gateway);
        assert_eq!(s, translated(false), "not accepted: as translated");
    }
}
