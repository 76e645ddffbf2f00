//! The Kubernetes source: one reflector per kind translation reads, plus the
//! Deployments portico owns, feeding the same `Inputs` the file source builds.
//!
//! In: watch events from the API server. Out: a fresh `Arc<Inputs>` on a watch
//! channel after each short batch of relevant changes (never before every
//! reflector has listed once), and a tick for the status writer when a fleet's
//! Deployment or Service changes. Stores keep only what translation reads:
//! `managedFields` and the last-applied annotation are stripped on arrival.
//! Services, EndpointSlices, Secrets and ConfigMaps that no route, Gateway
//! or policy references wake nothing.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use gateway_api::apis::standard::backendtlspolicies::BackendTlsPolicy;
use gateway_api::experimental::gatewayclasses::GatewayClass;
use gateway_api::experimental::gateways::Gateway;
use gateway_api::experimental::grpcroutes::GrpcRoute;
use gateway_api::experimental::httproutes::HttpRoute;
use gateway_api::experimental::referencegrants::ReferenceGrant;
use gateway_api::experimental::tcproutes::TcpRoute;
use gateway_api::experimental::tlsroutes::TlsRoute;
use gateway_api::experimental::udproutes::UdpRoute;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::parameters::GatewayParameters;
use super::{Inputs, ObjectKey, SERVICE_NAME_LABEL};
use crate::translate::gateways::CONTROLLER_NAME;

/// The label on every object portico provisions.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by=portico";
/// How long to gather changes before building a new snapshot.
pub const BATCH: Duration = Duration::from_millis(10);

/// What a change should wake.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wake {
    pub translate: bool,
    pub status: bool,
}

/// The references that make Services, EndpointSlices, Secrets and ConfigMaps matter:
/// recomputed from each snapshot, consulted for every event.
#[derive(Debug, Default)]
pub struct Relevance {
    classes: BTreeSet<String>,
    /// Gateways of our classes in the last snapshot: a change moving one to
    /// another class must still wake translation (its fleet goes).
    gateways: BTreeSet<ObjectKey>,
    services: BTreeSet<ObjectKey>,
    secrets: BTreeSet<ObjectKey>,
    config_maps: BTreeSet<ObjectKey>,
}

impl Relevance {
    /// Our class names, every Service a route names as a backend, every
    /// Secret a listener names.
    pub fn of(inputs: &Inputs) -> Self {
        let classes: BTreeSet<String> = inputs
            .gateway_classes
            .values()
            .filter(|c| c.spec.controller_name == CONTROLLER_NAME)
            .map(|c| c.name_any())
            .collect();
        let gateways = inputs
            .gateways
            .iter()
            .filter(|(_, g)| classes.contains(&g.spec.gateway_class_name))
            .map(|(k, _)| k.clone())
            .collect();
        let mut services = BTreeSet::new();
        for route in inputs.http_routes.values() {
            let namespace = route.namespace().unwrap_or_default();
            for rule in route.spec.rules.iter().flatten() {
                let backends = rule.backend_refs.iter().flatten();
                for b in backends {
                    services.insert(ObjectKey::new(
                        b.namespace.clone().unwrap_or_else(|| namespace.clone()),
                        b.name.clone(),
                    ));
                }
                for filter in rule.filters.iter().flatten() {
                    if let Some(m) = &filter.request_mirror {
                        services.insert(ObjectKey::new(
                            m.backend_ref
                                .namespace
                                .clone()
                                .unwrap_or_else(|| namespace.clone()),
                            m.backend_ref.name.clone(),
                        ));
                    }
                }
            }
        }
        let mut backend = |namespace: &str, name: &str, ns: &Option<String>| {
            services.insert(ObjectKey::new(
                ns.clone().unwrap_or_else(|| namespace.to_string()),
                name.to_string(),
            ));
        };
        for route in inputs.grpc_routes.values() {
            let namespace = route.namespace().unwrap_or_default();
            for rule in route.spec.rules.iter().flatten() {
                for b in rule.backend_refs.iter().flatten() {
                    backend(&namespace, &b.name, &b.namespace);
                }
            }
        }
        macro_rules! l4_backends {
            ($store:expr) => {
                for route in $store.values() {
                    let namespace = route.namespace().unwrap_or_default();
                    for rule in &route.spec.rules {
                        for b in &rule.backend_refs {
                            backend(&namespace, &b.name, &b.namespace);
                        }
                    }
                }
            };
        }
        l4_backends!(inputs.tls_routes);
        l4_backends!(inputs.tcp_routes);
        l4_backends!(inputs.udp_routes);
        let mut secrets = BTreeSet::new();
        for gateway in inputs.gateways.values() {
            let namespace = gateway.namespace().unwrap_or_default();
            for l in &gateway.spec.listeners {
                let refs = l
                    .tls
                    .iter()
                    .flat_map(|t| t.certificate_refs.iter().flatten());
                for r in refs {
                    secrets.insert(ObjectKey::new(
                        r.namespace.clone().unwrap_or_else(|| namespace.clone()),
                        r.name.clone(),
                    ));
                }
            }
        }
        let mut config_maps = BTreeSet::new();
        for policy in inputs.backend_tls_policies.values() {
            let namespace = policy.namespace().unwrap_or_default();
            let refs = policy.spec.validation.ca_certificate_refs.iter().flatten();
            for r in refs {
                config_maps.insert(ObjectKey::new(namespace.clone(), r.name.clone()));
            }
        }
        Self {
            classes,
            gateways,
            services,
            secrets,
            config_maps,
        }
    }

