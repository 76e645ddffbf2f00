//! Envoy feedback shared between portico replicas.
//!
//! Every replica serves xDS, but only the leader writes statuses, and an
//! Envoy reports its ACKs and NACKs only to the replica it is connected to.
//! So each replica publishes what its own Envoys said (per Gateway: open
//! streams, last ACKed version, last NACK) in a Lease of its own in portico's
//! namespace (`lease`), renewed every `HEARTBEAT`, and reads the others'.
//! The leader judges a Gateway's `Programmed` on the feedback of every live
//! replica merged (`merged`): snapshot versions are content hashes, so an
//! Envoy on another replica that ACKed the version the leader serves holds
//! the same configuration. A replica whose Lease has not changed for `STALE`
//! (on this replica's monotonic clock) is gone: its Envoys reconnect
//! elsewhere and its report no longer counts.

pub mod lease;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use tokio::time::Instant;

use crate::leader::{Observed, Record, observe};
use crate::xds::hub::GatewayFeedback;

/// How often a replica renews its Lease even when nothing changed.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// A peer whose Lease stood still this long no longer counts.
pub const STALE: Duration = Duration::from_secs(30);
/// A peer's Lease that stood still this long is deleted (its replica is gone
/// for good; replicas get new names on every rollout).
pub const FORGET: Duration = Duration::from_secs(600);
/// The annotation holding a replica's report.
pub const ANNOTATION: &str = "portico.dev/envoy-feedback";
/// The label naming the leader Lease the replica Leases belong to.
pub const LABEL: &str = "portico.dev/replica-of";
/// At most this many bytes of an Envoy NACK message are shared.
const MESSAGE_LIMIT: usize = 1024;
/// Above this many bytes a report drops its NACK messages (the annotations
/// of an object may not exceed 256 KiB).
const REPORT_LIMIT: usize = 192 * 1024;

/// What one replica's Envoys said, by Gateway id.
pub type Report = BTreeMap<String, GatewayFeedback>;

/// A replica's report as its Lease annotation: NACK messages are cut to
/// `MESSAGE_LIMIT` bytes, and dropped altogether (the version stays) when
/// the report would pass `REPORT_LIMIT`.
pub fn encode(report: &Report) -> String {
    let mut shared = report.clone();
    for feedback in shared.values_mut() {
        if let Some((_, message)) = &mut feedback.rejected {
            cut(message, MESSAGE_LIMIT);
        }
    }
    let text = serde_json::to_string(&shared).unwrap_or_default();
    if text.len() <= REPORT_LIMIT {
        return text;
    }
    for feedback in shared.values_mut() {
        if let Some((_, message)) = &mut feedback.rejected {
            message.clear();
        }
    }
    serde_json::to_string(&shared).unwrap_or_default()
}

/// A peer's report from its Lease; `None` when the annotation is missing or
/// is not a report.
pub fn decode(lease: &Lease) -> Option<Report> {
    let text = lease.metadata.annotations.as_ref()?.get(ANNOTATION)?;
    serde_json::from_str(text).ok()
}

