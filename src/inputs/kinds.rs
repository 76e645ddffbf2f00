//! The one list of object kinds portico reads.
//!
//! Each kind is one line of the table at the end of this file: the `Inputs`
//! field that holds it, its Rust type and Kubernetes kind, how `Inputs` holds
//! it, what portico writes into its status, and how the Kubernetes source
//! follows it. The rest follows from that line: the `Inputs` fields, the
//! `InputObject` variants and the builder's insert, the snapshot comparisons
//! (`Inputs::same_but_status`, `same_but_endpoints`), the file source's
//! dispatch on API group and kind, the watch stores, the reflector wiring and
//! the discovery of optional kinds, and the status plan's shared-list loops.
//! Adding a kind is one line here plus what is specific to it (its
//! translation). Code that does something for every kind implements [`Visit`]
//! and runs it for each of [`Kind::ALL`].

use std::collections::BTreeMap;
use std::fmt::Debug;
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
use kube::core::{ApiResource, ClusterResourceScope, NamespaceResourceScope};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::parameters::GatewayParameters;
use super::relevance::{Relevance, Wake};
use super::shared::Shared;
use super::{ObjectKey, SERVICE_NAME_LABEL};

/// The route kinds portico translates, in the order statuses are listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteKind {
    Http,
    Grpc,
    Tls,
    Tcp,
    Udp,
}

impl RouteKind {
    /// The Kubernetes kind.
    pub fn name(self) -> &'static str {
        match self {
            Self::Http => "HTTPRoute",
            Self::Grpc => "GRPCRoute",
            Self::Tls => "TLSRoute",
            Self::Tcp => "TCPRoute",
            Self::Udp => "UDPRoute",
        }
    }

    /// TCPRoute and UDPRoute carry no hostnames: a listener's hostname does
    /// not filter them.
    pub fn uses_hostnames(self) -> bool {
        !matches!(self, Self::Tcp | Self::Udp)
    }
}

/// Objects of one kind by namespace and name, shared between snapshots
/// until one of them changes (see `shared`).
pub type Store<K> = Shared<BTreeMap<ObjectKey, Arc<K>>>;

/// Objects of one kind grouped by the Service they belong to (label
/// `kubernetes.io/service-name`), then by namespace and name; each group
/// shared on its own.
pub type ByService<K> = Shared<BTreeMap<ObjectKey, Store<K>>>;

/// How `Inputs` holds the objects of one kind.
pub trait Held<K>: Clone + Debug + Default + PartialEq {
    /// Whether these are the objects the endpoints fast path rebuilds.
    const ENDPOINTS: bool = false;
    /// Adds (or replaces) one object.
    fn put(&mut self, object: Arc<K>);
    /// Removes the object held under `key`, if any.
    fn remove(&mut self, key: &ObjectKey);
    /// Makes what is held under `key` be `now` (nothing when `None`).
    fn update(&mut self, key: &ObjectKey, now: Option<Arc<K>>) {
        match now {
            Some(object) => self.put(object),
            None => self.remove(key),
        }
    }
    fn count(&self) -> usize;
    fn contains(&self, key: &ObjectKey) -> bool;
    /// Every object with its key, in key order (per group when grouped).
    fn objects<'a>(&'a self) -> impl Iterator<Item = (&'a ObjectKey, &'a Arc<K>)>
    where
        K: 'a;
    /// Whether both are the very same map (so equal without a look inside).
    fn identical(&self, other: &Self) -> bool;
    /// Whether both hold equal objects: at once when `identical`, else object
    /// by object, the same `Arc` counting as equal without a deeper look.
    fn same(&self, other: &Self) -> bool
    where
        K: PartialEq,
    {
        self.identical(other)
            || (self.count() == other.count()
                && self
                    .objects()
                    .zip(other.objects())
                    .all(|((ka, a), (kb, b))| ka == kb && (Arc::ptr_eq(a, b) || a == b)))
    }
}

impl<K: ResourceExt + Debug + PartialEq> Held<K> for Store<K> {
    fn put(&mut self, object: Arc<K>) {
        self.insert(ObjectKey::of(object.as_ref()), object);
    }

    fn remove(&mut self, key: &ObjectKey) {
        if self.contains_key(key) {
            BTreeMap::remove(self, key);
        }
    }

    fn count(&self) -> usize {
        self.len()
    }

    fn contains(&self, key: &ObjectKey) -> bool {
        self.contains_key(key)
    }

