//! Full ConfigMaps and Secrets only for the ones portico references.
//!
//! A cluster may hold thousands of large ConfigMaps and Secrets, of which
//! translation reads the few that a listener (`certificateRefs`: TLS
//! Secrets) or a BackendTLSPolicy (`caCertificateRefs`: ConfigMaps) names.
//! So each of the two kinds is watched metadata only, cluster-wide (a
//! `PartialObjectMeta` per object, `managedFields` and the last-applied
//! annotation stripped), and a follower keeps the full objects of the
//! wanted keys alone.
//!
//! In: the kind's metadata watch events, and the wanted keys, handed over by
//! the batcher from the `Relevance` of each snapshot ([`Referenced::want`]).
//! Out: [`Referenced::full`], a store of the wanted objects that exist, read
//! by the snapshot as `Inputs::secrets` / `Inputs::config_maps`, and a
//! translation wake-up whenever that store changes. A wanted object is
//! fetched with a GET when it becomes wanted or its listed `resourceVersion`
//! moves; it is dropped once it is no longer wanted or no longer listed. A
//! failed GET is logged and retried with back-off (`retry`).
//!
//! Order: the wanted keys come from a snapshot, so the batcher builds the
//! snapshot, computes its relevance and, when the wanted keys changed, waits
//! until the follower has tried every newly wanted key once, then puts the
//! full objects into that snapshot before publishing it. The first snapshot
//! therefore holds the referenced objects that exist (a restart never serves
//! a listener without its certificate), and so does the snapshot that first
//! references an object. An object whose GET failed, or is still running
//! after `SETTLE_WAIT`, arrives later, with the snapshot its fetch wakes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::core::{NamespaceResourceScope, PartialObjectMeta};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::time::Instant;

use super::watches::strip;
use super::{ObjectKey, retry};

/// How long one GET may take before it counts as failed.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// How many GETs run at once.
const FETCH_CONCURRENCY: usize = 8;
/// How long the batcher waits for newly wanted objects before it publishes
/// a snapshot without the ones still on their way.
pub const SETTLE_WAIT: Duration = Duration::from_secs(5);

/// The kinds followed: namespaced, typed, readable by a watch and a GET.
pub trait Kind:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Default
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
}

// The kinds followed by reference; the bounds above are checked here.
impl Kind for ConfigMap {}
impl Kind for Secret {}

/// Reads one object in full: `Ok(None)` when it does not exist.
pub trait Fetch<K>: Send + Sync + 'static {
    fn fetch(&self, key: &ObjectKey) -> impl Future<Output = Result<Option<K>, String>> + Send;
}

/// The production fetch: a GET in the object's namespace.
pub struct ApiFetch(pub Client);

impl<K: Kind> Fetch<K> for ApiFetch {
    fn fetch(&self, key: &ObjectKey) -> impl Future<Output = Result<Option<K>, String>> + Send {
        let api: Api<K> = Api::namespaced(self.0.clone(), &key.namespace);
        let name = key.name.clone();
        async move { api.get_opt(&name).await.map_err(|e| e.to_string()) }
    }
}

/// The wanted keys, numbered so that the batcher can wait for the follower.
#[derive(Clone, Debug, Default)]
struct Wanted {
    round: u64,
    keys: BTreeSet<ObjectKey>,
}

/// The batcher's handle on one kind's follower.
#[derive(Clone)]
pub struct Referenced<K: Kind> {
    /// Full objects: the wanted ones that exist.
    pub full: Store<K>,
    /// Metadata of every object the watch lists.
    pub listed: Store<PartialObjectMeta<K>>,
    wanted: watch::Sender<Wanted>,
    settled: watch::Receiver<u64>,
}

impl<K: Kind> Referenced<K> {
    /// Wants exactly `keys`. When they differ from the keys wanted before,
    /// returns once the follower has tried each of them, or after
    /// `SETTLE_WAIT` (true: `full` may have changed); otherwise at once
    /// (false).
    pub async fn want(&self, keys: &BTreeSet<ObjectKey>) -> bool {
        let mut round = None;
        self.wanted.send_if_modified(|w| {
            if w.keys == *keys {
                return false;
            }
            w.round += 1;
            w.keys = keys.clone();
            round = Some(w.round);
            true
        });
        let Some(round) = round else {
            return false;
        };
        let mut settled = self.settled.clone();
        // A follower that has stopped has nothing more to give; a slow one
        // brings the rest with a later snapshot.
        let settling = settled.wait_for(|r| *r >= round);
        if tokio::time::timeout(SETTLE_WAIT, settling).await.is_err() {
            tracing::warn!(kind = %K::kind(&()), waited = ?SETTLE_WAIT, "referenced objects still being read; publishing without them");
        }
        true
    }
}

