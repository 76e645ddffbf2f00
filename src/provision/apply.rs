//! Applies each Gateway's desired objects with server-side apply (field
//! manager `portico`, forced), and removes the fleet of a Gateway that left
//! portico's classes (an invalid Gateway keeps its fleet). Objects that the
//! Gateway does not own (no owner reference to it) are never applied over nor
//! deleted: applying fails with `ProvisioningFailed` naming the object.
//!
//! In: `Inputs`, translation's `Infra` per Gateway, the live Deployments and
//! Services of the fleets (for drift). Out: API calls, and an Event on the
//! Gateway when applying fails. A Gateway is re-applied when its desired
//! objects change, when its live Deployment's spec (its `generation`) or its
//! Service's spec differ from what the last apply returned (manual drift), or
//! on the periodic resync. Status updates of those objects cost nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use gateway_api::experimental::gateways::Gateway;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::desired::{DesiredObjects, GatewayTls, Settings, desired_objects, fleet_name};
use crate::events::GatewayEvents;
use crate::identity::CONTROLLER_NAME;
use crate::identity::FIELD_MANAGER;
use crate::identity::content_version;
use crate::inputs::{Inputs, ObjectKey};
use crate::metrics::ControlMetrics;
use crate::pki::{Authority, Issued};
use crate::translate::Outputs;
use crate::translate::index::infra::Infra;

/// A Gateway's rendered objects and what they were rendered from.
#[derive(Clone, Debug)]
struct Rendered {
    gateway_version: Option<String>,
    infra: Infra,
    tls: GatewayTls,
    desired: Arc<DesiredObjects>,
    fingerprint: String,
}

/// What portico last applied for one Gateway.
#[derive(Clone, Debug, Default)]
struct Applied {
    fingerprint: String,
    /// What the last apply returned: the Deployment's generation and a hash
    /// of the Service's spec.
    observed: Observed,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Observed {
    deployment_generation: Option<i64>,
    service_spec: Option<String>,
}

impl Observed {
    fn of(deployment: Option<&Deployment>, service: Option<&Service>) -> Self {
        Self {
            deployment_generation: deployment.and_then(|d| d.metadata.generation),
            service_spec: service.and_then(|s| {
                let spec = serde_json::to_string(s.spec.as_ref()?).ok()?;
                Some(content_version(spec.as_bytes()))
            }),
        }
    }
}

/// The live objects of the fleets, as the watches see them.
pub trait LiveFleet {
    fn deployment(&self, namespace: &str, name: &str) -> Option<Arc<Deployment>>;
    fn service(&self, namespace: &str, name: &str) -> Option<Arc<Service>>;
    /// Every fleet Deployment portico created: (namespace, Gateway name).
    fn fleets(&self) -> Vec<ObjectKey>;
}

pub struct Provisioner {
    client: Client,
    settings: Settings,
    authority: Arc<Authority>,
    applied: BTreeMap<ObjectKey, Applied>,
    /// Each Gateway's rendered objects and what they were rendered from.
    rendered: BTreeMap<ObjectKey, Rendered>,
    /// Renders since start (a round that changes nothing renders nothing).
    renders: u64,
    certificates: BTreeMap<ObjectKey, Issued>,
    metrics: Option<Arc<ControlMetrics>>,
}

impl Provisioner {
    pub fn new(client: Client, settings: Settings, authority: Arc<Authority>) -> Self {
        Self {
            client,
            settings,
            authority,
            applied: BTreeMap::new(),
            rendered: BTreeMap::new(),
            renders: 0,
            certificates: BTreeMap::new(),
            metrics: None,
        }
    }

