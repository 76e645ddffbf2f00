//! HTTPRoute matches: path (Exact, PathPrefix, RegularExpression), headers and
//! query parameters (Exact, RegularExpression) and method, validated into a
//! `MatchModel`. Regexes must compile as RE2 does; header names must be HTTP
//! tokens. Errors name the field path inside the route.

use crate::translate::control_chars::{check_header_value, check_text};
use crate::translate::field_path::FieldPath;
use gateway_api::experimental::httproutes::{
    HttpRouteRulesMatches, HttpRouteRulesMatchesHeadersType, HttpRouteRulesMatchesMethod,
    HttpRouteRulesMatchesPathType, HttpRouteRulesMatchesQueryParamsType,
};

/// How a path is matched. Values are copied from the route, so a compiled
/// route outlives the snapshot it came from (`translate::memo`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    /// Element-wise prefix, stored without a trailing slash (`/` stays `/`).
    Prefix(String),
    Regex(String),
}

impl PathMatch {
    /// The prefix `/`: every path.
    pub fn any() -> Self {
        Self::Prefix("/".to_string())
    }

    /// The value as written (a prefix without its trailing slash).
    pub fn value(&self) -> &str {
        match self {
            Self::Exact(v) | Self::Prefix(v) | Self::Regex(v) => v,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StringMatch {
    Exact(String),
    Regex(String),
}

/// One validated `matches[]` entry. Entries within a rule are ORed; everything
/// inside one entry is ANDed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchModel {
    pub path: PathMatch,
    /// Lowercase header names.
    pub headers: Vec<(String, StringMatch)>,
    pub query_params: Vec<(String, StringMatch)>,
    pub method: Option<&'static str>,
    /// For a GRPCRoute match: the lengths of its service and method, which
    /// order gRPC matches (longer service first, then longer method).
    pub grpc: Option<(usize, usize)>,
}

impl MatchModel {
    /// The match of a rule without `matches`: every request.
    pub fn any() -> Self {
        Self {
            path: PathMatch::any(),
            headers: Vec::new(),
            query_params: Vec::new(),
            method: None,
            grpc: None,
        }
    }
}

/// Whether `name` is a valid HTTP header field name (an RFC 7230 token).
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Checks a regex the way Envoy's RE2 engine will see it (`translate::re2`):
/// its grammar, RE2's repetition limits and the size of its program. The
/// error names the field.
pub fn check_regex(field: &FieldPath<'_>, pattern: &str) -> Result<(), String> {
    crate::translate::re2::check(pattern).map_err(|refusal| format!("{field}: {refusal}"))
}

/// A header name in lowercase.
pub fn lowercase(name: &str) -> String {
    name.to_ascii_lowercase()
}

pub fn compile(field: &FieldPath<'_>, m: &HttpRouteRulesMatches) -> Result<MatchModel, String> {
    let path = match &m.path {
        None => PathMatch::any(),
        Some(p) => {
            let value: &str = p.value.as_deref().unwrap_or("/");
            let kind = p
                .r#type
                .clone()
                .unwrap_or(HttpRouteRulesMatchesPathType::PathPrefix);
            match kind {
                HttpRouteRulesMatchesPathType::RegularExpression => {
                    check_regex(&field.key("path").key("value"), value)?;
                    PathMatch::Regex(value.to_string())
                }
                HttpRouteRulesMatchesPathType::Exact
                | HttpRouteRulesMatchesPathType::PathPrefix => {
                    if !value.starts_with('/') {
                        return Err(format!(
                            "{field}.path.value: {value:?} must start with \"/\""
                        ));
                    }
                    if value.contains("//") || value.contains(['?', '#']) {
                        return Err(format!(
                            "{field}.path.value: {value:?} must not contain \"//\", \"?\" or \"#\""
                        ));
                    }
                    check_text(&field.key("path").key("value"), value)?;
                    if kind == HttpRouteRulesMatchesPathType::Exact {
                        PathMatch::Exact(value.to_string())
                    } else {
                        let trimmed = value.trim_end_matches('/');
                        let prefix = if trimmed.is_empty() { "/" } else { trimmed };
                        PathMatch::Prefix(prefix.to_string())
                    }
                }
            }
        }
    };

    let mut headers: Vec<(String, StringMatch)> = Vec::new();
    let headers_field = field.key("headers");
    for (i, h) in m.headers.iter().flatten().enumerate() {
        let f = headers_field.index(i);
        if !is_header_name(&h.name) {
            return Err(format!("{f}.name: {:?} is not a valid header name", h.name));
        }
        let name = lowercase(&h.name);
        // The spec: only the first match of a repeated header name counts.
        if headers.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let value = match h
            .r#type
            .clone()
            .unwrap_or(HttpRouteRulesMatchesHeadersType::Exact)
        {
            HttpRouteRulesMatchesHeadersType::Exact => {
                check_header_value(&f.key("value"), &h.value)?;
                StringMatch::Exact(h.value.clone())
            }
            HttpRouteRulesMatchesHeadersType::RegularExpression => {
                check_regex(&f.key("value"), &h.value)?;
                StringMatch::Regex(h.value.clone())
            }
        };
        headers.push((name, value));
    }

    let mut query_params: Vec<(String, StringMatch)> = Vec::new();
    let query_field = field.key("queryParams");
    for (i, q) in m.query_params.iter().flatten().enumerate() {
        let f = query_field.index(i);
        if q.name.is_empty() || q.name.contains(['&', '=', '#', ' ']) {
            return Err(format!(
                "{f}.name: {:?} is not a valid query parameter name",
                q.name
            ));
        }
        check_text(&f.key("name"), &q.name)?;
        if query_params.iter().any(|(n, _)| *n == q.name) {
            continue;
        }
        let value = match q
            .r#type
            .clone()
            .unwrap_or(HttpRouteRulesMatchesQueryParamsType::Exact)
        {
            HttpRouteRulesMatchesQueryParamsType::Exact => {
                check_text(&f.key("value"), &q.value)?;
                StringMatch::Exact(q.value.clone())
            }
            HttpRouteRulesMatchesQueryParamsType::RegularExpression => {
                check_regex(&f.key("value"), &q.value)?;
                StringMatch::Regex(q.value.clone())
            }
        };
        query_params.push((q.name.clone(), value));
    }

    let method = m.method.as_ref().map(|method| match method {
        HttpRouteRulesMatchesMethod::Get => "GET",
        HttpRouteRulesMatchesMethod::Head => "HEAD",
        HttpRouteRulesMatchesMethod::Post => "POST",
        HttpRouteRulesMatchesMethod::Put => "PUT",
        HttpRouteRulesMatchesMethod::Delete => "DELETE",
        HttpRouteRulesMatchesMethod::Connect => "CONNECT",
        HttpRouteRulesMatchesMethod::Options => "OPTIONS",
        HttpRouteRulesMatchesMethod::Trace => "TRACE",
        HttpRouteRulesMatchesMethod::Patch => "PATCH",
    });

    Ok(MatchModel {
        path,
        headers,
        query_params,
        method,
        grpc: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_tokens() {
        assert!(is_header_name("x-request-id"));
        assert!(!is_header_name("bad header"));
        assert!(!is_header_name("a:b"));
        assert!(!is_header_name(""));
    }

    #[test]
    fn bad_regex_names_the_field() {
        let root = FieldPath::Root("spec.rules[0].matches[0].path.value");
        let e = check_regex(&root, "(unclosed").unwrap_err();
        assert!(
            e.starts_with("spec.rules[0].matches[0].path.value: invalid regular expression"),
            "{e}"
        );
    }
}
