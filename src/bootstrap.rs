//! The Envoy bootstrap of one Gateway, rendered from
//! `templates/bootstrap.yaml.j2`: node identity (`node.cluster` names the
//! Gateway), ADS over gRPC (delta by default), admin on loopback only, a
//! readiness listener, in fleet pods a metrics listener, the RE2 program size limit translation relies on, and
//! the overload manager (a heap limit with actions near it, and a global cap
//! on downstream connections). With mutual TLS, two file-based SDS resources (`templates/sds.yaml.j2`)
//! point Envoy at the certificate files of a mounted Secret.

use minijinja::{Environment, context};
use serde::Serialize;

/// RE2 program size limit for regexes in Envoy configuration. Envoy's default
/// (100) rejects ordinary path regexes, and one rejected regex fails its whole
/// route configuration; every bootstrap portico writes sets the runtime keys
/// `re2.max_program_size.error_level` and `.warn_level` to this, and
/// translation keeps regexes well below it.
pub const ENVOY_RE2_MAX_PROGRAM_SIZE: u32 = 2000;

const TEMPLATE: &str = include_str!("../templates/bootstrap.yaml.j2");
const SDS_TEMPLATE: &str = include_str!("../templates/sds.yaml.j2");

/// Where an Envoy finds what it needs for mutual TLS to portico.
#[derive(Clone, Debug, Serialize)]
pub struct XdsTls {
    /// The DNS name the xDS server's certificate must carry.
    pub server_name: String,
    /// Directory of `xds-client.yaml` and `xds-ca.yaml` (the SDS files).
    pub sds_dir: String,
    /// Directory of `tls.crt`, `tls.key` and `ca.crt` (the Secret's files).
    pub tls_dir: String,
}

/// The SDS files of `tls`, as (file name, content).
pub fn sds_files(tls: &XdsTls) -> Result<Vec<(&'static str, String)>, minijinja::Error> {
    let mut env = Environment::new();
    env.add_template("sds", SDS_TEMPLATE)?;
    let template = env.get_template("sds")?;
    Ok(vec![
        (
            "xds-client.yaml",
            template.render(context! { which => "client", tls_dir => &tls.tls_dir })?,
        ),
        (
            "xds-ca.yaml",
            template.render(context! { which => "ca", tls_dir => &tls.tls_dir })?,
        ),
    ])
}

/// Envoy's admin port (loopback only).
pub const ADMIN_PORT: u16 = 19000;
/// The readiness listener: `GET /ready` answers 200 once Envoy is initialised.
pub const READY_PORT: u16 = 19001;
/// The metrics listener of a fleet pod: `GET /stats/prometheus` only, the
/// admin interface's Prometheus page (the admin interface stays on loopback).
pub const METRICS_PORT: u16 = 19002;
/// The metrics page, on `METRICS_PORT`.
pub const METRICS_PATH: &str = "/stats/prometheus";

/// The heap limit of an Envoy whose container has no memory limit (and of
/// standalone Envoys).
pub const DEFAULT_MAX_HEAP_BYTES: u64 = 1 << 30;
/// Downstream connections one Envoy holds at most, over all listeners (the
/// readiness listener does not count); further connections are refused.
pub const MAX_DOWNSTREAM_CONNECTIONS: u64 = 50_000;
/// Heap pressure (a fraction of the heap limit) at which Envoy returns free
/// memory to the system, and at which it answers new requests with 503.
pub const SHRINK_HEAP_AT: f64 = 0.95;
pub const STOP_ACCEPTING_REQUESTS_AT: f64 = 0.98;

/// The heap limit for an Envoy container with `memory_limit` bytes: four
/// fifths of it, leaving the rest for Envoy's code, thread stacks and what
/// the allocator keeps outside the heap; `DEFAULT_MAX_HEAP_BYTES` without a
/// limit.
pub fn max_heap_for_container(memory_limit: Option<u64>) -> u64 {
    match memory_limit {
        Some(limit) => (limit / 5).saturating_mul(4).max(1),
        None => DEFAULT_MAX_HEAP_BYTES,
    }
}

#[derive(Clone, Debug)]
pub struct BootstrapParams {
    /// `<namespace>/<name>` of the Gateway.
    pub gateway: String,
    /// Default node id; `--service-node` (the pod name) overrides it.
    pub node_id: String,
    pub xds_host: String,
    pub xds_port: u16,
    pub admin_port: u16,
    pub ready_port: u16,
    /// The metrics listener's port; none when `None` (standalone Envoys,
    /// which share the host's ports).
    pub metrics_port: Option<u16>,
    /// Delta ADS (default) or state of the world.
    pub delta: bool,
    /// Mutual TLS to portico (on Kubernetes); plain TCP when `None`.
    pub tls: Option<XdsTls>,
    /// The overload manager's heap limit (`max_heap_for_container`).
    pub max_heap_bytes: u64,
}

impl BootstrapParams {
    pub fn new(gateway: impl Into<String>, xds_host: impl Into<String>, xds_port: u16) -> Self {
        Self {
            gateway: gateway.into(),
            node_id: "portico-envoy".into(),
            xds_host: xds_host.into(),
            xds_port,
            admin_port: ADMIN_PORT,
            ready_port: READY_PORT,
            metrics_port: None,
            delta: true,
            tls: None,
            max_heap_bytes: DEFAULT_MAX_HEAP_BYTES,
        }
    }
}

pub fn render(p: &BootstrapParams) -> Result<String, minijinja::Error> {
    let mut env = Environment::new();
    env.add_template("bootstrap", TEMPLATE)?;
    env.get_template("bootstrap")?.render(context! {
        gateway => &p.gateway,
        node_id => &p.node_id,
        xds_host => &p.xds_host,
        xds_port => p.xds_port,
        admin_port => p.admin_port,
        ready_port => p.ready_port,
        metrics_port => p.metrics_port,
        metrics_path => METRICS_PATH,
        delta => p.delta,
        tls => minijinja::Value::from(minijinja::value::Serde(&p.tls)),
        re2_max_program_size => ENVOY_RE2_MAX_PROGRAM_SIZE,
        max_heap_bytes => p.max_heap_bytes,
        max_downstream_connections => MAX_DOWNSTREAM_CONNECTIONS,
        shrink_heap_at => SHRINK_HEAP_AT,
        stop_accepting_requests_at => STOP_ACCEPTING_REQUESTS_AT,
    })
}
