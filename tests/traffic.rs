//! What an HTTP client really gets through Envoy for each translation
//! feature: portico's ADS server feeds one real Envoy the translation of one
//! set of Gateway API objects, echo backends on 127.0.0.1 report what they
//! received, and every check asserts status, body, headers or Location.
//!
//! One Envoy serves the whole set: `traffic_through_envoy` runs every check
//! and reports all failures at once, each naming the request and what differed.

mod common;

use common::traffic::{Echo, Envoy, Response, echo_backend, free_port, request, wait_for};

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portico::inputs::{InputsBuilder, files};
use portico::translate::conditions::ConditionStatus;
use portico::translate::{Options, translate_with};
use portico::xds::hub::Hub;

/// A rule answered by the `echo` backend, tagged with `x-rule: <tag>` on the
/// way so the echo body tells which rule matched.
fn tagged(tag: &str, matches: &str) -> String {
    format!(
        "  - matches: {matches}\n    filters: [{{type: RequestHeaderModifier, \
         requestHeaderModifier: {{set: [{{name: x-rule, value: {tag}}}]}}}}]\n    \
         backendRefs: [{{name: echo, port: 80}}]\n"
    )
}

fn route(name: &str, hostnames: &str, created: &str, rules: &str) -> String {
    format!(
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
         metadata: {{name: {name}, namespace: default, creationTimestamp: \"{created}\"}}\n\
         spec:\n  parentRefs: [{{name: gw}}]\n  hostnames: {hostnames}\n  rules:\n{rules}"
    )
}

/// A Service `name` (port 80) whose one ready endpoint is 127.0.0.1:`port`.
fn service(name: &str, port: u16) -> String {
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\n\
         spec: {{ports: [{{name: http, port: 80, targetPort: {port}}}]}}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: {name}-1, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}\n\
         addressType: IPv4\nports: [{{name: http, port: {port}}}]\n\
         endpoints: [{{addresses: [127.0.0.1], conditions: {{ready: true}}}}]\n"
    )
}

const T0: &str = "2026-01-01T00:00:00Z";
const T1: &str = "2026-01-01T00:01:00Z";

fn matching_routes() -> String {
    let rules = [
        tagged("exact", "[{path: {type: Exact, value: /exact}}]"),
        tagged("prefix-foo", "[{path: {type: PathPrefix, value: /foo}}]"),
        tagged("prefix-foo-bar", "[{path: {type: PathPrefix, value: /foo/bar}}]"),
        tagged(
            "regex",
            "[{path: {type: RegularExpression, value: \"/re/[0-9]+\"}}]",
        ),
        tagged("no-header", "[{path: {type: PathPrefix, value: /h}}]"),
        tagged(
            "one-header",
            "[{path: {type: PathPrefix, value: /h}, headers: [{name: x-env, value: prod}]}]",
        ),
        tagged(
            "two-headers",
            "[{path: {type: PathPrefix, value: /h}, headers: [{name: x-env, value: prod}, \
             {name: x-team, value: blue}]}]",
        ),
        tagged(
            "header-regex",
            "[{path: {type: PathPrefix, value: /hr}, headers: [{type: RegularExpression, \
             name: x-version, value: \"v[0-9]+\"}]}]",
        ),
        tagged(
            "query",
            "[{path: {type: PathPrefix, value: /q}, queryParams: [{name: lang, value: en}]}]",
        ),
        tagged(
            "query-regex",
            "[{path: {type: PathPrefix, value: /qr}, queryParams: [{type: RegularExpression, \
             name: id, value: \"[0-9]+\"}]}]",
        ),
        tagged(
            "method-post",
            "[{path: {type: PathPrefix, value: /m}, method: POST}]",
        ),
        tagged("method-any", "[{path: {type: PathPrefix, value: /m}}]"),
        tagged(
            "either",
            "[{path: {type: Exact, value: /or-a}}, {path: {type: Exact, value: /or-b}}]",
        ),
        tagged(
            "one-query",
            "[{path: {type: PathPrefix, value: /p}, queryParams: [{name: a, value: \"1\"}]}]",
        ),
        tagged(
            "two-queries",
            "[{path: {type: PathPrefix, value: /p}, queryParams: [{name: a, value: \"1\"}, \
             {name: b, value: \"2\"}]}]",
        ),
        tagged(
            "mh-headers",
            "[{path: {type: PathPrefix, value: /mh}, headers: [{name: x-a, value: \"1\"}, \
             {name: x-b, value: \"2\"}]}]",
        ),
        tagged(
            "mh-method",
            "[{path: {type: PathPrefix, value: /mh}, method: GET}]",
        ),
        tagged("trailing-slash", "[{path: {type: PathPrefix, value: /ts/}}]"),
        tagged(
            "all-of",
            "[{path: {type: Exact, value: /and}, method: PUT, headers: [{name: x-a, value: \"1\"}], \
             queryParams: [{name: b, value: \"2\"}]}]",
        ),
    ]
    .concat();
    // A second, younger route on the same hostname: precedence holds across routes.
    let more = [
        tagged("exact-in-foo", "[{path: {type: Exact, value: /foo/exact}}]"),
        tagged(
            "prefix-foo-bar-baz",
            "[{path: {type: PathPrefix, value: /foo/bar/baz}}]",
        ),
    ]
    .concat();
    route("matching", "[match.test]", T0, &rules)
        + &route("matching-more", "[match.test]", T1, &more)
}

fn hostname_routes() -> String {
    let any = "[{path: {type: PathPrefix, value: /}}]";
    route("host-exact", "[exact.test]", T0, &tagged("exact-host", any))
        + &route(
            "host-wild",
            "[\"*.wild.test\"]",
            T0,
            &tagged("wildcard", any),
        )
        + &route(
            "host-wild-specific",
            "[a.wild.test]",
            T0,
            &tagged("specific", "[{path: {type: PathPrefix, value: /special}}]"),
        )
}

