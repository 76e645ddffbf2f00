//! The `Inputs` snapshot: every object translation reads, immutable once built.
//!
//! Sources (the YAML file source in `files`, Kubernetes watches in `watches`
//! and `referenced`) fill an [`InputsBuilder`]; [`InputsBuilder::build`]
//! freezes it into [`Inputs`], which the pure translator reads. The kinds it
//! holds are declared once, in `kinds`. Objects are kept behind `Arc` in ordered maps keyed by
//! namespace and name, so iteration order (and so translation output) is
//! deterministic and snapshots can share unchanged objects cheaply.

pub mod files;
pub mod kinds;
pub mod parameters;
pub mod referenced;
pub mod relevance;
pub mod retry;
pub mod shared;
pub mod watches;

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;

use self::kinds::Held;
pub use self::kinds::{InputKind, InputObject, Inputs, Kind, Store, Visit};
pub use crate::identity::ObjectKey;

/// The label tying an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

impl Inputs {
    /// How many objects of each kind are held.
    pub fn counts(&self) -> Vec<(&'static str, usize)> {
        Kind::ALL
            .iter()
            .map(|k| (k.name(), k.count(self)))
            .collect()
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

    /// Whether both snapshots hold equal objects of every kind (a kind's map
    /// shared by both is equal without a look inside).
    pub fn same(&self, other: &Inputs) -> bool {
        self.compare(other, false, false)
    }

    /// Whether `other` differs from this snapshot in EndpointSlices at most,
    /// so that translation can take its endpoints-only fast path.
    pub fn same_but_endpoints(&self, other: &Inputs) -> bool {
        self.compare(other, true, false)
    }

    /// Whether `other` differs from this snapshot only in what translation
    /// never reads: the status (and resource version) of the kinds portico
    /// writes statuses of, which change with every status write. Their
    /// spec changes bump `metadata.generation`; everything else must be equal.
    pub fn same_but_status(&self, other: &Inputs) -> bool {
        self.compare(other, false, true)
    }

    /// Every kind equal, but for EndpointSlices when `endpoints_aside` and
    /// statuses when `statuses_aside`.
    fn compare(&self, other: &Inputs, endpoints_aside: bool, statuses_aside: bool) -> bool {
        Kind::ALL.iter().all(|k| {
            (endpoints_aside && k.endpoints())
                || k.visit(&mut Compare {
                    a: self,
                    b: other,
                    statuses_aside,
                })
        })
    }

    /// Files a slice under the Service it belongs to (label
    /// `kubernetes.io/service-name`); a slice without it is ignored.
    pub fn add_endpoint_slice(&mut self, slice: Arc<EndpointSlice>) {
        self.endpoint_slices.put(slice);
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

impl InputsBuilder {
    /// Adds (or replaces) one object.
    pub fn insert(&mut self, object: InputObject) {
        object.hold(&mut self.inputs);
    }

    pub fn build(self) -> Inputs {
        self.inputs
    }
}

/// Compares one kind's objects in two snapshots: equal, or, with
/// `statuses_aside` and a kind whose status portico writes, the same objects
/// at the same generations.
struct Compare<'a> {
    a: &'a Inputs,
    b: &'a Inputs,
    statuses_aside: bool,
}

impl Visit for Compare<'_> {
    type Out = bool;

    fn kind<K: InputKind>(&mut self) -> bool {
        let (a, b) = (K::held(self.a), K::held(self.b));
        if !(self.statuses_aside && K::STATUS.written()) {
            return a.same(b);
        }
        a.count() == b.count()
            && a.objects().zip(b.objects()).all(|((ka, a), (kb, b))| {
                ka == kb
                    && a.meta().generation.is_some()
                    && (Arc::ptr_eq(a, b)
                        || a.meta().uid == b.meta().uid
                            && a.meta().generation == b.meta().generation
                            && a.meta().deletion_timestamp == b.meta().deletion_timestamp)
            })
    }
}
