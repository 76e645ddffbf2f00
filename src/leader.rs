//! Lease-based leader election: one replica provisions and writes status;
//! every replica translates and serves xDS.
//!
//! In: the `coordination.k8s.io` Lease in portico's namespace. Out: a watch
//! channel that is `true` while this replica holds the Lease. The holder
//! renews every `RENEW`; another replica takes over once the Lease has not
//! been renewed for `DURATION`. A holder that cannot renew steps down before
//! the Lease runs out, and a stopping holder gives the Lease up.
//!
//! Expiry is judged on this replica's monotonic clock, never by comparing the
//! Lease's wall-clock `renewTime` with ours (clocks differ and jump): each
//! replica remembers when it last saw the Lease's record (holder, renewTime,
//! resourceVersion) change, and takes a held Lease only once that record has
//! stood still for the Lease's duration. A replica that has just started
//! therefore waits one duration before taking a Lease someone else holds.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::time::Instant;

pub const DURATION: Duration = Duration::from_secs(15);
pub const RENEW: Duration = Duration::from_secs(2);
/// A holder that has not renewed for this long stops acting as leader.
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);

/// What to do with the Lease as found.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Nobody holds it, or its holder let it expire: take it.
    Acquire,
    /// We hold it: renew it.
    Renew,
    /// Someone else holds it.
    Wait,
}

/// The part of a Lease whose change shows its holder is alive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub holder: Option<String>,
    pub renew_time: Option<Timestamp>,
    pub resource_version: Option<String>,
}

impl Record {
    pub fn of(lease: Option<&Lease>) -> Self {
        let spec = lease.and_then(|l| l.spec.as_ref());
        Self {
            holder: spec.and_then(|s| s.holder_identity.clone()),
            renew_time: spec.and_then(|s| s.renew_time.as_ref()).map(|t| t.0),
            resource_version: lease.and_then(|l| l.metadata.resource_version.clone()),
        }
    }
}

/// A record and when (monotonic) this replica first saw it as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub record: Record,
    pub since: Instant,
}

/// The observation after seeing `record` at `now`: an unchanged record keeps
/// the time it was first seen. Pure.
pub fn observe(previous: Option<Observed>, record: Record, now: Instant) -> Observed {
    match previous {
        Some(p) if p.record == record => p,
        _ => Observed { record, since: now },
    }
}

/// Decides from the Lease's holder and how long its record has stood still
/// on our monotonic clock (`observed`, at `now`). Pure.
pub fn step(spec: Option<&LeaseSpec>, me: &str, observed: &Observed, now: Instant) -> Step {
    let Some(spec) = spec else {
        return Step::Acquire;
    };
    match spec.holder_identity.as_deref() {
        Some(holder) if holder == me => Step::Renew,
        None | Some("") => Step::Acquire,
        Some(_) => {
            let duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(DURATION, Duration::from_secs);
            if now.saturating_duration_since(observed.since) < duration {
                Step::Wait
            } else {
                Step::Acquire
            }
        }
    }
}

pub struct Election {
    api: Api<Lease>,
    name: String,
    me: String,
    /// The Lease's record as last seen, and since when.
    observed: Option<Observed>,
}

