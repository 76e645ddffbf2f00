//! The status plan, pure: what to write so that live statuses match
//! translation's. GatewayClasses, Gateways and ListenerSets get their whole
//! status (ListenerSets planned before Gateways, so that a Gateway counting
//! one never shows before the ListenerSet's own status); routes and
//! BackendTLSPolicies get portico's entries of a list shared with other
//! controllers (`status.parents`, `status.ancestors`), the others' entries
//! kept exactly as they are. Which kinds have which is the kinds table's
//! `Status` (`inputs::kinds`).
//!
//! In: `Inputs` (the live objects, whose statuses are what the API server
//! holds), translation's `Outputs`, and each Gateway's observed state. Out:
//! only the writes whose content differs from the live status, ignoring
//! `lastTransitionTime`. A condition keeps its live `lastTransitionTime`
//! while its status stays. `writer` sends them.
//!
//! A round is a function of its arguments; `plan_with` also takes the
//! caller's `Memo` of the round before: a route or policy is looked at only
//! when its live object or translated entry changed since, or the round
//! before could not confirm it (`changes`); a class, Gateway or ListenerSet
//! unchanged on both sides costs a lookup, not a serialization and a typed
//! comparison. Its writes are the same as `plan`'s.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use gateway_api::apis::standard::backendtlspolicies::BackendTlsPolicyStatus;
use gateway_api::experimental::gatewayclasses::GatewayClassStatus;
use gateway_api::experimental::gateways::GatewayStatus;
use gateway_api::experimental::httproutes::HttpRouteStatus;
use gateway_api::experimental::listenersets::ListenerSetStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::changes::Since;
use super::gateway::{GatewayAddress, Observed, observe, requested};
use super::listener_set;
use super::memo::{Look, Memo, Round};
use crate::identity::CONTROLLER_NAME;
use crate::inputs::kinds::{Held, Status, Store};
use crate::inputs::{InputKind, Inputs, Kind, ObjectKey, Visit};
use crate::translate::Outputs;
use crate::translate::conditions::Condition;
use crate::translate::report::{ListenerStatus, PolicyStatus, RouteStatus};

/// One status write to make.
#[derive(Clone, Debug, PartialEq)]
pub struct Write {
    pub kind: Kind,
    pub key: ObjectKey,
    /// The whole status (classes, Gateways) or `{"parents": [...]}` (routes).
    pub status: Value,
    /// The live object's `resourceVersion` the write is based on.
    pub based_on: Option<String>,
}

/// The writes that would make live statuses match `outputs`. Pure; with
/// nothing remembered (every object is derived and compared).
pub fn plan(
    inputs: &Inputs,
    outputs: &Outputs,
    observed: &BTreeMap<ObjectKey, Observed<'_>>,
    now: &str,
) -> Vec<Write> {
    round(&mut Memo::default(), None, inputs, outputs, observed, now)
}

/// As [`plan`], looking only at the objects that may differ since the
/// round `memo` remembers (`status::changes`) and skipping the classes,
/// Gateways and ListenerSets it remembers as matching at the same live
/// version and computed status; what this round saw is remembered for the
/// next. The same writes as `plan`, for any memo a caller carried from
/// earlier rounds over any inputs.
pub fn plan_with(
    memo: &mut Memo,
    inputs: &Inputs,
    outputs: &Arc<Outputs>,
    observed: &BTreeMap<ObjectKey, Observed<'_>>,
    now: &str,
) -> Vec<Write> {
    let since = memo.since_last(inputs, outputs);
    let writes = round(memo, since, inputs, outputs, observed, now);
    memo.end(Some((inputs, outputs)));
    writes
}

