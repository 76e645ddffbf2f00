//! Every golden case's Envoy output, loaded by the real Envoy: each Gateway's
//! resources become a static bootstrap checked with `envoy --mode validate`.

mod common;

use std::process::Command;

#[test]
fn real_envoy_accepts_every_golden_output() {
    let envoy = common::envoy_binary();
    let dir = tempdir();
    let mut checked = 0;
    let mut failures = Vec::new();
    for (name, case) in common::cases() {
        let outputs = common::translate_case(&case);
        for (key, gw) in &outputs.gateways {
            let bootstrap = common::static_bootstrap(&key.to_string(), &gw.resources);
            let json =
                portico::render::envoy_json::to_json(&bootstrap).expect("bootstrap serializes");
            let file = dir.join(format!("{name}-{}-{}.json", key.namespace, key.name));
            std::fs::write(&file, serde_json::to_vec_pretty(&json).expect("json"))
                .expect("write bootstrap");
            let out = Command::new(&envoy)
                .args(["--mode", "validate", "--log-level", "error", "-c"])
                .arg(&file)
                .output()
                .expect("envoy runs");
            if !out.status.success() {
                failures.push(format!(
                    "{name} ({key}): {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} Gateways validated");
    assert!(
        failures.is_empty(),
        "Envoy rejected:\n{}",
        failures.join("\n")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("portico-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