    /// Counts failures in `metrics` by step.
    pub fn with_metrics(mut self, metrics: Arc<ControlMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn failed(&self, step: &'static str) {
        if let Some(m) = &self.metrics {
            m.provision_failed(step);
        }
    }

    /// Signs with `authority` from now on (a CA rotation): Gateways'
    /// certificates of another CA are reissued, and every fleet is re-applied
    /// so its Secret carries the new trust bundle.
    pub fn set_authority(&mut self, authority: Arc<Authority>) {
        self.authority = authority;
        self.applied.clear();
    }

    /// Forgets what was applied, so the next round re-applies everything
    /// (corrects drift in objects portico does not watch).
    pub fn resync(&mut self) {
        self.applied.clear();
    }

    /// One round: apply what changed or drifted, remove fleets of Gateways
    /// that left portico's classes. Returns the number of Gateways applied.
    pub async fn reconcile(
        &mut self,
        inputs: &Inputs,
        outputs: &Outputs,
        live: &(dyn LiveFleet + Sync),
        events: &GatewayEvents,
    ) -> usize {
        let mut applied = 0;
        for (key, output) in &outputs.gateways {
            let (Some(infra), Some(gateway)) = (&output.infra, inputs.gateways.get(key)) else {
                continue;
            };
            let (desired, fingerprint) = match self.desired(key, gateway, infra).await {
                Ok(r) => r,
                Err((step, e)) => {
                    self.failed(step);
                    events
                        .warn(gateway, "ProvisioningFailed", "Provision", e)
                        .await;
                    continue;
                }
            };
            let name = fleet_name(&key.name);
            let now = Observed::of(
                live.deployment(&key.namespace, &name).as_deref(),
                live.service(&key.namespace, &name).as_deref(),
            );
            if let Some(last) = self.applied.get(key)
                && last.fingerprint == fingerprint
                && last.observed.deployment_generation.is_some()
                && last.observed == now
            {
                continue;
            }
            match self.apply(gateway, &desired).await {
                Ok(observed) => {
                    applied += 1;
                    events.clear(key, "ProvisioningFailed");
                    self.applied.insert(
                        key.clone(),
                        Applied {
                            fingerprint,
                            observed,
                        },
                    );
                }
                Err(e) => {
                    self.applied.remove(key);
                    self.failed("apply");
                    tracing::warn!(gateway = %key, error = %e, "provisioning failed");
                    events
                        .warn(
                            gateway,
                            "ProvisioningFailed",
                            "Provision",
                            format!("applying the Envoy fleet failed: {e}"),
                        )
                        .await;
                }
            }
        }
        // A fleet goes only with its Gateway (owner references) or when the
        // Gateway leaves portico's classes; an invalid edit never removes it.
        for fleet in live.fleets() {
            if let Some(gateway) = inputs.gateways.get(&fleet)
                && !of_portico_class(inputs, gateway)
            {
                self.remove(gateway).await;
            }
        }
        self.applied.retain(|k, _| outputs.gateways.contains_key(k));
        self.rendered
            .retain(|k, _| outputs.gateways.contains_key(k));
        self.certificates
            .retain(|k, _| outputs.gateways.contains_key(k));
        applied
    }

    /// The Gateway's certificate and its fleet's objects; on failure, the
    /// step that failed (for the metric) and why.
    async fn desired(
        &mut self,
        key: &ObjectKey,
        gateway: &Gateway,
        infra: &Infra,
    ) -> Result<(Arc<DesiredObjects>, String), (&'static str, String)> {
        let client = self
            .certificate(key)
            .await
            .map_err(|e| ("certificate", e))?;
        let tls = GatewayTls {
            ca_pem: self.authority.cert_pem().to_string(),
            client,
        };
        self.render(key, gateway, infra, tls)
            .map_err(|e| ("render", e))
    }

    /// The Gateway's objects and their fingerprint, rendered again only when
    /// what they are made of changed: the Gateway (its resourceVersion), its
    /// `Infra` or its certificates. Rounds come with every Envoy ACK; most
    /// change nothing here.
    fn render(
        &mut self,
        key: &ObjectKey,
        gateway: &Gateway,
        infra: &Infra,
        tls: GatewayTls,
    ) -> Result<(Arc<DesiredObjects>, String), String> {
        let version = gateway.metadata.resource_version.clone();
        if let Some(r) = self.rendered.get(key)
            && r.gateway_version == version
            && version.is_some()
            && r.infra == *infra
            && r.tls == tls
        {
            return Ok((Arc::clone(&r.desired), r.fingerprint.clone()));
        }
        self.renders += 1;
        let desired = Arc::new(desired_objects(gateway, infra, &self.settings, &tls)?);
        let fingerprint = fingerprint(&desired);
        self.rendered.insert(
            key.clone(),
            Rendered {
                gateway_version: version,
                infra: infra.clone(),
                tls,
                desired: Arc::clone(&desired),
                fingerprint: fingerprint.clone(),
            },
        );
        Ok((desired, fingerprint))
    }

    /// How many times a fleet was rendered since start.
    pub fn renders(&self) -> u64 {
        self.renders
    }

    /// The Gateway's client certificate: the one in use while it is fresh,
    /// else the one in its Secret if fresh, else a new one.
    async fn certificate(&mut self, key: &ObjectKey) -> Result<Issued, String> {
        let now = SystemTime::now();
        if let Some(c) = self.certificates.get(key)
            && !self.authority.needs_renewal(&c.cert_pem, now)
        {
            return Ok(c.clone());
        }
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &key.namespace);
        let existing = secrets
            .get_opt(&fleet_name(&key.name))
            .await
            .map_err(|e| format!("reading the xDS certificate Secret: {e}"))?
            .and_then(|s| {
                let data = s.data?;
                let text = |k: &str| String::from_utf8(data.get(k)?.0.clone()).ok();
                Some(Issued {
                    cert_pem: text("tls.crt")?,
                    key_pem: text("tls.key")?,
                })
            })
            .filter(|c| !self.authority.needs_renewal(&c.cert_pem, now));
        let issued = match existing {
            Some(c) => c,
            None => self
                .authority
                .issue_gateway(&crate::identity::gateway_id(key), now)
                .map_err(|e| e.to_string())?,
        };
        self.certificates.insert(key.clone(), issued.clone());
        Ok(issued)
    }

