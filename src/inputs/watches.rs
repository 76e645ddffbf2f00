//! The Kubernetes source: one reflector per kind translation reads, plus the
//! Deployments portico owns, feeding the same `Inputs` the file source builds.
//!
//! In: watch events from the API server. Out: a fresh `Arc<Inputs>` on a watch
//! channel after each short batch of relevant changes (never before every
//! reflector has listed once), and a tick for the status writer when a fleet's
//! Deployment or Service changes. Stores keep only what translation reads:
//! `managedFields` and the last-applied annotation are stripped on arrival.
//! ConfigMaps and TLS Secrets are watched metadata only and held in full
//! only while referenced (`referenced`: the batcher hands each snapshot's
//! references over and waits for new ones to be fetched before publishing
//! it); a change to one nobody references wakes nothing, nor does one to a
//! Service or EndpointSlice that the latest translation's report does not
//! name (`relevance`; the runtime hands the report over through
//! `follow_references`). The optional kinds (a
//! cluster may not serve their CRDs) are watched from the moment discovery
//! finds them served:
//! `keep_discovering` retries a failing discovery with capped back-off and
//! asks again every `REDISCOVER`; until a kind is served its store reads as
//! empty, and no snapshot is built before the first discovery has answered.

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
use gateway_api::experimental::listenersets::ListenerSet;
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
use super::referenced::{self, Referenced};
use super::relevance::{self, Relevance, Wake, always};
use super::{Inputs, ObjectKey};
use crate::identity::MANAGED_BY;
use crate::translate::Outputs;

/// The label on every object portico provisions.
/// How long to gather changes before building a new snapshot.
pub const BATCH: Duration = Duration::from_millis(10);

/// Drops what translation never reads, before the object is stored.
pub(super) fn strip<K: ResourceExt>(o: &mut K) {
    o.managed_fields_mut().clear();
    o.annotations_mut()
        .remove("kubectl.kubernetes.io/last-applied-configuration");
}

/// Readers of every store, and the wake-up channel.
#[derive(Clone)]
pub struct Stores {
    pub gateway_classes: Store<GatewayClass>,
    pub gateways: Store<Gateway>,
    pub listener_sets: Store<ListenerSet>,
    pub http_routes: Store<HttpRoute>,
    pub grpc_routes: Store<GrpcRoute>,
    pub tls_routes: Store<TlsRoute>,
    pub tcp_routes: Store<TcpRoute>,
    pub udp_routes: Store<UdpRoute>,
    pub reference_grants: Store<ReferenceGrant>,
    pub services: Store<Service>,
    pub endpoint_slices: Store<EndpointSlice>,
    pub namespaces: Store<Namespace>,
    /// TLS Secrets: the referenced ones in full, all by metadata.
    pub secrets: Referenced<Secret>,
    pub backend_tls_policies: Store<BackendTlsPolicy>,
    /// ConfigMaps: the referenced ones in full, all by metadata.
    pub config_maps: Referenced<ConfigMap>,
    pub gateway_parameters: Store<GatewayParameters>,
    /// Deployments portico provisioned.
    pub deployments: Store<Deployment>,
}

impl Stores {
    /// Waits until every reflector has listed once (for ConfigMaps and
    /// Secrets: their metadata).
    pub async fn ready(&self) -> Result<(), reflector::store::WriterDropped> {
        self.gateway_classes.wait_until_ready().await?;
        self.gateways.wait_until_ready().await?;
        self.listener_sets.wait_until_ready().await?;
        self.http_routes.wait_until_ready().await?;
        self.grpc_routes.wait_until_ready().await?;
        self.tls_routes.wait_until_ready().await?;
        self.tcp_routes.wait_until_ready().await?;
        self.udp_routes.wait_until_ready().await?;
        self.reference_grants.wait_until_ready().await?;
        self.services.wait_until_ready().await?;
        self.endpoint_slices.wait_until_ready().await?;
        self.namespaces.wait_until_ready().await?;
        self.secrets.listed.wait_until_ready().await?;
        self.backend_tls_policies.wait_until_ready().await?;
        self.config_maps.listed.wait_until_ready().await?;
        self.gateway_parameters.wait_until_ready().await?;
        self.deployments.wait_until_ready().await
    }

