//! What may have changed since the status round before, so that a round
//! looks at the objects whose status may differ and at no other.
//!
//! Between two rounds the desired status of a route or a BackendTLSPolicy
//! can change only if its live object changed or translation's entry for it
//! changed. Snapshots share what did not change (`inputs::shared`): a kind's
//! map held by both rounds is unchanged without a look inside, and in a map
//! that changed an object is the same while its `Arc` is, so finding the
//! changed keys costs a walk comparing pointers, no key or object compared
//! where the pointers agree. Translation's entries compare by value, in one
//! ordered walk over both outputs, and not at all while the round sees the
//! same `Arc<Outputs>` as the round before (a status-only snapshot, an Envoy
//! answer, a fleet change). Objects found gone are handed on, so the writer
//! forgets them without a sweep of its own (`status::writer`).
//!
//! Pure: two snapshots and two outputs in, keys out (the walks are
//! `crate::delta`'s).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::delta::{Diff, entries, objects};
use crate::inputs::kinds::{Held, Status};
use crate::inputs::{InputKind, Inputs, Kind, ObjectKey, Visit};
use crate::translate::Outputs;
use crate::translate::compile::routes::RouteKind;

/// What a round looks at, per kind with a shared status list, beyond the
/// objects the round before left unconfirmed; and what left, per kind
/// portico writes a status into.
#[derive(Clone, Debug, Default)]
pub(super) struct Since {
    /// Objects whose live object or translated entry changed.
    pub changed: BTreeMap<Kind, BTreeSet<ObjectKey>>,
    /// Objects gone since the round before.
    pub gone: Vec<(Kind, ObjectKey)>,
}

impl Since {
    /// What changed from the round that saw `last` and `last_outputs` to
    /// the one seeing `now` and `outputs`.
    pub fn between(
        last: &Inputs,
        last_outputs: &Arc<Outputs>,
        now: &Inputs,
        outputs: &Arc<Outputs>,
    ) -> Self {
        let mut since = Self::default();
        let same_outputs = Arc::ptr_eq(last_outputs, outputs);
        let routes: BTreeSet<(RouteKind, ObjectKey)> = if same_outputs {
            BTreeSet::new()
        } else {
            entries(last_outputs.routes.iter(), outputs.routes.iter())
                .into_iter()
                .collect()
        };
        let policies: Vec<ObjectKey> = if same_outputs {
            Vec::new()
        } else {
            entries(
                last_outputs.backend_tls_policies.iter(),
                outputs.backend_tls_policies.iter(),
            )
        };
        for kind in Kind::ALL {
            kind.visit(&mut Compare {
                last,
                now,
                since: &mut since,
                routes: &routes,
                policies: &policies,
            });
        }
        since
    }
}

/// One kind's part of `Since`.
struct Compare<'a> {
    last: &'a Inputs,
    now: &'a Inputs,
    since: &'a mut Since,
    routes: &'a BTreeSet<(RouteKind, ObjectKey)>,
    policies: &'a [ObjectKey],
}

impl Visit for Compare<'_> {
    type Out = ();

    fn kind<K: InputKind>(&mut self) {
        if !K::STATUS.written() {
            return;
        }
        let (last, now) = (K::held(self.last), K::held(self.now));
        let diff = if last.identical(now) {
            Diff::default()
        } else {
            objects(last.objects(), now.objects())
        };
        self.since
            .gone
            .extend(diff.gone.into_iter().map(|key| (K::KIND, key)));
        let mut changed: BTreeSet<ObjectKey> = diff.changed.into_iter().collect();
        match K::STATUS {
            Status::Parents(route) => changed.extend(
                self.routes
                    .range((route, ObjectKey::default())..)
                    .take_while(|(kind, _)| *kind == route)
                    .map(|(_, key)| key.clone()),
            ),
            Status::Ancestors => changed.extend(self.policies.iter().cloned()),
            Status::Owned | Status::None => return,
        }
        self.since.changed.insert(K::KIND, changed);
    }
}
