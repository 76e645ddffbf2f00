//! The push order and cluster warming of an ADS stream, the same for delta
//! and state-of-the-world: what a new snapshot sends first, what waits for
//! what, and when a cluster is warm. The stream machines (`delta`, `sotw`)
//! only say how one step goes on their wire (`Wire`).
//!
//! Order within one update: secrets, clusters and endpoints (their updates;
//! whatever leaves stays for now), then, once every cluster Envoy holds has
//! been sent its endpoints (it is warm), listeners and routes, and last the
//! endpoints, clusters and secrets that left, after the listeners and routes
//! that stopped naming them. Listener and route updates wait while clusters
//! warm, so a route never names a cluster Envoy is still warming; a rejected
//! cluster response ends the wait (Envoy will not warm what it rejected).
//! Listener and route updates also wait while Envoy has not answered the
//! last listener or route response (delta ADS), and then go out as one: the
//! latest snapshot's changes, however many snapshots came meanwhile.

use super::cache::{ResourceType, Snapshot};
use super::delta::Feedback;

/// Which part of a type's changes one step sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// New and changed resources; those that left are still held.
    Updates,
    /// New, changed and departed resources.
    All,
    /// Departed resources only.
    Removals,
}

/// One step of the push order: a type and the part of its changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Push {
    pub kind: ResourceType,
    pub part: Part,
}

const fn push(kind: ResourceType, part: Part) -> Push {
    Push { kind, part }
}

/// What a new snapshot sends at once: what listeners and routes will need.
pub const FIRST: [Push; 3] = [
    push(ResourceType::Secret, Part::Updates),
    push(ResourceType::Cluster, Part::Updates),
    push(ResourceType::Endpoint, Part::Updates),
];

/// What waits until the clusters are warm: listeners and routes, then what
/// nothing names any more.
pub const WARM: [Push; 5] = [
    push(ResourceType::Listener, Part::All),
    push(ResourceType::Route, Part::All),
    push(ResourceType::Endpoint, Part::Removals),
    push(ResourceType::Cluster, Part::Removals),
    push(ResourceType::Secret, Part::Removals),
];

/// How one stream variant puts a step on its wire and what it sent.
pub trait Wire {
    type Response;
    /// The response carrying `step` of `snapshot`, if there is anything to send
    /// (or nothing, where the variant has no such step).
    fn send(&mut self, step: Push, snapshot: &Snapshot) -> Option<Self::Response>;
    /// The clusters Envoy holds (was last sent); `None` before it subscribed
    /// to clusters.
    fn clusters(&self) -> Option<impl Iterator<Item = &str>>;
    /// The version of the endpoints of cluster `name` Envoy was sent.
    fn endpoints_sent(&self, name: &str) -> Option<&str>;
    /// Whether a response of `kind` is still unanswered (no ACK or NACK yet).
    /// Variants that do not track this never hold listeners and routes back.
    fn unanswered(&self, _kind: ResourceType) -> bool {
        false
    }
}

/// Whether every cluster Envoy holds has been sent the endpoints the
/// snapshot has for it (a cluster without endpoints in the snapshot is warm;
/// so is everything before clusters are subscribed).
pub fn clusters_warm<W: Wire>(wire: &W, snapshot: &Snapshot) -> bool {
    let Some(mut clusters) = wire.clusters() else {
        return true;
    };
    clusters.all(|name| match snapshot.get(ResourceType::Endpoint, name) {
        None => true,
        Some(cla) => wire.endpoints_sent(name) == Some(cla.version.as_str()),
    })
}

/// One stream's place in the push order: whether listener and route
/// updates are waiting for clusters to warm.
#[derive(Debug, Default)]
pub struct PushOrder {
    waiting: bool,
}

impl PushOrder {
    /// A new snapshot: the responses to send now, in order.
    pub fn on_snapshot<W: Wire>(&mut self, wire: &mut W, snapshot: &Snapshot) -> Vec<W::Response> {
        let mut out = steps(wire, &FIRST, snapshot);
        self.waiting = true;
        out.extend(self.release(wire, snapshot));
        out
    }

    /// Whether a request of `kind` must not be answered yet: listeners and
    /// routes while clusters warm.
    pub fn holds(&self, kind: ResourceType) -> bool {
        self.waiting && matches!(kind, ResourceType::Listener | ResourceType::Route)
    }

    /// After a request was handled (with Envoy's `feedback` on an earlier
    /// response): what was waiting and may go now.
    pub fn after_request<W: Wire>(
        &mut self,
        wire: &mut W,
        snapshot: &Snapshot,
        feedback: Option<&Feedback>,
    ) -> Vec<W::Response> {
        let mut out = Vec::new();
        if matches!(
            feedback,
            Some(Feedback::Nack {
                kind: ResourceType::Cluster,
                ..
            })
        ) {
            // Envoy will not warm what it rejected; waiting would hold forever.
            self.waiting = false;
            out.extend(steps(wire, &WARM, snapshot));
        }
        out.extend(self.release(wire, snapshot));
        out
    }

    /// What waits, once every cluster is warm and Envoy has answered the
    /// last listener and route responses: a new one then carries whatever
    /// snapshots came meanwhile, so an Envoy slower to apply a large
    /// RouteConfiguration than portico is to publish never queues a backlog
    /// of them.
    fn release<W: Wire>(&mut self, wire: &mut W, snapshot: &Snapshot) -> Vec<W::Response> {
        let answered =
            !wire.unanswered(ResourceType::Listener) && !wire.unanswered(ResourceType::Route);
        if !self.waiting || !clusters_warm(wire, snapshot) || !answered {
            return Vec::new();
        }
        self.waiting = false;
        steps(wire, &WARM, snapshot)
    }
}

