//! One delta ADS stream as a state machine without I/O. Requests and new
//! snapshots go in; responses to send and ACK/NACK feedback come out.
//!
//! Rules it keeps: `node` is read from the first request only; a type's first
//! request with no names (or `*`) is a wildcard subscription; named
//! subscriptions and unsubscriptions change what is sent; versions Envoy
//! declares on reconnect (`initial_resource_versions`) are not sent again; a
//! response nonce answered with `error_detail` is a NACK, otherwise an ACK;
//! nothing unchanged is re-sent. The push order and the wait for warm
//! clusters are `push`'s; each of its steps is one delta response here, its
//! removals included.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource,
};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::rpc::Status;

use super::cache::{ResourceType, Snapshot};
use super::push::{Part, Push, PushOrder, Wire};

/// What a request told about an earlier response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Feedback {
    /// Envoy applied the response; `snapshot` is the snapshot version it came from.
    Ack {
        kind: ResourceType,
        snapshot: String,
    },
    /// Envoy rejected the response and keeps its previous configuration.
    Nack {
        kind: ResourceType,
        snapshot: String,
        message: String,
    },
}

#[derive(Debug, Default)]
struct TypeState {
    /// A request for this type has been seen.
    active: bool,
    wildcard: bool,
    names: BTreeSet<String>,
    /// What Envoy holds: name to version. An empty version records a name
    /// Envoy was told does not exist.
    known: BTreeMap<String, String>,
    /// Responses sent and not yet answered: nonce to snapshot version.
    pending: BTreeMap<String, String>,
}

impl TypeState {
    fn wants(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }
}

impl Feedback {
    /// Envoy's answer to a response of `kind` built from snapshot `snapshot`:
    /// a NACK when it carries an error, an ACK otherwise.
    pub(crate) fn answer(kind: ResourceType, snapshot: String, error: Option<&Status>) -> Self {
        match error {
            Some(status) => Feedback::Nack {
                kind,
                snapshot,
                message: status.message.clone(),
            },
            None => Feedback::Ack { kind, snapshot },
        }
    }
}

/// Remembers the node of a stream's first request and reads the type of each.
pub(crate) fn identify(
    node: &mut Option<Node>,
    request_node: Option<&Node>,
    type_url: &str,
) -> Result<ResourceType, StreamError> {
    if node.is_none() {
        *node = Some(request_node.cloned().ok_or(StreamError::NoNode)?);
    }
    ResourceType::from_type_url(type_url).ok_or_else(|| StreamError::UnknownType(type_url.into()))
}

/// The state of one stream.
#[derive(Debug, Default)]
pub struct DeltaStream {
    wire: DeltaWire,
    order: PushOrder,
}

/// What the stream subscribed to and what Envoy holds, by type.
#[derive(Debug, Default)]
struct DeltaWire {
    node: Option<Node>,
    types: BTreeMap<ResourceType, TypeState>,
    next_nonce: u64,
}

/// The result of handling one request, in either protocol variant.
#[derive(Debug)]
pub struct Handled<R> {
    pub feedback: Option<Feedback>,
    pub responses: Vec<R>,
}

impl<R> Default for Handled<R> {
    fn default() -> Self {
        Self {
            feedback: None,
            responses: Vec::new(),
        }
    }
}

/// Why a request cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("unknown resource type {0:?}")]
    UnknownType(String),
    #[error("the first request of a stream must carry the node")]
    NoNode,
}

impl DeltaStream {
    pub fn new() -> Self {
        Self::default()
    }

    /// The node of the first request.
    pub fn node(&self) -> Option<&Node> {
        self.wire.node.as_ref()
    }

