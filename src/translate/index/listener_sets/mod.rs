//! ListenerSets (`gateway.networking.k8s.io/v1`): listeners declared outside
//! a Gateway, possibly in another namespace, that the Gateway serves when its
//! `spec.allowedListeners` lets their namespace attach.
//!
//! In: a Gateway's model with its own listeners validated, and the
//! ListenerSets whose `parentRef` names it. Out: the Gateway's listener list
//! with the listeners of every accepted ListenerSet appended, in the
//! specification's precedence (the Gateway's own, then ListenerSets oldest
//! first, then by namespace/name), each checked for conflicts with every
//! listener before it: the earlier listener keeps the port or hostname, the
//! later one is `Conflicted`. Per ListenerSet: `Accepted` (`NotAllowed`,
//! `ParentNotAccepted`, `ListenersNotValid` when none of its listeners can be
//! served) and its listeners, merged or, when not accepted, kept aside for
//! their status only. Routes attach to a ListenerSet's listeners through a
//! `parentRef` of kind ListenerSet (`attachment`), never through the Gateway.

mod entries;

use std::collections::BTreeMap;

use gateway_api::experimental::gateways::{Gateway, GatewayAllowedListenersNamespacesFrom};
use gateway_api::experimental::listenersets::ListenerSet;
use kube::ResourceExt;

use crate::identity::GATEWAY_GROUP;
use crate::inputs::{Inputs, ObjectKey};
use crate::translate::conditions::{Conditions, spec};
use crate::translate::index::listeners;
use crate::translate::index::model::{
    GatewayModel, ListenerModel, ListenerSetModel, Protocol, ReservedPort, SetListeners,
};
use crate::translate::labels::Selector;

/// `Accepted` reasons of a ListenerSet from the specification.
pub const NOT_ALLOWED: &str = "NotAllowed";
pub const PARENT_NOT_ACCEPTED: &str = "ParentNotAccepted";
/// `Programmed` reason of a ListenerSet whose Gateway is not programmed.
pub const PARENT_NOT_PROGRAMMED: &str = "ParentNotProgrammed";

/// The Gateway a ListenerSet's `parentRef` names, when it names a Gateway.
pub fn parent(set: &ListenerSet) -> Option<ObjectKey> {
    let p = &set.spec.parent_ref;
    let group = p.group.as_deref().unwrap_or(GATEWAY_GROUP);
    let kind = p.kind.as_deref().unwrap_or("Gateway");
    if group != GATEWAY_GROUP || kind != "Gateway" {
        return None;
    }
    let namespace = p
        .namespace
        .clone()
        .or_else(|| set.namespace())
        .unwrap_or_default();
    Some(ObjectKey::new(namespace, p.name.clone()))
}

/// Every ListenerSet by the Gateway it names.
pub fn by_parent(inputs: &Inputs) -> BTreeMap<ObjectKey, Vec<&ListenerSet>> {
    let mut out: BTreeMap<ObjectKey, Vec<&ListenerSet>> = BTreeMap::new();
    for set in inputs.listener_sets.values() {
        if let Some(gateway) = parent(set) {
            out.entry(gateway).or_default().push(set);
        }
    }
    out
}

/// Whether a Gateway's `spec.allowedListeners` lets any namespace attach.
pub fn allows_any(gateway: &Gateway) -> bool {
    from(gateway).is_some_and(|f| f != GatewayAllowedListenersNamespacesFrom::None)
}

fn from(gateway: &Gateway) -> Option<GatewayAllowedListenersNamespacesFrom> {
    gateway
        .spec
        .allowed_listeners
        .as_ref()
        .and_then(|a| a.namespaces.as_ref())
        .and_then(|n| n.from.clone())
}

/// Whether the Gateway lets ListenerSets of `namespace` attach; the error
/// says why not, naming the Gateway's field.
fn allowed(inputs: &Inputs, gateway: &Gateway, namespace: &str) -> Result<(), String> {
    use GatewayAllowedListenersNamespacesFrom as From;
    let key = ObjectKey::of(gateway);
    let field = "spec.allowedListeners.namespaces";
    match from(gateway) {
        None => Err(format!(
            "Gateway {key} allows no ListenerSets ({field} is not set)"
        )),
        Some(From::None) => Err(format!(
            "Gateway {key} allows no ListenerSets ({field}.from is None)"
        )),
        Some(From::All) => Ok(()),
        Some(From::Same) if namespace == key.namespace => Ok(()),
        Some(From::Same) => Err(format!(
            "Gateway {key} allows ListenerSets of its own namespace only ({field}.from is Same)"
        )),
        Some(From::Selector) => {
            let raw = gateway
                .spec
                .allowed_listeners
                .as_ref()
                .and_then(|a| a.namespaces.as_ref())
                .and_then(|n| n.selector.as_ref())
                .ok_or_else(|| {
                    format!("Gateway {key}: {field}.from is Selector but no selector is set")
                })?;
            let selector = Selector::from_allowed_listeners(raw)
                .map_err(|e| format!("Gateway {key}: {field}.selector: {e}"))?;
            if selector.matches(&inputs.namespace_labels(namespace)) {
                Ok(())
            } else {
                Err(format!(
                    "the labels of namespace {namespace} do not match {field}.selector of Gateway {key}"
                ))
            }
        }
    }
}

