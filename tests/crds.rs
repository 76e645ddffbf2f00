//! `crds/` is generated from the Rust types: this fails when they differ, or
//! when the Helm chart's copy (and so `deploy/10-crds.yaml`, rendered from
//! it) does. Regenerate with `cargo run -- crds > crds/portico.dev_gatewayparameters.yaml`,
//! copy it to `deploy/helm/portico/files/` and run `make deploy`.

#[test]
fn crds_folder_matches_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crds/portico.dev_gatewayparameters.yaml");
    let on_disk = std::fs::read_to_string(&path).expect("crds/ holds the GatewayParameters CRD");
    let generated = portico::inputs::parameters::crds_yaml().expect("CRDs serialize");
    assert!(
        on_disk == generated,
        "crds/ is stale: run `cargo run -- crds > crds/portico.dev_gatewayparameters.yaml`"
    );
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let in_chart = std::fs::read_to_string(
        root.join("deploy/helm/portico/files/portico.dev_gatewayparameters.yaml"),
    )
    .expect("the Helm chart holds the CRD");
    assert!(
        in_chart == generated,
        "the chart's copy is stale: copy crds/portico.dev_gatewayparameters.yaml to deploy/helm/portico/files/, then `make deploy`"
    );
    // deploy/10-crds.yaml is the chart's rendering: the same CRD with the
    // chart's label and helm.sh/resource-policy: keep.
    let deployed = std::fs::read_to_string(root.join("deploy/10-crds.yaml"))
        .expect("deploy/ installs the CRD");
    let mut deployed: serde_json::Value = yaml_serde::from_str(&deployed).expect("valid YAML");
    let metadata = deployed["metadata"].as_object_mut().expect("metadata");
    assert_eq!(
        metadata.remove("annotations"),
        Some(serde_json::json!({"helm.sh/resource-policy": "keep"})),
        "helm uninstall keeps the CRD"
    );
    assert_eq!(
        metadata.remove("labels"),
        Some(serde_json::json!({"app.kubernetes.io/name": "portico"}))
    );
    let generated_value: serde_json::Value = yaml_serde::from_str(&generated).expect("valid YAML");
    assert!(
        deployed == generated_value,
        "deploy/10-crds.yaml is stale: copy crds/portico.dev_gatewayparameters.yaml to deploy/helm/portico/files/, then `make deploy`"
    );
    let crd: serde_json::Value = yaml_serde::from_str(&on_disk).expect("valid YAML");
    assert_eq!(crd["spec"]["group"], "portico.dev");
    assert_eq!(crd["spec"]["names"]["kind"], "GatewayParameters");
    let props = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    for field in [
        "replicas",
        "image",
        "resources",
        "nodeSelector",
        "tolerations",
        "affinity",
        "podLabels",
        "podAnnotations",
        "service",
        "listenerPortAsContainerPort",
        "envoy",
    ] {
        assert!(
            props.get(field).is_some(),
            "the CRD schema has spec.{field}"
        );
    }
}
