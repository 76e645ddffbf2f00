//! RE2 parity: regexes generated from both dialects' constructs (RE2's and
//! Rust's regex syntax, with counted repetitions sized to reach Envoy's program
//! limit) go through portico's check; every pattern portico accepts is put
//! into HTTPRoute path, header and query matches, translated, and loaded by
//! the real Envoy (`envoy --mode validate`, with the RE2 program limit every
//! portico bootstrap sets). Nothing portico accepts may be rejected by Envoy;
//! when Envoy rejects a batch, the failing pattern is found by bisection and
//! named.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};

use portico::translate::conditions::ConditionStatus;
use portico::translate::re2;

/// One piece of a pattern: text, escapes, classes and assertions that RE2
/// and Rust read alike, and constructs only one of them knows.
fn atom() -> impl Strategy<Value = String> {
    let shared = prop_oneof![
        "[a-z0-9/_-]{1,4}",
        Just(".".to_string()),
        prop::sample::select(vec![
            r"\d",
            r"\w",
            r"\s",
            r"\D",
            r"\W",
            r"\S",
            "[a-z]",
            "[^/]",
            "[[:alpha:]]",
            "[[:^digit:]_]",
            r"[\d_-]",
            "[]a]",
            "[^]a]",
            r"\.",
            r"\/",
            r"\_",
            r"\-",
            r"\x41",
            r"\xE9",
            r"\x{7F}",
            r"\n",
            r"\t",
            r"\a",
            r"\f",
            r"\v",
            "^",
            "$",
            r"\b",
            r"\B",
            r"\A",
            r"\z",
            "(?i)",
            "(?s)",
            "(?m)",
            "(?U)",
            "(?-i)",
        ])
        .prop_map(str::to_string),
    ];
    let re2_only = prop::sample::select(vec![
        r"\Q.*\E",
        r"\C",
        r"\pL",
        r"\p{Greek}",
        r"\PN",
        r"\p{^Latin}",
        r"\0",
        r"\101",
        r"\x{100}",
        "(?)",
        r"\8",
        "a{,3}",
    ])
    .prop_map(str::to_string);
    let rust_only = prop::sample::select(vec![
        r"\u0041",
        r"\u{41}",
        r"\U00000041",
        r"\<",
        r"\>",
        r"\b{start}",
        r"\b{end}",
        r"\b{start-half}",
        "[a-z&&[^aeiou]]",
        "[a--b]",
        "[a~~b]",
        "[[a]]",
        r"\p{Script=Greek}",
        r"\p{Letter}",
        r"\p{greek}",
        "(?x) a b",
        "(?u)",
        "(?R)",
        "é",
        "[é]",
        "[a-é]",
        "\u{7f}",
    ])
    .prop_map(str::to_string);
    prop_oneof![6 => shared, 1 => re2_only, 1 => rust_only]
}

/// Repetition operators, counted ones sized to stress RE2's limits.
fn repetition() -> impl Strategy<Value = String> {
    let count = prop::sample::select(vec![0u32, 1, 2, 3, 10, 50, 99, 200, 500, 999, 1000, 1001]);
    prop_oneof![
        prop::sample::select(vec!["*", "+", "?", "*?", "+?", "??", "**", "+*", "*+"])
            .prop_map(str::to_string),
        count.clone().prop_map(|n| format!("{{{n}}}")),
        count.clone().prop_map(|n| format!("{{{n},}}")),
        (count.clone(), count.clone()).prop_map(|(a, b)| format!("{{{},{}}}", a.min(b), a.max(b))),
        count.clone().prop_map(|n| format!("{{{n}}}?")),
        count.clone().prop_map(|n| format!("{{ {n} }}")),
        (count.clone(), count).prop_map(|(a, b)| format!("{{{a}}}{{{b}}}")),
    ]
}

fn pattern() -> impl Strategy<Value = String> {
    atom().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            3 => prop::collection::vec(inner.clone(), 1..4).prop_map(|v| v.concat()),
            1 => prop::collection::vec(inner.clone(), 2..4).prop_map(|v| v.join("|")),
            2 => (inner.clone(), repetition()).prop_map(|(p, r)| format!("(?:{p}){r}")),
            2 => (inner.clone(), repetition()).prop_map(|(p, r)| format!("{p}{r}")),
            1 => (
                inner,
                prop::sample::select(vec![
                    "({})", "(?:{})", "(?P<g>{})", "(?<g>{})", "(?i:{})", "(?-i:{})",
                    "(?s:{})", "(?x:{})", "(?P<g.1>{})",
                ])
            )
                .prop_map(|(p, form)| form.replace("{}", &p)),
        ]
    })
}

/// `count` patterns, drawn deterministically unless `PORTICO_RE2_RANDOM` is
/// set (a longer local soak: `PORTICO_RE2_PATTERNS=20000`).
fn generated(count: usize) -> Vec<String> {
    let config = Config {
        rng_algorithm: RngAlgorithm::ChaCha,
        ..Config::default()
    };
    let mut runner = if std::env::var_os("PORTICO_RE2_RANDOM").is_some() {
        TestRunner::new(config)
    } else {
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
    };
    let strategy = pattern();
    (0..count)
        .map(|_| {
            strategy
                .new_tree(&mut runner)
                .expect("the strategy generates")
                .current()
        })
        .collect()
}

