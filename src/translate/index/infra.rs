//! The infrastructure of each Gateway: the `GatewayParameters` its class and
//! the Gateway itself reference (the Gateway's wins field by field), checked,
//! and the ports its Envoy fleet exposes.
//!
//! In: a GatewayClass or Gateway and `Inputs`. Out: the merged parameters, or
//! the reason a reference is invalid (reported as `InvalidParameters`), and
//! the `Infra` the provisioner turns into Kubernetes objects.

use std::sync::Arc;

use gateway_api::experimental::gatewayclasses::GatewayClass;
use gateway_api::experimental::gateways::Gateway;

use crate::inputs::parameters::{
    EnvoyParameters, GROUP, GatewayParameters, GatewayParametersSpec, KIND, ServiceParameters,
};
use crate::inputs::{Inputs, ObjectKey};

/// What the provisioner needs to build a Gateway's Envoy fleet.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Infra {
    /// Class parameters overlaid with the Gateway's, field by field.
    pub parameters: GatewayParametersSpec,
    /// One per distinct listener port of the valid listeners, in port order.
    pub ports: Vec<InfraPort>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InfraPort {
    /// The Service port: the listener port.
    pub port: i32,
    /// The port Envoy binds in its pod.
    pub container_port: u32,
    /// `TCP` or `UDP`.
    pub protocol: &'static str,
}

/// The parameters a GatewayClass references, if any.
pub fn class_parameters(
    inputs: &Inputs,
    class: &GatewayClass,
) -> Result<Option<Arc<GatewayParameters>>, String> {
    let Some(r) = &class.spec.parameters_ref else {
        return Ok(None);
    };
    check_kind("spec.parametersRef", &r.group, &r.kind)?;
    let namespace = r.namespace.as_deref().ok_or_else(|| {
        "spec.parametersRef.namespace is required: GatewayParameters are namespaced".to_string()
    })?;
    lookup(inputs, "spec.parametersRef", namespace, &r.name).map(Some)
}

/// The parameters a Gateway references in `spec.infrastructure.parametersRef`.
pub fn gateway_parameters(
    inputs: &Inputs,
    gateway: &Gateway,
) -> Result<Option<Arc<GatewayParameters>>, String> {
    let Some(r) = gateway
        .spec
        .infrastructure
        .as_ref()
        .and_then(|i| i.parameters_ref.as_ref())
    else {
        return Ok(None);
    };
    let field = "spec.infrastructure.parametersRef";
    check_kind(field, &r.group, &r.kind)?;
    let namespace = gateway.metadata.namespace.as_deref().unwrap_or("default");
    lookup(inputs, field, namespace, &r.name).map(Some)
}

fn check_kind(field: &str, group: &str, kind: &str) -> Result<(), String> {
    if group == GROUP && kind == KIND {
        Ok(())
    } else {
        let referenced = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{group}/{kind}")
        };
        Err(format!(
            "{field}: {referenced} is not supported; reference a {GROUP}/{KIND}"
        ))
    }
}

fn lookup(
    inputs: &Inputs,
    field: &str,
    namespace: &str,
    name: &str,
) -> Result<Arc<GatewayParameters>, String> {
    let key = ObjectKey::new(namespace, name);
    let found = inputs
        .gateway_parameters
        .get(&key)
        .ok_or_else(|| format!("{field}: GatewayParameters {key} does not exist"))?;
    validate(&found.spec).map_err(|e| format!("GatewayParameters {key}: {e}"))?;
    Ok(Arc::clone(found))
}

const LOG_LEVELS: &[&str] = &[
    "trace", "debug", "info", "warning", "warn", "error", "critical", "off",
];

/// The memory limit of the Envoy container (`spec.resources.limits.memory`)
/// in bytes, if set; the message names the field when it is not a quantity
/// or is too small for Envoy.
pub fn memory_limit(spec: &GatewayParametersSpec) -> Result<Option<u64>, String> {
    let Some(q) = spec
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get("memory"))
    else {
        return Ok(None);
    };
    let field = "spec.resources.limits.memory";
    let bytes = quantity_bytes(&q.0).map_err(|e| format!("{field}: {e}"))?;
    if bytes < MIN_ENVOY_MEMORY {
        return Err(format!(
            "{field}: {:?} is less than the {} MiB an Envoy needs",
            q.0,
            MIN_ENVOY_MEMORY >> 20
        ));
    }
    Ok(Some(bytes))
}

/// The smallest memory limit portico provisions an Envoy with: Envoy alone,
/// idle, takes a few tens of MiB.
pub const MIN_ENVOY_MEMORY: u64 = 64 << 20;

