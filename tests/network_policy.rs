//! `deploy/35-networkpolicy.yaml` against what it protects: every field is
//! one the NetworkPolicy API knows (typed round trip), it selects the
//! operator pods of `deploy/30-operator.yaml`, covers each of their ports,
//! admits the Envoy fleet pods portico provisions (even with
//! GatewayParameters pod labels that try to rename them) to xDS only, admits
//! pods or namespaces labelled `portico.dev/admin-access: "true"` to the
//! admin port, and leaves egress (the API server) unrestricted.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyIngressRule};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use portico::pki::Issued;
use portico::provision::desired::{GatewayTls, Settings, desired_objects};
use portico::translate::translate;

type Labels = BTreeMap<String, String>;

fn deploy_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Each YAML document of a file, untyped.
fn documents(text: &str) -> Vec<serde_json::Value> {
    yaml_serde::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).expect("YAML"))
        .collect()
}

fn policy() -> NetworkPolicy {
    let docs = documents(&deploy_file("35-networkpolicy.yaml"));
    assert_eq!(docs.len(), 1);
    let typed: NetworkPolicy = serde_json::from_value(docs[0].clone()).expect("a NetworkPolicy");
    // Unknown or misspelt fields would be dropped by the typed form.
    let mut round_trip = serde_json::to_value(&typed).expect("serializes");
    let mut raw = docs[0].clone();
    for v in [&mut round_trip, &mut raw] {
        if let Some(o) = v.as_object_mut() {
            o.remove("apiVersion");
            o.remove("kind");
        }
    }
    assert_eq!(round_trip, raw, "every field is a NetworkPolicy field");
    typed
}

fn operator() -> Deployment {
    documents(&deploy_file("30-operator.yaml"))
        .into_iter()
        .find(|d| d["kind"] == "Deployment")
        .map(|d| serde_json::from_value(d).expect("a Deployment"))
        .expect("30-operator.yaml holds the Deployment")
}

fn selects(selector: &LabelSelector, labels: &Labels) -> bool {
    let by_label = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expression = selector.match_expressions.iter().flatten().all(|e| {
        let value = labels.get(&e.key);
        let values = e.values.clone().unwrap_or_default();
        match e.operator.as_str() {
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            other => panic!("operator {other}"),
        }
    });
    by_label && by_expression
}

/// Whether `rule` admits a pod with `labels` in a namespace with `namespace`
/// labels.
fn admits(rule: &NetworkPolicyIngressRule, namespace: &Labels, pod: &Labels) -> bool {
    rule.from.iter().flatten().any(|peer| {
        assert!(peer.ip_block.is_none(), "no address blocks");
        let ns = peer.namespace_selector.as_ref();
        let in_namespace = match ns {
            Some(s) => selects(s, namespace),
            // Without a namespace selector: the policy's own namespace only.
            None => {
                namespace
                    .get("kubernetes.io/metadata.name")
                    .map(String::as_str)
                    == Some("portico-system")
            }
        };
        in_namespace && peer.pod_selector.as_ref().is_none_or(|s| selects(s, pod))
    })
}

