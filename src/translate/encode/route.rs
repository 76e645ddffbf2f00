//! One RouteConfiguration per Gateway port: a virtual host per hostname, routes
//! in precedence order, each rule's filters turned into Envoy route settings.

use envoy_types::pb::envoy::config::core::v3::RuntimeFractionalPercent;
use envoy_types::pb::envoy::config::core::v3::{
    HeaderValue, HeaderValueOption, header_value_option,
};
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, HeaderMatcher, QueryParameterMatcher, RedirectAction, RetryPolicy, Route,
    RouteAction, RouteConfiguration, RouteMatch, VirtualHost, WeightedCluster, header_matcher,
    query_parameter_matcher, redirect_action, retry_policy, route, route_action, route_match,
    weighted_cluster,
};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    RegexMatchAndSubstitute, RegexMatcher, StringMatcher, string_matcher,
};
use envoy_types::pb::envoy::r#type::v3::{FractionalPercent, fractional_percent};
use envoy_types::pb::google::protobuf::{BoolValue, UInt32Value};

use prost::Message;

use super::{any, duration};
use crate::translate::compile::http::filters::{Cors, HeaderMods, PathReplace, Redirect, Rewrite};
use crate::translate::compile::http::matches::{PathMatch, StringMatch};
use crate::translate::compile::http::{RuleModel, WeightedBackend};
use crate::translate::memo::GatewayScope;
use crate::translate::tables::http::{PortRoutes, RouteEntry};

/// Cluster name for a backend that did not resolve. No such cluster exists,
/// so Envoy answers its share of traffic with 500.
pub const INVALID_BACKEND: &str = "portico/invalid-backend";

/// Field numbers of the repeated fields filled by streaming.
const ROUTE_CONFIGURATION_VIRTUAL_HOSTS: u32 = 2;
const VIRTUAL_HOST_ROUTES: u32 = 3;

/// The encoded RouteConfiguration of one port.
///
/// Routes are encoded one at a time and appended to their virtual host's
/// bytes, and each virtual host to the configuration's: a repeated message
/// field is just its elements' encodings one after another, so the result is
/// the same message without ever holding thousands of route structs at once.
pub fn route_configuration(
    name: String,
    table: &PortRoutes<'_>,
    memo: &mut GatewayScope<'_>,
) -> Vec<u8> {
    encode_configuration(name, table, memo, |_| true, std::iter::empty())
}

/// The route configuration of one listener of an HTTPS port: the hostnames
/// it owns, and for every other hostname (those of the port's other
/// listeners, and any other name) a virtual host answering 421 Misdirected
/// Request. A client reusing a connection, whose certificate and SNI chose
/// this listener, for a host of another listener is told to connect anew.
pub fn listener_route_configuration(
    name: String,
    table: &PortRoutes<'_>,
    listener: usize,
    memo: &mut GatewayScope<'_>,
) -> Vec<u8> {
    let owned_by = |host: &String| table.owners.get(host) == Some(&listener);
    let mut misdirected: Vec<&String> = table.hosts.keys().filter(|h| !owned_by(h)).collect();
    let any = "*".to_string();
    if !table.hosts.keys().any(|h| *h == any) {
        misdirected.push(&any);
    }
    encode_configuration(name, table, memo, owned_by, misdirected.into_iter())
}

