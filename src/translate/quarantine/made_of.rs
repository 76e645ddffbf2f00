//! What a Gateway's configuration is made of: the Gateway's own version, the
//! versions of the ListenerSets attached to it and, for every route attached
//! to it (directly or through one of those ListenerSets), the route's version
//! and object. Comparing
//! what a rejected snapshot was made of with what the last accepted one was
//! made of names the routes that may have caused the rejection.
//!
//! In: `Inputs` and the `Outputs` translated from them. Out: per Gateway, a
//! `MadeOf`. A version is the object's `metadata.generation` (unchanged by
//! status writes) or, for objects without one (files), a hash of the spec.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use gateway_api::experimental::grpcroutes::GrpcRoute;
use gateway_api::experimental::httproutes::HttpRoute;
use gateway_api::experimental::tcproutes::TcpRoute;
use gateway_api::experimental::tlsroutes::TlsRoute;
use gateway_api::experimental::udproutes::UdpRoute;
use kube::Resource;
use serde::Serialize;

use crate::inputs::{Inputs, ObjectKey};
use crate::translate::Outputs;
use crate::translate::compile::routes::RouteKind;
use crate::translate::conditions::{holds, spec};
use crate::translate::report::RouteStatus;

/// A route of any kind, by kind and namespace/name.
pub type RouteId = (RouteKind, ObjectKey);

/// Which edit of an object translation saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Generation(i64),
    Spec(u64),
}

impl Version {
    fn of<K: Resource, S: Serialize>(object: &K, spec: &S) -> Self {
        match object.meta().generation {
            Some(g) => Self::Generation(g),
            None => {
                let mut h = DefaultHasher::new();
                serde_json::to_vec(spec).unwrap_or_default().hash(&mut h);
                Self::Spec(h.finish())
            }
        }
    }

    /// How a status message names this edit.
    pub fn describe(self) -> String {
        match self {
            Self::Generation(g) => format!("generation {g}"),
            Self::Spec(_) => "the previous edit".to_string(),
        }
    }
}

/// A route object of any kind, shared with the `Inputs` it came from.
#[derive(Clone, Debug)]
pub enum RouteObject {
    Http(Arc<HttpRoute>),
    Grpc(Arc<GrpcRoute>),
    Tls(Arc<TlsRoute>),
    Tcp(Arc<TcpRoute>),
    Udp(Arc<UdpRoute>),
}

impl RouteObject {
    /// The route `id` names in `inputs`.
    pub fn find(inputs: &Inputs, (kind, key): &RouteId) -> Option<Self> {
        Some(match kind {
            RouteKind::Http => Self::Http(Arc::clone(inputs.http_routes.get(key)?)),
            RouteKind::Grpc => Self::Grpc(Arc::clone(inputs.grpc_routes.get(key)?)),
            RouteKind::Tls => Self::Tls(Arc::clone(inputs.tls_routes.get(key)?)),
            RouteKind::Tcp => Self::Tcp(Arc::clone(inputs.tcp_routes.get(key)?)),
            RouteKind::Udp => Self::Udp(Arc::clone(inputs.udp_routes.get(key)?)),
        })
    }

    pub fn version(&self) -> Version {
        match self {
            Self::Http(r) => Version::of(&**r, &r.spec),
            Self::Grpc(r) => Version::of(&**r, &r.spec),
            Self::Tls(r) => Version::of(&**r, &r.spec),
            Self::Tcp(r) => Version::of(&**r, &r.spec),
            Self::Udp(r) => Version::of(&**r, &r.spec),
        }
    }

    /// Puts this object in `inputs` in place of the route with its name.
    pub fn put(&self, inputs: &mut Inputs, key: &ObjectKey) {
        let key = key.clone();
        match self {
            Self::Http(r) => inputs.http_routes.insert(key, Arc::clone(r)).map(drop),
            Self::Grpc(r) => inputs.grpc_routes.insert(key, Arc::clone(r)).map(drop),
            Self::Tls(r) => inputs.tls_routes.insert(key, Arc::clone(r)).map(drop),
            Self::Tcp(r) => inputs.tcp_routes.insert(key, Arc::clone(r)).map(drop),
            Self::Udp(r) => inputs.udp_routes.insert(key, Arc::clone(r)).map(drop),
        };
    }

    /// The route's `parentRefs`, as written.
    pub fn parent_refs(&self) -> Vec<crate::translate::report::ParentRef> {
        use crate::translate::compile::routes::parent_refs;
        match self {
            Self::Http(r) => parent_refs!(r.spec.parent_refs.as_deref().unwrap_or_default()),
            Self::Grpc(r) => parent_refs!(r.spec.parent_refs.as_deref().unwrap_or_default()),
            Self::Tls(r) => parent_refs!(r.spec.parent_refs.as_deref().unwrap_or_default()),
            Self::Tcp(r) => parent_refs!(r.spec.parent_refs.as_deref().unwrap_or_default()),
            Self::Udp(r) => parent_refs!(r.spec.parent_refs.as_deref().unwrap_or_default()),
        }
    }