/// The rule of `port` (a container port of the operator).
fn rule_of(policy: &NetworkPolicy, port: i32) -> NetworkPolicyIngressRule {
    let rules: Vec<&NetworkPolicyIngressRule> = policy
        .spec
        .as_ref()
        .and_then(|s| s.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter(|r| {
            r.ports.iter().flatten().any(|p| {
                p.port == Some(IntOrString::Int(port)) && p.protocol.as_deref() == Some("TCP")
            })
        })
        .collect();
    assert_eq!(rules.len(), 1, "one rule for port {port}");
    rules[0].clone()
}

/// The pod labels of a provisioned fleet whose GatewayParameters try to
/// rename its pods.
fn fleet_pod_labels() -> Labels {
    let yaml = "\
apiVersion: portico.dev/v1alpha1
kind: GatewayParameters
metadata: {name: relabel, namespace: shop}
spec:
  podLabels:
    app.kubernetes.io/name: not-envoy
    gateway.networking.k8s.io/gateway-name: other
    app.kubernetes.io/managed-by: someone-else
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: portico}
spec: {controllerName: portico.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: shop, uid: u-1, generation: 1}
spec:
  gatewayClassName: portico
  infrastructure:
    parametersRef: {group: portico.dev, kind: GatewayParameters, name: relabel}
  listeners:
  - {name: http, port: 80, protocol: HTTP}
";
    let mut builder = portico::inputs::InputsBuilder::default();
    for o in portico::inputs::files::parse_documents(Path::new("fleet.yaml"), yaml).expect("valid")
    {
        builder.insert(o);
    }
    let inputs = builder.build();
    let outputs = translate(&inputs);
    let (key, output) = outputs.gateways.iter().next().expect("one Gateway");
    let infra = output.infra.as_ref().expect("accepted");
    let tls = GatewayTls {
        ca_pem: "CA".into(),
        client: Issued {
            cert_pem: "CERT".into(),
            key_pem: "KEY".into(),
        },
    };
    let objects =
        desired_objects(&inputs.gateways[key], infra, &Settings::default(), &tls).expect("renders");
    objects
        .deployment
        .spec
        .and_then(|s| s.template.metadata)
        .and_then(|m| m.labels)
        .expect("pod labels")
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_policy_is_valid_and_selects_the_operator_pods_on_ingress_only() {
    let policy = policy();
    let spec = policy.spec.as_ref().expect("spec");
    assert_eq!(policy.metadata.namespace.as_deref(), Some("portico-system"));
    let operator = operator();
    let pod_labels = operator
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .expect("operator pod labels");
    let selector = spec.pod_selector.as_ref().expect("a pod selector");
    assert!(selects(selector, &pod_labels));
    assert_eq!(
        spec.policy_types.as_deref(),
        Some(&["Ingress".to_string()][..]),
        "egress (the API server) is not restricted"
    );
    assert!(spec.egress.is_none());
    // Every port of the operator has its rule.
    let ports = operator
        .spec
        .and_then(|s| s.template.spec)
        .map(|p| p.containers)
        .unwrap_or_default()
        .into_iter()
        .flat_map(|c| c.ports.unwrap_or_default());
    for port in ports {
        rule_of(&policy, port.container_port);
    }
}

#[test]
fn xds_admits_the_envoy_fleets_of_any_namespace_and_nothing_else() {
    let policy = policy();
    let xds = rule_of(&policy, 18000);
    let fleet = fleet_pod_labels();
    let shop = labels(&[("kubernetes.io/metadata.name", "shop")]);
    assert!(admits(&xds, &shop, &fleet), "fleet pod labels: {fleet:?}");
    let monitoring = labels(&[
        ("kubernetes.io/metadata.name", "monitoring"),
        ("portico.dev/admin-access", "true"),
    ]);
    let prometheus = labels(&[
        ("app.kubernetes.io/name", "prometheus"),
        ("portico.dev/admin-access", "true"),
    ]);
    assert!(!admits(&xds, &monitoring, &prometheus));
    assert!(!admits(&xds, &shop, &labels(&[("app", "web")])));
    let admin = rule_of(&policy, 9090);
    assert!(!admits(&admin, &shop, &fleet), "Envoys do not reach admin");
}

#[test]
fn admin_admits_labelled_namespaces_and_labelled_pods() {
    let policy = policy();
    let admin = rule_of(&policy, 9090);
    let access = ("portico.dev/admin-access", "true");
    let plain_ns = labels(&[("kubernetes.io/metadata.name", "apps")]);
    let labelled_ns = labels(&[("kubernetes.io/metadata.name", "monitoring"), access]);
    let prometheus = labels(&[("app.kubernetes.io/name", "prometheus")]);
    let labelled_prometheus = labels(&[("app.kubernetes.io/name", "prometheus"), access]);
    assert!(admits(&admin, &labelled_ns, &prometheus));
    assert!(admits(&admin, &plain_ns, &labelled_prometheus));
    assert!(!admits(&admin, &plain_ns, &prometheus));
    assert!(!admits(
        &admin,
        &plain_ns,
        &labels(&[("portico.dev/admin-access", "yes")])
    ));
}
