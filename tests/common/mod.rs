//! Shared by the golden and Envoy validation tests: the list of golden cases,
//! translating one, and turning a Gateway's resources into a static Envoy
//! bootstrap that `envoy --mode validate` can load.

#![allow(dead_code)]

pub mod peers;
pub mod standalone;
pub mod tls;
pub mod traffic;

use std::path::{Path, PathBuf};

use envoy_types::pb::envoy::config::bootstrap::v3::{
    Bootstrap, LayeredRuntime, RuntimeLayer, bootstrap, runtime_layer,
};
use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{Node, transport_socket};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::listener::v3::filter;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    DownstreamTlsContext, Secret, UpstreamTlsContext,
};
use envoy_types::pb::google::protobuf::{Struct, Value, value};
use prost::Message;

use portico::inputs::files;
use portico::translate::encode::{ENVOY_RE2_MAX_PROGRAM_SIZE, EnvoyResources, any};
use portico::translate::{Outputs, translate};

pub fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata")
}

/// Every case folder holding an `input.yaml`, sorted.
pub fn cases() -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(testdata())
        .expect("tests/testdata exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("input.yaml").is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    out.sort();
    out
}

pub fn translate_case(dir: &Path) -> Outputs {
    let inputs =
        files::load(&dir.join("input.yaml")).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    translate(&inputs)
}

/// A bootstrap with the Gateway's resources inlined: routes into their
/// listeners, endpoints into their clusters, SDS secrets into static secrets
/// (a TLS context naming a secret without a config source reads the static
/// one of that name).
pub fn static_bootstrap(gateway: &str, r: &EnvoyResources) -> Bootstrap {
    let mut listeners: Vec<Listener> = decode_all::<_>(&r.listeners);
    let routes: Vec<RouteConfiguration> = decode_all::<_>(&r.routes);
    let endpoints: Vec<ClusterLoadAssignment> = decode_all::<_>(&r.endpoints);
    let secrets: Vec<Secret> = decode_all::<_>(&r.secrets);
    for l in &mut listeners {
        for chain in &mut l.filter_chains {
            if let Some(socket) = &mut chain.transport_socket
                && let Some(transport_socket::ConfigType::TypedConfig(cfg)) =
                    &mut socket.config_type
            {
                let mut tls = DownstreamTlsContext::decode(cfg.value.as_slice())
                    .expect("TLS context decodes");
                if let Some(common) = &mut tls.common_tls_context {
                    for sds in &mut common.tls_certificate_sds_secret_configs {
                        assert!(
                            secrets.iter().any(|s| s.name == sds.name),
                            "listener {} names secret {} that is not served",
                            l.name,
                            sds.name
                        );
                        sds.sds_config = None;
                    }
                }
                *cfg = any(&tls);
            }
            for f in &mut chain.filters {
                if f.name != "envoy.filters.network.http_connection_manager" {
                    continue;
                }
                let Some(filter::ConfigType::TypedConfig(cfg)) = &mut f.config_type else {
                    continue;
                };
                let mut hcm =
                    HttpConnectionManager::decode(cfg.value.as_slice()).expect("HCM decodes");
                if let Some(http_connection_manager::RouteSpecifier::Rds(rds)) =
                    &hcm.route_specifier
                {
                    let rc = routes
                        .iter()
                        .find(|rc| rc.name == rds.route_config_name)
                        .expect("every RDS name has a route configuration")
                        .clone();
                    hcm.route_specifier =
                        Some(http_connection_manager::RouteSpecifier::RouteConfig(rc));
                }
                *cfg = any(&hcm);
            }
        }
    }
    let mut clusters: Vec<Cluster> = decode_all::<_>(&r.clusters);
    for c in &mut clusters {
        c.cluster_discovery_type = Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Static as i32,
        ));
        c.eds_cluster_config = None;
        c.load_assignment = endpoints.iter().find(|e| e.cluster_name == c.name).cloned();
        // A client certificate named over SDS: the static secret of that name
        // (a static cluster cannot subscribe over ADS, which a bootstrap
        // without ADS lacks).
        if let Some(socket) = &mut c.transport_socket
            && let Some(transport_socket::ConfigType::TypedConfig(cfg)) = &mut socket.config_type
        {
            let mut tls =
                UpstreamTlsContext::decode(cfg.value.as_slice()).expect("TLS context decodes");
            if let Some(common) = &mut tls.common_tls_context {
                for sds in &mut common.tls_certificate_sds_secret_configs {
                    assert!(
                        secrets.iter().any(|s| s.name == sds.name),
                        "cluster {} names secret {} that is not served",
                        c.name,
                        sds.name
                    );
                    sds.sds_config = None;
                }
            }
            *cfg = any(&tls);
        }
    }
    let limit = Value {
        kind: Some(value::Kind::NumberValue(f64::from(
            ENVOY_RE2_MAX_PROGRAM_SIZE,
        ))),
    };
    let runtime = Struct {
        fields: [
            "re2.max_program_size.error_level",
            "re2.max_program_size.warn_level",
        ]
        .into_iter()
        .map(|k| (k.to_string(), limit.clone()))
        .collect(),
    };
    Bootstrap {
        layered_runtime: Some(LayeredRuntime {
            layers: vec![RuntimeLayer {
                name: "portico".into(),
                layer_specifier: Some(runtime_layer::LayerSpecifier::StaticLayer(runtime)),
            }],
        }),
        node: Some(Node {
            id: "validate".into(),
            cluster: gateway.into(),
            ..Node::default()
        }),
        static_resources: Some(bootstrap::StaticResources {
            listeners,
            clusters,
            secrets,
        }),
        ..Bootstrap::default()
    }
}

