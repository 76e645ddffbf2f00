//! What only the running system knows about a Gateway, folded into the status
//! translation computed: `status.addresses` from the fleet Service's load
//! balancer ingress, and `Programmed` (an address, every address the Gateway
//! asked for in `spec.addresses`, an available Envoy replica, and the current
//! configuration acknowledged by Envoy; a NACK makes it False with Envoy's
//! message). Pure: everything comes in as arguments.

use std::borrow::Cow;

use gateway_api::experimental::gateways::Gateway;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use serde::Serialize;

use crate::translate::conditions::{Condition, holds, spec};
use crate::translate::report::{GatewayStatus, ListenerStatus};
use crate::xds::hub::GatewayFeedback;

/// One entry of `Gateway.status.addresses`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GatewayAddress {
    #[serde(rename = "type")]
    pub type_: &'static str,
    pub value: String,
}

/// What the cluster and the Envoys report for one Gateway.
#[derive(Clone, Copy, Debug, Default)]
pub struct Observed<'a> {
    pub service: Option<&'a Service>,
    pub deployment: Option<&'a Deployment>,
    pub feedback: Option<&'a GatewayFeedback>,
    /// The version of the snapshot the hub currently serves this Gateway.
    pub current_version: Option<&'a str>,
    /// The IP addresses the Gateway asks for in `spec.addresses`.
    pub requested: &'a [String],
}

/// The IP addresses a Gateway asks for in `spec.addresses` (entries of other
/// types are refused by translation before anything is provisioned).
pub fn requested(gateway: &Gateway) -> Vec<String> {
    gateway
        .spec
        .addresses
        .iter()
        .flatten()
        .filter(|a| a.r#type.as_deref().unwrap_or("IPAddress") == "IPAddress")
        .filter_map(|a| a.value.clone())
        .collect()
}

/// `status.addresses`: the load balancer's IPs and hostnames; for a fleet
/// Service of type ClusterIP or NodePort (GatewayParameters
/// `service.type`), which no load balancer serves, its cluster IPs.
pub fn addresses(service: Option<&Service>) -> Vec<GatewayAddress> {
    let spec = service.and_then(|s| s.spec.as_ref());
    if let Some(spec) = spec
        && matches!(spec.type_.as_deref(), Some("ClusterIP" | "NodePort"))
    {
        let ips = spec.cluster_ips.clone().unwrap_or_default();
        let ips = if ips.is_empty() {
            spec.cluster_ip.clone().into_iter().collect()
        } else {
            ips
        };
        return ips
            .into_iter()
            .filter(|ip| !ip.is_empty() && ip != "None")
            .map(|value| GatewayAddress {
                type_: "IPAddress",
                value,
            })
            .collect();
    }
    let ingress = service
        .and_then(|s| s.status.as_ref())
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref());
    let mut out = Vec::new();
    for i in ingress.into_iter().flatten() {
        if let Some(ip) = &i.ip {
            out.push(GatewayAddress {
                type_: "IPAddress",
                value: ip.clone(),
            });
        } else if let Some(host) = &i.hostname {
            out.push(GatewayAddress {
                type_: "Hostname",
                value: host.clone(),
            });
        }
    }
    out
}

/// The Gateway's status with `Programmed` decided from what was observed,
/// on the Gateway and on each valid listener. Returns the addresses too.
pub fn observe(
    translated: &GatewayStatus,
    observed: Observed<'_>,
) -> (GatewayStatus, Vec<GatewayAddress>) {
    let addresses = addresses(observed.service);
    let mut status = translated.clone();
    let accepted = holds(&status.conditions, spec::ACCEPTED);
    if !accepted {
        return (status, addresses);
    }
    let (programmed, reason, message) = programmed(&addresses, observed);
    let generation = status.conditions.iter().find_map(|c| c.observed_generation);
    set(
        &mut status.conditions,
        programmed,
        reason,
        message.clone(),
        generation,
    );
    program_listeners(&mut status.listeners, programmed, reason, message);
    (status, addresses)
}

/// Sets `Programmed` as decided on every listener translation put into the
/// Envoy configuration (it left them `Pending`); the others (not accepted,
/// conflicted, or an HTTPS listener without a usable certificate) keep what
/// translation said.
pub(super) fn program_listeners(
    listeners: &mut [ListenerStatus],
    programmed: bool,
    reason: &'static str,
    message: Cow<'static, str>,
) {
    for listener in listeners {
        let served = listener
            .conditions
            .iter()
            .any(|c| c.type_ == spec::PROGRAMMED && c.reason == spec::PENDING);
        if served {
            let generation = listener
                .conditions
                .iter()
                .find_map(|c| c.observed_generation);
            set(
                &mut listener.conditions,
                programmed,
                reason,
                message.clone(),
                generation,
            );
        }
    }
}