fn filter_routes() -> String {
    let rule = |path: &str, body: &str| {
        format!("  - matches: [{{path: {{type: PathPrefix, value: {path}}}}}]\n{body}")
    };
    let to_echo = "    backendRefs: [{name: echo, port: 80}]\n";
    let redirect = |path: &str, spec: &str| {
        rule(
            path,
            &format!("    filters: [{{type: RequestRedirect, requestRedirect: {spec}}}]\n"),
        )
    };
    let rewrite = |path: &str, spec: &str| {
        rule(
            path,
            &format!("    filters: [{{type: URLRewrite, urlRewrite: {spec}}}]\n{to_echo}"),
        )
    };
    let rules = [
        rule(
            "/req-headers",
            &format!(
                "    filters:\n    - type: RequestHeaderModifier\n      requestHeaderModifier:\n        \
                 add: [{{name: x-added, value: from-route}}]\n        \
                 set: [{{name: x-set, value: from-route}}]\n        \
                 remove: [x-removed]\n{to_echo}"
            ),
        ),
        rule(
            "/resp-headers",
            &format!(
                "    filters:\n    - type: ResponseHeaderModifier\n      responseHeaderModifier:\n        \
                 add: [{{name: x-resp-added, value: from-route}}]\n        \
                 set: [{{name: x-backend, value: overwritten}}]\n        \
                 remove: [x-remove-me]\n{to_echo}"
            ),
        ),
        redirect("/redir/scheme", "{scheme: https}"),
        redirect("/redir/host", "{hostname: other.test}"),
        redirect("/redir/port", "{port: 8443}"),
        redirect("/redir/301", "{statusCode: 301}"),
        redirect("/redir/302", "{statusCode: 302, hostname: other.test}"),
        redirect("/redir/303", "{statusCode: 303}"),
        redirect("/redir/307", "{statusCode: 307}"),
        redirect("/redir/308", "{statusCode: 308}"),
        redirect(
            "/redir/combo",
            "{scheme: https, hostname: secure.test, port: 8443, statusCode: 301}",
        ),
        redirect(
            "/redir/prefix",
            "{path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}",
        ),
        redirect(
            "/redir/strip",
            "{path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}",
        ),
        redirect(
            "/redir/v1/",
            "{statusCode: 301, path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2/}}",
        ),
        redirect(
            "/redir/empty",
            "{path: {type: ReplacePrefixMatch, replacePrefixMatch: \"\"}}",
        ),
        redirect(
            "/redir/full",
            "{path: {type: ReplaceFullPath, replaceFullPath: /replaced}}",
        ),
        rewrite(
            "/rewrite/prefix",
            "{hostname: rewritten.test, path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}",
        ),
        rewrite(
            "/rewrite/strip",
            "{path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}",
        ),
        rewrite(
            "/rewrite/full",
            "{path: {type: ReplaceFullPath, replaceFullPath: /full-target}}",
        ),
        rewrite("/rewrite/host", "{hostname: rewritten.test}"),
        rewrite(
            "/rewrite/slashes/",
            "{path: {type: ReplacePrefixMatch, replacePrefixMatch: /xyz/}}",
        ),
        rewrite(
            "/rewrite/empty",
            "{path: {type: ReplacePrefixMatch, replacePrefixMatch: \"\"}}",
        ),
        rule(
            "/mirror",
            &format!(
                "    filters: [{{type: RequestMirror, requestMirror: {{backendRef: {{name: mirror, port: 80}}}}}}]\n\
                 {to_echo}"
            ),
        ),
        rule(
            "/mirror-half",
            &format!(
                "    filters: [{{type: RequestMirror, requestMirror: {{backendRef: {{name: mirror, port: 80}}, percent: 50}}}}]\n\
                 {to_echo}"
            ),
        ),
        rule(
            "/mirror-quarter",
            &format!(
                "    filters: [{{type: RequestMirror, requestMirror: {{backendRef: {{name: mirror, port: 80}}, \
                 fraction: {{numerator: 1, denominator: 4}}}}}}]\n{to_echo}"
            ),
        ),
        rule(
            "/cors",
            &format!(
                "    filters:\n    - type: CORS\n      cors:\n        \
                 allowOrigins: [\"https://app.test\", \"https://*.good.test\"]\n        \
                 allowMethods: [GET, PUT]\n        allowHeaders: [x-custom]\n        maxAge: 600\n{to_echo}"
            ),
        ),
        rule(
            "/slow",
            &format!("    timeouts: {{request: 500ms}}\n{to_echo}"),
        ),
        rule(
            "/slow-backend",
            &format!("    timeouts: {{request: 5s, backendRequest: 300ms}}\n{to_echo}"),
        ),
    ]
    .concat();
    route("filters", "[filters.test]", T0, &rules)
}

/// The edge defaults: a protected `/admin` prefix beside a catch-all.
fn edge_routes() -> String {
    let rules = [
        tagged("admin", "[{path: {type: PathPrefix, value: /admin}}]"),
        tagged("public", "[{path: {type: PathPrefix, value: /}}]"),
    ]
    .concat();
    route("edge", "[edge.test]", T0, &rules)
}

