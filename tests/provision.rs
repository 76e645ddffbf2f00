//! The desired objects of a Gateway, snapshotted (`tests/snapshots/`), plus
//! the properties a user relies on: ownership, labels, ports, addresses,
//! hardening.

mod common;

use portico::provision::desired::{Settings, desired_objects};
use portico::translate::gateways;

fn seed_objects(yaml_extra: &str) -> portico::provision::desired::DesiredObjects {
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
    let mut b = portico::inputs::InputsBuilder::default();
    for o in portico::inputs::files::parse_documents(std::path::Path::new("g.yaml"), &yaml)
        .expect("valid")
    {
        b.insert(o);
    }
    let inputs = b.build();
    let idx = gateways::index(&inputs, true);
    let (key, model) = idx.gateways.iter().next().expect("one gateway");
    desired_objects(&inputs.gateways[key], model, &Settings::default()).expect("renders")
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
        [10080, 8080, 19001],
        "listener 80 binds 10080; the invalid listener has no port"
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
    let bootstrap = &objects.config_map.data.as_ref().expect("data")["bootstrap.yaml"];
    assert!(bootstrap.contains(r#"cluster: "default/portico-gateway""#));

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

fn objects_as_yaml(o: &portico::provision::desired::DesiredObjects) -> serde_json::Value {
    serde_json::json!([o.service_account, o.config_map, o.deployment, o.service])
}
