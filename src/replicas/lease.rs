//! The replica Leases: this replica's own, written when its Envoys' feedback
//! changes and every `HEARTBEAT`, deleted when it stops; and the others',
//! watched into `Peers`.
//!
//! A replica's Lease is named `<leader Lease>.<pod name>` and labelled
//! `portico.dev/replica-of=<leader Lease>`; `holderIdentity` is the pod name
//! and the report is in the `portico.dev/envoy-feedback` annotation.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{ANNOTATION, HEARTBEAT, LABEL, Peers, STALE, encode};
use crate::identity::FIELD_MANAGER;
use crate::xds::hub::Hub;

/// Feedback arriving within this window is published in one write.
const BATCH: Duration = Duration::from_millis(100);
/// How often peers are checked for going stale.
const CHECK: Duration = Duration::from_secs(5);

/// The name of the Lease of replica `pod` under leader Lease `leader`.
pub fn name(leader: &str, pod: &str) -> String {
    let name: String = format!("{leader}.{pod}").chars().take(253).collect();
    name.trim_end_matches(['.', '-']).to_string()
}

/// The `portico.dev/replica-of` value for leader Lease `leader`: a label
/// value has at most 63 characters.
pub fn label_value(leader: &str) -> String {
    let value: String = leader.chars().take(63).collect();
    value.trim_end_matches(['.', '-', '_']).to_string()
}

/// Publishes this replica's Envoy feedback in its Lease until `stop`, then
/// deletes the Lease (a stopped replica's Envoys reconnect elsewhere).
pub async fn publish(
    api: Api<Lease>,
    leader: String,
    pod: String,
    hub: Arc<Hub>,
    mut stop: watch::Receiver<bool>,
) {
    let name = name(&leader, &pod);
    let mut changes = hub.feedback_changes();
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    let mut written: Option<String> = None;
    loop {
        tokio::select! {
            r = changes.changed() => {
                if r.is_err() { break }
                tokio::time::sleep(BATCH).await;
            }
            _ = heartbeat.tick() => written = None,
            _ = stop.changed() => break,
        }
        changes.mark_unchanged();
        let report = encode(&hub.all_feedback());
        if written.as_ref() == Some(&report) {
            continue;
        }
        match write(&api, &name, &leader, &pod, &report).await {
            Ok(()) => written = Some(report),
            Err(e) => {
                tracing::warn!(lease = %name, error = %e, "publishing this replica's Envoy feedback; retrying")
            }
        }
    }
    match api.delete(&name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => {
            tracing::info!(lease = %name, error = %e, "deleting this replica's feedback Lease failed; the leader forgets it once stale")
        }
    }
}

async fn write(
    api: &Api<Lease>,
    name: &str,
    leader: &str,
    pod: &str,
    report: &str,
) -> Result<(), kube::Error> {
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(
                [
                    (LABEL.to_string(), label_value(leader)),
                    (
                        "app.kubernetes.io/managed-by".to_string(),
                        "portico".to_string(),
                    ),
                ]
                .into(),
            ),
            annotations: Some([(ANNOTATION.to_string(), report.to_string())].into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(pod.to_string()),
            lease_duration_seconds: Some(STALE.as_secs() as i32),
            // Only written, for humans; liveness is judged on the reader's clock.
            renew_time: Some(MicroTime(Timestamp::now())),
            ..LeaseSpec::default()
        }),
    };
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&lease),
    )
    .await
    .map(drop)
}

/// Watches the replica Leases of leader Lease `leader` into `peers`,
/// ticking `changed` whenever what the leader reads changes: a report, a
/// peer appearing, going stale or gone. Peer Leases unchanged for `FORGET`
/// are deleted.
pub async fn follow(
    api: Api<Lease>,
    leader: String,
    peers: Arc<Mutex<Peers>>,
    changed: watch::Sender<u64>,
) {
    let config = watcher::Config::default().labels(&format!("{LABEL}={}", label_value(&leader)));
    let events = watcher(api.clone(), config).default_backoff();
    let mut events = std::pin::pin!(events);
    let mut check = tokio::time::interval(CHECK);
    let mut listed: Vec<String> = Vec::new();
    let mut live: Vec<String> = Vec::new();
    loop {
        let reported = tokio::select! {
            event = events.next() => {
                let Some(event) = event else { return };
                let now = Instant::now();
                let mut peers = peers.lock().unwrap_or_else(PoisonError::into_inner);
                match event {
                    Ok(watcher::Event::Init) => {
                        listed.clear();
                        false
                    }
                    Ok(watcher::Event::InitApply(lease)) => {
                        listed.extend(lease.metadata.name.clone());
                        peers.saw(&lease, now)
                    }
                    Ok(watcher::Event::InitDone) => peers.keep_only(&listed, now),
                    Ok(watcher::Event::Apply(lease)) => peers.saw(&lease, now),
                    Ok(watcher::Event::Delete(lease)) => {
                        lease.metadata.name.as_deref().is_some_and(|n| peers.gone(n, now))
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "watching the replica Leases; retrying");
                        false
                    }
                }
            }
            _ = check.tick() => {
                let forgotten = peers
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .forgotten(Instant::now());
                for name in forgotten {
                    tracing::info!(lease = %name, "deleting the feedback Lease of a replica gone for good");
                    if let Err(e) = api.delete(&name, &DeleteParams::default()).await {
                        tracing::debug!(lease = %name, error = %e, "deleting a stale replica Lease");
                    }
                }
                false
            }
        };
        // A peer going stale changes what the leader reads as much as a new
        // report does.
        let names = peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .live_names(Instant::now());
        if reported || names != live {
            live = names;
            changed.send_modify(|n| *n += 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_api_and_never_split_a_character() {
        assert_eq!(
            name("portico-leader", "portico-7d9f-x2"),
            "portico-leader.portico-7d9f-x2"
        );
        let long = "é".repeat(300);
        assert_eq!(name(&long, "pod").chars().count(), 253);
        assert_eq!(
            label_value(&"-a".repeat(40)).chars().count(),
            62,
            "no trailing dash"
        );
        assert_eq!(label_value(&long).chars().count(), 63);
    }
}
