//! Which changes wake translation. Every event of the Kubernetes source is
//! judged here: a GatewayClass or Gateway of ours, a Secret or ConfigMap a
//! Gateway or policy names, or a Service (and its EndpointSlices) that a
//! route of one of our Gateways references.
//!
//! Services are not read from the routes here: translation reports what the
//! routes it attached reference (`translate::report::references`) and the
//! runtime hands that report over (`follow`). A new route naming a new
//! Service wakes translation as a route change; its report then names the
//! Service. A Service change that arrives between the snapshot and the
//! report is judged by the older report, so when a report names a Service
//! anew, `missed` compares the stores with the last published snapshot and
//! the batcher builds a new one if that Service or its EndpointSlices
//! differ.

use std::collections::{BTreeMap, BTreeSet};

use gateway_api::experimental::gateways::Gateway;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use super::{Inputs, ObjectKey, SERVICE_NAME_LABEL};
use crate::identity::CONTROLLER_NAME;

/// What a change should wake.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wake {
    pub translate: bool,
    pub status: bool,
}

/// The references that make Services, EndpointSlices, Secrets and ConfigMaps
/// matter, consulted for every event. Classes, Gateways, Secrets and
/// ConfigMaps are read from each snapshot (Secrets and ConfigMaps are handed
/// to their followers, which fetch those alone, before translation needs
/// them); Services are what translation reported (`follow`).
#[derive(Debug, Default)]
pub struct Relevance {
    classes: BTreeSet<String>,
    /// Gateways of our classes in the last snapshot: a change moving one to
    /// another class must still wake translation (its fleet goes).
    gateways: BTreeSet<ObjectKey>,
    /// Every Service the routes of our Gateways reference, as translation
    /// resolved them (`Outputs::references`).
    services: BTreeSet<ObjectKey>,
    /// Listener `certificateRefs`.
    secrets: BTreeSet<ObjectKey>,
    /// BackendTLSPolicy `caCertificateRefs`.
    config_maps: BTreeSet<ObjectKey>,
}

impl Relevance {
    /// Our class names and Gateways, every Secret a listener (of a Gateway
    /// or a ListenerSet) or a Gateway's backend TLS names, every CA
    /// ConfigMap; `services` as translation last reported them.
    pub fn of(inputs: &Inputs, services: BTreeSet<ObjectKey>) -> Self {
        let classes: BTreeSet<String> = inputs
            .gateway_classes
            .values()
            .filter(|c| c.spec.controller_name == CONTROLLER_NAME)
            .map(|c| c.name_any())
            .collect();
        let gateways = inputs
            .gateways
            .iter()
            .filter(|(_, g)| classes.contains(&g.spec.gateway_class_name))
            .map(|(k, _)| k.clone())
            .collect();
        let mut secrets = BTreeSet::new();
        let mut certificate = |namespace: &str, name: &str, ns: &Option<String>| {
            secrets.insert(ObjectKey::new(
                ns.clone().unwrap_or_else(|| namespace.to_string()),
                name.to_string(),
            ));
        };
        // Gateways and ListenerSets: listeners of two generated types that
        // share field names.
        macro_rules! listener_certificates {
            ($objects:expr) => {
                for object in $objects {
                    let namespace = object.namespace().unwrap_or_default();
                    for l in &object.spec.listeners {
                        let tls = l.tls.iter();
                        for r in tls.flat_map(|t| t.certificate_refs.iter().flatten()) {
                            certificate(&namespace, &r.name, &r.namespace);
                        }
                    }
                }
            };
        }
        listener_certificates!(inputs.gateways.values());
        listener_certificates!(inputs.listener_sets.values());
        let mut config_maps = BTreeSet::new();
        for gateway in inputs.gateways.values() {
            let namespace = gateway.namespace().unwrap_or_default();
            let Some(tls) = &gateway.spec.tls else {
                continue;
            };
            if let Some(r) = tls
                .backend
                .as_ref()
                .and_then(|b| b.client_certificate_ref.as_ref())
            {
                secrets.insert(ObjectKey::new(
                    r.namespace.clone().unwrap_or_else(|| namespace.clone()),
                    r.name.clone(),
                ));
            }
            let Some(frontend) = &tls.frontend else {
                continue;
            };
            let default = frontend.default.validation.iter().flat_map(|v| {
                v.ca_certificate_refs
                    .iter()
                    .map(|r| (r.namespace.as_ref(), &r.name))
            });
            let per_port = frontend.per_port.iter().flatten().flat_map(|p| {
                p.tls.validation.iter().flat_map(|v| {
                    v.ca_certificate_refs
                        .iter()
                        .map(|r| (r.namespace.as_ref(), &r.name))
                })
            });
            for (ns, name) in default.chain(per_port) {
                config_maps.insert(ObjectKey::new(
                    ns.cloned().unwrap_or_else(|| namespace.clone()),
                    name.clone(),
                ));
            }
        }
        for policy in inputs.backend_tls_policies.values() {
            let namespace = policy.namespace().unwrap_or_default();
            let refs = policy.spec.validation.ca_certificate_refs.iter().flatten();
            for r in refs {
                config_maps.insert(ObjectKey::new(namespace.clone(), r.name.clone()));
            }
        }
        Self {
            classes,
            gateways,
            services,
            secrets,
            config_maps,
        }
    }

    /// Takes the Services translation reports as referenced; returns those
    /// that were not referenced before.
    pub fn follow(&mut self, services: BTreeSet<ObjectKey>) -> BTreeSet<ObjectKey> {
        let new = services.difference(&self.services).cloned().collect();
        self.services = services;
        new
    }

    pub fn services(&self) -> &BTreeSet<ObjectKey> {
        &self.services
    }