/// Watches `K`'s metadata cluster-wide (narrowed by `config`) and follows
/// the wanted objects with GETs; `wake` is bumped when the full store
/// changes. Poll the future for it to run.
pub fn watch<K: Kind>(
    client: Client,
    config: watcher::Config,
    wake: watch::Sender<u64>,
) -> (Referenced<K>, impl Future<Output = ()> + Send + 'static) {
    let events =
        watcher(Api::<PartialObjectMeta<K>>::all(client.clone()), config).default_backoff();
    follow(events, ApiFetch(client), wake)
}

/// The follower of `events` (metadata watch events of one kind), reading
/// full objects with `fetch`.
pub fn follow<K, S, F>(
    events: S,
    fetch: F,
    wake: watch::Sender<u64>,
) -> (Referenced<K>, impl Future<Output = ()> + Send + 'static)
where
    K: Kind,
    S: Stream<Item = Result<watcher::Event<PartialObjectMeta<K>>, watcher::Error>> + Send + 'static,
    F: Fetch<K>,
{
    let (listed, listed_writer) = reflector::store();
    let (full, writer) = reflector::store();
    let (wanted_tx, wanted) = watch::channel(Wanted::default());
    let (settled_tx, settled) = watch::channel(0);
    let follower = Follower {
        fetch,
        listed: listed.clone(),
        full: full.clone(),
        writer,
        wanted,
        settled: settled_tx,
        wake,
        retries: BTreeMap::new(),
    };
    let events = reflector::reflector(listed_writer, events.modify(strip::<PartialObjectMeta<K>>));
    let handle = Referenced {
        full,
        listed,
        wanted: wanted_tx,
        settled,
    };
    (handle, follower.run(events))
}

/// When an object whose GET failed is tried again.
#[derive(Clone, Copy, Debug)]
struct Retry {
    at: Instant,
    next: Duration,
}

struct Follower<K: Kind, F> {
    fetch: F,
    listed: Store<PartialObjectMeta<K>>,
    full: Store<K>,
    writer: reflector::store::Writer<K>,
    wanted: watch::Receiver<Wanted>,
    settled: watch::Sender<u64>,
    wake: watch::Sender<u64>,
    retries: BTreeMap<ObjectKey, Retry>,
}

impl<K: Kind, F: Fetch<K>> Follower<K, F> {
    /// Brings the full store in line, once the metadata is listed, after
    /// every change that may concern it: a wanted object's metadata event, a
    /// relist, new wanted keys, a retry coming due. Returns when the watch
    /// or the batcher is gone.
    async fn run<S>(mut self, events: S)
    where
        S: Stream<Item = Result<watcher::Event<PartialObjectMeta<K>>, watcher::Error>> + Send,
    {
        let kind = K::kind(&()).to_string();
        let mut events = std::pin::pin!(events);
        // Nothing is settled before the first list: the keys would read as absent.
        let mut listed = false;
        let mut due = false;
        loop {
            if due && listed {
                self.pass(&kind).await;
            }
            let retry_at = self.retries.values().map(|r| r.at).min();
            due = tokio::select! {
                event = events.next() => match event {
                    None => return,
                    Some(Ok(watcher::Event::Apply(o) | watcher::Event::Delete(o))) => {
                        self.wanted.borrow().keys.contains(&ObjectKey::of(&o))
                    }
                    Some(Ok(watcher::Event::InitDone)) => {
                        listed = true;
                        true
                    }
                    Some(Ok(_)) => false,
                    Some(Err(e)) => {
                        tracing::warn!(%kind, error = %e, "metadata watch failed; retrying");
                        false
                    }
                },
                changed = self.wanted.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    true
                }
                _ = until(retry_at) => true,
            };
        }
    }

    /// One round: drops what is no longer wanted or listed, fetches what is
    /// wanted and stale, wakes translation if the full store changed, and
    /// reports the wanted round as settled.
    async fn pass(&mut self, kind: &str) {
        let wanted = self.wanted.borrow_and_update().clone();
        let mut changed = self.drop_unwanted(&wanted.keys);
        let due = self.due(&wanted.keys);
        let fetch = &self.fetch;
        let fetched: Vec<_> = futures::stream::iter(due)
            .map(|key| async move {
                let result = tokio::time::timeout(FETCH_TIMEOUT, fetch.fetch(&key))
                    .await
                    .unwrap_or_else(|_| Err(format!("no answer in {FETCH_TIMEOUT:?}")));
                (key, result)
            })
            .buffer_unordered(FETCH_CONCURRENCY)
            .collect()
            .await;
        for (key, result) in fetched {
            changed |= self.take(kind, key, result);
        }
        if changed {
            self.wake.send_modify(|n| *n += 1);
        }
        self.settled.send_replace(wanted.round);
    }

    /// Removes held objects that are no longer wanted or listed.
    fn drop_unwanted(&mut self, wanted: &BTreeSet<ObjectKey>) -> bool {
        let mut changed = false;
        for held in self.full.state() {
            let key = ObjectKey::of(held.as_ref());
            if !wanted.contains(&key) || self.listed.get(&object_ref(&key)).is_none() {
                self.writer
                    .apply_watcher_event(&watcher::Event::Delete(stub(&key)));
                changed = true;
            }
        }
        changed
    }

    /// The wanted keys to GET now: listed, not held at the listed
    /// `resourceVersion`, and not waiting for a retry. Forgets retries of
    /// keys that no longer need one.
    fn due(&mut self, wanted: &BTreeSet<ObjectKey>) -> Vec<ObjectKey> {
        let stale: BTreeSet<ObjectKey> = wanted.iter().filter(|k| self.stale(k)).cloned().collect();
        self.retries.retain(|k, _| stale.contains(k));
        let now = Instant::now();
        stale
            .into_iter()
            .filter(|k| self.retries.get(k).is_none_or(|r| r.at <= now))
            .collect()
    }

    /// Whether `key` is listed and not held at its listed version.
    fn stale(&self, key: &ObjectKey) -> bool {
        let Some(listed) = self.listed.get(&object_ref(key)) else {
            return false;
        };
        self.full
            .get(&object_ref(key))
            .is_none_or(|held| held.meta().resource_version != listed.metadata.resource_version)
    }

    /// Stores a fetched object, or schedules a retry; true if the full
    /// store changed.
    fn take(&mut self, kind: &str, key: ObjectKey, result: Result<Option<K>, String>) -> bool {
        match result {
            Ok(Some(mut o)) => {
                self.retries.remove(&key);
                // A GET may be ahead of the metadata watch: the same version
                // fetched again changes nothing.
                let held = self.full.get(&object_ref(&key));
                if held.is_some_and(|h| h.meta().resource_version == o.meta().resource_version) {
                    return false;
                }
                strip(&mut o);
                self.writer.apply_watcher_event(&watcher::Event::Apply(o));
                true
            }
            Ok(None) => {
                // Listed but gone: its deletion is on its way; until then, retry.
                let wait = self.retry_later(&key);
                tracing::debug!(%kind, object = %key, retry_in = ?wait, "a referenced object listed but not found");
                let held = self.full.get(&object_ref(&key)).is_some();
                if held {
                    self.writer
                        .apply_watcher_event(&watcher::Event::Delete(stub(&key)));
                }
                held
            }
            Err(error) => {
                let wait = self.retry_later(&key);
                tracing::warn!(%kind, object = %key, %error, retry_in = ?wait, "reading a referenced object failed");
                false
            }
        }
    }

    /// Schedules the next GET of `key`, backing off; returns the wait.
    fn retry_later(&mut self, key: &ObjectKey) -> Duration {
        let wait = self.retries.get(key).map_or(retry::FIRST, |r| r.next);
        self.retries.insert(
            key.clone(),
            Retry {
                at: Instant::now() + wait,
                next: retry::after(wait),
            },
        );
        wait
    }
}