impl Election {
    pub fn new(client: Client, namespace: &str, name: &str, me: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.into(),
            me: me.into(),
            observed: None,
        }
    }

    /// Campaigns until `stop` fires, publishing leadership on `leader`.
    pub async fn run(mut self, leader: watch::Sender<bool>, mut stop: watch::Receiver<bool>) {
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
    async fn round(&mut self) -> Result<bool, kube::Error> {
        let current = self.api.get_opt(&self.name).await?;
        let observed = observe(
            self.observed.take(),
            Record::of(current.as_ref()),
            Instant::now(),
        );
        let spec = current.as_ref().and_then(|l| l.spec.as_ref());
        let decided = step(spec, &self.me, &observed, Instant::now());
        self.observed = Some(observed);
        // Only written, for humans and other implementations; never compared.
        let now = Timestamp::now();
        match decided {
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
    use k8s_openapi::jiff::SignedDuration;

    fn spec(holder: Option<&str>, renewed: Timestamp) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_string),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(renewed)),
            ..LeaseSpec::default()
        }
    }

    fn record(spec: &LeaseSpec, version: u32) -> Record {
        Record {
            holder: spec.holder_identity.clone(),
            renew_time: spec.renew_time.as_ref().map(|t| t.0),
            resource_version: Some(version.to_string()),
        }
    }

    #[test]
    fn a_lease_is_taken_only_when_free_or_left_unrenewed() {
        let t0 = Instant::now();
        let wall = Timestamp::now();
        let held = spec(Some("b"), wall);
        let seen = observe(None, record(&held, 1), t0);
        assert_eq!(step(None, "a", &seen, t0), Step::Acquire);
        assert_eq!(
            step(Some(&spec(Some("a"), wall)), "a", &seen, t0),
            Step::Renew
        );
        assert_eq!(step(Some(&held), "a", &seen, t0), Step::Wait);
        assert_eq!(
            step(Some(&spec(None, wall)), "a", &seen, t0),
            Step::Acquire,
            "given up"
        );
        let later = t0 + Duration::from_secs(14);
        let seen = observe(Some(seen), record(&held, 1), later);
        assert_eq!(seen.since, t0, "an unchanged record keeps its time");
        assert_eq!(step(Some(&held), "a", &seen, later), Step::Wait);
        let expired = t0 + DURATION;
        let seen = observe(Some(seen), record(&held, 1), expired);
        assert_eq!(
            step(Some(&held), "a", &seen, expired),
            Step::Acquire,
            "unchanged for the Lease's duration: the holder is gone"
        );
    }

    #[test]
    fn a_wall_clock_jump_does_not_take_a_lease_that_is_renewed() {
        // Our wall clock jumped an hour ahead: by renewTime the Lease looks
        // long expired, but its holder keeps renewing it.
        let jumped_wall = Timestamp::now()
            .checked_add(SignedDuration::from_hours(1))
            .expect("time");
        let other_wall = Timestamp::now();
        let t0 = Instant::now();
        let mut seen: Option<Observed> = None;
        for round in 0..30u32 {
            let now = t0 + RENEW * round;
            let renewed = other_wall
                .checked_add(SignedDuration::from_secs(2 * i64::from(round)))
                .expect("time");
            assert!(renewed < jumped_wall);
            let held = spec(Some("b"), renewed);
            let o = observe(seen.take(), record(&held, round), now);
            assert_eq!(
                step(Some(&held), "a", &o, now),
                Step::Wait,
                "round {round}: the holder renews"
            );
            seen = Some(o);
        }
        // Then the holder dies: the record stands still.
        let last = t0 + RENEW * 29;
        let frozen = spec(
            Some("b"),
            other_wall
                .checked_add(SignedDuration::from_secs(58))
                .expect("time"),
        );
        let mut o = seen.expect("observed");
        for secs in 1..=14u64 {
            let now = last + Duration::from_secs(secs);
            o = observe(Some(o), record(&frozen, 29), now);
            assert_eq!(step(Some(&frozen), "a", &o, now), Step::Wait);
        }
        let now = last + DURATION;
        o = observe(Some(o), record(&frozen, 29), now);
        assert_eq!(step(Some(&frozen), "a", &o, now), Step::Acquire);
    }

    #[test]
    fn a_fresh_replica_waits_a_full_duration_even_for_an_old_renew_time() {
        let long_ago = Timestamp::now()
            .checked_sub(SignedDuration::from_hours(5))
            .expect("time");
        let held = spec(Some("b"), long_ago);
        let t0 = Instant::now();
        let o = observe(None, record(&held, 7), t0);
        assert_eq!(step(Some(&held), "a", &o, t0), Step::Wait);
        let now = t0 + DURATION;
        let o = observe(Some(o), record(&held, 7), now);
        assert_eq!(step(Some(&held), "a", &o, now), Step::Acquire);
    }
}