    fn config_map(&self, c: &ConfigMap) -> Wake {
        translate_if(self.config_maps.contains(&ObjectKey::of(c)))
    }

    fn gateway(&self, g: &Gateway) -> Wake {
        translate_if(
            self.classes.contains(&g.spec.gateway_class_name)
                || self.gateways.contains(&ObjectKey::of(g)),
        )
    }

    fn service(&self, s: &Service) -> Wake {
        Wake {
            translate: self.services.contains(&ObjectKey::of(s)),
            status: owned(s),
        }
    }

    fn slice(&self, s: &EndpointSlice) -> Wake {
        let service = s.labels().get(SERVICE_NAME_LABEL).cloned();
        let key = ObjectKey::new(
            s.namespace().unwrap_or_default(),
            service.unwrap_or_default(),
        );
        translate_if(self.services.contains(&key))
    }

    fn secret(&self, s: &Secret) -> Wake {
        translate_if(self.secrets.contains(&ObjectKey::of(s)))
    }
}

fn always<K>(_: &K) -> Wake {
    translate_if(true)
}

fn translate_if(yes: bool) -> Wake {
    Wake {
        translate: yes,
        status: false,
    }
}

fn owned<K: ResourceExt>(o: &K) -> bool {
    o.labels()
        .get("app.kubernetes.io/managed-by")
        .map(String::as_str)
        == Some("portico")
}

/// Drops what translation never reads, before the object is stored.
fn strip<K: ResourceExt>(o: &mut K) {
    o.managed_fields_mut().clear();
    o.annotations_mut()
        .remove("kubectl.kubernetes.io/last-applied-configuration");
}

/// Readers of every store, and the wake-up channel.
#[derive(Clone)]
pub struct Stores {
    pub gateway_classes: Store<GatewayClass>,
    pub gateways: Store<Gateway>,
    pub http_routes: Store<HttpRoute>,
    pub grpc_routes: Store<GrpcRoute>,
    pub tls_routes: Store<TlsRoute>,
    pub tcp_routes: Store<TcpRoute>,
    pub udp_routes: Store<UdpRoute>,
    pub reference_grants: Store<ReferenceGrant>,
    pub services: Store<Service>,
    pub endpoint_slices: Store<EndpointSlice>,
    pub namespaces: Store<Namespace>,
    pub secrets: Store<Secret>,
    pub backend_tls_policies: Store<BackendTlsPolicy>,
    pub config_maps: Store<ConfigMap>,
    pub gateway_parameters: Store<GatewayParameters>,
    /// Deployments portico provisioned.
    pub deployments: Store<Deployment>,
}

