//! Pure translation: `Inputs -> Outputs`. No client, no async, no clock, no I/O;
//! the same inputs always give the same outputs, in the same order.
//!
//! `translate_with` runs named stages, each in its own folder:
//!
//! 1. `index`: classes, Gateways and ListenerSets, every listener validated;
//! 2. `compile`: every route of every kind compiled once, backends resolved;
//! 3. `attach`: each route's parentRefs resolved to listeners (placements)
//!    and parent statuses;
//! 4. `settle`: competing routes settled, oldest first, for every kind;
//!    then `attach::count` gives each listener its attached routes;
//! 5. `tables`: per Gateway, route tables (HTTP, GRPC) and L4 placements;
//! 6. `encode`: per Gateway, the Envoy resources;
//! 7. `report`: statuses of every object, and what each Gateway references.
//!
//! Beside them: `last_good` and `quarantine` wrap a translation (what was
//! served before, what Envoy refused), and small domain pieces
//! (`conditions`, `hostnames`, `labels`, `field_path`, `features`,
//! `control_chars`, `re2`, `grants`, `trust`).

pub mod attach;
pub mod compile;
pub mod conditions;
pub mod control_chars;
pub mod encode;
pub mod features;
pub mod field_path;
pub mod grants;
pub mod hostnames;
pub mod index;
pub mod labels;
pub mod last_good;
pub mod memo;
pub mod quarantine;
pub mod re2;
pub mod report;
pub mod settle;
pub mod tables;
pub mod trust;

use std::collections::{BTreeMap, BTreeSet};

use self::compile::backends::BackendResolver;
use self::compile::routes::RouteKind;
use self::conditions::{holds, spec};
use self::encode::EnvoyResources;
use self::encode::gateway::GatewayRoutes;
use self::index::GatewayModel;
pub use self::memo::Memo;
use self::report::{GatewayClassStatus, GatewayStatus, ListenerSetStatus, RouteStatus};
use self::tables::GatewayTables;
use crate::inputs::{Inputs, ObjectKey};

/// Everything translation decided.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outputs {
    /// Statuses of our GatewayClasses, by name.
    pub gateway_classes: BTreeMap<String, GatewayClassStatus>,
    /// Gateways of accepted classes: status and Envoy resources.
    pub gateways: BTreeMap<ObjectKey, GatewayOutput>,
    /// ListenerSets whose parentRef names one of those Gateways.
    pub listener_sets: BTreeMap<ObjectKey, ListenerSetOutput>,
    /// Routes of every kind with at least one parentRef to one of our
    /// Gateways.
    pub routes: BTreeMap<(RouteKind, ObjectKey), RouteStatus>,
    /// BackendTLSPolicies targeting a Service that a route on one of our
    /// Gateways uses.
    pub backend_tls_policies: BTreeMap<ObjectKey, report::PolicyStatus>,
    /// Per Gateway, what its routes reference (`report::references`).
    pub references: BTreeMap<ObjectKey, report::References>,
}

impl Outputs {
    /// Every Service some Gateway's routes reference.
    pub fn referenced_services(&self) -> BTreeSet<ObjectKey> {
        self.references
            .values()
            .flat_map(|r| r.services.iter().cloned())
            .collect()
    }

    /// Per route kind (and `BackendTLSPolicy`), one entry per object:
    /// whether every parent (ancestor) accepts it.
    pub fn route_parents(&self) -> Vec<(&'static str, Vec<bool>)> {
        let accepted = |list: &[conditions::Condition]| holds(list, spec::ACCEPTED);
        let mut by_kind: BTreeMap<&'static str, Vec<bool>> = BTreeMap::new();
        for ((kind, _), route) in &self.routes {
            by_kind
                .entry(kind.name())
                .or_default()
                .push(route.parents.iter().all(|p| accepted(&p.conditions)));
        }
        let policies = self
            .backend_tls_policies
            .values()
            .map(|p| p.ancestors.iter().all(|a| accepted(&a.conditions)))
            .collect();
        by_kind.insert("BackendTLSPolicy", policies);
        by_kind.into_iter().collect()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct GatewayOutput {
    pub status: GatewayStatus,
    pub resources: EnvoyResources,
    /// The clusters of `resources`, for refreshing their endpoints alone.
    pub clusters: Vec<encode::cluster::Upstream>,
    /// What to provision, for an accepted Gateway.
    pub infra: Option<index::infra::Infra>,
}

/// A ListenerSet's status and the Gateway it names.
#[derive(Clone, Debug, PartialEq)]
pub struct ListenerSetOutput {
    pub gateway: ObjectKey,
    pub status: ListenerSetStatus,
}

#[cfg(test)]
impl Outputs {
    /// Outputs naming `gateways` in namespace `default`, with no resources;
    /// accepted ones carry a default `Infra`. For tests of the sinks.
    pub fn of_gateways(gateways: &[&str], accepted: bool) -> Self {
        let mut out = Self::default();
        for g in gateways {
            out.gateways.insert(
                ObjectKey::new("default", *g),
                GatewayOutput {
                    status: GatewayStatus {
                        conditions: Vec::new(),
                        listeners: Vec::new(),
                        attached_listener_sets: None,
                    },
                    resources: EnvoyResources::default(),
                    clusters: Vec::new(),
                    infra: accepted.then(index::infra::Infra::default),
                },
            );
        }
        out
    }
}

/// Where Envoy listens; the defaults are those of an Envoy pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The address listeners bind.
    pub listen_address: String,
    /// Listener ports below 1024 bind port + 10000 (Envoy runs unprivileged).
    pub shift_privileged_ports: bool,
    /// Ports Envoy binds for itself where it runs; a listener whose
    /// container port is one of them is `PortUnavailable`.
    pub reserved_ports: Vec<index::ReservedPort>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            listen_address: "0.0.0.0".into(),
            shift_privileged_ports: true,
            reserved_ports: vec![
                index::ReservedPort {
                    port: u32::from(crate::bootstrap::ADMIN_PORT),
                    used_for: "its admin interface",
                },
                index::ReservedPort {
                    port: u32::from(crate::bootstrap::READY_PORT),
                    used_for: "its readiness probe",
                },
                index::ReservedPort {
                    port: u32::from(crate::bootstrap::METRICS_PORT),
                    used_for: "its metrics",
                },
            ],
        }
    }
}

