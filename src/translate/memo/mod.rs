//! What translation carries from one snapshot to the next so that a change
//! recomputes only what depends on it: a `Memo`, owned by the caller (the
//! translator loop) and passed `&mut` to `translate_memo`. Translation stays
//! pure: the memo is an explicit value, and a result taken from it is the
//! result a full translation computes, never something older.
//!
//! How it is kept sound: at the start of a translation the memo compares the
//! new inputs with the last ones (`changes`): whether anything compilation
//! reads besides the routes and Services changed (ReferenceGrants,
//! BackendTLSPolicies, ConfigMaps: the "world"), and which Services changed.
//! Objects compare by `Arc` first, by value when the pointers differ, so a
//! snapshot that rebuilt an object gives no stale hit. It keeps:
//!
//! - `routes`: each route's compiled model, valid while the route reads the
//!   same (metadata compilation reads, spec), none of the Services it names
//!   changed and the world did not; a reused model is the same `Arc`;
//!
//! and per Gateway:
//!
//! - `hosts`: each virtual host's encoding, valid while the host keeps the
//!   same route entries (compiled model by `Arc`, rule, match, in order) on
//!   the same port;
//! - `clusters`: each cluster's encoding, keyed by the whole `Upstream` and
//!   the client certificate it presents (a pure function of both).
//!
//! Entries not used by a translation are dropped at its end, so the memo
//! holds what the last outputs hold and nothing older.

mod changes;
pub mod clusters;
pub mod hosts;
pub mod routes;

use std::collections::BTreeMap;

use self::changes::Changes;
pub use self::routes::CompileScope;
use self::routes::CompiledRoutes;
use crate::inputs::{Inputs, ObjectKey};

/// Results of the last translation, reusable by the next one.
#[derive(Clone, Debug)]
pub struct Memo {
    /// Off: nothing is recorded or reused (a plain full translation).
    recording: bool,
    /// The inputs of the last translation (maps of shared objects).
    last: Option<Inputs>,
    /// What changed since `last`; set by `begin`.
    changes: Changes,
    /// Every route's compiled model.
    routes: CompiledRoutes,
    /// Per Gateway, its encoded pieces.
    gateways: BTreeMap<ObjectKey, GatewayMemo>,
}

/// The encoded pieces of one Gateway.
#[derive(Clone, Debug, Default)]
pub struct GatewayMemo {
    pub hosts: hosts::Hosts,
    pub clusters: clusters::Clusters,
}

impl Default for Memo {
    fn default() -> Self {
        Self {
            recording: true,
            last: None,
            changes: Changes::everything(),
            routes: CompiledRoutes::default(),
            gateways: BTreeMap::new(),
        }
    }
}

impl Memo {
    /// A memo that records nothing: every result is computed afresh.
    pub fn off() -> Self {
        Self {
            recording: false,
            ..Self::default()
        }
    }

    /// Compares `inputs` with the last translation's; forgets what the
    /// change invalidates.
    pub(crate) fn begin(&mut self, inputs: &Inputs) {
        if !self.recording {
            return;
        }
        self.changes = match &self.last {
            Some(last) => changes::since(last, inputs),
            None => Changes::everything(),
        };
        self.routes.begin();
        for gateway in self.gateways.values_mut() {
            gateway.hosts.begin();
            gateway.clusters.begin();
        }
    }

    /// The compiled routes during a translation.
    pub(crate) fn compiled(&mut self) -> CompileScope<'_> {
        CompileScope {
            recording: self.recording,
            changes: &self.changes,
            routes: &mut self.routes,
        }
    }

    /// The memo of one Gateway during a translation: its pieces, and what
    /// changed since the last one.
    pub(crate) fn gateway(&mut self, key: &ObjectKey) -> GatewayScope<'_> {
        let recording = self.recording;
        let memo = if recording {
            self.gateways.entry(key.clone()).or_default()
        } else {
            self.gateways.entry(ObjectKey::default()).or_default()
        };
        GatewayScope { recording, memo }
    }

    /// Keeps what this translation used, and its inputs for the next.
    pub(crate) fn finish(&mut self, inputs: &Inputs, gateways: impl Fn(&ObjectKey) -> bool) {
        if !self.recording {
            self.gateways.clear();
            self.routes.clear();
            return;
        }
        self.routes.finish();
        self.gateways.retain(|key, _| gateways(key));
        for gateway in self.gateways.values_mut() {
            gateway.hosts.finish();
            gateway.clusters.finish();
        }
        self.last = Some(inputs.clone());
    }
}

/// One Gateway's memo, borrowed for the encoding of its resources.
pub struct GatewayScope<'m> {
    recording: bool,
    memo: &'m mut GatewayMemo,
}

impl GatewayScope<'_> {
    /// Whether results are recorded and reused.
    pub fn recording(&self) -> bool {
        self.recording
    }
}