/// Whether a Gateway's Envoys serve its current configuration: the
/// `Programmed` status, reason and message.
pub(super) fn programmed(
    addresses: &[GatewayAddress],
    o: Observed<'_>,
) -> (bool, &'static str, Cow<'static, str>) {
    let current = o.current_version.unwrap_or_default();
    if let Some((version, message)) = o.feedback.and_then(|f| f.rejected.as_ref())
        && version == current
    {
        return (
            false,
            spec::INVALID,
            format!("Envoy rejected configuration version {version}: {message}").into(),
        );
    }
    let missing: Vec<&str> = o
        .requested
        .iter()
        .map(String::as_str)
        .filter(|r| !addresses.iter().any(|a| a.value == *r))
        .collect();
    if !missing.is_empty() {
        return (
            false,
            "AddressNotUsable",
            format!(
                "the load balancer has not assigned spec.addresses {}; an address outside the load balancer's pools, or already in use, is never assigned",
                missing.join(", ")
            )
            .into(),
        );
    }
    if addresses.is_empty() {
        return (
            false,
            "AddressNotAssigned",
            "waiting for the load balancer to assign an address to the Gateway's Service".into(),
        );
    }
    let available = o
        .deployment
        .and_then(|d| d.status.as_ref())
        .and_then(|s| s.available_replicas)
        .unwrap_or(0);
    if available < 1 {
        return (
            false,
            "NoResources",
            "no Envoy replica of the Gateway is available yet".into(),
        );
    }
    let acked = o.feedback.and_then(|f| f.acked.as_deref());
    if acked != Some(current) || current.is_empty() {
        return (
            false,
            spec::PENDING,
            format!("waiting for Envoy to acknowledge configuration version {current}").into(),
        );
    }
    (
        true,
        spec::PROGRAMMED,
        format!(
            "address assigned, {available} Envoy replica(s) available, configuration version {current} acknowledged"
        )
        .into(),
    )
}

