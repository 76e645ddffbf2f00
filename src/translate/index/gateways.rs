//! GatewayClasses and Gateways: which classes are ours, which Gateways we serve,
//! and the listeners of each Gateway (its own, then those of the ListenerSets
//! it accepts, see `listener_sets`) with every listener validated (port,
//! protocol, hostname, allowed routes) and checked for conflicts on a shared port.
//!
//! In: `Inputs`. Out: a `GatewayIndex` the route attachment reads, plus the
//! class and listener conditions that end up in statuses.

use gateway_api::experimental::gateways::Gateway;
use kube::ResourceExt;

use super::listeners::{
    listener_certificates, listener_client_validation, listener_model, mark_conflicts,
    mark_duplicate_names, mark_overlapping_tls, mark_reserved_ports,
};
use super::model::{ClassModel, GatewayIndex, GatewayModel, ListenerModel, ReservedPort};
use super::{certificates, client_validation, infra, listener_sets};
use crate::identity::CONTROLLER_NAME;
use crate::inputs::parameters::GatewayParametersSpec;
use crate::inputs::{Inputs, ObjectKey};
use crate::translate::conditions::{Conditions, spec};

pub fn index(inputs: &Inputs, shift_privileged: bool, reserved: &[ReservedPort]) -> GatewayIndex {
    let mut idx = GatewayIndex::default();
    for class in inputs.gateway_classes.values() {
        if class.spec.controller_name != CONTROLLER_NAME {
            continue;
        }
        let mut conditions = Conditions::new(class.metadata.generation);
        let parameters = match infra::class_parameters(inputs, class) {
            Ok(p) => {
                conditions.set(
                    spec::ACCEPTED,
                    true,
                    "Accepted",
                    "portico accepts this class",
                );
                p
            }
            Err(e) => {
                conditions.set(spec::ACCEPTED, false, spec::INVALID_PARAMETERS, e);
                None
            }
        };
        idx.classes.insert(
            class.name_any(),
            ClassModel {
                name: class.name_any(),
                conditions,
                parameters,
            },
        );
    }
    let sets = listener_sets::by_parent(inputs);
    for gateway in inputs.gateways.values() {
        let Some(class) = idx.classes.get(&gateway.spec.gateway_class_name) else {
            continue;
        };
        // A Gateway of portico's class that is not accepted is reported
        // (and keeps what it served, see `last_good`) rather than ignored.
        let class_error = (!class.accepted()).then(|| {
            let why = class
                .conditions
                .get(spec::ACCEPTED)
                .map(|c| c.message.to_string())
                .unwrap_or_default();
            format!(
                "spec.gatewayClassName: GatewayClass {} is not accepted: {why}",
                class.name
            )
        });
        let own = infra::gateway_parameters(inputs, gateway);
        let parameters = infra::merge(
            class.parameters.as_deref().map(|p| &p.spec),
            own.as_ref()
                .ok()
                .and_then(|p| p.as_deref())
                .map(|p| &p.spec),
        );
        let shift = shift_privileged && parameters.listener_port_as_container_port != Some(true);
        let mut model = gateway_model(inputs, gateway, shift, reserved);
        model.parameters = parameters;
        model.parameters_error = class_error.or(own.err());
        let candidates = sets.get(&model.key).map(Vec::as_slice).unwrap_or_default();
        let merge = listener_sets::Merge {
            inputs,
            shift_privileged: shift,
            reserved,
        };
        merge.attach(gateway, &mut model, candidates);
        mark_overlapping_tls(&mut model.listeners);
        for set in &model.listener_sets {
            idx.listener_sets.insert(set.key.clone(), model.key.clone());
        }
        idx.gateways.insert(model.key.clone(), model);
    }
    idx
}

fn gateway_model(
    inputs: &Inputs,
    gateway: &Gateway,
    shift_privileged: bool,
    reserved: &[ReservedPort],
) -> GatewayModel {
    let generation = gateway.metadata.generation;
    let namespace = gateway.metadata.namespace.as_deref().unwrap_or_default();
    let mut listeners: Vec<ListenerModel> = gateway
        .spec
        .listeners
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let mut model = listener_model(l, generation, shift_privileged);
            listener_certificates(inputs, "Gateway", namespace, i, l, &mut model);
            listener_client_validation(inputs, gateway, &mut model);
            model
        })
        .collect();
    mark_duplicate_names(&mut listeners);
    mark_reserved_ports(&mut listeners, reserved);
    mark_conflicts(&mut listeners);
    GatewayModel {
        key: ObjectKey::of(gateway),
        generation,
        listeners,
        listener_sets: Vec::new(),
        allows_listener_sets: listener_sets::allows_any(gateway),
        address_error: address_error(gateway),
        parameters: GatewayParametersSpec::default(),
        parameters_error: None,
        backend_client: gateway
            .spec
            .tls
            .as_ref()
            .and_then(|t| t.backend.as_ref())
            .and_then(|b| b.client_certificate_ref.as_ref())
            .map(|r| certificates::resolve_backend_client(inputs, namespace, r)),
        insecure_frontend: client_validation::allows_insecure_fallback(gateway),
    }
}

fn address_error(gateway: &Gateway) -> Option<String> {
    for (i, a) in gateway.spec.addresses.iter().flatten().enumerate() {
        let kind = a.r#type.as_deref().unwrap_or("IPAddress");
        if kind != "IPAddress" {
            return Some(format!(
                "spec.addresses[{i}].type {kind:?} is not supported; use IPAddress"
            ));
        }
        let value = a.value.as_deref().unwrap_or_default();
        if value.parse::<std::net::IpAddr>().is_err() {
            return Some(format!(
                "spec.addresses[{i}].value {value:?} is not an IP address"
            ));
        }
    }
    None
}
