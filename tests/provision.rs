//! The desired objects of a Gateway, snapshotted (`tests/snapshots/`), plus
//! the properties a user relies on: ownership, labels, ports, addresses,
//! hardening.

mod common;

use portico::pki::Issued;
use portico::provision::desired::{DesiredObjects, GatewayTls, Settings, desired_objects};
use portico::translate::translate;

/// Fixed stand-ins for certificates, so snapshots are stable.
fn tls() -> GatewayTls {
    GatewayTls {
        ca_pem: "CA CERTIFICATE".into(),
        client: Issued {
            cert_pem: "CLIENT CERTIFICATE".into(),
            key_pem: "CLIENT KEY".into(),
        },
    }
}

fn objects_of(yaml: &str) -> Result<DesiredObjects, String> {
    let mut b = portico::inputs::InputsBuilder::default();
    for o in portico::inputs::files::parse_documents(std::path::Path::new("g.yaml"), yaml)
        .expect("valid")
    {
        b.insert(o);
    }
    let inputs = b.build();
    let outputs = translate(&inputs);
    let (key, output) = outputs.gateways.iter().next().expect("one gateway");
    let infra = output.infra.as_ref().ok_or_else(|| {
        format!(
            "Gateway not accepted: {:?}",
            output.status.conditions.first()
        )
    })?;
    desired_objects(&inputs.gateways[key], infra, &Settings::default(), &tls())
}

fn seed_objects(yaml_extra: &str) -> DesiredObjects {
    let yaml = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {{name: portico}}\n\
         spec: {{controllerName: portico.dev/gateway-controller}}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n\
         metadata: {{name: portico-gateway, namespace: default, uid: 1234-abcd, generation: 1}}\n\
         spec:\n  gatewayClassName: portico\n{yaml_extra}  listeners:\n\
         \x20 - {{name: http, port: 80, protocol: HTTP}}\n\
         \x20 - {{name: alt, port: 8080, protocol: HTTP}}\n\
         \x20 - {{name: bad, port: 8081, protocol: FOO}}\n"
    );
    objects_of(&yaml).expect("renders")
}

#[test]
fn seed_gateway_objects() {
    let objects = seed_objects(
        "  infrastructure:\n    labels: {team: web}\n    annotations: {example.com/owner: web-team}\n\
         \x20 addresses: [{type: IPAddress, value: 192.0.2.10}]\n",
    );
    let d = &objects.deployment;
    let owner = &d.metadata.owner_references.as_ref().expect("owned")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
        ("Gateway", "portico-gateway", "1234-abcd")
    );
    assert_eq!(owner.controller, Some(true));
    let labels = d.metadata.labels.as_ref().expect("labels");
    assert_eq!(
        labels["gateway.networking.k8s.io/gateway-name"],
        "portico-gateway"
    );
    assert_eq!(labels["team"], "web");
    let pod = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec");
    assert_eq!(pod.automount_service_account_token, Some(false));
    let c = &pod.containers[0];
    let sc = c.security_context.as_ref().expect("hardened");
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
        Some(vec!["ALL".to_string()])
    );
    assert!(
        c.args
            .as_ref()
            .expect("args")
            .windows(2)
            .any(|w| w[0] == "--service-cluster" && w[1] == "default/portico-gateway")
    );
    let container_ports: Vec<i32> = c.ports.iter().flatten().map(|p| p.container_port).collect();
    assert_eq!(
        container_ports,
        [10080, 8080, 19001, 19002],
        "listener 80 binds 10080; the invalid listener has no port"
    );
    let metrics = c
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("metrics"))
        .map(|p| p.container_port);
    assert_eq!(
        metrics,
        Some(19002),
        "the metrics port is named for scrapers"
    );
    let annotations = pod_meta_annotations(&objects.deployment);
    assert_eq!(
        annotations.get("prometheus.io/scrape").map(String::as_str),
        Some("true")
    );
    assert_eq!(
        annotations.get("prometheus.io/port").map(String::as_str),
        Some("19002")
    );
    assert_eq!(
        annotations.get("prometheus.io/path").map(String::as_str),
        Some("/stats/prometheus")
    );

    let svc = objects.service.spec.as_ref().expect("service spec");
    assert_eq!(svc.type_.as_deref(), Some("LoadBalancer"));
    let ports: Vec<(i32, String)> = svc
        .ports
        .iter()
        .flatten()
        .map(|p| (p.port, format!("{:?}", p.target_port)))
        .collect();
    assert_eq!(ports.len(), 2);
    assert_eq!(ports[0].0, 80);
    assert!(ports[0].1.contains("10080"), "{ports:?}");
    let annotations = objects
        .service
        .metadata
        .annotations
        .as_ref()
        .expect("annotations");
    assert_eq!(annotations["metallb.io/loadBalancerIPs"], "192.0.2.10");
    assert_eq!(annotations["example.com/owner"], "web-team");
    let data = objects.config_map.data.as_ref().expect("data");
    let bootstrap = &data["bootstrap.yaml"];
    assert!(bootstrap.contains(r#"cluster: "default/portico-gateway""#));
    assert!(
        bootstrap.contains("UpstreamTlsContext") && data.contains_key("xds-client.yaml"),
        "Envoy reaches portico over mutual TLS with file-based SDS"
    );
    let secret = &objects.secret;
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    let files = secret.data.as_ref().expect("secret data");
    assert_eq!(files["tls.crt"].0, b"CLIENT CERTIFICATE");
    assert_eq!(files["ca.crt"].0, b"CA CERTIFICATE");
    let mounts: Vec<&str> = c
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| m.mount_path.as_str())
        .collect();
    assert!(mounts.contains(&"/etc/envoy/tls"), "{mounts:?}");

    insta::assert_yaml_snapshot!("seed-gateway-objects", objects_as_yaml(&objects));
}

