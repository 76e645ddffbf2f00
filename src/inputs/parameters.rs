//! `GatewayParameters` (`portico.dev/v1alpha1`): how a GatewayClass or a
//! Gateway tunes its Envoy fleet. Referenced from
//! `GatewayClass.spec.parametersRef` and `Gateway.spec.infrastructure.parametersRef`;
//! the Gateway's reference wins field by field. The CRD in `crds/` is
//! generated from these types (`portico crds`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "portico.dev";
pub const KIND: &str = "GatewayParameters";

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "portico.dev",
    version = "v1alpha1",
    kind = "GatewayParameters",
    plural = "gatewayparameters",
    namespaced,
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct GatewayParametersSpec {
    /// Envoy replicas per Gateway, kept by portico. Unset: the fleet starts
    /// with 1 and its scale is left to others (kubectl scale, a
    /// HorizontalPodAutoscaler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Envoy image (default envoyproxy/envoy:v1.40.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Compute resources of the Envoy container. A memory limit (at least
    /// 64Mi) also gives Envoy's overload manager its heap limit: four fifths
    /// of the memory limit (1Gi without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Node labels Envoy pods must match (the pod's `nodeSelector`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Taints Envoy pods tolerate (the pod's `tolerations`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    /// Scheduling affinity of Envoy pods (the pod's `affinity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Extra labels on Envoy pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_labels: Option<BTreeMap<String, String>>,
    /// Extra annotations on Envoy pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_annotations: Option<BTreeMap<String, String>>,
    /// The Gateway's Service (`envoy-<gateway>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceParameters>,
    /// Bind each listener's own port inside the pod instead of port + 10000
    /// for ports below 1024 (needs a capability to bind privileged ports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_port_as_container_port: Option<bool>,
    /// The Envoy process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy: Option<EnvoyParameters>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceParameters {
    /// LoadBalancer (default), NodePort or ClusterIP.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "type")]
    pub type_: Option<String>,
    /// Extra annotations on the Service (a load balancer's settings, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Cluster or Local.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_traffic_policy: Option<String>,
    /// The Service's `loadBalancerClass` (LoadBalancer Services only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_class: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvoyParameters {
    /// Envoy's --log-level (default info).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    /// Envoy's --concurrency (worker threads; default: one per CPU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<i32>,
}

/// portico's CRDs as one multi-document YAML text, as `crds/` holds them.
pub fn crds_yaml() -> Result<String, String> {
    use kube::CustomResourceExt;
    let crd = GatewayParameters::crd();
    yaml_serde::to_string(&crd).map_err(|e| e.to_string())
}