impl Stores {
    /// Waits until every reflector has listed once.
    pub async fn ready(&self) -> Result<(), reflector::store::WriterDropped> {
        self.gateway_classes.wait_until_ready().await?;
        self.gateways.wait_until_ready().await?;
        self.http_routes.wait_until_ready().await?;
        self.grpc_routes.wait_until_ready().await?;
        self.tls_routes.wait_until_ready().await?;
        self.tcp_routes.wait_until_ready().await?;
        self.udp_routes.wait_until_ready().await?;
        self.reference_grants.wait_until_ready().await?;
        self.services.wait_until_ready().await?;
        self.endpoint_slices.wait_until_ready().await?;
        self.namespaces.wait_until_ready().await?;
        self.secrets.wait_until_ready().await?;
        self.backend_tls_policies.wait_until_ready().await?;
        self.config_maps.wait_until_ready().await?;
        self.gateway_parameters.wait_until_ready().await?;
        self.deployments.wait_until_ready().await
    }

    /// One snapshot of everything translation reads.
    pub fn snapshot(&self) -> Inputs {
        let mut inputs = Inputs::default();
        fill(&mut inputs.gateway_classes, &self.gateway_classes);
        fill(&mut inputs.gateways, &self.gateways);
        fill(&mut inputs.http_routes, &self.http_routes);
        fill(&mut inputs.grpc_routes, &self.grpc_routes);
        fill(&mut inputs.tls_routes, &self.tls_routes);
        fill(&mut inputs.tcp_routes, &self.tcp_routes);
        fill(&mut inputs.udp_routes, &self.udp_routes);
        fill(&mut inputs.reference_grants, &self.reference_grants);
        fill(&mut inputs.services, &self.services);
        fill(&mut inputs.namespaces, &self.namespaces);
        fill(&mut inputs.secrets, &self.secrets);
        fill(&mut inputs.backend_tls_policies, &self.backend_tls_policies);
        fill(&mut inputs.config_maps, &self.config_maps);
        fill(&mut inputs.gateway_parameters, &self.gateway_parameters);
        for slice in self.endpoint_slices.state() {
            inputs.add_endpoint_slice(slice);
        }
        inputs
    }
}

fn fill<K: ResourceExt + Clone>(
    into: &mut std::collections::BTreeMap<ObjectKey, Arc<K>>,
    store: &Store<K>,
) where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    for o in store.state() {
        into.insert(ObjectKey::of(o.as_ref()), o);
    }
}

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The running source: snapshots on `inputs`, status wake-ups on `owned_changed`.
pub struct KubeSource {
    pub stores: Stores,
    pub inputs: watch::Receiver<Option<Arc<Inputs>>>,
    pub owned_changed: watch::Receiver<u64>,
    /// The reflector tasks and the batching loop; poll them all (e.g. with
    /// `futures::future::join_all`) for the source to run.
    pub tasks: Vec<Task>,
}

/// Kinds beyond HTTPRoute whose CRDs a cluster may not serve (the
/// experimental channel, or an older Gateway API release): only those served
/// when portico starts are watched; the others stay empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptionalKinds {
    pub grpc_routes: bool,
    pub tls_routes: bool,
    pub tcp_routes: bool,
    pub udp_routes: bool,
    pub backend_tls_policies: bool,
}

impl OptionalKinds {
    /// Asks the API server which of the kinds it serves, in the versions
    /// portico reads. A group version that cannot be listed counts as not
    /// served, and is logged.
    pub async fn discover(client: &Client) -> Self {
        let v1 = served(client, "gateway.networking.k8s.io/v1").await;
        let v1alpha2 = served(client, "gateway.networking.k8s.io/v1alpha2").await;
        let has = |list: &[String], plural: &str| list.iter().any(|r| r == plural);
        let kinds = Self {
            grpc_routes: has(&v1, "grpcroutes"),
            tls_routes: has(&v1, "tlsroutes"),
            tcp_routes: has(&v1alpha2, "tcproutes"),
            udp_routes: has(&v1alpha2, "udproutes"),
            backend_tls_policies: has(&v1, "backendtlspolicies"),
        };
        tracing::info!(?kinds, "route kinds served by the API server");
        kinds
    }
}

async fn served(client: &Client, group_version: &str) -> Vec<String> {
    match client.list_api_group_resources(group_version).await {
        Ok(list) => list.resources.into_iter().map(|r| r.name).collect(),
        Err(e) => {
            tracing::warn!(group_version, error = %e, "not served; its route kinds are not watched");
            Vec::new()
        }
    }
}

