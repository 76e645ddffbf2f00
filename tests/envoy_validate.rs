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

/// The heap limit a bootstrap gives the overload manager.
fn max_heap_of(bootstrap: &str) -> Option<u64> {
    let doc: serde_json::Value = yaml_serde::from_str(bootstrap).ok()?;
    doc["overload_manager"]["resource_monitors"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == "envoy.resource_monitors.fixed_heap")?["typed_config"]
        ["max_heap_size_bytes"]
        .as_u64()
}

/// Every bootstrap portico writes loads in the real Envoy: the plain ones
/// (`portico bootstrap`, standalone, delta and state of the world) and the
/// provisioner's, with its SDS files and certificates in place, for a
/// container without and with a memory limit. Each carries the overload
/// manager with the heap limit derived from that memory limit.
#[test]
fn real_envoy_accepts_every_bootstrap() {
    use portico::bootstrap::{self, BootstrapParams, DEFAULT_MAX_HEAP_BYTES};
    use portico::provision::desired::{GatewayTls, Settings, desired_objects};

    let envoy = common::envoy_binary();
    let dir = tempdir().join("bootstraps");
    std::fs::create_dir_all(&dir).expect("dir");
    let mut failures = Vec::new();
    for delta in [true, false] {
        let mut params = BootstrapParams::new("default/gw", "127.0.0.1", 18000);
        params.delta = delta;
        let text = bootstrap::render(&params).expect("renders");
        assert_eq!(max_heap_of(&text), Some(DEFAULT_MAX_HEAP_BYTES));
        assert!(text.contains("envoy.resource_monitors.global_downstream_max_connections"));
        let file = dir.join(format!("plain-{delta}.yaml"));
        std::fs::write(&file, text).expect("write");
        failures.extend(common::envoy_validate(&envoy, &file).err());
    }

    let now = std::time::SystemTime::now();
    let ca = portico::pki::Authority::generate(now).expect("CA");
    let client = ca.issue_gateway("default/gw", now).expect("client");
    let tls = GatewayTls {
        ca_pem: ca.cert_pem().to_string(),
        client: client.clone(),
    };
    for (memory, heap) in [
        (None, DEFAULT_MAX_HEAP_BYTES),
        (Some("512Mi"), (512u64 << 20) / 5 * 4),
        (Some("2G"), 1_600_000_000),
    ] {
        let resources = memory
            .map(|m| format!("  resources: {{limits: {{memory: {m}}}}}\n"))
            .unwrap_or_default();
        let yaml = format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {{name: portico}}\n\
             spec:\n  controllerName: portico.dev/gateway-controller\n  \
             parametersRef: {{group: portico.dev, kind: GatewayParameters, name: p, namespace: default}}\n---\n\
             apiVersion: portico.dev/v1alpha1\nkind: GatewayParameters\nmetadata: {{name: p, namespace: default}}\n\
             spec:\n  replicas: 1\n{resources}---\n\
             apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: default}}\n\
             spec:\n  gatewayClassName: portico\n  listeners: [{{name: http, port: 80, protocol: HTTP}}]\n"
        );
        let mut b = portico::inputs::InputsBuilder::default();
        for o in portico::inputs::files::parse_documents(std::path::Path::new("g.yaml"), &yaml)
            .expect("valid")
        {
            b.insert(o);
        }
        let inputs = b.build();
        let outputs = portico::translate::translate(&inputs);
        let (key, output) = outputs.gateways.iter().next().expect("one gateway");
        let infra = output.infra.as_ref().expect("accepted");
        let objects = desired_objects(&inputs.gateways[key], infra, &Settings::default(), &tls)
            .expect("objects");
        let files = objects.config_map.data.expect("ConfigMap data");
        // The pod's mounts, moved under the temp directory.
        let pod = dir.join(format!("pod-{}", memory.unwrap_or("none")));
        let (sds_dir, tls_dir) = (pod.join("bootstrap"), pod.join("tls"));
        std::fs::create_dir_all(&sds_dir).expect("sds dir");
        std::fs::create_dir_all(&tls_dir).expect("tls dir");
        for (name, text) in &files {
            let text = text
                .replace("/etc/envoy/bootstrap", &sds_dir.display().to_string())
                .replace("/etc/envoy/tls", &tls_dir.display().to_string());
            std::fs::write(sds_dir.join(name), text).expect("write");
        }
        std::fs::write(tls_dir.join("ca.crt"), ca.cert_pem()).expect("ca");
        std::fs::write(tls_dir.join("tls.crt"), &client.cert_pem).expect("crt");
        std::fs::write(tls_dir.join("tls.key"), &client.key_pem).expect("key");
        let bootstrap = &files["bootstrap.yaml"];
        assert_eq!(
            max_heap_of(bootstrap),
            Some(heap),
            "memory limit {memory:?}"
        );
        failures.extend(common::envoy_validate(&envoy, &sds_dir.join("bootstrap.yaml")).err());
    }
    assert!(
        failures.is_empty(),
        "Envoy rejected:\n{}",
        failures.join("\n")
    );
}