/// Translation with the defaults of an Envoy pod.
pub fn translate(inputs: &Inputs) -> Outputs {
    translate_with(inputs, &Options::default())
}

/// A full translation: nothing carried from an earlier one. The reference
/// every memoised translation equals.
pub fn translate_with(inputs: &Inputs, options: &Options) -> Outputs {
    translate_memo(inputs, options, &mut Memo::off())
}

/// Translation reusing what `memo` kept from the last one where its inputs
/// did not change (`memo`), and keeping this one's results for the next.
/// Equal to `translate_with(inputs, options)` whatever `memo` holds.
pub fn translate_memo(inputs: &Inputs, options: &Options, memo: &mut Memo) -> Outputs {
    memo.begin(inputs);
    let mut index = index::gateways::index(
        inputs,
        options.shift_privileged_ports,
        &options.reserved_ports,
    );
    let mut resolver = BackendResolver::new(inputs);
    let routes = compile::routes(inputs, &mut resolver, &mut memo.compiled());
    let mut attached = attach::routes(&index, inputs, &routes);
    settle::conflicts(&index, &routes, &mut attached);
    attach::count(&mut index, &attached);
    let tables = tables::build(&index, &routes, &attached);
    let mut outputs = Outputs {
        gateway_classes: report::classes(&index),
        backend_tls_policies: report::policies(resolver.backend_tls(), &routes, &attached),
        references: report::references(&routes, &attached),
        ..Outputs::default()
    };
    for (key, gateway) in &index.gateways {
        let Some(tables) = tables.get(key) else {
            continue;
        };
        for set in &gateway.listener_sets {
            let status = report::gateways::listener_set(set, gateway);
            let output = ListenerSetOutput {
                gateway: key.clone(),
                status,
            };
            outputs.listener_sets.insert(set.key.clone(), output);
        }
        let output = gateway_output(
            inputs,
            gateway,
            tables,
            &routes,
            options,
            &mut memo.gateway(key),
        );
        outputs.gateways.insert(key.clone(), output);
    }
    outputs.routes = report::routes(&routes, attached);
    memo.finish(inputs, |key| outputs.gateways.contains_key(key));
    outputs
}

/// A Gateway's status and, when it is accepted, its encoded Envoy
/// resources and infrastructure.
fn gateway_output(
    inputs: &Inputs,
    gateway: &GatewayModel,
    tables: &GatewayTables<'_>,
    routes: &compile::Compiled,
    options: &Options,
    memo: &mut memo::GatewayScope<'_>,
) -> GatewayOutput {
    let status = report::gateways::gateway(gateway);
    if !holds(&status.conditions, spec::ACCEPTED) {
        return GatewayOutput {
            status,
            resources: EnvoyResources::default(),
            clusters: Vec::new(),
            infra: None,
        };
    }
    let served = GatewayRoutes {
        gateway,
        http: &tables.http,
        l4: &tables.l4,
        l4_models: &routes.l4,
    };
    let (resources, clusters) =
        encode::gateway::resources(inputs, &served, &options.listen_address, memo);
    GatewayOutput {
        status,
        resources,
        clusters,
        infra: Some(gateway.infra()),
    }
}

/// The fast path when only EndpointSlices changed: `previous` with every
/// Gateway's endpoints recomputed from `inputs`, everything else kept. Equal
/// to a full translation of `inputs` when nothing but EndpointSlices differs
/// from the inputs `previous` came from.
pub fn refresh_endpoints(inputs: &Inputs, previous: &Outputs) -> Outputs {
    let mut out = previous.clone();
    for gateway in out.gateways.values_mut() {
        gateway.resources.endpoints = encode::gateway::load_assignments(inputs, &gateway.clusters);
    }
    out
}
