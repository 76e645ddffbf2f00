//! Lease-based leader election: one replica provisions and writes status;
//! every replica translates and serves xDS.
//!
//! In: the `coordination.k8s.io` Lease in portico's namespace. Out: a watch
//! channel that is `true` while this replica holds the Lease. The holder
//! renews every `RENEW`; another replica takes over once the Lease has not
//! been renewed for `DURATION`. A holder that cannot renew steps down before
//! the Lease runs out, and a stopping holder gives the Lease up.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;

pub const DURATION: Duration = Duration::from_secs(15);
pub const RENEW: Duration = Duration::from_secs(2);
/// A holder that has not renewed for this long stops acting as leader.
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);

/// What to do with the Lease as found, for `me` at `now` (seconds).
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Nobody holds it, or its holder let it expire: take it.
    Acquire,
    /// We hold it: renew it.
    Renew,
    /// Someone else holds it.
    Wait,
}

/// Decides from the Lease's holder and last renewal. Pure.
pub fn step(spec: Option<&LeaseSpec>, me: &str, now: Timestamp) -> Step {
    let Some(spec) = spec else {
        return Step::Acquire;
    };
    match spec.holder_identity.as_deref() {
        Some(holder) if holder == me => Step::Renew,
        None | Some("") => Step::Acquire,
        Some(_) => {
            let duration = spec
                .lease_duration_seconds
                .map_or(DURATION.as_secs() as i64, i64::from);
            let renewed = spec.renew_time.as_ref().map(|t| t.0);
            match renewed {
                Some(t) if t.as_second() + duration > now.as_second() => Step::Wait,
                _ => Step::Acquire,
            }
        }
    }
}

pub struct Election {
    api: Api<Lease>,
    name: String,
    me: String,
}

impl Election {
    pub fn new(client: Client, namespace: &str, name: &str, me: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.into(),
            me: me.into(),
        }
    }

    /// Campaigns until `stop` fires, publishing leadership on `leader`.
    pub async fn run(self, leader: watch::Sender<bool>, mut stop: watch::Receiver<bool>) {
        let mut last_renewed: Option<tokio::time::Instant> = None;
        loop {
            match self.round().await {
                Ok(true) => last_renewed = Some(tokio::time::Instant::now()),
                Ok(false) => last_renewed = None,
                Err(e) => tracing::info!(error = %e, "leader election round failed"),
            }
            let leading = last_renewed.is_some_and(|t| t.elapsed() < RENEW_DEADLINE);
            leader.send_if_modified(|l| {
                let changed = *l != leading;
                if changed {
                    tracing::info!(leading, "leadership changed");
                }
                *l = leading;
                changed
            });
            tokio::select! {
                _ = tokio::time::sleep(RENEW) => {}
                _ = stop.changed() => break,
            }
        }
        if *leader.borrow() {
            leader.send_replace(false);
            if let Err(e) = self.release().await {
                tracing::info!(error = %e, "giving up the Lease failed; it expires on its own");
            }
        }
    }

    /// One attempt; Ok(true) when we hold the Lease afterwards.
    async fn round(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let current = self.api.get_opt(&self.name).await?;
        let spec = current.as_ref().and_then(|l| l.spec.as_ref());
        match step(spec, &self.me, now) {
            Step::Wait => Ok(false),
            Step::Renew => {
                let mut lease = current.unwrap_or_default();
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                spec.renew_time = Some(MicroTime(now));
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await?;
                Ok(true)
            }
            Step::Acquire => {
                let transitions = spec.and_then(|s| s.lease_transitions).unwrap_or(0);
                let fresh = LeaseSpec {
                    holder_identity: Some(self.me.clone()),
                    lease_duration_seconds: Some(DURATION.as_secs() as i32),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(transitions + i32::from(current.is_some())),
                    ..LeaseSpec::default()
                };
                match current {
                    Some(mut lease) => {
                        lease.spec = Some(fresh);
                        // resourceVersion makes this fail if another replica got there first.
                        self.api
                            .replace(&self.name, &PostParams::default(), &lease)
                            .await?;
                    }
                    None => {
                        let lease = Lease {
                            metadata: ObjectMeta {
                                name: Some(self.name.clone()),
                                ..ObjectMeta::default()
                            },
                            spec: Some(fresh),
                        };
                        self.api.create(&PostParams::default(), &lease).await?;
                    }
                }
                tracing::info!(holder = %self.me, "acquired the leader Lease");
                Ok(true)
            }
        }
    }

    async fn release(&self) -> Result<(), kube::Error> {
        if let Some(mut lease) = self.api.get_opt(&self.name).await?
            && let Some(spec) = lease.spec.as_mut()
            && spec.holder_identity.as_deref() == Some(self.me.as_str())
        {
            spec.holder_identity = None;
            spec.renew_time = None;
            self.api
                .replace(&self.name, &PostParams::default(), &lease)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, renewed_secs_ago: i64) -> LeaseSpec {
        let now = Timestamp::now();
        LeaseSpec {
            holder_identity: holder.map(str::to_string),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(
                now.checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(
                    renewed_secs_ago,
                ))
                .expect("time"),
            )),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_lease_is_taken_only_when_free_or_expired() {
        let now = Timestamp::now();
        assert_eq!(step(None, "a", now), Step::Acquire);
        assert_eq!(step(Some(&lease(Some("a"), 3)), "a", now), Step::Renew);
        assert_eq!(step(Some(&lease(Some("b"), 3)), "a", now), Step::Wait);
        assert_eq!(step(Some(&lease(Some("b"), 20)), "a", now), Step::Acquire);
        assert_eq!(step(Some(&lease(None, 1)), "a", now), Step::Acquire);
    }
}
