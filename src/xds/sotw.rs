//! One state-of-the-world ADS stream as a state machine without I/O. Each
//! response carries every subscribed resource of its type.
//!
//! Rules it keeps: `node` from the first request only; a type's first request
//! with no names (or `*`) subscribes to all; later requests list the names
//! wanted, and an empty list after named ones unsubscribes from all; a request
//! answering the latest nonce is an ACK, or a NACK when it carries
//! `error_detail`; requests answering older nonces are stale and ignored;
//! a type is re-sent only when what it would carry changed. The push order
//! and the wait for warm clusters are `push`'s; here, how its steps look in
//! state of the world: clusters that disappear are kept in the first
//! cluster response and dropped by a second one sent after listeners and
//! routes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;

use super::cache::{ResourceType, Snapshot, Versioned};
use super::delta::{Feedback, Handled, StreamError, identify};
use super::push::{Part, Push, PushOrder, Wire};
use crate::identity::content_version;

#[derive(Debug, Default)]
struct TypeState {
    active: bool,
    wildcard: bool,
    names: BTreeSet<String>,
    /// The resources of the last response, by name.
    sent: BTreeMap<String, Arc<Versioned>>,
    /// Version of the last response (empty before the first).
    sent_version: String,
    /// Nonce of the last response and the snapshot version it came from.
    latest: Option<(String, String)>,
}

impl TypeState {
    fn view(&self, kind: ResourceType, snapshot: &Snapshot) -> BTreeMap<String, Arc<Versioned>> {
        snapshot
            .resources(kind)
            .filter(|r| self.wildcard || self.names.contains(&r.name))
            .map(|r| (r.name.clone(), Arc::clone(r)))
            .collect()
    }
}

fn view_version(view: &BTreeMap<String, Arc<Versioned>>) -> String {
    let mut all = Vec::new();
    for r in view.values() {
        all.extend_from_slice(r.name.as_bytes());
        all.push(0);
        all.extend_from_slice(r.version.as_bytes());
        all.push(0);
    }
    content_version(&all)
}

/// The state of one stream.
#[derive(Debug, Default)]
pub struct SotwStream {
    wire: SotwWire,
    order: PushOrder,
}

/// What the stream subscribed to and sent, by type.
#[derive(Debug, Default)]
struct SotwWire {
    node: Option<Node>,
    types: BTreeMap<ResourceType, TypeState>,
    next_nonce: u64,
}

impl SotwStream {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn node(&self) -> Option<&Node> {
        self.wire.node.as_ref()
    }

    pub fn on_request(
        &mut self,
        req: &DiscoveryRequest,
        snapshot: &Snapshot,
    ) -> Result<Handled<DiscoveryResponse>, StreamError> {
        let wire = &mut self.wire;
        let kind = identify(&mut wire.node, req.node.as_ref(), &req.type_url)?;
        let state = wire.types.entry(kind).or_default();
        let mut handled = Handled::default();
        if !req.response_nonce.is_empty() {
            match &state.latest {
                Some((nonce, version)) if *nonce == req.response_nonce => {
                    handled.feedback = Some(Feedback::answer(
                        kind,
                        version.clone(),
                        req.error_detail.as_ref(),
                    ));
                }
                // An answer to an older response: a newer one is on its way.
                _ => return Ok(handled),
            }
        }
        let first = !state.active;
        state.active = true;
        let star = req.resource_names.iter().any(|n| n == "*");
        if (first && req.resource_names.is_empty()) || star {
            state.wildcard = true;
        } else if !state.wildcard || !req.resource_names.is_empty() {
            state.wildcard = false;
            state.names = req.resource_names.iter().cloned().collect();
        }
        if first && !req.version_info.is_empty() {
            // A reconnecting Envoy that already holds exactly this view needs
            // nothing new.
            let view = state.view(kind, snapshot);
            if view_version(&view) == req.version_info {
                state.sent = view;
                state.sent_version = req.version_info.clone();
                // As good as an ACK of the current snapshot for this type.
                handled.feedback = Some(Feedback::Ack {
                    kind,
                    snapshot: snapshot.version(),
                });
                return Ok(handled);
            }
        }
        if !self.order.holds(kind) {
            handled
                .responses
                .extend(wire.response(kind, snapshot, first, None));
        }
        let released = self
            .order
            .after_request(wire, snapshot, handled.feedback.as_ref());
        handled.responses.extend(released);
        Ok(handled)
    }

