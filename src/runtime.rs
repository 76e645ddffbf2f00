//! `portico run`: the operator on Kubernetes, wired from the pipeline's parts.
//!
//! Tasks: the kube source (reflectors and batching) → the translator (every
//! replica: translate, publish to the xDS hub) → the leader's sinks
//! (provisioner and status writer, woken by new outputs, fleet changes,
//! Envoy feedback, leadership and a periodic resync); the ADS server over
//! mutual TLS with a CA kept in a Secret of portico's namespace (watched: on
//! each change a changed bundle is trusted at once, a changed signing CA
//! reissues the server certificate and every Gateway's) and a server
//! certificate renewed in place, under `RunSettings::xds_limits`; Lease
//! leader election; the admin server (`/healthz`, `/readyz` once the first
//! snapshot is served and xDS listens, which needs API discovery to have
//! answered once, `/metrics`; bounded by `admin`'s limits). SIGTERM or
//! SIGINT stops everything, giving up the Lease.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use futures::{Stream, StreamExt};
use k8s_openapi::ByteString;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::watch;

use crate::events::GatewayEvents;
use crate::identity::gateway_id;
use crate::inputs::watches::{self, Stores};
use crate::inputs::{Inputs, Kind, ObjectKey};
use crate::leader::Election;
use crate::metrics::{ControlMetrics, Metrics};
use crate::pki::Authority;
use crate::provision::apply::{LiveFleet, Provisioner};
use crate::provision::desired::{Settings, fleet_name};
use crate::replicas::{self, Peers};
use crate::status::gateway::Observed;
use crate::status::memo::Memo;
use crate::status::plan;
use crate::status::writer::StatusWriter;
use crate::translate::{self, Outputs};
use crate::translator::Translator;
use crate::xds::hub::{self, GatewayFeedback, Hub};
use crate::xds::{server, tls};

/// How often everything is re-applied and re-checked even without events.
pub const RESYNC: Duration = Duration::from_secs(300);
/// How often the xDS server certificate is checked for renewal.
const CERT_CHECK: Duration = Duration::from_secs(600);

#[derive(Clone, Debug)]
pub struct RunSettings {
    /// portico's namespace (the CA Secret and the Lease live here).
    pub namespace: String,
    /// This replica's identity in the Lease.
    pub pod_name: String,
    pub xds_listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// Envoy settings: image, and where Envoys reach the xDS Service.
    pub fleet: Settings,
    pub ca_secret: String,
    pub lease: String,
    /// What Envoys (or anything else) may take from the xDS server.
    pub xds_limits: server::Limits,
}

type Translated = Option<(Arc<Inputs>, Arc<Outputs>)>;

