//! Kubernetes label selectors (`matchLabels` and `matchExpressions`), used for
//! `allowedRoutes.namespaces.selector` over Namespace labels.

use std::collections::BTreeMap;

use gateway_api::experimental::gateways::GatewayListenersAllowedRoutesNamespacesSelector;

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

impl Selector {
    /// A selector that matches no namespace (used when the given one is invalid).
    pub fn nothing() -> Self {
        Self {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    pub fn from_listener(
        raw: &GatewayListenersAllowedRoutesNamespacesSelector,
    ) -> Result<Self, String> {
        let mut requirements: Vec<Requirement> = raw
            .match_labels
            .iter()
            .flatten()
            .map(|(k, v)| Requirement::In(k.clone(), vec![v.clone()]))
            .collect();
        for (i, e) in raw.match_expressions.iter().flatten().enumerate() {
            let values = e.values.clone().unwrap_or_default();
            let needs_values = matches!(e.operator.as_str(), "In" | "NotIn");
            if needs_values == values.is_empty() {
                return Err(format!(
                    "matchExpressions[{i}]: operator {} {} values",
                    e.operator,
                    if needs_values { "needs" } else { "takes no" }
                ));
            }
            requirements.push(match e.operator.as_str() {
                "In" => Requirement::In(e.key.clone(), values),
                "NotIn" => Requirement::NotIn(e.key.clone(), values),
                "Exists" => Requirement::Exists(e.key.clone()),
                "DoesNotExist" => Requirement::DoesNotExist(e.key.clone()),
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
