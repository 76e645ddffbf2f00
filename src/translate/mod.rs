//! Pure translation: `Inputs -> Outputs`. No client, no async, no clock, no I/O;
//! the same inputs always give the same outputs, in the same order.
//!
//! Stages: `gateways` (classes, Gateways, validated listeners, with
//! `listener_sets` merging the listeners of accepted ListenerSets) → `http` (each
//! route compiled once) → `attachment` (routes onto listeners, route statuses) →
//! `route_table` (per port and hostname, spec precedence) → `envoy` (Listener,
//! RouteConfiguration, Cluster, ClusterLoadAssignment per Gateway).

pub mod attachment;
pub mod backend_tls;
pub mod backends;
pub mod certificates;
pub mod client_validation;
pub mod conditions;
pub mod control_chars;
pub mod endpoints;
pub mod envoy;
pub mod features;
pub mod field_path;
pub mod gateways;
pub mod grpc;
pub mod hostnames;
pub mod http;
pub mod infra;
pub mod l4;
pub mod labels;
pub mod last_good;
pub mod listener_sets;
pub mod quarantine;
pub mod re2;
pub mod route_table;
pub mod routes;
pub mod status;

use std::collections::{BTreeMap, BTreeSet};

use self::conditions::{ConditionStatus, Conditions, holds, spec};
use self::envoy::EnvoyResources;
use self::gateways::{GatewayIndex, GatewayModel, ListenerModel};
use self::route_table::Placement;
use self::routes::RouteKind;
use self::status::{
    GatewayClassStatus, GatewayStatus, ListenerSetStatus, ListenerStatus, RouteStatus,
    SupportedFeature,
};
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
    pub backend_tls_policies: BTreeMap<ObjectKey, status::PolicyStatus>,
}

impl Outputs {
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