/// Resolves at `at`, never without one.
async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn object_ref<K: Resource<DynamicType = ()>>(key: &ObjectKey) -> ObjectRef<K> {
    ObjectRef::new(&key.name).within(&key.namespace)
}

/// An object that is only a key: what a store needs to remove one.
fn stub<K: Kind>(key: &ObjectKey) -> K {
    let mut o = K::default();
    o.meta_mut().namespace = Some(key.namespace.clone());
    o.meta_mut().name = Some(key.name.clone());
    o
}

/// A fake API server's GETs and the metadata watch events it sends, for
/// tests here and of the batcher.
#[cfg(test)]
pub(crate) mod fake {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use futures::channel::mpsc;
    use kube::api::ObjectMeta;
    use kube::core::PartialObjectMetaExt;

    use super::*;

    /// Objects a GET finds, failures to answer first (`None`: no answer
    /// ever), and the GETs made.
    pub struct Server<K> {
        objects: Arc<Mutex<BTreeMap<ObjectKey, K>>>,
        failures: Arc<Mutex<VecDeque<Option<String>>>>,
        calls: Arc<Mutex<Vec<(ObjectKey, Instant)>>>,
    }

    impl<K> Clone for Server<K> {
        fn clone(&self) -> Self {
            Self {
                objects: Arc::clone(&self.objects),
                failures: Arc::clone(&self.failures),
                calls: Arc::clone(&self.calls),
            }
        }
    }

