//! BackendTLSPolicy statuses: each policy's conditions under every Gateway
//! on which a route using a Service it targets is placed.

use std::collections::{BTreeMap, BTreeSet};

use super::statuses::{ParentRef, PolicyAncestorStatus, PolicyStatus};
use crate::identity::{CONTROLLER_NAME, GATEWAY_GROUP};
use crate::inputs::ObjectKey;
use crate::translate::attach::Attached;
use crate::translate::compile::Compiled;
use crate::translate::compile::backend_tls::BackendTlsIndex;

/// The status of every policy with at least one ancestor.
pub fn policies(
    index: &BackendTlsIndex,
    compiled: &Compiled,
    attached: &[Attached],
) -> BTreeMap<ObjectKey, PolicyStatus> {
    // Service -> Gateways whose placed routes use it.
    let mut service_gateways: BTreeMap<&ObjectKey, BTreeSet<ObjectKey>> = BTreeMap::new();
    for (route, a) in attached.iter().enumerate() {
        for p in &a.placements {
            for s in &compiled.head(route).services {
                service_gateways
                    .entry(s)
                    .or_default()
                    .insert(p.gateway.clone());
            }
        }
    }
    statuses(index, &service_gateways)
}

/// Each policy's conditions under every Gateway whose routes use a Service
/// it targets.
fn statuses(
    index: &BackendTlsIndex,
    service_gateways: &BTreeMap<&ObjectKey, BTreeSet<ObjectKey>>,
) -> BTreeMap<ObjectKey, PolicyStatus> {
    let mut out = BTreeMap::new();
    for (key, verdict) in &index.policies {
        let ancestors: BTreeSet<&ObjectKey> = verdict
            .services
            .iter()
            .filter_map(|s| service_gateways.get(s))
            .flatten()
            .collect();
        if ancestors.is_empty() {
            continue;
        }
        let conditions = verdict.conditions.clone().into_vec();
        let ancestors = ancestors
            .into_iter()
            .map(|g| PolicyAncestorStatus {
                ancestor_ref: ParentRef {
                    group: Some(GATEWAY_GROUP.to_string()),
                    kind: Some("Gateway".to_string()),
                    namespace: Some(g.namespace.clone()),
                    name: g.name.clone(),
                    section_name: None,
                    port: None,
                },
                controller_name: CONTROLLER_NAME,
                conditions: conditions.clone(),
            })
            .collect();
        out.insert(key.clone(), PolicyStatus { ancestors });
    }
    out
}
