//! Keep last good: a Gateway that was accepted keeps serving what it was last
//! accepted with while a later edit makes it invalid (its class or its own
//! parameters, its addresses), instead of losing its fleet, its address and
//! its traffic to a typo; a listener whose certificate Secret is deleted or
//! broken keeps serving the last valid certificate (`certificates`).
//!
//! In: the fresh `Outputs` of a translation and the `LastGood` of the one
//! before. Out: the outputs with every such Gateway's last accepted Envoy
//! resources and infrastructure put back, its conditions saying what is wrong
//! and that the last accepted configuration is still served, and the
//! `LastGood` for the next translation. Pure, like translation: the caller
//! (the translator loop) carries `LastGood` from one snapshot to the next.
//! A Gateway leaves the memory when it is deleted or leaves portico's
//! classes; a restarted portico starts with none, and then an invalid
//! Gateway's fleet is still never removed (`provision`) and its Envoys keep
//! what they serve (the xDS server answers no stream of a Gateway that has
//! no configuration).

mod certificates;

use std::collections::BTreeMap;

use super::conditions::{ConditionStatus, spec};
use super::encode::EnvoyResources;
use super::encode::cluster::Upstream;
use super::index::infra::Infra;
use super::{GatewayOutput, Memo, Options, Outputs};
use crate::inputs::{Inputs, ObjectKey};

/// What each Gateway was last accepted with, and the certificate Secrets
/// its listeners last served.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LastGood {
    gateways: BTreeMap<ObjectKey, Accepted>,
    certificates: certificates::Remembered,
}

#[derive(Clone, Debug, PartialEq)]
struct Accepted {
    generation: Option<i64>,
    resources: EnvoyResources,
    clusters: Vec<Upstream>,
    infra: Infra,
}

impl LastGood {
    /// Whether `gateway` is served from memory in the outputs `hold` made.
    pub fn remembers(&self, gateway: &ObjectKey) -> bool {
        self.gateways.contains_key(gateway)
    }

    pub fn len(&self) -> usize {
        self.gateways.len()
    }

    pub fn is_empty(&self) -> bool {
        self.gateways.is_empty()
    }
}

/// A full translation with the memory applied: broken certificates put
/// back first (`certificates`), then Gateways that are no longer accepted;
/// held Gateways get their endpoints from `inputs`, like everyone else.
pub fn translate(inputs: &Inputs, options: &Options, last: &LastGood) -> (Outputs, LastGood) {
    translate_memo(inputs, options, last, &mut Memo::off())
}

/// `translate`, reusing and keeping results in `memo` (`translate_memo`).
pub fn translate_memo(
    inputs: &Inputs,
    options: &Options,
    last: &LastGood,
    memo: &mut Memo,
) -> (Outputs, LastGood) {
    let patched = certificates::patch(inputs, &last.certificates);
    let used = patched.as_ref().map_or(inputs, |(p, _)| p);
    let mut outputs = super::translate_memo(used, options, memo);
    if let Some((_, kept)) = &patched {
        certificates::report(used, &mut outputs, kept);
    }
    let (mut next, held) = hold(&mut outputs, last);
    next.certificates = certificates::remember(used, &outputs, &last.certificates);
    for key in &held {
        if let Some(output) = outputs.gateways.get_mut(key) {
            output.resources.endpoints =
                super::encode::gateway::load_assignments(inputs, &output.clusters);
        }
    }
    (outputs, next)
}

/// Puts back what each Gateway that is no longer accepted was last accepted
/// with, and returns the memory for the next translation and the Gateways
/// held (their endpoints then need refreshing from the inputs).
pub fn hold(outputs: &mut Outputs, last: &LastGood) -> (LastGood, Vec<ObjectKey>) {
    let mut next = LastGood::default();
    let mut held = Vec::new();
    for (key, output) in &mut outputs.gateways {
        match (&output.infra, last.gateways.get(key)) {
            (Some(infra), _) => {
                next.gateways.insert(
                    key.clone(),
                    Accepted {
                        generation: generation(output),
                        resources: output.resources.clone(),
                        clusters: output.clusters.clone(),
                        infra: infra.clone(),
                    },
                );
            }
            (None, Some(accepted)) => {
                put_back(output, accepted);
                next.gateways.insert(key.clone(), accepted.clone());
                held.push(key.clone());
            }
            (None, None) => {}
        }
    }
    (next, held)
}

fn generation(output: &GatewayOutput) -> Option<i64> {
    output
        .status
        .conditions
        .iter()
        .find_map(|c| c.observed_generation)
}

