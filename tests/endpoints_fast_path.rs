//! The endpoints-only fast path gives exactly what a full translation gives
//! when only EndpointSlices change: checked on every golden case with each
//! slice's first endpoint turned not-ready and a new address added.

mod common;

use std::sync::Arc;

use portico::translate::{refresh_endpoints, translate};

#[test]
fn endpoint_changes_alone_match_a_full_translation() {
    let mut changed_some = 0;
    for (name, dir) in common::cases() {
        let before = portico::inputs::files::load(&dir.join("input.yaml")).expect("loads");
        let mut after = before.clone();
        for slices in after.endpoint_slices.values_mut() {
            for slice in slices.values_mut() {
                let mut s = (**slice).clone();
                let endpoints = s.endpoints.get_or_insert_with(Vec::new);
                if let Some(first) = endpoints.first_mut() {
                    first.conditions.get_or_insert_with(Default::default).ready = Some(false);
                }
                if let Some(last) = endpoints.last().cloned() {
                    let mut extra = last;
                    extra.addresses = vec!["10.99.0.1".into()];
                    extra.conditions = None;
                    endpoints.push(extra);
                }
                *slice = Arc::new(s);
            }
        }
        assert!(before.same_but_endpoints(&after), "{name}");
        let full = translate(&after);
        let fast = refresh_endpoints(&after, &translate(&before));
        assert_eq!(
            fast, full,
            "{name}: fast path differs from a full translation"
        );
        if full != translate(&before) {
            changed_some += 1;
        }
    }
    assert!(
        changed_some >= 20,
        "only {changed_some} cases had endpoints to change"
    );
}
