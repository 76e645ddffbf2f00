//! Encoded virtual hosts of one Gateway, per port and hostname. A virtual
//! host's encoding reads only its port, its hostname and its route entries
//! (each the compiled rule and match of one route), so it is reused while
//! the entries are the same ones in the same order and none of their routes
//! changed (`Changes::route`).

use std::collections::HashMap;

use super::GatewayScope;
use crate::inputs::ObjectKey;
use crate::translate::compile::routes::RouteKind;
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

/// One route entry by name: route, rule and match.
#[derive(Clone, Debug, PartialEq, Eq)]
struct EntryId {
    kind: RouteKind,
    route: ObjectKey,
    rule: usize,
    matcher: usize,
}

impl EntryId {
    fn of(entry: &RouteEntry<'_>) -> Self {
        Self {
            kind: entry.route.head.kind,
            route: entry.route.head.key.clone(),
            rule: entry.rule.index,
            matcher: entry.match_index,
        }
    }

    fn is(&self, entry: &RouteEntry<'_>) -> bool {
        self.kind == entry.route.head.kind
            && self.rule == entry.rule.index
            && self.matcher == entry.match_index
            && self.route == entry.route.head.key
    }
}

impl Hosts {
    /// Forgets every encoding.
    pub(super) fn clear(&mut self) {
        self.current.clear();
        self.last.clear();
    }

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
        let changes = self.changes;
        let valid = |h: &Host| {
            h.entries.len() == entries.len()
                && h.entries.iter().zip(entries).all(|(id, e)| id.is(e))
                && !entries
                    .iter()
                    .any(|e| changes.route(e.route.head.kind, &e.route.head.key))
        };
        let port_hosts = hosts.current.entry(port).or_default();
        let fresh = match port_hosts.get(host) {
            // Encoded for another listener of this port in this translation.
            Some(h)
                if h.entries.len() == entries.len()
                    && h.entries.iter().zip(entries).all(|(id, e)| id.is(e)) =>
            {
                false
            }
            _ => true,
        };
        if fresh {
            let kept = hosts
                .last
                .get_mut(&port)
                .and_then(|m| m.remove(host))
                .filter(|h| valid(h));
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