    fn add_route(&mut self, head: &routes::RouteHead<'_>, parents: Vec<status::RouteParentStatus>) {
        if !parents.is_empty() {
            self.routes
                .insert((head.kind, head.key.clone()), RouteStatus { parents });
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct GatewayOutput {
    pub status: GatewayStatus,
    pub resources: EnvoyResources,
    /// The clusters of `resources`, for refreshing their endpoints alone.
    pub clusters: Vec<envoy::cluster::Upstream>,
    /// What to provision, for an accepted Gateway.
    pub infra: Option<infra::Infra>,
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
                    infra: accepted.then(infra::Infra::default),
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
    pub reserved_ports: Vec<gateways::ReservedPort>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            listen_address: "0.0.0.0".into(),
            shift_privileged_ports: true,
            reserved_ports: vec![
                gateways::ReservedPort {
                    port: u32::from(crate::bootstrap::ADMIN_PORT),
                    used_for: "its admin interface",
                },
                gateways::ReservedPort {
                    port: u32::from(crate::bootstrap::READY_PORT),
                    used_for: "its readiness probe",
                },
                gateways::ReservedPort {
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

pub fn translate_with(inputs: &Inputs, options: &Options) -> Outputs {
    let mut idx = gateways::index(
        inputs,
        options.shift_privileged_ports,
        &options.reserved_ports,
    );
    // GRPCRoute rules written as HTTPRoute rules; the models borrow them.
    let grpc_rules: Vec<_> = inputs
        .grpc_routes
        .values()
        .map(|r| grpc::http_rules(r))
        .collect();
    let mut resolver = backends::BackendResolver::new(inputs);
    let mut http_models: Vec<_> = inputs
        .http_routes
        .values()
        .map(|r| http::compile_route(&mut resolver, r))
        .collect();
    for (route, rules) in inputs.grpc_routes.values().zip(&grpc_rules) {
        http_models.push(grpc::compile_route(&mut resolver, route, rules));
    }
    let mut l4_models = Vec::new();
    for r in inputs.tls_routes.values() {
        l4_models.push(l4::compile_tls(&mut resolver, r));
    }
    for r in inputs.tcp_routes.values() {
        l4_models.push(l4::compile_tcp(&mut resolver, r));
    }
    for r in inputs.udp_routes.values() {
        l4_models.push(l4::compile_udp(&mut resolver, r));
    }
    // Oldest first: the first claim on a listener or SNI hostname wins.
    l4_models.sort_by(|a, b| a.head.age_order(&b.head));

    let mut outputs = Outputs::default();
    let mut http_parents = Vec::with_capacity(http_models.len());
    let mut http_attachments = Vec::with_capacity(http_models.len());
    for model in &http_models {
        let attached = attachment::attach(&mut idx, inputs, &model.head, !model.rules.is_empty());
        http_parents.push(attached.parents);
        http_attachments.push(attached.placements);
    }
    for (gateway, lost) in grpc::settle(&idx, &http_models, &mut http_attachments) {
        let left = &http_attachments[lost.route];
        let on_listener = left
            .iter()
            .any(|a| a.gateway == gateway && a.listener == lost.listener);
        let parent_kept = left.iter().any(|a| a.parent == lost.parent);
        if let Some(g) = idx.gateways.get_mut(&gateway) {
            let parents = &mut http_parents[lost.route];
            lost.apply(g, parents, on_listener, parent_kept);
        }
    }
    // Service -> Gateways whose routes use it, for policy ancestors.
    let mut service_gateways: BTreeMap<&ObjectKey, BTreeSet<ObjectKey>> = BTreeMap::new();
    let mut placements: BTreeMap<ObjectKey, Vec<Placement<'_>>> = BTreeMap::new();
    for ((model, parents), attached) in http_models.iter().zip(http_parents).zip(http_attachments) {
        for a in &attached {
            for s in &model.head.services {
                service_gateways
                    .entry(s)
                    .or_default()
                    .insert(a.gateway.clone());
            }
        }
        for a in attached {
            placements.entry(a.gateway).or_default().push(Placement {
                route: model,
                listener: a.listener,
                hostnames: a.hostnames,
            });
        }
        outputs.add_route(&model.head, parents);
    }

    let mut l4_placements: BTreeMap<ObjectKey, Vec<l4::L4Placement>> = BTreeMap::new();
    let mut l4_parents = Vec::with_capacity(l4_models.len());
    for (route, model) in l4_models.iter().enumerate() {
        let attached = attachment::attach(&mut idx, inputs, &model.head, model.has_rule);
        for a in attached.placements {
            l4_placements
                .entry(a.gateway)
                .or_default()
                .push(l4::L4Placement {
                    route,
                    parent: a.parent,
                    listener: a.listener,
                    hostnames: a.hostnames,
                });
        }
        l4_parents.push(attached.parents);
    }
    for (key, list) in &mut l4_placements {
        let Some(gateway) = idx.gateways.get_mut(key) else {
            continue;
        };
        for lost in l4::settle(gateway, &l4_models, list) {
            let mine = |p: &&l4::L4Placement| p.route == lost.route;
            let on_listener = list
                .iter()
                .filter(mine)
                .any(|p| p.listener == lost.listener);
            let parent_kept = list.iter().filter(mine).any(|p| p.parent == lost.parent);
            let parents = &mut l4_parents[lost.route];
            lost.apply(gateway, parents, on_listener, parent_kept);
        }
    }
    for (model, parents) in l4_models.iter().zip(l4_parents) {
        outputs.add_route(&model.head, parents);
    }
    for (gateway, list) in &l4_placements {
        for p in list {
            for s in &l4_models[p.route].head.services {
                service_gateways
                    .entry(s)
                    .or_default()
                    .insert(gateway.clone());
            }
        }
    }
    outputs.backend_tls_policies = policy_statuses(resolver.backend_tls(), &service_gateways);

    for (name, class) in &idx.classes {
        outputs
            .gateway_classes
            .insert(name.clone(), class_status(class));
    }
    let GatewayIndex { gateways, .. } = idx;
    for (key, gateway) in gateways {
        let tables = route_table::build(
            &gateway,
            placements.get(&key).map(Vec::as_slice).unwrap_or_default(),
        );
        let routes = envoy::gateway::GatewayRoutes {
            gateway: &gateway,
            http: &tables,
            l4: l4_placements
                .get(&key)
                .map(Vec::as_slice)
                .unwrap_or_default(),
            l4_models: &l4_models,
        };
        let (resources, clusters) =
            envoy::gateway::resources(inputs, &routes, &options.listen_address);
        let status = gateway_status(&gateway);
        for set in &gateway.listener_sets {
            outputs.listener_sets.insert(
                set.key.clone(),
                ListenerSetOutput {
                    gateway: key.clone(),
                    status: listener_set_status(set, &gateway),
                },
            );
        }
        let accepted = holds(&status.conditions, spec::ACCEPTED);
        let output = if accepted {
            GatewayOutput {
                status,
                resources,
                clusters,
                infra: Some(infra::infra(&gateway)),
            }
        } else {
            GatewayOutput {
                status,
                resources: EnvoyResources::default(),
                clusters: Vec::new(),
                infra: None,
            }
        };
        outputs.gateways.insert(key, output);
    }
    outputs
}

/// Each policy's conditions under every Gateway whose routes use a Service
/// it targets.
fn policy_statuses(
    index: &backend_tls::BackendTlsIndex,
    service_gateways: &BTreeMap<&ObjectKey, BTreeSet<ObjectKey>>,
) -> BTreeMap<ObjectKey, status::PolicyStatus> {
    let mut out = BTreeMap::new();
    for (key, verdict) in &index.policies {
        let ancestors: BTreeSet<&ObjectKey> = verdict
            .services
            .iter()
            .filter_map(|s| service_gateways.get(s))
            .flatten()
            .collect();
        if ancestors.is_empty() {
            continue;
        }
        let conditions = verdict.conditions.clone().into_vec();
        let ancestors = ancestors
            .into_iter()
            .map(|g| status::PolicyAncestorStatus {
                ancestor_ref: status::ParentRef {
                    group: Some(gateways::GATEWAY_GROUP.to_string()),
                    kind: Some("Gateway".to_string()),
                    namespace: Some(g.namespace.clone()),
                    name: g.name.clone(),
                    section_name: None,
                    port: None,
                },
                controller_name: gateways::CONTROLLER_NAME,
                conditions: conditions.clone(),
            })
            .collect();
        out.insert(key.clone(), status::PolicyStatus { ancestors });
    }
    out
}

fn class_status(class: &gateways::ClassModel) -> GatewayClassStatus {
    GatewayClassStatus {
        conditions: class.conditions.clone().into_vec(),
        supported_features: if class.accepted() {
            features::SUPPORTED
                .iter()
                .map(|f| SupportedFeature {
                    name: (*f).to_string(),
                })
                .collect()
        } else {
            Vec::new()
        },
    }
}

/// The fast path when only EndpointSlices changed: `previous` with every
/// Gateway's endpoints recomputed from `inputs`, everything else kept. Equal
/// to a full translation of `inputs` when nothing but EndpointSlices differs
/// from the inputs `previous` came from.
pub fn refresh_endpoints(inputs: &Inputs, previous: &Outputs) -> Outputs {
    let mut out = previous.clone();
    for gateway in out.gateways.values_mut() {
        gateway.resources.endpoints = envoy::gateway::load_assignments(inputs, &gateway.clusters);
    }
    out
}

fn gateway_status(gateway: &GatewayModel) -> GatewayStatus {
    let mut conditions = Conditions::new(gateway.generation);
    let own = || gateway.listeners.iter().filter(|l| l.set.is_none());
    let total = own().count();
    let ready = own().filter(|l| l.is_ready()).count();
    let invalid: Vec<&str> = own()
        .filter(|l| !l.is_ready())
        .map(|l| l.name.as_str())
        .collect();
    if let Some(e) = &gateway.parameters_error {
        conditions.set(spec::ACCEPTED, false, spec::INVALID_PARAMETERS, e.clone());
    } else if let Some(e) = &gateway.address_error {
        conditions.set(spec::ACCEPTED, false, "UnsupportedAddress", e.clone());
    } else if ready == 0 {
        conditions.set(
            spec::ACCEPTED,
            false,
            spec::LISTENERS_NOT_VALID,
            if total == 0 {
                "the Gateway has no listeners".to_string()
            } else {
                format!("no listener is valid: {}", invalid.join(", "))
            },
        );
    } else if !invalid.is_empty() {
        conditions.set(
            spec::ACCEPTED,
            true,
            spec::LISTENERS_NOT_VALID,
            format!("invalid listeners are not served: {}", invalid.join(", ")),
        );
    } else {
        conditions.set(spec::ACCEPTED, true, "Accepted", "the Gateway is valid");
    }
    if conditions.is_true(spec::ACCEPTED) {
        conditions.set(
            spec::PROGRAMMED,
            false,
            spec::PENDING,
            "configuration translated; waiting for an address, an available Envoy and Envoy's acknowledgement",
        );
    } else {
        conditions.set(
            spec::PROGRAMMED,
            false,
            spec::INVALID,
            "the Gateway is not accepted",
        );
    }
    let unresolved: Vec<&str> = own()
        .filter(|l| {
            l.conditions
                .get(spec::RESOLVED_REFS)
                .is_some_and(|c| c.status == ConditionStatus::False)
        })
        .map(|l| l.name.as_str())
        .collect();
    match &gateway.backend_client {
        Some(Err(e)) => conditions.set(spec::RESOLVED_REFS, false, e.reason, e.message.clone()),
        _ if !unresolved.is_empty() => conditions.set(
            spec::RESOLVED_REFS,
            false,
            spec::LISTENERS_NOT_RESOLVED,
            format!(
                "listeners with unresolved references: {}",
                unresolved.join(", ")
            ),
        ),
        _ => conditions.set(
            spec::RESOLVED_REFS,
            true,
            "ResolvedRefs",
            "all references resolved",
        ),
    }
    if gateway.insecure_frontend {
        conditions.set(
            spec::INSECURE_FRONTEND_VALIDATION_MODE,
            true,
            "ConfigurationChanged",
            "spec.tls.frontend allows insecure fallback: clients without a valid certificate are served",
        );
    }
    let accepted = conditions.is_true(spec::ACCEPTED);
    let listeners = own().map(|l| listener_status(l, accepted)).collect();
    let attached = gateway
        .listener_sets
        .iter()
        .filter(|s| s.accepted())
        .count();
    GatewayStatus {
        conditions: conditions.into_vec(),
        listeners,
        attached_listener_sets: (gateway.allows_listener_sets || attached > 0)
            .then(|| i32::try_from(attached).unwrap_or(i32::MAX)),
    }
}

/// One listener's status; `Programmed` stays Pending for the status writer
/// to decide from what Envoy acknowledged. A ListenerSet's conflicted
/// listener says its conflict as the reason it is not programmed.
fn listener_status(l: &ListenerModel, parent_accepted: bool) -> ListenerStatus {
    let mut c = l.conditions.clone();
    if l.is_ready() && !parent_accepted {
        c.set(
            spec::PROGRAMMED,
            false,
            spec::INVALID,
            "the Gateway is not accepted",
        );
    } else if l.is_ready() {
        c.set(
            spec::PROGRAMMED,
            false,
            spec::PENDING,
            "waiting for Envoy to acknowledge the configuration",
        );
    } else {
        let conflict = l
            .conditions
            .get(spec::CONFLICTED)
            .filter(|c| l.set.is_some() && c.status == conditions::ConditionStatus::True)
            .map(|c| c.reason);
        c.set(
            spec::PROGRAMMED,
            false,
            conflict.unwrap_or(spec::INVALID),
            "the listener is not valid",
        );
    }
    ListenerStatus {
        name: l.name.clone(),
        supported_kinds: l.kinds.clone(),
        attached_routes: l.attached_routes,
        conditions: c.into_vec(),
    }
}

/// A ListenerSet's status: an accepted one is Programmed=False/Pending until
/// the status writer sees its Gateway programmed.
fn listener_set_status(
    set: &listener_sets::ListenerSetModel,
    gateway: &GatewayModel,
) -> ListenerSetStatus {
    let mut conditions = set.conditions.clone();
    let accepted = set.accepted();
    if accepted {
        conditions.set(
            spec::PROGRAMMED,
            false,
            spec::PENDING,
            format!(
                "listeners translated; waiting for Gateway {} to be programmed",
                gateway.key
            ),
        );
    }
    let listeners = set
        .listeners(gateway)
        .iter()
        .map(|l| listener_status(l, accepted))
        .collect();
    ListenerSetStatus {
        conditions: conditions.into_vec(),
        listeners,
    }
}