    /// One snapshot of everything translation reads.
    pub fn snapshot(&self) -> Inputs {
        let mut inputs = Inputs::default();
        fill(&mut inputs.gateway_classes, &self.gateway_classes);
        fill(&mut inputs.gateways, &self.gateways);
        fill(&mut inputs.listener_sets, &self.listener_sets);
        fill(&mut inputs.http_routes, &self.http_routes);
        fill(&mut inputs.grpc_routes, &self.grpc_routes);
        fill(&mut inputs.tls_routes, &self.tls_routes);
        fill(&mut inputs.tcp_routes, &self.tcp_routes);
        fill(&mut inputs.udp_routes, &self.udp_routes);
        fill(&mut inputs.reference_grants, &self.reference_grants);
        fill(&mut inputs.services, &self.services);
        fill(&mut inputs.namespaces, &self.namespaces);
        fill(&mut inputs.backend_tls_policies, &self.backend_tls_policies);
        fill(&mut inputs.gateway_parameters, &self.gateway_parameters);
        for slice in self.endpoint_slices.state() {
            inputs.add_endpoint_slice(slice);
        }
        self.referenced_into(&mut inputs);
        inputs
    }

    /// Puts the full referenced ConfigMaps and Secrets into `inputs`,
    /// replacing what it held of them.
    fn referenced_into(&self, inputs: &mut Inputs) {
        inputs.secrets.clear();
        fill(&mut inputs.secrets, &self.secrets.full);
        inputs.config_maps.clear();
        fill(&mut inputs.config_maps, &self.config_maps.full);
    }

    /// Hands the Secrets and ConfigMaps `relevance` references to their
    /// followers; true once they have tried the newly wanted ones (the full
    /// stores changed since the last snapshot).
    async fn want(&self, relevance: &Relevance) -> bool {
        let (secrets, config_maps) = futures::join!(
            self.secrets.want(relevance.secrets()),
            self.config_maps.want(relevance.config_maps()),
        );
        secrets || config_maps
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
    /// Where the Services the latest translation references go
    /// (`follow_references`): they decide which Service and EndpointSlice
    /// changes wake translation.
    pub references: watch::Sender<BTreeSet<ObjectKey>>,
    pub inputs: watch::Receiver<Option<Arc<Inputs>>>,
    pub owned_changed: watch::Receiver<u64>,
    /// The reflector tasks and the batching loop; poll them all (e.g. with
    /// `futures::future::join_all`) for the source to run.
    pub tasks: Vec<Task>,
}

/// Kinds beyond HTTPRoute whose CRDs a cluster may not serve (the
/// experimental channel, or an older Gateway API release): each is watched
/// once discovery finds it served; until then its store stays empty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OptionalKinds {
    pub listener_sets: bool,
    pub grpc_routes: bool,
    pub tls_routes: bool,
    pub tcp_routes: bool,
    pub udp_routes: bool,
    pub backend_tls_policies: bool,
}

/// How often the API server is asked again which optional kinds it serves,
/// so that CRDs installed after start are watched without a restart.
pub const REDISCOVER: Duration = Duration::from_secs(45);
/// The first wait after a failed discovery; it doubles up to `DISCOVERY_BACKOFF_MAX`.
pub const DISCOVERY_BACKOFF_FIRST: Duration = Duration::from_millis(500);
/// The longest wait between failed discoveries.
pub const DISCOVERY_BACKOFF_MAX: Duration = Duration::from_secs(30);

impl OptionalKinds {
    /// Asks the API server which of the kinds it serves, in the versions
    /// portico reads. A group version the server does not know (404) serves
    /// none of them; any other failure is an error, to be retried.
    pub async fn discover(client: &Client) -> Result<Self, kube::Error> {
        let v1 = served(client, "gateway.networking.k8s.io/v1").await?;
        let v1alpha2 = served(client, "gateway.networking.k8s.io/v1alpha2").await?;
        let has = |list: &[String], plural: &str| list.iter().any(|r| r == plural);
        Ok(Self {
            listener_sets: has(&v1, "listenersets"),
            grpc_routes: has(&v1, "grpcroutes"),
            tls_routes: has(&v1, "tlsroutes"),
            tcp_routes: has(&v1alpha2, "tcproutes"),
            udp_routes: has(&v1alpha2, "udproutes"),
            backend_tls_policies: has(&v1, "backendtlspolicies"),
        })
    }

    /// Every kind served in either: a kind once watched stays watched (its
    /// watch retries on its own if the CRD goes away).
    pub fn union(self, other: Self) -> Self {
        Self {
            listener_sets: self.listener_sets || other.listener_sets,
            grpc_routes: self.grpc_routes || other.grpc_routes,
            tls_routes: self.tls_routes || other.tls_routes,
            tcp_routes: self.tcp_routes || other.tcp_routes,
            udp_routes: self.udp_routes || other.udp_routes,
            backend_tls_policies: self.backend_tls_policies || other.backend_tls_policies,
        }
    }
}