    impl<K> Default for Server<K> {
        fn default() -> Self {
            Self {
                objects: Arc::default(),
                failures: Arc::default(),
                calls: Arc::default(),
            }
        }
    }

    impl<K: Kind> Server<K> {
        pub fn put(&self, o: K) {
            let key = ObjectKey::of(&o);
            self.objects.lock().expect("objects").insert(key, o);
        }

        pub fn remove(&self, key: &ObjectKey) {
            self.objects.lock().expect("objects").remove(key);
        }

        pub fn fail_next(&self, error: &str) {
            self.failures
                .lock()
                .expect("failures")
                .push_back(Some(error.to_string()));
        }

        pub fn stall_next(&self) {
            self.failures.lock().expect("failures").push_back(None);
        }

        pub fn calls(&self) -> Vec<(ObjectKey, Instant)> {
            self.calls.lock().expect("calls").clone()
        }
    }

    impl<K: Kind> Fetch<K> for Server<K> {
        fn fetch(&self, key: &ObjectKey) -> impl Future<Output = Result<Option<K>, String>> + Send {
            self.calls
                .lock()
                .expect("calls")
                .push((key.clone(), Instant::now()));
            let failure = self.failures.lock().expect("failures").pop_front();
            let answer = match failure {
                Some(Some(e)) => Some(Err(e)),
                Some(None) => None,
                None => Some(Ok(self.objects.lock().expect("objects").get(key).cloned())),
            };
            async move {
                match answer {
                    Some(answer) => answer,
                    None => std::future::pending().await,
                }
            }
        }
    }

    pub type Event<K> = Result<watcher::Event<PartialObjectMeta<K>>, watcher::Error>;

    /// The watch side: send metadata events into a running follower.
    pub struct Watch<K>(pub mpsc::UnboundedSender<Event<K>>);

    impl<K: Kind> Watch<K> {
        pub fn send(&self, event: watcher::Event<PartialObjectMeta<K>>) {
            self.0.unbounded_send(Ok(event)).expect("follower alive");
        }

        /// A complete list of `objects`.
        pub fn list(&self, objects: impl IntoIterator<Item = PartialObjectMeta<K>>) {
            self.send(watcher::Event::Init);
            for o in objects {
                self.send(watcher::Event::InitApply(o));
            }
            self.send(watcher::Event::InitDone);
        }
    }

    /// Metadata of `namespace/name` at `version`, with managed fields.
    pub fn meta<K>(namespace: &str, name: &str, version: &str) -> PartialObjectMeta<K> {
        ObjectMeta {
            namespace: Some(namespace.into()),
            name: Some(name.into()),
            resource_version: Some(version.into()),
            managed_fields: Some(vec![Default::default()]),
            ..ObjectMeta::default()
        }
        .into_response_partial()
    }

    /// A follower on a fake watch and `server`, running in its own task.
    pub fn start<K: Kind>(
        server: &Server<K>,
        wake: watch::Sender<u64>,
    ) -> (Referenced<K>, Watch<K>, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded();
        let (handle, run) = follow(rx, server.clone(), wake);
        (handle, Watch(tx), tokio::spawn(run))
    }