pub async fn run(settings: RunSettings) -> Result<(), String> {
    let client = Client::try_default()
        .await
        .map_err(|e| format!("Kubernetes client: {e}"))?;
    let authority = Arc::new(load_or_create_ca(&client, &settings).await?);
    let server_names = server_names(&settings);
    let issued = authority
        .issue_server(&server_names, SystemTime::now())
        .map_err(|e| e.to_string())?;
    let server_cert = tls::ServerCertificate::new(&issued).map_err(|e| e.to_string())?;
    let trust = tls::ClientTrust::new(authority.cert_pem()).map_err(|e| e.to_string())?;
    let acceptor = tls::acceptor_with(Arc::clone(&trust), Arc::clone(&server_cert))
        .map_err(|e| e.to_string())?;
    let (ca_tx, ca_rx) = watch::channel(Arc::clone(&authority));

    let (stop_tx, stop_rx) = watch::channel(false);
    let hub = Hub::new();
    let ready = Arc::new(AtomicBool::new(false));
    let xds_listener = tokio::net::TcpListener::bind(settings.xds_listen)
        .await
        .map_err(|e| format!("xDS address {}: {e}", settings.xds_listen))?;
    let admin_listener = tokio::net::TcpListener::bind(settings.admin_listen)
        .await
        .map_err(|e| format!("admin address {}: {e}", settings.admin_listen))?;
    tracing::info!(xds = %settings.xds_listen, admin = %settings.admin_listen, "listening");
    let mut tasks = tokio::task::JoinSet::new();
    {
        let hub = Arc::clone(&hub);
        let mut stop = stop_rx.clone();
        let limits = settings.xds_limits.clone();
        tasks.spawn(async move {
            let shutdown = async move {
                let _ = stop.changed().await;
            };
            if let Err(e) =
                server::serve_tls_with(hub, xds_listener, acceptor, &limits, shutdown).await
            {
                tracing::error!(error = %e, "xDS server failed");
            }
        });
    }
    let metrics = Arc::new(Metrics::new(&hub.metrics));
    tasks.spawn(crate::admin::serve(
        admin_listener,
        Arc::clone(&metrics),
        Arc::clone(&ready),
    ));
    tasks.spawn(follow_ca(
        Api::namespaced(client.clone(), &settings.namespace),
        settings.ca_secret.clone(),
        trust,
        ca_tx,
    ));
    tasks.spawn(renew_server_certificate(
        ca_rx.clone(),
        server_names,
        server_cert,
    ));

    // No snapshot (so no readiness) before discovery has answered once.
    let (kinds_tx, kinds_rx) = watch::channel(None);
    {
        let client = client.clone();
        tasks.spawn(watches::keep_discovering(
            move || {
                let client = client.clone();
                async move { watches::OptionalKinds::discover(&client).await }
            },
            kinds_tx,
        ));
    }
    let source = watches::start(client.clone(), kinds_rx);
    let stores = source.stores.clone();
    for task in source.tasks {
        tasks.spawn(task);
    }
    let (translated_tx, translated_rx) = watch::channel::<Translated>(None);
    // What translation references decides which Service changes wake it.
    tasks.spawn(watches::follow_references(
        source.references,
        translated_rx.clone(),
        |t: &Translated| t.as_ref().map(|(_, outputs)| outputs.referenced_services()),
    ));
    // On a thread of its own, not one of the runtime's workers: a full
    // translation at scale takes tens of milliseconds, and an ADS stream
    // woken by its publishing would wait on that worker for the rest of the
    // step (a task woken from a worker runs there next, and no other worker
    // takes it), while the watches and the leader's sinks shared the other.
    let runtime = tokio::runtime::Handle::current();
    let translating = translator(
        source.inputs,
        Arc::clone(&hub),
        translated_tx,
        Arc::clone(&ready),
        Arc::clone(&metrics.control),
    );
    std::thread::Builder::new()
        .name("translator".into())
        .spawn(move || runtime.block_on(translating))
        .map_err(|e| format!("translator thread: {e}"))?;

    let (leader_tx, leader_rx) = watch::channel(false);
    let election = Election::new(
        client.clone(),
        &settings.namespace,
        &settings.lease,
        &settings.pod_name,
    );
    let election = tokio::spawn(election.run(leader_tx, stop_rx.clone()));
    // Envoy feedback shared between replicas: ours published, the others' read.
    let leases: Api<Lease> = Api::namespaced(client.clone(), &settings.namespace);
    let publishing = tokio::spawn(replicas::lease::publish(
        leases.clone(),
        settings.lease.clone(),
        settings.pod_name.clone(),
        Arc::clone(&hub),
        stop_rx.clone(),
    ));
    let peers = Arc::new(Mutex::new(Peers::new(&replicas::lease::name(
        &settings.lease,
        &settings.pod_name,
    ))));
    let (peers_tx, peers_rx) = watch::channel(0u64);
    tasks.spawn(replicas::lease::follow(
        leases,
        settings.lease.clone(),
        Arc::clone(&peers),
        peers_tx,
    ));
    let sinks = Sinks {
        started: std::time::Instant::now(),
        provisioner: Provisioner::new(
            client.clone(),
            settings.fleet.clone(),
            Arc::clone(&authority),
        )
        .with_metrics(Arc::clone(&metrics.control)),
        status: StatusWriter::new(client.clone()).with_metrics(Arc::clone(&metrics.control)),
        status_memo: Memo::default(),
        metrics: Arc::clone(&metrics.control),
        events: GatewayEvents::new(client, Some(settings.pod_name.clone())),
        stores,
        hub: Arc::clone(&hub),
        addresses: BTreeMap::new(),
        settling: BTreeMap::new(),
        peers,
    };
    tasks.spawn(sinks.run(
        translated_rx,
        source.owned_changed,
        peers_rx,
        leader_rx,
        ca_rx,
        stop_rx.clone(),
    ));

    wait_for_signal().await;
    tracing::info!("stopping");
    ready.store(false, Ordering::Relaxed);
    let _ = stop_tx.send(true);
    // Give up the Lease so another replica takes over at once, and delete
    // this replica's feedback Lease.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = tokio::join!(election, publishing);
    })
    .await;
    tasks.abort_all();
    Ok(())
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}

