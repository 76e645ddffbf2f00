//! The fast paths give exactly what a full translation gives. Endpoints only:
//! checked on every golden case with each slice's first endpoint turned
//! not-ready and a new address added. Statuses only (what every status write
//! brings back through the watches): the same outputs, while a spec change
//! (a new generation) is not taken for a status change.

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

#[test]
fn status_changes_alone_translate_the_same() {
    use gateway_api::experimental::gateways::GatewayStatus;
    use gateway_api::experimental::httproutes::HttpRouteStatus;
    for (name, dir) in common::cases() {
        let before = portico::inputs::files::load(&dir.join("input.yaml")).expect("loads");
        let mut after = before.clone();
        for gateway in after.gateways.values_mut() {
            let mut g = (**gateway).clone();
            g.metadata.generation.get_or_insert(1);
            g.metadata.resource_version = Some("999".into());
            g.status = Some(GatewayStatus {
                addresses: None,
                ..GatewayStatus::default()
            });
            *gateway = Arc::new(g);
        }
        for route in after.http_routes.values_mut() {
            let mut r = (**route).clone();
            r.metadata.generation.get_or_insert(1);
            r.status = Some(HttpRouteStatus { parents: vec![] });
            *route = Arc::new(r);
        }
        let mut with_generations = before.clone();
        // On a cluster every object has a generation.
        for store in [&mut with_generations, &mut after] {
            for class in store.gateway_classes.values_mut() {
                let mut c = (**class).clone();
                c.metadata.generation.get_or_insert(1);
                *class = Arc::new(c);
            }
        }
        for gateway in with_generations.gateways.values_mut() {
            let mut g = (**gateway).clone();
            g.metadata.generation.get_or_insert(1);
            *gateway = Arc::new(g);
        }
        for route in with_generations.http_routes.values_mut() {
            let mut r = (**route).clone();
            r.metadata.generation.get_or_insert(1);
            *route = Arc::new(r);
        }
        assert!(with_generations.same_but_status(&after), "{name}");
        assert_eq!(translate(&with_generations), translate(&after), "{name}");

        if let Some(gateway) = after.gateways.values_mut().next() {
            let mut g = (**gateway).clone();
            g.metadata.generation = g.metadata.generation.map(|n| n + 1);
            *gateway = Arc::new(g);
            assert!(
                !with_generations.same_but_status(&after),
                "{name}: a new generation is a spec change"
            );
        }
    }
}