fn encode_configuration<'h>(
    name: String,
    table: &PortRoutes<'_>,
    memo: &mut GatewayScope<'_>,
    served: impl Fn(&String) -> bool,
    misdirected: impl Iterator<Item = &'h String>,
) -> Vec<u8> {
    let mut out = RouteConfiguration {
        name,
        validate_clusters: Some(BoolValue { value: false }),
        // `Host: a.example:1234` is matched as `a.example`, and forwarded
        // unchanged (the backend sees the port the client sent).
        ignore_port_in_host_matching: true,
        ..RouteConfiguration::default()
    }
    .encode_to_vec();
    let mut route = Vec::new();
    for (host, entries) in table.hosts.iter().filter(|(h, _)| served(h)) {
        let vhost = memo.virtual_host(table.port, host, entries, |vhost| {
            VirtualHost {
                name: host.clone(),
                domains: vec![host.clone()],
                ..VirtualHost::default()
            }
            .encode_raw(vhost);
            for entry in entries {
                route.clear();
                encode_route(entry, table.port, &mut route);
                append_message_field(vhost, VIRTUAL_HOST_ROUTES, &route);
            }
        });
        append_message_field(&mut out, ROUTE_CONFIGURATION_VIRTUAL_HOSTS, vhost);
    }
    for host in misdirected {
        let answer = VirtualHost {
            name: format!("misdirected:{host}"),
            domains: vec![host.clone()],
            routes: vec![Route {
                r#match: Some(RouteMatch {
                    path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
                    ..RouteMatch::default()
                }),
                action: Some(route::Action::DirectResponse(DirectResponseAction {
                    status: 421,
                    ..DirectResponseAction::default()
                })),
                ..Route::default()
            }],
            ..VirtualHost::default()
        };
        append_message_field(
            &mut out,
            ROUTE_CONFIGURATION_VIRTUAL_HOSTS,
            &answer.encode_to_vec(),
        );
    }
    out
}

fn append_message_field(buf: &mut Vec<u8>, tag: u32, message: &[u8]) {
    prost::encoding::encode_key(tag, prost::encoding::WireType::LengthDelimited, buf);
    prost::encoding::encode_varint(message.len() as u64, buf);
    buf.extend_from_slice(message);
}

fn string_matcher(m: &StringMatch) -> StringMatcher {
    let pattern = match m {
        StringMatch::Exact(v) => string_matcher::MatchPattern::Exact(v.to_string()),
        StringMatch::Regex(v) => string_matcher::MatchPattern::SafeRegex(regex(v)),
    };
    StringMatcher {
        match_pattern: Some(pattern),
        ignore_case: false,
    }
}

fn regex(pattern: &str) -> RegexMatcher {
    RegexMatcher {
        regex: pattern.to_string(),
        ..RegexMatcher::default()
    }
}

fn route_match(entry: &RouteEntry<'_>) -> RouteMatch {
    let m = entry.matcher();
    let path = match &m.path {
        PathMatch::Exact(v) => route_match::PathSpecifier::Path(v.clone()),
        PathMatch::Prefix(v) if v == "/" => route_match::PathSpecifier::Prefix("/".into()),
        PathMatch::Prefix(v) => route_match::PathSpecifier::PathSeparatedPrefix(v.clone()),
        PathMatch::Regex(v) => route_match::PathSpecifier::SafeRegex(regex(v)),
    };
    let mut headers: Vec<HeaderMatcher> = m
        .headers
        .iter()
        .map(|(name, value)| HeaderMatcher {
            name: name.to_string(),
            header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(
                string_matcher(value),
            )),
            ..HeaderMatcher::default()
        })
        .collect();
    if let Some(method) = m.method {
        headers.push(HeaderMatcher {
            name: ":method".into(),
            header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(
                string_matcher(&StringMatch::Exact(method.into())),
            )),
            ..HeaderMatcher::default()
        });
    }
    RouteMatch {
        path_specifier: Some(path),
        headers,
        query_parameters: m
            .query_params
            .iter()
            .map(|(name, value)| QueryParameterMatcher {
                name: name.to_string(),
                query_parameter_match_specifier: Some(
                    query_parameter_matcher::QueryParameterMatchSpecifier::StringMatch(
                        string_matcher(value),
                    ),
                ),
            })
            .collect(),
        ..RouteMatch::default()
    }
}

fn header_options(mods: &HeaderMods) -> Vec<HeaderValueOption> {
    let option = |(k, v): &(String, String), action: header_value_option::HeaderAppendAction| {
        HeaderValueOption {
            header: Some(HeaderValue {
                key: k.clone(),
                value: v.clone(),
                ..HeaderValue::default()
            }),
            append_action: action as i32,
            ..HeaderValueOption::default()
        }
    };
    mods.set
        .iter()
        .map(|h| {
            option(
                h,
                header_value_option::HeaderAppendAction::OverwriteIfExistsOrAdd,
            )
        })
        .chain(mods.add.iter().map(|h| {
            option(
                h,
                header_value_option::HeaderAppendAction::AppendIfExistsOrAdd,
            )
        }))
        .collect()
}

