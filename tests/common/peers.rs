//! Real gRPC and WebSocket peers (`tests/peers/peers.py`, run by the project
//! virtualenv's Python with grpcio and websockets): servers killed when
//! dropped, and one-shot clients whose printed answer is returned.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

fn python() -> PathBuf {
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        venv.is_file(),
        "no Python at {}: run `make tools`",
        venv.display()
    );
    venv
}

fn script() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/peers.py")
}

pub struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a server peer and waits until it says it is ready.
pub fn serve(args: &[&str]) -> Peer {
    let mut child = Command::new(python())
        .arg(script())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("peer starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("peer output");
    assert_eq!(line.trim(), "ready", "peer {args:?} did not start");
    Peer(child)
}

/// Runs a client peer; its answer (stdout, trimmed), or its error output.
pub fn call(args: &[&str]) -> String {
    let out = Command::new(python())
        .arg(script())
        .args(args)
        .output()
        .expect("peer runs");
    if out.status.success() {
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    } else {
        format!("error: {}", String::from_utf8_lossy(&out.stderr).trim())
    }
}