fn server_names(settings: &RunSettings) -> Vec<String> {
    let ns = &settings.namespace;
    let mut names = vec![
        settings.fleet.xds_host.clone(),
        "portico-xds".to_string(),
        format!("portico-xds.{ns}"),
        format!("portico-xds.{ns}.svc"),
        format!("portico-xds.{ns}.svc.cluster.local"),
    ];
    names.sort();
    names.dedup();
    names
}

/// The CA from its Secret, created by whichever replica comes first.
async fn load_or_create_ca(client: &Client, settings: &RunSettings) -> Result<Authority, String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &settings.namespace);
    let name = &settings.ca_secret;
    for _ in 0..5 {
        if let Some(secret) = api
            .get_opt(name)
            .await
            .map_err(|e| format!("reading Secret {}/{name}: {e}", settings.namespace))?
        {
            let data = secret.data.unwrap_or_default();
            return ca_pems(&data)
                .and_then(|(bundle, key)| {
                    Authority::from_pem(&bundle, &key).map_err(|e| e.to_string())
                })
                .map_err(|e| format!("Secret {}/{name}: {e}", settings.namespace));
        }
        let ca = Authority::generate(SystemTime::now()).map_err(|e| e.to_string())?;
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/name".to_string(),
                    "portico".to_string(),
                )])),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".into()),
            data: Some(BTreeMap::from([
                ("ca.crt".to_string(), ByteString(ca.cert_pem().into())),
                ("ca.key".to_string(), ByteString(ca.key_pem().into())),
            ])),
            ..Secret::default()
        };
        match api.create(&PostParams::default(), &secret).await {
            Ok(_) => {
                tracing::info!(secret = %name, "created the xDS certificate authority");
                return Ok(ca);
            }
            // Another replica created it first: read theirs.
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(format!("creating Secret {name}: {e}")),
        }
    }
    Err(format!("Secret {name}: could not read or create it"))
}

/// The CA Secret's PEM texts: the bundle (`ca.crt`) and the signing key
/// (`ca.key`).
fn ca_pems(data: &BTreeMap<String, ByteString>) -> Result<(String, String), String> {
    let text = |k: &str| {
        data.get(k)
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
            .ok_or_else(|| format!("no {k}"))
    };
    Ok((text("ca.crt")?, text("ca.key")?))
}

/// The CA the Secret's data describes, when it differs from `current`; its
/// bundle is then trusted by `trust` from the next handshake on. An
/// incomplete or invalid Secret changes nothing.
fn reload_ca(
    current: &Authority,
    data: &BTreeMap<String, ByteString>,
    trust: &tls::ClientTrust,
) -> Result<Option<Authority>, String> {
    let (bundle, key) = ca_pems(data)?;
    if bundle == current.cert_pem() && key == current.key_pem() {
        return Ok(None);
    }
    let next = Authority::from_pem(&bundle, &key).map_err(|e| e.to_string())?;
    trust.replace(&bundle).map_err(|e| e.to_string())?;
    Ok(Some(next))
}

/// Watches the CA Secret (a `metadata.name` field selector in portico's
/// namespace, with the watcher's default back-off): every version seen goes
/// through `reload_ca`, so a new bundle is trusted at once and the new CA
/// published on `authority` for new certificates.
async fn follow_ca(
    api: Api<Secret>,
    name: String,
    trust: Arc<tls::ClientTrust>,
    authority: watch::Sender<Arc<Authority>>,
) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let events = watcher(api, config).default_backoff();
    follow_ca_events(events, &name, &trust, &authority).await;
}

/// Applies the CA Secret's watch events: a deleted Secret (or one a relist
/// no longer finds) keeps the CA in use, and watch errors are logged (the
/// watch retries on its own).
async fn follow_ca_events<S>(
    events: S,
    name: &str,
    trust: &tls::ClientTrust,
    authority: &watch::Sender<Arc<Authority>>,
) where
    S: Stream<Item = Result<watcher::Event<Secret>, watcher::Error>>,
{
    let mut events = std::pin::pin!(events);
    let mut listed = false;
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Init) => listed = false,
            Ok(watcher::Event::Apply(secret) | watcher::Event::InitApply(secret)) => {
                listed = true;
                reload_from(name, &secret.data.unwrap_or_default(), trust, authority);
            }
            Ok(watcher::Event::Delete(_)) => ca_gone(name),
            Ok(watcher::Event::InitDone) if !listed => ca_gone(name),
            Ok(watcher::Event::InitDone) => {}
            Err(e) => {
                tracing::warn!(secret = %name, error = %e, "watching the xDS CA Secret; retrying");
            }
        }
    }
}