    /// A new snapshot: the responses to send, in push order.
    pub fn on_snapshot(&mut self, snapshot: &Snapshot) -> Vec<DiscoveryResponse> {
        self.order.on_snapshot(&mut self.wire, snapshot)
    }
}

/// How the push order's steps go on this wire. Envoy takes a cluster or
/// listener response as the whole set (one left out is removed) but keeps
/// endpoints, routes and secrets a response leaves out: only departing
/// clusters are held back by carrying them in the first cluster response,
/// and only clusters have a removal step.
impl Wire for SotwWire {
    type Response = DiscoveryResponse;

    fn send(&mut self, step: Push, snapshot: &Snapshot) -> Option<DiscoveryResponse> {
        match (step.kind, step.part) {
            (ResourceType::Cluster, Part::Updates) => {
                let leaving = self.leaving_clusters(snapshot);
                let keep = (!leaving.is_empty()).then_some(&leaving);
                self.response(ResourceType::Cluster, snapshot, false, keep)
            }
            (ResourceType::Cluster, Part::Removals) | (_, Part::Updates | Part::All) => {
                self.response(step.kind, snapshot, false, None)
            }
            (_, Part::Removals) => None,
        }
    }

    fn clusters(&self) -> Option<impl Iterator<Item = &str>> {
        let clusters = self
            .types
            .get(&ResourceType::Cluster)
            .filter(|c| c.active)?;
        Some(clusters.sent.keys().map(String::as_str))
    }

    fn endpoints_sent(&self, name: &str) -> Option<&str> {
        let endpoints = self.types.get(&ResourceType::Endpoint)?;
        endpoints.sent.get(name).map(|r| r.version.as_str())
    }
}

impl SotwWire {
    /// Clusters last sent that the snapshot no longer has.
    fn leaving_clusters(&self, snapshot: &Snapshot) -> BTreeMap<String, Arc<Versioned>> {
        match self.types.get(&ResourceType::Cluster) {
            Some(state) if state.active => state
                .sent
                .iter()
                .filter(|(n, _)| snapshot.get(ResourceType::Cluster, n).is_none())
                .map(|(n, r)| (n.clone(), Arc::clone(r)))
                .collect(),
            _ => BTreeMap::new(),
        }
    }

