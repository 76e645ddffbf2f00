//! The desired objects of one Gateway, rendered from
//! `templates/envoy-workload.yaml.j2`: ServiceAccount, ConfigMap (the Envoy
//! bootstrap and its SDS files), Secret (the xDS client certificate),
//! Deployment and Service, each owned by the Gateway and labelled with it and
//! with `spec.infrastructure` labels and annotations. In: the Gateway, its
//! `Infra` (merged parameters, ports) and operator settings. Service port =
//! listener port; container port = the translated one. The bootstrap's heap
//! limit follows the Envoy container's memory limit.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gateway_api::experimental::gateways::Gateway;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use minijinja::value::Serde;
use minijinja::{Environment, Value, context};
use serde::Deserialize;
use serde::Serialize;

use super::names::{object_name, selector_labels};
use crate::bootstrap::{self, BootstrapParams, METRICS_PATH, METRICS_PORT, READY_PORT, XdsTls};
use crate::identity::content_version;
use crate::inputs::ObjectKey;
use crate::pki::Issued;
use crate::translate::index::infra::{self, Infra};

const TEMPLATE: &str = include_str!("../../templates/envoy-workload.yaml.j2");
/// Pod annotation carrying a hash of the bootstrap, so a changed bootstrap
/// rolls the Envoys.
pub const BOOTSTRAP_HASH_ANNOTATION: &str = "portico.dev/bootstrap-hash";

/// Operator-wide settings; GatewayParameters tune the rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The Envoy image when parameters name none.
    pub image: String,
    /// Where Envoys reach portico's xDS server.
    pub xds_host: String,
    pub xds_port: u16,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            image: "envoyproxy/envoy:v1.40.0".into(),
            xds_host: "portico-xds.portico-system.svc".into(),
            xds_port: 18000,
        }
    }
}

/// The xDS client certificate of a Gateway's Envoys and the CA that signs
/// both sides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayTls {
    pub ca_pem: String,
    pub client: Issued,
}

/// The objects to apply for one Gateway.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredObjects {
    pub service_account: ServiceAccount,
    pub config_map: ConfigMap,
    pub secret: Secret,
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

/// The name shared by every object of a Gateway's fleet.
pub fn fleet_name(gateway: &str) -> String {
    object_name("envoy-", gateway)
}

/// Where the Envoy pods find their TLS files (see the template).
pub fn pod_tls(xds_host: &str) -> XdsTls {
    XdsTls {
        server_name: xds_host.to_string(),
        sds_dir: "/etc/envoy/bootstrap".into(),
        tls_dir: "/etc/envoy/tls".into(),
    }
}

