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