/// Older first, then by namespace/name: the specification's precedence
/// among ListenerSets.
fn precedence(a: &ListenerSet, b: &ListenerSet) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (ca, cb) = (
        &a.metadata.creation_timestamp,
        &b.metadata.creation_timestamp,
    );
    match (ca, cb) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
    .then_with(|| ObjectKey::of(a).cmp(&ObjectKey::of(b)))
}

/// What merging a Gateway's ListenerSets needs besides the Gateway.
pub struct Merge<'i> {
    pub inputs: &'i Inputs,
    /// Whether ports below 1024 move up by 10000 for this Gateway's Envoy.
    pub shift_privileged: bool,
    pub reserved: &'i [ReservedPort],
}

impl Merge<'_> {
    /// Judges each of `sets` (their parentRef names `gateway`) in
    /// precedence order and appends the listeners of the accepted ones to
    /// the Gateway's.
    pub fn attach(&self, gateway: &Gateway, model: &mut GatewayModel, sets: &[&ListenerSet]) {
        let mut sets = sets.to_vec();
        sets.sort_by(|a, b| precedence(a, b));
        let parent_problem = model.rejection();
        for set in sets {
            let judged = self.judge(gateway, model, set, parent_problem.as_deref());
            model.listener_sets.push(judged);
        }
    }

    /// One ListenerSet: refused (its Gateway is not accepted or does not
    /// allow it, or none of its listeners can be served) or accepted, its
    /// listeners then appended to the Gateway's.
    fn judge(
        &self,
        gateway: &Gateway,
        model: &mut GatewayModel,
        set: &ListenerSet,
        parent_problem: Option<&str>,
    ) -> ListenerSetModel {
        let key = ObjectKey::of(set);
        let generation = set.metadata.generation;
        let mut conditions = Conditions::new(generation);
        let refused = |key, mut conditions: Conditions, reason, message: String, listeners| {
            conditions.set(spec::ACCEPTED, false, reason, message.clone());
            conditions.set(spec::PROGRAMMED, false, reason, message);
            ListenerSetModel {
                key,
                generation,
                conditions,
                listeners: SetListeners::Aside(listeners),
            }
        };
        if let Some(why) = parent_problem {
            let message = format!("Gateway {} is not accepted: {why}", model.key);
            return refused(key, conditions, PARENT_NOT_ACCEPTED, message, Vec::new());
        }
        if let Err(why) = allowed(self.inputs, gateway, &key.namespace) {
            return refused(key, conditions, NOT_ALLOWED, why, Vec::new());
        }
        let mut listeners = self.listeners(gateway, set, &key);
        mark_in_order(&model.listeners, &mut listeners, &model.key);
        let invalid: Vec<String> = listeners
            .iter()
            .filter(|l| !l.is_ready())
            .map(|l| l.name.clone())
            .collect();
        if invalid.len() == listeners.len() {
            let message = if listeners.is_empty() {
                "the ListenerSet has no listeners".to_string()
            } else {
                format!("no listener is valid: {}", invalid.join(", "))
            };
            return refused(
                key,
                conditions,
                spec::LISTENERS_NOT_VALID,
                message,
                listeners,
            );
        }
        if invalid.is_empty() {
            conditions.set(
                spec::ACCEPTED,
                true,
                "Accepted",
                "the ListenerSet is attached",
            );
        } else {
            conditions.set(
                spec::ACCEPTED,
                true,
                spec::LISTENERS_NOT_VALID,
                format!("invalid listeners are not served: {}", invalid.join(", ")),
            );
        }
        let start = model.listeners.len();
        model.listeners.extend(listeners);
        ListenerSetModel {
            key,
            generation,
            conditions,
            listeners: SetListeners::Merged(start..model.listeners.len()),
        }
    }

    /// A ListenerSet's listeners validated as a Gateway's are (names,
    /// reserved ports, and the Gateway's client certificate validation on
    /// HTTPS listeners too); conflicts come after, in order.
    fn listeners(
        &self,
        gateway: &Gateway,
        set: &ListenerSet,
        key: &ObjectKey,
    ) -> Vec<ListenerModel> {
        let mut listeners: Vec<ListenerModel> = set
            .spec
            .listeners
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                let l = entries::as_listener(entry);
                let mut model =
                    listeners::listener_model(&l, set.metadata.generation, self.shift_privileged);
                listeners::listener_certificates(
                    self.inputs,
                    "ListenerSet",
                    &key.namespace,
                    i,
                    &l,
                    &mut model,
                );
                listeners::listener_client_validation(self.inputs, gateway, &mut model);
                model.envoy_name = format!("{}/{}/{}", key.namespace, key.name, model.name);
                model.set = Some(key.clone());
                model
            })
            .collect();
        listeners::mark_duplicate_names(&mut listeners);
        listeners::mark_reserved_ports(&mut listeners, self.reserved);
        listeners
    }
}

