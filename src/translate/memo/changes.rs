//! What changed between the inputs of two translations, as far as the memo
//! cares: the world compilation reads besides the routes and their Services
//! (ReferenceGrants, BackendTLSPolicies, ConfigMaps), and each Service. Two
//! objects are the same when they are the same `Arc` or equal in value; a
//! Service added, removed or edited is changed.

use std::collections::HashSet;
use std::sync::Arc;

use crate::inputs::kinds::Held;
use crate::inputs::{InputKind, Inputs, ObjectKey};
use gateway_api::apis::standard::backendtlspolicies::BackendTlsPolicy;
use gateway_api::experimental::referencegrants::ReferenceGrant;
use k8s_openapi::api::core::v1::{ConfigMap, Service};

/// The changes since the last translation.
#[derive(Clone, Debug)]
pub struct Changes {
    /// Something compilation reads besides the routes and Services changed:
    /// no compiled route can be trusted.
    pub world: bool,
    /// Services added, removed or edited (empty when `world`).
    pub services: HashSet<ObjectKey>,
}

impl Changes {
    /// As if everything changed (no last translation).
    pub fn everything() -> Self {
        Self {
            world: true,
            services: HashSet::new(),
        }
    }
}

/// Compares two snapshots.
pub fn since(last: &Inputs, now: &Inputs) -> Changes {
    let world = !same::<ReferenceGrant>(last, now)
        || !same::<BackendTlsPolicy>(last, now)
        || !same::<ConfigMap>(last, now);
    let mut services = HashSet::new();
    if !world {
        differing::<Service>(last, now, |key| {
            services.insert(key.clone());
        });
    }
    Changes { world, services }
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