    pub fn on_request(
        &mut self,
        req: &DeltaDiscoveryRequest,
        snapshot: &Snapshot,
    ) -> Result<Handled<DeltaDiscoveryResponse>, StreamError> {
        let wire = &mut self.wire;
        let kind = identify(&mut wire.node, req.node.as_ref(), &req.type_url)?;
        let state = wire.types.entry(kind).or_default();
        let mut handled = Handled::default();

        if !req.response_nonce.is_empty()
            && let Some(version) = state.pending.remove(&req.response_nonce)
        {
            handled.feedback = Some(Feedback::answer(kind, version, req.error_detail.as_ref()));
        }

        let first = !state.active;
        state.active = true;
        if first {
            // What Envoy already holds, from before a reconnect.
            for (name, version) in &req.initial_resource_versions {
                state.known.insert(name.clone(), version.clone());
            }
            if req.resource_names_subscribe.is_empty() {
                state.wildcard = true;
            }
        }
        for name in &req.resource_names_subscribe {
            if name == "*" {
                state.wildcard = true;
            } else {
                state.names.insert(name.clone());
            }
        }
        for name in &req.resource_names_unsubscribe {
            if name == "*" {
                // Leaving the wildcard: forget what is not named.
                state.wildcard = false;
                let names = &state.names;
                state.known.retain(|n, _| names.contains(n));
            } else {
                state.names.remove(name);
                if !state.wants(name) {
                    state.known.remove(name);
                }
            }
        }

        // A fresh Envoy subscribing to everything of a type waits for a first
        // answer (15 s, its initial fetch timeout) before it starts: it gets
        // one even when the snapshot holds nothing of the type.
        let fresh = first && state.wildcard && req.initial_resource_versions.is_empty();
        if !self.order.holds(kind) {
            match wire.response(kind, snapshot, Part::All, fresh) {
                Some(response) => handled.responses.push(response),
                // A reconnecting Envoy that declared exactly what this snapshot
                // holds is as good as one that ACKed it.
                None if first && handled.feedback.is_none() => {
                    handled.feedback = Some(Feedback::Ack {
                        kind,
                        snapshot: snapshot.version(),
                    });
                }
                None => {}
            }
        }
        let released = self
            .order
            .after_request(wire, snapshot, handled.feedback.as_ref());
        handled.responses.extend(released);
        Ok(handled)
    }

    /// A new snapshot: the responses to send, in push order.
    pub fn on_snapshot(&mut self, snapshot: &Snapshot) -> Vec<DeltaDiscoveryResponse> {
        self.order.on_snapshot(&mut self.wire, snapshot)
    }

    /// Whether Envoy has answered (ACK or NACK) every response sent so far.
    pub fn is_settled(&self) -> bool {
        self.wire.types.values().all(|t| t.pending.is_empty())
    }
}

/// How the push order's steps go on this wire: each step sends exactly its
/// part of a type's changes, removals included.
impl Wire for DeltaWire {
    type Response = DeltaDiscoveryResponse;

    fn send(&mut self, step: Push, snapshot: &Snapshot) -> Option<DeltaDiscoveryResponse> {
        self.response(step.kind, snapshot, step.part, false)
    }

    fn clusters(&self) -> Option<impl Iterator<Item = &str>> {
        let clusters = self
            .types
            .get(&ResourceType::Cluster)
            .filter(|c| c.active)?;
        let held = clusters
            .known
            .iter()
            .filter(|(_, version)| !version.is_empty());
        Some(held.map(|(name, _)| name.as_str()))
    }

    fn endpoints_sent(&self, name: &str) -> Option<&str> {
        let endpoints = self.types.get(&ResourceType::Endpoint)?;
        endpoints.known.get(name).map(String::as_str)
    }

    fn unanswered(&self, kind: ResourceType) -> bool {
        self.types.get(&kind).is_some_and(|t| !t.pending.is_empty())
    }
}