fn names(list: &[String]) -> Vec<String> {
    list.to_vec()
}

/// `httproute/<namespace>/<name>/rule/<index>[/<rule name>]/match/<index>`:
/// unique per route entry, readable in Envoy's config dump and logs.
fn route_name(entry: &RouteEntry<'_>) -> String {
    use std::fmt::Write;
    let key = &entry.route.head.key;
    let rule_name = entry.rule.name.as_deref().unwrap_or_default();
    let mut name =
        String::with_capacity(40 + key.namespace.len() + key.name.len() + rule_name.len());
    name.push_str("httproute/");
    name.push_str(&key.namespace);
    name.push('/');
    name.push_str(&key.name);
    // Writing into a String cannot fail.
    let _ = write!(name, "/rule/{}", entry.rule.index);
    if !rule_name.is_empty() {
        name.push('/');
        name.push_str(rule_name);
    }
    let _ = write!(name, "/match/{}", entry.match_index);
    name
}

/// Encodes one route into `buf`. The action is encoded after the rest of the
/// route instead of being moved into it: route structs are large, and moving
/// thousands of them costs more than building them.
fn encode_route(entry: &RouteEntry<'_>, listener_port: i32, buf: &mut Vec<u8>) {
    let rule = entry.rule;
    let f = &rule.filters;
    let r = Route {
        name: route_name(entry),
        r#match: Some(route_match(entry)),
        request_headers_to_add: header_options(&f.request_headers),
        request_headers_to_remove: names(&f.request_headers.remove),
        response_headers_to_add: header_options(&f.response_headers),
        response_headers_to_remove: names(&f.response_headers.remove),
        typed_per_filter_config: f
            .cors
            .iter()
            .map(|cors| {
                (
                    "envoy.filters.http.cors".to_string(),
                    any(&cors_policy(cors)),
                )
            })
            .collect(),
        ..Route::default()
    };
    let current_prefix = match &entry.matcher().path {
        PathMatch::Prefix(p) => Some(p.as_str()),
        _ => None,
    };
    r.encode_raw(buf);
    let action = if let Some(redirect) = &f.redirect {
        route::Action::Redirect(redirect_action(redirect, current_prefix, listener_port))
    } else if f.broken_reference {
        internal_error()
    } else {
        match route_action(rule, current_prefix) {
            Some(action) => route::Action::Route(action),
            None => internal_error(),
        }
    };
    action.encode(buf);
}

fn internal_error() -> route::Action {
    route::Action::DirectResponse(DirectResponseAction {
        status: 500,
        ..DirectResponseAction::default()
    })
}

/// Rewrites a matched prefix: `/` as replacement strips the prefix (and its
/// separator); any other replacement swaps the prefix element-wise.
fn prefix_rewrite(
    matched: Option<&str>,
    replacement: &str,
) -> (String, Option<RegexMatchAndSubstitute>) {
    let matched = matched.unwrap_or("/");
    let replacement = replacement.trim_end_matches('/');
    if matched == "/" {
        let substitution = format!("{replacement}/");
        return (String::new(), Some(substitute("^/", &substitution)));
    }
    if replacement.is_empty() {
        let pattern = format!("^{}/*", regex::escape(matched));
        return (String::new(), Some(substitute(&pattern, "/")));
    }
    (replacement.to_string(), None)
}

fn substitute(pattern: &str, substitution: &str) -> RegexMatchAndSubstitute {
    RegexMatchAndSubstitute {
        pattern: Some(regex(pattern)),
        substitution: substitution.to_string(),
    }
}

