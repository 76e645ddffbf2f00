//! Encoded virtual hosts of one Gateway, per port and hostname. A virtual
//! host's encoding reads only its port, its hostname and its route entries
//! (each a rule and match of one compiled route), so it is reused while the
//! entries are the same ones in the same order, each of the same compiled
//! model: the same `Arc`, which `routes` keeps only while nothing the model
//! was compiled from changed.

use std::collections::HashMap;
use std::sync::Arc;

use super::GatewayScope;
use crate::translate::compile::http::HttpRouteModel;
use crate::translate::tables::http::RouteEntry;

/// Virtual hosts by port, then hostname: those the current translation
/// used, and those of the last one still to be claimed.
#[derive(Clone, Debug, Default)]
pub struct Hosts {
    current: HashMap<i32, HashMap<String, Host>>,
    last: HashMap<i32, HashMap<String, Host>>,
    /// The encoding of the virtual host at hand, when nothing is recorded.
    scratch: Vec<u8>,
}

/// One encoded virtual host and what it was encoded from.
#[derive(Clone, Debug)]
struct Host {
    entries: Vec<EntryId>,
    body: Vec<u8>,
}

/// One route entry: the compiled route (held, so its address names it),
/// rule and match.
#[derive(Clone, Debug)]
struct EntryId {
    route: Arc<HttpRouteModel>,
    rule: usize,
    matcher: usize,
}

impl EntryId {
    fn of(entry: &RouteEntry<'_>) -> Self {
        Self {
            route: Arc::clone(entry.route),
            rule: entry.rule.index,
            matcher: entry.match_index,
        }
    }

    fn is(&self, entry: &RouteEntry<'_>) -> bool {
        Arc::ptr_eq(&self.route, entry.route)
            && self.rule == entry.rule.index
            && self.matcher == entry.match_index
    }

    fn all(ids: &[EntryId], entries: &[RouteEntry<'_>]) -> bool {
        ids.len() == entries.len() && ids.iter().zip(entries).all(|(id, e)| id.is(e))
    }
}

impl Hosts {
    /// A new translation: what the last one used may be claimed.
    pub(super) fn begin(&mut self) {
        self.last = std::mem::take(&mut self.current);
    }

    /// Drops what the translation did not claim.
    pub(super) fn finish(&mut self) {
        self.last.clear();
    }
}

impl GatewayScope<'_> {
    /// The encoding of the virtual host `host` on `port` with `entries`:
    /// remembered, or made by `encode` (which appends to the buffer).
    pub fn virtual_host(
        &mut self,
        port: i32,
        host: &str,
        entries: &[RouteEntry<'_>],
        encode: impl FnOnce(&mut Vec<u8>),
    ) -> &[u8] {
        let hosts = &mut self.memo.hosts;
        if !self.recording {
            hosts.scratch.clear();
            encode(&mut hosts.scratch);
            return &hosts.scratch;
        }
        let port_hosts = hosts.current.entry(port).or_default();
        // Encoded for another listener of this port in this translation?
        let fresh = !port_hosts
            .get(host)
            .is_some_and(|h| EntryId::all(&h.entries, entries));
        if fresh {
            let kept = hosts
                .last
                .get_mut(&port)
                .and_then(|m| m.remove(host))
                .filter(|h| EntryId::all(&h.entries, entries));
            let h = kept.unwrap_or_else(|| {
                let mut body = Vec::new();
                encode(&mut body);
                Host {
                    entries: entries.iter().map(EntryId::of).collect(),
                    body,
                }
            });
            port_hosts.insert(host.to_string(), h);
        }
        port_hosts.get(host).map_or(&[][..], |h| &h.body)
    }
}
