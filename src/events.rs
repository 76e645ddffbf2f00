//! Kubernetes Events on Gateways for what a user must see in
//! `kubectl describe gateway`: provisioning failures and Envoy rejecting
//! configuration. The same message is published once, not on every round;
//! what was published about a Gateway portico no longer serves is forgotten.

use std::collections::BTreeMap;
use std::sync::Mutex;

use gateway_api::experimental::gateways::Gateway;
use kube::Client;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use crate::inputs::ObjectKey;

pub struct GatewayEvents {
    recorder: Option<Recorder>,
    /// The last note published per Gateway and reason.
    sent: Mutex<BTreeMap<(ObjectKey, &'static str), String>>,
}

impl GatewayEvents {
    pub fn new(client: Client, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: "portico".into(),
            instance,
        };
        Self {
            recorder: Some(Recorder::new(client, reporter)),
            sent: Mutex::default(),
        }
    }

    /// Publishes nothing (tests).
    pub fn disabled() -> Self {
        Self {
            recorder: None,
            sent: Mutex::default(),
        }
    }

    /// A Warning event, unless the same note was the last one for this reason.
    pub async fn warn(&self, gateway: &Gateway, reason: &'static str, action: &str, note: String) {
        let key = (ObjectKey::of(gateway), reason);
        {
            let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
            if sent.get(&key) == Some(&note) {
                return;
            }
            sent.insert(key, note.clone());
        }
        let Some(recorder) = &self.recorder else {
            return;
        };
        let mut note = note;
        if note.len() > 1000 {
            let mut cut = 1000;
            while !note.is_char_boundary(cut) {
                cut -= 1;
            }
            note.truncate(cut);
        }
        let event = Event {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        let reference = gateway.object_ref(&());
        if let Err(e) = recorder.publish(&event, &reference).await {
            tracing::warn!(error = %e, "publishing an Event failed");
        }
    }

    /// Forgets the notes of every Gateway `served` says no to.
    pub fn forget_gone(&self, served: impl Fn(&ObjectKey) -> bool) {
        self.sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(gateway, _), _| served(gateway));
    }

    /// Forgets a reason's last note once the problem is gone, so a recurrence
    /// is published again.
    pub fn clear(&self, gateway: &ObjectKey, reason: &'static str) {
        self.sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(gateway.clone(), reason));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway(name: &str) -> Gateway {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"gatewayClassName": "portico", "listeners": []},
        }))
        .expect("gateway")
    }

    #[test]
    fn notes_of_gateways_no_longer_served_are_forgotten() {
        let events = GatewayEvents::disabled();
        futures::executor::block_on(async {
            for g in ["a", "b"] {
                events
                    .warn(&gateway(g), "ConfigurationRejected", "Program", "no".into())
                    .await;
                events
                    .warn(&gateway(g), "ProvisioningFailed", "Provision", "no".into())
                    .await;
            }
        });
        let len = || events.sent.lock().unwrap_or_else(|e| e.into_inner()).len();
        assert_eq!(len(), 4);
        let a = ObjectKey::new("default", "a");
        events.forget_gone(|k| *k == a);
        assert_eq!(len(), 2);
        events.forget_gone(|_| false);
        assert_eq!(len(), 0);
    }
}