    /// Whether both are the very same object.
    pub fn same(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Http(a), Self::Http(b)) => Arc::ptr_eq(a, b),
            (Self::Grpc(a), Self::Grpc(b)) => Arc::ptr_eq(a, b),
            (Self::Tls(a), Self::Tls(b)) => Arc::ptr_eq(a, b),
            (Self::Tcp(a), Self::Tcp(b)) => Arc::ptr_eq(a, b),
            (Self::Udp(a), Self::Udp(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    pub fn generation(&self) -> Option<i64> {
        match self {
            Self::Http(r) => r.meta().generation,
            Self::Grpc(r) => r.meta().generation,
            Self::Tls(r) => r.meta().generation,
            Self::Tcp(r) => r.meta().generation,
            Self::Udp(r) => r.meta().generation,
        }
    }
}

/// Takes the route `id` out of `inputs`.
pub fn remove(inputs: &mut Inputs, (kind, key): &RouteId) {
    match kind {
        RouteKind::Http => inputs.http_routes.remove(key).map(drop),
        RouteKind::Grpc => inputs.grpc_routes.remove(key).map(drop),
        RouteKind::Tls => inputs.tls_routes.remove(key).map(drop),
        RouteKind::Tcp => inputs.tcp_routes.remove(key).map(drop),
        RouteKind::Udp => inputs.udp_routes.remove(key).map(drop),
    };
}

/// The Gateway a route's parentRef (`namespace`, `name`) names; the
/// namespace defaults to the route's.
pub fn parent_gateway(namespace: Option<&str>, name: &str, route: &ObjectKey) -> ObjectKey {
    ObjectKey::new(namespace.unwrap_or(&route.namespace), name)
}

/// What one Gateway's snapshot was translated from.
#[derive(Clone, Debug, Default)]
pub struct MadeOf {
    pub gateway: Option<Version>,
    /// The ListenerSets whose listeners the Gateway serves: part of the
    /// Gateway's own configuration, like its spec.
    pub listener_sets: BTreeMap<ObjectKey, Version>,
    pub routes: BTreeMap<RouteId, (Version, RouteObject)>,
}

impl MadeOf {
    /// Whether the Gateway's own configuration (its spec and its attached
    /// ListenerSets) is the same in `other`.
    pub fn same_listeners(&self, other: &MadeOf) -> bool {
        self.gateway == other.gateway && self.listener_sets == other.listener_sets
    }

    /// Whether `other` was made of the same edits.
    pub fn same_as(&self, other: &MadeOf) -> bool {
        self.same_listeners(other)
            && self.routes.len() == other.routes.len()
            && self
                .routes
                .iter()
                .zip(&other.routes)
                .all(|((a, (va, _)), (b, (vb, _)))| a == b && va == vb)
    }
}

/// Per Gateway in `outputs`: its version and the routes accepted on it.
/// The reference `record::Record` builds the same from what changed.
pub fn made_of(inputs: &Inputs, outputs: &Outputs) -> BTreeMap<ObjectKey, MadeOf> {
    let mut all = heads(inputs, outputs);
    for ((kind, key), status) in &outputs.routes {
        let id = (*kind, key.clone());
        let Some(object) = RouteObject::find(inputs, &id) else {
            continue;
        };
        for gateway in accepted_on(outputs, key, status) {
            if let Some(m) = all.get_mut(&gateway) {
                m.routes
                    .insert(id.clone(), (object.version(), object.clone()));
            }
        }
    }
    all
}

/// Per Gateway in `outputs`: its own version and its accepted
/// ListenerSets', no routes yet.
pub(super) fn heads(inputs: &Inputs, outputs: &Outputs) -> BTreeMap<ObjectKey, MadeOf> {
    let mut all: BTreeMap<ObjectKey, MadeOf> = outputs
        .gateways
        .keys()
        .map(|key| {
            let gateway = inputs.gateways.get(key).map(|g| Version::of(&**g, &g.spec));
            (
                key.clone(),
                MadeOf {
                    gateway,
                    listener_sets: BTreeMap::new(),
                    routes: BTreeMap::new(),
                },
            )
        })
        .collect();
    for (key, set) in &outputs.listener_sets {
        let accepted = holds(&set.status.conditions, spec::ACCEPTED);
        let version = inputs
            .listener_sets
            .get(key)
            .map(|s| Version::of(&**s, &s.spec));
        if let (true, Some(version), Some(m)) = (accepted, version, all.get_mut(&set.gateway)) {
            m.listener_sets.insert(key.clone(), version);
        }
    }
    all
}

/// The Gateways a route (`key`, translated as `status`) is accepted on:
/// each accepting parent's Gateway, or the Gateway of an accepting parent
/// ListenerSet. Not necessarily Gateways of `outputs`.
pub(super) fn accepted_on(
    outputs: &Outputs,
    key: &ObjectKey,
    status: &RouteStatus,
) -> Vec<ObjectKey> {
    let mut gateways = Vec::new();
    for parent in &status.parents {
        if !holds(&parent.conditions, spec::ACCEPTED) {
            continue;
        }
        let named = parent_gateway(
            parent.parent_ref.namespace.as_deref(),
            &parent.parent_ref.name,
            key,
        );
        let gateway = match parent.parent_ref.kind.as_deref() {
            Some("ListenerSet") => match outputs.listener_sets.get(&named) {
                Some(set) => set.gateway.clone(),
                None => continue,
            },
            _ => named,
        };
        gateways.push(gateway);
    }
    gateways
}