/// One round: `since` says what changed since the round before (`None`:
/// look at every object).
fn round(
    memo: &mut Memo,
    since: Option<Since>,
    inputs: &Inputs,
    outputs: &Outputs,
    observed: &BTreeMap<ObjectKey, Observed<'_>>,
    now: &str,
) -> Vec<Write> {
    memo.begin(since);
    let mut writes = Vec::new();
    for (name, status) in &outputs.gateway_classes {
        let key = ObjectKey::new("", name.as_str());
        let Some(live) = inputs.gateway_classes.get(&key) else {
            continue;
        };
        let version = version(live.as_ref());
        if memo
            .classes
            .hit(&mut memo.round, &key, version, |c| c == status)
        {
            continue;
        }
        let live_status = live.live_status();
        let desired = json!({
            "conditions": stamp(&status.conditions, live_status.get("conditions"), now),
            "supportedFeatures": status.supported_features,
        });
        if same::<GatewayClassStatus>(&desired, &live_status) {
            memo.classes
                .remember(&memo.round, &key, version, status.clone());
        } else {
            writes.push(Write {
                kind: Kind::GatewayClass,
                key,
                status: desired,
                based_on: live.resource_version(),
            });
        }
    }
    plan_listener_sets(&mut writes, memo, inputs, outputs, observed, now);
    for (key, output) in &outputs.gateways {
        let Some(live) = inputs.gateways.get(key) else {
            continue;
        };
        let requested = requested(live);
        let seen = Observed {
            requested: &requested,
            ..observed.get(key).copied().unwrap_or_default()
        };
        let (status, addresses) = observe(&output.status, seen);
        let computed = ObservedGateway {
            status,
            addresses,
            silent: seen.feedback.is_none(),
        };
        let version = version(live.as_ref());
        if memo
            .gateways
            .hit(&mut memo.round, key, version, |c| *c == computed)
        {
            continue;
        }
        let ObservedGateway {
            status, addresses, ..
        } = &computed;
        let live_status = live.live_status();
        let mut desired = json!({
            "conditions": stamp(&status.conditions, live_status.get("conditions"), now),
            "listeners": listener_entries(&status.listeners, &live_status, now),
        });
        if !addresses.is_empty() {
            desired["addresses"] = json!(addresses);
        }
        if let Some(n) = status.attached_listener_sets {
            desired["attachedListenerSets"] = json!(n);
        }
        if computed.silent {
            keep_live_programmed(&mut desired, &live_status);
        }
        if same::<GatewayStatus>(&desired, &live_status) {
            memo.gateways.remember(&memo.round, key, version, computed);
        } else {
            writes.push(Write {
                kind: Kind::Gateway,
                key: key.clone(),
                status: desired,
                based_on: live.resource_version(),
            });
        }
    }
    for kind in Kind::ALL {
        kind.visit(&mut SharedLists {
            writes: &mut writes,
            memo: &mut *memo,
            inputs,
            outputs,
            now,
        });
    }
    writes
}

/// A Gateway's status as computed from translation and what was observed:
/// what the memo compares.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedGateway {
    status: crate::translate::report::GatewayStatus,
    addresses: Vec<GatewayAddress>,
    /// No word from Envoy yet: `Programmed` stays as live.
    silent: bool,
}

/// A ListenerSet's status as computed from translation and what was
/// observed of its Gateway: what the memo compares.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedListenerSet {
    status: crate::translate::report::ListenerSetStatus,
    /// No word from Envoy yet: `Programmed` stays as live.
    silent: bool,
}

/// The live object's `resourceVersion`, borrowed.
fn version<K: kube::Resource>(live: &K) -> Option<&str> {
    live.meta().resource_version.as_deref()
}

