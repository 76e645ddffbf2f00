//! The Envoy bootstrap of one Gateway, rendered from
//! `templates/bootstrap.yaml.j2`: node identity (`node.cluster` names the
//! Gateway), ADS over gRPC (delta by default), admin on loopback only, a
//! readiness listener, and the RE2 program size limit translation relies on.
//! With mutual TLS, two file-based SDS resources (`templates/sds.yaml.j2`)
//! point Envoy at the certificate files of a mounted Secret.

use minijinja::{Environment, context};
use serde::Serialize;

use crate::translate::envoy::ENVOY_RE2_MAX_PROGRAM_SIZE;

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
    /// Delta ADS (default) or state of the world.
    pub delta: bool,
    /// Mutual TLS to portico (on Kubernetes); plain TCP when `None`.
    pub tls: Option<XdsTls>,
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
            delta: true,
            tls: None,
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
        delta => p.delta,
        tls => minijinja::Value::from(minijinja::value::Serde(&p.tls)),
        re2_max_program_size => ENVOY_RE2_MAX_PROGRAM_SIZE,
    })
}