async fn served(client: &Client, group_version: &str) -> Result<Vec<String>, kube::Error> {
    match client.list_api_group_resources(group_version).await {
        Ok(list) => Ok(list.resources.into_iter().map(|r| r.name).collect()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Keeps `kinds` current with what `probe` (normally
/// `OptionalKinds::discover`) finds: `None` until the first answer, failures
/// retried after `DISCOVERY_BACKOFF_FIRST`, doubling up to
/// `DISCOVERY_BACKOFF_MAX`, and after an answer asked again every
/// `REDISCOVER`. Kinds found served are added, never removed. Returns once
/// nobody listens any more.
pub async fn keep_discovering<P, F, E>(mut probe: P, kinds: watch::Sender<Option<OptionalKinds>>)
where
    P: FnMut() -> F,
    F: Future<Output = Result<OptionalKinds, E>>,
    E: std::fmt::Display,
{
    let mut backoff = DISCOVERY_BACKOFF_FIRST;
    loop {
        let wait = match probe().await {
            Ok(found) => {
                backoff = DISCOVERY_BACKOFF_FIRST;
                kinds.send_if_modified(|current| {
                    let next = current.map_or(found, |c| c.union(found));
                    let changed = *current != Some(next);
                    if changed {
                        tracing::info!(kinds = ?next, "optional kinds served by the API server");
                    }
                    *current = Some(next);
                    changed
                });
                REDISCOVER
            }
            Err(e) => {
                let wait = backoff;
                backoff = (backoff * 2).min(DISCOVERY_BACKOFF_MAX);
                tracing::warn!(error = %e, retry_in = ?wait, "API discovery failed");
                wait
            }
        };
        if kinds.is_closed() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = kinds.closed() => return,
        }
    }
}

/// Feeds one optional kind's store: nothing until the first discovery (so
/// the first snapshot waits for it), then, while the kind is not served, an
/// empty store that counts as listed, and from the moment it is served the
/// kind's watch (`run`, given the store's writer).
async fn when_served<K, R, F>(
    mut kinds: watch::Receiver<Option<OptionalKinds>>,
    served: fn(&OptionalKinds) -> bool,
    mut writer: reflector::store::Writer<K>,
    run: R,
) where
    K: Resource<DynamicType = ()> + Clone + 'static,
    R: FnOnce(reflector::store::Writer<K>) -> F,
    F: Future<Output = ()>,
{
    let mut listed_empty = false;
    loop {
        let current = *kinds.borrow_and_update();
        match current {
            Some(k) if served(&k) => break,
            Some(_) if !listed_empty => {
                writer.apply_watcher_event(&watcher::Event::Init);
                writer.apply_watcher_event(&watcher::Event::InitDone);
                listed_empty = true;
            }
            _ => {}
        }
        if kinds.changed().await.is_err() {
            return;
        }
    }
    drop(kinds);
    run(writer).await;
}

/// Starts watching every kind with `client`; the optional kinds each once
/// `kinds` (kept by `keep_discovering`) says they are served.
pub fn start(client: Client, kinds: watch::Receiver<Option<OptionalKinds>>) -> KubeSource {
    let relevance = Arc::new(RwLock::new(Relevance::default()));
    let (references_tx, references_rx) = watch::channel(BTreeSet::new());
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
        ($field:ident) => {{
            let (reader, writer) = reflector::store();
            let api = Api::all(client.clone());
            let config = all.clone();
            let wake = wake.clone();
            tasks.push(Box::pin(when_served(
                kinds.clone(),
                |k| k.$field,
                writer,
                move |writer| watch_into(writer, api, config, always, wake),
            )));
            reader
        }};
    }
    let listener_sets = optional!(listener_sets);
    let grpc_routes = optional!(grpc_routes);
    let tls_routes = optional!(tls_routes);
    let tcp_routes = optional!(tcp_routes);
    let udp_routes = optional!(udp_routes);
    let backend_tls_policies = optional!(backend_tls_policies);
    let (config_maps, follower) =
        referenced::watch(client.clone(), all.clone(), wake.translate.clone());
    tasks.push(Box::pin(follower));
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
    let (secrets, follower) = referenced::watch(
        client.clone(),
        all.clone().fields("type=kubernetes.io/tls"),
        wake.translate.clone(),
    );
    tasks.push(Box::pin(follower));
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
        listener_sets,
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
        references_rx,
    )));
    KubeSource {
        stores,
        references: references_tx,
        inputs: inputs_rx,
        owned_changed: owned_rx,
        tasks,
    }
}

