//! Every Envoy resource of one Gateway. Per port, the listener its protocol
//! needs: HTTP (one route configuration), HTTPS (a TLS filter chain and a
//! route configuration per Gateway listener), TLS and TCP (TCP proxy chains
//! for the attached routes) or UDP (a UDP proxy). Then the clusters every
//! route reaches, their endpoints, and the certificates the TLS chains name
//! (and the Gateway's client certificate for TLS to backends, when a cluster
//! uses it).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::cluster::{self, Upstream};
use super::listener::{self, HttpsChain};
use super::stream::{self, TlsChain};
use super::{EnvoyResources, Resource, route, tls};
use crate::inputs::{Inputs, ObjectKey};
use crate::translate::compile::backends::ClusterKey;
use crate::translate::compile::l4::{L4Backend, L4RouteModel};
use crate::translate::encode::endpoints;
use crate::translate::index::certificates;
use crate::translate::index::{GatewayModel, ListenerModel, Protocol, TlsMode};
use crate::translate::memo::GatewayScope;
use crate::translate::tables::L4Placement;
use crate::translate::tables::http::PortRoutes;

/// What one Gateway's resources are built from.
pub struct GatewayRoutes<'g, 'a> {
    pub gateway: &'g GatewayModel,
    pub http: &'g [PortRoutes<'a>],
    pub l4: &'g [L4Placement],
    pub l4_models: &'g [Arc<L4RouteModel>],
}

pub fn resources(
    inputs: &Inputs,
    routes: &GatewayRoutes<'_, '_>,
    address: &str,
    memo: &mut GatewayScope<'_>,
) -> (EnvoyResources, Vec<Upstream>) {
    let mut out = EnvoyResources::default();
    let mut services: BTreeSet<&ClusterKey> = BTreeSet::new();
    let mut upstreams: Vec<Upstream> = Vec::new();
    let mut certs: BTreeSet<&ObjectKey> = BTreeSet::new();

    // Ready listeners by (port, UDP or not); each group has one protocol
    // family (the Gateway marks the others conflicted).
    let mut ports: BTreeMap<(i32, bool), Vec<(usize, &ListenerModel)>> = BTreeMap::new();
    for (i, l) in routes.gateway.listeners.iter().enumerate() {
        if let (true, Some(p)) = (l.is_ready(), l.protocol) {
            ports.entry((l.port, p.is_udp())).or_default().push((i, l));
        }
    }
    for ((port, _), listeners) in &ports {
        let Some(&(_, first)) = listeners.first() else {
            continue;
        };
        let container_port = first.container_port;
        match first.protocol {
            Some(Protocol::Http) => {
                let Some(table) = routes.http.iter().find(|t| t.port == *port) else {
                    continue;
                };
                let name = listener::name_for_port(*port);
                let l = listener::http_listener(*port, address, container_port);
                out.listeners.push(Resource::encode(name.clone(), &l));
                out.routes.push(Resource {
                    body: route::route_configuration(name.clone(), table, memo).into(),
                    name,
                });
                collect_http_clusters(table, &mut services);
            }
            Some(Protocol::Https) => {
                let Some(table) = routes.http.iter().find(|t| t.port == *port) else {
                    continue;
                };
                let chains: Vec<HttpsChain<'_>> = listeners
                    .iter()
                    .map(|(_, l)| HttpsChain {
                        listener: &l.envoy_name,
                        hostname: l.hostname.as_deref(),
                        certificates: &l.certificates,
                        client_validation: l.client_validation.as_deref(),
                    })
                    .collect();
                let l = listener::https_listener(*port, address, container_port, &chains);
                out.listeners
                    .push(Resource::encode(listener::https_name(*port), &l));
                for (i, l) in listeners {
                    let name = listener::https_route_name(*port, &l.envoy_name);
                    out.routes.push(Resource {
                        body: route::listener_route_configuration(name.clone(), table, *i, memo)
                            .into(),
                        name,
                    });
                    certs.extend(&l.certificates);
                }
                collect_http_clusters(table, &mut services);
            }
            Some(Protocol::Tls(_)) => {
                let mut chains = Vec::new();
                for p in routes
                    .l4
                    .iter()
                    .filter(|p| listeners.iter().any(|(i, _)| *i == p.listener))
                {
                    let l = &routes.gateway.listeners[p.listener];
                    let model = &routes.l4_models[p.route];
                    let terminate = l.protocol == Some(Protocol::Tls(TlsMode::Terminate));
                    if terminate {
                        certs.extend(&l.certificates);
                    }
                    chains.push(TlsChain {
                        name: format!("{}/{}", l.envoy_name, model.head.key),
                        server_names: p.hostnames.clone(),
                        certificates: if terminate { &l.certificates } else { &[] },
                        backends: &model.backends,
                    });
                    collect_l4_clusters(&model.backends, &mut services);
                }
                if !chains.is_empty() {
                    let l = stream::tls_listener(*port, address, container_port, &chains);
                    out.listeners
                        .push(Resource::encode(stream::tls_name(*port), &l));
                }
            }
            Some(Protocol::Tcp) => {
                let Some(p) = routes.l4.iter().find(|p| p.listener == listeners[0].0) else {
                    continue;
                };
                let backends = &routes.l4_models[p.route].backends;
                let l = stream::tcp_listener(*port, address, container_port, backends);
                out.listeners
                    .push(Resource::encode(stream::tcp_name(*port), &l));
                collect_l4_clusters(backends, &mut services);
            }
            Some(Protocol::Udp) => {
                let Some(p) = routes.l4.iter().find(|p| p.listener == listeners[0].0) else {
                    continue;
                };
                let model = &routes.l4_models[p.route];
                // One live backend: its Service port's cluster, shared with
                // other routes. Otherwise a weighted cluster of the route's own.
                let parts = cluster::udp_parts(&model.backends);
                let target = match parts.as_slice() {
                    [(key, _)] => {
                        services.insert(key);
                        key.name.clone()
                    }
                    _ => {
                        let weighted = cluster::udp_weighted(&model.head.key, &parts);
                        let name = weighted.name().to_string();
                        upstreams.push(weighted);
                        name
                    }
                };
                let l = stream::udp_listener(*port, address, container_port, &target);
                out.listeners
                    .push(Resource::encode(stream::udp_name(*port), &l));
            }
            None => {}
        }
    }

    let mut all: Vec<Upstream> = services
        .into_iter()
        .cloned()
        .map(Upstream::Service)
        .collect();
    all.extend(upstreams);
    let client_certificate = routes.gateway.backend_client_certificate();
    let client_secret = client_certificate.map(tls::secret_name);
    let mut tls_clusters = false;
    for u in &all {
        tls_clusters |= u.has_tls();
        out.clusters
            .push(memo.cluster(u, client_secret.as_deref(), || {
                Resource::encode(
                    u.name().to_string(),
                    &cluster::cluster(u, client_secret.as_deref()),
                )
            }));
    }
    if tls_clusters {
        certs.extend(client_certificate);
    }
    out.endpoints = load_assignments(inputs, &all);
    for key in certs {
        let Some((chain, private_key)) = inputs
            .secrets
            .get(key)
            .and_then(|s| certificates::pem_pair(s))
        else {
            continue;
        };
        let secret = tls::certificate_secret(key, chain, private_key);
        out.secrets
            .push(Resource::encode(tls::secret_name(key), &secret));
    }
    out.listeners.sort_by(|a, b| a.name.cmp(&b.name));
    out.routes.sort_by(|a, b| a.name.cmp(&b.name));
    (out, all)
}