/// ListenerSet statuses, `Programmed` decided from what was observed of
/// each one's Gateway.
fn plan_listener_sets(
    writes: &mut Vec<Write>,
    memo: &mut Memo,
    inputs: &Inputs,
    outputs: &Outputs,
    observed: &BTreeMap<ObjectKey, Observed<'_>>,
    now: &str,
) {
    for (key, output) in &outputs.listener_sets {
        let Some(live) = inputs.listener_sets.get(key) else {
            continue;
        };
        let requested = inputs
            .gateways
            .get(&output.gateway)
            .map(|g| requested(g))
            .unwrap_or_default();
        let seen = Observed {
            requested: &requested,
            ..observed.get(&output.gateway).copied().unwrap_or_default()
        };
        let computed = ObservedListenerSet {
            status: listener_set::observe(&output.status, seen),
            silent: seen.feedback.is_none(),
        };
        let version = version(live.as_ref());
        if memo
            .listener_sets
            .hit(&mut memo.round, key, version, |c| *c == computed)
        {
            continue;
        }
        let status = &computed.status;
        let live_status = live.live_status();
        let mut desired = json!({
            "conditions": stamp(&status.conditions, live_status.get("conditions"), now),
        });
        if !status.listeners.is_empty() {
            desired["listeners"] = json!(listener_entries(&status.listeners, &live_status, now));
        }
        if computed.silent {
            keep_live_programmed(&mut desired, &live_status);
        }
        if same::<ListenerSetStatus>(&desired, &live_status) {
            memo.listener_sets
                .remember(&memo.round, key, version, computed);
        } else {
            writes.push(Write {
                kind: Kind::ListenerSet,
                key: key.clone(),
                status: desired,
                based_on: live.resource_version(),
            });
        }
    }
}

/// `status.listeners` of a Gateway or ListenerSet, each condition keeping
/// its live transition time.
fn listener_entries(listeners: &[ListenerStatus], live_status: &Value, now: &str) -> Vec<Value> {
    listeners
        .iter()
        .map(|l| {
            let live_listener = live_status
                .get("listeners")
                .and_then(Value::as_array)
                .and_then(|ls| ls.iter().find(|x| x.get("name") == Some(&json!(l.name))));
            json!({
                "name": l.name,
                "supportedKinds": l.supported_kinds,
                "attachedRoutes": l.attached_routes,
                "conditions": stamp(&l.conditions, live_listener.and_then(|x| x.get("conditions")), now),
            })
        })
        .collect()
}

/// The shared status lists of every object of one kind: route
/// `status.parents`, BackendTLSPolicy `status.ancestors`. Other controllers'
/// entries stay as they are, ours are as computed (an entry for a parent or
/// ancestor we no longer serve is dropped).
struct SharedLists<'a> {
    writes: &'a mut Vec<Write>,
    memo: &'a mut Memo,
    inputs: &'a Inputs,
    outputs: &'a Outputs,
    now: &'a str,
}

impl Visit for SharedLists<'_> {
    type Out = ();

    fn kind<K: InputKind>(&mut self) {
        match K::STATUS {
            Status::Parents(route) => {
                let routes = &self.outputs.routes;
                let (mut look, round) = self.memo.look(K::KIND);
                // Every route kind's status has HTTPRoute's shape.
                let mut in_order = InOrder::new(
                    routes
                        .range((route, ObjectKey::default())..)
                        .take_while(move |((kind, _), _)| *kind == route)
                        .map(|((_, key), status)| (key, status)),
                );
                let every = matches!(look, Look::Every(_));
                let lists = Lists {
                    writes: &mut *self.writes,
                    round,
                    now: self.now,
                };
                lists.plan::<K, _, HttpRouteStatus>(
                    &mut look,
                    &SharedList::PARENTS,
                    |key| {
                        if every {
                            in_order.get(key)
                        } else {
                            routes.get(&(route, key.clone()))
                        }
                    },
                    parents,
                    self.inputs,
                );
            }
            Status::Ancestors => {
                let policies = &self.outputs.backend_tls_policies;
                let (mut look, round) = self.memo.look(K::KIND);
                let lists = Lists {
                    writes: &mut *self.writes,
                    round,
                    now: self.now,
                };
                lists.plan::<K, _, BackendTlsPolicyStatus>(
                    &mut look,
                    &SharedList::ANCESTORS,
                    |key| policies.get(key),
                    ancestors,
                    self.inputs,
                );
            }
            Status::None | Status::Owned => {}
        }
    }
}

/// Where one kind's shared-list writes go.
struct Lists<'a> {
    writes: &'a mut Vec<Write>,
    round: &'a mut Round,
    now: &'a str,
}

