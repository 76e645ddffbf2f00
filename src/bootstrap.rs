//! The Envoy bootstrap of one Gateway, rendered from
//! `templates/bootstrap.yaml.j2`: node identity (`node.cluster` names the
//! Gateway), ADS over gRPC (delta by default), admin on loopback only, a
//! readiness listener, and the RE2 program size limit translation relies on.

use minijinja::{Environment, context};

use crate::translate::envoy::ENVOY_RE2_MAX_PROGRAM_SIZE;

const TEMPLATE: &str = include_str!("../templates/bootstrap.yaml.j2");

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
        re2_max_program_size => ENVOY_RE2_MAX_PROGRAM_SIZE,
    })
}
