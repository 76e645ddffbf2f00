//! What each Gateway's routes reference, as translation resolved it: every
//! Service a backendRef (or mirror) of a route naming the Gateway (directly
//! or through one of its ListenerSets) points at, whether the route is
//! placed, refused or its Service missing, since each of those statuses
//! changes when the Service does.
//!
//! The Kubernetes source reads this report to decide which Service and
//! EndpointSlice changes wake translation (`inputs::relevance`), so the
//! references that matter are read once, here, by the code that resolves
//! them.

use std::collections::{BTreeMap, BTreeSet};

use crate::inputs::ObjectKey;
use crate::translate::attach::Attached;
use crate::translate::compile::Compiled;

/// What one Gateway's routes reference.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct References {
    pub services: BTreeSet<ObjectKey>,
}

/// Per Gateway, what the routes naming it reference.
pub fn references(compiled: &Compiled, attached: &[Attached]) -> BTreeMap<ObjectKey, References> {
    let mut out: BTreeMap<ObjectKey, References> = BTreeMap::new();
    for ((head, _), a) in compiled.heads().zip(attached) {
        if head.services.is_empty() {
            continue;
        }
        let gateways: BTreeSet<&ObjectKey> = a.parent_gateways.iter().collect();
        for gateway in gateways {
            let entry = out.entry(gateway.clone()).or_default();
            entry.services.extend(head.services.iter().cloned());
        }
    }
    out
}