/// A Kubernetes resource quantity (`512Mi`, `1G`, `1.5Gi`, `2e9`, `1000`) in
/// whole units, rounded down.
fn quantity_bytes(text: &str) -> Result<u64, String> {
    let number_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(number_end);
    let not_a_quantity = || format!("{text:?} is not a Kubernetes quantity");
    let unsigned = number.strip_prefix('+').unwrap_or(number);
    let digits = unsigned.replace('.', "");
    if unsigned.matches('.').count() > 1
        || digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(not_a_quantity());
    }
    let mantissa: f64 = if unsigned.starts_with('.') {
        format!("0{unsigned}").parse()
    } else {
        unsigned.trim_end_matches('.').parse()
    }
    .map_err(|_| not_a_quantity())?;
    // Negative powers divide, so `2000m` is exactly 2.
    let (times, divide) = match suffix {
        "" => (1.0, 1.0),
        "n" => (1.0, 1e9),
        "u" => (1.0, 1e6),
        "m" => (1.0, 1e3),
        "k" => (1e3, 1.0),
        "M" => (1e6, 1.0),
        "G" => (1e9, 1.0),
        "T" => (1e12, 1.0),
        "P" => (1e15, 1.0),
        "E" => (1e18, 1.0),
        "Ki" => (1024f64, 1.0),
        "Mi" => (1024f64.powi(2), 1.0),
        "Gi" => (1024f64.powi(3), 1.0),
        "Ti" => (1024f64.powi(4), 1.0),
        "Pi" => (1024f64.powi(5), 1.0),
        "Ei" => (1024f64.powi(6), 1.0),
        exponent => {
            let e = exponent
                .strip_prefix(['e', 'E'])
                .and_then(|e| e.parse::<i32>().ok())
                .ok_or_else(not_a_quantity)?
                .clamp(-400, 400);
            if e < 0 {
                (1.0, 10f64.powi(-e))
            } else {
                (10f64.powi(e), 1.0)
            }
        }
    };
    let value = mantissa * times / divide;
    if !value.is_finite() || value >= u64::MAX as f64 {
        return Err(format!("{text:?} is too large"));
    }
    Ok(value as u64)
}

/// Checks what the CRD schema cannot say; the message names the field.
pub fn validate(spec: &GatewayParametersSpec) -> Result<(), String> {
    memory_limit(spec)?;
    if let Some(r) = spec.replicas
        && r < 0
    {
        return Err(format!("spec.replicas: {r} is negative"));
    }
    if spec.image.as_deref().is_some_and(|i| i.trim().is_empty()) {
        return Err("spec.image: must not be empty".into());
    }
    if let Some(service) = &spec.service {
        if let Some(t) = service.type_.as_deref()
            && !matches!(t, "LoadBalancer" | "NodePort" | "ClusterIP")
        {
            return Err(format!(
                "spec.service.type: {t:?} is not one of LoadBalancer, NodePort, ClusterIP"
            ));
        }
        if let Some(p) = service.external_traffic_policy.as_deref()
            && !matches!(p, "Cluster" | "Local")
        {
            return Err(format!(
                "spec.service.externalTrafficPolicy: {p:?} is not one of Cluster, Local"
            ));
        }
    }
    if let Some(envoy) = &spec.envoy {
        if let Some(level) = envoy.log_level.as_deref()
            && !LOG_LEVELS.contains(&level)
        {
            return Err(format!(
                "spec.envoy.logLevel: {level:?} is not one of {}",
                LOG_LEVELS.join(", ")
            ));
        }
        if let Some(c) = envoy.concurrency
            && c < 1
        {
            return Err(format!("spec.envoy.concurrency: {c} is less than 1"));
        }
    }
    Ok(())
}

/// The class's parameters overlaid with the Gateway's: every field the
/// Gateway sets wins, every other field keeps the class's value.
pub fn merge(
    class: Option<&GatewayParametersSpec>,
    gateway: Option<&GatewayParametersSpec>,
) -> GatewayParametersSpec {
    let base = class.cloned().unwrap_or_default();
    let Some(top) = gateway else {
        return base;
    };
    let top = top.clone();
    GatewayParametersSpec {
        replicas: top.replicas.or(base.replicas),
        image: top.image.or(base.image),
        resources: top.resources.or(base.resources),
        node_selector: top.node_selector.or(base.node_selector),
        tolerations: top.tolerations.or(base.tolerations),
        affinity: top.affinity.or(base.affinity),
        pod_labels: top.pod_labels.or(base.pod_labels),
        pod_annotations: top.pod_annotations.or(base.pod_annotations),
        service: merge_nested(base.service, top.service, |b, t| ServiceParameters {
            type_: t.type_.or(b.type_),
            annotations: t.annotations.or(b.annotations),
            external_traffic_policy: t.external_traffic_policy.or(b.external_traffic_policy),
            load_balancer_class: t.load_balancer_class.or(b.load_balancer_class),
        }),
        listener_port_as_container_port: top
            .listener_port_as_container_port
            .or(base.listener_port_as_container_port),
        envoy: merge_nested(base.envoy, top.envoy, |b, t| EnvoyParameters {
            log_level: t.log_level.or(b.log_level),
            concurrency: t.concurrency.or(b.concurrency),
        }),
    }
}