#[derive(Clone)]
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
    tasks.push(Box::pin(watch_into(
        writer,
        api,
        config,
        relevant,
        wake.clone(),
    )));
    reader
}

/// Watches one kind into `writer`, waking what each change concerns.
fn watch_into<K, F>(
    writer: reflector::store::Writer<K>,
    api: Api<K>,
    config: watcher::Config,
    relevant: F,
    wake: Waker,
) -> impl Future<Output = ()> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    F: Fn(&K) -> Wake + Send + 'static,
{
    let kind = K::kind(&()).to_string();
    let stream = reflector::reflector(
        writer,
        watcher(api, config).modify(strip::<K>).default_backoff(),
    );
    async move {
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
                wake.translate.send_modify(|n| *n += 1);
            }
            if w.status {
                wake.status.send_modify(|n| *n += 1);
            }
        }
    }
}

/// Builds a snapshot after each batch of relevant changes, once every store
/// has listed (an optional kind's store: once discovery has answered). The
/// ConfigMaps and Secrets a snapshot newly references are fetched before it
/// is published, so it holds them (see `referenced`). A report of
/// references naming a Service anew builds a new snapshot when the stores
/// changed that Service since the last one (see `relevance`).
async fn batch(
    stores: Stores,
    mut wake: watch::Receiver<u64>,
    inputs: watch::Sender<Option<Arc<Inputs>>>,
    relevance: Arc<RwLock<Relevance>>,
    mut references: watch::Receiver<BTreeSet<ObjectKey>>,
) {
    if stores.ready().await.is_err() {
        return;
    }
    let read = |r: &RwLock<Relevance>| {
        r.read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .services()
            .clone()
    };
    let mut reports = true;
    loop {
        tokio::time::sleep(BATCH).await;
        wake.mark_unchanged();
        let mut snapshot = stores.snapshot();
        let next = Relevance::of(&snapshot, read(&relevance));
        if stores.want(&next).await {
            stores.referenced_into(&mut snapshot);
        }
        *relevance
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = next;
        let snapshot = Arc::new(snapshot);
        inputs.send_replace(Some(Arc::clone(&snapshot)));
        loop {
            tokio::select! {
                r = wake.changed() => {
                    if r.is_err() {
                        return;
                    }
                    break;
                }
                r = references.changed(), if reports => {
                    if r.is_err() {
                        reports = false;
                        continue;
                    }
                    let report = references.borrow_and_update().clone();
                    let new = relevance
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .follow(report);
                    if relevance::missed(&new, &stores.services, &stores.endpoint_slices, &snapshot) {
                        break;
                    }
                }
            }
        }
    }
}