fn ca_gone(name: &str) {
    tracing::warn!(secret = %name, "the xDS CA Secret is gone; keeping the CA in use");
}

/// Publishes the CA `data` describes when it differs from the one in use.
fn reload_from(
    name: &str,
    data: &BTreeMap<String, ByteString>,
    trust: &tls::ClientTrust,
    authority: &watch::Sender<Arc<Authority>>,
) {
    let current = authority.borrow().clone();
    match reload_ca(&current, data, trust) {
        Ok(None) => {}
        Ok(Some(next)) => {
            tracing::info!(secret = %name, "the xDS CA changed: trust reloaded, certificates to be reissued");
            authority.send_replace(Arc::new(next));
        }
        Err(e) => {
            tracing::error!(secret = %name, error = %e, "the xDS CA Secret is invalid; keeping the CA in use");
        }
    }
}

/// Renews the server certificate late in its life, and at once when the
/// signing CA changes.
async fn renew_server_certificate(
    mut authority: watch::Receiver<Arc<Authority>>,
    names: Vec<String>,
    current: Arc<tls::ServerCertificate>,
) {
    let mut issued_at = SystemTime::now();
    let mut following = true;
    loop {
        let rotated = tokio::select! {
            _ = tokio::time::sleep(CERT_CHECK) => false,
            r = authority.changed(), if following => {
                following = r.is_ok();
                following
            }
        };
        let now = SystemTime::now();
        let age = now.duration_since(issued_at).unwrap_or_default();
        if !rotated && age < crate::pki::LEAF_LIFETIME * 2 / 3 {
            continue;
        }
        let ca = authority.borrow_and_update().clone();
        match ca.issue_server(&names, now) {
            Ok(issued) => match current.replace(&issued) {
                Ok(()) => {
                    issued_at = now;
                    tracing::info!(rotated, "renewed the xDS server certificate");
                }
                Err(e) => tracing::error!(error = %e, "renewing the xDS server certificate"),
            },
            Err(e) => tracing::error!(error = %e, "renewing the xDS server certificate"),
        }
    }
}

/// Every replica: hands each new snapshot to the translator loop
/// (`translator`), which publishes to the hub, and passes its inputs and
/// outputs on to the leader's sinks; Envoy's answers go to the loop too, and
/// one that changes what is held back makes the next step a full translation.
async fn translator(
    mut inputs: watch::Receiver<Option<Arc<Inputs>>>,
    hub: Arc<Hub>,
    out: watch::Sender<Translated>,
    ready: Arc<AtomicBool>,
    metrics: Arc<ControlMetrics>,
) {
    let mut translator =
        Translator::new(translate::Options::default(), metrics).remembering_held_routes();
    let mut answers = hub.take_answers();
    loop {
        let current = inputs.borrow_and_update().clone();
        if let Some(current) = current {
            let step = translator.next(current, &hub);
            out.send_replace(Some((Arc::clone(&step.inputs), Arc::clone(&step.outputs))));
            ready.store(true, Ordering::Relaxed);
        }
        // Wait for new inputs, or for an answer that changes what is held.
        loop {
            tokio::select! {
                r = inputs.changed() => {
                    if r.is_err() {
                        return;
                    }
                    break;
                }
                answer = hub::next_answer(&mut answers) => {
                    let Some(answer) = answer else {
                        answers = None;
                        continue;
                    };
                    if translator.answer(&answer) {
                        break;
                    }
                }
            }
        }
    }
}

/// After start, how long Envoys get to reconnect before a Gateway without
/// any word from its Envoys is reported as not programmed.
const FEEDBACK_GRACE: Duration = Duration::from_secs(30);

