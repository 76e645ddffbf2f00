//! A route the real Envoy rejects although portico accepted it: only that
//! route is held back. Envoy here runs with a much lower RE2 program size
//! limit than portico checks for (an operator's runtime override), so a
//! regex portico accepts is one Envoy rejects, and Envoy's NACK is real.
//! The other routes keep serving and updating, an edited route that Envoy
//! rejects keeps its previous edit served, and the statuses say so.

mod common;

use common::standalone::{CLASS, Workdir, loopback_service};
use common::traffic::{backend, free_port, get, wait_for};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// An Envoy that refuses regexes above a tiny RE2 program size.
fn strict_envoy(dir: &Path) -> PathBuf {
    let script = dir.join("strict-envoy.sh");
    let text = format!(
        "#!/bin/sh\nexec '{}' \"$@\" --config-yaml \
         '{{layered_runtime: {{layers: [{{name: strict, static_layer: \
         {{re2.max_program_size.error_level: 30, re2.max_program_size.warn_level: 30}}}}]}}}}'\n",
        common::envoy_binary().display()
    );
    std::fs::write(&script, text).expect("script");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    script
}

struct Standalone(Child);

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        for _ in 0..200 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn route(name: &str, path: &str, path_type: &str) -> String {
    format!(
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: default}}\n\
         spec:\n  parentRefs: [{{name: gw}}]\n  hostnames: [{name}.example]\n  rules:\n\
         \x20 - matches: [{{path: {{type: {path_type}, value: '{path}'}}}}]\n    backendRefs: [{{name: web, port: 80}}]\n"
    )
}

/// A regex portico accepts (well under its limit) and the strict Envoy
/// refuses.
const BIG_REGEX: &str = "/(alpha|beta|gamma|delta)/[a-z]{2,6}[0-9]{3}";

/// The `Accepted` condition of route `name` in the last statuses printed.
fn accepted(out: &Path, name: &str) -> Option<(String, String, String)> {
    let text = std::fs::read_to_string(out).ok()?;
    let last = text.split("\n---\n").last()?;
    let doc: serde_json::Value = yaml_serde::from_str(last.trim_start_matches("---\n")).ok()?;
    let route = doc["routes"]
        .as_array()?
        .iter()
        .find(|r| r["name"] == name)?
        .clone();
    let c = route["status"]["parents"][0]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Accepted")?
        .clone();
    Some((
        c["status"].as_str()?.to_string(),
        c["reason"].as_str()?.to_string(),
        c["message"].as_str()?.to_string(),
    ))
}

#[test]
fn a_route_envoy_rejects_is_held_back_and_the_port_keeps_updating() {
    let dir = Workdir::new("quarantine");
    let port = free_port();
    let backend_port = backend("served");
    let gateway = format!(
        "{CLASS}---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: default}}\n\
         spec:\n  gatewayClassName: portico\n  listeners:\n  - {{name: http, port: {port}, protocol: HTTP}}\n{}",
        loopback_service("web", 80, "TCP", None, backend_port)
    );
    dir.write("gateway.yaml", &gateway);
    dir.write("web.yaml", &route("web", "/", "PathPrefix"));
    // Outside the watched directory: portico reads every YAML file in it.
    let printed = Workdir::new("quarantine-statuses");
    let out = printed.0.join("statuses.yaml");
    let envoy = strict_envoy(&dir.0);
    let _portico = Standalone(
        Command::new(env!("CARGO_BIN_EXE_portico"))
            .args(["standalone", "--status", "-f"])
            .arg(&dir.0)
            .arg("--envoy")
            .arg(&envoy)
            .stdout(std::fs::File::create(&out).expect("stdout file"))
            .stderr(Stdio::null())
            .spawn()
            .expect("portico starts"),
    );
    let ok = |host: &str| get(port, host, "/alpha/ab123").map(|r| r.0) == Some(200);
    wait_for("the first route", Duration::from_secs(30), || {
        ok("web.example")
    });

    // A tenant adds a route the strict Envoy rejects.
    dir.write("evil.yaml", &route("evil", BIG_REGEX, "RegularExpression"));
    wait_for(
        "the rejected route to be reported",
        Duration::from_secs(30),
        || accepted(&out, "evil").is_some_and(|(_, reason, _)| reason == "RejectedByEnvoy"),
    );
    let (status, _, message) = accepted(&out, "evil").expect("evil");
    assert_eq!(status, "False");
    assert!(
        message.contains("program size"),
        "Envoy's own words: {message}"
    );
    assert!(message.contains("it is not served"), "{message}");
    assert_eq!(
        get(port, "evil.example", "/alpha/ab123").map(|r| r.0),
        Some(404)
    );

    // Another route added after it is served: the port keeps updating.
    dir.write("late.yaml", &route("late", "/", "PathPrefix"));
    wait_for("a later route", Duration::from_secs(30), || {
        ok("late.example")
    });
    assert!(ok("web.example"));

    // An edit Envoy rejects keeps the previous edit of that route served.
    dir.write("web.yaml", &route("web", BIG_REGEX, "RegularExpression"));
    wait_for(
        "the rejected edit to be reported",
        Duration::from_secs(30),
        || accepted(&out, "web").is_some_and(|(_, reason, _)| reason == "RejectedByEnvoy"),
    );
    let (_, _, message) = accepted(&out, "web").expect("web");
    assert!(message.contains("is still served"), "{message}");
    assert!(ok("web.example"), "the previous edit still serves");
    assert_eq!(
        get(port, "web.example", "/other").map(|r| r.0),
        Some(200),
        "the previous edit (prefix /) still matches everything"
    );

    // The tenant fixes the route: its next edit goes through.
    dir.write("evil.yaml", &route("evil", "/alpha", "PathPrefix"));
    wait_for("the fixed route", Duration::from_secs(30), || {
        ok("evil.example")
    });
    assert_eq!(accepted(&out, "evil").map(|a| a.0).as_deref(), Some("True"));
}
