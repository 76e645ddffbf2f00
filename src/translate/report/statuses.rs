//! The statuses translation computes, one per object it owns, in the shape of the
//! Gateway API `status` stanzas (camelCase when serialized) minus timestamps.

use serde::Serialize;

// Status pieces an earlier stage produces, listed here with the rest.
pub use crate::translate::attach::RouteParentStatus;
pub use crate::translate::compile::routes::ParentRef;
use crate::translate::conditions::Condition;
pub use crate::translate::index::model::RouteGroupKind;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayClassStatus {
    pub conditions: Vec<Condition>,
    pub supported_features: Vec<SupportedFeature>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct SupportedFeature {
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayStatus {
    pub conditions: Vec<Condition>,
    /// The Gateway's own listeners.
    pub listeners: Vec<ListenerStatus>,
    /// How many ListenerSets are attached, for a Gateway that allows them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attached_listener_sets: Option<i32>,
}

/// A ListenerSet's status: its conditions and its listeners' (the same
/// shape as a Gateway listener's).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerSetStatus {
    pub conditions: Vec<Condition>,
    pub listeners: Vec<ListenerStatus>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    pub name: String,
    pub supported_kinds: Vec<RouteGroupKind>,
    pub attached_routes: i32,
    pub conditions: Vec<Condition>,
}

/// `status.parents` of a route: only the entries this controller owns.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteStatus {
    pub parents: Vec<RouteParentStatus>,
}

/// `status.ancestors` of a BackendTLSPolicy: only the entries this
/// controller owns, one per Gateway whose routes use a targeted Service.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    pub ancestors: Vec<PolicyAncestorStatus>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyAncestorStatus {
    pub ancestor_ref: ParentRef,
    pub controller_name: &'static str,
    pub conditions: Vec<Condition>,
}
