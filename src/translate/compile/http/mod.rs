//! HTTPRoutes compiled into `HttpRouteModel`s: every rule validated (matches,
//! filters, backends, timeouts, retry) once per route, independent of the
//! Gateways it attaches to. A rule with an invalid value is dropped and reported
//! (`PartiallyInvalid`, or `Accepted=False` when no rule is left); a reference that
//! does not resolve keeps the rule and is reported through `ResolvedRefs`.

pub mod filters;
pub mod matches;

use std::sync::Arc;
use std::time::Duration;

use gateway_api::experimental::httproutes::{HttpRoute, HttpRouteRules};

use self::filters::{HeaderMods, RuleFilters};
use self::matches::MatchModel;
use super::backends::{BackendError, BackendRef, BackendResolver, ClusterKey, Referrer};
use super::routes::{RouteHead, RouteKind, parent_refs};
use crate::identity::GATEWAY_GROUP;
use crate::translate::field_path::FieldPath;
use crate::translate::hostnames;

/// What compiling one route needs besides the route.
pub struct RouteContext<'i, 'r> {
    pub resolver: &'r mut BackendResolver<'i>,
    pub referrer: Referrer<'r>,
    pub unresolved: Vec<BackendError>,
}

/// A compiled HTTPRoute (or GRPCRoute). It owns its values, so it can be
/// kept from one snapshot to the next (`translate::memo`).
#[derive(Clone, Debug, PartialEq)]
pub struct HttpRouteModel {
    pub head: RouteHead,
    pub rules: Vec<RuleModel>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RuleModel {
    pub index: usize,
    pub name: Option<String>,
    pub matches: Vec<MatchModel>,
    pub filters: RuleFilters,
    pub backends: Vec<WeightedBackend>,
    pub timeouts: Timeouts,
    pub retry: Option<Retry>,
}

/// A backend with its share of traffic. `cluster: None` is a reference that
/// did not resolve: its share answers 500.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightedBackend {
    pub cluster: Option<Arc<ClusterKey>>,
    pub weight: u32,
    pub request_headers: HeaderMods,
    pub response_headers: HeaderMods,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Timeouts {
    pub request: Option<Duration>,
    pub backend_request: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retry {
    pub attempts: u32,
    pub backoff: Option<Duration>,
    pub codes: Vec<u32>,
}

/// A route without rules has one rule that matches everything and has no
/// backend (so it answers 500).
static DEFAULT_RULE: std::sync::LazyLock<HttpRouteRules> =
    std::sync::LazyLock::new(HttpRouteRules::default);

pub fn compile_route(resolver: &mut BackendResolver<'_>, route: &HttpRoute) -> HttpRouteModel {
    let namespace = route.metadata.namespace.as_deref().unwrap_or_default();
    let mut ctx = RouteContext {
        resolver,
        referrer: Referrer {
            group: GATEWAY_GROUP,
            kind: "HTTPRoute",
            namespace,
        },
        unresolved: Vec::new(),
    };
    let hostnames_in: &[String] = route.spec.hostnames.as_deref().unwrap_or_default();
    let parents = route.spec.parent_refs.as_deref().unwrap_or_default();
    let mut head = RouteHead::new(RouteKind::Http, route, hostnames_in, parent_refs!(parents));
    head.route_error = hostname_error(hostnames_in);
    let mut rules = Vec::new();
    let raw_rules: &[HttpRouteRules] = match route.spec.rules.as_deref() {
        Some(r) if !r.is_empty() => r,
        _ => std::slice::from_ref(&*DEFAULT_RULE),
    };
    for (index, rule) in raw_rules.iter().enumerate() {
        match compile_rule(&mut ctx, index, rule) {
            Ok(r) => rules.push(r),
            Err(e) => head.invalid_rules.push(match &rule.name {
                Some(name) => format!("rule {name:?}: {e}"),
                None => e,
            }),
        }
    }
    head.unresolved = std::mem::take(&mut ctx.unresolved);
    head.services = ctx.resolver.take_referenced();
    HttpRouteModel { head, rules }
}

/// The first invalid entry of a route's `spec.hostnames`, if any.
pub fn hostname_error(hostnames_in: &[String]) -> Option<String> {
    hostnames_in.iter().enumerate().find_map(|(i, h)| {
        hostnames::validate(h)
            .err()
            .map(|e| format!("spec.hostnames[{i}]: {e}"))
    })
}

fn duration(field: &str, value: &str) -> Result<Duration, String> {
    let d: gateway_api::Duration = value
        .parse()
        .map_err(|e| format!("{field}: {value:?} is not a Gateway API duration: {e}"))?;
    Ok(Duration::from_millis(
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
    ))
}

pub(crate) fn compile_rule(
    ctx: &mut RouteContext<'_, '_>,
    index: usize,
    rule: &HttpRouteRules,
) -> Result<RuleModel, String> {
    let rules_field = FieldPath::Root("spec.rules");
    let field = rules_field.index(index);
    // Rule names end up in Envoy route names, and so in logs and stats.
    if let Some(name) = &rule.name {
        crate::translate::control_chars::check_text(&field.key("name"), name)?;
    }
    let matches_field = field.key("matches");
    let matches = match rule.matches.as_deref() {
        None | Some([]) => vec![MatchModel::any()],
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, m)| matches::compile(&matches_field.index(i), m))
            .collect::<Result<Vec<_>, _>>()?,
    };
    let filters = filters::compile(ctx, &field, rule.filters.as_deref().unwrap_or_default())?;
    let needs_prefix =
        |p: &Option<filters::PathReplace>| matches!(p, Some(filters::PathReplace::Prefix(_)));
    let prefix_rewrite = filters
        .redirect
        .as_ref()
        .is_some_and(|r| needs_prefix(&r.path))
        || filters
            .rewrite
            .as_ref()
            .is_some_and(|r| needs_prefix(&r.path));
    if prefix_rewrite
        && matches
            .iter()
            .any(|m| !matches!(m.path, matches::PathMatch::Prefix(_)))
    {
        return Err(format!(
            "{field}.filters: ReplacePrefixMatch needs every match of the rule to use a PathPrefix path"
        ));
    }