    fn response(
        &mut self,
        kind: ResourceType,
        snapshot: &Snapshot,
        force: bool,
        keep: Option<&BTreeMap<String, Arc<Versioned>>>,
    ) -> Option<DiscoveryResponse> {
        let state = self.types.get_mut(&kind).filter(|s| s.active)?;
        let mut view = state.view(kind, snapshot);
        if let Some(keep) = keep {
            for (n, r) in keep {
                view.entry(n.clone()).or_insert_with(|| Arc::clone(r));
            }
        }
        let version = view_version(&view);
        if !force && version == state.sent_version {
            return None;
        }
        self.next_nonce += 1;
        let nonce = self.next_nonce.to_string();
        let response = DiscoveryResponse {
            version_info: version.clone(),
            resources: view
                .values()
                .map(|r| Any {
                    type_url: kind.type_url().to_string(),
                    value: r.body.to_vec(),
                })
                .collect(),
            type_url: kind.type_url().to_string(),
            nonce: nonce.clone(),
            ..DiscoveryResponse::default()
        };
        state.sent = view;
        state.sent_version = version;
        state.latest = Some((nonce, snapshot.version()));
        Some(response)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use envoy_types::pb::google::rpc::Status;

    use super::*;
    use crate::translate::encode::{EnvoyResources, Resource};

    fn snapshot(clusters: &[(&str, &str)], listeners: &[(&str, &str)]) -> Snapshot {
        let list = |items: &[(&str, &str)]| {
            items
                .iter()
                .map(|(n, b)| Resource {
                    name: (*n).into(),
                    body: Bytes::from(b.to_string()),
                })
                .collect()
        };
        Snapshot::from_resources(&EnvoyResources {
            clusters: list(clusters),
            listeners: list(listeners),
            ..EnvoyResources::default()
        })
    }

    fn request(kind: ResourceType, names: &[&str], nonce: &str) -> DiscoveryRequest {
        DiscoveryRequest {
            node: Some(Node {
                id: "e".into(),
                cluster: "default/gw".into(),
                ..Node::default()
            }),
            type_url: kind.type_url().into(),
            resource_names: names.iter().map(|n| n.to_string()).collect(),
            response_nonce: nonce.into(),
            ..DiscoveryRequest::default()
        }
    }

    #[test]
    fn wildcard_then_ack_then_nothing_resent() {
        let snap = snapshot(&[("a", "1"), ("b", "1")], &[]);
        let mut s = SotwStream::new();
        let r = s
            .on_request(&request(ResourceType::Cluster, &[], ""), &snap)
            .unwrap()
            .responses
            .remove(0);
        assert_eq!(r.resources.len(), 2);
        let h = s
            .on_request(&request(ResourceType::Cluster, &[], &r.nonce), &snap)
            .unwrap();
        assert!(matches!(h.feedback, Some(Feedback::Ack { .. })));
        assert!(h.responses.is_empty());
        assert!(s.on_snapshot(&snap).is_empty());
    }

    #[test]
    fn stale_nonces_are_ignored_and_nacks_reported() {
        let one = snapshot(&[("a", "1")], &[]);
        let two = snapshot(&[("a", "2")], &[]);
        let mut s = SotwStream::new();
        let first = s
            .on_request(&request(ResourceType::Cluster, &[], ""), &one)
            .unwrap()
            .responses
            .remove(0);
        let second = s.on_snapshot(&two).remove(0);
        let stale = s
            .on_request(&request(ResourceType::Cluster, &[], &first.nonce), &two)
            .unwrap();
        assert!(stale.feedback.is_none() && stale.responses.is_empty());
        let mut nack = request(ResourceType::Cluster, &[], &second.nonce);
        nack.error_detail = Some(Status {
            message: "rejected".into(),
            ..Status::default()
        });
        let h = s.on_request(&nack, &two).unwrap();
        assert!(
            matches!(h.feedback, Some(Feedback::Nack { ref message, .. }) if message == "rejected")
        );
        assert!(
            h.responses.is_empty(),
            "a rejected version is not pushed again"
        );
    }

    #[test]
    fn reconnect_with_the_current_version_sends_nothing() {
        let snap = snapshot(&[("a", "1")], &[]);
        let mut first = SotwStream::new();
        let r = first
            .on_request(&request(ResourceType::Cluster, &[], ""), &snap)
            .unwrap()
            .responses
            .remove(0);
        let mut again = SotwStream::new();
        let mut req = request(ResourceType::Cluster, &[], "");
        req.version_info = r.version_info.clone();
        assert!(again.on_request(&req, &snap).unwrap().responses.is_empty());
        assert!(again.on_snapshot(&snap).is_empty());
        let changed = snapshot(&[("a", "2")], &[]);
        assert_eq!(again.on_snapshot(&changed).len(), 1);
    }

    #[test]
    fn named_then_empty_unsubscribes() {
        let snap = snapshot(&[("a", "1"), ("b", "1")], &[]);
        let mut s = SotwStream::new();
        let r = s
            .on_request(&request(ResourceType::Cluster, &["b"], ""), &snap)
            .unwrap()
            .responses
            .remove(0);
        assert_eq!(r.resources.len(), 1);
        let r = s
            .on_request(&request(ResourceType::Cluster, &[], &r.nonce), &snap)
            .unwrap();
        assert_eq!(r.responses.len(), 1);
        assert!(
            r.responses[0].resources.is_empty(),
            "empty list after names: nothing wanted"
        );
    }

    #[test]
    fn removed_clusters_leave_after_listeners() {
        let before = snapshot(&[("a", "1"), ("old", "1")], &[("l", "1")]);
        let mut s = SotwStream::new();
        for kind in [ResourceType::Cluster, ResourceType::Listener] {
            s.on_request(&request(kind, &[], ""), &before).unwrap();
        }
        let after = snapshot(&[("a", "1"), ("new", "1")], &[("l", "2")]);
        let out = s.on_snapshot(&after);
        let kinds: Vec<(Option<ResourceType>, usize)> = out
            .iter()
            .map(|r| (ResourceType::from_type_url(&r.type_url), r.resources.len()))
            .collect();
        assert_eq!(
            kinds,
            [
                (Some(ResourceType::Cluster), 3),
                (Some(ResourceType::Listener), 1),
                (Some(ResourceType::Cluster), 2),
            ]
        );
    }
}
