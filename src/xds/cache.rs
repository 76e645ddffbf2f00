//! Versioned snapshots: per Gateway, every Envoy resource with a version derived
//! from its content. The same inputs give the same versions, in this process or
//! a restarted one, so an Envoy that reconnects is sent nothing it already has.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::identity::content_version;
use crate::translate::encode::{EnvoyResources, Resource};

/// The resource types portico serves, in push order: secrets before the
/// clusters and listeners that use them, clusters before the endpoints that
/// fill them, listeners before the routes they name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceType {
    Secret,
    Cluster,
    Endpoint,
    Listener,
    Route,
}

impl ResourceType {
    pub const PUSH_ORDER: [ResourceType; 5] = [
        ResourceType::Secret,
        ResourceType::Cluster,
        ResourceType::Endpoint,
        ResourceType::Listener,
        ResourceType::Route,
    ];

    pub fn type_url(self) -> &'static str {
        match self {
            ResourceType::Secret => {
                "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
            }
            ResourceType::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            ResourceType::Endpoint => {
                "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
            }
            ResourceType::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            ResourceType::Route => "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
        }
    }

    pub fn from_type_url(url: &str) -> Option<Self> {
        Self::PUSH_ORDER.into_iter().find(|t| t.type_url() == url)
    }
}

/// One resource with its content version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned {
    pub name: String,
    pub version: String,
    pub body: Bytes,
}

/// Every resource of one Gateway, by type and name, and the version of the
/// whole (computed once: every response and every status round reads it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    by_type: BTreeMap<ResourceType, BTreeMap<String, Arc<Versioned>>>,
    version: String,
}

impl Default for Snapshot {
    fn default() -> Self {
        Self::of(BTreeMap::new())
    }
}

impl Snapshot {
    pub fn from_resources(r: &EnvoyResources) -> Self {
        Self::following(r, None)
    }

    /// The snapshot of `r`, sharing with `before` (the Gateway's last one)
    /// every resource whose encoding is unchanged: its version is not
    /// computed again, and comparing the two snapshots skips it.
    pub fn following(r: &EnvoyResources, before: Option<&Snapshot>) -> Self {
        let lists: [(ResourceType, &[Resource]); 5] = [
            (ResourceType::Secret, &r.secrets),
            (ResourceType::Cluster, &r.clusters),
            (ResourceType::Endpoint, &r.endpoints),
            (ResourceType::Listener, &r.listeners),
            (ResourceType::Route, &r.routes),
        ];
        let mut by_type = BTreeMap::new();
        for (kind, list) in lists {
            let old = before.and_then(|b| b.by_type.get(&kind));
            let map: &mut BTreeMap<String, Arc<Versioned>> = by_type.entry(kind).or_default();
            for res in list {
                let same = old
                    .and_then(|m| m.get(&res.name))
                    .filter(|v| v.body == res.body);
                let versioned = match same {
                    Some(v) => Arc::clone(v),
                    None => Arc::new(Versioned {
                        name: res.name.clone(),
                        version: content_version(&res.body),
                        body: res.body.clone(),
                    }),
                };
                map.insert(res.name.clone(), versioned);
            }
        }
        Self::of(by_type)
    }

    fn of(by_type: BTreeMap<ResourceType, BTreeMap<String, Arc<Versioned>>>) -> Self {
        let mut snapshot = Self {
            by_type,
            version: String::new(),
        };
        let all: Vec<String> = ResourceType::PUSH_ORDER
            .iter()
            .map(|t| snapshot.type_version(*t))
            .collect();
        snapshot.version = content_version(all.join(",").as_bytes());
        snapshot
    }

    /// Resources of one type, by name.
    pub fn resources(&self, kind: ResourceType) -> impl Iterator<Item = &Arc<Versioned>> {
        self.by_type.get(&kind).into_iter().flat_map(|m| m.values())
    }

    pub fn get(&self, kind: ResourceType, name: &str) -> Option<&Arc<Versioned>> {
        self.by_type.get(&kind).and_then(|m| m.get(name))
    }

    /// The version of the whole snapshot: what "Envoy has ACKed the current
    /// configuration" compares against.
    pub fn version(&self) -> String {
        self.version.clone()
    }

    /// The version of a whole type, for state-of-the-world responses: it
    /// changes whenever any resource of the type is added, changed or removed.
    pub fn type_version(&self, kind: ResourceType) -> String {
        let mut all = Vec::new();
        for r in self.resources(kind) {
            all.extend_from_slice(r.name.as_bytes());
            all.push(0);
            all.extend_from_slice(r.version.as_bytes());
            all.push(0);
        }
        content_version(&all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(cluster_body: &'static [u8]) -> EnvoyResources {
        EnvoyResources {
            clusters: vec![Resource {
                name: "default/web:80".into(),
                body: Bytes::from_static(cluster_body),
            }],
            ..EnvoyResources::default()
        }
    }

    #[test]
    fn versions_follow_content_only() {
        let a = Snapshot::from_resources(&resources(b"one"));
        let b = Snapshot::from_resources(&resources(b"one"));
        let c = Snapshot::from_resources(&resources(b"two"));
        let version = |s: &Snapshot| {
            s.get(ResourceType::Cluster, "default/web:80")
                .map(|r| r.version.clone())
        };
        assert_eq!(version(&a), version(&b));
        assert_ne!(version(&a), version(&c));
        assert_eq!(
            a.type_version(ResourceType::Cluster),
            b.type_version(ResourceType::Cluster)
        );
        assert_ne!(
            a.type_version(ResourceType::Cluster),
            c.type_version(ResourceType::Cluster)
        );
        assert_ne!(
            a.type_version(ResourceType::Cluster),
            a.type_version(ResourceType::Listener)
        );
    }

    #[test]
    fn a_following_snapshot_equals_a_fresh_one_and_shares_what_is_unchanged() {
        let both = |listener: &'static [u8]| EnvoyResources {
            listeners: vec![Resource {
                name: "default/gw:80".into(),
                body: Bytes::from_static(listener),
            }],
            ..resources(b"one")
        };
        let before = Snapshot::from_resources(&both(b"l1"));
        let after = Snapshot::following(&both(b"l2"), Some(&before));
        assert_eq!(after, Snapshot::from_resources(&both(b"l2")));
        assert_eq!(
            after.version(),
            Snapshot::from_resources(&both(b"l2")).version()
        );
        let cluster =
            |s: &Snapshot| Arc::clone(s.get(ResourceType::Cluster, "default/web:80").unwrap());
        assert!(
            Arc::ptr_eq(&cluster(&before), &cluster(&after)),
            "unchanged: shared"
        );
        let listener =
            |s: &Snapshot| Arc::clone(s.get(ResourceType::Listener, "default/gw:80").unwrap());
        assert!(!Arc::ptr_eq(&listener(&before), &listener(&after)));
        assert_ne!(before.version(), after.version());
        assert_eq!(
            Snapshot::default().version(),
            Snapshot::from_resources(&EnvoyResources::default()).version()
        );
    }

    #[test]
    fn type_urls_round_trip_in_push_order() {
        for t in ResourceType::PUSH_ORDER {
            assert_eq!(ResourceType::from_type_url(t.type_url()), Some(t));
        }
        assert_eq!(
            ResourceType::from_type_url("type.googleapis.com/nope"),
            None
        );
        let mut sorted = ResourceType::PUSH_ORDER;
        sorted.sort();
        assert_eq!(sorted, ResourceType::PUSH_ORDER);
    }
}
