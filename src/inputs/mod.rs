//! The `Inputs` snapshot: every object translation reads, immutable once built.
//!
//! Sources (the YAML file source in `files`, Kubernetes watches in `watches`
//! and `referenced`) fill an [`InputsBuilder`]; [`InputsBuilder::build`]
//! freezes it into [`Inputs`], which the pure translator reads. Objects are kept behind `Arc` in ordered maps keyed by
//! namespace and name, so iteration order (and so translation output) is
//! deterministic and snapshots can share unchanged objects cheaply.

pub mod files;
pub mod parameters;
pub mod referenced;
pub mod relevance;
pub mod watches;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

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
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;

use self::parameters::GatewayParameters;

/// Namespace and name of an object. Cluster-scoped objects have an empty namespace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// Key of a Kubernetes object (empty namespace for cluster-scoped kinds).
    pub fn of<K: ResourceExt>(obj: &K) -> Self {
        Self::new(obj.namespace().unwrap_or_default(), obj.name_any())
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}", self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

type Store<K> = BTreeMap<ObjectKey, Arc<K>>;

/// One immutable snapshot of the world as translation sees it.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    pub gateway_classes: Store<GatewayClass>,
    pub gateways: Store<Gateway>,
    /// ListenerSets: more listeners for a Gateway that allows them.
    pub listener_sets: Store<ListenerSet>,
    pub http_routes: Store<HttpRoute>,
    pub grpc_routes: Store<GrpcRoute>,
    pub tls_routes: Store<TlsRoute>,
    pub tcp_routes: Store<TcpRoute>,
    pub udp_routes: Store<UdpRoute>,
    pub reference_grants: Store<ReferenceGrant>,
    pub services: Store<Service>,
    /// EndpointSlices grouped by the Service they belong to
    /// (label `kubernetes.io/service-name`), then by slice name.
    pub endpoint_slices: BTreeMap<ObjectKey, Store<EndpointSlice>>,
    pub namespaces: Store<Namespace>,
    /// Secrets (listener certificates). From the Kubernetes source: the
    /// TLS Secrets some listener references, and only those.
    pub secrets: Store<Secret>,
    pub backend_tls_policies: Store<BackendTlsPolicy>,
    /// ConfigMaps (CA bundles of BackendTLSPolicies). From the Kubernetes
    /// source: the ones some BackendTLSPolicy references, and only those.
    pub config_maps: Store<ConfigMap>,
    /// portico's own `GatewayParameters`.
    pub gateway_parameters: Store<GatewayParameters>,
}

/// The label tying an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

