//! The reference docs cannot drift from the code: `docs/gateway-parameters.md`
//! is generated from the GatewayParameters CRD schema (run with
//! `PORTICO_UPDATE_DOCS=1` to write it), every metric portico exports is in
//! `docs/metrics.md` (and nothing else is), and every condition reason the
//! code sets is in `docs/conditions.md`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use yaml_serde::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Fields whose type is a Kubernetes API type: named, not expanded.
const KUBERNETES_TYPES: [(&str, &str); 3] = [
    ("affinity", "Affinity"),
    ("tolerations", "[]Toleration"),
    ("resources", "ResourceRequirements"),
];

fn type_of(field: &str, schema: &Value) -> String {
    if let Some((_, k8s)) = KUBERNETES_TYPES.iter().find(|(f, _)| *f == field) {
        return format!("Kubernetes `{k8s}`");
    }
    let base = schema["type"].as_str().unwrap_or("object");
    let text = match base {
        "array" => format!("[]{}", schema["items"]["type"].as_str().unwrap_or("object")),
        "object" if schema.get("additionalProperties").is_some() => format!(
            "map[string]{}",
            schema["additionalProperties"]["type"]
                .as_str()
                .unwrap_or("object")
        ),
        other => other.to_string(),
    };
    match schema["format"].as_str() {
        Some(format) => format!("{text} ({format})"),
        None => text,
    }
}

fn rows(prefix: &str, schema: &Value, out: &mut String) {
    let Some(properties) = schema["properties"].as_mapping() else {
        return;
    };
    let mut fields: Vec<(&str, &Value)> = properties
        .iter()
        .filter_map(|(k, v)| Some((k.as_str()?, v)))
        .collect();
    fields.sort_by_key(|(k, _)| *k);
    for (name, field) in fields {
        let path = format!("{prefix}{name}");
        let description = field["description"]
            .as_str()
            .unwrap_or("")
            .replace('\n', " ")
            .replace('|', "\\|");
        let _ = writeln!(
            out,
            "| `{path}` | {} | {description} |",
            type_of(name, field)
        );
        if !KUBERNETES_TYPES.iter().any(|(f, _)| *f == name) {
            rows(&format!("{path}."), field, out);
        }
    }
}

fn gateway_parameters_reference() -> String {
    let crd: Value =
        yaml_serde::from_str(&read("crds/portico.dev_gatewayparameters.yaml")).expect("CRD");
    let version = &crd["spec"]["versions"][0];
    let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# GatewayParameters reference\n\n\
         <!-- Generated from crds/portico.dev_gatewayparameters.yaml by tests/docs.rs;\n     \
         edit the Rust doc comments of src/inputs/parameters.rs, regenerate the CRD,\n     \
         then run PORTICO_UPDATE_DOCS=1 cargo test --test docs. -->\n\n\
         `GatewayParameters` (`portico.dev/{}`, namespaced) sets how portico provisions\n\
         a Gateway's Envoy fleet. A GatewayClass names one in `spec.parametersRef`\n\
         (the defaults of every Gateway of the class), and a Gateway in its own namespace\n\
         in `spec.infrastructure.parametersRef`; the Gateway's fields win, field by field.\n\
         Every field is optional.\n\n\
         | Field | Type | Description |\n|---|---|---|",
        version["name"].as_str().unwrap_or("v1alpha1")
    );
    rows("spec.", spec, &mut out);
    out
}

#[test]
fn gateway_parameters_reference_is_generated_from_the_crd() {
    let generated = gateway_parameters_reference();
    let path = repo().join("docs/gateway-parameters.md");
    if std::env::var_os("PORTICO_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &generated).expect("write the reference");
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "docs/gateway-parameters.md is not what the CRD says; run PORTICO_UPDATE_DOCS=1 cargo test --test docs"
    );
    for field in ["spec.replicas", "spec.service.type", "spec.envoy.logLevel"] {
        assert!(generated.contains(&format!("| `{field}` |")), "{field}");
    }
}