/// Two optional nested parameter blocks: the top one's fields over the
/// base's where both are given, else whichever is given.
fn merge_nested<T>(base: Option<T>, top: Option<T>, both: impl FnOnce(T, T) -> T) -> Option<T> {
    match (base, top) {
        (Some(b), Some(t)) => Some(both(b, t)),
        (b, t) => t.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> GatewayParametersSpec {
        yaml_serde::from_str(yaml).expect("test spec parses")
    }

    #[test]
    fn the_gateway_wins_field_by_field() {
        let class = spec(
            "replicas: 3\nimage: a\nservice: {type: NodePort, loadBalancerClass: x}\nenvoy: {logLevel: debug}",
        );
        let gateway =
            spec("image: b\nservice: {externalTrafficPolicy: Local}\nenvoy: {concurrency: 2}");
        let m = merge(Some(&class), Some(&gateway));
        assert_eq!(m.replicas, Some(3));
        assert_eq!(m.image.as_deref(), Some("b"));
        let service = m.service.expect("service merged");
        assert_eq!(service.type_.as_deref(), Some("NodePort"));
        assert_eq!(service.external_traffic_policy.as_deref(), Some("Local"));
        assert_eq!(service.load_balancer_class.as_deref(), Some("x"));
        let envoy = m.envoy.expect("envoy merged");
        assert_eq!(envoy.log_level.as_deref(), Some("debug"));
        assert_eq!(envoy.concurrency, Some(2));
        assert_eq!(merge(None, Some(&gateway)), gateway);
        assert_eq!(merge(Some(&class), None), class);
    }

    #[test]
    fn invalid_values_name_their_field() {
        let cases = [
            ("replicas: -1", "spec.replicas"),
            ("image: ' '", "spec.image"),
            ("service: {type: External}", "spec.service.type"),
            (
                "service: {externalTrafficPolicy: Nearest}",
                "spec.service.externalTrafficPolicy",
            ),
            ("envoy: {logLevel: loud}", "spec.envoy.logLevel"),
            ("envoy: {concurrency: 0}", "spec.envoy.concurrency"),
            (
                "resources: {limits: {memory: lots}}",
                "spec.resources.limits.memory",
            ),
            (
                "resources: {limits: {memory: 16Mi}}",
                "spec.resources.limits.memory",
            ),
        ];
        for (yaml, field) in cases {
            let err = validate(&spec(yaml)).expect_err(yaml);
            assert!(err.starts_with(field), "{yaml}: {err}");
        }
        assert!(validate(&spec("replicas: 2\nenvoy: {logLevel: warn}")).is_ok());
    }

    #[test]
    fn memory_limits_are_read_as_kubernetes_quantities() {
        let cases = [
            ("512Mi", 512 << 20),
            ("1Gi", 1 << 30),
            ("1.5Gi", 3 << 29),
            ("1G", 1_000_000_000),
            ("100M", 100_000_000),
            ("2e9", 2_000_000_000),
            ("2E9", 2_000_000_000),
            ("1073741824", 1 << 30),
            ("+1Gi", 1 << 30),
            (".5Gi", 1 << 29),
            ("1.Gi", 1 << 30),
            ("200000000000m", 200_000_000),
            ("65536Ki", 64 << 20),
        ];
        for (q, bytes) in cases {
            assert_eq!(quantity_bytes(q), Ok(bytes), "{q}");
        }
        for bad in [
            "",
            "Gi",
            "1 Gi",
            "1GB",
            "1.2.3",
            "-1Gi",
            "1e",
            "1e999999999",
            "9Ei9",
            "1..",
            "\u{7}",
        ] {
            assert!(quantity_bytes(bad).is_err(), "{bad:?}");
        }
        assert!(quantity_bytes("99999999Ei").is_err());
        let limit = spec("resources: {limits: {memory: 256Mi, cpu: '1'}}");
        assert_eq!(memory_limit(&limit), Ok(Some(256 << 20)));
        assert_eq!(
            memory_limit(&spec("resources: {requests: {memory: 1Gi}}")),
            Ok(None)
        );
    }
}