impl Lists<'_> {
    /// The objects of kind `K` the round looks at (`look`): each one's
    /// desired list (`shape`) built from translation's entry (`computed`,
    /// its entries by `entries`) and compared typed as `T`; confirmed as
    /// matching, or left unsettled for the next round.
    fn plan<'o, K: InputKind, S: 'o, T: Serialize + DeserializeOwned>(
        mut self,
        look: &mut Look<'_>,
        shape: &SharedList,
        mut computed: impl FnMut(&ObjectKey) -> Option<&'o S>,
        entries: fn(&'o S) -> Entries<'o>,
        inputs: &Inputs,
    ) {
        let compared = self.round.tally.compared;
        match look {
            Look::Every(unsettled) => {
                for (key, live) in K::held(inputs).objects() {
                    self.round.tally.looked_at += 1;
                    let status = computed(key);
                    self.object::<K, T>(unsettled, key, live.as_ref(), status.map(entries), shape);
                }
            }
            Look::Only(keys, unsettled) => {
                for key in keys.iter() {
                    self.round.tally.looked_at += 1;
                    match live_object::<K>(inputs, key) {
                        Some(live) => {
                            let status = computed(key);
                            let ours = status.map(entries);
                            self.object::<K, T>(unsettled, key, live.as_ref(), ours, shape);
                        }
                        None => {
                            unsettled.remove(key);
                        }
                    }
                }
            }
        }
        let compared = self.round.tally.compared - compared;
        self.round.tally.unchanged += K::KIND.count(inputs).saturating_sub(compared);
    }

    /// One object: its desired list (our entries `ours`) compared with the
    /// live one; a write when they differ.
    fn object<K: InputKind, T: Serialize + DeserializeOwned>(
        &mut self,
        unsettled: &mut BTreeSet<ObjectKey>,
        key: &ObjectKey,
        live: &K,
        ours: Computed<'_>,
        shape: &SharedList,
    ) {
        self.round.tally.compared += 1;
        let version = version(live);
        let live_status = live.live_status();
        let matching = match shared_list(&live_status, shape, ours, self.now) {
            None => true,
            Some(desired) if same::<T>(&desired, &live_status) => true,
            Some(desired) => {
                self.writes.push(Write {
                    kind: K::KIND,
                    key: key.clone(),
                    status: desired,
                    based_on: live.resource_version(),
                });
                false
            }
        };
        if matching && version.is_some() {
            unsettled.remove(key);
        } else if !unsettled.contains(key) {
            unsettled.insert(key.clone());
        }
    }
}

/// The live object of kind `K` under `key`. Every kind with a status is
/// held in a `Store` (a map by key); another shape is searched.
fn live_object<'a, K: InputKind>(inputs: &'a Inputs, key: &ObjectKey) -> Option<&'a Arc<K>> {
    let held: &dyn Any = K::held(inputs);
    match held.downcast_ref::<Store<K>>() {
        Some(store) => store.get(key),
        None => K::held(inputs)
            .objects()
            .find_map(|(k, live)| (k == key).then_some(live)),
    }
}

/// portico's entries of a route's `status.parents`, as translated.
fn parents(status: &RouteStatus) -> Entries<'_> {
    status
        .parents
        .iter()
        .map(|p| (json!(p.parent_ref), p.conditions.as_slice()))
        .collect()
}

/// portico's entries of a BackendTLSPolicy's `status.ancestors`, as
/// translated.
fn ancestors(status: &PolicyStatus) -> Entries<'_> {
    status
        .ancestors
        .iter()
        .map(|a| (json!(a.ancestor_ref), a.conditions.as_slice()))
        .collect()
}

/// Looks up the entries of a map iterated in key order, for keys asked in
/// ascending order, without building owned keys: each lookup walks on from
/// the last. A key asked out of order starts the walk again (correct, only
/// slower).
struct InOrder<'o, S: 'o, I: Iterator<Item = (&'o ObjectKey, &'o S)> + Clone> {
    start: I,
    rest: std::iter::Peekable<I>,
    /// The last map key walked past or found.
    passed: Option<&'o ObjectKey>,
}