/// The port a redirect's Location carries: the filter's port, else the
/// scheme's well-known port when the scheme changes, else the listener's port.
/// Host reaches Envoy as the client sent it, and Envoy keeps its port unless
/// one is named. Clients of a listener on 80 or 443 send no port, so there a
/// port that is the default of the Location's scheme is left out (0); on
/// other listeners Host carries the listener's port, so the port is named,
/// even 443 for https.
fn redirect_port(r: &Redirect, listener_port: i32) -> u32 {
    let well_known = |scheme: &str| if scheme == "https" { 443 } else { 80 };
    let listener = u32::try_from(listener_port).unwrap_or(0);
    let port = match (r.port, r.scheme) {
        (Some(p), _) => u32::from(p),
        (None, Some(scheme)) => well_known(scheme),
        (None, None) => listener,
    };
    let client_sends_no_port = matches!(listener, 80 | 443);
    if client_sends_no_port && port == well_known(r.scheme.unwrap_or("http")) {
        0
    } else {
        port
    }
}

fn redirect_action(r: &Redirect, matched: Option<&str>, listener_port: i32) -> RedirectAction {
    use redirect_action::RedirectResponseCode as Code;
    let response_code = match r.status_code {
        301 => Code::MovedPermanently,
        303 => Code::SeeOther,
        307 => Code::TemporaryRedirect,
        308 => Code::PermanentRedirect,
        _ => Code::Found,
    };
    let path_rewrite_specifier = r.path.as_ref().map(|p| match p {
        PathReplace::Full(v) => redirect_action::PathRewriteSpecifier::PathRedirect(v.clone()),
        PathReplace::Prefix(v) => match prefix_rewrite(matched, v) {
            (_, Some(re)) => redirect_action::PathRewriteSpecifier::RegexRewrite(re),
            (prefix, None) => redirect_action::PathRewriteSpecifier::PrefixRewrite(prefix),
        },
    });
    RedirectAction {
        host_redirect: r.hostname.clone().unwrap_or_default(),
        port_redirect: redirect_port(r, listener_port),
        response_code: response_code as i32,
        scheme_rewrite_specifier: r
            .scheme
            .map(|s| redirect_action::SchemeRewriteSpecifier::SchemeRedirect(s.to_string())),
        path_rewrite_specifier,
        ..RedirectAction::default()
    }
}

fn apply_rewrite(action: &mut RouteAction, rewrite: &Rewrite, matched: Option<&str>) {
    if let Some(host) = &rewrite.hostname {
        action.host_rewrite_specifier = Some(
            route_action::HostRewriteSpecifier::HostRewriteLiteral(host.clone()),
        );
    }
    match &rewrite.path {
        None => {}
        Some(PathReplace::Full(v)) => action.regex_rewrite = Some(substitute("^/.*$", v)),
        Some(PathReplace::Prefix(v)) => {
            let (prefix, re) = prefix_rewrite(matched, v);
            action.prefix_rewrite = prefix;
            action.regex_rewrite = re;
        }
    }
}

fn cluster_name(b: &WeightedBackend) -> String {
    b.cluster
        .as_ref()
        .map_or_else(|| INVALID_BACKEND.to_string(), |c| c.name.clone())
}

fn cluster_weight(b: &WeightedBackend) -> weighted_cluster::ClusterWeight {
    weighted_cluster::ClusterWeight {
        name: cluster_name(b),
        weight: Some(UInt32Value { value: b.weight }),
        request_headers_to_add: header_options(&b.request_headers),
        request_headers_to_remove: names(&b.request_headers.remove),
        response_headers_to_add: header_options(&b.response_headers),
        response_headers_to_remove: names(&b.response_headers.remove),
        ..weighted_cluster::ClusterWeight::default()
    }
}