    pub fn secrets(&self) -> &BTreeSet<ObjectKey> {
        &self.secrets
    }

    pub fn config_maps(&self) -> &BTreeSet<ObjectKey> {
        &self.config_maps
    }

    pub fn gateway(&self, g: &Gateway) -> Wake {
        translate_if(
            self.classes.contains(&g.spec.gateway_class_name)
                || self.gateways.contains(&ObjectKey::of(g)),
        )
    }

    pub fn service(&self, s: &Service) -> Wake {
        Wake {
            translate: self.services.contains(&ObjectKey::of(s)),
            status: owned(s),
        }
    }

    pub fn slice(&self, s: &EndpointSlice) -> Wake {
        let service = s.labels().get(SERVICE_NAME_LABEL).cloned();
        let key = ObjectKey::new(
            s.namespace().unwrap_or_default(),
            service.unwrap_or_default(),
        );
        translate_if(self.services.contains(&key))
    }
}

pub fn always<K>(_: &K) -> Wake {
    translate_if(true)
}

fn translate_if(yes: bool) -> Wake {
    Wake {
        translate: yes,
        status: false,
    }
}

fn owned<K: ResourceExt>(o: &K) -> bool {
    o.labels()
        .get("app.kubernetes.io/managed-by")
        .map(String::as_str)
        == Some("portico")
}

/// Whether the stores hold a change to one of `services` (the Service or
/// one of its EndpointSlices) that `snapshot` lacks.
pub fn missed(
    services: &BTreeSet<ObjectKey>,
    live: &Store<Service>,
    slices: &Store<EndpointSlice>,
    snapshot: &Inputs,
) -> bool {
    let version = |o: Option<&Service>| o.and_then(|s| s.resource_version());
    let changed = services.iter().any(|key| {
        let now = live.get(&ObjectRef::new(&key.name).within(&key.namespace));
        version(now.as_deref()) != version(snapshot.services.get(key).map(|s| s.as_ref()))
    });
    if changed {
        return true;
    }
    // Each wanted Service's slices as (name, resourceVersion), sorted.
    type Versions = Vec<(String, Option<String>)>;
    let mut now: BTreeMap<ObjectKey, Versions> = BTreeMap::new();
    for s in slices.state() {
        let Some(service) = s.labels().get(SERVICE_NAME_LABEL) else {
            continue;
        };
        let key = ObjectKey::new(s.namespace().unwrap_or_default(), service.clone());
        if services.contains(&key) {
            now.entry(key)
                .or_default()
                .push((s.name_any(), s.resource_version()));
        }
    }
    services.iter().any(|key| {
        let mut live = now.remove(key).unwrap_or_default();
        live.sort();
        let mut then: Versions = snapshot
            .slices_of(key)
            .map(|s| (s.name_any(), s.resource_version()))
            .collect();
        then.sort();
        live != then
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::files::parse_documents;

    #[test]
    fn only_referenced_services_and_slices_wake_translation() {
        let yaml = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\n\
                    metadata: {name: ours}\nspec: {controllerName: portico.dev/gateway-controller}\n---\n\
                    apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n\
                    metadata: {name: gw, namespace: web}\nspec: {gatewayClassName: ours, listeners: []}\n---\n\
                    apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
                    metadata: {name: r, namespace: web}\n\
                    spec:\n  parentRefs: [{name: gw}]\n  rules:\n  - backendRefs: [{name: app, port: 80}, {name: db, namespace: data, port: 5432}]\n---\n\
                    apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
                    metadata: {name: theirs, namespace: web}\n\
                    spec:\n  parentRefs: [{name: other}]\n  rules:\n  - backendRefs: [{name: elsewhere, port: 80}]\n";
        let mut b = crate::inputs::InputsBuilder::default();
        for o in parse_documents(std::path::Path::new("t.yaml"), yaml).expect("parses") {
            b.insert(o);
        }
        let inputs = b.build();
        let outputs = crate::translate::translate(&inputs);
        let r = Relevance::of(&inputs, outputs.referenced_services());
        let service = |ns: &str, name: &str| {
            let mut s = Service::default();
            s.metadata.namespace = Some(ns.into());
            s.metadata.name = Some(name.into());
            s
        };
        assert!(r.service(&service("web", "app")).translate);
        assert!(r.service(&service("data", "db")).translate);
        assert!(!r.service(&service("web", "db")).translate);
        assert!(
            !r.service(&service("web", "elsewhere")).translate,
            "a route naming no Gateway of ours references nothing that matters"
        );
        let mut fleet = service("web", "envoy-gw");
        fleet
            .labels_mut()
            .insert("app.kubernetes.io/managed-by".into(), "portico".into());
        assert_eq!(
            r.service(&fleet),
            Wake {
                translate: false,
                status: true
            },
            "a fleet's Service wakes the status writer only"
        );
        let mut slice = EndpointSlice::default();
        slice.metadata.namespace = Some("web".into());
        slice.metadata.name = Some("app-x1".into());
        slice
            .labels_mut()
            .insert(SERVICE_NAME_LABEL.into(), "app".into());
        assert!(r.slice(&slice).translate);
        slice
            .labels_mut()
            .insert(SERVICE_NAME_LABEL.into(), "other".into());
        assert!(!r.slice(&slice).translate);

        let gateway = |name: &str, class: &str| -> Gateway {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "web"},
                "spec": {"gatewayClassName": class, "listeners": []}
            }))
            .expect("gateway")
        };
        assert!(r.gateway(&gateway("new", "ours")).translate);
        assert!(!r.gateway(&gateway("new", "theirs")).translate);
        assert!(
            r.gateway(&gateway("gw", "theirs")).translate,
            "a Gateway leaving our class still wakes translation"
        );
    }
}
