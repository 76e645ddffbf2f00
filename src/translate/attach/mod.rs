//! Stage 3, attach. Route attachment, the same for every route kind: each `parentRef` of a
//! route resolved against the Gateways portico serves (kind Gateway: the
//! Gateway's own listeners; kind ListenerSet: that accepted ListenerSet's
//! listeners, on its Gateway), filtered by sectionName, port, the listeners'
//! allowed kinds and namespaces, and hostname intersection. Out: one
//! `RouteParentStatus` per parentRef that names one of our Gateways or
//! their ListenerSets, and the listeners (with hostnames) the route is
//! placed on. Competing routes are settled next (`settle`); only then does
//! `count` give each listener its `attachedRoutes`.

use serde::Serialize;
use std::collections::BTreeSet;

use crate::identity::{CONTROLLER_NAME, GATEWAY_GROUP};
use crate::inputs::{Inputs, ObjectKey};
use crate::translate::compile::Compiled;
use crate::translate::compile::routes::ParentRef;
use crate::translate::compile::routes::RouteHead;
use crate::translate::conditions::{Condition, Conditions, spec};
use crate::translate::hostnames;
use crate::translate::index::{GatewayIndex, GatewayModel};

/// The outcome of attaching one route.
#[derive(Debug, Default)]
pub struct Attached {
    pub parents: Vec<RouteParentStatus>,
    /// The Gateway each entry of `parents` resolved to (for a ListenerSet:
    /// its Gateway).
    pub parent_gateways: Vec<ObjectKey>,
    /// The served listeners the route is placed on.
    pub placements: Vec<Attachment>,
    /// Listeners that accept the route but serve nothing (no valid
    /// certificate): they count it, nothing is placed on them.
    pub unserved: Vec<(ObjectKey, usize)>,
}

/// One listener a route attached to, and the hostnames it serves there
/// (`*` for any; TCP and UDP routes always get `*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub gateway: ObjectKey,
    /// Index of the parentRef's entry in `Attached::parents`.
    pub parent: usize,
    pub listener: usize,
    pub hostnames: Vec<String>,
}

/// Attaches every compiled route, in `Compiled::heads` order. Nothing is
/// counted here: conflicts are settled first (`settle`), then `count`.
pub fn routes(index: &GatewayIndex, inputs: &Inputs, compiled: &Compiled) -> Vec<Attached> {
    compiled
        .heads()
        .map(|(head, has_rules)| attach(index, inputs, head, has_rules))
        .collect()
}

/// Each listener's `attached_routes`: the routes placed on it once
/// conflicts are settled, plus those it accepts without serving; a route
/// naming one listener through several parentRefs counts once.
pub fn count(index: &mut GatewayIndex, attached: &[Attached]) {
    for route in attached {
        let placed = route.placements.iter().map(|a| (&a.gateway, a.listener));
        let unserved = route.unserved.iter().map(|(g, l)| (g, *l));
        let listeners: BTreeSet<(&ObjectKey, usize)> = placed.chain(unserved).collect();
        for (gateway, listener) in listeners {
            let listener = index
                .gateways
                .get_mut(gateway)
                .and_then(|g| g.listeners.get_mut(listener));
            if let Some(l) = listener {
                l.attached_routes += 1;
            }
        }
    }
}

