//! Endpoints of a cluster: the ready addresses of a Service port, read from the
//! Service's EndpointSlices. Headless and selector-less Services work the same
//! way, since only the slices are read.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::inputs::Inputs;

use crate::translate::compile::backends::ClusterKey;

/// A ready endpoint: address and target port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    pub address: IpAddr,
    pub port: u16,
}

/// Ready endpoints of a cluster, sorted and without duplicates.
pub fn ready_endpoints(inputs: &Inputs, cluster: &ClusterKey) -> Vec<Endpoint> {
    let Some(service) = inputs.services.get(&cluster.service) else {
        return Vec::new();
    };
    let port_name = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .and_then(|ports| ports.iter().find(|p| p.port == i32::from(cluster.port)))
        .map(|p| p.name.clone().unwrap_or_default());
    let Some(port_name) = port_name else {
        return Vec::new();
    };
    let mut out = BTreeSet::new();
    for slice in inputs.slices_of(&cluster.service) {
        if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
            continue;
        }
        let target = slice
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.clone().unwrap_or_default() == port_name)
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok());
        let Some(port) = target else { continue };
        for endpoint in slice.endpoints.iter().flatten() {
            let ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true);
            if !ready {
                continue;
            }
            for address in &endpoint.addresses {
                if let Ok(address) = address.parse::<IpAddr>() {
                    out.insert(Endpoint { address, port });
                }
            }
        }
    }
    out.into_iter().collect()
}
