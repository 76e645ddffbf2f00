//! `portico standalone`: no Kubernetes. Watches a directory of YAML, hands
//! every change to the `translator` loop (as `portico run` does; its metrics
//! on `/metrics` when an admin address is given), which serves the result
//! over ADS on loopback, and runs one real Envoy process per Gateway,
//! bootstrapped by portico. Statuses are printed when they change; Envoy's
//! ACKs and NACKs are logged. A removed Gateway's Envoy is stopped and its
//! working directory deleted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::process::{Child, Command};

use crate::bootstrap::{self, BootstrapParams};
use crate::identity::gateway_id;
use crate::inputs::files;
use crate::metrics::Metrics;
use crate::render;
use crate::translate::{Options, Outputs};
use crate::translator::{Step, Translator};
use crate::xds::hub::{self, Hub};

#[derive(Clone, Debug)]
pub struct Settings {
    pub dir: PathBuf,
    pub listen_address: String,
    pub xds_port: u16,
    pub envoy: PathBuf,
    pub delta: bool,
    /// Print statuses once and whenever they change.
    pub print_status: bool,
    /// Where `/healthz` and `/metrics` are served, if anywhere.
    pub admin_address: Option<String>,
}

/// What the directory looked like: each file with its modification time and size.
type Fingerprint = Vec<(PathBuf, Option<SystemTime>, u64)>;

fn fingerprint(dir: &Path) -> Fingerprint {
    files::yaml_files(dir)
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            let meta = std::fs::metadata(&p).ok();
            let modified = meta.as_ref().and_then(|m| m.modified().ok());
            let len = meta.map(|m| m.len()).unwrap_or_default();
            (p, modified, len)
        })
        .collect()
}

/// One Envoy per Gateway.
struct Fleet {
    envoy: PathBuf,
    xds_port: u16,
    delta: bool,
    work: PathBuf,
    running: BTreeMap<String, Child>,
}

impl Fleet {
    /// A Gateway's working directory: its bootstrap and Envoy's log.
    fn dir(&self, gateway: &str) -> PathBuf {
        self.work.join(gateway.replace('/', "_"))
    }

    /// Starts Envoys for new Gateways and stops those of removed ones.
    fn reconcile(&mut self, outputs: &Outputs) {
        let wanted: Vec<String> = outputs.gateways.keys().map(gateway_id).collect();
        let gone: Vec<String> = self
            .running
            .keys()
            .filter(|g| !wanted.contains(g))
            .cloned()
            .collect();
        for g in gone {
            if let Some(mut child) = self.running.remove(&g) {
                let _ = child.start_kill();
                let _ = std::fs::remove_dir_all(self.dir(&g));
                tracing::info!(gateway = %g, "Gateway removed; Envoy stopped");
            }
        }
        for g in wanted {
            if self.running.contains_key(&g) {
                continue;
            }
            match self.start(&g) {
                Ok(child) => {
                    self.running.insert(g, child);
                }
                Err(e) => tracing::error!(gateway = %g, "cannot start Envoy: {e}"),
            }
        }
    }

    fn start(&self, gateway: &str) -> Result<Child, String> {
        let mut params = BootstrapParams::new(gateway, "127.0.0.1", self.xds_port);
        params.delta = self.delta;
        params.node_id = format!("standalone-{}", gateway.replace('/', "-"));
        params.admin_port = free_port()?;
        params.ready_port = free_port()?;
        let dir = self.dir(gateway);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let config = dir.join("bootstrap.yaml");
        let text = bootstrap::render(&params).map_err(|e| e.to_string())?;
        std::fs::write(&config, text).map_err(|e| format!("{}: {e}", config.display()))?;
        let log = dir.join("envoy.log");
        let child = Command::new(&self.envoy)
            .arg("--disable-hot-restart")
            .args(["--log-level", "warning", "--log-path"])
            .arg(&log)
            .arg("-c")
            .arg(&config)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("{}: {e}", self.envoy.display()))?;
        tracing::info!(
            gateway,
            admin = params.admin_port,
            log = %log.display(),
            "Envoy started"
        );
        Ok(child)
    }
}

