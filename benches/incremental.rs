//! Memoised translation against full translation, for the change the scale
//! issue times: one HTTPRoute (with its own hostname) added on top of N
//! existing ones. `full` translates the new inputs from nothing; `memo`
//! translates them with the memo of the translation before the change, as
//! the translator loop does.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, BenchmarkId, Criterion};

use portico::inputs::{InputObject, Inputs, ObjectKey};
use portico::translate::{Memo, Options, translate_memo, translate_with};

mod generated;

/// (routes, Gateways)
const SIZES: &[(usize, usize)] = &[(1_000, 1), (5_000, 1), (5_000, 100)];

/// `routes` generated routes, then the same with one route more.
fn before_and_after(routes: usize, gateways: usize) -> (Inputs, Inputs) {
    let before = generated::inputs(routes, gateways);
    let mut after = before.clone();
    if let InputObject::HttpRoute(route) = generated::route(routes, gateways) {
        let key = ObjectKey::of(&route);
        after.http_routes.insert(key, Arc::new(route));
    }
    (before, after)
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let options = Options::default();
    let mut group = c.benchmark_group("one-route-added");
    group.sample_size(10);
    for &(routes, gateways) in SIZES {
        let (before, after) = before_and_after(routes, gateways);
        let mut primed = Memo::default();
        translate_memo(&before, &options, &mut primed);
        let id = format!("{routes}-routes-{gateways}-gateways");
        group.bench_with_input(BenchmarkId::new("full", &id), &after, |b, inputs| {
            b.iter(|| translate_with(black_box(inputs), &options))
        });
        group.bench_with_input(BenchmarkId::new("memo", &id), &after, |b, inputs| {
            b.iter_batched(
                || primed.clone(),
                // The memo is returned, so its drop is not timed: the
                // translator keeps it.
                |mut memo| {
                    let outputs = translate_memo(black_box(inputs), &options, &mut memo);
                    (outputs, memo)
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
    c.final_summary();
}