    fn objects<'a>(&'a self) -> impl Iterator<Item = (&'a ObjectKey, &'a Arc<K>)>
    where
        K: 'a,
    {
        self.iter()
    }

    fn identical(&self, other: &Self) -> bool {
        Shared::ptr_eq(self, other)
    }
}

/// The Service an object belongs to, if it names one.
fn service_of<K: ResourceExt>(key: &ObjectKey, object: &K) -> Option<ObjectKey> {
    let service = object.labels().get(SERVICE_NAME_LABEL)?;
    Some(ObjectKey::new(key.namespace.clone(), service.clone()))
}

impl<K: ResourceExt + Debug + PartialEq> Held<K> for ByService<K> {
    const ENDPOINTS: bool = true;

    /// Files the object under its Service; one without the label is ignored.
    fn put(&mut self, object: Arc<K>) {
        let key = ObjectKey::of(object.as_ref());
        let Some(service) = service_of(&key, object.as_ref()) else {
            tracing::debug!(object = %key, "without {SERVICE_NAME_LABEL}: ignored");
            return;
        };
        self.entry(service).or_default().insert(key, object);
    }

    /// Looks among the groups of the object's namespace; a group left
    /// empty goes.
    fn remove(&mut self, key: &ObjectKey) {
        let namespace = ObjectKey::new(key.namespace.clone(), String::new());
        let group = self
            .range(namespace..)
            .take_while(|(service, _)| service.namespace == key.namespace)
            .find(|(_, group)| group.contains_key(key))
            .map(|(service, _)| service.clone());
        let Some(service) = group else {
            return;
        };
        if let Some(group) = self.get_mut(&service) {
            BTreeMap::remove(group, key);
            if group.is_empty() {
                BTreeMap::remove(self, &service);
            }
        }
    }

    /// An object staying with its Service is replaced in place; one moving
    /// to another Service (or losing the label) leaves its old group.
    fn update(&mut self, key: &ObjectKey, now: Option<Arc<K>>) {
        let service = now.as_ref().and_then(|o| service_of(key, o.as_ref()));
        let in_place = service
            .as_ref()
            .and_then(|s| self.get(s))
            .is_some_and(|group| group.contains_key(key));
        if !in_place {
            Held::remove(self, key);
        }
        if let Some(object) = now {
            self.put(object);
        }
    }

    fn count(&self) -> usize {
        self.values().map(|group| group.len()).sum()
    }

    fn contains(&self, key: &ObjectKey) -> bool {
        self.values().any(|group| group.contains_key(key))
    }

    fn objects<'a>(&'a self) -> impl Iterator<Item = (&'a ObjectKey, &'a Arc<K>)>
    where
        K: 'a,
    {
        self.values().flat_map(|group| group.iter())
    }

    fn identical(&self, other: &Self) -> bool {
        Shared::ptr_eq(self, other)
    }

    fn same(&self, other: &Self) -> bool {
        self.identical(other)
            || (self.len() == other.len()
                && self
                    .iter()
                    .zip(other.iter())
                    .all(|((sa, a), (sb, b))| sa == sb && a.same(b)))
    }
}

/// What portico writes into a kind's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Nothing.
    None,
    /// The whole status, portico's alone: server-side apply.
    Owned,
    /// Its entries of `status.parents`, a list shared with other
    /// controllers: a route that translation compiles as this `RouteKind`.
    Parents(RouteKind),
    /// Its entries of `status.ancestors`, a list shared with other
    /// controllers (BackendTLSPolicy).
    Ancestors,
}

impl Status {
    /// Whether portico writes anything into it.
    pub fn written(self) -> bool {
        self != Self::None
    }
}

/// How the Kubernetes source follows a kind.
pub enum Follow<K> {
    /// Watched from the start; every change wakes translation.
    Always,
    /// Watched from the start; the function says what a change wakes.
    Judged(fn(&Relevance, &K) -> Wake),
    /// Watched once discovery finds its CRD served (a cluster may lack it).
    Optional,
    /// Metadata watched, held in full only while referenced: wired by
    /// `watches::start` with its follower (`referenced`), since what
    /// references it is particular to it.
    Referenced,
}

/// Whether objects of a scope live in a namespace.
pub trait Scope {
    const NAMESPACED: bool;
}

impl Scope for NamespaceResourceScope {
    const NAMESPACED: bool = true;
}

impl Scope for ClusterResourceScope {
    const NAMESPACED: bool = false;
}

