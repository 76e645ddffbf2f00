//! Who portico is, in the names every stage shares: the controller name it
//! answers to, the API groups it reads, the field manager and managed-by
//! label it writes with, and the identities of what it serves (a Gateway's
//! id, the version of some content), and how any object is named
//! (`ObjectKey`). A leaf: it imports nothing of portico, so no stage reaches
//! into another for a name.

use std::fmt;

use kube::ResourceExt;

/// Namespace and name of an object. Cluster-scoped objects have an empty namespace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// Key of a Kubernetes object (empty namespace for cluster-scoped kinds).
    pub fn of<K: ResourceExt>(obj: &K) -> Self {
        Self::new(obj.namespace().unwrap_or_default(), obj.name_any())
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}", self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// The `controllerName` of the GatewayClasses portico serves.
pub const CONTROLLER_NAME: &str = "portico.dev/gateway-controller";
/// The API group of Gateways, ListenerSets and routes.
pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";
/// The API group of portico's own kind, GatewayParameters.
pub const PARAMETERS_GROUP: &str = "portico.dev";
/// The field manager of every server-side apply and status write.
pub const FIELD_MANAGER: &str = "portico";
/// The label on every object portico creates, and its value.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "portico";
/// The label selector of the objects portico created.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by=portico";

/// A Gateway's id: the `node.cluster` its Envoys present, the name of its
/// xDS snapshot and of its client certificate.
pub fn gateway_id(key: &ObjectKey) -> String {
    format!("{}/{}", key.namespace, key.name)
}

/// The version of some content: a 64-bit FNV-1a hash of its bytes, in hex.
/// Encodings are deterministic (translation output is ordered), so equal
/// content always gets the same version, on every replica.
pub fn content_version(body: &[u8]) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = body
        .iter()
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME));
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_managed_by_selector_is_the_label_and_its_value() {
        assert_eq!(MANAGED_BY, format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));
    }
}