    /// A follower whose watch listed nothing.
    pub fn empty<K: Kind>(
        wake: watch::Sender<u64>,
    ) -> (Referenced<K>, tokio::task::JoinHandle<()>) {
        let listed = [Ok(watcher::Event::Init), Ok(watcher::Event::InitDone)];
        // The follower ends with its watch: this one stays open.
        let events = futures::stream::iter(listed).chain(futures::stream::pending());
        let (handle, run) = follow(events, Server::default(), wake);
        (handle, tokio::spawn(run))
    }

    /// Waits (up to 5 s) until `done` holds.
    pub async fn eventually(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;

    use super::fake::{Server, eventually, meta, start};
    use super::*;

    fn config_map(name: &str, version: &str, data: &str) -> ConfigMap {
        let mut c = ConfigMap::default();
        c.metadata.namespace = Some("web".into());
        c.metadata.name = Some(name.into());
        c.metadata.resource_version = Some(version.into());
        c.metadata.managed_fields = Some(vec![Default::default()]);
        c.data = Some(BTreeMap::from([("ca.crt".to_string(), data.to_string())]));
        c
    }

    fn data(store: &Store<ConfigMap>, name: &str) -> Option<String> {
        store
            .get(&object_ref(&ObjectKey::new("web", name)))
            .and_then(|c| c.data.as_ref()?.get("ca.crt").cloned())
    }

    fn keys(names: &[&str]) -> BTreeSet<ObjectKey> {
        names.iter().map(|n| ObjectKey::new("web", *n)).collect()
    }

    fn fetched(server: &Server<ConfigMap>) -> Vec<String> {
        server.calls().into_iter().map(|(k, _)| k.name).collect()
    }

    #[tokio::test]
    async fn only_referenced_objects_are_held_in_full() {
        let server = Server::default();
        let big = "x".repeat(100 * 1024);
        server.put(config_map("ca", "7", &big));
        let (wake, _wake_rx) = watch::channel(0);
        let (referenced, watch, task) = start(&server, wake);
        let others = (0..5000).map(|i| meta("web", &format!("other-{i}"), "1"));
        watch.list(others.chain([meta("web", "ca", "7")]));
        referenced.listed.wait_until_ready().await.expect("listed");
        assert!(referenced.want(&keys(&["ca"])).await, "newly wanted");
        assert_eq!(
            referenced.listed.state().len(),
            5001,
            "every object by metadata"
        );
        assert!(
            referenced.listed.state().iter().all(|m| m
                .metadata
                .managed_fields
                .as_ref()
                .is_none_or(|f| f.is_empty())),
            "metadata stripped"
        );
        assert_eq!(
            referenced.full.state().len(),
            1,
            "only the referenced one in full"
        );
        assert_eq!(data(&referenced.full, "ca").as_deref(), Some(big.as_str()));
        let held = referenced
            .full
            .get(&object_ref(&ObjectKey::new("web", "ca")))
            .expect("held");
        assert!(
            held.metadata
                .managed_fields
                .as_ref()
                .is_none_or(|f| f.is_empty())
        );
        assert_eq!(
            fetched(&server),
            ["ca"],
            "one GET, of the referenced object"
        );
        assert!(!referenced.want(&keys(&["ca"])).await, "unchanged: no wait");
        task.abort();
    }

    #[tokio::test]
    async fn a_referenced_change_is_fetched_and_an_unreferenced_one_is_not() {
        let server = Server::default();
        server.put(config_map("ca", "1", "one"));
        let (wake, mut wake_rx) = watch::channel(0);
        let (referenced, watch, task) = start(&server, wake);
        watch.list([meta("web", "ca", "1"), meta("web", "other", "1")]);
        referenced.want(&keys(&["ca"])).await;
        assert_eq!(data(&referenced.full, "ca").as_deref(), Some("one"));
        wake_rx.mark_unchanged();

        watch.send(watcher::Event::Apply(meta("web", "other", "2")));
        server.put(config_map("ca", "2", "two"));
        watch.send(watcher::Event::Apply(meta("web", "ca", "2")));
        tokio::time::timeout(Duration::from_secs(5), wake_rx.changed())
            .await
            .expect("translation woken")
            .expect("follower alive");
        assert_eq!(data(&referenced.full, "ca").as_deref(), Some("two"));
        assert_eq!(
            fetched(&server),
            ["ca", "ca"],
            "the unreferenced change fetched nothing"
        );

        watch.send(watcher::Event::Apply(meta("web", "ca", "2")));
        watch.send(watcher::Event::Delete(meta("web", "other", "2")));
        server.put(config_map("ca", "3", "three"));
        watch.send(watcher::Event::Apply(meta("web", "ca", "3")));
        eventually("version 3 fetched", || {
            data(&referenced.full, "ca").as_deref() == Some("three")
        })
        .await;
        assert_eq!(
            fetched(&server).len(),
            3,
            "the same version is not fetched again"
        );
        task.abort();
    }

    #[tokio::test]
    async fn an_object_losing_its_reference_or_deleted_is_dropped() {
        let server = Server::default();
        server.put(config_map("a", "1", "a"));
        server.put(config_map("b", "1", "b"));
        let (wake, mut wake_rx) = watch::channel(0);
        let (referenced, watch, task) = start(&server, wake);
        watch.list([meta("web", "a", "1"), meta("web", "b", "1")]);
        referenced.want(&keys(&["a", "b"])).await;
        assert_eq!(referenced.full.state().len(), 2);

        assert!(referenced.want(&keys(&["a"])).await);
        assert!(
            data(&referenced.full, "b").is_none(),
            "no longer referenced: dropped"
        );
        assert!(data(&referenced.full, "a").is_some());

        wake_rx.mark_unchanged();
        server.remove(&ObjectKey::new("web", "a"));
        watch.send(watcher::Event::Delete(meta("web", "a", "1")));
        tokio::time::timeout(Duration::from_secs(5), wake_rx.changed())
            .await
            .expect("translation woken")
            .expect("follower alive");
        assert!(referenced.full.state().is_empty(), "deleted: dropped");

        // Referenced again once it exists again; a relist without it drops it.
        server.put(config_map("a", "5", "again"));
        watch.send(watcher::Event::Apply(meta("web", "a", "5")));
        eventually("recreated and fetched", || {
            data(&referenced.full, "a").is_some()
        })
        .await;
        watch.list([meta("web", "b", "1")]);
        eventually("gone from the relist", || {
            referenced.full.state().is_empty()
        })
        .await;
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_get_is_retried_with_back_off() {
        let server = Server::default();
        server.put(config_map("ca", "1", "one"));
        server.fail_next("connection refused");
        server.fail_next("503 Service Unavailable");
        server.fail_next("timed out");
        let (wake, _wake_rx) = watch::channel(0);
        let (referenced, watch, task) = start(&server, wake);
        watch.list([meta("web", "ca", "1")]);
        let start = Instant::now();
        assert!(
            referenced.want(&keys(&["ca"])).await,
            "settled after one try"
        );
        assert!(referenced.full.state().is_empty(), "not fetched yet");
        eventually("fetched at last", || data(&referenced.full, "ca").is_some()).await;
        let at: Vec<u128> = server
            .calls()
            .iter()
            .map(|(_, t)| (*t - start).as_millis())
            .collect();
        assert_eq!(at, [0, 500, 1500, 3500], "0.5 s, doubling");
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_get_without_answer_holds_the_batcher_back_only_so_long() {
        let server = Server::default();
        server.put(config_map("ca", "1", "one"));
        server.stall_next();
        let (wake, mut wake_rx) = watch::channel(0);
        let (referenced, watch, task) = start(&server, wake);
        watch.list([meta("web", "ca", "1")]);
        let start = Instant::now();
        assert!(referenced.want(&keys(&["ca"])).await);
        assert_eq!(start.elapsed(), SETTLE_WAIT, "published without it");
        assert!(referenced.full.state().is_empty());
        wake_rx.mark_unchanged();
        wake_rx.changed().await.expect("woken once it arrives");
        assert_eq!(data(&referenced.full, "ca").as_deref(), Some("one"));
        let at: Vec<Duration> = server.calls().iter().map(|(_, t)| *t - start).collect();
        assert_eq!(
            at,
            [Duration::ZERO, FETCH_TIMEOUT + retry::FIRST],
            "the GET timed out, then was retried"
        );
        task.abort();
    }
}