/// Why a listener cannot have what it asks for.
enum Clash {
    /// Another protocol on the port, or the same hostname.
    Conflict(&'static str, String),
    /// Its container port is another listener port's.
    PortUnavailable(String),
}

/// Judges each listener of `later` in order against every listener before
/// it that holds a port (accepted, not conflicted): those of `earlier` (the
/// Gateway's own and earlier ListenerSets') and those before it in `later`.
/// The earlier listener keeps what it holds; the later one is
/// `Conflicted` (ProtocolConflict, HostnameConflict; the same reason on its
/// `Accepted`) or `Accepted=False/PortUnavailable`. The others get
/// `Conflicted=False/NoConflicts`.
fn mark_in_order(earlier: &[ListenerModel], later: &mut [ListenerModel], gateway: &ObjectKey) {
    for i in 0..later.len() {
        let (before, rest) = later.split_at_mut(i);
        let Some(me) = rest.first_mut() else {
            continue;
        };
        let clash = if me.conditions.is_true(spec::ACCEPTED) {
            let holders = earlier.iter().chain(before.iter());
            clash(me, holders.filter(|l| l.is_attachable()), gateway)
        } else {
            None
        };
        match clash {
            Some(Clash::Conflict(reason, message)) => {
                me.conditions
                    .set(spec::CONFLICTED, true, reason, message.clone());
                me.conditions.set(spec::ACCEPTED, false, reason, message);
            }
            Some(Clash::PortUnavailable(message)) => {
                me.conditions
                    .set(spec::ACCEPTED, false, spec::PORT_UNAVAILABLE, message);
                me.conditions
                    .set(spec::CONFLICTED, false, spec::NO_CONFLICTS, "no conflicts");
            }
            None => me
                .conditions
                .set(spec::CONFLICTED, false, spec::NO_CONFLICTS, "no conflicts"),
        }
    }
}

/// The first clash of `me` with a listener of `holders`, if any.
fn clash<'a>(
    me: &ListenerModel,
    holders: impl Iterator<Item = &'a ListenerModel>,
    gateway: &ObjectKey,
) -> Option<Clash> {
    let udp = |l: &ListenerModel| l.protocol.is_some_and(Protocol::is_udp);
    // TLS listeners of both modes share a port, told apart by SNI.
    let family = |l: &ListenerModel| l.protocol.as_ref().map(std::mem::discriminant);
    for other in holders {
        if udp(other) != udp(me) {
            continue;
        }
        if other.port == me.port && family(other) != family(me) {
            return Some(Clash::Conflict(
                spec::PROTOCOL_CONFLICT,
                format!(
                    "port {} is already used by {} with another protocol",
                    me.port,
                    other.describe(gateway)
                ),
            ));
        }
        if other.port == me.port && other.hostname == me.hostname {
            return Some(Clash::Conflict(
                spec::HOSTNAME_CONFLICT,
                format!(
                    "{} already uses port {} and hostname {:?}",
                    other.describe(gateway),
                    me.port,
                    me.hostname.as_deref().unwrap_or("")
                ),
            ));
        }
        if other.port != me.port && other.container_port == me.container_port {
            return Some(Clash::PortUnavailable(format!(
                "port {} maps to container port {}, which {} already uses",
                me.port,
                me.container_port,
                other.describe(gateway)
            )));
        }
    }
    None
}