/// Attaches a compiled route; `has_rules` is whether any rule survived
/// compilation.
fn attach(idx: &GatewayIndex, inputs: &Inputs, route: &RouteHead, has_rules: bool) -> Attached {
    let mut out = Attached::default();
    for p in &route.parent_refs {
        let group = p.group.as_deref().unwrap_or(GATEWAY_GROUP);
        if group != GATEWAY_GROUP {
            continue;
        }
        let namespace = p
            .namespace
            .clone()
            .unwrap_or_else(|| route.key.namespace.clone());
        let parent_key = ObjectKey::new(namespace, p.name.clone());
        let (gateway_key, set) = match p.kind.as_deref().unwrap_or("Gateway") {
            "Gateway" => (parent_key, None),
            "ListenerSet" => match idx.listener_sets.get(&parent_key) {
                Some(gateway) => (gateway.clone(), Some(parent_key)),
                None => continue,
            },
            _ => continue,
        };
        let Some(gateway) = idx.gateways.get(&gateway_key) else {
            continue;
        };
        let mut conditions = Conditions::new(route.generation);
        let parent = Parent {
            gateway,
            set: set.as_ref(),
        };
        let accepted = attach_one(&mut conditions, &parent, inputs, p, route, has_rules);
        for (listener, hostnames) in accepted {
            if !gateway.listeners[listener].is_ready() {
                out.unserved.push((gateway_key.clone(), listener));
                continue;
            }
            out.placements.push(Attachment {
                gateway: gateway_key.clone(),
                parent: out.parents.len(),
                listener,
                hostnames,
            });
        }
        resolved_refs(&mut conditions, route);
        out.parents.push(RouteParentStatus {
            parent_ref: p.clone(),
            controller_name: CONTROLLER_NAME,
            conditions: conditions.into_vec(),
        });
        out.parent_gateways.push(gateway_key);
    }
    out
}

/// What a parentRef names: a Gateway, or one of its ListenerSets.
struct Parent<'g> {
    gateway: &'g GatewayModel,
    set: Option<&'g ObjectKey>,
}

impl Parent<'_> {
    fn kind(&self) -> &'static str {
        if self.set.is_some() {
            "ListenerSet"
        } else {
            "Gateway"
        }
    }

    /// `Gateway ns/name` or `ListenerSet ns/name`, for messages.
    fn describe(&self) -> String {
        format!("{} {}", self.kind(), self.set.unwrap_or(&self.gateway.key))
    }

    /// The namespace `Same` means for its listeners.
    fn namespace(&self) -> &str {
        &self.set.unwrap_or(&self.gateway.key).namespace
    }

    /// Why the named ListenerSet takes no routes, if it does not.
    fn set_rejection(&self) -> Option<String> {
        let key = self.set?;
        let set = self.gateway.listener_sets.iter().find(|s| s.key == *key)?;
        if set.accepted() {
            return None;
        }
        let why = set
            .conditions
            .get(spec::ACCEPTED)
            .map(|c| c.message.to_string())
            .unwrap_or_default();
        Some(format!("ListenerSet {key} is not accepted: {why}"))
    }
}

