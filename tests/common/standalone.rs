//! `portico standalone` as a child process over a directory of YAML, stopped
//! with SIGINT (then killed) when dropped, so its Envoys go with it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Portico(pub Child);

impl Portico {
    /// Starts `portico standalone -f <dir>` with the project's Envoy.
    pub fn start(dir: &Path, extra: &[&str]) -> Self {
        Self(
            Command::new(env!("CARGO_BIN_EXE_portico"))
                .args(["standalone", "-f"])
                .arg(dir)
                .args(extra)
                .arg("--envoy")
                .arg(super::envoy_binary())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("portico starts"),
        )
    }
}

impl Drop for Portico {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-INT", &self.0.id().to_string()])
                .status();
            let start = Instant::now();
            while matches!(self.0.try_wait(), Ok(None)) && start.elapsed() < Duration::from_secs(10)
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// A fresh directory for one test's YAML, removed when dropped.
pub struct Workdir(pub PathBuf);

impl Workdir {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("portico-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("test dir");
        Self(dir)
    }

    /// Writes a file atomically (a rename), so portico never reads half of it.
    pub fn write(&self, name: &str, text: &str) {
        let tmp = self.0.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, self.0.join(name)).expect("rename");
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// portico's GatewayClass, the first document of every test input.
pub const CLASS: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: portico}\n\
                         spec: {controllerName: portico.dev/gateway-controller}\n";

/// A Service `name` in `default` with one port (`port`, named `p`, of
/// `protocol`, with `app_protocol` if given) whose one ready endpoint is
/// 127.0.0.1:`target`, as a `---`-led YAML document pair.
pub fn loopback_service(
    name: &str,
    port: u16,
    protocol: &str,
    app_protocol: Option<&str>,
    target: u16,
) -> String {
    let app = app_protocol.map_or(String::new(), |p| format!(", appProtocol: {p}"));
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\n\
         spec: {{ports: [{{name: p, port: {port}, protocol: {protocol}{app}}}]}}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: {name}-1, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}\n\
         addressType: IPv4\nports: [{{name: p, port: {target}, protocol: {protocol}}}]\n\
         endpoints: [{{addresses: [127.0.0.1], conditions: {{ready: true}}}}]\n"
    )
}
