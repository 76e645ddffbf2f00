//! What every route kind shares: its kind, identity, `parentRefs`, hostnames,
//! and the problems found while compiling it. Attachment reads only this, so
//! HTTPRoute, GRPCRoute, TLSRoute, TCPRoute and UDPRoute attach by one set of
//! rules.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::Serialize;

use crate::inputs::ObjectKey;
pub use crate::inputs::kinds::RouteKind;
use crate::translate::compile::backends::BackendError;

/// A route's `parentRef` echoed back as the user wrote it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentRef {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

impl ParentRef {
    /// Whether this reference, written by an object in `namespace`, names
    /// the object `key` (the namespace defaults to the writer's).
    pub fn names(&self, namespace: &str, key: &crate::inputs::ObjectKey) -> bool {
        self.name == key.name && self.namespace.as_deref().unwrap_or(namespace) == key.namespace
    }
}

/// The kind-independent part of a compiled route.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteHead {
    pub kind: RouteKind,
    pub key: ObjectKey,
    pub generation: Option<i64>,
    pub created: Option<Time>,
    pub hostnames: Vec<String>,
    pub parent_refs: Vec<ParentRef>,
    /// Dropped rules, one message each.
    pub invalid_rules: Vec<String>,
    /// A problem that invalidates the whole route.
    pub route_error: Option<String>,
    /// References that did not resolve.
    pub unresolved: Vec<BackendError>,
    /// Every Service the route's references name (for the status of the
    /// BackendTLSPolicies that target them).
    pub services: Vec<ObjectKey>,
}

impl RouteHead {
    /// The head of a route of `kind`, before its rules are compiled.
    pub fn new<K: kube::Resource>(
        kind: RouteKind,
        route: &K,
        hostnames: &[String],
        parent_refs: Vec<ParentRef>,
    ) -> Self {
        let meta = route.meta();
        Self {
            kind,
            key: ObjectKey::new(
                meta.namespace.clone().unwrap_or_default(),
                meta.name.clone().unwrap_or_default(),
            ),
            generation: meta.generation,
            created: meta.creation_timestamp.clone(),
            hostnames: hostnames.to_vec(),
            parent_refs,
            invalid_rules: Vec::new(),
            route_error: None,
            unresolved: Vec::new(),
            services: Vec::new(),
        }
    }

    /// Older routes first, then by namespace and name: the order the
    /// specification gives to routes that compete.
    pub fn age_order(&self, other: &RouteHead) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        match (&self.created, &other.created) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        }
        .then_with(|| self.key.cmp(&other.key))
    }
}

/// The `parentRefs` of any route kind, as written (all kinds share the shape).
macro_rules! parent_refs {
    ($refs:expr) => {
        $refs
            .iter()
            .map(|p| $crate::translate::compile::routes::ParentRef {
                group: p.group.clone(),
                kind: p.kind.clone(),
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                section_name: p.section_name.clone(),
                port: p.port,
            })
            .collect::<Vec<_>>()
    };
}
pub(crate) use parent_refs;
