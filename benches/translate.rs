//! Translation benchmarks: 100, 1,000 and 10,000 HTTPRoutes over 10 and 100
//! Gateways (time per `translate` call, one core), then the peak memory of each
//! size measured in a fresh child process (`VmHWM` from /proc).

use std::hint::black_box;
use std::process::Command;

use criterion::{BenchmarkId, Criterion};

use portico::translate::translate;

mod generated;
use generated::inputs;

const SIZES: &[(usize, usize)] = &[
    (100, 10),
    (1_000, 10),
    (10_000, 10),
    (100, 100),
    (1_000, 100),
    (10_000, 100),
];
/// The sizes whose memory is measured: the timed ones, and 5,000 routes.
const MEMORY_SIZES: &[(usize, usize)] = &[
    (100, 10),
    (1_000, 10),
    (5_000, 10),
    (10_000, 10),
    (100, 100),
    (1_000, 100),
    (5_000, 100),
    (10_000, 100),
];
/// The allocator the `portico` binary runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const MEMORY_ENV: &str = "PORTICO_BENCH_MEMORY";

fn peak_rss_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Child process: build one size, translate it, print resident memory figures.
fn measure_memory(spec: &str) {
    let (routes, gateways) = spec.split_once(',').expect("ROUTES,GATEWAYS");
    let (routes, gateways): (usize, usize) = (
        routes.parse().expect("routes"),
        gateways.parse().expect("gateways"),
    );
    let inputs = inputs(routes, gateways);
    let before = peak_rss_kib("VmRSS:");
    let outputs = translate(&inputs);
    let peak = peak_rss_kib("VmHWM:");
    let after = peak_rss_kib("VmRSS:");
    black_box(&outputs);
    println!(
        "{routes:>6} routes {gateways:>4} gateways: inputs resident {:>6.1} MiB, peak {:>6.1} MiB, with outputs {:>6.1} MiB",
        before as f64 / 1024.0,
        peak as f64 / 1024.0,
        after as f64 / 1024.0
    );
}

fn main() {
    if let Ok(spec) = std::env::var(MEMORY_ENV) {
        measure_memory(&spec);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    {
        let mut group = c.benchmark_group("translate");
        group.sample_size(10);
        for &(routes, gateways) in SIZES {
            let inputs = inputs(routes, gateways);
            group.bench_with_input(
                BenchmarkId::new(format!("{gateways}-gateways"), routes),
                &inputs,
                |b, inputs| b.iter(|| translate(black_box(inputs))),
            );
        }
        group.finish();
    }
    c.final_summary();
    if std::env::args().any(|a| a == "--bench") {
        println!("\npeak memory (fresh process per size):");
        let exe = std::env::current_exe().expect("own path");
        for &(routes, gateways) in MEMORY_SIZES {
            let out = Command::new(&exe)
                .env(MEMORY_ENV, format!("{routes},{gateways}"))
                .output()
                .expect("child runs");
            print!("{}", String::from_utf8_lossy(&out.stdout));
        }
    }
}
