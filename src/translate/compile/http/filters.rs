//! HTTPRoute filters, validated into models the Envoy builders read: header
//! modifiers (request, response, per backend), redirects, URL rewrites, mirrors
//! and CORS. Invalid values are errors naming the field; references that do not
//! resolve (mirror targets, ExtensionRef) are recorded for `ResolvedRefs`.

use std::sync::Arc;

use gateway_api::experimental::httproutes::{
    HttpRouteRulesBackendRefsFilters, HttpRouteRulesBackendRefsFiltersRequestHeaderModifier,
    HttpRouteRulesBackendRefsFiltersResponseHeaderModifier, HttpRouteRulesFilters,
    HttpRouteRulesFiltersRequestHeaderModifier, HttpRouteRulesFiltersRequestRedirectPathType,
    HttpRouteRulesFiltersRequestRedirectScheme, HttpRouteRulesFiltersResponseHeaderModifier,
    HttpRouteRulesFiltersType, HttpRouteRulesFiltersUrlRewritePathType,
};

use super::RouteContext;
use super::matches::{StringMatch, check_regex, is_header_name, lowercase};
use crate::translate::compile::backends::{self, BackendRef, ClusterKey};
use crate::translate::conditions::spec;
use crate::translate::control_chars::{check_header_value, check_text};
use crate::translate::field_path::FieldPath;

/// Headers to add, set and remove on a request or response: lowercase names,
/// values as the route writes them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderMods {
    pub add: Vec<(String, String)>,
    pub set: Vec<(String, String)>,
    pub remove: Vec<String>,
}