fn collect_http_clusters<'a>(table: &'a PortRoutes<'_>, services: &mut BTreeSet<&'a ClusterKey>) {
    for entry in table.hosts.values().flatten() {
        let rule = entry.rule;
        let live = rule.backends.iter().filter(|b| b.weight > 0);
        services.extend(live.filter_map(|b| b.cluster.as_deref()));
        services.extend(rule.filters.mirrors.iter().map(|m| &*m.cluster));
    }
}

fn collect_l4_clusters<'a>(backends: &'a [L4Backend], services: &mut BTreeSet<&'a ClusterKey>) {
    let live = backends.iter().filter(|b| b.weight > 0);
    services.extend(live.filter_map(|b| b.cluster.as_deref()));
}

/// The ClusterLoadAssignment of every upstream, from the ready endpoints.
pub fn load_assignments(inputs: &Inputs, upstreams: &[Upstream]) -> Vec<Resource> {
    upstreams
        .iter()
        .map(|u| {
            let assignment = match u {
                Upstream::Service(key) => {
                    cluster::load_assignment(key, &endpoints::ready_endpoints(inputs, key))
                }
                Upstream::Weighted { name, parts } => {
                    let parts: Vec<_> = parts
                        .iter()
                        .map(|(key, weight)| {
                            (key, *weight, endpoints::ready_endpoints(inputs, key))
                        })
                        .collect();
                    cluster::weighted_load_assignment(name, &parts)
                }
            };
            Resource::encode(u.name().to_string(), &assignment)
        })
        .collect()
}