pub(super) fn set(
    conditions: &mut Vec<Condition>,
    status: bool,
    reason: &'static str,
    message: Cow<'static, str>,
    generation: Option<i64>,
) {
    let condition = Condition {
        type_: spec::PROGRAMMED,
        status: status.into(),
        reason,
        message,
        observed_generation: generation,
    };
    match conditions.iter_mut().find(|c| c.type_ == spec::PROGRAMMED) {
        Some(c) => *c = condition,
        None => conditions.push(condition),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::conditions::ConditionStatus;

    fn translated() -> GatewayStatus {
        let c = |t, s: bool, r| Condition {
            type_: t,
            status: s.into(),
            reason: r,
            message: "".into(),
            observed_generation: Some(2),
        };
        GatewayStatus {
            conditions: vec![
                c(spec::ACCEPTED, true, "Accepted"),
                c(spec::PROGRAMMED, false, spec::PENDING),
            ],
            listeners: vec![
                ListenerStatus {
                    name: "http".into(),
                    supported_kinds: vec![],
                    attached_routes: 1,
                    conditions: vec![
                        c(spec::ACCEPTED, true, "Accepted"),
                        c(spec::PROGRAMMED, false, spec::PENDING),
                    ],
                },
                // Accepted (routes attach) but without a usable certificate:
                // not in the Envoy configuration.
                ListenerStatus {
                    name: "https".into(),
                    supported_kinds: vec![],
                    attached_routes: 1,
                    conditions: vec![
                        c(spec::ACCEPTED, true, "Accepted"),
                        c(spec::RESOLVED_REFS, false, spec::INVALID_CERTIFICATE_REF),
                        c(spec::PROGRAMMED, false, spec::INVALID),
                    ],
                },
            ],
            attached_listener_sets: None,
        }
    }

    fn service_with(ip: &str) -> Service {
        serde_json::from_value(serde_json::json!({
            "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}
        }))
        .expect("service")
    }

    fn deployment_with(available: i32) -> Deployment {
        serde_json::from_value(serde_json::json!({"status": {"availableReplicas": available}}))
            .expect("deployment")
    }

    fn programmed_of(s: &GatewayStatus) -> (ConditionStatus, &'static str, String) {
        let c = s
            .conditions
            .iter()
            .find(|c| c.type_ == spec::PROGRAMMED)
            .expect("programmed");
        (c.status, c.reason, c.message.to_string())
    }

    #[test]
    fn programmed_needs_address_replica_and_ack_and_reports_nacks() {
        let t = translated();
        let svc = service_with("10.0.0.7");
        let dep = deployment_with(1);
        let none = deployment_with(0);
        let acked = GatewayFeedback {
            streams: 1,
            acked: Some("v2".into()),
            rejected: None,
        };
        let mut o = Observed {
            service: None,
            deployment: Some(&dep),
            feedback: Some(&acked),
            current_version: Some("v2"),
            requested: &[],
        };
        let (s, a) = observe(&t, o);
        assert!(a.is_empty());
        assert_eq!(programmed_of(&s).1, "AddressNotAssigned");

        o.service = Some(&svc);
        o.deployment = Some(&none);
        assert_eq!(programmed_of(&observe(&t, o).0).1, "NoResources");

        o.deployment = Some(&dep);
        let (s, a) = observe(&t, o);
        assert_eq!(
            a,
            vec![GatewayAddress {
                type_: "IPAddress",
                value: "10.0.0.7".into()
            }]
        );
        assert_eq!(programmed_of(&s).0, ConditionStatus::True);
        assert_eq!(
            s.listeners[0].conditions.last().map(|c| c.status),
            Some(ConditionStatus::True),
            "valid listeners are programmed with their Gateway"
        );
        assert_eq!(
            s.listeners[1]
                .conditions
                .last()
                .map(|c| (c.status, c.reason)),
            Some((ConditionStatus::False, spec::INVALID)),
            "a listener Envoy does not serve is never programmed"
        );

        o.current_version = Some("v3");
        assert_eq!(programmed_of(&observe(&t, o).0).1, spec::PENDING);

        let rejected = GatewayFeedback {
            streams: 1,
            acked: Some("v2".into()),
            rejected: Some(("v3".into(), "invalid regex".into())),
        };
        o.feedback = Some(&rejected);
        let (status, reason, message) = programmed_of(&observe(&t, o).0);
        assert_eq!((status, reason), (ConditionStatus::False, spec::INVALID));
        assert!(message.contains("invalid regex"), "{message}");
    }

    #[test]
    fn an_address_asked_for_but_not_assigned_is_not_usable() {
        let t = translated();
        let dep = deployment_with(1);
        let acked = GatewayFeedback {
            streams: 1,
            acked: Some("v2".into()),
            rejected: None,
        };
        let asked = ["10.0.0.7".to_string(), "192.0.2.1".to_string()];
        let assigned = service_with("10.0.0.7");
        let mut o = Observed {
            service: None,
            deployment: Some(&dep),
            feedback: Some(&acked),
            current_version: Some("v2"),
            requested: &asked,
        };
        let (status, reason, message) = programmed_of(&observe(&t, o).0);
        assert_eq!(
            (status, reason),
            (ConditionStatus::False, "AddressNotUsable")
        );
        assert!(message.contains("10.0.0.7, 192.0.2.1"), "{message}");

        o.service = Some(&assigned);
        let (s, a) = observe(&t, o);
        let (_, reason, message) = programmed_of(&s);
        assert_eq!(reason, "AddressNotUsable");
        assert!(
            !message.contains("10.0.0.7") && message.contains("192.0.2.1"),
            "{message}"
        );
        assert_eq!(a.len(), 1, "the assigned address is still reported");

        o.requested = &asked[..1];
        assert_eq!(programmed_of(&observe(&t, o).0).0, ConditionStatus::True);
    }

    #[test]
    fn a_cluster_ip_or_node_port_fleet_is_addressed_by_its_cluster_ips() {
        use k8s_openapi::api::core::v1::{
            LoadBalancerIngress, LoadBalancerStatus, ServiceSpec, ServiceStatus,
        };
        let service = |type_: &str, ips: &[&str]| Service {
            spec: Some(ServiceSpec {
                type_: Some(type_.into()),
                cluster_ip: ips.first().map(|s| s.to_string()),
                cluster_ips: Some(ips.iter().map(|s| s.to_string()).collect()),
                ..ServiceSpec::default()
            }),
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(vec![LoadBalancerIngress {
                        ip: Some("192.0.2.7".into()),
                        ..LoadBalancerIngress::default()
                    }]),
                }),
                ..ServiceStatus::default()
            }),
            ..Service::default()
        };
        let values = |s: &Service| -> Vec<String> {
            addresses(Some(s)).into_iter().map(|a| a.value).collect()
        };
        let dual = ["10.96.0.10", "fd00::10"];
        assert_eq!(values(&service("ClusterIP", &dual)), dual);
        assert_eq!(values(&service("NodePort", &dual[..1])), ["10.96.0.10"]);
        assert_eq!(values(&service("LoadBalancer", &dual)), ["192.0.2.7"]);
        // Headless or not yet allocated: no address.
        assert!(values(&service("ClusterIP", &["None"])).is_empty());
        assert!(values(&service("ClusterIP", &[])).is_empty());
    }
}
