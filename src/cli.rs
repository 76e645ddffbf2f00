//! Command line: `portico run`, `render`, `bootstrap`, `standalone`, `crds` and `version`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::bootstrap::{self, BootstrapParams};
use crate::inputs::{ObjectKey, files};
use crate::runtime::RunSettings;
use crate::standalone::{self, Settings};
use crate::{render, translate};

#[derive(Parser)]
#[command(name = "portico", about = "Kubernetes Gateway API for Envoy")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator on Kubernetes (in-cluster, or with KUBECONFIG).
    Run {
        /// portico's namespace: the CA Secret and the leader Lease live here.
        #[arg(long, env = "POD_NAMESPACE", default_value = "portico-system")]
        namespace: String,
        /// This replica's name in the leader Lease.
        #[arg(long, env = "POD_NAME")]
        pod_name: Option<String>,
        /// Where the ADS server (mutual TLS) listens.
        #[arg(long, default_value = "0.0.0.0:18000")]
        xds_listen: std::net::SocketAddr,
        /// Where /healthz, /readyz and /metrics are served.
        #[arg(long, default_value = "0.0.0.0:9090")]
        admin_listen: std::net::SocketAddr,
        /// The DNS name Envoys use to reach the xDS Service.
        #[arg(long, default_value = "portico-xds.portico-system.svc")]
        xds_host: String,
        /// The port of the xDS Service.
        #[arg(long, default_value_t = 18000)]
        xds_port: u16,
        /// The Envoy image when GatewayParameters name none.
        #[arg(long, default_value = "envoyproxy/envoy:v1.40.0")]
        envoy_image: String,
        /// The Secret holding portico's xDS certificate authority.
        #[arg(long, default_value = "portico-xds-ca")]
        ca_secret: String,
        /// The Lease used for leader election.
        #[arg(long, default_value = "portico-leader")]
        lease: String,
        /// ADS streams this replica serves at once (one per Envoy); more are
        /// refused with RESOURCE_EXHAUSTED.
        #[arg(long, default_value_t = crate::xds::server::MAX_STREAMS, value_parser = count)]
        xds_max_streams: usize,
        /// Open xDS connections, TLS handshakes included; more are closed at once.
        #[arg(long, default_value_t = crate::xds::server::MAX_CONNECTIONS, value_parser = count)]
        xds_max_connections: usize,
        /// TLS handshakes in progress at once; more wait for a turn (at most
        /// the handshake timeout).
        #[arg(long, default_value_t = crate::xds::server::MAX_HANDSHAKES, value_parser = count)]
        xds_max_handshakes: usize,
        /// Seconds a client has to get a handshake turn, then to complete its
        /// TLS handshake, then to send its first HTTP/2 bytes.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
        xds_handshake_timeout: u64,
        /// Log format.
        #[arg(long, value_enum, default_value_t = LogFormat::Plain)]
        log_format: LogFormat,
    },
    /// Translate YAML files and print the Envoy configuration and statuses.
    Render {
        /// A YAML file or a directory of them.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Only this Gateway, as NAMESPACE/NAME.
        #[arg(long)]
        gateway: Option<String>,
        #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Yaml)]
        output: Format,
    },
    /// Print the Envoy bootstrap for one Gateway.
    Bootstrap {
        /// The Gateway, as NAMESPACE/NAME.
        #[arg(long)]
        gateway: String,
        /// Where Envoy reaches portico's xDS server.
        #[arg(long, default_value = "portico-xds.portico-system:18000")]
        xds_address: String,
        /// State-of-the-world ADS instead of delta.
        #[arg(long)]
        sotw: bool,
    },
    /// Serve a directory of YAML to real Envoys on this machine, without Kubernetes.
    Standalone {
        /// The directory (or file) of Gateway API objects, Services and EndpointSlices.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// The address Envoy listeners bind.
        #[arg(long, default_value = "127.0.0.1")]
        listen_address: String,
        /// The loopback port of the xDS server (0 picks a free one).
        #[arg(long, default_value_t = 0)]
        xds_port: u16,
        /// The Envoy binary (default: ./.venv/bin/envoy if present, else `envoy`).
        #[arg(long)]
        envoy: Option<PathBuf>,
        /// State-of-the-world ADS instead of delta.
        #[arg(long)]
        sotw: bool,
        /// Print statuses at start and whenever they change.
        #[arg(long)]
        status: bool,
        /// Serve /metrics and /healthz on this address (e.g. 127.0.0.1:9090).
        #[arg(long)]
        admin_address: Option<String>,
    },
    /// Print portico's CustomResourceDefinitions (what crds/ holds).
    Crds,
    /// Print the version.
    Version,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Plain,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Yaml,
    Json,
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let json = matches!(
        cli.command,
        Command::Run {
            log_format: LogFormat::Json,
            ..
        }
    );
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr);
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
    let result = match cli.command {
        Command::Run {
            namespace,
            pod_name,
            xds_listen,
            admin_listen,
            xds_host,
            xds_port,
            envoy_image,
            ca_secret,
            lease,
            xds_max_streams,
            xds_max_connections,
            xds_max_handshakes,
            xds_handshake_timeout,
            log_format: _,
        } => {
            let pod_name = pod_name
                .or_else(|| std::env::var("HOSTNAME").ok())
                .unwrap_or_else(|| format!("portico-{}", std::process::id()));
            operator_command(RunSettings {
                namespace,
                pod_name,
                xds_listen,
                admin_listen,
                fleet: crate::provision::desired::Settings {
                    image: envoy_image,
                    xds_host,
                    xds_port,
                },
                ca_secret,
                lease,
                xds_limits: crate::xds::server::Limits {
                    max_streams: xds_max_streams,
                    max_connections: xds_max_connections,
                    max_handshakes: xds_max_handshakes,
                    handshake_timeout: std::time::Duration::from_secs(xds_handshake_timeout),
                    ..crate::xds::server::Limits::default()
                },
            })
        }
        Command::Render {
            file,
            gateway,
            output,
        } => render_command(&file, gateway.as_deref(), output),
        Command::Bootstrap {
            gateway,
            xds_address,
            sotw,
        } => bootstrap_command(&gateway, &xds_address, sotw),
        Command::Standalone {
            file,
            listen_address,
            xds_port,
            envoy,
            sotw,
            status,
            admin_address,
        } => standalone_command(Settings {
            dir: file,
            listen_address,
            xds_port,
            envoy: envoy.unwrap_or_else(default_envoy),
            delta: !sotw,
            print_status: status,
            admin_address,
        }),
        Command::Crds => crate::inputs::parameters::crds_yaml().map(|text| print!("{text}")),
        Command::Version => {
            println!("portico {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A count limit: from 1 to a million.
fn count(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n @ 1..=1_000_000) => Ok(n),
        Ok(_) => Err("must be from 1 to 1000000".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn default_envoy() -> PathBuf {
    let venv = PathBuf::from(".venv/bin/envoy");
    if venv.is_file() {
        venv
    } else {
        PathBuf::from("envoy")
    }
}

fn operator_command(settings: RunSettings) -> Result<(), String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(crate::runtime::run(settings))
}

fn standalone_command(settings: Settings) -> Result<(), String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(standalone::run(settings))
}

fn gateway_key(g: &str) -> Result<ObjectKey, String> {
    let (ns, name) = g
        .split_once('/')
        .filter(|(ns, name)| !ns.is_empty() && !name.is_empty())
        .ok_or_else(|| format!("--gateway {g:?}: expected NAMESPACE/NAME"))?;
    Ok(ObjectKey::new(ns, name))
}

fn bootstrap_command(gateway: &str, xds_address: &str, sotw: bool) -> Result<(), String> {
    let key = gateway_key(gateway)?;
    let (host, port) = xds_address
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        .filter(|(h, _)| !h.is_empty())
        .ok_or_else(|| format!("--xds-address {xds_address:?}: expected HOST:PORT"))?;
    let mut params = BootstrapParams::new(key.to_string(), host, port);
    params.delta = !sotw;
    print!("{}", bootstrap::render(&params).map_err(|e| e.to_string())?);
    Ok(())
}

fn render_command(
    file: &std::path::Path,
    gateway: Option<&str>,
    output: Format,
) -> Result<(), String> {
    let only = gateway.map(gateway_key).transpose()?;
    let inputs = files::load(file).map_err(|e| e.to_string())?;
    let outputs = translate::translate(&inputs);
    if let Some(key) = &only
        && !outputs.gateways.contains_key(key)
    {
        return Err(format!(
            "Gateway {key} is not in the input or not of a portico GatewayClass"
        ));
    }
    let doc = render::document(&outputs, only.as_ref())?;
    let text = match output {
        Format::Json => serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())? + "\n",
        Format::Yaml => yaml_serde::to_string(&doc).map_err(|e| e.to_string())?,
    };
    print!("{text}");
    Ok(())
}
