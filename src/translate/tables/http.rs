//! The `RouteTable` of one Gateway: for every listener port, the hostnames it
//! serves and, per hostname, the route entries (one per rule match) in the order
//! the Gateway API specification gives them. Envoy evaluates routes top-down, so
//! this order is the precedence users see.
//!
//! In: the Gateway's listeners and the attachments of compiled routes. Out: a
//! table keyed by port, then hostname, ready for the Envoy route builder.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::translate::compile::http::matches::{MatchModel, PathMatch};
use crate::translate::compile::http::{HttpRouteModel, RuleModel};
use crate::translate::hostnames;
use crate::translate::index::{GatewayModel, Protocol};

/// One rule match of one route, placed on one hostname.
#[derive(Clone, Debug)]
pub struct RouteEntry<'a> {
    pub route: &'a Arc<HttpRouteModel>,
    pub rule: &'a RuleModel,
    pub match_index: usize,
}

impl RouteEntry<'_> {
    pub fn matcher(&self) -> &MatchModel {
        &self.rule.matches[self.match_index]
    }
}

/// Routes of one listener port.
#[derive(Debug)]
pub struct PortRoutes<'a> {
    pub port: i32,
    pub container_port: u32,
    /// Hostname (`*` for any) to ordered entries.
    pub hosts: BTreeMap<String, Vec<RouteEntry<'a>>>,
    /// Hostname to the listener (index on the Gateway) that owns it.
    pub owners: BTreeMap<String, usize>,
}

/// Where a route attached: listener index on the Gateway and the hostnames it
/// serves there.
#[derive(Clone, Debug)]
pub struct Placement<'a> {
    pub route: &'a Arc<HttpRouteModel>,
    pub listener: usize,
    pub hostnames: Vec<String>,
}

/// Hostname to (owning listener, entries of the routes that name it).
type HostEntries<'a> = BTreeMap<String, HostRoutes<'a>>;

/// The routes naming one hostname on one port, and the listener owning it.
#[derive(Debug)]
struct HostRoutes<'a> {
    listener: Option<usize>,
    entries: Vec<RouteEntry<'a>>,
}

/// Builds the table of one Gateway from its placements.
///
/// Each hostname first gets the entries of routes that name it, in match
/// precedence; then, as fallbacks, the entries of less specific hostnames of
/// the same listener that cover it (`*.example.com`, then `*`). A request for
/// `a.example.com` that matches no rule of the exact-hostname routes thus still
/// reaches the wildcard routes, as the specification orders hostnames before
/// matches.
pub fn build<'a>(gateway: &GatewayModel, placements: &[Placement<'a>]) -> Vec<PortRoutes<'a>> {
    let mut own: BTreeMap<i32, (u32, HostEntries<'a>)> = BTreeMap::new();
    for (i, l) in gateway.listeners.iter().enumerate().filter(|(_, l)| {
        l.is_ready() && matches!(l.protocol, Some(Protocol::Http | Protocol::Https))
    }) {
        let (_, hosts) = own
            .entry(l.port)
            .or_insert_with(|| (l.container_port, BTreeMap::new()));
        // Every listener hostname gets a virtual host, even without routes, so a
        // more specific listener keeps its requests (and answers 404 itself).
        let host = l.hostname.clone().unwrap_or_else(|| "*".into());
        hosts.entry(host).or_insert(HostRoutes {
            listener: Some(i),
            entries: Vec::new(),
        });
    }
    for p in placements {
        let listener = &gateway.listeners[p.listener];
        let Some((_, hosts)) = own.get_mut(&listener.port) else {
            continue;
        };
        for host in &p.hostnames {
            let owner = gateway.owner(listener.port, host);
            if owner != Some(p.listener) {
                continue;
            }
            let entries = &mut hosts
                .entry(host.clone())
                .or_insert(HostRoutes {
                    listener: owner,
                    entries: Vec::new(),
                })
                .entries;
            for rule in &p.route.rules {
                for match_index in 0..rule.matches.len() {
                    entries.push(RouteEntry {
                        route: p.route,
                        rule,
                        match_index,
                    });
                }
            }
        }
    }
    let mut out = Vec::new();
    for (port, (container_port, mut hosts)) in own {
        for HostRoutes { entries, .. } in hosts.values_mut() {
            entries.sort_by(precedence);
            entries.dedup_by(|a, b| {
                a.route.head.key == b.route.head.key
                    && a.rule.index == b.rule.index
                    && a.match_index == b.match_index
            });
        }
        let mut table = PortRoutes {
            port,
            container_port,
            hosts: BTreeMap::new(),
            owners: hosts
                .iter()
                .filter_map(|(h, r)| Some((h.clone(), r.listener?)))
                .collect(),
        };
        // Only wildcard hostnames can be fallbacks; there are few of them.
        let mut wildcards: Vec<(String, Option<usize>, Vec<RouteEntry<'a>>)> = hosts
            .iter()
            .filter(|(h, _)| h.starts_with('*'))
            .map(|(h, r)| (h.clone(), r.listener, r.entries.clone()))
            .collect();
        wildcards.sort_by_key(|(h, _, _)| std::cmp::Reverse(hostnames::specificity(h)));
        for (host, own) in hosts {
            let mut all = own.entries;
            for (wildcard, listener, fallback) in &wildcards {
                let covers = wildcard == "*" || hostnames::covers(wildcard, &host);
                if *wildcard != host && *listener == own.listener && covers {
                    all.extend(fallback.iter().cloned());
                }
            }
            table.hosts.insert(host, all);
        }
        out.push(table);
    }
    out
}

/// Sort key of a path: exact first, then regular expressions, then prefixes,
/// each longer before shorter.
fn path_rank(p: &PathMatch) -> (u8, usize) {
    match p {
        PathMatch::Exact(v) => (3, v.len()),
        PathMatch::Regex(v) => (2, v.len()),
        PathMatch::Prefix(v) => (1, v.len()),
    }
}

/// The Gateway API order. HTTPRoute matches: path kind and length, method,
/// header count, query count. GRPCRoute matches: service length, method
/// length, header count. Ties go to the oldest route, then namespace/name,
/// then rule and match order.
fn precedence(a: &RouteEntry<'_>, b: &RouteEntry<'_>) -> Ordering {
    let (ma, mb) = (a.matcher(), b.matcher());
    let by_match = match (ma.grpc, mb.grpc) {
        (Some(ga), Some(gb)) => gb.cmp(&ga).then(mb.headers.len().cmp(&ma.headers.len())),
        _ => path_rank(&mb.path)
            .cmp(&path_rank(&ma.path))
            .then(mb.method.is_some().cmp(&ma.method.is_some()))
            .then(mb.headers.len().cmp(&ma.headers.len()))
            .then(mb.query_params.len().cmp(&ma.query_params.len())),
    };
    by_match
        .then_with(|| a.route.head.age_order(&b.route.head))
        .then(a.rule.index.cmp(&b.rule.index))
        .then(a.match_index.cmp(&b.match_index))
}
