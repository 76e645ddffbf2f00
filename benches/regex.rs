//! The worst regexes a tenant can write, judged without the memo: time per
//! pattern (criterion) and the memory one judgement takes, measured in a
//! fresh child process per pattern (`VmHWM` less the resident size before).

use std::hint::black_box;
use std::process::Command;

use criterion::{BenchmarkId, Criterion};

use portico::translate::re2::{MAX_PATTERN_BYTES, verdict};

const MEMORY_ENV: &str = "PORTICO_BENCH_REGEX";

/// Named hostile patterns, each at most `MAX_PATTERN_BYTES` long.
fn patterns() -> Vec<(&'static str, String)> {
    let fill = |unit: &str| unit.repeat(MAX_PATTERN_BYTES / unit.len());
    let nested = {
        let depth = 60;
        format!("{}a{}", "(?:b|".repeat(depth), ")".repeat(depth))
    };
    vec![
        (
            "nested-1000^3",
            "(?:(?:(?:a{1000}){1000}){1000})".to_string(),
        ),
        (
            "largest-accepted",
            "(?:[a-z]{10}){100}[0-9]{700}".to_string(),
        ),
        ("max-length-literals", fill("abcd")),
        ("max-length-classes", fill("[^/a-z0-9_]")),
        ("max-length-optional", fill("a?")),
        ("max-length-alternation", fill("ab|")),
        ("max-length-case-folded", format!("(?i){}", fill("[a-z]x"))),
        ("deep-nesting", nested),
        ("late-syntax-error", {
            let mut p = fill("ab");
            p.truncate(MAX_PATTERN_BYTES - 1);
            p.push('(');
            p
        }),
    ]
}

fn peak_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    if let Ok(name) = std::env::var(MEMORY_ENV) {
        let (_, pattern) = patterns()
            .into_iter()
            .find(|(n, _)| *n == name)
            .expect("a known pattern");
        let before = peak_kib("VmRSS:");
        let result = verdict(&pattern);
        let peak = peak_kib("VmHWM:");
        println!(
            "{name:<24} {:>5} bytes  {}  peak +{} KiB",
            pattern.len(),
            if result.is_ok() {
                "accepted"
            } else {
                "refused "
            },
            peak.saturating_sub(before)
        );
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    {
        let mut group = c.benchmark_group("regex");
        for (name, pattern) in patterns() {
            group.bench_with_input(BenchmarkId::from_parameter(name), &pattern, |b, p| {
                b.iter(|| verdict(black_box(p)))
            });
        }
        group.finish();
    }
    c.final_summary();
    if std::env::args().any(|a| a == "--bench") {
        println!("\nmemory of one judgement (fresh process per pattern):");
        let exe = std::env::current_exe().expect("own path");
        for (name, _) in patterns() {
            let out = Command::new(&exe)
                .env(MEMORY_ENV, name)
                .output()
                .expect("child runs");
            print!("{}", String::from_utf8_lossy(&out.stdout));
        }
    }
}