/// Renders the desired objects. Errors only if the template itself is broken.
pub fn desired_objects(
    gateway: &Gateway,
    infra: &Infra,
    settings: &Settings,
    tls: &GatewayTls,
) -> Result<DesiredObjects, String> {
    let key = ObjectKey::of(gateway);
    let id = format!("{}/{}", key.namespace, key.name);
    let name = fleet_name(&key.name);
    let params = &infra.parameters;
    let infra_spec = gateway.spec.infrastructure.as_ref();
    let mut labels: BTreeMap<String, String> = infra_spec
        .and_then(|i| i.labels.clone())
        .unwrap_or_default();
    labels.extend(selector_labels(&key.name));
    labels.insert("app.kubernetes.io/managed-by".into(), "portico".into());
    let annotations: BTreeMap<String, String> = infra_spec
        .and_then(|i| i.annotations.clone())
        .unwrap_or_default();

    let service = params.service.clone().unwrap_or_default();
    let mut service_annotations = annotations.clone();
    service_annotations.extend(service.annotations.clone().unwrap_or_default());
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
    let service_type = service
        .type_
        .clone()
        .unwrap_or_else(|| "LoadBalancer".into());
    let external_traffic_policy = service
        .external_traffic_policy
        .clone()
        .filter(|_| service_type != "ClusterIP");
    let load_balancer_class = service
        .load_balancer_class
        .clone()
        .filter(|_| service_type == "LoadBalancer");

    let ports: Vec<Port> = infra
        .ports
        .iter()
        .map(|p| Port {
            name: format!("{}-{}", p.protocol.to_ascii_lowercase(), p.port),
            port: p.port,
            target: p.container_port,
            protocol: p.protocol,
        })
        .collect();
    let owner = serde_json::json!([{
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "name": key.name,
        "uid": gateway.metadata.uid.clone().unwrap_or_default(),
        "controller": true,
        "blockOwnerDeletion": true,
    }]);

    let xds_tls = pod_tls(&settings.xds_host);
    let mut bootstrap_params =
        BootstrapParams::new(id.clone(), settings.xds_host.clone(), settings.xds_port);
    bootstrap_params.tls = Some(xds_tls.clone());
    bootstrap_params.metrics_port = Some(METRICS_PORT);
    // Parameters were validated; an unreadable limit counts as none.
    bootstrap_params.max_heap_bytes =
        bootstrap::max_heap_for_container(infra::memory_limit(params).ok().flatten());
    let bootstrap = bootstrap::render(&bootstrap_params).map_err(|e| e.to_string())?;
    let mut config_files = BTreeMap::from([("bootstrap.yaml".to_string(), bootstrap)]);
    for (file, text) in bootstrap::sds_files(&xds_tls).map_err(|e| e.to_string())? {
        config_files.insert(file.to_string(), text);
    }
    let config_hash = content_version(
        serde_json::to_string(&config_files)
            .map_err(|e| e.to_string())?
            .as_bytes(),
    );
    let tls_files = BTreeMap::from([
        ("ca.crt", STANDARD.encode(&tls.ca_pem)),
        ("tls.crt", STANDARD.encode(&tls.client.cert_pem)),
        ("tls.key", STANDARD.encode(&tls.client.key_pem)),
    ]);

    let mut pod_labels = labels.clone();
    pod_labels.extend(params.pod_labels.clone().unwrap_or_default());
    pod_labels.extend(selector_labels(&key.name));
    let mut pod_annotations = annotations.clone();
    // The conventional scrape annotations; the Gateway's own win.
    for (k, v) in [
        ("prometheus.io/scrape", "true".to_string()),
        ("prometheus.io/port", METRICS_PORT.to_string()),
        ("prometheus.io/path", METRICS_PATH.to_string()),
    ] {
        pod_annotations.entry(k.into()).or_insert(v);
    }
    pod_annotations.extend(params.pod_annotations.clone().unwrap_or_default());
    pod_annotations.insert(BOOTSTRAP_HASH_ANNOTATION.into(), config_hash);
    let envoy = params.envoy.clone().unwrap_or_default();

    let mut env = Environment::new();
    env.add_template("workload", TEMPLATE)
        .map_err(|e| e.to_string())?;
    let text = env
        .get_template("workload")
        .and_then(|t| {
            t.render(context! {
                name => name,
                namespace => &key.namespace,
                gateway => id,
                labels => labels,
                selector => selector_labels(&key.name),
                annotations => annotations,
                pod_labels => pod_labels,
                pod_annotations => pod_annotations,
                service_annotations => service_annotations,
                owner => Value::from(Serde(&owner)),
                image => params.image.as_deref().unwrap_or(&settings.image),
                // Unset: not applied, so the scale is left to others.
                replicas => params.replicas,
                log_level => envoy.log_level.as_deref().unwrap_or("info"),
                concurrency => envoy.concurrency,
                resources => Value::from(Serde(&params.resources)),
                node_selector => Value::from(Serde(&params.node_selector)),
                tolerations => Value::from(Serde(&params.tolerations)),
                affinity => Value::from(Serde(&params.affinity)),
                ports => Value::from(Serde(&ports)),
                ready_port => READY_PORT,
                metrics_port => METRICS_PORT,
                config_files => config_files,
                tls_files => tls_files,
                service_type => service_type,
                external_traffic_policy => external_traffic_policy,
                load_balancer_class => load_balancer_class,
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
        secret: typed(next("Secret")?, "Secret")?,
        deployment: typed(next("Deployment")?, "Deployment")?,
        service: typed(next("Service")?, "Service")?,
    })
}
