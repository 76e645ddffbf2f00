//! `crds/` is generated from the Rust types: this fails when they differ.
//! Regenerate with `cargo run -- crds > crds/portico.dev_gatewayparameters.yaml`.

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
    let deployed = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/10-crds.yaml"),
    )
    .expect("deploy/ installs the CRD");
    assert!(
        deployed.ends_with(&generated),
        "deploy/10-crds.yaml is stale: copy crds/portico.dev_gatewayparameters.yaml into it"
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
