//! ReferenceGrants: whether an object in one namespace may refer to an
//! object in another. Listeners (certificates, CA ConfigMaps), routes
//! (backends) and Gateways (backend client certificates) all ask here.

use crate::inputs::{Inputs, ObjectKey};

/// The object that refers: its kind and namespace, for ReferenceGrants.
#[derive(Clone, Copy, Debug)]
pub struct Referrer<'a> {
    pub group: &'a str,
    pub kind: &'a str,
    pub namespace: &'a str,
}

/// Whether a ReferenceGrant in `to_namespace` lets `from` refer to the object.
pub fn grant_allows(
    inputs: &Inputs,
    from: Referrer<'_>,
    to_namespace: &str,
    to_group: &str,
    to_kind: &str,
    to_name: &str,
) -> bool {
    inputs
        .reference_grants
        .range(ObjectKey::new(to_namespace, "")..)
        .take_while(|(k, _)| k.namespace == to_namespace)
        .any(|(_, grant)| {
            let from_ok = grant.spec.from.iter().any(|f| {
                f.group == from.group && f.kind == from.kind && f.namespace == from.namespace
            });
            let to_ok = grant.spec.to.iter().any(|t| {
                let group_ok = t.group == to_group || (to_group.is_empty() && t.group == "core");
                group_ok && t.kind == to_kind && t.name.as_deref().is_none_or(|n| n == to_name)
            });
            from_ok && to_ok
        })
}