/// The Envoy binary: `$PORTICO_ENVOY`, or the one `make envoy` installs.
pub fn envoy_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("PORTICO_ENVOY") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/envoy");
    assert!(
        venv.is_file(),
        "no Envoy at {}: run `make envoy` (or set PORTICO_ENVOY)",
        venv.display()
    );
    venv
}

fn decode_all<M: prost::Message + Default>(
    list: &[portico::translate::encode::Resource],
) -> Vec<M> {
    list.iter()
        .map(|x| x.decode().expect("resources decode"))
        .collect()
}

/// Inputs with one route (own hostname, own Service, so its own cluster) per
/// entry of `hosts`, all on one Gateway.
pub fn one_route_per_host(
    listener_port: u16,
    backend_port: u16,
    hosts: &[usize],
) -> portico::inputs::Inputs {
    let mut yaml = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {{name: portico}}\n\
         spec: {{controllerName: portico.dev/gateway-controller}}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: default}}\n\
         spec:\n  gatewayClassName: portico\n  listeners:\n  - {{name: http, port: {listener_port}, protocol: HTTP}}\n"
    );
    for h in hosts {
        yaml.push_str(&format!(
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r{h}, namespace: default}}\n\
             spec:\n  parentRefs: [{{name: gw}}]\n  hostnames: [h{h}.example.com]\n  rules:\n  - backendRefs: [{{name: s{h}, port: 80}}]\n\
             ---\napiVersion: v1\nkind: Service\nmetadata: {{name: s{h}, namespace: default}}\n\
             spec: {{ports: [{{name: http, port: 80}}]}}\n---\n\
             apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata: {{name: s{h}-1, namespace: default, labels: {{kubernetes.io/service-name: s{h}}}}}\n\
             addressType: IPv4\nports: [{{name: http, port: {backend_port}}}]\n\
             endpoints: [{{addresses: [127.0.0.1], conditions: {{ready: true}}}}]\n"
        ));
    }
    let mut builder = portico::inputs::InputsBuilder::default();
    let objects =
        portico::inputs::files::parse_documents(std::path::Path::new("generated.yaml"), &yaml)
            .expect("valid");
    for o in objects {
        builder.insert(o);
    }
    builder.build()
}

/// `envoy --mode validate` on one bootstrap file; the error is Envoy's output.
pub fn envoy_validate(envoy: &std::path::Path, file: &std::path::Path) -> Result<(), String> {
    let out = std::process::Command::new(envoy)
        .args(["--mode", "validate", "--log-level", "error", "-c"])
        .arg(file)
        .output()
        .expect("envoy runs");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
