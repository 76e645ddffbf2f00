//! Reconcile scenarios against an in-memory API server (no cluster): the
//! provisioner creates a Gateway's fleet with server-side apply, follows a
//! listener change, corrects manual drift, leaves an invalid Gateway alone
//! and removes the fleet of a Gateway that leaves portico; the status writer
//! writes only what changed, keeps transition times, and leaves other
//! controllers' route entries as they are.

#[allow(dead_code)]
#[path = "common/fake_api.rs"]
mod fake_api;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use fake_api::FakeApi;
use http::Method;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use portico::events::GatewayEvents;
use portico::inputs::Kind;
use portico::inputs::{Inputs, InputsBuilder, ObjectKey, files};
use portico::pki::Authority;
use portico::provision::apply::{LiveFleet, Provisioner};
use portico::provision::desired::Settings;
use portico::status::gateway::Observed;
use portico::status::plan::plan;
use portico::status::writer::StatusWriter;
use portico::translate::conditions::ConditionStatus;
use portico::translate::last_good::{self, LastGood};
use portico::translate::{Options, Outputs, translate};
use portico::xds::hub::GatewayFeedback;
use serde_json::{Value, json};

const WORLD: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: portico, generation: 1}
spec: {controllerName: portico.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: apps, generation: 1}
spec:
  gatewayClassName: portico
  listeners:
  - {name: http, port: 80, protocol: HTTP}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: site, namespace: apps, generation: 1}