    async fn apply(&self, gateway: &Gateway, d: &DesiredObjects) -> Result<Observed, ApplyError> {
        let ns = gateway.namespace().unwrap_or_default();
        let owner = gateway.uid().unwrap_or_default();
        let c = &self.client;
        apply_one::<ServiceAccount>(c, &ns, &owner, &d.service_account).await?;
        apply_one::<ConfigMap>(c, &ns, &owner, &d.config_map).await?;
        apply_one::<Secret>(c, &ns, &owner, &d.secret).await?;
        let deployment = apply_one::<Deployment>(c, &ns, &owner, &d.deployment).await?;
        let service = apply_one::<Service>(c, &ns, &owner, &d.service).await?;
        Ok(Observed::of(Some(&deployment), Some(&service)))
    }

    async fn remove(&mut self, gateway: &Gateway) {
        let key = &ObjectKey::of(gateway);
        let owner = gateway.uid().unwrap_or_default();
        let name = fleet_name(&key.name);
        tracing::info!(gateway = %key, "removing the Envoy fleet of a Gateway that left portico's classes");
        let dp = DeleteParams::background();
        let c = &self.client;
        let ns = &key.namespace;
        let results = [
            delete::<Service>(c, ns, &name, &owner, &dp).await,
            delete::<Deployment>(c, ns, &name, &owner, &dp).await,
            delete::<Secret>(c, ns, &name, &owner, &dp).await,
            delete::<ConfigMap>(c, ns, &name, &owner, &dp).await,
            delete::<ServiceAccount>(c, ns, &name, &owner, &dp).await,
        ];
        for e in results.into_iter().filter_map(Result::err) {
            self.failed("remove");
            tracing::warn!(gateway = %key, error = %e, "removing a fleet object failed");
        }
        self.applied.remove(key);
        self.certificates.remove(key);
    }
}

fn fingerprint(d: &DesiredObjects) -> String {
    let text = serde_json::to_string(&(
        &d.service_account,
        &d.config_map,
        &d.secret,
        &d.deployment,
        &d.service,
    ))
    .unwrap_or_default();
    content_version(text.as_bytes())
}

/// Why applying a fleet failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(
        "{kind} {namespace}/{name} exists and is not owned by this Gateway; portico does not \
         take over objects it did not create (remove or rename it)"
    )]
    NotOwned {
        kind: String,
        namespace: String,
        name: String,
    },
    #[error(transparent)]
    Api(#[from] kube::Error),
}

/// Whether `object` is owned by the object with UID `owner`.
fn owned_by<K: Resource>(object: &K, owner: &str) -> bool {
    object.owner_references().iter().any(|o| o.uid == owner)
}

/// Applies `object` unless an object of that name exists that the Gateway
/// with UID `owner` does not own.
async fn apply_one<K>(
    client: &Client,
    namespace: &str,
    owner: &str,
    object: &K,
) -> Result<K, ApplyError>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    if let Some(live) = api.get_opt(&object.name_any()).await?
        && !owned_by(&live, owner)
    {
        return Err(ApplyError::NotOwned {
            kind: K::kind(&()).into_owned(),
            namespace: namespace.to_string(),
            name: object.name_any(),
        });
    }
    let mut body = serde_json::to_value(object).map_err(kube::Error::SerdeError)?;
    // Server-side apply needs the type in the body.
    body["apiVersion"] = K::api_version(&()).into();
    body["kind"] = K::kind(&()).into();
    Ok(api
        .patch(
            &object.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(body),
        )
        .await?)
}

/// Deletes the object if the Gateway with UID `owner` owns it (and it is
/// still that object when the API server deletes it).
async fn delete<K>(
    client: &Client,
    namespace: &str,
    name: &str,
    owner: &str,
    dp: &DeleteParams,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let Some(live) = api.get_opt(name).await? else {
        return Ok(());
    };
    if !owned_by(&live, owner) {
        tracing::warn!(kind = %K::kind(&()), %namespace, %name, "not removed: not owned by the Gateway");
        return Ok(());
    }
    let dp = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: live.uid(),
            resource_version: None,
        }),
        ..dp.clone()
    };
    match api.delete(name, &dp).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