/// Starts or stops Envoys for `step`'s outputs and prints its statuses when
/// they changed since `printed`.
fn serve(
    step: &Step,
    fleet: &mut Fleet,
    print_status: bool,
    printed: &mut Option<serde_json::Value>,
) {
    fleet.reconcile(&step.outputs);
    if !print_status {
        return;
    }
    let status = render::statuses(&step.outputs);
    if printed.as_ref() != Some(&status) {
        match yaml_serde::to_string(&status) {
            Ok(text) => println!("---\n{text}"),
            Err(e) => tracing::error!("statuses do not print: {e}"),
        }
        *printed = Some(status);
    }
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

pub async fn run(settings: Settings) -> Result<(), String> {
    let hub = Hub::new();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", settings.xds_port))
        .await
        .map_err(|e| format!("xDS port {}: {e}", settings.xds_port))?;
    let xds_port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::xds::server::serve(
        Arc::clone(&hub),
        listener,
        async {
            let _ = stopped.await;
        },
    ));
    tracing::info!(port = xds_port, "serving xDS on 127.0.0.1");
    let metrics = Arc::new(Metrics::new(&hub.metrics));
    let admin = match &settings.admin_address {
        Some(address) => {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .map_err(|e| format!("admin address {address}: {e}"))?;
            tracing::info!(address = %listener.local_addr().map_err(|e| e.to_string())?, "serving /metrics and /healthz");
            Some(tokio::spawn(crate::admin::serve(
                listener,
                Arc::clone(&metrics),
                Arc::new(std::sync::atomic::AtomicBool::new(true)),
            )))
        }
        None => None,
    };

    let work = std::env::temp_dir().join(format!("portico-standalone-{}", std::process::id()));
    let mut fleet = Fleet {
        envoy: settings.envoy.clone(),
        xds_port,
        delta: settings.delta,
        work: work.clone(),
        running: BTreeMap::new(),
    };
    // Each Envoy's admin and readiness ports are free ports picked at its
    // start; no listener port is reserved up front.
    let options = Options {
        listen_address: settings.listen_address.clone(),
        shift_privileged_ports: false,
        reserved_ports: Vec::new(),
    };
    let mut feedback = hub.feedback_changes();
    let mut answers = hub.take_answers();
    let mut seen: Option<Fingerprint> = None;
    let mut translator = Translator::new(options, Arc::clone(&metrics.control));
    let mut printed = None;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    // Registered once, before the loop: a signal that arrives while the loop
    // is busy is kept until the loop looks again.
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot watch SIGINT: {e}"))?;
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
    loop {
        tokio::select! {
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            _ = feedback.changed() => {
                for gateway in fleet.running.keys() {
                    let f = hub.feedback(gateway);
                    if let Some((version, message)) = &f.rejected {
                        tracing::warn!(gateway, version, "Envoy rejected the configuration: {message}");
                    }
                }
            }
            answer = hub::next_answer(&mut answers) => {
                let Some(answer) = answer else {
                    answers = None;
                    continue;
                };
                if translator.answer(&answer)
                    && let Some(step) = translator.again(&hub)
                {
                    serve(step, &mut fleet, settings.print_status, &mut printed);
                }
            }
            _ = tick.tick() => {
                let now = fingerprint(&settings.dir);
                if seen.as_ref() == Some(&now) {
                    continue;
                }
                seen = Some(now);
                let inputs = match files::load(&settings.dir) {
                    Ok(inputs) => inputs,
                    Err(e) => {
                        tracing::error!("{e}; keeping the last good configuration");
                        continue;
                    }
                };
                let step = translator.next(Arc::new(inputs), &hub);
                serve(step, &mut fleet, settings.print_status, &mut printed);
            }
        }
    }
    tracing::info!("stopping");
    for (_, mut child) in std::mem::take(&mut fleet.running) {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
    if let Some(admin) = admin {
        admin.abort();
    }
    let _ = stop.send(());
    let _ = server.await;
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_removed_gateway_leaves_no_process_or_directory() {
        let work =
            std::env::temp_dir().join(format!("portico-standalone-test-{}", std::process::id()));
        let mut fleet = Fleet {
            // Stands in for Envoy: starts, ignores its arguments, exits.
            envoy: PathBuf::from("true"),
            xds_port: 1,
            delta: true,
            work: work.clone(),
            running: BTreeMap::new(),
        };
        fleet.reconcile(&Outputs::of_gateways(&["a", "b"], false));
        assert_eq!(fleet.running.len(), 2);
        assert!(fleet.dir("default/b").join("bootstrap.yaml").is_file());
        fleet.reconcile(&Outputs::of_gateways(&["a"], false));
        assert_eq!(fleet.running.keys().collect::<Vec<_>>(), vec!["default/a"]);
        assert!(!fleet.dir("default/b").exists());
        assert!(fleet.dir("default/a").exists());
        fleet.reconcile(&Outputs::of_gateways(&[], false));
        assert!(fleet.running.is_empty());
        assert!(!fleet.dir("default/a").exists());
        let _ = std::fs::remove_dir_all(&work);
    }
}