fn put_back(output: &mut GatewayOutput, accepted: &Accepted) {
    output.resources = accepted.resources.clone();
    output.clusters = accepted.clusters.clone();
    output.infra = Some(accepted.infra.clone());
    let served = match accepted.generation {
        Some(g) => format!("generation {g}"),
        None => "an earlier generation".to_string(),
    };
    for c in &mut output.status.conditions {
        if c.type_ == spec::ACCEPTED && c.status != ConditionStatus::True {
            c.message = format!(
                "{}; portico keeps serving the last accepted configuration ({served}) until this is fixed",
                c.message
            )
            .into();
        }
        if c.type_ == spec::PROGRAMMED {
            c.message = format!(
                "this generation is not accepted, so it is not programmed; Envoy keeps serving the last accepted configuration ({served})"
            )
            .into();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::files;

    /// Loads `yaml` through the file source, leaving nothing behind.
    fn load(yaml: &str) -> Inputs {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("portico-last-good-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("input.yaml");
        std::fs::write(&file, yaml).expect("write");
        let inputs = files::load(&file).expect("loads");
        let _ = std::fs::remove_dir_all(&dir);
        inputs
    }

    fn outputs(yaml: &str) -> Outputs {
        crate::translate::translate(&load(yaml))
    }

    const BASE: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: portico}\n\
        spec: {controllerName: portico.dev/gateway-controller}\n---\n\
        apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: default, generation: GEN}\n\
        spec:\n  gatewayClassName: portico\n  listeners: [{name: http, port: 80, protocol: HTTP}]\nINFRA\n";

    fn gateway(generation: i64, infra: &str) -> Outputs {
        outputs(
            &BASE
                .replace("GEN", &generation.to_string())
                .replace("INFRA", infra),
        )
    }

    #[test]
    fn an_invalid_edit_keeps_the_last_accepted_configuration() {
        let key = ObjectKey::new("default", "gw");
        let mut good = gateway(1, "");
        let (memory, held) = hold(&mut good, &LastGood::default());
        assert!(held.is_empty() && memory.remembers(&key));

        let typo = "  infrastructure:\n    parametersRef: {group: portico.dev, kind: GatewayParameters, name: missing}";
        let mut bad = gateway(2, typo);
        assert!(
            bad.gateways[&key].infra.is_none(),
            "translation alone drops it"
        );
        let (memory, held) = hold(&mut bad, &memory);
        assert!(!held.is_empty() && memory.remembers(&key));
        let out = &bad.gateways[&key];
        assert_eq!(out.resources, good.gateways[&key].resources);
        assert!(out.infra.is_some());
        let accepted = out
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == spec::ACCEPTED)
            .expect("Accepted");
        assert_eq!(accepted.status, ConditionStatus::False);
        assert!(accepted.message.contains("missing"), "{}", accepted.message);
        assert!(
            accepted.message.contains("generation 1"),
            "{}",
            accepted.message
        );

        // Fixed: the new configuration is remembered instead.
        let mut fixed = gateway(3, "");
        let (memory, held) = hold(&mut fixed, &memory);
        assert!(held.is_empty() && memory.remembers(&key));
    }

    /// An HTTPS listener and an HTTP one; the certificate's Secret as
    /// `secret` (YAML, empty for none).
    fn https(secret: &str) -> Inputs {
        let yaml = format!(
            "{}---\n{secret}",
            BASE.replace("GEN", "1").replace(
                "listeners: [{name: http, port: 80, protocol: HTTP}]\nINFRA",
                "listeners:\n  - {name: http, port: 80, protocol: HTTP}\n  \
                 - {name: https, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: cert}]}}\n",
            )
        );
        load(&yaml)
    }

    fn tls_secret() -> String {
        let issued = rcgen::generate_simple_self_signed(vec!["a.example.com".to_string()])
            .expect("certificate");
        let b64 = |s: String| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(s)
        };
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: cert, namespace: default}}\n\
             type: kubernetes.io/tls\ndata: {{tls.crt: {}, tls.key: {}}}\n",
            b64(issued.cert.pem()),
            b64(issued.signing_key.serialize_pem())
        )
    }

    #[test]
    fn a_deleted_certificate_keeps_being_served_and_is_reported() {
        let options = Options::default();
        let (good, memory) = translate(&https(&tls_secret()), &options, &LastGood::default());
        let key = ObjectKey::new("default", "gw");
        assert_eq!(good.gateways[&key].resources.secrets.len(), 1);

        let (kept, memory) = translate(&https(""), &options, &memory);
        let out = &kept.gateways[&key];
        assert_eq!(out.resources.secrets, good.gateways[&key].resources.secrets);
        assert_eq!(
            out.resources.listeners,
            good.gateways[&key].resources.listeners
        );
        let listener = out
            .status
            .listeners
            .iter()
            .find(|l| l.name == "https")
            .expect("https");
        let refs = listener
            .conditions
            .iter()
            .find(|c| c.type_ == spec::RESOLVED_REFS)
            .expect("ResolvedRefs");
        assert_eq!(refs.status, ConditionStatus::False);
        assert!(
            refs.message.contains("Secret default/cert does not exist"),
            "{}",
            refs.message
        );
        assert!(refs.message.contains("still served"), "{}", refs.message);

        // Still remembered on the next translation; gone once a new valid
        // Secret is served instead.
        let (again, memory) = translate(&https(""), &options, &memory);
        assert_eq!(
            again.gateways[&key].resources.secrets,
            good.gateways[&key].resources.secrets
        );
        let (fresh, _) = translate(&https(&tls_secret()), &options, &memory);
        assert_ne!(
            fresh.gateways[&key].resources.secrets,
            good.gateways[&key].resources.secrets
        );
    }

    #[test]
    fn a_gateway_that_goes_away_is_forgotten() {
        let mut good = gateway(1, "");
        let (memory, _) = hold(&mut good, &LastGood::default());
        assert_eq!(memory.len(), 1);
        let mut gone = outputs(BASE.split("---").next().unwrap_or_default());
        let (memory, held) = hold(&mut gone, &memory);
        assert!(held.is_empty() && memory.is_empty());
    }

    #[test]
    fn a_gateway_never_accepted_is_not_invented() {
        let typo = "  infrastructure:\n    parametersRef: {group: portico.dev, kind: GatewayParameters, name: missing}";
        let mut bad = gateway(1, typo);
        let (memory, held) = hold(&mut bad, &LastGood::default());
        assert!(held.is_empty() && memory.is_empty());
        assert!(bad.gateways.values().all(|g| g.infra.is_none()));
    }
}