/// Sets `Accepted` (and `PartiallyInvalid`) for one parent and returns the
/// listeners the route attaches to, with the hostnames it serves on each.
fn attach_one(
    conditions: &mut Conditions,
    parent: &Parent<'_>,
    inputs: &Inputs,
    p: &ParentRef,
    route: &RouteHead,
    has_rules: bool,
) -> Vec<(usize, Vec<String>)> {
    let kind = route.kind.name();
    let reject = |conditions: &mut Conditions, reason: &'static str, message: String| {
        conditions.set(spec::ACCEPTED, false, reason, message);
        Vec::new()
    };
    if let Some(e) = &route.route_error {
        return reject(conditions, spec::UNSUPPORTED_VALUE, e.clone());
    }
    if !has_rules {
        let why = route.invalid_rules.join("; ");
        return reject(
            conditions,
            spec::UNSUPPORTED_VALUE,
            format!("no valid rule: {why}"),
        );
    }
    let gateway = parent.gateway;
    if let Some(e) = gateway
        .parameters_error
        .as_ref()
        .or(gateway.address_error.as_ref())
    {
        return reject(
            conditions,
            spec::PENDING,
            format!("Gateway {} is not accepted: {e}", gateway.key),
        );
    }
    if let Some(why) = parent.set_rejection() {
        return reject(conditions, spec::NOT_ALLOWED_BY_LISTENERS, why);
    }
    let (named, kind_of_parent) = (parent.describe(), parent.kind());
    let candidates: Vec<usize> = gateway
        .listeners
        .iter()
        .enumerate()
        .filter(|(_, l)| l.set.as_ref() == parent.set)
        .filter(|(_, l)| p.section_name.as_ref().is_none_or(|s| *s == l.name))
        .filter(|(_, l)| p.port.is_none_or(|port| port == l.port))
        .map(|(i, _)| i)
        .collect();
    // How the parentRef narrows the listeners, for messages.
    let target = match (&p.section_name, p.port) {
        (Some(s), Some(port)) => format!("listener {s:?} on port {port}"),
        (Some(s), None) => format!("listener {s:?}"),
        (None, Some(port)) => format!("listener on port {port}"),
        (None, None) => "listener".to_string(),
    };
    if candidates.is_empty() {
        return reject(
            conditions,
            spec::NO_MATCHING_PARENT,
            format!("{named} has no {target}"),
        );
    }
    let ready: Vec<usize> = candidates
        .into_iter()
        .filter(|i| gateway.listeners[*i].is_attachable())
        .collect();
    if ready.is_empty() {
        return reject(
            conditions,
            spec::NOT_ALLOWED_BY_LISTENERS,
            format!("no valid {target} on {named} (see the {kind_of_parent}'s listener status)"),
        );
    }
    let kind_ok: Vec<usize> = ready
        .into_iter()
        .filter(|i| gateway.listeners[*i].allows_kind(kind))
        .collect();
    if kind_ok.is_empty() {
        return reject(
            conditions,
            spec::NOT_ALLOWED_BY_LISTENERS,
            format!("no {target} on {named} allows the kind {kind}"),
        );
    }
    let allowed: Vec<usize> = kind_ok
        .into_iter()
        .filter(|i| {
            gateway.listeners[*i].allows_namespace(inputs, parent.namespace(), &route.key.namespace)
        })
        .collect();
    if allowed.is_empty() {
        return reject(
            conditions,
            spec::NOT_ALLOWED_BY_LISTENERS,
            format!(
                "no {target} on {named} allows routes from namespace {}",
                route.key.namespace
            ),
        );
    }
    let attached: Vec<(usize, Vec<String>)> = allowed
        .into_iter()
        .map(|i| {
            let listener = gateway.listeners[i].hostname.as_deref();
            let served = if route.kind.uses_hostnames() {
                hostnames::intersect(listener, &route.hostnames)
            } else {
                vec!["*".to_string()]
            };
            (i, served)
        })
        .filter(|(_, h)| !h.is_empty())
        .collect();
    if attached.is_empty() {
        return reject(
            conditions,
            spec::NO_MATCHING_LISTENER_HOSTNAME,
            format!("no hostname of the route intersects the hostname of any {target} on {named}"),
        );
    }
    let message = if attached
        .iter()
        .any(|(i, _)| gateway.listeners[*i].is_ready())
    {
        "the route is attached".to_string()
    } else {
        format!(
            "the route is attached, but no listener it attached to is programmed (see the \
             {kind_of_parent}'s listener status): nothing serves it yet"
        )
    };
    conditions.set(spec::ACCEPTED, true, "Accepted", message);
    if !route.invalid_rules.is_empty() {
        conditions.set(
            spec::PARTIALLY_INVALID,
            true,
            spec::UNSUPPORTED_VALUE,
            format!("dropped invalid rules: {}", route.invalid_rules.join("; ")),
        );
    }
    attached
}

fn resolved_refs(conditions: &mut Conditions, route: &RouteHead) {
    match route.unresolved.first() {
        None => conditions.set(
            spec::RESOLVED_REFS,
            true,
            "ResolvedRefs",
            "all references resolved",
        ),
        Some(first) => {
            let messages: Vec<&str> = route
                .unresolved
                .iter()
                .map(|e| e.message.as_str())
                .collect();
            conditions.set(
                spec::RESOLVED_REFS,
                false,
                first.reason,
                messages.join("; "),
            );
        }
    }
}

/// One entry of a route's `status.parents`: what a parent says of it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteParentStatus {
    pub parent_ref: ParentRef,
    pub controller_name: &'static str,
    pub conditions: Vec<Condition>,
}
