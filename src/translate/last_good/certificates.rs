//! Keep last good for listener certificates: a Secret that a serving
//! listener used and that is then deleted or broken (wrong type, a PEM that
//! does not parse, a key that does not match) keeps being served as it last
//! was, and the listener's `ResolvedRefs` says what is wrong with it and that
//! the last valid certificate is still served. A ReferenceGrant that is
//! withdrawn still withdraws the certificate: only the Secret's own content
//! is remembered, every permission is judged on the current inputs.
//!
//! In: the inputs and the Secrets remembered from the last translation. Out:
//! the inputs to translate (with remembered Secrets in place of broken ones),
//! the Secrets put back and why, and after translation the Secrets to
//! remember next time (every valid Secret a listener of a served Gateway
//! names).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;

use crate::inputs::{Inputs, ObjectKey};
use crate::translate::Outputs;
use crate::translate::conditions::{ConditionStatus, spec};
use crate::translate::index::certificates;

/// Secrets by key, as they were when last valid.
pub type Remembered = BTreeMap<ObjectKey, Arc<Secret>>;

/// The inputs with every remembered Secret that is now missing or broken put
/// back, and what was put back with the reason; `None` when nothing is.
pub fn patch(
    inputs: &Inputs,
    remembered: &Remembered,
) -> Option<(Inputs, Vec<(ObjectKey, String)>)> {
    let mut kept = Vec::new();
    for (key, secret) in remembered {
        let why = match inputs.secrets.get(key) {
            None => "does not exist".to_string(),
            // Unchanged since it was last checked.
            Some(now) if Arc::ptr_eq(now, secret) => continue,
            Some(now) => match certificates::check(now) {
                Ok(()) => continue,
                Err(e) => e,
            },
        };
        kept.push((key.clone(), why, Arc::clone(secret)));
    }
    if kept.is_empty() {
        return None;
    }
    let mut patched = inputs.clone();
    for (key, _, secret) in &kept {
        patched.secrets.insert(key.clone(), Arc::clone(secret));
    }
    Some((
        patched,
        kept.into_iter().map(|(key, why, _)| (key, why)).collect(),
    ))
}

/// Every `(listener index, reference index, Secret)` a Gateway's listeners
/// name.
fn references(
    gateway: &gateway_api::experimental::gateways::Gateway,
) -> Vec<(usize, usize, ObjectKey)> {
    let namespace = gateway.metadata.namespace.as_deref().unwrap_or_default();
    let mut out = Vec::new();
    for (l, listener) in gateway.spec.listeners.iter().enumerate() {
        let refs = listener
            .tls
            .as_ref()
            .and_then(|t| t.certificate_refs.as_deref())
            .unwrap_or_default();
        for (r, reference) in refs.iter().enumerate() {
            let core = reference.group.as_deref().unwrap_or("").is_empty()
                && reference.kind.as_deref().unwrap_or("Secret") == "Secret";
            if core {
                let ns = reference.namespace.as_deref().unwrap_or(namespace);
                out.push((l, r, ObjectKey::new(ns, reference.name.as_str())));
            }
        }
    }
    out
}

/// Says on each listener that names a Secret put back what is wrong with it
/// and that its last valid certificate is still served.
pub fn report(inputs: &Inputs, outputs: &mut Outputs, kept: &[(ObjectKey, String)]) {
    for (key, output) in &mut outputs.gateways {
        let Some(gateway) = inputs.gateways.get(key) else {
            continue;
        };
        for (l, r, secret) in references(gateway) {
            let Some((_, why)) = kept.iter().find(|(k, _)| *k == secret) else {
                continue;
            };
            let Some(name) = gateway.spec.listeners.get(l).map(|x| x.name.as_str()) else {
                continue;
            };
            let Some(status) = output.status.listeners.iter_mut().find(|s| s.name == name) else {
                continue;
            };
            let message = format!(
                "spec.listeners[{l}].tls.certificateRefs[{r}]: Secret {}/{} {why}; the last valid certificate is still served",
                secret.namespace, secret.name
            );
            let generation = status.conditions.iter().find_map(|c| c.observed_generation);
            match status
                .conditions
                .iter_mut()
                .find(|c| c.type_ == spec::RESOLVED_REFS)
            {
                Some(c) => {
                    c.status = ConditionStatus::False;
                    c.reason = spec::INVALID_CERTIFICATE_REF;
                    c.message = message.into();
                }
                None => status
                    .conditions
                    .push(crate::translate::conditions::Condition {
                        type_: spec::RESOLVED_REFS,
                        status: ConditionStatus::False,
                        reason: spec::INVALID_CERTIFICATE_REF,
                        message: message.into(),
                        observed_generation: generation,
                    }),
            }
        }
    }
}

/// The Secrets to remember: every valid one a listener of a served Gateway
/// names, as the translated inputs held it (one remembered before and not
/// changed since is not checked again).
pub fn remember(inputs: &Inputs, outputs: &Outputs, before: &Remembered) -> Remembered {
    let mut out = Remembered::new();
    for (key, output) in &outputs.gateways {
        if output.infra.is_none() {
            continue;
        }
        let Some(gateway) = inputs.gateways.get(key) else {
            continue;
        };
        for (_, _, secret) in references(gateway) {
            let Some(s) = inputs.secrets.get(&secret) else {
                continue;
            };
            let known = before.get(&secret).is_some_and(|b| Arc::ptr_eq(b, s));
            if known || certificates::check(s).is_ok() {
                out.insert(secret, Arc::clone(s));
            }
        }
    }
    out
}