impl LiveFleet for crate::inputs::watches::Stores {
    fn deployment(&self, namespace: &str, name: &str) -> Option<Arc<Deployment>> {
        self.deployments
            .get(&kube::runtime::reflector::ObjectRef::new(name).within(namespace))
    }

    fn service(&self, namespace: &str, name: &str) -> Option<Arc<Service>> {
        self.store::<Service>()?
            .get(&kube::runtime::reflector::ObjectRef::new(name).within(namespace))
    }

    fn fleets(&self) -> Vec<ObjectKey> {
        self.deployments
            .state()
            .iter()
            .filter_map(|d| fleet_gateway(d))
            .collect()
    }
}

/// The Gateway a fleet Deployment belongs to: the Gateway its owner reference
/// names (in full), else its Gateway label (shortened, with a hash, past 63
/// characters).
fn fleet_gateway(d: &Deployment) -> Option<ObjectKey> {
    let owner = d
        .owner_references()
        .iter()
        .find(|o| o.kind == "Gateway" && o.api_version.starts_with("gateway.networking.k8s.io/"))
        .map(|o| o.name.clone());
    let gateway = owner.or_else(|| d.labels().get(super::names::GATEWAY_NAME_LABEL).cloned())?;
    Some(ObjectKey::new(d.namespace()?, gateway))
}

/// Whether `gateway` names a GatewayClass of portico's controller (valid or
/// not).
fn of_portico_class(inputs: &Inputs, gateway: &Gateway) -> bool {
    inputs
        .gateway_classes
        .get(&ObjectKey::new(
            "",
            gateway.spec.gateway_class_name.as_str(),
        ))
        .is_some_and(|c| c.spec.controller_name == CONTROLLER_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoFleets;

    impl LiveFleet for NoFleets {
        fn deployment(&self, _: &str, _: &str) -> Option<Arc<Deployment>> {
            None
        }
        fn service(&self, _: &str, _: &str) -> Option<Arc<Service>> {
            None
        }
        fn fleets(&self) -> Vec<ObjectKey> {
            Vec::new()
        }
    }

    /// A client whose every call fails; the rounds below make none.
    fn offline_client() -> Client {
        let service = tower::service_fn(|_: http::Request<kube::client::Body>| async {
            Err::<http::Response<kube::client::Body>, _>(std::io::Error::other(
                "no API server in this test",
            ))
        });
        Client::new(service, "default")
    }

    #[test]
    fn a_fleet_names_its_gateway_in_full_even_past_the_label_limit() {
        let long = "g".repeat(200);
        let deployment: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "envoy-long",
                "namespace": "apps",
                "labels": {super::super::names::GATEWAY_NAME_LABEL: &long[..63]},
                "ownerReferences": [{
                    "apiVersion": "gateway.networking.k8s.io/v1",
                    "kind": "Gateway",
                    "name": long,
                    "uid": "u",
                }],
            }
        }))
        .expect("deployment");
        assert_eq!(
            fleet_gateway(&deployment),
            Some(ObjectKey::new("apps", long.clone())),
            "a Gateway that leaves portico's classes must be found to remove its fleet"
        );
        let mut labelled_only = deployment.clone();
        labelled_only.metadata.owner_references = None;
        assert_eq!(
            fleet_gateway(&labelled_only),
            Some(ObjectKey::new("apps", &long[..63]))
        );
    }

    #[tokio::test]
    async fn fleet_state_of_removed_gateways_is_forgotten() {
        let now = SystemTime::now();
        let authority = Arc::new(Authority::generate(now).expect("CA"));
        let issued = authority.issue_gateway("default/a", now).expect("issued");
        let mut p = Provisioner::new(offline_client(), Settings::default(), authority);
        for g in ["a", "b"] {
            let key = ObjectKey::new("default", g);
            p.applied.insert(key.clone(), Applied::default());
            p.certificates.insert(key, issued.clone());
        }
        let events = GatewayEvents::disabled();
        let inputs = Inputs::default();
        p.reconcile(
            &inputs,
            &Outputs::of_gateways(&["a"], false),
            &NoFleets,
            &events,
        )
        .await;
        let a = vec![ObjectKey::new("default", "a")];
        assert_eq!(p.applied.keys().cloned().collect::<Vec<_>>(), a);
        assert_eq!(p.certificates.keys().cloned().collect::<Vec<_>>(), a);
        p.reconcile(
            &inputs,
            &Outputs::of_gateways(&[], false),
            &NoFleets,
            &events,
        )
        .await;
        assert!(p.applied.is_empty() && p.certificates.is_empty());
    }
}