impl<'o, S: 'o, I: Iterator<Item = (&'o ObjectKey, &'o S)> + Clone> InOrder<'o, S, I> {
    fn new(entries: I) -> Self {
        Self {
            rest: entries.clone().peekable(),
            start: entries,
            passed: None,
        }
    }

    fn get(&mut self, key: &ObjectKey) -> Option<&'o S> {
        if self.passed.is_some_and(|p| key <= p) {
            self.rest = self.start.clone().peekable();
            self.passed = None;
        }
        while let Some(&(k, v)) = self.rest.peek() {
            if k > key {
                return None;
            }
            self.passed = Some(k);
            self.rest.next();
            if k == key {
                return Some(v);
            }
        }
        None
    }
}

/// A status list several controllers share, and the key naming each
/// entry's object.
struct SharedList {
    list: &'static str,
    reference: &'static str,
}

impl SharedList {
    const PARENTS: Self = Self {
        list: "parents",
        reference: "parentRef",
    };
    const ANCESTORS: Self = Self {
        list: "ancestors",
        reference: "ancestorRef",
    };
}

/// Our entries of one shared list: each object's reference and conditions.
type Entries<'c> = Vec<(Value, &'c [Condition])>;
type Computed<'c> = Option<Entries<'c>>;

/// The desired shared list (`{"<list>": [...]}`): other controllers' entries
/// as read, ours as computed, each condition keeping its live transition
/// time. None when neither side has an entry of ours.
fn shared_list(
    live_status: &Value,
    shape: &SharedList,
    computed: Computed<'_>,
    now: &str,
) -> Option<Value> {
    let live_entries: Vec<Value> = live_status
        .get(shape.list)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ours = |p: &Value| p.get("controllerName") == Some(&json!(CONTROLLER_NAME));
    if computed.is_none() && !live_entries.iter().any(ours) {
        return None;
    }
    let mut entries: Vec<Value> = live_entries.iter().filter(|p| !ours(p)).cloned().collect();
    for (reference, conditions) in computed.unwrap_or_default() {
        let live_entry = live_entries
            .iter()
            .find(|x| ours(x) && x.get(shape.reference) == Some(&reference));
        entries.push(json!({
            shape.reference: reference,
            "controllerName": CONTROLLER_NAME,
            "conditions": stamp(conditions, live_entry.and_then(|x| x.get("conditions")), now),
        }));
    }
    Some(json!({ shape.list: entries }))
}

/// Without any word from Envoy yet (portico just started), `Programmed`
/// stays what the API server holds rather than turning Pending for the
/// seconds Envoys take to reconnect.
fn keep_live_programmed(desired: &mut Value, live: &Value) {
    fn programmed(conditions: Option<&Value>) -> Option<Value> {
        conditions?
            .as_array()?
            .iter()
            .find(|c| c.get("type") == Some(&json!("Programmed")))
            .cloned()
    }
    fn replace(conditions: Option<&mut Value>, with: Value) {
        if let Some(list) = conditions.and_then(Value::as_array_mut)
            && let Some(c) = list
                .iter_mut()
                .find(|c| c.get("type") == Some(&json!("Programmed")))
        {
            *c = with;
        }
    }
    if let Some(p) = programmed(live.get("conditions")) {
        replace(desired.get_mut("conditions"), p);
    }
    let live_listeners = live.get("listeners").and_then(Value::as_array);
    if let Some(listeners) = desired.get_mut("listeners").and_then(Value::as_array_mut) {
        for l in listeners {
            let previous = live_listeners
                .and_then(|ls| ls.iter().find(|x| x.get("name") == l.get("name")))
                .and_then(|x| programmed(x.get("conditions")));
            if let Some(p) = previous {
                replace(l.get_mut("conditions"), p);
            }
        }
    }
}

