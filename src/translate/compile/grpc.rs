//! GRPCRoutes, served as the HTTP routes they are on the wire. A gRPC call is
//! an HTTP/2 POST to `/<service>/<method>`, so each GRPCRoute rule is first
//! written as an HTTPRoute rule (method matches become path matches, headers,
//! filters and backends carry over) and then compiled by `http` like any
//! HTTPRoute rule, under the GRPCRoute's own kind. Its backends are spoken to
//! in HTTP/2 (`UpstreamProtocol::H2c`).
//!
//! | method match | path match |
//! |---|---|
//! | Exact service and method | Exact `/S/M` |
//! | Exact service | PathPrefix `/S` (whole segments) |
//! | Exact method | RegularExpression `/[^/]+/M` |
//! | RegularExpression | RegularExpression `/(S)/(M)`, `[^/]+` for a missing part |

use gateway_api::experimental::grpcroutes::{
    GrpcRoute, GrpcRouteRules, GrpcRouteRulesMatchesMethod, GrpcRouteRulesMatchesMethodType,
};
use gateway_api::experimental::httproutes::HttpRouteRules;
use serde_json::{Value, json};

use crate::identity::GATEWAY_GROUP;
use crate::translate::compile::backends::{BackendResolver, Referrer};
use crate::translate::compile::http::matches::check_regex;
use crate::translate::compile::http::{HttpRouteModel, RouteContext, compile_rule, hostname_error};
use crate::translate::compile::routes::{RouteHead, RouteKind, parent_refs};
use crate::translate::field_path::FieldPath;

/// Each rule of a GRPCRoute as an HTTPRoute rule, or why it cannot be one.
/// A route without rules has one rule without backends.
pub fn http_rules(route: &GrpcRoute) -> Vec<Result<HttpRouteRules, String>> {
    match route.spec.rules.as_deref() {
        Some(rules) if !rules.is_empty() => rules
            .iter()
            .enumerate()
            .map(|(i, r)| http_rule(i, r))
            .collect(),
        _ => vec![Ok(HttpRouteRules::default())],
    }
}

/// Compiles a GRPCRoute: its rules written as HTTPRoute rules
/// (`http_rules`), then compiled as those.
pub fn compile_route(resolver: &mut BackendResolver<'_>, route: &GrpcRoute) -> HttpRouteModel {
    let rules = http_rules(route);
    let namespace = route.metadata.namespace.as_deref().unwrap_or_default();
    let hostnames: &[String] = route.spec.hostnames.as_deref().unwrap_or_default();
    let parents = route.spec.parent_refs.as_deref().unwrap_or_default();
    let mut head = RouteHead::new(RouteKind::Grpc, route, hostnames, parent_refs!(parents));
    head.route_error = hostname_error(hostnames);
    let mut ctx = RouteContext {
        resolver,
        referrer: Referrer {
            group: GATEWAY_GROUP,
            kind: "GRPCRoute",
            namespace,
        },
        unresolved: Vec::new(),
    };
    let mut compiled = Vec::new();
    let originals = route.spec.rules.as_deref().unwrap_or_default();
    for (index, rule) in rules.iter().enumerate() {
        let outcome = rule
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|r| compile_rule(&mut ctx, index, r));
        match outcome {
            Ok(mut r) => {
                let methods = originals
                    .get(index)
                    .and_then(|o| o.matches.as_deref())
                    .unwrap_or_default();
                for (j, m) in r.matches.iter_mut().enumerate() {
                    let method = methods.get(j).and_then(|x| x.method.as_ref());
                    let len = |v: Option<&String>| v.map_or(0, String::len);
                    m.grpc = Some(method.map_or((0, 0), |x| {
                        (len(x.service.as_ref()), len(x.method.as_ref()))
                    }));
                }
                compiled.push(r);
            }
            Err(e) => head.invalid_rules.push(e),
        }
    }
    head.unresolved = std::mem::take(&mut ctx.unresolved);
    head.services = ctx.resolver.take_referenced();
    HttpRouteModel {
        head,
        rules: compiled,
    }
}

