//! The borders between portico's stages, read from the source itself: which
//! top-level module may import which, that translation imports nothing that
//! does I/O or reads a clock, and that translation's stages import only the
//! stages before them. portico is one crate (ARCHITECTURE.md, "Borders"),
//! so this is what holds the borders: a new import across one fails here,
//! naming the file and the import.
//!
//! Only production code is read: a file's text up to its first
//! `#[cfg(test)]`, and no `tests.rs` files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Each top-level module and the modules it may import. The pipeline runs
/// down this list; a module imports only modules listed above it (or at its
/// side, where the list says so).
const ALLOWED: &[(&str, &[&str])] = &[
    ("accept", &[]),
    ("pki", &[]),
    ("leader", &[]),
    ("bootstrap", &[]),
    ("identity", &[]),
    ("delta", &["identity"]),
    ("inputs", &["identity"]),
    ("events", &["inputs"]),
    ("translate", &["inputs", "identity", "bootstrap", "delta"]),
    ("render", &["inputs", "translate"]),
    ("xds", &["accept", "identity", "inputs", "pki", "translate"]),
    ("metrics", &["inputs", "translate", "xds"]),
    ("admin", &["accept", "metrics"]),
    ("translator", &["inputs", "metrics", "translate", "xds"]),
    (
        "provision",
        &[
            "bootstrap",
            "events",
            "identity",
            "inputs",
            "metrics",
            "pki",
            "translate",
        ],
    ),
    (
        "status",
        &["delta", "identity", "inputs", "metrics", "translate", "xds"],
    ),
    ("replicas", &["identity", "leader", "xds"]),
];

/// Translation's stages, in the order they run.
const STAGES: &[&str] = &[
    "index", "compile", "attach", "settle", "tables", "encode", "report",
];

/// What translation must not use: it is a pure function of its inputs.
const IMPURE: &[&str] = &[
    "tokio",
    "kube::Client",
    "kube::Api",
    "kube::runtime",
    "std::fs",
    "std::thread",
    "std::time::Instant",
    "std::time::SystemTime",
    "Instant::now",
    "SystemTime::now",
    "rand::",
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(path);
        }
    }
}

/// Every production source file, by its path below `src`, with its text up
/// to the first `#[cfg(test)]`.
fn production_code() -> BTreeMap<String, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read source");
            let production = match text.find("#[cfg(test)]") {
                Some(i) => text[..i].to_string(),
                None => text,
            };
            let rel = path.strip_prefix(&root).expect("below src");
            (rel.to_string_lossy().replace('\\', "/"), production)
        })
        .collect()
}

/// The identifiers that follow `prefix` in `text` (`crate::inputs::x` gives
/// `inputs` for the prefix `crate::`).
fn named_after<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.match_indices(prefix)
        .map(|(i, _)| {
            let rest = &text[i + prefix.len()..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect()
}

/// The top-level module of a file (`translate/index/model.rs` is in
/// `translate`; `lib.rs` and `main.rs` are the crate's root).
fn module_of(path: &str) -> &str {
    let first = path.split('/').next().unwrap_or(path);
    first.strip_suffix(".rs").unwrap_or(first)
}

/// Fails with every problem found, one per line, under `what`.
fn none(problems: Vec<String>, what: &str) {
    assert!(problems.is_empty(), "{what}:\n{}", problems.join("\n"));
}

#[test]
fn each_module_imports_only_the_modules_before_it() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut crossings = Vec::new();
    for (path, code) in production_code() {
        let module = module_of(&path);
        let Some(may) = allowed.get(module) else {
            continue; // the root and the wiring (cli, runtime, standalone) may import all
        };
        for used in named_after(&code, "crate::") {
            if used != module && !may.contains(&used) {
                crossings.push(format!("{path} imports crate::{used}"));
            }
        }
    }
    none(crossings, "borders crossed");
}

#[test]
fn every_module_is_placed_on_the_map() {
    let placed: Vec<&str> = ALLOWED.iter().map(|(m, _)| *m).collect();
    let wiring = ["lib", "main", "cli", "runtime", "standalone"];
    let unplaced: Vec<String> = production_code()
        .keys()
        .map(|p| module_of(p).to_string())
        .filter(|m| !placed.contains(&m.as_str()) && !wiring.contains(&m.as_str()))
        .collect();
    assert!(
        unplaced.is_empty(),
        "modules missing from ALLOWED: {unplaced:?}"
    );
}

#[test]
fn translation_does_no_io_and_reads_no_clock() {
    let mut found = Vec::new();
    for (path, code) in production_code() {
        if module_of(&path) != "translate" {
            continue;
        }
        for word in IMPURE {
            if code.contains(word) {
                found.push(format!("{path} uses {word}"));
            }
        }
    }
    none(found, "translation is not pure");
}

#[test]
fn translation_stages_import_only_earlier_stages() {
    let mut back = Vec::new();
    for (path, code) in production_code() {
        let mut parts = path.split('/');
        if parts.next() != Some("translate") {
            continue;
        }
        let Some(stage) = parts
            .next()
            .and_then(|s| STAGES.iter().position(|x| *x == s))
        else {
            continue;
        };
        for used in named_after(&code, "crate::translate::") {
            if STAGES
                .iter()
                .position(|x| *x == used)
                .is_some_and(|u| u > stage)
            {
                back.push(format!("{path} (stage {}) imports {used}", STAGES[stage]));
            }
        }
    }
    none(back, "a stage imports a later one");
}