/// A kind portico reads; implemented by the table for each of its lines.
pub trait InputKind:
    Resource<DynamicType = ()>
    + Clone
    + Debug
    + PartialEq
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    const KIND: Kind;
    const NAMESPACED: bool;
    const STATUS: Status;
    const FOLLOW: Follow<Self>;
    type Held: Held<Self>;

    fn held(inputs: &Inputs) -> &Self::Held;
    fn held_mut(inputs: &mut Inputs) -> &mut Self::Held;
    fn into_object(self) -> InputObject;

    /// The object as the API server would hold it.
    fn arrive(self) -> Self {
        self
    }

    /// The status as the API server holds it (`{}` without one).
    fn live_status(&self) -> Value {
        json!({})
    }
}

/// Something done for one kind, the kind given as a type.
pub trait Visit {
    type Out;
    fn kind<K: InputKind>(&mut self) -> Self::Out;
}

/// As the API server does: a Secret's `stringData` is written into `data`.
fn fold_string_data(mut secret: Secret) -> Secret {
    if let Some(strings) = secret.string_data.take() {
        let data = secret.data.get_or_insert_with(Default::default);
        for (k, v) in strings {
            data.insert(k, k8s_openapi::ByteString(v.into_bytes()));
        }
    }
    secret
}

fn status_json<T: Serialize>(status: &Option<T>) -> Value {
    status
        .as_ref()
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or_else(|| json!({}))
}