/// The leader's sinks.
struct Sinks {
    started: std::time::Instant,
    provisioner: Provisioner,
    status: StatusWriter,
    /// What earlier rounds found already matching (`status::memo`).
    status_memo: Memo,
    events: GatewayEvents,
    stores: Stores,
    hub: Arc<Hub>,
    metrics: Arc<ControlMetrics>,
    /// Each Gateway's `spec.addresses` as last seen, and the Gateways whose
    /// status waits for the load balancer after they changed (`SETTLE`).
    addresses: BTreeMap<ObjectKey, Vec<String>>,
    settling: BTreeMap<ObjectKey, tokio::time::Instant>,
    /// The other replicas' Envoy feedback (`replicas`).
    peers: Arc<Mutex<Peers>>,
}

/// How long a Gateway's status waits after its `spec.addresses` change, for
/// the load balancer to assign (or refuse) them: a status naming the new
/// generation then carries the addresses the load balancer gave.
const SETTLE: Duration = Duration::from_secs(2);

impl Sinks {
    async fn run(
        mut self,
        mut translated: watch::Receiver<Translated>,
        mut owned: watch::Receiver<u64>,
        mut peers: watch::Receiver<u64>,
        mut leader: watch::Receiver<bool>,
        mut authority: watch::Receiver<Arc<Authority>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut feedback = self.hub.feedback_changes();
        let mut resync = tokio::time::interval(RESYNC);
        // One more round when the feedback grace ends, for silent Gateways.
        let grace = tokio::time::sleep(FEEDBACK_GRACE);
        tokio::pin!(grace);
        let mut grace_over = false;
        let mut was_leading = false;
        loop {
            tokio::select! {
                _ = &mut grace, if !grace_over => grace_over = true,
                r = translated.changed() => if r.is_err() { return },
                r = owned.changed() => if r.is_err() { return },
                r = feedback.changed() => if r.is_err() { return },
                r = peers.changed() => if r.is_err() { return },
                r = leader.changed() => {
                    if r.is_err() { return }
                    self.provisioner.resync();
                }
                r = authority.changed() => {
                    if r.is_err() { return }
                    let ca = authority.borrow_and_update().clone();
                    self.provisioner.set_authority(ca);
                }
                _ = resync.tick() => self.provisioner.resync(),
                _ = until(self.settling.values().min().copied()) => {
                    // Settled: the round below writes their statuses.
                    let now = tokio::time::Instant::now();
                    self.settling.retain(|_, at| *at > now);
                }
                _ = stop.changed() => return,
            }
            // Gather what arrived together.
            tokio::time::sleep(watches::BATCH).await;
            // Leadership read here too: a change seen first by this read
            // would not wake the branch above.
            let leading = *leader.borrow_and_update();
            if leading != was_leading {
                self.metrics.set_leader(leading);
                if leading {
                    self.provisioner.resync();
                }
                was_leading = leading;
            }
            if !leading {
                continue;
            }
            let Some((inputs, outputs)) = translated.borrow_and_update().clone() else {
                continue;
            };
            owned.mark_unchanged();
            feedback.mark_unchanged();
            peers.mark_unchanged();
            self.round(&inputs, &outputs).await;
        }
    }

    async fn round(&mut self, inputs: &Inputs, outputs: &Arc<Outputs>) {
        self.provisioner
            .reconcile(inputs, outputs, &self.stores, &self.events)
            .await;
        self.events
            .forget_gone(|gateway| outputs.gateways.contains_key(gateway));
        let held = self.held(outputs);
        for (key, h) in &held {
            if let (Some((version, message)), Some(current), Some(gateway)) =
                (&h.feedback.rejected, &h.version, inputs.gateways.get(key))
                && version == current
            {
                self.events
                    .warn(
                        gateway,
                        "ConfigurationRejected",
                        "Program",
                        format!("Envoy rejected configuration version {version}: {message}"),
                    )
                    .await;
            }
        }
        let starting = self.started.elapsed() < FEEDBACK_GRACE;
        let observed: BTreeMap<ObjectKey, Observed<'_>> = held
            .iter()
            .map(|(k, h)| {
                let silent = h.feedback == GatewayFeedback::default();
                (
                    k.clone(),
                    Observed {
                        service: h.service.as_deref(),
                        deployment: h.deployment.as_deref(),
                        // Envoys have not reconnected yet: no verdict.
                        feedback: (!(starting && silent)).then_some(&h.feedback),
                        current_version: h.version.as_deref(),
                        // Filled in by the writer from the live Gateway.
                        requested: &[],
                    },
                )
            })
            .collect();
        let settling = self.settle(inputs, outputs);
        let mut writes = plan::plan_with(
            &mut self.status_memo,
            inputs,
            outputs,
            &observed,
            &plan::now(),
        );
        match self.status_memo.gone() {
            Some(gone) => self.status.forget(gone),
            None => self.status.forget_gone(inputs),
        }
        writes.retain(|w| !(w.kind == Kind::Gateway && settling.contains(&w.key)));
        if !writes.is_empty() {
            let planned = writes.len();
            let written = self.status.write(writes).await;
            tracing::debug!(planned, written, "statuses written");
        }
    }
}