impl Inputs {
    /// How many objects of each kind are held.
    pub fn counts(&self) -> [(&'static str, usize); 16] {
        [
            ("GatewayClass", self.gateway_classes.len()),
            ("Gateway", self.gateways.len()),
            ("ListenerSet", self.listener_sets.len()),
            ("HTTPRoute", self.http_routes.len()),
            ("GRPCRoute", self.grpc_routes.len()),
            ("TLSRoute", self.tls_routes.len()),
            ("TCPRoute", self.tcp_routes.len()),
            ("UDPRoute", self.udp_routes.len()),
            ("ReferenceGrant", self.reference_grants.len()),
            ("Service", self.services.len()),
            (
                "EndpointSlice",
                self.endpoint_slices.values().map(|s| s.len()).sum(),
            ),
            ("Namespace", self.namespaces.len()),
            ("Secret", self.secrets.len()),
            ("BackendTLSPolicy", self.backend_tls_policies.len()),
            ("ConfigMap", self.config_maps.len()),
            ("GatewayParameters", self.gateway_parameters.len()),
        ]
    }

    /// Labels of a namespace. A namespace without an object still carries the
    /// `kubernetes.io/metadata.name` label the API server puts on every namespace.
    pub fn namespace_labels(&self, namespace: &str) -> BTreeMap<String, String> {
        let mut labels = self
            .namespaces
            .get(&ObjectKey::new("", namespace))
            .map(|ns| ns.labels().clone())
            .unwrap_or_default();
        labels
            .entry("kubernetes.io/metadata.name".to_string())
            .or_insert_with(|| namespace.to_string());
        labels
    }

    /// Whether `other` differs from this snapshot in EndpointSlices at most,
    /// so that translation can take its endpoints-only fast path.
    pub fn same_but_endpoints(&self, other: &Inputs) -> bool {
        self.gateway_classes == other.gateway_classes
            && self.gateways == other.gateways
            && self.listener_sets == other.listener_sets
            && self.http_routes == other.http_routes
            && self.grpc_routes == other.grpc_routes
            && self.tls_routes == other.tls_routes
            && self.tcp_routes == other.tcp_routes
            && self.udp_routes == other.udp_routes
            && self.reference_grants == other.reference_grants
            && self.services == other.services
            && self.namespaces == other.namespaces
            && self.secrets == other.secrets
            && self.backend_tls_policies == other.backend_tls_policies
            && self.config_maps == other.config_maps
            && self.gateway_parameters == other.gateway_parameters
    }

    /// Whether `other` differs from this snapshot only in what translation
    /// never reads: the status (and resource version) of GatewayClasses,
    /// Gateways, ListenerSets and routes, which change with every status write. Their
    /// spec changes bump `metadata.generation`; everything else must be equal.
    pub fn same_but_status(&self, other: &Inputs) -> bool {
        fn same_generations<K: ResourceExt>(a: &Store<K>, b: &Store<K>) -> bool {
            a.len() == b.len()
                && a.iter().zip(b.iter()).all(|((ka, a), (kb, b))| {
                    ka == kb
                        && a.meta().uid == b.meta().uid
                        && a.meta().generation.is_some()
                        && a.meta().generation == b.meta().generation
                        && a.meta().deletion_timestamp == b.meta().deletion_timestamp
                })
        }
        same_generations(&self.gateway_classes, &other.gateway_classes)
            && same_generations(&self.gateways, &other.gateways)
            && same_generations(&self.listener_sets, &other.listener_sets)
            && same_generations(&self.http_routes, &other.http_routes)
            && same_generations(&self.grpc_routes, &other.grpc_routes)
            && same_generations(&self.tls_routes, &other.tls_routes)
            && same_generations(&self.tcp_routes, &other.tcp_routes)
            && same_generations(&self.udp_routes, &other.udp_routes)
            && self.reference_grants == other.reference_grants
            && self.services == other.services
            && self.endpoint_slices == other.endpoint_slices
            && self.namespaces == other.namespaces
            && self.secrets == other.secrets
            && same_generations(&self.backend_tls_policies, &other.backend_tls_policies)
            && self.config_maps == other.config_maps
            && self.gateway_parameters == other.gateway_parameters
    }

    /// Files a slice under the Service it belongs to (label
    /// `kubernetes.io/service-name`); a slice without it is ignored.
    pub fn add_endpoint_slice(&mut self, slice: Arc<EndpointSlice>) {
        let key = ObjectKey::of(slice.as_ref());
        let Some(service) = slice.labels().get(SERVICE_NAME_LABEL).cloned() else {
            tracing::debug!(slice = %key, "EndpointSlice without {SERVICE_NAME_LABEL} ignored");
            return;
        };
        self.endpoint_slices
            .entry(ObjectKey::new(key.namespace.clone(), service))
            .or_default()
            .insert(key, slice);
    }

    /// EndpointSlices of a Service.
    pub fn slices_of(&self, service: &ObjectKey) -> impl Iterator<Item = &Arc<EndpointSlice>> {
        self.endpoint_slices
            .get(service)
            .into_iter()
            .flat_map(|slices| slices.values())
    }
}

/// Collects objects from a source; `build` freezes them.
#[derive(Default)]
pub struct InputsBuilder {
    inputs: Inputs,
}

/// One object a source read, by kind.
#[derive(Debug)]
pub enum InputObject {
    GatewayClass(GatewayClass),
    Gateway(Gateway),
    ListenerSet(ListenerSet),
    HttpRoute(HttpRoute),
    GrpcRoute(GrpcRoute),
    TlsRoute(TlsRoute),
    TcpRoute(TcpRoute),
    UdpRoute(UdpRoute),
    ReferenceGrant(ReferenceGrant),
    Service(Service),
    EndpointSlice(EndpointSlice),
    Namespace(Namespace),
    Secret(Secret),
    BackendTlsPolicy(BackendTlsPolicy),
    ConfigMap(ConfigMap),
    GatewayParameters(GatewayParameters),
}

impl InputsBuilder {
    /// Adds (or replaces) one object.
    pub fn insert(&mut self, object: InputObject) {
        let i = &mut self.inputs;
        match object {
            InputObject::GatewayClass(o) => {
                i.gateway_classes.insert(ObjectKey::of(&o), Arc::new(o));
            }
            InputObject::Gateway(o) => {
                i.gateways.insert(ObjectKey::of(&o), Arc::new(o));
            }
            InputObject::ListenerSet(o) => {
                i.listener_sets.insert(ObjectKey::of(&o), Arc::new(o));
            }
            InputObject::HttpRoute(o) => {
                i.http_routes.insert(ObjectKey::of(&o), Arc::new(o));
            }
            InputObject::GrpcRoute(o) => {
                i.grpc_routes.insert(ObjectKey::of(&o), Arc::new(o));
            }
            InputObject::TlsRoute(o) => {
                i.tls_routes.insert(ObjectKey::of(&o), Arc::new(o));
            }
            InputObject::TcpRoute(o) => {
                i.tcp_routes.insert(ObjectKey::of(&o), Arc::new(o));
            }
            InputObject::UdpRoute(o) => {
                i.udp_routes.insert(ObjectKey::of(&o), Arc::new(o));
            }
            InputObject::ReferenceGrant(o) => {
                i.reference_grants.insert(ObjectKey::of(&o), Arc::new(o));
            }
            InputObject::Service(o) => {
                i.services.insert(ObjectKey::of(&o), Arc::new(o));
            }
            InputObject::EndpointSlice(o) => i.add_endpoint_slice(Arc::new(o)),
            InputObject::Namespace(o) => {
                i.namespaces.insert(ObjectKey::of(&o), Arc::new(o));
            }
            InputObject::Secret(mut o) => {
                // As the API server does: `stringData` is written into `data`.
                if let Some(strings) = o.string_data.take() {
                    let data = o.data.get_or_insert_with(Default::default);
                    for (k, v) in strings {
                        data.insert(k, k8s_openapi::ByteString(v.into_bytes()));
                    }
                }
                i.secrets.insert(ObjectKey::of(&o), Arc::new(o));
            }
            InputObject::BackendTlsPolicy(o) => {
                i.backend_tls_policies
                    .insert(ObjectKey::of(&o), Arc::new(o));
            }
            InputObject::ConfigMap(o) => {
                i.config_maps.insert(ObjectKey::of(&o), Arc::new(o));
            }
            InputObject::GatewayParameters(o) => {
                i.gateway_parameters.insert(ObjectKey::of(&o), Arc::new(o));
            }
        }
    }

    pub fn build(self) -> Inputs {
        self.inputs
    }
}