/// Conditions as the API wants them, each keeping its live
/// `lastTransitionTime` while its status is unchanged.
fn stamp(conditions: &[Condition], live: Option<&Value>, now: &str) -> Vec<Value> {
    conditions
        .iter()
        .map(|c| {
            let mut v = json!(c);
            let previous = live
                .and_then(Value::as_array)
                .and_then(|l| l.iter().find(|x| x.get("type") == Some(&json!(c.type_))))
                .filter(|x| x.get("status") == v.get("status"))
                .and_then(|x| x.get("lastTransitionTime"))
                .cloned();
            v["lastTransitionTime"] = previous.unwrap_or_else(|| json!(now));
            v
        })
        .collect()
}

/// Equal once both go through the typed status (so defaults and omitted
/// fields compare alike) with `lastTransitionTime` removed.
fn same<T: Serialize + DeserializeOwned>(desired: &Value, live: &Value) -> bool {
    let norm = |v: &Value| -> Option<Value> {
        // Read from the borrowed value: no copy of it first.
        let typed = T::deserialize(v).ok()?;
        let mut v = serde_json::to_value(typed).ok()?;
        strip_times(&mut v);
        Some(v)
    };
    match (norm(desired), norm(live)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

fn strip_times(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.remove("lastTransitionTime");
            map.values_mut().for_each(strip_times);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_times),
        _ => {}
    }
}