/// Inputs (JSON documents) with `patterns` as path, header and query
/// regexes of HTTPRoutes on one Gateway, eight matches per rule.
fn inputs_yaml(patterns: &[&String]) -> String {
    let mut docs = vec![
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
               "metadata": {"name": "portico"},
               "spec": {"controllerName": "portico.dev/gateway-controller"}}),
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
               "metadata": {"name": "gw", "namespace": "default"},
               "spec": {"gatewayClassName": "portico",
                        "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "default"},
               "spec": {"ports": [{"name": "http", "port": 80}]}}),
    ];
    for (r, chunk) in patterns.chunks(8).enumerate() {
        let matches: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(i, p)| match i % 3 {
                0 => json!({"path": {"type": "RegularExpression", "value": p}}),
                1 => json!({"headers": [{"type": "RegularExpression", "name": "x-a", "value": p}]}),
                _ => {
                    json!({"queryParams": [{"type": "RegularExpression", "name": "q", "value": p}]})
                }
            })
            .collect();
        docs.push(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": format!("r{r}"), "namespace": "default"},
            "spec": {"parentRefs": [{"name": "gw"}], "hostnames": [format!("h{r}.example.com")],
                     "rules": [{"matches": matches, "backendRefs": [{"name": "s", "port": 80}]}]}
        }));
    }
    // YAML refuses DEL and C1 control characters even inside quotes, unless
    // escaped; JSON's \u escapes are YAML's too.
    docs.iter()
        .map(|d| {
            d.to_string()
                .chars()
                .map(|c| {
                    if c.is_ascii() && c != '\u{7f}' {
                        c.to_string()
                    } else {
                        c.encode_utf16(&mut [0; 2])
                            .iter()
                            .map(|u| format!("\\u{u:04x}"))
                            .collect()
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// Translates `patterns` and asks the real Envoy to load the result: `Ok`,
/// or Envoy's complaint. Panics when translation itself refuses a rule,
/// since every pattern here was accepted by the check.
fn envoy_verdict(envoy: &Path, dir: &Path, patterns: &[&String]) -> Result<(), String> {
    let input = dir.join("input.yaml");
    std::fs::write(&input, inputs_yaml(patterns)).expect("write inputs");
    let inputs = portico::inputs::files::load(&input).expect("generated inputs load");
    let outputs = portico::translate::translate(&inputs);
    let refused: Vec<String> = outputs
        .routes
        .values()
        .flat_map(|s| &s.parents)
        .flat_map(|p| &p.conditions)
        .filter(|c| {
            c.type_ == "PartiallyInvalid"
                || (c.type_ == "Accepted" && c.status != ConditionStatus::True)
        })
        .map(|c| c.message.to_string())
        .collect();
    assert!(
        refused.is_empty(),
        "translation refused rules the check accepted: {refused:?}"
    );
    let (key, gateway) = outputs
        .gateways
        .iter()
        .next()
        .expect("the Gateway is translated");
    let bootstrap = common::static_bootstrap(&key.to_string(), &gateway.resources);
    let json = portico::render::envoy_json::to_json(&bootstrap).expect("bootstrap serializes");
    let file = dir.join("bootstrap.json");
    std::fs::write(&file, serde_json::to_vec(&json).expect("json")).expect("write bootstrap");
    common::envoy_validate(envoy, &file)
}

/// The first pattern of `patterns` that Envoy rejects on its own.
fn culprit<'a>(envoy: &Path, dir: &Path, mut patterns: Vec<&'a String>) -> (&'a String, String) {
    loop {
        let half = patterns.len().div_ceil(2);
        let (left, right) = patterns.split_at(half);
        let next = match envoy_verdict(envoy, dir, left) {
            Err(e) if left.len() == 1 => return (left[0], e),
            Err(_) => left.to_vec(),
            Ok(()) => match envoy_verdict(envoy, dir, right) {
                Err(e) if right.len() == 1 => return (right[0], e),
                Err(_) => right.to_vec(),
                Ok(()) => panic!("Envoy rejects {patterns:?} together but neither half"),
            },
        };
        patterns = next;
    }
}

#[test]
fn envoy_accepts_every_regex_portico_accepts() {
    let envoy = common::envoy_binary();
    let dir = std::env::temp_dir().join(format!("portico-re2-parity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");

    let count = std::env::var("PORTICO_RE2_PATTERNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1500);
    let patterns = generated(count);
    let mut accepted = Vec::new();
    let mut refusals: BTreeMap<&'static str, usize> = BTreeMap::new();
    for p in &patterns {
        match re2::check(p) {
            Ok(()) => accepted.push(p),
            Err(why) => {
                let kind = if why.contains("instructions") {
                    "program size"
                } else if why.contains("more than 1000") || why.contains("nested counted") {
                    "repetition bound"
                } else if why.contains("at offset") && why.contains('`') {
                    "not RE2 syntax"
                } else {
                    "syntax error"
                };
                *refusals.entry(kind).or_default() += 1;
            }
        }
    }
    eprintln!(
        "{} patterns: {} accepted, refused: {refusals:?}",
        patterns.len(),
        accepted.len()
    );
    // The generator must exercise both sides, or the test proves nothing.
    assert!(accepted.len() >= 300, "only {} accepted", accepted.len());
    for kind in [
        "program size",
        "repetition bound",
        "not RE2 syntax",
        "syntax error",
    ] {
        assert!(
            refusals.get(kind).copied().unwrap_or(0) >= 10,
            "few `{kind}` refusals: {refusals:?}"
        );
    }

    for batch in accepted.chunks(400) {
        if let Err(e) = envoy_verdict(&envoy, &dir, batch) {
            let (pattern, message) = culprit(&envoy, &dir, batch.to_vec());
            panic!(
                "portico accepts {pattern:?} but Envoy rejects it: {}",
                message.lines().last().unwrap_or(&e)
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