fn backend_routes() -> String {
    route(
        "weights",
        "[weights.test]",
        T0,
        "  - backendRefs: [{name: wa, port: 80, weight: 3}, {name: wb, port: 80, weight: 1}]\n",
    ) + &route(
        "weights-zero",
        "[weights0.test]",
        T0,
        "  - backendRefs: [{name: wa, port: 80, weight: 0}, {name: wb, port: 80, weight: 1}]\n",
    ) + &route(
        "all-zero",
        "[zero.test]",
        T0,
        "  - backendRefs: [{name: wa, port: 80, weight: 0}]\n",
    ) + &route(
        "per-backend",
        "[perbackend.test]",
        T0,
        "  - backendRefs:\n    \
         - name: wa\n      port: 80\n      filters:\n      \
         - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-which, value: a}]}}\n      \
         - {type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: x-resp-which, value: a}]}}\n    \
         - name: wb\n      port: 80\n      filters:\n      \
         - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-which, value: b}]}}\n      \
         - {type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: x-resp-which, value: b}]}}\n",
    ) + &route(
        "invalid",
        "[invalid.test]",
        T0,
        "  - matches: [{path: {type: PathPrefix, value: /missing}}]\n    \
         backendRefs: [{name: missing, port: 80}]\n  \
         - matches: [{path: {type: PathPrefix, value: /half}}]\n    \
         backendRefs: [{name: echo, port: 80, weight: 1}, {name: missing, port: 80, weight: 1}]\n",
    )
}

/// The echo backends every route above points at.
struct Backends {
    echo: Echo,
    mirror: Echo,
    wa: Echo,
    wb: Echo,
}

/// The inputs, and how many HTTPRoutes they hold.
fn inputs(listener_port: u16, b: &Backends) -> (portico::inputs::Inputs, usize) {
    let yaml = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {{name: portico}}\n\
         spec: {{controllerName: portico.dev/gateway-controller}}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: default}}\n\
         spec:\n  gatewayClassName: portico\n  listeners:\n  - {{name: http, port: {listener_port}, protocol: HTTP}}\n"
    ) + &matching_routes()
        + &hostname_routes()
        + &filter_routes()
        + &backend_routes()
        + &edge_routes()
        + &service("echo", b.echo.port)
        + &service("mirror", b.mirror.port)
        + &service("wa", b.wa.port)
        + &service("wb", b.wb.port);
    let mut builder = InputsBuilder::default();
    let objects = files::parse_documents(Path::new("traffic.yaml"), &yaml)
        .unwrap_or_else(|e| panic!("the test inputs parse: {e}\n{yaml}"));
    for o in objects {
        builder.insert(o);
    }
    (builder.build(), yaml.matches("kind: HTTPRoute").count())
}

/// portico's ADS server, one Envoy fed by it, and the backends. Dropping it
/// kills Envoy and stops the server.
struct Env {
    _envoy: Envoy,
    port: u16,
    backends: Backends,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _rt: tokio::runtime::Runtime,
    dir: std::path::PathBuf,
}

