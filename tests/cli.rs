//! The `portico render` command as a user runs it: output formats, the
//! `--gateway` filter, and exit code 1 with a precise message on bad input;
//! `portico run`'s xDS limit flags: their defaults and their bounds.

use std::path::Path;
use std::process::{Command, Output};

fn portico(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portico"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("portico runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn renders_the_seed_example_as_yaml_and_json() {
    let yaml = portico(&["render", "-f", "examples/seed.yaml"]);
    assert!(
        yaml.status.success(),
        "{}",
        String::from_utf8_lossy(&yaml.stderr)
    );
    let text = stdout(&yaml);
    assert!(
        text.contains("port_value: 10080"),
        "listener on container port 10080:\n{text}"
    );
    assert!(
        text.contains("- httpd.example.com"),
        "virtual host for httpd.example.com"
    );
    assert!(
        text.contains("name: default/my-httpd:80"),
        "cluster for the Service"
    );

    let json = portico(&["render", "-f", "examples/seed.yaml", "-o", "json"]);
    assert!(json.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).expect("valid JSON");
    let route = &doc["routes"][0]["status"]["parents"][0]["conditions"];
    let accepted = route
        .as_array()
        .expect("conditions")
        .iter()
        .find(|c| c["type"] == "Accepted");
    assert_eq!(accepted.expect("Accepted condition")["status"], "True");
    let listener = &doc["gateways"][0]["envoy"]["listeners"][0];
    let hcm = &listener["filter_chains"][0]["filters"][0]["typed_config"];
    assert_eq!(
        hcm["@type"],
        "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
    );
}

#[test]
fn gateway_filter_limits_the_output() {
    let dir = "tests/testdata/multiple-gateways-namespaces/input.yaml";
    let all = portico(&["render", "-f", dir, "-o", "json"]);
    let all: serde_json::Value = serde_json::from_slice(&all.stdout).expect("json");
    assert_eq!(all["gateways"].as_array().map(Vec::len), Some(2));
    let first = &all["gateways"][0];
    let key = format!(
        "{}/{}",
        first["namespace"].as_str().unwrap(),
        first["name"].as_str().unwrap()
    );
    let one = portico(&["render", "-f", dir, "-o", "json", "--gateway", &key]);
    let one: serde_json::Value = serde_json::from_slice(&one.stdout).expect("json");
    assert_eq!(one["gateways"].as_array().map(Vec::len), Some(1));
    assert_eq!(one["gateways"][0]["name"], first["name"]);

    let missing = portico(&["render", "-f", dir, "--gateway", "nowhere/none"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("Gateway nowhere/none"));
}

#[test]
fn bad_input_exits_1_naming_file_document_and_field() {
    let dir = std::env::temp_dir().join(format!("portico-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n\
         spec:\n  rules:\n  - backendRefs:\n    - name: web\n      port: \"eighty\"\n",
    )
    .expect("write");
    let out = portico(&["render", "-f", file.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "bad.yaml: document 2: HTTPRoute r: field `spec.rules[0].backendRefs[0].port`"
        ),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing partial is printed");

    let missing = portico(&["render", "-f", "does/not/exist.yaml"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(Path::new(&dir).exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_lists_the_xds_limits_with_their_defaults_and_refuses_zero() {
    let help = portico(&["run", "--help"]);
    assert!(help.status.success());
    let text = stdout(&help);
    for (flag, default) in [
        ("--xds-max-streams", "4096"),
        ("--xds-max-connections", "5120"),
        ("--xds-max-handshakes", "256"),
        ("--xds-handshake-timeout", "10"),
    ] {
        let line = text
            .split("\n  -")
            .find(|entry| entry.contains(flag))
            .unwrap_or_else(|| panic!("{flag} is listed:\n{text}"));
        assert!(
            line.contains(&format!("[default: {default}]")),
            "{flag} defaults to {default}:\n{line}"
        );
    }
    for (flag, value) in [
        ("--xds-max-streams", "0"),
        ("--xds-max-connections", "2000000"),
        ("--xds-max-handshakes", "99999999999999999999999"),
        ("--xds-handshake-timeout", "0"),
    ] {
        let refused = portico(&["run", flag, value]);
        assert!(!refused.status.success(), "{flag} {value} is refused");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(flag), "{flag} {value}: {stderr}");
    }
}
