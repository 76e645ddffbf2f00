//! Compiled routes kept from one translation to the next. A route's model
//! is a function of the route's `metadata` (namespace, name, generation,
//! creation time) and `spec`, of the Services its references name (each
//! looked up by key: the model's `RouteHead::services` lists every one it
//! named, found or not) and of the rest of the world compilation reads
//! (ReferenceGrants, BackendTLSPolicies and the ConfigMaps holding their CA
//! certificates). So a model is reused while its route reads the same in
//! those fields, none of its Services changed and the world did not
//! (`Changes`); anything else compiles the route again.
//!
//! A reused model is the same `Arc`: what later stages keep per model (the
//! encoded virtual hosts of `hosts`) is valid exactly while the `Arc` is
//! the same one.

use std::collections::HashMap;
use std::sync::Arc;

use gateway_api::experimental::grpcroutes::GrpcRoute;
use gateway_api::experimental::httproutes::HttpRoute;
use gateway_api::experimental::tcproutes::TcpRoute;
use gateway_api::experimental::tlsroutes::TlsRoute;
use gateway_api::experimental::udproutes::UdpRoute;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::changes::Changes;
use crate::inputs::ObjectKey;
use crate::translate::compile::http::HttpRouteModel;
use crate::translate::compile::l4::L4RouteModel;
use crate::translate::compile::routes::RouteHead;

/// One kind's models by route key, each with the route it came from: those
/// the current translation used, and those of the last one still to be
/// claimed.
#[derive(Clone, Debug)]
pub struct Kept<K, M> {
    current: HashMap<ObjectKey, (Arc<K>, Arc<M>)>,
    last: HashMap<ObjectKey, (Arc<K>, Arc<M>)>,
}

impl<K, M> Default for Kept<K, M> {
    fn default() -> Self {
        Self {
            current: HashMap::new(),
            last: HashMap::new(),
        }
    }
}

impl<K, M> Kept<K, M> {
    fn begin(&mut self) {
        self.last = std::mem::take(&mut self.current);
    }

    fn finish(&mut self) {
        self.last.clear();
    }
}

/// A route kind whose compiled models are kept.
pub trait CompiledRoute: PartialEq + Sized {
    type Model;

    fn kept(routes: &mut CompiledRoutes) -> &mut Kept<Self, Self::Model>;

    /// Whether compiling `self` reads what compiling `other` read: the
    /// same spec and the same metadata fields compilation reads.
    fn compiles_as(&self, other: &Self) -> bool;

    fn head(model: &Self::Model) -> &RouteHead;
}

/// The metadata fields a compiled route reads.
fn same_meta(a: &ObjectMeta, b: &ObjectMeta) -> bool {
    a.namespace == b.namespace
        && a.name == b.name
        && a.generation == b.generation
        && a.creation_timestamp == b.creation_timestamp
}

/// One line per route kind: its type, its field in `CompiledRoutes` and
/// its model. Writes `CompiledRoutes` and each kind's `CompiledRoute`.
macro_rules! compiled_routes {
    ($($kind:ty => $field:ident, $model:ty;)*) => {
        /// The compiled routes of every kind.
        #[derive(Clone, Debug, Default)]
        pub struct CompiledRoutes {
            $($field: Kept<$kind, $model>,)*
        }

        impl CompiledRoutes {
            pub(super) fn begin(&mut self) {
                $(self.$field.begin();)*
            }

            pub(super) fn finish(&mut self) {
                $(self.$field.finish();)*
            }

            pub(super) fn clear(&mut self) {
                *self = Self::default();
            }
        }

        $(impl CompiledRoute for $kind {
            type Model = $model;

            fn kept(routes: &mut CompiledRoutes) -> &mut Kept<Self, Self::Model> {
                &mut routes.$field
            }

            fn compiles_as(&self, other: &Self) -> bool {
                same_meta(&self.metadata, &other.metadata) && self.spec == other.spec
            }

            fn head(model: &Self::Model) -> &RouteHead {
                &model.head
            }
        })*
    };
}

compiled_routes! {
    HttpRoute => http, HttpRouteModel;
    GrpcRoute => grpc, HttpRouteModel;
    TlsRoute => tls, L4RouteModel;
    TcpRoute => tcp, L4RouteModel;
    UdpRoute => udp, L4RouteModel;
}

/// The compiled routes during one translation, with what changed since the
/// last one.
pub struct CompileScope<'m> {
    pub(super) recording: bool,
    pub(super) changes: &'m Changes,
    pub(super) routes: &'m mut CompiledRoutes,
}

impl CompileScope<'_> {
    /// The model of `route`: the last translation's when still valid,
    /// else made by `compile`.
    pub fn route<K: CompiledRoute>(
        &mut self,
        key: &ObjectKey,
        route: &Arc<K>,
        compile: impl FnOnce() -> K::Model,
    ) -> Arc<K::Model> {
        if !self.recording {
            return Arc::new(compile());
        }
        let changes = self.changes;
        let kept = K::kept(self.routes);
        let valid = |(source, model): &(Arc<K>, Arc<K::Model>)| {
            !changes.world
                && (Arc::ptr_eq(source, route) || source.compiles_as(route))
                && !K::head(model)
                    .services
                    .iter()
                    .any(|s| changes.services.contains(s))
        };
        let (key, model) = match kept.last.remove_entry(key) {
            Some((key, last)) if valid(&last) => (key, last.1),
            Some((key, _)) => (key, Arc::new(compile())),
            None => (key.clone(), Arc::new(compile())),
        };
        kept.current
            .insert(key, (Arc::clone(route), Arc::clone(&model)));
        model
    }
}