impl Env {
    fn start() -> Env {
        let backends = Backends {
            echo: echo_backend("echo"),
            mirror: echo_backend("mirror"),
            wa: echo_backend("wa"),
            wb: echo_backend("wb"),
        };
        let port = free_port();
        let options = Options {
            listen_address: "127.0.0.1".into(),
            ..Options::default()
        };
        let (inputs, routes) = inputs(port, &backends);
        let outputs = translate_with(&inputs, &options);
        // Every route is accepted: a typo in the inputs fails here, not as a
        // confusing 404 later.
        for ((_, key), status) in &outputs.routes {
            for parent in &status.parents {
                let accepted = parent.conditions.iter().find(|c| c.type_ == "Accepted");
                assert!(
                    accepted.is_some_and(|c| c.status == ConditionStatus::True),
                    "route {}/{} is accepted: {:?}",
                    key.namespace,
                    key.name,
                    parent.conditions
                );
            }
        }
        assert_eq!(outputs.routes.len(), routes, "every route is translated");

        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let hub = Hub::new();
        hub.publish(&outputs);
        let xds = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind xds");
        let xds_port = xds.local_addr().expect("addr").port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        rt.spawn(portico::xds::server::serve(Arc::clone(&hub), xds, async {
            let _ = stopped.await;
        }));
        let dir =
            std::env::temp_dir().join(format!("portico-traffic-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (envoy, _) = common::traffic::start_envoy(xds_port, true, &dir);
        let env = Env {
            _envoy: envoy,
            port,
            backends,
            stop: Some(stop),
            _rt: rt,
            dir,
        };
        wait_for("Envoy to serve the routes", Duration::from_secs(30), || {
            env.get("match.test", "/exact").status == 200
        });
        env
    }

    fn send(&self, method: &str, host: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        request(self.port, method, host, path, headers).unwrap_or(Response {
            status: 0,
            headers: Vec::new(),
            body: "(no HTTP answer)".into(),
        })
    }

    fn get(&self, host: &str, path: &str) -> Response {
        self.send("GET", host, path, &[])
    }

    /// `n` GETs, four at a time: answers counted by backend name, or by
    /// `status <code>` for answers that are not an echo.
    fn tally(&self, host: &str, path: &str, n: usize) -> BTreeMap<String, usize> {
        let port = self.port;
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (host, path) = (host.to_string(), path.to_string());
                std::thread::spawn(move || {
                    let mut counts = BTreeMap::<String, usize>::new();
                    for _ in (t..n).step_by(4) {
                        let key = match request(port, "GET", &host, &path, &[]) {
                            Some(r) if r.status == 200 => r
                                .seen()
                                .map_or_else(|| "status 200 (not an echo)".into(), |s| s.backend),
                            Some(r) => format!("status {}", r.status),
                            None => "no answer".into(),
                        };
                        *counts.entry(key).or_default() += 1;
                    }
                    counts
                })
            })
            .collect();
        let mut total = BTreeMap::new();
        for t in threads {
            for (k, v) in t.join().expect("client thread") {
                *total.entry(k).or_default() += v;
            }
        }
        total
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Failed checks, collected so one run reports all of them.
#[derive(Default)]
struct Checks {
    failures: Vec<String>,
    count: usize,
}

impl Checks {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        self.count += 1;
        if !ok {
            self.failures.push(what());
        }
    }

    /// `method host path` with `headers` reaches the echo rule tagged
    /// `expected`, or gets 404 when `expected` is `None`.
    fn rule(
        &mut self,
        env: &Env,
        (method, host, path): (&str, &str, &str),
        headers: &[(&str, &str)],
        expected: Option<&str>,
    ) {
        let r = env.send(method, host, path, headers);
        let got = match (r.status, r.seen()) {
            (200, Some(seen)) => format!("rule {:?}", seen.header("x-rule").unwrap_or("(none)")),
            (status, _) => format!("status {status}"),
        };
        let want = expected.map_or_else(|| "status 404".to_string(), |t| format!("rule {t:?}"));
        self.check(got == want, || {
            format!("{method} {host}{path} {headers:?}: expected {want}, got {got}")
        });
    }

    /// A redirect: status and exact Location, and no backend involved.
    fn redirect(&mut self, env: &Env, path: &str, status: u16, location: &str) {
        self.redirect_from(env, "filters.test", path, status, location);
    }

    fn redirect_from(&mut self, env: &Env, host: &str, path: &str, status: u16, location: &str) {
        let r = env.get(host, path);
        self.check(
            r.status == status && r.header("location") == Some(location),
            || {
                format!(
                    "GET {host}{path}: expected {status} to {location}, got {} to {:?}",
                    r.status,
                    r.header("location")
                )
            },
        );
    }

    fn finish(self, what: &str) {
        assert!(
            self.failures.is_empty(),
            "{} of {} {what} checks failed:\n  {}",
            self.failures.len(),
            self.count,
            self.failures.join("\n  ")
        );
    }
}

fn path_matching(env: &Env, c: &mut Checks) {
    let get = |path| ("GET", "match.test", path);
    let none: &[(&str, &str)] = &[];
    // Exact: the whole path, query aside.
    c.rule(env, get("/exact"), none, Some("exact"));
    c.rule(env, get("/exact?x=1"), none, Some("exact"));
    c.rule(env, get("/exact/"), none, None);
    c.rule(env, get("/exactly"), none, None);
    c.rule(env, get("/exact/more"), none, None);
    // PathPrefix: element-wise.
    c.rule(env, get("/foo"), none, Some("prefix-foo"));
    c.rule(env, get("/foo/"), none, Some("prefix-foo"));
    c.rule(env, get("/foo/baz"), none, Some("prefix-foo"));
    c.rule(env, get("/foo?x=1"), none, Some("prefix-foo"));
    c.rule(env, get("/foobar"), none, None);
    c.rule(env, get("/fo"), none, None);
    // Longer prefix beats shorter, element-wise too.
    c.rule(env, get("/foo/bar"), none, Some("prefix-foo-bar"));
    c.rule(env, get("/foo/bar/x"), none, Some("prefix-foo-bar"));
    c.rule(env, get("/foo/barn"), none, Some("prefix-foo"));
    // A trailing slash in a PathPrefix is ignored.
    c.rule(env, get("/ts"), none, Some("trailing-slash"));
    c.rule(env, get("/ts/"), none, Some("trailing-slash"));
    c.rule(env, get("/ts/x"), none, Some("trailing-slash"));
    c.rule(env, get("/tsx"), none, None);
    // Across routes: an exact path and a longer prefix of a younger route win.
    c.rule(env, get("/foo/exact"), none, Some("exact-in-foo"));
    c.rule(env, get("/foo/exact/x"), none, Some("prefix-foo"));
    c.rule(env, get("/foo/bar/baz/1"), none, Some("prefix-foo-bar-baz"));
    // RegularExpression: the whole path must match.
    c.rule(env, get("/re/123"), none, Some("regex"));
    c.rule(env, get("/re/abc"), none, None);
    c.rule(env, get("/re/123/x"), none, None);
    c.rule(env, get("/x/re/123"), none, None);
    // Envoy normalizes the path before matching.
    c.rule(env, get("/foo/../exact"), none, Some("exact"));
    c.rule(env, get("//exact"), none, Some("exact"));
    // Several matches in one rule: any of them.
    c.rule(env, get("/or-a"), none, Some("either"));
    c.rule(env, get("/or-b"), none, Some("either"));
    c.rule(env, get("/or-c"), none, None);
}

fn header_query_method_matching(env: &Env, c: &mut Checks) {
    let get = |path| ("GET", "match.test", path);
    let none: &[(&str, &str)] = &[];
    // Headers, Exact; more headers beat fewer.
    c.rule(env, get("/h"), none, Some("no-header"));
    c.rule(env, get("/h"), &[("x-env", "prod")], Some("one-header"));
    c.rule(env, get("/h/x"), &[("X-Env", "prod")], Some("one-header"));
    c.rule(
        env,
        get("/h"),
        &[("x-env", "prod"), ("x-team", "blue")],
        Some("two-headers"),
    );
    c.rule(
        env,
        get("/h"),
        &[("x-env", "prod"), ("x-team", "red")],
        Some("one-header"),
    );
    c.rule(env, get("/h"), &[("x-env", "dev")], Some("no-header"));
    c.rule(env, get("/h"), &[("x-env", "Prod")], Some("no-header"));
    c.rule(env, get("/h"), &[("x-team", "blue")], Some("no-header"));
    // Headers, RegularExpression.
    c.rule(
        env,
        get("/hr"),
        &[("x-version", "v12")],
        Some("header-regex"),
    );
    c.rule(env, get("/hr"), &[("x-version", "beta")], None);
    c.rule(env, get("/hr"), none, None);
    // Query parameters, Exact and RegularExpression.
    c.rule(env, get("/q?lang=en"), none, Some("query"));
    c.rule(env, get("/q?x=1&lang=en"), none, Some("query"));
    c.rule(env, get("/q?lang=fr"), none, None);
    c.rule(env, get("/q"), none, None);
    c.rule(env, get("/qr?id=42"), none, Some("query-regex"));
    c.rule(env, get("/qr?id=abc"), none, None);
    // More query parameters beat fewer.
    c.rule(env, get("/p?a=1"), none, Some("one-query"));
    c.rule(env, get("/p?b=2&a=1"), none, Some("two-queries"));
    c.rule(env, get("/p?a=1&b=3"), none, Some("one-query"));
    c.rule(env, get("/p?b=2"), none, None);
    // Method: a rule with a method beats the same path without.
    c.rule(env, ("POST", "match.test", "/m"), none, Some("method-post"));
    c.rule(env, ("GET", "match.test", "/m"), none, Some("method-any"));
    c.rule(
        env,
        ("DELETE", "match.test", "/m"),
        none,
        Some("method-any"),
    );
    // A method beats more headers.
    let ab: &[(&str, &str)] = &[("x-a", "1"), ("x-b", "2")];
    c.rule(env, ("GET", "match.test", "/mh"), ab, Some("mh-method"));
    c.rule(env, ("POST", "match.test", "/mh"), ab, Some("mh-headers"));
    c.rule(env, ("POST", "match.test", "/mh"), none, None);
    // Every condition of one match at once.
    let a1: &[(&str, &str)] = &[("x-a", "1")];
    c.rule(env, ("PUT", "match.test", "/and?b=2"), a1, Some("all-of"));
    c.rule(env, ("GET", "match.test", "/and?b=2"), a1, None);
    c.rule(env, ("PUT", "match.test", "/and"), a1, None);
    c.rule(env, ("PUT", "match.test", "/and?b=2"), none, None);
}

fn hostnames(env: &Env, c: &mut Checks) {
    let none: &[(&str, &str)] = &[];
    let port_host = format!("exact.test:{}", env.port);
    let get = |host| ("GET", host, "/");
    c.rule(env, get("exact.test"), none, Some("exact-host"));
    c.rule(env, get(&port_host), none, Some("exact-host"));
    c.rule(env, get("a.wild.test"), none, Some("wildcard"));
    c.rule(env, get("deep.b.wild.test"), none, Some("wildcard"));
    let wild_port_host = format!("a.wild.test:{}", env.port);
    c.rule(env, get(&wild_port_host), none, Some("wildcard"));
    // A port in Host, the listener's or another, still routes by name, and
    // the backend sees Host as sent.
    c.rule(env, get("exact.test:1234"), none, Some("exact-host"));
    for (sent, seen) in [
        ("exact.test:1234", "exact.test:1234"),
        (&port_host, port_host.as_str()),
    ] {
        let r = env.get(sent, "/");
        c.check(
            r.seen()
                .and_then(|s| s.header("host").map(str::to_string))
                .as_deref()
                == Some(seen),
            || format!("Host {sent} reaches the backend as {seen}: {r:?}"),
        );
    }
    // An exact hostname's routes first, then the wildcard's as fallback.
    c.rule(
        env,
        ("GET", "a.wild.test", "/special"),
        none,
        Some("specific"),
    );
    c.rule(
        env,
        ("GET", "a.wild.test", "/other"),
        none,
        Some("wildcard"),
    );
    c.rule(
        env,
        ("GET", "b.wild.test", "/special"),
        none,
        Some("wildcard"),
    );
    // Unknown hosts, and the wildcard's own parent domain.
    c.rule(env, get("wild.test"), none, None);
    c.rule(env, get("unknown.test"), none, None);
    c.rule(env, get("xexact.test"), none, None);
    c.rule(env, get("a.exact.test"), none, None);
}

fn header_modifiers(env: &Env, c: &mut Checks) {
    let r = env.send(
        "GET",
        "filters.test",
        "/req-headers",
        &[
            ("x-added", "from-client"),
            ("x-set", "from-client"),
            ("x-removed", "from-client"),
            ("x-kept", "from-client"),
        ],
    );
    match r.seen() {
        Some(seen) if r.status == 200 => {
            let added = seen.header_values("x-added");
            c.check(
                added.contains(&"from-client") && added.contains(&"from-route"),
                || format!("RequestHeaderModifier add keeps the client's value and appends: x-added = {added:?}"),
            );
            let set = seen.header_values("x-set");
            c.check(set == ["from-route"], || {
                format!("RequestHeaderModifier set replaces the client's value: x-set = {set:?}")
            });
            c.check(seen.header("x-removed").is_none(), || {
                format!(
                    "RequestHeaderModifier remove: the backend still got x-removed = {:?}",
                    seen.header("x-removed")
                )
            });
            c.check(seen.header("x-kept") == Some("from-client"), || {
                format!(
                    "other request headers pass: x-kept = {:?}",
                    seen.header("x-kept")
                )
            });
        }
        _ => c.check(false, || {
            format!("GET filters.test/req-headers: expected an echo, got {r:?}")
        }),
    }

    let r = env.get("filters.test", "/resp-headers");
    c.check(r.status == 200, || {
        format!("GET filters.test/resp-headers: status {}", r.status)
    });
    c.check(r.header("x-resp-added") == Some("from-route"), || {
        format!(
            "ResponseHeaderModifier add: x-resp-added = {:?}",
            r.header("x-resp-added")
        )
    });
    let backend: Vec<&str> = r
        .headers
        .iter()
        .filter(|(k, _)| k == "x-backend")
        .map(|(_, v)| v.as_str())
        .collect();
    c.check(backend == ["overwritten"], || {
        format!("ResponseHeaderModifier set replaces the backend's value: x-backend = {backend:?}")
    });
    c.check(r.header("x-remove-me").is_none(), || {
        format!(
            "ResponseHeaderModifier remove: the client still got x-remove-me = {:?}",
            r.header("x-remove-me")
        )
    });
    // Without the filter, the backend's headers reach the client unchanged.
    let plain = env.get("match.test", "/exact");
    c.check(
        plain.header("x-backend") == Some("echo") && plain.header("x-remove-me") == Some("yes"),
        || format!("a route without response filters passes the backend's headers: {plain:?}"),
    );
}

fn redirects(env: &Env, c: &mut Checks) {
    let p = env.port;
    // The listener is on a test port, not 80: its clients name that port in
    // Host, so a scheme change names its well-known port rather than carry
    // the client's over.
    c.redirect(
        env,
        "/redir/scheme",
        302,
        "https://filters.test:443/redir/scheme",
    );
    c.redirect(
        env,
        "/redir/host",
        302,
        &format!("http://other.test:{p}/redir/host"),
    );
    c.redirect(
        env,
        "/redir/port",
        302,
        "http://filters.test:8443/redir/port",
    );
    c.redirect(
        env,
        "/redir/301",
        301,
        &format!("http://filters.test:{p}/redir/301"),
    );
    c.redirect(
        env,
        "/redir/302",
        302,
        &format!("http://other.test:{p}/redir/302"),
    );
    c.redirect(
        env,
        "/redir/combo/x",
        301,
        "https://secure.test:8443/redir/combo/x",
    );
    c.redirect(
        env,
        "/redir/prefix",
        302,
        &format!("http://filters.test:{p}/new"),
    );
    c.redirect(
        env,
        "/redir/prefix/a/b",
        302,
        &format!("http://filters.test:{p}/new/a/b"),
    );
    c.redirect(
        env,
        "/redir/strip/a",
        302,
        &format!("http://filters.test:{p}/a"),
    );
    c.redirect(
        env,
        "/redir/strip",
        302,
        &format!("http://filters.test:{p}/"),
    );
    c.redirect(
        env,
        "/redir/prefix/a?x=1",
        302,
        &format!("http://filters.test:{p}/new/a?x=1"),
    );
    // A client names the port in Host, as clients do off port 80.
    c.redirect_from(
        env,
        &format!("filters.test:{p}"),
        "/redir/prefix/a",
        302,
        &format!("http://filters.test:{p}/new/a"),
    );
    c.redirect_from(
        env,
        &format!("filters.test:{p}"),
        "/redir/scheme",
        302,
        "https://filters.test:443/redir/scheme",
    );
    c.redirect(
        env,
        "/redir/303",
        303,
        &format!("http://filters.test:{p}/redir/303"),
    );
    c.redirect(
        env,
        "/redir/307",
        307,
        &format!("http://filters.test:{p}/redir/307"),
    );
    c.redirect(
        env,
        "/redir/308",
        308,
        &format!("http://filters.test:{p}/redir/308"),
    );
    // Trailing slashes of the prefix and the replacement are ignored.
    c.redirect(
        env,
        "/redir/v1/x",
        301,
        &format!("http://filters.test:{p}/v2/x"),
    );
    c.redirect(
        env,
        "/redir/v1/x/",
        301,
        &format!("http://filters.test:{p}/v2/x/"),
    );
    // An empty replacement leaves the rest of the path, or "/".
    c.redirect(
        env,
        "/redir/empty/a",
        302,
        &format!("http://filters.test:{p}/a"),
    );
    c.redirect(
        env,
        "/redir/empty",
        302,
        &format!("http://filters.test:{p}/"),
    );
    c.redirect(
        env,
        "/redir/empty/",
        302,
        &format!("http://filters.test:{p}/"),
    );
    c.redirect(
        env,
        "/redir/full/any/thing",
        302,
        &format!("http://filters.test:{p}/replaced"),
    );
    let echo_before = env.backends.echo.requests().len();
    let _ = env.get("filters.test", "/redir/301");
    c.check(env.backends.echo.requests().len() == echo_before, || {
        "a redirect reaches no backend".into()
    });
}

fn rewrites(env: &Env, c: &mut Checks) {
    let mut seen = |path: &str, want_path: &str, want_host: &str| {
        let r = env.get("filters.test", path);
        let got = r.seen().filter(|_| r.status == 200);
        let got_path = got.as_ref().map(|s| s.path.clone());
        let got_host = got
            .as_ref()
            .and_then(|s| s.header("host").map(str::to_string));
        c.check(
            got_path.as_deref() == Some(want_path) && got_host.as_deref() == Some(want_host),
            || {
                format!(
                    "URLRewrite GET filters.test{path}: expected the backend to see {want_host}{want_path}, \
                     got status {} with path {got_path:?} and host {got_host:?}",
                    r.status
                )
            },
        );
    };
    seen("/rewrite/prefix/x?y=1", "/v2/x?y=1", "rewritten.test");
    seen("/rewrite/prefix", "/v2", "rewritten.test");
    seen("/rewrite/prefix/", "/v2/", "rewritten.test");
    seen("/rewrite/strip/a", "/a", "filters.test");
    seen("/rewrite/strip", "/", "filters.test");
    seen("/rewrite/strip/", "/", "filters.test");
    // The specification's table for ReplacePrefixMatch: trailing slashes of
    // the prefix and of the replacement are ignored.
    seen("/rewrite/slashes/bar", "/xyz/bar", "filters.test");
    seen("/rewrite/slashes", "/xyz", "filters.test");
    seen("/rewrite/slashes/", "/xyz/", "filters.test");
    seen("/rewrite/empty/bar", "/bar", "filters.test");
    seen("/rewrite/empty/", "/", "filters.test");
    seen("/rewrite/empty", "/", "filters.test");
    seen("/rewrite/full/a/b", "/full-target", "filters.test");
    seen("/rewrite/full/a?x=1", "/full-target?x=1", "filters.test");
    seen("/rewrite/host/a", "/rewrite/host/a", "rewritten.test");
    // Without a rewrite, the backend sees what the client sent.
    seen("/req-headers/a?z=9", "/req-headers/a?z=9", "filters.test");
}

fn mirror(env: &Env, c: &mut Checks) {
    let r = env.send(
        "GET",
        "filters.test",
        "/mirror/copy?n=1",
        &[("x-probe", "mirror-probe")],
    );
    let answered_by = r.seen().map(|s| s.backend);
    c.check(r.status == 200 && answered_by.as_deref() == Some("echo"), || {
        format!(
            "RequestMirror: the client gets the primary backend's answer: status {}, from {answered_by:?}",
            r.status
        )
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    let copy = loop {
        let copy = env
            .backends
            .mirror
            .requests()
            .into_iter()
            .find(|s| s.header("x-probe") == Some("mirror-probe"));
        if copy.is_some() || Instant::now() > deadline {
            break copy;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    c.check(
        copy.as_ref()
            .is_some_and(|s| s.path == "/mirror/copy?n=1" && s.method == "GET"),
        || {
            format!(
                "RequestMirror: the mirror backend gets a copy of GET /mirror/copy?n=1: {copy:?}"
            )
        },
    );
    c.check(env.backends.mirror.requests().len() == 1, || {
        format!(
            "only the mirrored rule's request reached the mirror: {:?}",
            env.backends.mirror.requests()
        )
    });
}

/// Waits until the mirror backend's count of requests under `prefix` stops
/// changing (mirrored requests are sent asynchronously), and returns it.
fn settled_mirror_count(env: &Env, prefix: &str) -> usize {
    let count = || {
        env.backends
            .mirror
            .requests()
            .iter()
            .filter(|s| s.path.starts_with(prefix))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = count();
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = count();
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

fn mirror_fractions(env: &Env, c: &mut Checks) {
    for (path, n, range, what) in [
        ("/mirror-half", 400, 140..=260, "percent: 50"),
        ("/mirror-quarter", 400, 50..=150, "fraction: 1/4"),
    ] {
        let counts = env.tally("filters.test", path, n);
        c.check(counts.get("echo") == Some(&n), || {
            format!("RequestMirror {what}: every client answer comes from the primary: {counts:?}")
        });
        let mirrored = settled_mirror_count(env, path);
        c.check(range.contains(&mirrored), || {
            format!("RequestMirror {what}: {mirrored} of {n} requests mirrored, expected {range:?}")
        });
    }
}

fn cors(env: &Env, c: &mut Checks) {
    let preflight = |origin: &str| {
        env.send(
            "OPTIONS",
            "filters.test",
            "/cors/x",
            &[
                ("origin", origin),
                ("access-control-request-method", "PUT"),
                ("access-control-request-headers", "x-custom"),
            ],
        )
    };
    for origin in ["https://app.test", "https://a.good.test"] {
        let r = preflight(origin);
        c.check(
            r.status == 200
                && r.header("access-control-allow-origin") == Some(origin)
                && r.header("access-control-allow-methods")
                    .is_some_and(|m| m.contains("PUT"))
                && r.header("access-control-max-age") == Some("600")
                && r.seen().is_none(),
            || format!("CORS preflight from {origin} is answered by Envoy and allowed: {r:?}"),
        );
    }
    for origin in [
        "https://evil.test",
        "http://app.test",
        "https://good.test.evil",
    ] {
        let r = preflight(origin);
        c.check(
            r.header("access-control-allow-origin").is_none()
                && r.seen().is_none()
                && [200, 204, 403].contains(&r.status),
            || format!("CORS preflight from {origin} is refused by Envoy, not passed on: {r:?}"),
        );
    }
    let r = env.send(
        "GET",
        "filters.test",
        "/cors/x",
        &[("origin", "https://app.test")],
    );
    c.check(
        r.status == 200
            && r.seen().is_some()
            && r.header("access-control-allow-origin") == Some("https://app.test"),
        || format!("CORS: an allowed origin's GET reaches the backend with CORS headers: {r:?}"),
    );
}

fn timeouts(env: &Env, c: &mut Checks) {
    let mut timed = |path: &str, delay: &str, want: u16, within: Duration| {
        let start = Instant::now();
        let r = env.send("GET", "filters.test", path, &[("x-delay-ms", delay)]);
        let took = start.elapsed();
        c.check(r.status == want && took < within, || {
            format!(
                "GET filters.test{path} with a backend taking {delay} ms: expected {want} within \
                 {within:?}, got {} after {took:?}",
                r.status
            )
        });
    };
    // timeouts.request 500ms
    timed("/slow", "2000", 504, Duration::from_millis(1500));
    timed("/slow", "50", 200, Duration::from_millis(1500));
    // timeouts.backendRequest 300ms (request 5s)
    timed("/slow-backend", "1500", 504, Duration::from_millis(1200));
    timed("/slow-backend", "50", 200, Duration::from_millis(1200));
}

fn weights(env: &Env, c: &mut Checks) {
    let counts = env.tally("weights.test", "/", 1000);
    let wa = counts.get("wa").copied().unwrap_or(0);
    let wb = counts.get("wb").copied().unwrap_or(0);
    c.check(wa + wb == 1000, || {
        format!("weights 3:1: every request reaches wa or wb: {counts:?}")
    });
    c.check((680..=820).contains(&wa), || {
        format!("weights 3:1: wa gets 75% ± 7% of 1000 requests: {counts:?}")
    });
}

fn zero_weights_and_backend_filters(env: &Env, c: &mut Checks) {
    let counts = env.tally("weights0.test", "/", 200);
    c.check(counts.get("wb") == Some(&200), || {
        format!("a backend of weight 0 gets no request: {counts:?}")
    });
    let r = env.get("zero.test", "/");
    c.check(r.status == 500, || {
        format!(
            "a rule whose backends all weigh 0 answers 500, got {}",
            r.status
        )
    });

    let mut by_backend = BTreeMap::<String, usize>::new();
    for _ in 0..100 {
        let r = env.get("perbackend.test", "/");
        let seen = r.seen();
        let key = match &seen {
            Some(s) => format!(
                "{} saw x-which={:?}, client got x-resp-which={:?}",
                s.backend,
                s.header_values("x-which"),
                r.header("x-resp-which")
            ),
            None => format!("status {}", r.status),
        };
        *by_backend.entry(key).or_default() += 1;
    }
    let good = [
        "wa saw x-which=[\"a\"], client got x-resp-which=Some(\"a\")",
        "wb saw x-which=[\"b\"], client got x-resp-which=Some(\"b\")",
    ];
    c.check(
        by_backend.keys().all(|k| good.contains(&k.as_str())) && by_backend.len() == 2,
        || format!("backendRef filters apply to their own backend only: {by_backend:?}"),
    );
}

/// What an edge proxy must not let through: an escaped slash that would take
/// a request past the route of the path it decodes to, and header names
/// with underscores (which many backends read as dashes).
fn edge_defaults(env: &Env, c: &mut Checks) {
    let get = |path| ("GET", "edge.test", path);
    let none: &[(&str, &str)] = &[];
    c.rule(env, get("/admin/x"), none, Some("admin"));
    c.rule(env, get("/adminx"), none, Some("public"));
    // Envoy unescapes %2F, normalizes, and sends the client to the result
    // (a relative Location), which then routes as usual.
    for (escaped, location) in [
        ("/admin%2Fx", "/admin/x"),
        ("/admin%2fx?y=1", "/admin/x?y=1"),
        ("/admin%2F..%2Fx", "/x"),
    ] {
        let before = env.backends.echo.requests().len();
        let r = env.get("edge.test", escaped);
        c.check(
            r.status == 307 && r.header("location") == Some(location),
            || {
                format!(
                    "GET edge.test{escaped}: expected 307 to {location}, got {} to {:?}",
                    r.status,
                    r.header("location")
                )
            },
        );
        c.check(env.backends.echo.requests().len() == before, || {
            format!("GET edge.test{escaped} reached a backend")
        });
    }
    c.rule(env, get("/admin/x?y=1"), none, Some("admin"));
    for (name, value) in [("x_foo", "1"), ("X_Forwarded_For", "10.0.0.1")] {
        let before = env.backends.echo.requests().len();
        let r = env.send("GET", "edge.test", "/", &[(name, value)]);
        c.check(r.status == 400, || {
            format!(
                "GET edge.test/ with header {name}: expected 400, got {}",
                r.status
            )
        });
        c.check(env.backends.echo.requests().len() == before, || {
            format!("GET edge.test/ with header {name} reached a backend")
        });
    }
    // Dashes are fine.
    c.rule(env, get("/"), &[("x-foo", "1")], Some("public"));
}

/// A client that sends part of a request head and then nothing: Envoy
/// answers 408 and closes once the request-header timeout has passed. Runs
/// on its own thread while the other checks go on; the result is what
/// happened, or what differed.
fn slow_headers(port: u16) -> std::thread::JoinHandle<Result<(), String>> {
    use std::io::{Read, Write};
    std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port))
            .map_err(|e| format!("connect: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let started = Instant::now();
        s.write_all(b"GET / HTTP/1.1\r\nhost: edge.test\r\nx-slow: ")
            .map_err(|e| format!("write: {e}"))?;
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        let waited = started.elapsed();
        let text = String::from_utf8_lossy(&answer);
        let timeout = portico::translate::encode::listener::REQUEST_HEADERS_TIMEOUT;
        if !text.starts_with("HTTP/1.1 408") {
            return Err(format!(
                "a client that never finishes its headers: expected 408, got {:?} after {waited:?}",
                text.lines().next()
            ));
        }
        if waited < timeout - Duration::from_millis(500) || waited > timeout * 2 {
            return Err(format!(
                "a client that never finishes its headers got 408 after {waited:?}, expected about {timeout:?}"
            ));
        }
        Ok(())
    })
}

fn invalid_backends(env: &Env, c: &mut Checks) {
    let r = env.get("invalid.test", "/missing");
    c.check(r.status == 500, || {
        format!(
            "a rule whose only backend is a missing Service answers 500, got {}",
            r.status
        )
    });
    let counts = env.tally("invalid.test", "/half", 1000);
    let errors = counts.get("status 500").copied().unwrap_or(0);
    let ok = counts.get("echo").copied().unwrap_or(0);
    c.check(errors + ok == 1000, || {
        format!("half-invalid backends: only 500 or the valid backend: {counts:?}")
    });
    c.check((430..=570).contains(&errors), || {
        format!("half-invalid backends: 50% ± 7% of 1000 requests get 500: {counts:?}")
    });
}

#[test]
fn traffic_through_envoy() {
    let started = Instant::now();
    let env = Env::start();
    let mut c = Checks::default();
    let slow = slow_headers(env.port);
    path_matching(&env, &mut c);
    header_query_method_matching(&env, &mut c);
    hostnames(&env, &mut c);
    header_modifiers(&env, &mut c);
    redirects(&env, &mut c);
    rewrites(&env, &mut c);
    mirror(&env, &mut c);
    mirror_fractions(&env, &mut c);
    cors(&env, &mut c);
    timeouts(&env, &mut c);
    weights(&env, &mut c);
    zero_weights_and_backend_filters(&env, &mut c);
    invalid_backends(&env, &mut c);
    edge_defaults(&env, &mut c);
    let slow = slow
        .join()
        .unwrap_or_else(|_| Err("the slow client panicked".into()));
    c.check(slow.is_ok(), || slow.err().unwrap_or_default());
    eprintln!("{} checks in {:?}", c.count, started.elapsed());
    c.finish("traffic");
}