/// The forwarding action of a rule, or `None` when no backend may receive
/// traffic (the rule then answers 500).
fn route_action(rule: &RuleModel, matched: Option<&str>) -> Option<RouteAction> {
    let live: Vec<&WeightedBackend> = rule.backends.iter().filter(|b| b.weight > 0).collect();
    if live.is_empty() {
        return None;
    }
    let plain = |b: &WeightedBackend| b.request_headers.is_empty() && b.response_headers.is_empty();
    let cluster_specifier = match live.as_slice() {
        [only] if plain(only) => route_action::ClusterSpecifier::Cluster(cluster_name(only)),
        _ => route_action::ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: live.iter().map(|b| cluster_weight(b)).collect(),
            ..WeightedCluster::default()
        }),
    };
    let mut action = RouteAction {
        cluster_specifier: Some(cluster_specifier),
        cluster_not_found_response_code:
            route_action::ClusterNotFoundResponseCode::InternalServerError as i32,
        request_mirror_policies: rule
            .filters
            .mirrors
            .iter()
            .map(|m| route_action::RequestMirrorPolicy {
                cluster: m.cluster.name.clone(),
                runtime_fraction: m.per_million.map(|n| RuntimeFractionalPercent {
                    default_value: Some(FractionalPercent {
                        numerator: n,
                        denominator: fractional_percent::DenominatorType::Million as i32,
                    }),
                    ..RuntimeFractionalPercent::default()
                }),
                ..route_action::RequestMirrorPolicy::default()
            })
            .collect(),
        ..RouteAction::default()
    };
    if let Some(rewrite) = &rule.filters.rewrite {
        apply_rewrite(&mut action, rewrite, matched);
    }
    let t = &rule.timeouts;
    action.timeout = t.request.or(t.backend_request).map(duration);
    if rule.retry.is_some() || (t.request.is_some() && t.backend_request.is_some()) {
        let mut policy = RetryPolicy {
            num_retries: Some(UInt32Value { value: 0 }),
            per_try_timeout: t
                .backend_request
                .filter(|_| t.request.is_some())
                .map(duration),
            ..RetryPolicy::default()
        };
        if let Some(retry) = &rule.retry {
            policy.num_retries = Some(UInt32Value {
                value: retry.attempts,
            });
            policy.retry_on = if retry.codes.is_empty() {
                "5xx,connect-failure,refused-stream".into()
            } else {
                "retriable-status-codes,connect-failure,refused-stream".into()
            };
            policy.retriable_status_codes = retry.codes.clone();
            policy.retry_back_off =
                retry
                    .backoff
                    .filter(|b| !b.is_zero())
                    .map(|b| retry_policy::RetryBackOff {
                        base_interval: Some(duration(b)),
                        ..retry_policy::RetryBackOff::default()
                    });
        }
        action.retry_policy = Some(policy);
    }
    Some(action)
}

/// The Gateway API default for `cors.maxAge`, in seconds.
const DEFAULT_CORS_MAX_AGE: i32 = 5;

fn cors_policy(c: &Cors) -> CorsPolicy {
    CorsPolicy {
        allow_origin_string_match: c.allow_origins.iter().map(string_matcher).collect(),
        allow_methods: c.allow_methods.join(","),
        allow_headers: c.allow_headers.join(","),
        expose_headers: c.expose_headers.join(","),
        max_age: c.max_age.unwrap_or(DEFAULT_CORS_MAX_AGE).to_string(),
        allow_credentials: c.allow_credentials.then_some(BoolValue { value: true }),
        // A preflight from an origin not allowed is answered by Envoy (200,
        // no CORS headers), never passed to the backend as a plain OPTIONS.
        forward_not_matching_preflights: Some(BoolValue { value: false }),
        ..CorsPolicy::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redirect(scheme: Option<&'static str>, port: Option<u16>) -> Redirect {
        Redirect {
            scheme,
            hostname: None,
            port,
            path: None,
            status_code: 302,
        }
    }

    #[test]
    fn a_default_port_is_left_out_only_where_clients_send_none() {
        // Listeners on 80 and 443: Host carries no port, a default one is left out.
        assert_eq!(redirect_port(&redirect(Some("https"), None), 80), 0);
        assert_eq!(redirect_port(&redirect(Some("http"), None), 443), 0);
        assert_eq!(redirect_port(&redirect(None, None), 80), 0);
        assert_eq!(
            redirect_port(&redirect(Some("https"), Some(8443)), 80),
            8443
        );
        // Elsewhere Host carries the listener's port: the port is named.
        assert_eq!(redirect_port(&redirect(Some("https"), None), 8080), 443);
        assert_eq!(redirect_port(&redirect(None, None), 8080), 8080);
        assert_eq!(redirect_port(&redirect(None, Some(80)), 8080), 80);
    }
}