spec:
  parentRefs: [{name: web}]
  hostnames: [httpd.example.com]
  rules:
  - backendRefs: [{name: site, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: site, namespace: apps}
spec:
  ports: [{port: 80}]
"#;

const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/apps/deployments/envoy-web";
const SERVICE: &str = "/api/v1/namespaces/apps/services/envoy-web";
const GATEWAY: &str = "/apis/gateway.networking.k8s.io/v1/namespaces/apps/gateways/web";
const ROUTE: &str = "/apis/gateway.networking.k8s.io/v1/namespaces/apps/httproutes/site";

/// The fake server's objects as portico's watches would see them.
fn inputs_of(api: &FakeApi) -> Inputs {
    let mut b = InputsBuilder::default();
    let yaml = api.as_yaml();
    for o in files::parse_documents(std::path::Path::new("api"), &yaml).expect("objects parse") {
        b.insert(o);
    }
    b.build()
}

struct Live(FakeApi);

impl LiveFleet for Live {
    fn deployment(&self, namespace: &str, name: &str) -> Option<Arc<Deployment>> {
        let v = self.0.get(&format!(
            "/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
        ))?;
        serde_json::from_value(v).ok().map(Arc::new)
    }

    fn service(&self, namespace: &str, name: &str) -> Option<Arc<Service>> {
        let v = self
            .0
            .get(&format!("/api/v1/namespaces/{namespace}/services/{name}"))?;
        serde_json::from_value(v).ok().map(Arc::new)
    }

    fn fleets(&self) -> Vec<ObjectKey> {
        let yaml = self.0.as_yaml();
        let mut out = Vec::new();
        for doc in yaml.split("\n---\n") {
            let v: Value = serde_json::from_str(doc).unwrap_or_default();
            if v["kind"] == "Deployment"
                && let (Some(ns), Some(gw)) = (
                    v["metadata"]["namespace"].as_str(),
                    v["metadata"]["labels"]["gateway.networking.k8s.io/gateway-name"].as_str(),
                )
            {
                out.push(ObjectKey::new(ns, gw));
            }
        }
        out
    }
}

fn applies(api: &FakeApi) -> Vec<String> {
    api.calls()
        .into_iter()
        .filter(|c| c.method == Method::PATCH)
        .map(|c| {
            assert!(
                c.query.contains("fieldManager=portico") && c.query.contains("force=true"),
                "server-side apply as portico: {}",
                c.query
            );
            c.path
        })
        .collect()
}

async fn round(api: &FakeApi, provisioner: &mut Provisioner) -> (Inputs, Outputs, Vec<String>) {
    api.clear_calls();
    let inputs = inputs_of(api);
    let outputs = translate(&inputs);
    provisioner
        .reconcile(
            &inputs,
            &outputs,
            &Live(api.clone()),
            &GatewayEvents::disabled(),
        )
        .await;
    let applied = applies(api);
    (inputs, outputs, applied)
}

fn provisioner(api: &FakeApi) -> Provisioner {
    let ca = Authority::generate(SystemTime::now()).expect("CA");
    Provisioner::new(api.client(), Settings::default(), Arc::new(ca))
}

#[tokio::test]
async fn the_fleet_is_created_updated_with_listeners_and_drift_is_corrected() {
    let api = FakeApi::default();
    api.seed(WORLD);
    let mut p = provisioner(&api);

    let (_, _, applied) = round(&api, &mut p).await;
    assert_eq!(
        applied,
        [
            "/api/v1/namespaces/apps/serviceaccounts/envoy-web",
            "/api/v1/namespaces/apps/configmaps/envoy-web",
            "/api/v1/namespaces/apps/secrets/envoy-web",
            DEPLOYMENT,
            SERVICE,
        ]
    );
    let deployment = api.get(DEPLOYMENT).expect("deployment created");
    assert_eq!(deployment["metadata"]["ownerReferences"][0]["name"], "web");
    let secret = api
        .get("/api/v1/namespaces/apps/secrets/envoy-web")
        .expect("secret");
    assert!(secret["data"]["tls.crt"].is_string());

    let renders = p.renders();
    let (_, _, applied) = round(&api, &mut p).await;
    assert!(
        applied.is_empty(),
        "nothing changed, nothing applied: {applied:?}"
    );
    // Rounds come with every Envoy ACK: one that changes nothing renders
    // nothing either.
    assert_eq!(p.renders(), renders, "the fleet was rendered again");

    // A second listener: the Service gets its port.
    api.edit(GATEWAY, |g| {
        g["spec"]["listeners"]
            .as_array_mut()
            .expect("listeners")
            .push(json!({"name": "alt", "port": 8080, "protocol": "HTTP"}));
        g["metadata"]["generation"] = json!(2);
    });
    let (_, _, applied) = round(&api, &mut p).await;
    assert!(applied.contains(&SERVICE.to_string()), "{applied:?}");
    assert_eq!(
        p.renders(),
        renders + 1,
        "an edited Gateway is rendered again"
    );
    let ports: Vec<i64> = api.get(SERVICE).expect("service")["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .filter_map(|p| p["port"].as_i64())
        .collect();
    assert_eq!(ports, [80, 8080]);

    // The Deployment's status changes (a rollout progresses): nothing to apply.
    api.edit(DEPLOYMENT, |d| {
        d["status"] = json!({"availableReplicas": 1})
    });
    let (_, _, applied) = round(&api, &mut p).await;
    assert!(
        applied.is_empty(),
        "status changes are not drift: {applied:?}"
    );

    // No GatewayParameters name replicas: portico never applies the field,
    // so a hand (or an autoscaler) scaling the fleet is left alone.
    assert!(
        api.get(DEPLOYMENT).expect("deployment")["spec"]
            .get("replicas")
            .is_none()
    );
    api.edit(DEPLOYMENT, |d| d["spec"]["replicas"] = json!(5));
    round(&api, &mut p).await;
    assert_eq!(
        api.get(DEPLOYMENT).expect("deployment")["spec"]["replicas"],
        5
    );

    // The client certificate is reused across rounds, not reissued.
    let before = api
        .get("/api/v1/namespaces/apps/secrets/envoy-web")
        .expect("secret")["data"]["tls.crt"]
        .clone();
    let mut fresh = Provisioner::new(
        api.client(),
        Settings::default(),
        Arc::new(Authority::generate(SystemTime::now()).expect("CA")),
    );
    let _ = round(&api, &mut fresh).await;
    let after = api
        .get("/api/v1/namespaces/apps/secrets/envoy-web")
        .expect("secret")["data"]["tls.crt"]
        .clone();
    assert_ne!(
        before, after,
        "a certificate of another CA is replaced by one of the current CA"
    );

    // The Gateway moves to another controller's class: its fleet goes.
    api.seed(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\n\
         metadata: {name: other}\nspec: {controllerName: example.com/other}\n",
    );
    api.edit(GATEWAY, |g| g["spec"]["gatewayClassName"] = json!("other"));
    let _ = round(&api, &mut p).await;
    assert!(api.get(DEPLOYMENT).is_none() && api.get(SERVICE).is_none());
}

/// Keep last good: an invalid edit of a serving Gateway (its parameters, its
/// class, its addresses) removes nothing, also for a provisioner that just
/// started and never saw the Gateway valid; the conditions say what is wrong
/// and, while portico remembers the last accepted configuration, that it is
/// still served.
/// An `envoy-<gateway>` object portico did not create is never applied over
/// nor deleted: provisioning fails (with an Event naming it) and the object
/// stays as its owner wrote it.
#[tokio::test]
async fn an_existing_object_portico_does_not_own_is_never_taken_over() {
    let api = FakeApi::default();
    api.seed(WORLD);
    api.seed(
        "apiVersion: apps/v1\nkind: Deployment\n\
         metadata: {name: envoy-web, namespace: apps,\n\
                    labels: {app: theirs, gateway.networking.k8s.io/gateway-name: web}}\n\
         spec:\n  replicas: 3\n  selector: {matchLabels: {app: theirs}}\n  \
         template:\n    metadata: {labels: {app: theirs}}\n    \
         spec: {containers: [{name: app, image: example.com/theirs}]}\n",
    );
    let mut p = provisioner(&api);
    let (_, _, applied) = round(&api, &mut p).await;
    assert!(!applied.contains(&DEPLOYMENT.to_string()), "{applied:?}");
    assert!(!applied.contains(&SERVICE.to_string()), "{applied:?}");
    let theirs = api.get(DEPLOYMENT).expect("still there");
    assert_eq!(theirs["spec"]["replicas"], 3);
    assert_eq!(theirs["metadata"]["labels"]["app"], "theirs");

    // The Gateway leaves portico's classes: nothing of theirs is deleted.
    api.seed(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\n\
         metadata: {name: other}\nspec: {controllerName: example.com/other}\n",
    );
    api.edit(GATEWAY, |g| g["spec"]["gatewayClassName"] = json!("other"));
    let _ = round(&api, &mut p).await;
    assert!(
        api.get(DEPLOYMENT).is_some(),
        "a Deployment portico does not own was deleted"
    );
}

/// One edit of the API's objects.
type Edit = fn(&FakeApi);

#[tokio::test]
async fn invalid_edits_never_remove_a_serving_fleet() {
    let api = FakeApi::default();
    api.seed(WORLD);
    let mut p = provisioner(&api);
    let inputs = inputs_of(&api);
    let (_, memory) = last_good::translate(&inputs, &Options::default(), &LastGood::default());
    let _ = round(&api, &mut p).await;
    assert!(api.get(DEPLOYMENT).is_some() && api.get(SERVICE).is_some());

    let edits: [(&str, Edit); 3] = [
        ("a parametersRef to nothing", |api| {
            api.edit(GATEWAY, |g| {
                g["spec"]["infrastructure"] = json!({"parametersRef": {
                    "group": "portico.dev", "kind": "GatewayParameters", "name": "typo"}});
                g["metadata"]["generation"] = json!(2);
            })
        }),
        ("an address that is not an IP", |api| {
            api.edit(GATEWAY, |g| {
                g["spec"]["addresses"] = json!([{"type": "IPAddress", "value": "not-an-ip"}]);
                g["metadata"]["generation"] = json!(3);
            })
        }),
        ("a class whose parameters break", |api| {
            api.seed(
                "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\n\
                 metadata: {name: portico, generation: 2}\n\
                 spec:\n  controllerName: portico.dev/gateway-controller\n  \
                 parametersRef: {group: portico.dev, kind: GatewayParameters, name: gone, namespace: apps}\n",
            )
        }),
    ];
    for (what, edit) in edits {
        edit(&api);
        let inputs = inputs_of(&api);
        let (outputs, next) = last_good::translate(&inputs, &Options::default(), &memory);
        assert!(next.remembers(&ObjectKey::new("apps", "web")), "{what}");
        let accepted = &outputs.gateways[&ObjectKey::new("apps", "web")]
            .status
            .conditions[0];
        assert_eq!(
            (accepted.type_, accepted.status),
            ("Accepted", ConditionStatus::False),
            "{what}"
        );
        assert!(
            accepted
                .message
                .contains("keeps serving the last accepted configuration (generation 1)"),
            "{what}: {}",
            accepted.message
        );
        // Applied with the remembered infrastructure, and a fresh
        // provisioner (a restarted portico, no memory) removes nothing.
        p.reconcile(
            &inputs,
            &outputs,
            &Live(api.clone()),
            &GatewayEvents::disabled(),
        )
        .await;
        let mut fresh = provisioner(&api);
        let _ = round(&api, &mut fresh).await;
        assert!(
            !api.calls().iter().any(|c| c.method == Method::DELETE),
            "{what}: {:?}",
            api.calls()
        );
        assert!(
            api.get(DEPLOYMENT).is_some() && api.get(SERVICE).is_some(),
            "{what}"
        );
    }
}

#[tokio::test]
async fn invalid_parameters_are_reported_and_nothing_is_provisioned() {
    let api = FakeApi::default();
    api.seed(WORLD);
    api.edit(GATEWAY, |g| {
        g["spec"]["infrastructure"] = json!({"parametersRef": {
            "group": "portico.dev", "kind": "GatewayParameters", "name": "missing"}});
    });
    let mut p = provisioner(&api);
    let (inputs, outputs, applied) = round(&api, &mut p).await;
    assert!(applied.is_empty(), "{applied:?}");
    let writes = plan(&inputs, &outputs, &BTreeMap::new(), "2026-01-01T00:00:00Z");
    let gateway = writes
        .iter()
        .find(|w| w.kind == Kind::Gateway)
        .expect("a Gateway status");
    let accepted = &gateway.status["conditions"][0];
    assert_eq!(accepted["type"], "Accepted");
    assert_eq!(accepted["status"], "False");
    assert_eq!(accepted["reason"], "InvalidParameters");
    assert!(
        accepted["message"]
            .as_str()
            .unwrap_or_default()
            .contains("GatewayParameters apps/missing does not exist")
    );

    // A class with a parametersRef of the wrong kind is not accepted.
    api.seed(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\n\
         metadata: {name: portico, generation: 2}\n\
         spec:\n  controllerName: portico.dev/gateway-controller\n  \
         parametersRef: {group: '', kind: ConfigMap, name: envoy, namespace: apps}\n",
    );
    let inputs = inputs_of(&api);
    let outputs = translate(&inputs);
    let class = &outputs.gateway_classes["portico"].conditions[0];
    assert_eq!(
        (class.type_, class.reason),
        ("Accepted", "InvalidParameters")
    );
    assert!(
        class.message.contains("spec.parametersRef"),
        "{}",
        class.message
    );
}

#[tokio::test]
async fn statuses_are_written_once_keep_their_times_and_others_entries() {
    let api = FakeApi::default();
    api.seed(WORLD);
    api.edit(ROUTE, |r| {
        r["status"] = json!({"parents": [{
            "parentRef": {"name": "elsewhere"},
            "controllerName": "example.com/other",
            "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted",
                            "message": "theirs", "lastTransitionTime": "2020-01-01T00:00:00Z"}]
        }]});
    });
    let writer = StatusWriter::new(api.client());
    let svc: Service = serde_json::from_value(
        json!({"status": {"loadBalancer": {"ingress": [{"ip": "10.211.0.7"}]}}}),
    )
    .expect("service");
    let dep: Deployment =
        serde_json::from_value(json!({"status": {"availableReplicas": 1}})).expect("deployment");
    let feedback = GatewayFeedback {
        streams: 1,
        acked: Some("v1".into()),
        rejected: None,
    };
    let observed = BTreeMap::from([(
        ObjectKey::new("apps", "web"),
        Observed {
            service: Some(&svc),
            deployment: Some(&dep),
            feedback: Some(&feedback),
            current_version: Some("v1"),
            requested: &[],
        },
    )]);

    let inputs = inputs_of(&api);
    let outputs = translate(&inputs);
    let writes = plan(&inputs, &outputs, &observed, "2026-01-01T00:00:00Z");
    assert_eq!(writes.len(), 3, "class, Gateway and route: {writes:#?}");
    assert_eq!(writer.write(writes).await, 3);

    let gateway = api.get(GATEWAY).expect("gateway");
    assert_eq!(gateway["status"]["addresses"][0]["value"], "10.211.0.7");
    let programmed = gateway["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .find(|c| c["type"] == "Programmed")
        .expect("Programmed")
        .clone();
    assert_eq!(programmed["status"], "True");
    let parents = api.get(ROUTE).expect("route")["status"]["parents"].clone();
    assert_eq!(parents.as_array().map(Vec::len), Some(2));
    assert_eq!(parents[0]["controllerName"], "example.com/other");
    assert_eq!(
        parents[0]["conditions"][0]["lastTransitionTime"], "2020-01-01T00:00:00Z",
        "another controller's entry is untouched"
    );

    // Nothing changed: nothing to write, even later.
    let inputs = inputs_of(&api);
    let outputs = translate(&inputs);
    let writes = plan(&inputs, &outputs, &observed, "2026-06-01T00:00:00Z");
    assert!(writes.is_empty(), "{writes:#?}");

    // Envoy rejects the next version: only Programmed changes, with Envoy's words.
    let rejected = GatewayFeedback {
        streams: 1,
        acked: Some("v1".into()),
        rejected: Some(("v2".into(), "invalid regex in route".into())),
    };
    let observed = BTreeMap::from([(
        ObjectKey::new("apps", "web"),
        Observed {
            service: Some(&svc),
            deployment: Some(&dep),
            feedback: Some(&rejected),
            current_version: Some("v2"),
            requested: &[],
        },
    )]);
    let writes = plan(&inputs, &outputs, &observed, "2026-06-01T00:00:00Z");
    assert_eq!(writes.len(), 1);
    assert_eq!(writer.write(writes).await, 1);
    let gateway = api.get(GATEWAY).expect("gateway");
    let conditions = gateway["status"]["conditions"]
        .as_array()
        .expect("conditions");
    let accepted = conditions
        .iter()
        .find(|c| c["type"] == "Accepted")
        .expect("Accepted");
    assert_eq!(
        accepted["lastTransitionTime"], "2026-01-01T00:00:00Z",
        "an unchanged condition keeps its transition time"
    );
    let programmed = conditions
        .iter()
        .find(|c| c["type"] == "Programmed")
        .expect("Programmed");
    assert_eq!(programmed["status"], "False");
    assert_eq!(programmed["reason"], "Invalid");
    assert_eq!(programmed["lastTransitionTime"], "2026-06-01T00:00:00Z");
    assert!(
        programmed["message"]
            .as_str()
            .unwrap_or_default()
            .contains("invalid regex in route")
    );
}
