//! What each published snapshot was made of (`made_of`), at the cost of
//! what changed since the last one: the record keeps the inputs, the
//! outputs and the `MadeOf` of every Gateway it gave last, and the next is
//! the last with the routes that changed put right.
//!
//! A route's part of a Gateway's `MadeOf` is a function of its object (its
//! version and the object itself) and of its translated status (which
//! parents accept it, and of a ListenerSet parent, whose Gateway that is).
//! So the routes to put right are those whose object changed (snapshots
//! share unchanged objects: compared by pointer, a kind shared whole not
//! looked at) and those whose status changed (the outputs compared entry by
//! entry; not at all when they are the same `Arc`). A Gateway none of those
//! routes enters or leaves, and whose own version and ListenerSets stayed,
//! keeps its `MadeOf` (the same `Arc`); another gets a copy with them put
//! right. When the Gateways or the ListenerSets of the outputs changed,
//! everything is recorded anew. Pure, and equal to `made_of`
//! (`tests/incremental.rs` checks it over generated sequences of changes).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::made_of::{MadeOf, RouteId, RouteObject, accepted_on, heads, made_of};
use crate::delta;
use crate::inputs::shared::Shared;
use crate::inputs::{Inputs, ObjectKey, Store};
use crate::translate::Outputs;
use crate::translate::compile::routes::RouteKind;

/// What the last snapshots were made of, and from what.
#[derive(Debug, Default)]
pub struct Record {
    last: Option<Last>,
}

#[derive(Debug)]
struct Last {
    inputs: Inputs,
    outputs: Arc<Outputs>,
    made: BTreeMap<ObjectKey, Arc<MadeOf>>,
}

impl Record {
    /// Per Gateway in `outputs`: what its snapshot is made of (as
    /// `made_of`), the same `Arc` as the last call's where nothing of it
    /// changed.
    pub fn made_of(
        &mut self,
        inputs: &Inputs,
        outputs: &Arc<Outputs>,
    ) -> BTreeMap<ObjectKey, Arc<MadeOf>> {
        let made = match &self.last {
            Some(last)
                if last.outputs.gateways.keys().eq(outputs.gateways.keys())
                    && last.outputs.listener_sets == outputs.listener_sets =>
            {
                update(last, inputs, outputs)
            }
            _ => made_of(inputs, outputs)
                .into_iter()
                .map(|(key, m)| (key, Arc::new(m)))
                .collect(),
        };
        self.last = Some(Last {
            inputs: inputs.clone(),
            outputs: Arc::clone(outputs),
            made: made.clone(),
        });
        made
    }
}

/// The last record with the Gateways' own versions and the changed routes
/// put right.
fn update(
    last: &Last,
    inputs: &Inputs,
    outputs: &Arc<Outputs>,
) -> BTreeMap<ObjectKey, Arc<MadeOf>> {
    let mut made = last.made.clone();
    for (key, head) in heads(inputs, outputs) {
        if let Some(m) = made.get_mut(&key)
            && !m.same_listeners(&head)
        {
            let m = Arc::make_mut(m);
            m.gateway = head.gateway;
            m.listener_sets = head.listener_sets;
        }
    }
    for id in changed(last, inputs, outputs) {
        let now = outputs.routes.get(&id).and_then(|status| {
            let object = RouteObject::find(inputs, &id)?;
            Some((accepted_on(outputs, &id.1, status), object))
        });
        for (gateway, m) in &mut made {
            let want = now
                .as_ref()
                .filter(|(on, _)| on.contains(gateway))
                .map(|(_, object)| object);
            let have = m.routes.get(&id);
            let same = match (have, want) {
                (None, None) => true,
                (Some((version, object)), Some(want)) => {
                    *version == want.version() && object.same(want)
                }
                _ => false,
            };
            if same {
                continue;
            }
            let routes = &mut Arc::make_mut(m).routes;
            match want {
                Some(object) => {
                    routes.insert(id.clone(), (object.version(), object.clone()));
                }
                None => {
                    routes.remove(&id);
                }
            }
        }
    }
    made
}

/// The routes whose object or translated status changed since `last`.
fn changed(last: &Last, inputs: &Inputs, outputs: &Arc<Outputs>) -> BTreeSet<RouteId> {
    let mut ids = BTreeSet::new();
    if !Arc::ptr_eq(&last.outputs, outputs) {
        ids.extend(delta::entries(
            last.outputs.routes.iter(),
            outputs.routes.iter(),
        ));
    }
    let (a, b) = (&last.inputs, inputs);
    objects(RouteKind::Http, &a.http_routes, &b.http_routes, &mut ids);
    objects(RouteKind::Grpc, &a.grpc_routes, &b.grpc_routes, &mut ids);
    objects(RouteKind::Tls, &a.tls_routes, &b.tls_routes, &mut ids);
    objects(RouteKind::Tcp, &a.tcp_routes, &b.tcp_routes, &mut ids);
    objects(RouteKind::Udp, &a.udp_routes, &b.udp_routes, &mut ids);
    ids
}

/// The routes of one kind whose object changed or left.
fn objects<K>(kind: RouteKind, last: &Store<K>, now: &Store<K>, ids: &mut BTreeSet<RouteId>) {
    if Shared::ptr_eq(last, now) {
        return;
    }
    let diff = delta::objects(last.iter(), now.iter());
    ids.extend(
        diff.changed
            .into_iter()
            .chain(diff.gone)
            .map(|key| (kind, key)),
    );
}