impl DeltaWire {
    /// The changes of `kind` Envoy does not hold yet; `None` when there are
    /// none, unless `even_empty`.
    fn response(
        &mut self,
        kind: ResourceType,
        snapshot: &Snapshot,
        part: Part,
        even_empty: bool,
    ) -> Option<DeltaDiscoveryResponse> {
        let state = self.types.get_mut(&kind).filter(|s| s.active)?;
        let mut resources = Vec::new();
        let mut removed = Vec::new();
        if part != Part::Removals {
            for r in snapshot.resources(kind) {
                if state.wants(&r.name) && state.known.get(&r.name) != Some(&r.version) {
                    state.known.insert(r.name.clone(), r.version.clone());
                    resources.push(Resource {
                        name: r.name.clone(),
                        version: r.version.clone(),
                        resource: Some(Any {
                            type_url: kind.type_url().to_string(),
                            value: r.body.to_vec(),
                        }),
                        ..Resource::default()
                    });
                }
            }
        }
        if part != Part::Updates {
            // Held resources that are gone, and named ones that never existed.
            let gone: Vec<String> = state
                .known
                .iter()
                .filter(|(n, v)| !v.is_empty() && snapshot.get(kind, n).is_none())
                .map(|(n, _)| n.clone())
                .chain(
                    state
                        .names
                        .iter()
                        .filter(|n| {
                            snapshot.get(kind, n).is_none() && !state.known.contains_key(*n)
                        })
                        .cloned(),
                )
                .collect();
            for name in gone {
                state.known.insert(name.clone(), String::new());
                removed.push(name);
            }
        }
        if resources.is_empty() && removed.is_empty() && !even_empty {
            return None;
        }
        tracing::debug!(
            node = self.node.as_ref().map(|n| n.id.as_str()),
            ?kind,
            updated = ?resources.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ?removed,
            "delta response"
        );
        self.next_nonce += 1;
        let nonce = self.next_nonce.to_string();
        state.pending.insert(nonce.clone(), snapshot.version());
        Some(DeltaDiscoveryResponse {
            system_version_info: snapshot.version(),
            resources,
            type_url: kind.type_url().to_string(),
            removed_resources: removed,
            nonce,
            ..DeltaDiscoveryResponse::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bytes::Bytes;

    use super::*;
    use crate::translate::encode::{EnvoyResources, Resource as Encoded};

    fn encoded(name: &str, body: &str) -> Encoded {
        Encoded {
            name: name.into(),
            body: Bytes::from(body.to_string()),
        }
    }

    fn snapshot(clusters: &[(&str, &str)], listeners: &[(&str, &str)]) -> Snapshot {
        Snapshot::from_resources(&EnvoyResources {
            clusters: clusters.iter().map(|(n, b)| encoded(n, b)).collect(),
            listeners: listeners.iter().map(|(n, b)| encoded(n, b)).collect(),
            ..EnvoyResources::default()
        })
    }

    fn node() -> Option<Node> {
        Some(Node {
            id: "envoy-1".into(),
            cluster: "default/gw".into(),
            ..Node::default()
        })
    }

    fn request(kind: ResourceType) -> DeltaDiscoveryRequest {
        DeltaDiscoveryRequest {
            node: node(),
            type_url: kind.type_url().into(),
            ..DeltaDiscoveryRequest::default()
        }
    }

    /// What an Envoy holding these clusters of `snap` declares on reconnect.
    fn held_clusters(snap: &Snapshot, names: &[&str]) -> HashMap<String, String> {
        names
            .iter()
            .map(|n| {
                let v = snap.get(ResourceType::Cluster, n).unwrap().version.clone();
                (n.to_string(), v)
            })
            .collect()
    }

    fn names(r: &DeltaDiscoveryResponse) -> Vec<&str> {
        r.resources.iter().map(|x| x.name.as_str()).collect()
    }

    /// Subscribes with `req` and ACKs every response it brings.
    fn subscribe(s: &mut DeltaStream, req: &DeltaDiscoveryRequest, snap: &Snapshot) {
        for r in s.on_request(req, snap).unwrap().responses {
            let kind = ResourceType::from_type_url(&r.type_url).unwrap();
            let ack = DeltaDiscoveryRequest {
                node: None,
                response_nonce: r.nonce.clone(),
                ..request(kind)
            };
            s.on_request(&ack, snap).unwrap();
        }
    }

    #[test]
    fn wildcard_subscription_gets_everything_then_acks() {
        let snap = snapshot(&[("a", "1"), ("b", "1")], &[]);
        let mut s = DeltaStream::new();
        let h = s
            .on_request(&request(ResourceType::Cluster), &snap)
            .unwrap();
        assert_eq!(h.responses.len(), 1);
        let r = &h.responses[0];
        assert_eq!(names(r), ["a", "b"]);
        assert_eq!(r.type_url, ResourceType::Cluster.type_url());
        assert!(!s.is_settled());

        let ack = DeltaDiscoveryRequest {
            node: None,
            response_nonce: r.nonce.clone(),
            ..request(ResourceType::Cluster)
        };
        let h = s.on_request(&ack, &snap).unwrap();
        assert_eq!(
            h.feedback,
            Some(Feedback::Ack {
                kind: ResourceType::Cluster,
                snapshot: snap.version()
            })
        );
        assert!(h.responses.is_empty(), "nothing unchanged is re-sent");
        assert!(s.is_settled());
        assert_eq!(s.node().map(|n| n.cluster.as_str()), Some("default/gw"));
    }

    #[test]
    fn a_fresh_envoy_hears_at_once_that_a_type_is_empty() {
        // A Gateway without routes has no clusters: Envoy must not wait for
        // its initial fetch timeout before it starts.
        let snap = snapshot(&[], &[]);
        let mut s = DeltaStream::new();
        let h = s
            .on_request(&request(ResourceType::Cluster), &snap)
            .unwrap();
        assert_eq!(h.responses.len(), 1);
        assert!(h.responses[0].resources.is_empty() && h.responses[0].removed_resources.is_empty());
        // Its ACK is an answer like any other; nothing more is sent.
        let ack = DeltaDiscoveryRequest {
            node: None,
            response_nonce: h.responses[0].nonce.clone(),
            ..request(ResourceType::Cluster)
        };
        let h = s.on_request(&ack, &snap).unwrap();
        assert!(matches!(h.feedback, Some(Feedback::Ack { .. })));
        assert!(h.responses.is_empty());

        // An Envoy reconnecting with what it holds gets nothing it has.
        let held = snapshot(&[("a", "1")], &[]);
        let mut again = DeltaStream::new();
        let reconnect = DeltaDiscoveryRequest {
            initial_resource_versions: held_clusters(&held, &["a"]),
            ..request(ResourceType::Cluster)
        };
        assert!(
            again
                .on_request(&reconnect, &held)
                .unwrap()
                .responses
                .is_empty()
        );
    }

    #[test]
    fn nack_carries_envoys_message_and_is_not_retried() {
        let snap = snapshot(&[("a", "1")], &[]);
        let mut s = DeltaStream::new();
        let r = s
            .on_request(&request(ResourceType::Cluster), &snap)
            .unwrap()
            .responses
            .remove(0);
        let nack = DeltaDiscoveryRequest {
            response_nonce: r.nonce.clone(),
            error_detail: Some(Status {
                code: 3,
                message: "bad cluster".into(),
                ..Status::default()
            }),
            ..request(ResourceType::Cluster)
        };
        let h = s.on_request(&nack, &snap).unwrap();
        assert_eq!(
            h.feedback,
            Some(Feedback::Nack {
                kind: ResourceType::Cluster,
                snapshot: snap.version(),
                message: "bad cluster".into()
            })
        );
        assert!(h.responses.is_empty());
    }

    #[test]
    fn first_request_needs_a_node_and_known_type() {
        let snap = Snapshot::default();
        let mut s = DeltaStream::new();
        let no_node = DeltaDiscoveryRequest {
            node: None,
            ..request(ResourceType::Cluster)
        };
        assert_eq!(
            s.on_request(&no_node, &snap).unwrap_err(),
            StreamError::NoNode
        );
        let odd = DeltaDiscoveryRequest {
            type_url: "type.googleapis.com/x.Y".into(),
            ..request(ResourceType::Cluster)
        };
        assert!(matches!(
            s.on_request(&odd, &snap),
            Err(StreamError::UnknownType(_))
        ));
    }

    #[test]
    fn reconnect_with_current_versions_sends_nothing() {
        let snap = snapshot(&[("a", "1"), ("b", "1")], &[]);
        let held = held_clusters(&snap, &["a", "b"]);
        let mut s = DeltaStream::new();
        let req = DeltaDiscoveryRequest {
            initial_resource_versions: held,
            ..request(ResourceType::Cluster)
        };
        let handled = s.on_request(&req, &snap).unwrap();
        assert!(handled.responses.is_empty());
        assert!(
            matches!(handled.feedback, Some(Feedback::Ack { ref snapshot, .. }) if *snapshot == snap.version()),
            "holding the current versions counts as having acknowledged them"
        );
    }

    #[test]
    fn reconnect_subscribing_one_name_at_a_time_sends_nothing() {
        // Envoy subscribes to route configurations as its listeners come up,
        // one request each, but declares everything it holds in the first.
        let snap = snapshot(&[("a", "1"), ("b", "1")], &[]);
        let held = held_clusters(&snap, &["a", "b"]);
        let mut s = DeltaStream::new();
        let first = DeltaDiscoveryRequest {
            resource_names_subscribe: vec!["a".into()],
            initial_resource_versions: held,
            ..request(ResourceType::Cluster)
        };
        assert!(s.on_request(&first, &snap).unwrap().responses.is_empty());
        let second = DeltaDiscoveryRequest {
            node: None,
            resource_names_subscribe: vec!["b".into()],
            ..request(ResourceType::Cluster)
        };
        assert!(
            s.on_request(&second, &snap).unwrap().responses.is_empty(),
            "b was declared held at the same version"
        );
    }

    #[test]
    fn named_subscriptions_and_unsubscribe() {
        let snap = snapshot(&[("a", "1"), ("b", "1")], &[]);
        let mut s = DeltaStream::new();
        let sub = DeltaDiscoveryRequest {
            resource_names_subscribe: vec!["b".into(), "missing".into()],
            ..request(ResourceType::Cluster)
        };
        let r = s.on_request(&sub, &snap).unwrap().responses.remove(0);
        assert_eq!(names(&r), ["b"]);
        assert_eq!(
            r.removed_resources,
            ["missing"],
            "a missing named resource is reported absent"
        );

        let unsub = DeltaDiscoveryRequest {
            node: None,
            resource_names_unsubscribe: vec!["b".into()],
            ..request(ResourceType::Cluster)
        };
        assert!(s.on_request(&unsub, &snap).unwrap().responses.is_empty());
        let changed = snapshot(&[("a", "2"), ("b", "2")], &[]);
        assert!(
            s.on_snapshot(&changed).is_empty(),
            "nothing subscribed changed"
        );
    }

    #[test]
    fn secrets_go_before_the_listeners_that_use_them() {
        let with = |secret: &str, listener: &str| {
            Snapshot::from_resources(&EnvoyResources {
                secrets: vec![encoded("default/cert", secret)],
                listeners: vec![encoded("https-443", listener)],
                ..EnvoyResources::default()
            })
        };
        let before = with("1", "1");
        let mut s = DeltaStream::new();
        subscribe(&mut s, &request(ResourceType::Listener), &before);
        let sds = DeltaDiscoveryRequest {
            resource_names_subscribe: vec!["default/cert".into()],
            ..request(ResourceType::Secret)
        };
        let first = s.on_request(&sds, &before).unwrap().responses;
        assert_eq!(names(&first[0]), ["default/cert"]);
        let out = s.on_snapshot(&with("2", "2"));
        let kinds: Vec<_> = out
            .iter()
            .map(|r| ResourceType::from_type_url(&r.type_url))
            .collect();
        assert_eq!(
            kinds,
            [Some(ResourceType::Secret), Some(ResourceType::Listener)]
        );
    }

    #[test]
    fn listeners_wait_until_new_clusters_have_their_endpoints() {
        let with = |clusters: &[(&str, &str)], listener: &str| {
            Snapshot::from_resources(&EnvoyResources {
                clusters: clusters.iter().map(|(n, b)| encoded(n, b)).collect(),
                endpoints: clusters.iter().map(|(n, b)| encoded(n, b)).collect(),
                listeners: vec![encoded("l", listener)],
                ..EnvoyResources::default()
            })
        };
        let before = with(&[("a", "1")], "1");
        let mut s = DeltaStream::new();
        s.on_request(&request(ResourceType::Cluster), &before)
            .unwrap();
        let eds = DeltaDiscoveryRequest {
            resource_names_subscribe: vec!["a".into()],
            ..request(ResourceType::Endpoint)
        };
        s.on_request(&eds, &before).unwrap();
        subscribe(&mut s, &request(ResourceType::Listener), &before);

        // A new cluster and a listener that uses it: the listener waits.
        let after = with(&[("a", "1"), ("new", "1")], "2");
        let out = s.on_snapshot(&after);
        let kinds: Vec<_> = out
            .iter()
            .map(|r| ResourceType::from_type_url(&r.type_url))
            .collect();
        assert_eq!(kinds, [Some(ResourceType::Cluster)]);
        // Envoy asks for the new cluster's endpoints: they go out, then the listener.
        let subscribe = DeltaDiscoveryRequest {
            node: None,
            resource_names_subscribe: vec!["new".into()],
            ..request(ResourceType::Endpoint)
        };
        let out = s.on_request(&subscribe, &after).unwrap().responses;
        let kinds: Vec<_> = out
            .iter()
            .map(|r| ResourceType::from_type_url(&r.type_url))
            .collect();
        assert_eq!(
            kinds,
            [Some(ResourceType::Endpoint), Some(ResourceType::Listener)]
        );
    }

    #[test]
    fn updates_send_only_changes_in_push_order_with_removed_clusters_last() {
        let before = snapshot(&[("a", "1"), ("old", "1")], &[("l", "1")]);
        let mut s = DeltaStream::new();
        for kind in [ResourceType::Listener, ResourceType::Cluster] {
            subscribe(&mut s, &request(kind), &before);
        }
        let after = snapshot(&[("a", "1"), ("new", "1")], &[("l", "2")]);
        let out = s.on_snapshot(&after);
        let summary: Vec<(Option<ResourceType>, Vec<&str>, Vec<&str>)> = out
            .iter()
            .map(|r| {
                (
                    ResourceType::from_type_url(&r.type_url),
                    names(r),
                    r.removed_resources.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (Some(ResourceType::Cluster), vec!["new"], vec![]),
                (Some(ResourceType::Listener), vec!["l"], vec![]),
                (Some(ResourceType::Cluster), vec![], vec!["old"]),
            ]
        );
        assert!(
            s.on_snapshot(&after).is_empty(),
            "the same snapshot twice sends nothing"
        );
    }

    #[test]
    fn listener_updates_wait_for_envoys_answer_and_then_go_as_one() {
        let mut s = DeltaStream::new();
        let first = snapshot(&[], &[("l", "1")]);
        let sent = s
            .on_request(&request(ResourceType::Listener), &first)
            .unwrap()
            .responses;
        assert_eq!(sent.len(), 1);
        // Two snapshots while Envoy still applies the first response: held.
        assert!(s.on_snapshot(&snapshot(&[], &[("l", "2")])).is_empty());
        let last = snapshot(&[], &[("l", "3"), ("m", "1")]);
        assert!(s.on_snapshot(&last).is_empty());
        // Envoy answers: one response with the latest of every listener.
        let ack = DeltaDiscoveryRequest {
            node: None,
            response_nonce: sent[0].nonce.clone(),
            ..request(ResourceType::Listener)
        };
        let out = s.on_request(&ack, &last).unwrap().responses;
        assert_eq!(out.len(), 1);
        assert_eq!(names(&out[0]), ["l", "m"]);
        assert_eq!(out[0].system_version_info, last.version());
        assert_eq!(
            out[0].resources[0].version,
            last.get(ResourceType::Listener, "l").unwrap().version
        );
    }
}