#[test]
fn objects_without_addresses_or_infrastructure() {
    let objects = seed_objects("");
    let annotations = objects
        .service
        .metadata
        .annotations
        .clone()
        .unwrap_or_default();
    assert!(!annotations.contains_key("metallb.io/loadBalancerIPs"));
}

fn objects_as_yaml(o: &DesiredObjects) -> serde_json::Value {
    serde_json::json!([
        o.service_account,
        o.config_map,
        o.secret,
        o.deployment,
        o.service
    ])
}

const PARAMETERS: &str = "\
apiVersion: portico.dev/v1alpha1
kind: GatewayParameters
metadata: {name: class-defaults, namespace: portico-system}
spec:
  replicas: 3
  image: registry.example/envoy:custom
  service: {type: NodePort, annotations: {lb.example/tier: edge}}
  envoy: {logLevel: debug}
---
apiVersion: portico.dev/v1alpha1
kind: GatewayParameters
metadata: {name: web-tuning, namespace: default}
spec:
  replicas: 2
  listenerPortAsContainerPort: true
  podLabels: {tier: edge}
  envoy: {concurrency: 4}
  nodeSelector: {pool: edge}
";

fn with_parameters(class_ref: &str, gateway_ref: &str) -> String {
    format!(
        "{PARAMETERS}---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {{name: portico}}\n\
         spec: {{controllerName: portico.dev/gateway-controller{class_ref}}}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n\
         metadata: {{name: web, namespace: default, uid: u-1, generation: 1}}\n\
         spec:\n  gatewayClassName: portico\n{gateway_ref}  listeners:\n\
         \x20 - {{name: http, port: 80, protocol: HTTP}}\n"
    )
}

#[test]
fn class_parameters_apply_and_the_gateways_win_field_by_field() {
    let class_ref = ", parametersRef: {group: portico.dev, kind: GatewayParameters, name: class-defaults, namespace: portico-system}";
    let gateway_ref = "  infrastructure:\n    parametersRef: {group: portico.dev, kind: GatewayParameters, name: web-tuning}\n";
    let only_class = objects_of(&with_parameters(class_ref, "")).expect("renders");
    let spec = only_class.deployment.spec.as_ref().expect("spec");
    assert_eq!(spec.replicas, Some(3));
    let pod = spec.template.spec.as_ref().expect("pod");
    assert_eq!(
        pod.containers[0].image.as_deref(),
        Some("registry.example/envoy:custom")
    );
    let svc = only_class.service.spec.as_ref().expect("service");
    assert_eq!(svc.type_.as_deref(), Some("NodePort"));
    assert_eq!(
        only_class
            .service
            .metadata
            .annotations
            .as_ref()
            .expect("annotations")["lb.example/tier"],
        "edge"
    );

    let both = objects_of(&with_parameters(class_ref, gateway_ref)).expect("renders");
    let spec = both.deployment.spec.as_ref().expect("spec");
    assert_eq!(spec.replicas, Some(2), "the Gateway's replicas win");
    let pod = spec.template.spec.as_ref().expect("pod");
    let c = &pod.containers[0];
    assert_eq!(
        c.image.as_deref(),
        Some("registry.example/envoy:custom"),
        "the class's image stays"
    );
    let args = c.args.clone().unwrap_or_default();
    assert!(
        args.windows(2)
            .any(|w| w[0] == "--log-level" && w[1] == "debug")
    );
    assert!(
        args.windows(2)
            .any(|w| w[0] == "--concurrency" && w[1] == "4")
    );
    assert_eq!(
        c.ports.as_ref().expect("ports")[0].container_port,
        80,
        "listenerPortAsContainerPort binds the listener port itself"
    );
    assert_eq!(
        pod.node_selector.as_ref().expect("selector")["pool"],
        "edge"
    );
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    assert_eq!(labels["tier"], "edge");
}

#[test]
fn a_missing_parameters_reference_is_not_provisioned() {
    let missing = "  infrastructure:\n    parametersRef: {group: portico.dev, kind: GatewayParameters, name: nope}\n";
    let err = objects_of(&with_parameters("", missing)).expect_err("not accepted");
    assert!(err.contains("InvalidParameters"), "{err}");
    assert!(
        err.contains("GatewayParameters default/nope does not exist"),
        "{err}"
    );
}

fn pod_meta_annotations(
    d: &k8s_openapi::api::apps::v1::Deployment,
) -> std::collections::BTreeMap<String, String> {
    d.spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.clone())
        .unwrap_or_default()
}