fn steps<W: Wire>(wire: &mut W, order: &[Push], snapshot: &Snapshot) -> Vec<W::Response> {
    order
        .iter()
        .filter_map(|step| wire.send(*step, snapshot))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::Bytes;

    use super::*;
    use crate::translate::encode::{EnvoyResources, Resource};

    /// A wire that sends every step and records it; endpoints count as sent
    /// when their step went out, unless `slow` (Envoy has not asked yet).
    #[derive(Default)]
    struct Recorder {
        sent: Vec<Push>,
        clusters: Option<Vec<String>>,
        endpoints: BTreeMap<String, String>,
        slow: bool,
    }

    impl Wire for Recorder {
        type Response = Push;
        fn send(&mut self, step: Push, snapshot: &Snapshot) -> Option<Push> {
            match (step.kind, step.part) {
                (ResourceType::Cluster, Part::Updates) => {
                    self.clusters = Some(
                        snapshot
                            .resources(ResourceType::Cluster)
                            .map(|r| r.name.clone())
                            .collect(),
                    );
                }
                (ResourceType::Endpoint, Part::Updates) if !self.slow => {
                    for r in snapshot.resources(ResourceType::Endpoint) {
                        self.endpoints.insert(r.name.clone(), r.version.clone());
                    }
                }
                _ => {}
            }
            self.sent.push(step);
            Some(step)
        }
        fn clusters(&self) -> Option<impl Iterator<Item = &str>> {
            self.clusters.as_ref().map(|c| c.iter().map(String::as_str))
        }
        fn endpoints_sent(&self, name: &str) -> Option<&str> {
            self.endpoints.get(name).map(String::as_str)
        }
    }

    fn snapshot(clusters: &[&str]) -> Snapshot {
        let list = || {
            clusters
                .iter()
                .map(|n| Resource {
                    name: (*n).into(),
                    body: Bytes::from_static(b"1"),
                })
                .collect()
        };
        Snapshot::from_resources(&EnvoyResources {
            clusters: list(),
            endpoints: list(),
            ..EnvoyResources::default()
        })
    }

    fn kinds(steps: &[Push]) -> Vec<(ResourceType, Part)> {
        steps.iter().map(|s| (s.kind, s.part)).collect()
    }

    /// A stream after a new snapshot whose endpoints Envoy has not asked for.
    fn waiting() -> (Recorder, PushOrder, Snapshot) {
        let mut wire = Recorder {
            slow: true,
            ..Recorder::default()
        };
        let mut order = PushOrder::default();
        let snap = snapshot(&["a"]);
        let out = order.on_snapshot(&mut wire, &snap);
        assert_eq!(kinds(&out), kinds(&FIRST), "what listeners need goes first");
        (wire, order, snap)
    }

    #[test]
    fn warm_clusters_let_everything_go_in_order() {
        let mut wire = Recorder::default();
        let mut order = PushOrder::default();
        let out = order.on_snapshot(&mut wire, &snapshot(&["a"]));
        let all: Vec<Push> = FIRST.iter().chain(WARM.iter()).copied().collect();
        assert_eq!(kinds(&out), kinds(&all));
        assert!(!order.holds(ResourceType::Listener));
    }

    #[test]
    fn listeners_and_routes_wait_for_endpoints() {
        let (mut wire, mut order, snap) = waiting();
        assert!(order.holds(ResourceType::Listener) && order.holds(ResourceType::Route));
        assert!(!order.holds(ResourceType::Cluster));
        assert!(order.after_request(&mut wire, &snap, None).is_empty());
        // Envoy asks for the endpoints and gets them: the rest follows.
        wire.endpoints.insert(
            "a".into(),
            snap.get(ResourceType::Endpoint, "a")
                .unwrap()
                .version
                .clone(),
        );
        assert_eq!(
            kinds(&order.after_request(&mut wire, &snap, None)),
            kinds(&WARM)
        );
        assert!(
            order.after_request(&mut wire, &snap, None).is_empty(),
            "once"
        );
    }

    #[test]
    fn a_rejected_cluster_response_ends_the_wait() {
        let (mut wire, mut order, snap) = waiting();
        let ack = Feedback::Ack {
            kind: ResourceType::Cluster,
            snapshot: snap.version(),
        };
        assert!(order.after_request(&mut wire, &snap, Some(&ack)).is_empty());
        let nack = Feedback::Nack {
            kind: ResourceType::Cluster,
            snapshot: snap.version(),
            message: "no".into(),
        };
        assert_eq!(
            kinds(&order.after_request(&mut wire, &snap, Some(&nack))),
            kinds(&WARM)
        );
        assert!(!order.holds(ResourceType::Route));
    }

    #[test]
    fn a_cluster_is_warm_with_the_endpoints_of_this_snapshot() {
        let snap = snapshot(&["a", "b"]);
        let mut wire = Recorder::default();
        assert!(clusters_warm(&wire, &snap), "no clusters subscribed");
        wire.clusters = Some(vec!["a".into(), "b".into(), "gone".into()]);
        assert!(!clusters_warm(&wire, &snap));
        let version = |n: &str| snap.get(ResourceType::Endpoint, n).unwrap().version.clone();
        wire.endpoints.insert("a".into(), version("a"));
        wire.endpoints.insert("b".into(), "old".into());
        assert!(!clusters_warm(&wire, &snap), "b has old endpoints");
        wire.endpoints.insert("b".into(), version("b"));
        assert!(
            clusters_warm(&wire, &snap),
            "a cluster without endpoints in the snapshot is warm"
        );
    }
}
