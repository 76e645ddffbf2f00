//! Encoded clusters of one Gateway. A cluster's encoding is a function of
//! its `Upstream` (Service port, protocol, TLS settings, or weighted parts)
//! and of the client certificate the Gateway presents to TLS backends, so
//! it is reused whenever both are equal, whatever else changed.

use std::collections::HashMap;

use super::GatewayScope;
use crate::translate::encode::Resource;
use crate::translate::encode::cluster::Upstream;

/// Encoded clusters by name: those the current translation used, and those
/// of the last one still to be claimed.
#[derive(Clone, Debug, Default)]
pub struct Clusters {
    current: HashMap<String, Cluster>,
    last: HashMap<String, Cluster>,
}

#[derive(Clone, Debug)]
struct Cluster {
    upstream: Upstream,
    client_secret: Option<String>,
    resource: Resource,
}

impl Clusters {
    pub(super) fn begin(&mut self) {
        self.last = std::mem::take(&mut self.current);
    }

    pub(super) fn finish(&mut self) {
        self.last.clear();
    }
}

impl GatewayScope<'_> {
    /// The encoded cluster of `upstream`: remembered, or made by `encode`.
    pub fn cluster(
        &mut self,
        upstream: &Upstream,
        client_secret: Option<&str>,
        encode: impl FnOnce() -> Resource,
    ) -> Resource {
        if !self.recording {
            return encode();
        }
        let clusters = &mut self.memo.clusters;
        let name = upstream.name();
        let kept = clusters
            .last
            .remove(name)
            .filter(|c| c.upstream == *upstream && c.client_secret.as_deref() == client_secret);
        let c = kept.unwrap_or_else(|| Cluster {
            upstream: upstream.clone(),
            client_secret: client_secret.map(str::to_string),
            resource: encode(),
        });
        let resource = c.resource.clone();
        clusters.current.insert(name.to_string(), c);
        resource
    }
}