fn http_rule(index: usize, rule: &GrpcRouteRules) -> Result<HttpRouteRules, String> {
    let rules = FieldPath::Root("spec.rules");
    let field = rules.index(index);
    let matches_field = field.key("matches");
    let mut matches = Vec::new();
    for (i, m) in rule.matches.iter().flatten().enumerate() {
        let match_field = matches_field.index(i);
        let mut out = json!({});
        if let Some(method) = &m.method {
            out["path"] = method_path(&match_field.key("method"), method)?;
        }
        if let Some(headers) = &m.headers {
            out["headers"] = to_value(headers);
        }
        matches.push(out);
    }
    let mut value = json!({
        "name": rule.name,
        "filters": to_value(&rule.filters),
        "backendRefs": to_value(&rule.backend_refs),
        "sessionPersistence": to_value(&rule.session_persistence),
    });
    if !matches.is_empty() {
        value["matches"] = Value::Array(matches);
    }
    serde_json::from_value(value).map_err(|e| format!("{field}: {e}"))
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// The path match of a gRPC method match.
fn method_path(field: &FieldPath<'_>, m: &GrpcRouteRulesMatchesMethod) -> Result<Value, String> {
    let service = m.service.as_deref().filter(|s| !s.is_empty());
    let method = m.method.as_deref().filter(|s| !s.is_empty());
    if service.is_none() && method.is_none() {
        return Err(format!("{field}: one of service and method is required"));
    }
    match m
        .r#type
        .clone()
        .unwrap_or(GrpcRouteRulesMatchesMethodType::Exact)
    {
        GrpcRouteRulesMatchesMethodType::Exact => {
            if let Some(s) = service.filter(|s| !is_service_name(s)) {
                return Err(format!(
                    "{field}.service: {s:?} is not a gRPC service name (dot-separated identifiers)"
                ));
            }
            if let Some(m) = method.filter(|m| !is_identifier(m)) {
                return Err(format!(
                    "{field}.method: {m:?} is not a gRPC method name (an identifier)"
                ));
            }
            Ok(match (service, method) {
                (Some(s), Some(m)) => json!({"type": "Exact", "value": format!("/{s}/{m}")}),
                (Some(s), None) => json!({"type": "PathPrefix", "value": format!("/{s}")}),
                (None, Some(m)) => json!({
                    "type": "RegularExpression",
                    "value": format!("/[^/]+/{}", regex::escape(m)),
                }),
                (None, None) => unreachable_path(),
            })
        }
        GrpcRouteRulesMatchesMethodType::RegularExpression => {
            if let Some(s) = service {
                check_regex(&field.key("service"), s)?;
            }
            if let Some(m) = method {
                check_regex(&field.key("method"), m)?;
            }
            let part = |p: Option<&str>| p.unwrap_or("[^/]+").to_string();
            Ok(json!({
                "type": "RegularExpression",
                "value": format!("/({})/({})", part(service), part(method)),
            }))
        }
    }
}

/// Both parts missing was refused above; a path that matches nothing keeps
/// this arm total without a panic.
fn unreachable_path() -> Value {
    json!({"type": "Exact", "value": "/"})
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_service_name(s: &str) -> bool {
    let s = s.strip_prefix('.').unwrap_or(s);
    !s.is_empty() && s.split('.').all(is_identifier)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(kind: &str, service: Option<&str>, method: Option<&str>) -> Result<Value, String> {
        let m: GrpcRouteRulesMatchesMethod = serde_json::from_value(json!({
            "type": kind, "service": service, "method": method,
        }))
        .expect("method match");
        method_path(&FieldPath::Root("m"), &m)
    }

    #[test]
    fn method_matches_become_path_matches() {
        assert_eq!(
            path("Exact", Some("echo.Echo"), Some("Call")),
            Ok(json!({"type": "Exact", "value": "/echo.Echo/Call"}))
        );
        assert_eq!(
            path("Exact", Some("echo.Echo"), None),
            Ok(json!({"type": "PathPrefix", "value": "/echo.Echo"}))
        );
        assert_eq!(
            path("Exact", None, Some("Call")),
            Ok(json!({"type": "RegularExpression", "value": "/[^/]+/Call"}))
        );
        assert_eq!(
            path("RegularExpression", Some("echo\\..*"), None),
            Ok(json!({"type": "RegularExpression", "value": "/(echo\\..*)/([^/]+)"}))
        );
        let bad = path("Exact", Some("echo/Echo"), None).expect_err("slash");
        assert!(bad.starts_with("m.service:"), "{bad}");
        let bad = path("RegularExpression", None, Some("(")).expect_err("regex");
        assert!(bad.starts_with("m.method:"), "{bad}");
        assert!(path("Exact", None, None).is_err());
    }
}
