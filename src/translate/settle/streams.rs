//! TLSRoutes, TCPRoutes and UDPRoutes: a TCP or UDP port carries one route,
//! a TLS port one route per SNI hostname. The oldest route claiming a port
//! and hostname keeps it; a TLS hostname belongs to the most specific
//! listener covering it, and other listeners drop it. A placement left
//! without hostnames is lost.

use std::collections::BTreeMap;

use super::Loss;
use crate::inputs::ObjectKey;
use crate::translate::attach::Attachment;
use crate::translate::compile::routes::RouteKind;
use crate::translate::compile::{Compiled, RouteId};
use crate::translate::index::GatewayIndex;

/// Per Gateway, (port, UDP or not, hostname) to the route holding it.
#[derive(Default)]
pub(super) struct Claims {
    held: BTreeMap<(ObjectKey, i32, bool, String), RouteId>,
}

impl Claims {
    /// Keeps what `route` may hold of its placements; returns its losses.
    pub(super) fn settle(
        &mut self,
        index: &GatewayIndex,
        compiled: &Compiled,
        route: RouteId,
        placements: &mut Vec<Attachment>,
    ) -> Vec<Loss> {
        let head = compiled.head(route);
        let mut losses = Vec::new();
        placements.retain_mut(|p| {
            let Some(gateway) = index.gateways.get(&p.gateway) else {
                return false;
            };
            let listener = &gateway.listeners[p.listener];
            let port = listener.port;
            let udp = listener.protocol.is_some_and(|x| x.is_udp());
            let mut taken_by = None;
            p.hostnames.retain(|h| {
                if head.kind == RouteKind::Tls && gateway.owner(port, h) != Some(p.listener) {
                    return false;
                }
                let claim = (p.gateway.clone(), port, udp, h.clone());
                match self.held.get(&claim) {
                    Some(winner) if *winner != route => {
                        taken_by = Some(*winner);
                        false
                    }
                    _ => {
                        self.held.insert(claim, route);
                        true
                    }
                }
            });
            if !p.hostnames.is_empty() {
                return true;
            }
            let why = match taken_by {
                Some(w) => format!(
                    "{} {} is older (or first by name) and already serves it",
                    compiled.head(w).kind.name(),
                    compiled.head(w).key
                ),
                None => "a more specific listener owns every hostname of the route".to_string(),
            };
            let message = if head.kind.uses_hostnames() {
                format!(
                    "no hostname of the route is left on {}: {why}",
                    listener.describe(&gateway.key)
                )
            } else {
                format!(
                    "{} carries one {}: {why}",
                    listener.describe(&gateway.key),
                    head.kind.name()
                )
            };
            losses.push(Loss {
                parent: p.parent,
                message,
            });
            false
        });
        losses
    }
}
