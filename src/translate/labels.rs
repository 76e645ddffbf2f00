//! Kubernetes label selectors (`matchLabels` and `matchExpressions`), used for
//! `allowedRoutes.namespaces.selector` and `allowedListeners.namespaces.selector`
//! over Namespace labels.

use std::collections::BTreeMap;

use gateway_api::experimental::gateways::{
    GatewayAllowedListenersNamespacesSelector, GatewayListenersAllowedRoutesNamespacesSelector,
};

/// One `matchExpressions` entry, whichever selector it comes from.
struct Expression<'a> {
    key: &'a str,
    operator: &'a str,
    values: Option<&'a [String]>,
}

#[derive(Debug, Clone)]
enum Requirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed selector. An empty selector matches everything.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

/// Parses any generated selector type: they share field names, not a type.
macro_rules! selector {
    ($raw:expr) => {
        Self::parse(
            $raw.match_labels.as_ref(),
            $raw.match_expressions.iter().flatten().map(|e| Expression {
                key: &e.key,
                operator: &e.operator,
                values: e.values.as_deref(),
            }),
        )
    };
}

impl Selector {
    /// A selector that matches no namespace (used when the given one is invalid).
    pub fn nothing() -> Self {
        Self {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// A listener's `allowedRoutes.namespaces.selector`.
    pub fn from_listener(
        raw: &GatewayListenersAllowedRoutesNamespacesSelector,
    ) -> Result<Self, String> {
        selector!(raw)
    }

    /// A Gateway's `allowedListeners.namespaces.selector`.
    pub fn from_allowed_listeners(
        raw: &GatewayAllowedListenersNamespacesSelector,
    ) -> Result<Self, String> {
        selector!(raw)
    }

    fn parse<'a>(
        labels: Option<&BTreeMap<String, String>>,
        expressions: impl Iterator<Item = Expression<'a>>,
    ) -> Result<Self, String> {
        let mut requirements: Vec<Requirement> = labels
            .into_iter()
            .flatten()
            .map(|(k, v)| Requirement::In(k.clone(), vec![v.clone()]))
            .collect();
        for (i, e) in expressions.enumerate() {
            let values = e.values.map(<[String]>::to_vec).unwrap_or_default();
            let needs_values = matches!(e.operator, "In" | "NotIn");
            if needs_values == values.is_empty() {
                return Err(format!(
                    "matchExpressions[{i}]: operator {} {} values",
                    e.operator,
                    if needs_values { "needs" } else { "takes no" }
                ));
            }
            let key = e.key.to_string();
            requirements.push(match e.operator {
                "In" => Requirement::In(key, values),
                "NotIn" => Requirement::NotIn(key, values),
                "Exists" => Requirement::Exists(key),
                "DoesNotExist" => Requirement::DoesNotExist(key),
                other => {
                    return Err(format!(
                        "matchExpressions[{i}]: unknown operator {other:?} (In, NotIn, Exists, DoesNotExist)"
                    ));
                }
            });
        }
        Ok(Self {
            requirements,
            nothing: false,
        })
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.nothing
            && self.requirements.iter().all(|r| match r {
                Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
                Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
                Requirement::Exists(k) => labels.contains_key(k),
                Requirement::DoesNotExist(k) => !labels.contains_key(k),
            })
    }
}
