//! What changed between the inputs of two translations, as far as the memo
//! cares: the world compilation reads besides the routes (Services,
//! ReferenceGrants, BackendTLSPolicies, ConfigMaps), and each HTTPRoute and
//! GRPCRoute. Two objects are the same when they are the same `Arc` or equal
//! in value; a route added, removed or edited is changed.

use std::collections::HashSet;
use std::sync::Arc;

use crate::inputs::kinds::Held;
use crate::inputs::{InputKind, Inputs, ObjectKey};
use crate::translate::compile::routes::RouteKind;
use gateway_api::apis::standard::backendtlspolicies::BackendTlsPolicy;
use gateway_api::experimental::grpcroutes::GrpcRoute;
use gateway_api::experimental::httproutes::HttpRoute;
use gateway_api::experimental::referencegrants::ReferenceGrant;
use k8s_openapi::api::core::v1::{ConfigMap, Service};

/// The changes since the last translation.
#[derive(Clone, Debug)]
pub struct Changes {
    /// Something compilation reads besides the routes changed: no compiled
    /// route can be trusted.
    pub world: bool,
    /// HTTPRoutes added, removed or edited.
    pub http: HashSet<ObjectKey>,
    /// GRPCRoutes added, removed or edited.
    pub grpc: HashSet<ObjectKey>,
}

impl Changes {
    /// As if everything changed (no last translation).
    pub fn everything() -> Self {
        Self {
            world: true,
            http: HashSet::new(),
            grpc: HashSet::new(),
        }
    }

    /// Whether a result that read this route may be stale.
    pub fn route(&self, kind: RouteKind, key: &ObjectKey) -> bool {
        self.world
            || match kind {
                RouteKind::Http => self.http.contains(key),
                RouteKind::Grpc => self.grpc.contains(key),
                // Not memoised: always computed afresh.
                RouteKind::Tls | RouteKind::Tcp | RouteKind::Udp => true,
            }
    }
}

/// Compares two snapshots.
pub fn since(last: &Inputs, now: &Inputs) -> Changes {
    let world = !same::<Service>(last, now)
        || !same::<ReferenceGrant>(last, now)
        || !same::<BackendTlsPolicy>(last, now)
        || !same::<ConfigMap>(last, now);
    let (mut http, mut grpc) = (HashSet::new(), HashSet::new());
    if !world {
        differing::<HttpRoute>(last, now, |key| {
            http.insert(key.clone());
        });
        differing::<GrpcRoute>(last, now, |key| {
            grpc.insert(key.clone());
        });
    }
    Changes { world, http, grpc }
}

fn same<K: InputKind>(last: &Inputs, now: &Inputs) -> bool {
    K::held(last).same(K::held(now))
}

/// Calls `found` with the key of every object of kind `K` that is only in
/// one snapshot or differs between them. A map both snapshots share has
/// none; otherwise both lists are in key order, so one walk compares them.
fn differing<K: InputKind>(last: &Inputs, now: &Inputs, mut found: impl FnMut(&ObjectKey)) {
    if K::held(last).identical(K::held(now)) {
        return;
    }
    let mut a = K::held(last).objects().peekable();
    let mut b = K::held(now).objects().peekable();
    loop {
        match (a.peek(), b.peek()) {
            (None, None) => return,
            (Some((ka, _)), None) => {
                found(ka);
                a.next();
            }
            (None, Some((kb, _))) => {
                found(kb);
                b.next();
            }
            (Some((ka, oa)), Some((kb, ob))) => match ka.cmp(kb) {
                std::cmp::Ordering::Less => {
                    found(ka);
                    a.next();
                }
                std::cmp::Ordering::Greater => {
                    found(kb);
                    b.next();
                }
                std::cmp::Ordering::Equal => {
                    if !(Arc::ptr_eq(oa, ob) || oa == ob) {
                        found(ka);
                    }
                    a.next();
                    b.next();
                }
            },
        }
    }
}