/// A store that stays empty and counts as listed, for a kind not served.
fn empty_store<K>() -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let (reader, mut writer) = reflector::store();
    writer.apply_watcher_event(&watcher::Event::Init);
    writer.apply_watcher_event(&watcher::Event::InitDone);
    reader
}

/// Starts watching every kind with `client` (the optional route kinds only
/// where `kinds` says they are served).
pub fn start(client: Client, kinds: OptionalKinds) -> KubeSource {
    let relevance = Arc::new(RwLock::new(Relevance::default()));
    let (wake_tx, wake_rx) = watch::channel(0u64);
    let (owned_tx, owned_rx) = watch::channel(0u64);
    let (inputs_tx, inputs_rx) = watch::channel(None);
    let wake = Waker {
        translate: wake_tx,
        status: owned_tx,
    };
    let mut tasks: Vec<Task> = Vec::new();
    let all = watcher::Config::default();
    macro_rules! with {
        ($method:ident, $kind:ty) => {{
            let r = Arc::clone(&relevance);
            move |o: &$kind| {
                r.read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .$method(o)
            }
        }};
    }
    let gateway_classes = reflect(
        Api::all(client.clone()),
        all.clone(),
        always,
        &wake,
        &mut tasks,
    );
    let gateways = reflect(
        Api::all(client.clone()),
        all.clone(),
        with!(gateway, Gateway),
        &wake,
        &mut tasks,
    );
    let http_routes = reflect(
        Api::all(client.clone()),
        all.clone(),
        always,
        &wake,
        &mut tasks,
    );
    macro_rules! optional {
        ($served:expr) => {
            if $served {
                reflect(
                    Api::all(client.clone()),
                    all.clone(),
                    always,
                    &wake,
                    &mut tasks,
                )
            } else {
                empty_store()
            }
        };
    }
    let grpc_routes = optional!(kinds.grpc_routes);
    let tls_routes = optional!(kinds.tls_routes);
    let tcp_routes = optional!(kinds.tcp_routes);
    let udp_routes = optional!(kinds.udp_routes);
    let backend_tls_policies = optional!(kinds.backend_tls_policies);
    let config_maps = reflect(
        Api::all(client.clone()),
        all.clone(),
        with!(config_map, ConfigMap),
        &wake,
        &mut tasks,
    );
    let reference_grants = reflect(
        Api::all(client.clone()),
        all.clone(),
        always,
        &wake,
        &mut tasks,
    );
    let services = reflect(
        Api::all(client.clone()),
        all.clone(),
        with!(service, Service),
        &wake,
        &mut tasks,
    );
    let endpoint_slices = reflect(
        Api::all(client.clone()),
        all.clone(),
        with!(slice, EndpointSlice),
        &wake,
        &mut tasks,
    );
    let namespaces = reflect(
        Api::all(client.clone()),
        all.clone(),
        always,
        &wake,
        &mut tasks,
    );
    let secrets = reflect(
        Api::all(client.clone()),
        all.clone().fields("type=kubernetes.io/tls"),
        with!(secret, Secret),
        &wake,
        &mut tasks,
    );
    let gateway_parameters = reflect(
        Api::all(client.clone()),
        all.clone(),
        always,
        &wake,
        &mut tasks,
    );
    let deployments = reflect(
        Api::all(client),
        all.labels(MANAGED_BY),
        |_: &Deployment| Wake {
            translate: false,
            status: true,
        },
        &wake,
        &mut tasks,
    );
    let stores = Stores {
        gateway_classes,
        gateways,
        http_routes,
        grpc_routes,
        tls_routes,
        tcp_routes,
        udp_routes,
        reference_grants,
        services,
        endpoint_slices,
        namespaces,
        secrets,
        backend_tls_policies,
        config_maps,
        gateway_parameters,
        deployments,
    };
    tasks.push(Box::pin(batch(
        stores.clone(),
        wake_rx,
        inputs_tx,
        relevance,
    )));
    KubeSource {
        stores,
        inputs: inputs_rx,
        owned_changed: owned_rx,
        tasks,
    }
}

struct Waker {
    translate: watch::Sender<u64>,
    status: watch::Sender<u64>,
}