/// Writes the items the table implies (see the table's comment).
macro_rules! kinds {
    (@status none) => { Status::None };
    (@status owned) => { Status::Owned };
    (@status ancestors) => { Status::Ancestors };
    (@status parents($route:ident)) => { Status::Parents(RouteKind::$route) };
    (@live none) => {};
    (@live $status:ident) => {
        fn live_status(&self) -> Value {
            status_json(&self.status)
        }
    };
    ($(
        $(#[$doc:meta])*
        $field:ident: $ty:ident $name:literal,
            held in $held:ident,
            status $status:ident $(($route:ident))?,
            follow $follow:expr
            $(, arriving through $arrive:path)?;
    )*) => {
        /// One immutable snapshot of the world as translation sees it.
        #[derive(Clone, Debug, Default)]
        pub struct Inputs {
            $( $(#[$doc])* pub $field: $held<$ty>, )*
        }

        /// One object a source read, by kind.
        #[derive(Debug)]
        pub enum InputObject {
            $( $ty($ty), )*
        }

        /// The kinds portico reads, in the order of the table.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Kind {
            $( $ty, )*
        }

        impl Kind {
            pub const ALL: &[Kind] = &[$( Kind::$ty, )*];

            /// The Kubernetes kind.
            pub fn name(self) -> &'static str {
                match self {
                    $( Kind::$ty => $name, )*
                }
            }

            /// Runs `visit` for this kind.
            pub fn visit<V: Visit>(self, visit: &mut V) -> V::Out {
                match self {
                    $( Kind::$ty => visit.kind::<$ty>(), )*
                }
            }

            /// What portico writes into the kind's status.
            pub fn status(self) -> Status {
                match self {
                    $( Kind::$ty => <$ty as InputKind>::STATUS, )*
                }
            }

            /// Whether it is watched only once discovery finds it served.
            pub fn optional(self) -> bool {
                match self {
                    $( Kind::$ty => matches!(<$ty as InputKind>::FOLLOW, Follow::Optional), )*
                }
            }

            /// Whether it is held in full only while referenced.
            pub fn referenced(self) -> bool {
                match self {
                    $( Kind::$ty => matches!(<$ty as InputKind>::FOLLOW, Follow::Referenced), )*
                }
            }

            /// Whether these are the objects the endpoints fast path rebuilds.
            pub fn endpoints(self) -> bool {
                match self {
                    $( Kind::$ty => <$held<$ty> as Held<$ty>>::ENDPOINTS, )*
                }
            }

            /// Its API group, version and plural.
            pub fn api_resource(self) -> ApiResource {
                match self {
                    $( Kind::$ty => ApiResource::erase::<$ty>(&()), )*
                }
            }

            /// Whether `inputs` holds an object of this kind under `key`.
            pub fn contains(self, inputs: &Inputs, key: &ObjectKey) -> bool {
                match self {
                    $( Kind::$ty => inputs.$field.contains(key), )*
                }
            }

            /// How many objects of this kind `inputs` holds.
            pub fn count(self, inputs: &Inputs) -> usize {
                match self {
                    $( Kind::$ty => inputs.$field.count(), )*
                }
            }
        }

        impl InputObject {
            /// Adds the object to `inputs`, replacing one of the same key.
            pub(super) fn hold(self, inputs: &mut Inputs) {
                match self {
                    $( InputObject::$ty(o) => inputs.$field.put(Arc::new(o.arrive())), )*
                }
            }
        }

        $(
            impl InputKind for $ty {
                const KIND: Kind = Kind::$ty;
                const NAMESPACED: bool = <<$ty as Resource>::Scope as Scope>::NAMESPACED;
                const STATUS: Status = kinds!(@status $status $(($route))?);
                const FOLLOW: Follow<Self> = $follow;
                type Held = $held<$ty>;

                fn held(inputs: &Inputs) -> &Self::Held {
                    &inputs.$field
                }

                fn held_mut(inputs: &mut Inputs) -> &mut Self::Held {
                    &mut inputs.$field
                }

                fn into_object(self) -> InputObject {
                    InputObject::$ty(self)
                }

                $( fn arrive(self) -> Self { $arrive(self) } )?

                kinds!(@live $status);
            }
        )*
    };
}

// The table. A line: the `Inputs` field, the Rust type and the Kubernetes
// kind; `held in` the shape of the field (`Store`, or `ByService` for what
// the endpoints fast path rebuilds); `status` what portico writes into it
// (`none`, `owned`, `parents(<RouteKind>)`, `ancestors`); `follow` how the
// Kubernetes source follows it; optionally `arriving through` a function
// making an object read from a file what the API server would hold.
kinds! {
    gateway_classes: GatewayClass "GatewayClass",
        held in Store, status owned, follow Follow::Always;
    gateways: Gateway "Gateway",
        held in Store, status owned, follow Follow::Judged(Relevance::gateway);
    /// ListenerSets: more listeners for a Gateway that allows them.
    listener_sets: ListenerSet "ListenerSet",
        held in Store, status owned, follow Follow::Optional;
    http_routes: HttpRoute "HTTPRoute",
        held in Store, status parents(Http), follow Follow::Always;
    grpc_routes: GrpcRoute "GRPCRoute",
        held in Store, status parents(Grpc), follow Follow::Optional;
    tls_routes: TlsRoute "TLSRoute",
        held in Store, status parents(Tls), follow Follow::Optional;
    tcp_routes: TcpRoute "TCPRoute",
        held in Store, status parents(Tcp), follow Follow::Optional;
    udp_routes: UdpRoute "UDPRoute",
        held in Store, status parents(Udp), follow Follow::Optional;
    reference_grants: ReferenceGrant "ReferenceGrant",
        held in Store, status none, follow Follow::Always;
    services: Service "Service",
        held in Store, status none, follow Follow::Judged(Relevance::service);
    /// EndpointSlices grouped by the Service they belong to
    /// (label `kubernetes.io/service-name`), then by slice name.
    endpoint_slices: EndpointSlice "EndpointSlice",
        held in ByService, status none, follow Follow::Judged(Relevance::slice);
    namespaces: Namespace "Namespace",
        held in Store, status none, follow Follow::Always;
    /// Secrets (listener certificates). From the Kubernetes source: the
    /// TLS Secrets some listener references, and only those.
    secrets: Secret "Secret",
        held in Store, status none, follow Follow::Referenced,
        arriving through fold_string_data;
    backend_tls_policies: BackendTlsPolicy "BackendTLSPolicy",
        held in Store, status ancestors, follow Follow::Optional;
    /// ConfigMaps (CA bundles of BackendTLSPolicies). From the Kubernetes
    /// source: the ones some BackendTLSPolicy references, and only those.
    config_maps: ConfigMap "ConfigMap",
        held in Store, status none, follow Follow::Referenced;
    /// portico's own `GatewayParameters`.
    gateway_parameters: GatewayParameters "GatewayParameters",
        held in Store, status none, follow Follow::Always;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_name_is_the_kubernetes_kind_and_each_kind_is_listed_once() {
        let mut seen = std::collections::BTreeSet::new();
        for kind in Kind::ALL {
            assert_eq!(kind.api_resource().kind, kind.name());
            assert!(seen.insert(kind.name()), "{} twice", kind.name());
        }
    }

    // Scopes follow the types.
    const _: () = assert!(!GatewayClass::NAMESPACED && !Namespace::NAMESPACED);
    const _: () = assert!(Gateway::NAMESPACED && UdpRoute::NAMESPACED);
    const _: () = assert!(GatewayParameters::NAMESPACED);
}