fn cut(text: &mut String, limit: usize) {
    if text.len() > limit {
        let mut end = limit;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// One Gateway's feedback as the leader judges it: its own (`own`, for the
/// version it serves, `serving`) and the live peers' (`peers`). Envoys count
/// only where they are connected (a replica without streams for the
/// Gateway has nothing to say); when no replica has any, the leader's own
/// feedback stands. Every connected replica must have ACKed `serving`,
/// otherwise the first that has not gives its ACK (so the Gateway is
/// pending). A NACK of `serving` from any replica is the rejection. Pure.
pub fn merged(
    own: &GatewayFeedback,
    serving: Option<&str>,
    peers: &[&GatewayFeedback],
) -> GatewayFeedback {
    let streams = own.streams + peers.iter().map(|p| p.streams).sum::<usize>();
    let all = || std::iter::once(own).chain(peers.iter().copied());
    let rejected = all()
        .filter_map(|f| f.rejected.as_ref())
        .find(|(version, _)| Some(version.as_str()) == serving)
        .or(own.rejected.as_ref())
        .cloned();
    let mut connected = all().filter(|f| f.streams > 0).peekable();
    if connected.peek().is_none() {
        return GatewayFeedback {
            streams,
            rejected,
            ..own.clone()
        };
    }
    let behind = connected.find(|f| f.acked.as_deref() != serving || serving.is_none());
    let acked = match behind {
        Some(f) => f.acked.clone(),
        None => serving.map(str::to_string),
    };
    GatewayFeedback {
        streams,
        acked,
        rejected,
    }
}

/// The other replicas' reports as this replica last saw them.
#[derive(Debug)]
pub struct Peers {
    me: String,
    seen: BTreeMap<String, Peer>,
}

#[derive(Debug)]
struct Peer {
    observed: Observed,
    report: Report,
}

impl Peers {
    /// `me`: this replica's own Lease name, never counted as a peer.
    pub fn new(me: &str) -> Self {
        Self {
            me: me.to_string(),
            seen: BTreeMap::new(),
        }
    }

    /// Takes a peer's Lease as seen at `now`; true when what the leader
    /// reads changed (a new peer, or a new report).
    pub fn saw(&mut self, lease: &Lease, now: Instant) -> bool {
        let Some(name) = lease.metadata.name.clone() else {
            return false;
        };
        if name == self.me {
            return false;
        }
        let report = decode(lease).unwrap_or_else(|| {
            tracing::warn!(lease = %name, "a replica's Envoy feedback is unreadable; counting it as empty");
            Report::new()
        });
        let previous = self.seen.remove(&name);
        let was_fresh = previous.as_ref().is_some_and(|p| fresh(&p.observed, now));
        let changed = !was_fresh || previous.as_ref().is_none_or(|p| p.report != report);
        let observed = observe(previous.map(|p| p.observed), Record::of(Some(lease)), now);
        self.seen.insert(name, Peer { observed, report });
        changed
    }

    /// Forgets a deleted peer Lease; true when it counted.
    pub fn gone(&mut self, name: &str, now: Instant) -> bool {
        self.seen
            .remove(name)
            .is_some_and(|p| fresh(&p.observed, now))
    }

    /// Forgets peers not listed by a relist; true when one of them counted.
    pub fn keep_only(&mut self, listed: &[String], now: Instant) -> bool {
        let gone: Vec<String> = self
            .seen
            .keys()
            .filter(|name| !listed.contains(name))
            .cloned()
            .collect();
        let mut counted = false;
        for name in &gone {
            counted |= self.gone(name, now);
        }
        counted
    }

    /// The reports of peers whose Lease changed within `STALE` of `now`.
    pub fn live(&self, now: Instant) -> Vec<&Report> {
        self.seen
            .values()
            .filter(|p| fresh(&p.observed, now))
            .map(|p| &p.report)
            .collect()
    }

    /// The names of the live peers at `now`, to notice one going stale.
    pub fn live_names(&self, now: Instant) -> Vec<String> {
        self.seen
            .iter()
            .filter(|(_, p)| fresh(&p.observed, now))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Peer Leases unchanged for `FORGET`: their replicas are gone.
    pub fn forgotten(&self, now: Instant) -> Vec<String> {
        self.seen
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.observed.since) >= FORGET)
            .map(|(name, _)| name.clone())
            .collect()
    }
}

fn fresh(observed: &Observed, now: Instant) -> bool {
    now.saturating_duration_since(observed.since) < STALE
}

/// The feedback of Gateway `id` from every live peer report.
pub fn of_gateway<'a>(reports: &[&'a Report], id: &str) -> Vec<&'a GatewayFeedback> {
    reports.iter().filter_map(|r| r.get(id)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    fn heard(streams: usize, acked: Option<&str>) -> GatewayFeedback {
        GatewayFeedback {
            streams,
            acked: acked.map(str::to_string),
            rejected: None,
        }
    }

    #[test]
    fn envoys_on_another_replica_program_the_gateway() {
        // The leader has no Envoy of this Gateway; the peer's ACKed v2.
        let own = GatewayFeedback::default();
        let peer = heard(2, Some("v2"));
        let m = merged(&own, Some("v2"), &[&peer]);
        assert_eq!(m.acked.as_deref(), Some("v2"));
        assert_eq!(m.streams, 2);
        // The peer's Envoys still hold v1: pending.
        let behind = heard(1, Some("v1"));
        assert_eq!(
            merged(&own, Some("v2"), &[&behind]).acked.as_deref(),
            Some("v1")
        );
    }

    #[test]
    fn every_connected_replica_must_have_acked() {
        let own = heard(1, Some("v2"));
        let behind = heard(1, Some("v1"));
        let idle = heard(0, Some("v0"));
        assert_eq!(
            merged(&own, Some("v2"), &[&behind]).acked.as_deref(),
            Some("v1")
        );
        // A replica without Envoys of the Gateway does not hold it back.
        assert_eq!(
            merged(&own, Some("v2"), &[&idle]).acked.as_deref(),
            Some("v2")
        );
        // Nobody connected: the leader's own word stands.
        let gone = heard(0, Some("v1"));
        assert_eq!(
            merged(&gone, Some("v2"), &[&idle]).acked.as_deref(),
            Some("v1")
        );
        // Nothing served yet: nobody has ACKed anything to compare.
        assert_eq!(
            merged(&heard(0, None), None, &[&heard(1, None)]).acked,
            None
        );
    }

    #[test]
    fn a_peer_nack_of_the_served_version_is_the_rejection() {
        let own = heard(1, Some("v1"));
        let mut peer = heard(1, Some("v1"));
        peer.rejected = Some(("v2".into(), "bad regex".into()));
        let m = merged(&own, Some("v2"), &[&peer]);
        assert_eq!(m.rejected, Some(("v2".into(), "bad regex".into())));
        // A NACK of an older version is not about what is served.
        peer.rejected = Some(("v0".into(), "old".into()));
        assert_eq!(merged(&own, Some("v2"), &[&peer]).rejected, None);
    }

    fn lease(name: &str, version: &str, report: &Report) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(name.into()),
                resource_version: Some(version.into()),
                annotations: Some([(ANNOTATION.to_string(), encode(report))].into()),
                ..ObjectMeta::default()
            },
            spec: None,
        }
    }

    #[test]
    fn a_peer_counts_while_its_lease_moves() {
        let t0 = Instant::now();
        let mut peers = Peers::new("leader.a");
        let report: Report = [("default/web".to_string(), heard(1, Some("v1")))].into();
        assert!(
            !peers.saw(&lease("leader.a", "1", &report), t0),
            "never itself"
        );
        assert!(peers.saw(&lease("leader.b", "1", &report), t0));
        assert_eq!(peers.live(t0).len(), 1);
        // A heartbeat with the same report: nothing for the leader to redo.
        assert!(!peers.saw(&lease("leader.b", "2", &report), t0 + HEARTBEAT));
        let later = t0 + HEARTBEAT + STALE;
        assert!(peers.live(later).is_empty(), "stood still past STALE");
        assert!(peers.forgotten(later).is_empty());
        assert_eq!(
            peers.forgotten(t0 + HEARTBEAT + FORGET),
            vec!["leader.b".to_string()]
        );
        // It moves again: live, and the leader must look again.
        assert!(peers.saw(&lease("leader.b", "3", &report), later));
        assert_eq!(peers.live(later).len(), 1);
        assert!(peers.keep_only(&[], later));
        assert!(peers.live(later).is_empty());
    }

    #[test]
    fn reports_stay_small_and_unreadable_ones_count_as_empty() {
        let mut big = Report::new();
        for i in 0..400 {
            let mut f = heard(1, Some("v1"));
            f.rejected = Some(("v2".into(), "é".repeat(2000)));
            big.insert(format!("ns/gw-{i}"), f);
        }
        let text = encode(&big);
        assert!(text.len() <= REPORT_LIMIT, "{}", text.len());
        let back: Report = serde_json::from_str(&text).expect("a report");
        assert_eq!(back.len(), 400);
        assert_eq!(
            back["ns/gw-1"].rejected.as_ref().map(|r| r.0.as_str()),
            Some("v2")
        );

        let mut small = Report::new();
        let mut f = heard(1, Some("v1"));
        f.rejected = Some(("v2".into(), "é".repeat(2000)));
        small.insert("ns/gw".into(), f);
        let back: Report = serde_json::from_str(&encode(&small)).expect("a report");
        let message = &back["ns/gw"].rejected.as_ref().expect("kept").1;
        assert!(message.len() <= MESSAGE_LIMIT && !message.is_empty());

        let mut broken = lease("leader.b", "1", &small);
        broken.metadata.annotations = Some([(ANNOTATION.to_string(), "{not json".into())].into());
        assert_eq!(decode(&broken), None);
        let mut peers = Peers::new("leader.a");
        assert!(peers.saw(&broken, Instant::now()));
        assert!(peers.live(Instant::now())[0].is_empty());
    }
}