    let mut backends = Vec::new();
    for (i, b) in rule.backend_refs.iter().flatten().enumerate() {
        let backend_refs = field.key("backendRefs");
        let bfield = backend_refs.index(i);
        let weight = b.weight.unwrap_or(1);
        let weight = u32::try_from(weight)
            .ok()
            .filter(|w| *w <= 1_000_000)
            .ok_or_else(|| format!("{bfield}.weight: {weight} is not within 0-1000000"))?;
        let (request_headers, response_headers) =
            filters::compile_backend(&bfield, b.filters.as_deref().unwrap_or_default())?;
        let reference = BackendRef {
            group: b.group.as_deref(),
            kind: b.kind.as_deref(),
            name: &b.name,
            namespace: b.namespace.as_deref(),
            port: b.port,
        };
        let cluster = match ctx.resolver.resolve(ctx.referrer, reference) {
            Ok(c) => Some(c),
            Err(e) => {
                if e.report {
                    ctx.unresolved.push(e);
                }
                None
            }
        };
        backends.push(WeightedBackend {
            cluster,
            weight,
            request_headers,
            response_headers,
        });
    }

    let mut timeouts = Timeouts::default();
    if let Some(t) = &rule.timeouts {
        if let Some(v) = &t.request {
            timeouts.request = Some(duration(&format!("{field}.timeouts.request"), v)?);
        }
        if let Some(v) = &t.backend_request {
            timeouts.backend_request =
                Some(duration(&format!("{field}.timeouts.backendRequest"), v)?);
        }
        if let (Some(r), Some(b)) = (timeouts.request, timeouts.backend_request)
            && !r.is_zero()
            && (b.is_zero() || b > r)
        {
            return Err(format!(
                "{field}.timeouts.backendRequest must not exceed timeouts.request"
            ));
        }
    }

    let retry = match &rule.retry {
        None => None,
        Some(r) => {
            let attempts = r.attempts.unwrap_or(1);
            let attempts = u32::try_from(attempts)
                .ok()
                .filter(|a| *a <= 100)
                .ok_or_else(|| format!("{field}.retry.attempts: {attempts} is not within 0-100"))?;
            let backoff = match &r.backoff {
                Some(b) => Some(duration(&format!("{field}.retry.backoff"), b)?),
                None => None,
            };
            let mut codes = Vec::new();
            for (i, c) in r.codes.iter().flatten().enumerate() {
                let code = u32::try_from(*c)
                    .ok()
                    .filter(|c| (400..=599).contains(c))
                    .ok_or_else(|| {
                        format!("{field}.retry.codes[{i}]: {c} is not an HTTP error status")
                    })?;
                codes.push(code);
            }
            Some(Retry {
                attempts,
                backoff,
                codes,
            })
        }
    };

    if rule.session_persistence.is_some() {
        return Err(format!(
            "{field}.sessionPersistence: not supported by portico"
        ));
    }

    Ok(RuleModel {
        index,
        name: rule.name.clone(),
        matches,
        filters,
        backends,
        timeouts,
        retry,
    })
}