/// Every metric name of a portico exposition with a series in every family.
fn exported_metrics() -> BTreeSet<String> {
    use portico::metrics::Metrics;
    use portico::xds::metrics::{GatewayLabel, GatewayTypeLabel, TypeLabel, XdsMetrics};

    let xds = XdsMetrics::default();
    let metrics = Metrics::new(&xds);
    let gateway = GatewayLabel {
        gateway: "default/gw".into(),
    };
    let kind = TypeLabel {
        resource_type: "listener".into(),
    };
    xds.streams.get_or_create(&gateway).inc();
    xds.gateway_acks.get_or_create(&gateway).inc();
    xds.gateway_nacks.get_or_create(&gateway).inc();
    xds.snapshot_bytes.get_or_create(&gateway).set(1);
    xds.snapshot_resources
        .get_or_create(&GatewayTypeLabel {
            gateway: "default/gw".into(),
            resource_type: "listener".into(),
        })
        .set(1);
    xds.pushes.get_or_create(&kind).inc();
    xds.acks.get_or_create(&kind).inc();
    xds.nacks.get_or_create(&kind).inc();
    let inputs = portico::inputs::InputsBuilder::default().build();
    let outputs = portico::translate::translate(&inputs);
    metrics.control.observe(&inputs, &outputs);
    let text = metrics.encode();
    let mut names = BTreeSet::new();
    let mut counters = BTreeSet::new();
    for line in text.lines() {
        let mut words = line.split(' ');
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (words.next(), words.next(), words.next(), words.next())
        {
            names.insert(name.to_string());
            if kind == "counter" {
                counters.insert(name.to_string());
            }
        }
    }
    names
        .into_iter()
        .map(|n| {
            if counters.contains(&n) {
                format!("{n}_total")
            } else {
                n
            }
        })
        .collect()
}

#[test]
fn every_metric_is_documented_and_every_documented_metric_exists() {
    let exported = exported_metrics();
    assert!(exported.len() >= 20, "{exported:?}");
    let doc = read("docs/metrics.md");
    let documented: BTreeSet<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|n| n.starts_with("portico_"))
        .map(str::to_string)
        .collect();
    let missing: Vec<&String> = exported.difference(&documented).collect();
    let stale: Vec<&String> = documented.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "metrics missing from docs/metrics.md: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "docs/metrics.md lists metrics portico does not export: {stale:?}"
    );
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Condition reasons in the code: the values of `conditions::spec` and the
/// string literals passed as the reason of a condition.
fn reasons_in_code() -> BTreeSet<String> {
    let mut files = Vec::new();
    rust_files(&repo().join("src"), &mut files);
    let mut reasons = BTreeSet::new();
    let constant = regex::Regex::new(r#"pub const [A-Z_]+: &str = "([A-Za-z]+)";"#).expect("re");
    // `.set(TYPE, status, "Reason", …)` and the `(status, "Reason", …)`
    // verdicts the runtime decides Programmed with.
    let literal = regex::Regex::new(
        r#"(?s)(?:\.set\(\s*[a-z_:A-Z]+,\s*[^,()]+,|\(\s*(?:true|false),)\s*"([A-Z][A-Za-z]+)""#,
    )
    .expect("re");
    let conditions = read("src/translate/conditions.rs");
    let spec = conditions
        .split("pub mod spec")
        .nth(1)
        .expect("conditions::spec");
    for c in constant.captures_iter(spec) {
        reasons.insert(c[1].to_string());
    }
    for file in files {
        let text = std::fs::read_to_string(&file).expect("source");
        let text = text
            .split("#[cfg(test)]\nmod tests")
            .next()
            .unwrap_or_default();
        for c in literal.captures_iter(text) {
            reasons.insert(c[1].to_string());
        }
    }
    reasons
}

#[test]
fn every_condition_reason_is_documented() {
    let reasons = reasons_in_code();
    assert!(reasons.len() >= 30, "{reasons:?}");
    let doc = read("docs/conditions.md");
    let missing: Vec<&String> = reasons
        .iter()
        .filter(|r| !doc.contains(&format!("`{r}`")) && !doc.contains(&format!("| {r} |")))
        .collect();
    assert!(
        missing.is_empty(),
        "reasons missing from docs/conditions.md: {missing:?}"
    );
}