impl HeaderMods {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.set.is_empty() && self.remove.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathReplace {
    Full(String),
    Prefix(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    pub scheme: Option<&'static str>,
    pub hostname: Option<String>,
    pub port: Option<u16>,
    pub path: Option<PathReplace>,
    pub status_code: u16,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rewrite {
    pub hostname: Option<String>,
    pub path: Option<PathReplace>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mirror {
    pub cluster: Arc<ClusterKey>,
    /// Share of requests mirrored, in parts per million; `None` mirrors all.
    pub per_million: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cors {
    pub allow_origins: Vec<StringMatch>,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age: Option<i32>,
    pub allow_credentials: bool,
}

/// Everything the rule-level filters ask for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleFilters {
    pub request_headers: HeaderMods,
    pub response_headers: HeaderMods,
    pub redirect: Option<Redirect>,
    pub rewrite: Option<Rewrite>,
    pub mirrors: Vec<Mirror>,
    pub cors: Option<Cors>,
    /// A filter whose reference does not resolve: the rule answers 500.
    pub broken_reference: bool,
}

/// The generated API types repeat one header-modifier schema under several
/// names (request and response, rule and backend level); this reads any of them.
pub trait HeaderModifierSpec {
    fn adds(&self) -> impl Iterator<Item = (&str, &str)>;
    fn sets(&self) -> impl Iterator<Item = (&str, &str)>;
    fn removes(&self) -> &[String];
}

macro_rules! header_modifier_spec {
    ($($t:ty),* $(,)?) => {$(
        impl HeaderModifierSpec for $t {
            fn adds(&self) -> impl Iterator<Item = (&str, &str)> {
                self.add.iter().flatten().map(|h| (h.name.as_str(), h.value.as_str()))
            }
            fn sets(&self) -> impl Iterator<Item = (&str, &str)> {
                self.set.iter().flatten().map(|h| (h.name.as_str(), h.value.as_str()))
            }
            fn removes(&self) -> &[String] {
                self.remove.as_deref().unwrap_or_default()
            }
        }
    )*};
}

header_modifier_spec!(
    HttpRouteRulesFiltersRequestHeaderModifier,
    HttpRouteRulesFiltersResponseHeaderModifier,
    HttpRouteRulesBackendRefsFiltersRequestHeaderModifier,
    HttpRouteRulesBackendRefsFiltersResponseHeaderModifier,
);

fn header_name(f: &FieldPath<'_>, name: &str) -> Result<String, String> {
    if !is_header_name(name) {
        return Err(format!("{f}: {name:?} is not a valid header name"));
    }
    let lower = lowercase(name);
    if lower == "host" {
        return Err(format!(
            "{f}: the Host header cannot be modified here; use URLRewrite hostname"
        ));
    }
    Ok(lower)
}

fn header_value(f: &FieldPath<'_>, value: &str) -> Result<String, String> {
    check_header_value(f, value)?;
    Ok(value.to_string())
}

fn header_mods(field: &FieldPath<'_>, m: &impl HeaderModifierSpec) -> Result<HeaderMods, String> {
    let (add, set, remove) = (field.key("add"), field.key("set"), field.key("remove"));
    let mut out = HeaderMods::default();
    for (i, (name, value)) in m.adds().enumerate() {
        let f = add.index(i);
        out.add.push((
            header_name(&f.key("name"), name)?,
            header_value(&f.key("value"), value)?,
        ));
    }
    for (i, (name, value)) in m.sets().enumerate() {
        let f = set.index(i);
        out.set.push((
            header_name(&f.key("name"), name)?,
            header_value(&f.key("value"), value)?,
        ));
    }
    for (i, name) in m.removes().iter().enumerate() {
        out.remove.push(header_name(&remove.index(i), name)?);
    }
    Ok(out)
}

fn path_replace(
    field: &FieldPath<'_>,
    full_path: bool,
    full: Option<&String>,
    prefix: Option<&String>,
) -> Result<PathReplace, String> {
    let (value, make): (Option<&String>, fn(String) -> PathReplace) = if full_path {
        (full, PathReplace::Full)
    } else {
        (prefix, PathReplace::Prefix)
    };
    let which = if full_path {
        "replaceFullPath"
    } else {
        "replacePrefixMatch"
    };
    let Some(value) = value else {
        return Err(format!("{field}.{which}: must be set for this type"));
    };
    check_text(&field.key(which), value)?;
    // An empty prefix replacement strips the matched prefix.
    let empty_prefix = !full_path && value.is_empty();
    if !empty_prefix && (!value.starts_with('/') || value.contains(['?', '#'])) {
        return Err(format!(
            "{field}: {value:?} must be an absolute path without query or fragment"
        ));
    }
    Ok(make(value.clone()))
}

fn cors_origin(field: &FieldPath<'_>, origin: &str) -> Result<StringMatch, String> {
    check_text(field, origin)?;
    if origin == "*" {
        return Ok(StringMatch::Regex(".*".into()));
    }
    if !origin.contains('*') {
        return Ok(StringMatch::Exact(origin.to_string()));
    }
    let pattern = format!(
        "^{}$",
        origin
            .split('*')
            .map(regex::escape)
            .collect::<Vec<_>>()
            .join("[^/]*")
    );
    check_regex(field, &pattern)?;
    Ok(StringMatch::Regex(pattern))
}

/// Compiles the rule-level filters of `spec.rules[rule]`.
pub fn compile(
    ctx: &mut RouteContext<'_, '_>,
    field: &FieldPath<'_>,
    filters: &[HttpRouteRulesFilters],
) -> Result<RuleFilters, String> {
    let mut out = RuleFilters::default();
    let filters_field = field.key("filters");
    for (i, f) in filters.iter().enumerate() {
        let field = filters_field.index(i);
        let missing =
            |name: &str| format!("{field}.{name}: must be set when type is {:?}", f.r#type);
        match f.r#type {
            HttpRouteRulesFiltersType::RequestHeaderModifier => {
                let m = f
                    .request_header_modifier
                    .as_ref()
                    .ok_or_else(|| missing("requestHeaderModifier"))?;
                let mods = header_mods(&field.key("requestHeaderModifier"), m)?;
                merge(&mut out.request_headers, mods);
            }
            HttpRouteRulesFiltersType::ResponseHeaderModifier => {
                let m = f
                    .response_header_modifier
                    .as_ref()
                    .ok_or_else(|| missing("responseHeaderModifier"))?;
                let mods = header_mods(&field.key("responseHeaderModifier"), m)?;
                merge(&mut out.response_headers, mods);
            }
            HttpRouteRulesFiltersType::RequestRedirect => {
                let r = f
                    .request_redirect
                    .as_ref()
                    .ok_or_else(|| missing("requestRedirect"))?;
                let status_code = match r.status_code.unwrap_or(302) {
                    c @ (301 | 302 | 303 | 307 | 308) => c as u16,
                    other => {
                        return Err(format!(
                            "{field}.requestRedirect.statusCode: {other} is not one of 301, 302, 303, 307, 308"
                        ));
                    }
                };
                let port = match r.port {
                    None => None,
                    Some(p) => Some(u16::try_from(p).ok().filter(|p| *p > 0).ok_or_else(|| {
                        format!("{field}.requestRedirect.port: {p} is not a valid port")
                    })?),
                };
                let path = match &r.path {
                    None => None,
                    Some(p) => Some(path_replace(
                        &field.key("requestRedirect").key("path"),
                        p.r#type == HttpRouteRulesFiltersRequestRedirectPathType::ReplaceFullPath,
                        p.replace_full_path.as_ref(),
                        p.replace_prefix_match.as_ref(),
                    )?),
                };
                if let Some(h) = &r.hostname {
                    crate::translate::hostnames::validate(h)
                        .map_err(|e| format!("{field}.requestRedirect.hostname: {e}"))?;
                }
                out.redirect = Some(Redirect {
                    scheme: r.scheme.as_ref().map(|s| match s {
                        HttpRouteRulesFiltersRequestRedirectScheme::Http => "http",
                        HttpRouteRulesFiltersRequestRedirectScheme::Https => "https",
                    }),
                    hostname: r.hostname.clone(),
                    port,
                    path,
                    status_code,
                });
            }
            HttpRouteRulesFiltersType::UrlRewrite => {
                let r = f
                    .url_rewrite
                    .as_ref()
                    .ok_or_else(|| missing("urlRewrite"))?;
                if let Some(h) = &r.hostname {
                    crate::translate::hostnames::validate(h)
                        .map_err(|e| format!("{field}.urlRewrite.hostname: {e}"))?;
                }
                let path = match &r.path {
                    None => None,
                    Some(p) => Some(path_replace(
                        &field.key("urlRewrite").key("path"),
                        p.r#type == HttpRouteRulesFiltersUrlRewritePathType::ReplaceFullPath,
                        p.replace_full_path.as_ref(),
                        p.replace_prefix_match.as_ref(),
                    )?),
                };
                out.rewrite = Some(Rewrite {
                    hostname: r.hostname.clone(),
                    path,
                });
            }
            HttpRouteRulesFiltersType::RequestMirror => {
                let m = f
                    .request_mirror
                    .as_ref()
                    .ok_or_else(|| missing("requestMirror"))?;
                let per_million = match (&m.fraction, m.percent) {
                    (Some(_), Some(_)) => {
                        return Err(format!(
                            "{field}.requestMirror: set percent or fraction, not both"
                        ));
                    }
                    (Some(fr), None) => {
                        let den = fr.denominator.unwrap_or(100);
                        if den <= 0 || fr.numerator < 0 || fr.numerator > den {
                            return Err(format!(
                                "{field}.requestMirror.fraction: {}/{den} is not a fraction between 0 and 1",
                                fr.numerator
                            ));
                        }
                        Some((i64::from(fr.numerator) * 1_000_000 / i64::from(den)) as u32)
                    }
                    (None, Some(p)) => {
                        if !(0..=100).contains(&p) {
                            return Err(format!(
                                "{field}.requestMirror.percent: {p} is not within 0-100"
                            ));
                        }
                        Some(p as u32 * 10_000)
                    }
                    (None, None) => None,
                };
                let b = &m.backend_ref;
                let reference = BackendRef {
                    group: b.group.as_deref(),
                    kind: b.kind.as_deref(),
                    name: &b.name,
                    namespace: b.namespace.as_deref(),
                    port: b.port,
                };
                match ctx.resolver.resolve(ctx.referrer, reference) {
                    Ok(cluster) => out.mirrors.push(Mirror {
                        cluster,
                        per_million,
                    }),
                    Err(e) if e.report => ctx.unresolved.push(e),
                    Err(_) => {}
                }
            }
            HttpRouteRulesFiltersType::Cors => {
                let c = f.cors.as_ref().ok_or_else(|| missing("cors"))?;
                let mut cors = Cors {
                    allow_methods: c.allow_methods.clone().unwrap_or_default(),
                    allow_headers: c.allow_headers.clone().unwrap_or_default(),
                    expose_headers: c.expose_headers.clone().unwrap_or_default(),
                    max_age: c.max_age,
                    allow_credentials: c.allow_credentials.unwrap_or(false),
                    ..Cors::default()
                };
                let cors_field = field.key("cors");
                let origins = cors_field.key("allowOrigins");
                for (j, o) in c.allow_origins.iter().flatten().enumerate() {
                    cors.allow_origins.push(cors_origin(&origins.index(j), o)?);
                }
                let methods = cors_field.key("allowMethods");
                for (j, m) in cors.allow_methods.iter().enumerate() {
                    if m != "*" && !is_header_name(m) {
                        return Err(format!("{}: {m:?} is not an HTTP method", methods.index(j)));
                    }
                }
                for (j, h) in cors
                    .allow_headers
                    .iter()
                    .chain(&cors.expose_headers)
                    .enumerate()
                {
                    if h != "*" && !is_header_name(h) {
                        return Err(format!(
                            "{field}.cors: header {j} {h:?} is not a valid header name"
                        ));
                    }
                }
                out.cors = Some(cors);
            }
            HttpRouteRulesFiltersType::ExtensionRef => {
                let e = f
                    .extension_ref
                    .as_ref()
                    .ok_or_else(|| missing("extensionRef"))?;
                ctx.unresolved.push(backends::BackendError {
                    reason: spec::INVALID_KIND,
                    message: format!(
                        "{field}.extensionRef: {}/{} {:?} is not a filter kind portico knows; the rule answers 500",
                        e.group, e.kind, e.name
                    ),
                    report: true,
                });
                out.broken_reference = true;
            }
            HttpRouteRulesFiltersType::ExternalAuth => {
                return Err(format!(
                    "{field}.type: ExternalAuth is not supported by portico"
                ));
            }
        }
    }
    if out.redirect.is_some() && out.rewrite.is_some() {
        return Err(format!(
            "{filters_field}: RequestRedirect and URLRewrite cannot be combined"
        ));
    }
    Ok(out)
}

/// Backend-level filters: request and response header modifiers.
pub fn compile_backend(
    field: &FieldPath<'_>,
    filters: &[HttpRouteRulesBackendRefsFilters],
) -> Result<(HeaderMods, HeaderMods), String> {
    use gateway_api::experimental::httproutes::HttpRouteRulesBackendRefsFiltersType as T;
    let mut request = HeaderMods::default();
    let mut response = HeaderMods::default();
    let filters_field = field.key("filters");
    for (i, f) in filters.iter().enumerate() {
        let field = filters_field.index(i);
        match (
            &f.r#type,
            &f.request_header_modifier,
            &f.response_header_modifier,
        ) {
            (T::RequestHeaderModifier, Some(m), _) => {
                merge(
                    &mut request,
                    header_mods(&field.key("requestHeaderModifier"), m)?,
                );
            }
            (T::ResponseHeaderModifier, _, Some(m)) => {
                merge(
                    &mut response,
                    header_mods(&field.key("responseHeaderModifier"), m)?,
                );
            }
            (other, _, _) => {
                return Err(format!(
                    "{field}.type: {other:?} is not supported on a backendRef (RequestHeaderModifier and ResponseHeaderModifier are)"
                ));
            }
        }
    }
    Ok((request, response))
}

fn merge(into: &mut HeaderMods, more: HeaderMods) {
    into.add.extend(more.add);
    into.set.extend(more.set);
    into.remove.extend(more.remove);
}