/// The current time as Kubernetes writes it.
pub fn now() -> String {
    serde_json::to_value(Time(k8s_openapi::jiff::Timestamp::now()))
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::translate::conditions::{CUT_MARKER, MAX_MESSAGE};
    use crate::xds::hub::GatewayFeedback;

    #[test]
    fn lookups_in_key_order_find_every_entry_even_asked_out_of_order() {
        let map: BTreeMap<ObjectKey, u32> = (0..6)
            .map(|i| (ObjectKey::new("ns", format!("r{i}")), i))
            .collect();
        let mut lookup = InOrder::new(map.iter());
        let mut ask = |name: &str| lookup.get(&ObjectKey::new("ns", name)).copied();
        assert_eq!(ask("r1"), Some(1));
        assert_eq!(ask("r10"), None, "between r1 and r2");
        assert_eq!(ask("r4"), Some(4));
        assert_eq!(ask("r0"), Some(0), "out of order: walked again");
        assert_eq!(ask("r0"), Some(0), "asked twice");
        assert_eq!(ask("r5"), Some(5));
        assert_eq!(ask("r9"), None);
        assert_eq!(ask("a"), None);
    }

    /// A portico GatewayClass and Gateway `default/gw` with an HTTP listener.
    pub(in crate::status) fn inputs() -> Inputs {
        let yaml = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: portico}\n\
                    spec: {controllerName: portico.dev/gateway-controller}\n---\n\
                    apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: default}\n\
                    spec:\n  gatewayClassName: portico\n  listeners: [{name: http, port: 80, protocol: HTTP}]\n";
        let mut b = crate::inputs::InputsBuilder::default();
        for o in crate::inputs::files::parse_documents(std::path::Path::new("t.yaml"), yaml)
            .expect("valid")
        {
            b.insert(o);
        }
        b.build()
    }

    #[test]
    fn an_envoy_rejection_of_100_kib_is_written_capped() {
        let inputs = inputs();
        let outputs = crate::translate::translate(&inputs);
        let key = ObjectKey::new("default", "gw");
        let nack = "x".repeat(100 * 1024);
        let feedback = GatewayFeedback {
            streams: 1,
            acked: None,
            rejected: Some(("v1".into(), nack)),
        };
        let observed = BTreeMap::from([(
            key.clone(),
            Observed {
                feedback: Some(&feedback),
                current_version: Some("v1"),
                ..Observed::default()
            },
        )]);
        let writes = plan(&inputs, &outputs, &observed, "2026-01-01T00:00:00Z");
        let gateway = writes
            .iter()
            .find(|w| w.kind == Kind::Gateway && w.key == key)
            .expect("a Gateway status write");
        let mut messages = Vec::new();
        let mut conditions: Vec<&Value> = gateway.status["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        for l in gateway.status["listeners"].as_array().into_iter().flatten() {
            conditions.extend(l["conditions"].as_array().into_iter().flatten());
        }
        for c in conditions {
            let m = c["message"].as_str().expect("message");
            assert!(m.len() <= MAX_MESSAGE, "{} bytes", m.len());
            messages.push(m);
        }
        let capped = messages
            .iter()
            .filter(|m| m.ends_with(CUT_MARKER) && m.contains("Envoy rejected"))
            .count();
        assert_eq!(capped, 2, "the Gateway's and the listener's Programmed");
    }

    #[test]
    fn shared_lists_keep_other_controllers_entries_and_settle() {
        let yaml = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: portico}\n\
                    spec: {controllerName: portico.dev/gateway-controller}\n---\n\
                    apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: default}\n\
                    spec:\n  gatewayClassName: portico\n  listeners:\n\
                    \x20 - {name: http, port: 80, protocol: HTTP}\n\
                    \x20 - {name: dns, port: 53, protocol: UDP}\n---\n\
                    apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: default, generation: 1}\n\
                    spec:\n  parentRefs: [{name: gw, sectionName: http}]\n\
                    status:\n  parents:\n  - parentRef: {name: theirs}\n    controllerName: example.com/other\n\
                    \x20   conditions: [{type: Accepted, status: 'True', reason: Accepted, message: '', observedGeneration: 1, lastTransitionTime: '2025-01-01T00:00:00Z'}]\n---\n\
                    apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: UDPRoute\nmetadata: {name: u, namespace: default, generation: 1}\n\
                    spec:\n  parentRefs: [{name: gw, sectionName: dns}]\n  rules: [{backendRefs: [{name: dns, port: 53}]}]\n";
        let mut b = crate::inputs::InputsBuilder::default();
        for o in crate::inputs::files::parse_documents(std::path::Path::new("t.yaml"), yaml)
            .expect("valid")
        {
            b.insert(o);
        }
        let mut inputs = b.build();
        let outputs = crate::translate::translate(&inputs);
        let now = "2026-01-01T00:00:00Z";
        let writes = plan(&inputs, &outputs, &BTreeMap::new(), now);
        let shared: Vec<&Write> = writes
            .iter()
            .filter(|w| w.kind.status() != Status::Owned)
            .collect();
        let kinds: Vec<Kind> = shared.iter().map(|w| w.kind).collect();
        assert_eq!(kinds, vec![Kind::HttpRoute, Kind::UdpRoute]);
        let parents = shared[0].status["parents"].as_array().expect("parents");
        assert_eq!(parents.len(), 2, "theirs kept, ours added");
        assert_eq!(parents[0]["controllerName"], "example.com/other");
        assert_eq!(
            parents[0]["conditions"][0]["lastTransitionTime"], "2025-01-01T00:00:00Z",
            "theirs exactly as read"
        );
        assert_eq!(parents[1]["controllerName"], CONTROLLER_NAME);

        // Once the API server holds what was written, nothing is left to write.
        for w in shared {
            match w.kind {
                Kind::HttpRoute => {
                    let mut live = (*inputs.http_routes[&w.key]).clone();
                    live.status = serde_json::from_value(w.status.clone()).expect("status");
                    inputs.http_routes.insert(w.key.clone(), live.into());
                }
                Kind::UdpRoute => {
                    let mut live = (*inputs.udp_routes[&w.key]).clone();
                    live.status = serde_json::from_value(w.status.clone()).expect("status");
                    inputs.udp_routes.insert(w.key.clone(), live.into());
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        let again = plan(&inputs, &outputs, &BTreeMap::new(), "2026-02-01T00:00:00Z");
        assert!(
            again.iter().all(|w| w.kind.status() == Status::Owned),
            "{again:?}"
        );
    }
}
