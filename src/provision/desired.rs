//! The desired objects of one Gateway, rendered from
//! `templates/envoy-workload.yaml.j2`: ServiceAccount, ConfigMap (the Envoy
//! bootstrap), Deployment and LoadBalancer Service, each owned by the Gateway
//! and labelled with it and with `spec.infrastructure` labels and annotations.
//! Service port = listener port; container port = the translated one.

use std::collections::BTreeMap;

use gateway_api::experimental::gateways::Gateway;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use minijinja::value::Serde;
use minijinja::{Environment, Value, context};
use serde::Deserialize;
use serde::Serialize;

use super::names::{object_name, selector_labels};
use crate::bootstrap::{self, BootstrapParams, READY_PORT};
use crate::translate::gateways::GatewayModel;

const TEMPLATE: &str = include_str!("../../templates/envoy-workload.yaml.j2");

/// What a GatewayParameters object will be able to change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub image: String,
    pub replicas: i32,
    pub log_level: String,
    /// Where Envoys reach portico's xDS server.
    pub xds_host: String,
    pub xds_port: u16,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            image: "envoyproxy/envoy:v1.40.0".into(),
            replicas: 1,
            log_level: "info".into(),
            xds_host: "portico-xds.portico-system.svc".into(),
            xds_port: 18000,
        }
    }
}

/// The objects to apply for one Gateway.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredObjects {
    pub service_account: ServiceAccount,
    pub config_map: ConfigMap,
    pub deployment: Deployment,
    pub service: Service,
}

#[derive(Serialize)]
struct Port {
    name: String,
    port: i32,
    target: u32,
    protocol: &'static str,
}

/// Renders the desired objects. Errors only if the template itself is broken.
pub fn desired_objects(
    gateway: &Gateway,
    model: &GatewayModel,
    settings: &Settings,
) -> Result<DesiredObjects, String> {
    let gateway_name = model.key.name.clone();
    let id = format!("{}/{}", model.key.namespace, model.key.name);
    let name = object_name("envoy-", &gateway_name);
    let infra = gateway.spec.infrastructure.as_ref();
    let mut labels: BTreeMap<String, String> =
        infra.and_then(|i| i.labels.clone()).unwrap_or_default();
    labels.extend(selector_labels(&gateway_name));
    labels.insert("app.kubernetes.io/managed-by".into(), "portico".into());
    let annotations: BTreeMap<String, String> = infra
        .and_then(|i| i.annotations.clone())
        .unwrap_or_default();
    let mut service_annotations = annotations.clone();
    let ips: Vec<&str> = gateway
        .spec
        .addresses
        .iter()
        .flatten()
        .filter(|a| a.r#type.as_deref().unwrap_or("IPAddress") == "IPAddress")
        .filter_map(|a| a.value.as_deref())
        .collect();
    if !ips.is_empty() {
        service_annotations.insert("metallb.io/loadBalancerIPs".into(), ips.join(","));
    }
    let mut ports: Vec<Port> = Vec::new();
    for l in model.listeners.iter().filter(|l| l.is_ready()) {
        if ports.iter().any(|p| p.port == l.port) {
            continue;
        }
        ports.push(Port {
            name: format!("tcp-{}", l.port),
            port: l.port,
            target: l.container_port,
            protocol: "TCP",
        });
    }
    let owner = serde_json::json!([{
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "name": gateway_name,
        "uid": gateway.metadata.uid.clone().unwrap_or_default(),
        "controller": true,
        "blockOwnerDeletion": true,
    }]);
    let bootstrap = bootstrap::render(&BootstrapParams::new(
        id.clone(),
        settings.xds_host.clone(),
        settings.xds_port,
    ))
    .map_err(|e| e.to_string())?;

    let mut env = Environment::new();
    env.add_template("workload", TEMPLATE)
        .map_err(|e| e.to_string())?;
    let text = env
        .get_template("workload")
        .and_then(|t| {
            t.render(context! {
                name => name,
                namespace => &model.key.namespace,
                gateway => id,
                labels => labels,
                selector => selector_labels(&gateway_name),
                annotations => annotations,
                service_annotations => service_annotations,
                owner => Value::from(Serde(&owner)),
                image => &settings.image,
                replicas => settings.replicas,
                log_level => &settings.log_level,
                ports => Value::from(Serde(&ports)),
                ready_port => READY_PORT,
                bootstrap => bootstrap,
            })
        })
        .map_err(|e| e.to_string())?;
    let mut docs = yaml_serde::Deserializer::from_str(&text);
    let mut next = |what: &str| -> Result<yaml_serde::Value, String> {
        let doc = docs
            .next()
            .ok_or_else(|| format!("template has no {what}"))?;
        yaml_serde::Value::deserialize(doc).map_err(|e| format!("{what}: {e}"))
    };
    fn typed<T: serde::de::DeserializeOwned>(
        v: yaml_serde::Value,
        what: &str,
    ) -> Result<T, String> {
        yaml_serde::from_value(v).map_err(|e| format!("{what}: {e}"))
    }
    Ok(DesiredObjects {
        service_account: typed(next("ServiceAccount")?, "ServiceAccount")?,
        config_map: typed(next("ConfigMap")?, "ConfigMap")?,
        deployment: typed(next("Deployment")?, "Deployment")?,
        service: typed(next("Service")?, "Service")?,
    })
}