fn reflect<K, F>(
    api: Api<K>,
    config: watcher::Config,
    relevant: F,
    wake: &Waker,
    tasks: &mut Vec<Task>,
) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    F: Fn(&K) -> Wake + Send + 'static,
{
    let (reader, writer) = reflector::store();
    let translate = wake.translate.clone();
    let status = wake.status.clone();
    let kind = K::kind(&()).to_string();
    let stream = reflector::reflector(
        writer,
        watcher(api, config).modify(strip::<K>).default_backoff(),
    );
    tasks.push(Box::pin(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            let w = match &event {
                Ok(watcher::Event::Apply(o) | watcher::Event::Delete(o)) => relevant(o),
                Ok(watcher::Event::InitDone) => Wake {
                    translate: true,
                    status: true,
                },
                Ok(_) => Wake::default(),
                Err(e) => {
                    tracing::warn!(%kind, error = %e, "watch failed; retrying");
                    Wake::default()
                }
            };
            if w.translate {
                translate.send_modify(|n| *n += 1);
            }
            if w.status {
                status.send_modify(|n| *n += 1);
            }
        }
    }));
    reader
}

/// Builds a snapshot after each batch of relevant changes, once every store
/// has listed.
async fn batch(
    stores: Stores,
    mut wake: watch::Receiver<u64>,
    inputs: watch::Sender<Option<Arc<Inputs>>>,
    relevance: Arc<RwLock<Relevance>>,
) {
    if stores.ready().await.is_err() {
        return;
    }
    loop {
        tokio::time::sleep(BATCH).await;
        wake.mark_unchanged();
        let snapshot = stores.snapshot();
        *relevance
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Relevance::of(&snapshot);
        inputs.send_replace(Some(Arc::new(snapshot)));
        if wake.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::files::parse_documents;

    #[test]
    fn only_referenced_services_and_slices_wake_translation() {
        let yaml = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\n\
                    metadata: {name: ours}\nspec: {controllerName: portico.dev/gateway-controller}\n---\n\
                    apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n\
                    metadata: {name: gw, namespace: web}\nspec: {gatewayClassName: ours, listeners: []}\n---\n\
                    apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
                    metadata: {name: r, namespace: web}\n\
                    spec:\n  rules:\n  - backendRefs: [{name: app, port: 80}, {name: db, namespace: data, port: 5432}]\n";
        let mut b = crate::inputs::InputsBuilder::default();
        for o in parse_documents(std::path::Path::new("t.yaml"), yaml).expect("parses") {
            b.insert(o);
        }
        let r = Relevance::of(&b.build());
        let service = |ns: &str, name: &str| {
            let mut s = Service::default();
            s.metadata.namespace = Some(ns.into());
            s.metadata.name = Some(name.into());
            s
        };
        assert!(r.service(&service("web", "app")).translate);
        assert!(r.service(&service("data", "db")).translate);
        assert!(!r.service(&service("web", "db")).translate);
        let mut fleet = service("web", "envoy-gw");
        fleet
            .labels_mut()
            .insert("app.kubernetes.io/managed-by".into(), "portico".into());
        assert_eq!(
            r.service(&fleet),
            Wake {
                translate: false,
                status: true
            },
            "a fleet's Service wakes the status writer only"
        );
        let mut slice = EndpointSlice::default();
        slice.metadata.namespace = Some("web".into());
        slice.metadata.name = Some("app-x1".into());
        slice
            .labels_mut()
            .insert(SERVICE_NAME_LABEL.into(), "app".into());
        assert!(r.slice(&slice).translate);
        slice
            .labels_mut()
            .insert(SERVICE_NAME_LABEL.into(), "other".into());
        assert!(!r.slice(&slice).translate);

        let gateway = |name: &str, class: &str| -> Gateway {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "web"},
                "spec": {"gatewayClassName": class, "listeners": []}
            }))
            .expect("gateway")
        };
        assert!(r.gateway(&gateway("new", "ours")).translate);
        assert!(!r.gateway(&gateway("new", "theirs")).translate);
        assert!(
            r.gateway(&gateway("gw", "theirs")).translate,
            "a Gateway leaving our class still wakes translation"
        );
    }
}