/// Hands the Services each translation references to the source (see
/// `KubeSource::references`), until either side stops.
pub async fn follow_references<T>(
    to: watch::Sender<BTreeSet<ObjectKey>>,
    mut translated: watch::Receiver<Option<(T, Arc<Outputs>)>>,
) {
    loop {
        let services = translated
            .borrow_and_update()
            .as_ref()
            .map(|(_, outputs)| outputs.referenced_services());
        if let Some(services) = services {
            to.send_if_modified(|old| {
                let changed = *old != services;
                *old = services;
                changed
            });
        }
        if translated.changed().await.is_err() || to.is_closed() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty store that has listed.
    fn listed<K: Resource<DynamicType = ()> + Clone + 'static>() -> Store<K> {
        let (reader, mut writer) = reflector::store();
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitDone);
        reader
    }

    fn grpc() -> OptionalKinds {
        OptionalKinds {
            grpc_routes: true,
            ..OptionalKinds::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn failing_discovery_is_retried_with_back_off_and_later_kinds_are_added() {
        use std::collections::VecDeque;
        use std::sync::Mutex;
        let answers = Arc::new(Mutex::new(VecDeque::from([
            Err("connection refused".to_string()),
            Err("503 Service Unavailable".to_string()),
            Ok(OptionalKinds::default()),
            Err("timed out".to_string()),
            Ok(grpc()),
        ])));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let start = tokio::time::Instant::now();
        let (tx, mut rx) = watch::channel(None);
        let task = {
            let answers = Arc::clone(&answers);
            let calls = Arc::clone(&calls);
            tokio::spawn(keep_discovering(
                move || {
                    calls
                        .lock()
                        .expect("calls")
                        .push(start.elapsed().as_millis());
                    let next = answers
                        .lock()
                        .expect("answers")
                        .pop_front()
                        .unwrap_or(Ok(grpc()));
                    async move { next }
                },
                tx,
            ))
        };
        rx.changed().await.expect("first answer");
        assert_eq!(*rx.borrow_and_update(), Some(OptionalKinds::default()));
        assert_eq!(
            *calls.lock().expect("calls"),
            vec![0, 500, 1500],
            "two failures retried after 0.5 s, then 1 s"
        );
        rx.changed().await.expect("GRPCRoute appears");
        assert_eq!(*rx.borrow_and_update(), Some(grpc()));
        let asked_again = 1500 + REDISCOVER.as_millis();
        assert_eq!(
            *calls.lock().expect("calls"),
            vec![0, 500, 1500, asked_again, asked_again + 500],
            "asked again after REDISCOVER; after a failure the back-off starts over"
        );
        drop(rx);
        tokio::time::timeout(REDISCOVER * 2, task)
            .await
            .expect("stops without listeners")
            .expect("task");
    }

    #[test]
    fn back_off_is_capped() {
        let mut b = DISCOVERY_BACKOFF_FIRST;
        for _ in 0..20 {
            b = (b * 2).min(DISCOVERY_BACKOFF_MAX);
        }
        assert_eq!(b, DISCOVERY_BACKOFF_MAX);
        assert!(DISCOVERY_BACKOFF_MAX < REDISCOVER);
    }

    #[tokio::test]
    async fn an_optional_kind_is_empty_until_served_then_watched() {
        let (tx, rx) = watch::channel(None);
        let (reader, writer) = reflector::store::<ConfigMap>();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(when_served(
            rx,
            |k| k.grpc_routes,
            writer,
            move |mut w| async move {
                // Stands in for the reflector: lists one object.
                let mut late = ConfigMap::default();
                late.metadata.namespace = Some("web".into());
                late.metadata.name = Some("late".into());
                w.apply_watcher_event(&watcher::Event::Init);
                w.apply_watcher_event(&watcher::Event::InitApply(late));
                w.apply_watcher_event(&watcher::Event::InitDone);
                let _ = started_tx.send(());
                std::future::pending::<()>().await;
            },
        ));
        let short = Duration::from_millis(50);
        let long = Duration::from_secs(5);
        assert!(
            tokio::time::timeout(short, reader.wait_until_ready())
                .await
                .is_err(),
            "not listed before discovery has answered"
        );
        tx.send_replace(Some(OptionalKinds::default()));
        tokio::time::timeout(long, reader.wait_until_ready())
            .await
            .expect("listed once discovery answered")
            .expect("writer alive");
        assert!(reader.state().is_empty(), "not served: empty");
        tx.send_replace(Some(grpc()));
        tokio::time::timeout(long, started_rx)
            .await
            .expect("watch started once served")
            .expect("started");
        assert_eq!(reader.state().len(), 1, "the kind's objects arrive");
        task.abort();
    }

    #[tokio::test]
    async fn no_snapshot_before_discovery_answers() {
        let (wake_tx, wake_rx) = watch::channel(0u64);
        let (kinds_tx, kinds_rx) = watch::channel(None);
        let (grpc_reader, grpc_writer) = reflector::store::<GrpcRoute>();
        let feed = tokio::spawn(when_served(
            kinds_rx,
            |k| k.grpc_routes,
            grpc_writer,
            |_| std::future::pending::<()>(),
        ));
        let stores = Stores {
            gateway_classes: listed(),
            gateways: listed(),
            listener_sets: listed(),
            http_routes: listed(),
            grpc_routes: grpc_reader,
            tls_routes: listed(),
            tcp_routes: listed(),
            udp_routes: listed(),
            reference_grants: listed(),
            services: listed(),
            endpoint_slices: listed(),
            namespaces: listed(),
            secrets: referenced::fake::empty(wake_tx.clone()).0,
            backend_tls_policies: listed(),
            config_maps: referenced::fake::empty(wake_tx.clone()).0,
            gateway_parameters: listed(),
            deployments: listed(),
        };
        let (inputs_tx, mut inputs_rx) = watch::channel(None);
        let batcher = tokio::spawn(batch(
            stores,
            wake_rx,
            inputs_tx,
            Arc::new(RwLock::new(Relevance::default())),
            watch::channel(BTreeSet::new()).1,
        ));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            inputs_rx.borrow().is_none(),
            "no snapshot while discovery fails"
        );
        kinds_tx.send_replace(Some(OptionalKinds::default()));
        tokio::time::timeout(Duration::from_secs(5), inputs_rx.changed())
            .await
            .expect("a snapshot once discovery answered")
            .expect("batcher alive");
        assert!(inputs_rx.borrow().is_some());
        feed.abort();
        batcher.abort();
    }

    fn policy(ca: &str) -> BackendTlsPolicy {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "tls", "namespace": "web"},
            "spec": {
                "targetRefs": [{"group": "", "kind": "Service", "name": "app"}],
                "validation": {
                    "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": ca}],
                    "hostname": "app.web"
                }
            }
        }))
        .expect("policy")
    }

    fn ca(version: &str, pem: &str) -> ConfigMap {
        let mut c = ConfigMap::default();
        c.metadata.namespace = Some("web".into());
        c.metadata.name = Some("ca".into());
        c.metadata.resource_version = Some(version.into());
        c.data = Some([("ca.crt".to_string(), pem.to_string())].into());
        c
    }

    /// The CA bundle of ConfigMap web/ca in the next snapshot.
    async fn next_ca(inputs: &mut watch::Receiver<Option<Arc<Inputs>>>) -> Option<String> {
        tokio::time::timeout(Duration::from_secs(5), inputs.changed())
            .await
            .expect("a snapshot")
            .expect("batcher alive");
        let snapshot = inputs.borrow_and_update().clone().expect("snapshot");
        let ca = snapshot.config_maps.get(&ObjectKey::new("web", "ca"))?;
        ca.data.as_ref()?.get("ca.crt").cloned()
    }

    #[tokio::test]
    async fn snapshots_hold_the_referenced_config_maps_from_the_first_on() {
        use referenced::fake::{Server, meta, start};
        let (wake_tx, wake_rx) = watch::channel(0u64);
        let server = Server::default();
        server.put(ca("1", "first"));
        let (config_maps, config_map_watch, follower) = start(&server, wake_tx.clone());
        let many = (0..1000).map(|i| meta("web", &format!("unrelated-{i}"), "1"));
        config_map_watch.list(many.chain([meta("web", "ca", "1")]));
        let (policies, mut policies_writer) = reflector::store();
        policies_writer.apply_watcher_event(&watcher::Event::Init);
        policies_writer.apply_watcher_event(&watcher::Event::InitApply(policy("ca")));
        policies_writer.apply_watcher_event(&watcher::Event::InitDone);
        let stores = Stores {
            gateway_classes: listed(),
            gateways: listed(),
            listener_sets: listed(),
            http_routes: listed(),
            grpc_routes: listed(),
            tls_routes: listed(),
            tcp_routes: listed(),
            udp_routes: listed(),
            reference_grants: listed(),
            services: listed(),
            endpoint_slices: listed(),
            namespaces: listed(),
            secrets: referenced::fake::empty(wake_tx.clone()).0,
            backend_tls_policies: policies,
            config_maps: config_maps.clone(),
            gateway_parameters: listed(),
            deployments: listed(),
        };
        let (inputs_tx, mut inputs_rx) = watch::channel(None);
        let batcher = tokio::spawn(batch(
            stores,
            wake_rx,
            inputs_tx,
            Arc::new(RwLock::new(Relevance::default())),
            watch::channel(BTreeSet::new()).1,
        ));
        assert_eq!(
            next_ca(&mut inputs_rx).await.as_deref(),
            Some("first"),
            "the first snapshot holds the referenced ConfigMap"
        );
        assert_eq!(
            config_maps.full.state().len(),
            1,
            "and only that one in full"
        );

        server.put(ca("2", "second"));
        config_map_watch.send(watcher::Event::Apply(meta("web", "ca", "2")));
        let mut seen = next_ca(&mut inputs_rx).await;
        // The first fetch may wake one more snapshot of the same content.
        if seen.as_deref() == Some("first") {
            seen = next_ca(&mut inputs_rx).await;
        }
        assert_eq!(
            seen.as_deref(),
            Some("second"),
            "a change reaches the snapshot"
        );

        policies_writer.apply_watcher_event(&watcher::Event::Apply(policy("other")));
        wake_tx.send_modify(|n| *n += 1);
        assert_eq!(next_ca(&mut inputs_rx).await, None, "no longer referenced");
        assert!(config_maps.full.state().is_empty(), "dropped");
        batcher.abort();
        follower.abort();
    }
}