impl Sinks {
    /// What this round reads about each Gateway: its fleet's objects, the
    /// version served, and the feedback of every replica's Envoys.
    fn held(&self, outputs: &Outputs) -> BTreeMap<ObjectKey, Held> {
        let snapshots = self.hub.subscribe().borrow().clone();
        let peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        let live = peers.live(tokio::time::Instant::now());
        let mut held: BTreeMap<ObjectKey, Held> = BTreeMap::new();
        for key in outputs.gateways.keys() {
            let id = gateway_id(key);
            let name = fleet_name(&key.name);
            let version = snapshots.get(&id).map(|s| s.version());
            // Every replica's Envoys count, not only the leader's own.
            let feedback = replicas::merged(
                &self.hub.feedback(&id),
                version.as_deref(),
                &replicas::of_gateway(&live, &id),
            );
            held.insert(
                key.clone(),
                Held {
                    service: self.stores.service(&key.namespace, &name),
                    deployment: self.stores.deployment(&key.namespace, &name),
                    feedback,
                    version,
                },
            );
        }
        held
    }

    /// The Gateways whose status waits this round: those whose
    /// `spec.addresses` changed less than `SETTLE` ago.
    fn settle(&mut self, inputs: &Inputs, outputs: &Outputs) -> BTreeSet<ObjectKey> {
        let now = tokio::time::Instant::now();
        self.addresses
            .retain(|k, _| outputs.gateways.contains_key(k));
        self.settling
            .retain(|k, at| *at > now && outputs.gateways.contains_key(k));
        for key in outputs.gateways.keys() {
            let requested = inputs
                .gateways
                .get(key)
                .map(|g| crate::status::gateway::requested(g))
                .unwrap_or_default();
            if self.addresses.get(key) != Some(&requested) {
                if !requested.is_empty() {
                    self.settling.insert(key.clone(), now + SETTLE);
                }
                self.addresses.insert(key.clone(), requested);
            }
        }
        self.settling.keys().cloned().collect()
    }
}

/// Resolves at `at`, or never.
async fn until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What a round reads about one Gateway, owned for the round's duration.
struct Held {
    service: Option<Arc<k8s_openapi::api::core::v1::Service>>,
    deployment: Option<Arc<k8s_openapi::api::apps::v1::Deployment>>,
    feedback: GatewayFeedback,
    version: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_ca_secret_swaps_trust_and_signing_ca() {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, UnixTime};
        use rustls::server::danger::ClientCertVerifier;
        let now = SystemTime::now();
        let old = Authority::generate(now).expect("old CA");
        let new = Authority::generate(now).expect("new CA");
        let client = |ca: &Authority| {
            let issued = ca.issue_gateway("web/a", now).expect("client");
            CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).expect("pem")
        };
        let (old_client, new_client) = (client(&old), client(&new));
        let trust = tls::ClientTrust::new(old.cert_pem()).expect("trust");
        let accepts =
            |c: &CertificateDer<'_>| trust.verify_client_cert(c, &[], UnixTime::now()).is_ok();
        let data = |bundle: String, key: &str| {
            BTreeMap::from([
                ("ca.crt".to_string(), ByteString(bundle.into_bytes())),
                ("ca.key".to_string(), ByteString(key.as_bytes().to_vec())),
            ])
        };
        let same = data(old.cert_pem().to_string(), old.key_pem());
        assert!(reload_ca(&old, &same, &trust).expect("same").is_none());
        assert!(!accepts(&new_client));

        // Step 1: the new CA added to the bundle, the old one still signing.
        let added = data(
            format!("{}{}", old.cert_pem(), new.cert_pem()),
            old.key_pem(),
        );
        let step1 = reload_ca(&old, &added, &trust)
            .expect("valid")
            .expect("changed");
        assert!(accepts(&old_client) && accepts(&new_client), "both trusted");
        let old_leaf = old.issue_gateway("web/a", now).expect("leaf");
        assert!(
            !step1.needs_renewal(&old_leaf.cert_pem, now),
            "the old CA still signs: nothing reissued yet"
        );

        // Step 2: the new CA signs; certificates of the old one get reissued.
        let switched = data(
            format!("{}{}", new.cert_pem(), old.cert_pem()),
            new.key_pem(),
        );
        let step2 = reload_ca(&step1, &switched, &trust)
            .expect("valid")
            .expect("changed");
        assert!(step2.needs_renewal(&old_leaf.cert_pem, now));
        assert!(
            accepts(&old_client) && accepts(&new_client),
            "both still trusted"
        );

        // A broken Secret changes nothing.
        let broken = data("garbage".to_string(), new.key_pem());
        assert!(reload_ca(&step2, &broken, &trust).is_err());
        assert!(accepts(&old_client));

        // Step 3: the old CA dropped.
        let dropped = data(new.cert_pem().to_string(), new.key_pem());
        reload_ca(&step2, &dropped, &trust)
            .expect("valid")
            .expect("changed");
        assert!(!accepts(&old_client), "old CA no longer trusted");
        assert!(accepts(&new_client));
    }

    #[tokio::test]
    async fn the_ca_secret_is_followed_through_its_watch_events() {
        use watcher::Event::{Apply, Delete, Init, InitApply, InitDone};
        let now = SystemTime::now();
        let old = Arc::new(Authority::generate(now).expect("old CA"));
        let new = Authority::generate(now).expect("new CA");
        let secret = |bundle: &str, key: &str| {
            let mut s = Secret::default();
            s.metadata.namespace = Some("portico-system".into());
            s.metadata.name = Some("portico-xds-ca".into());
            s.data = Some(BTreeMap::from([
                ("ca.crt".to_string(), ByteString(bundle.as_bytes().to_vec())),
                ("ca.key".to_string(), ByteString(key.as_bytes().to_vec())),
            ]));
            s
        };
        let trust = tls::ClientTrust::new(old.cert_pem()).expect("trust");
        let (authority, mut seen) = watch::channel(Arc::clone(&old));
        let run = |events: Vec<Result<watcher::Event<Secret>, watcher::Error>>| {
            let events = futures::stream::iter(events);
            follow_ca_events(events, "portico-xds-ca", &trust, &authority)
        };

        let same = secret(old.cert_pem(), old.key_pem());
        run(vec![Ok(Init), Ok(InitApply(same)), Ok(InitDone)]).await;
        assert!(
            !seen.has_changed().expect("open"),
            "the CA in use: nothing to do"
        );

        let bundle = format!("{}{}", old.cert_pem(), new.cert_pem());
        let added = secret(&bundle, old.key_pem());
        run(vec![Ok(Apply(added.clone()))]).await;
        assert!(
            seen.has_changed().expect("open"),
            "the new bundle is published"
        );
        assert_eq!(seen.borrow_and_update().cert_pem(), bundle);

        run(vec![
            Ok(Delete(added)),
            Err(watcher::Error::NoResourceVersion),
            Ok(Init),
            Ok(InitDone),
            Ok(Apply(secret("garbage", new.key_pem()))),
        ])
        .await;
        assert!(
            !seen.has_changed().expect("open"),
            "gone, failing or broken: the CA in use stays"
        );

        let switched = format!("{}{}", new.cert_pem(), old.cert_pem());
        run(vec![Ok(Apply(secret(&switched, new.key_pem())))]).await;
        assert_eq!(
            seen.borrow_and_update().key_pem(),
            new.key_pem(),
            "the new CA signs"
        );
    }

    #[tokio::test]
    async fn readiness_waits_for_the_first_snapshot() {
        let (inputs_tx, inputs_rx) = watch::channel(None);
        let (out, _out_rx) = watch::channel::<Translated>(None);
        let ready = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(translator(
            inputs_rx,
            Hub::new(),
            out,
            Arc::clone(&ready),
            Arc::default(),
        ));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !ready.load(Ordering::Relaxed),
            "not ready without a snapshot (none is built before discovery answers)"
        );
        inputs_tx.send_replace(Some(Arc::new(Inputs::default())));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !ready.load(Ordering::Relaxed) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "ready after the first snapshot"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        task.abort();
    }
}
