//! Status conditions as translation computes them: type, status, reason, message
//! and the generation they describe. No timestamps here: translation has no clock;
//! the status writer stamps `lastTransitionTime` when a condition really changes.
//!
//! Every condition leaves portico serialized, for the API server or for
//! `render`; serializing caps its message at `MAX_MESSAGE`, so no message
//! (Envoy's NACK text, a list of dropped rules) can make a status write fail.

use std::borrow::Cow;

use serde::{Serialize, Serializer};

/// The API's limit for `Condition.message` (`maxLength` 32768 in
/// metav1.Condition and the Gateway API CRDs). Counted in bytes here, which
/// also keeps the character count under it.
pub const MAX_MESSAGE: usize = 32768;

/// Ends a message cut to `MAX_MESSAGE`.
pub const CUT_MARKER: &str = " [message truncated]";

/// `message` if it fits, else its longest prefix (cut on a character
/// boundary) that fits with `CUT_MARKER` appended.
pub fn capped(message: &str) -> Cow<'_, str> {
    if message.len() <= MAX_MESSAGE {
        return Cow::Borrowed(message);
    }
    let mut cut = MAX_MESSAGE - CUT_MARKER.len();
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    Cow::Owned(format!("{}{CUT_MARKER}", &message[..cut]))
}

fn serialize_capped<S: Serializer>(message: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&capped(message))
}

/// One Kubernetes-style condition, without its transition time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: &'static str,
    pub status: ConditionStatus,
    pub reason: &'static str,
    /// Capped at `MAX_MESSAGE` when serialized.
    #[serde(serialize_with = "serialize_capped")]
    pub message: Cow<'static, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl From<bool> for ConditionStatus {
    fn from(value: bool) -> Self {
        if value { Self::True } else { Self::False }
    }
}

/// Builds the conditions of one object (or one listener, or one route parent),
/// all sharing the object's generation. Setting a type twice replaces it, so a
/// later, more precise verdict wins.
#[derive(Clone, Debug, Default)]
pub struct Conditions {
    generation: Option<i64>,
    list: Vec<Condition>,
}

impl Conditions {
    pub fn new(generation: Option<i64>) -> Self {
        Self {
            generation,
            list: Vec::new(),
        }
    }

    pub fn set(
        &mut self,
        type_: &'static str,
        status: impl Into<ConditionStatus>,
        reason: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) {
        let condition = Condition {
            type_,
            status: status.into(),
            reason,
            message: message.into(),
            observed_generation: self.generation,
        };
        match self.list.iter_mut().find(|c| c.type_ == type_) {
            Some(existing) => *existing = condition,
            None => self.list.push(condition),
        }
    }

    pub fn get(&self, type_: &str) -> Option<&Condition> {
        self.list.iter().find(|c| c.type_ == type_)
    }

    pub fn is_true(&self, type_: &str) -> bool {
        self.get(type_)
            .is_some_and(|c| c.status == ConditionStatus::True)
    }

    pub fn into_vec(self) -> Vec<Condition> {
        self.list
    }
}

/// Whether a finished list holds condition `type_` with status True.
pub fn holds(list: &[Condition], type_: &str) -> bool {
    list.iter()
        .any(|c| c.type_ == type_ && c.status == ConditionStatus::True)
}

/// Replaces (or adds) one condition of a finished list, keeping its
/// observed generation.
pub fn replace(
    list: &mut Vec<Condition>,
    type_: &'static str,
    status: impl Into<ConditionStatus>,
    reason: &'static str,
    message: impl Into<Cow<'static, str>>,
) {
    let generation = list.first().and_then(|c| c.observed_generation);
    let condition = Condition {
        type_,
        status: status.into(),
        reason,
        message: message.into(),
        observed_generation: generation,
    };
    match list.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => *existing = condition,
        None => list.push(condition),
    }
}

/// Condition types and reasons from the Gateway API specification.
pub mod spec {
    pub const ACCEPTED: &str = "Accepted";
    pub const PROGRAMMED: &str = "Programmed";
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    pub const CONFLICTED: &str = "Conflicted";
    pub const PARTIALLY_INVALID: &str = "PartiallyInvalid";

    pub const INVALID_PARAMETERS: &str = "InvalidParameters";
    pub const LISTENERS_NOT_VALID: &str = "ListenersNotValid";
    pub const PENDING: &str = "Pending";
    pub const INVALID: &str = "Invalid";

    pub const HOSTNAME_CONFLICT: &str = "HostnameConflict";
    pub const PROTOCOL_CONFLICT: &str = "ProtocolConflict";
    pub const NO_CONFLICTS: &str = "NoConflicts";
    pub const PORT_UNAVAILABLE: &str = "PortUnavailable";
    pub const UNSUPPORTED_PROTOCOL: &str = "UnsupportedProtocol";
    pub const INVALID_ROUTE_KINDS: &str = "InvalidRouteKinds";
    pub const OVERLAPPING_TLS_CONFIG: &str = "OverlappingTLSConfig";
    pub const OVERLAPPING_HOSTNAMES: &str = "OverlappingHostnames";

    pub const NOT_ALLOWED_BY_LISTENERS: &str = "NotAllowedByListeners";
    pub const NO_MATCHING_LISTENER_HOSTNAME: &str = "NoMatchingListenerHostname";
    pub const NO_MATCHING_PARENT: &str = "NoMatchingParent";
    pub const UNSUPPORTED_VALUE: &str = "UnsupportedValue";
    pub const REF_NOT_PERMITTED: &str = "RefNotPermitted";
    pub const INVALID_KIND: &str = "InvalidKind";
    pub const BACKEND_NOT_FOUND: &str = "BackendNotFound";
    pub const INVALID_CERTIFICATE_REF: &str = "InvalidCertificateRef";
    pub const INVALID_CA_CERTIFICATE_REF: &str = "InvalidCACertificateRef";
    pub const INVALID_CA_CERTIFICATE_KIND: &str = "InvalidCACertificateKind";
    pub const NO_VALID_CA_CERTIFICATE: &str = "NoValidCACertificate";
    pub const INVALID_CLIENT_CERTIFICATE_REF: &str = "InvalidClientCertificateRef";
    pub const LISTENERS_NOT_RESOLVED: &str = "ListenersNotResolved";
    pub const INSECURE_FRONTEND_VALIDATION_MODE: &str = "InsecureFrontendValidationMode";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serialized_message(message: String) -> String {
        let mut c = Conditions::new(Some(1));
        c.set(spec::ACCEPTED, false, spec::INVALID, message);
        let json = serde_json::to_value(&c.into_vec()[0]).expect("serializes");
        json["message"].as_str().expect("a string").to_string()
    }

    #[test]
    fn messages_are_capped_on_a_char_boundary_with_a_marker() {
        // 100 KiB of two-byte characters, offset by one byte so the cut
        // would fall inside a character.
        let long = format!("x{}", "\u{e9}".repeat(50 * 1024));
        assert!(long.len() > 100 * 1024);
        let out = serialized_message(long.clone());
        assert!(out.len() <= MAX_MESSAGE, "{} bytes", out.len());
        assert!(out.chars().count() <= MAX_MESSAGE);
        assert!(out.ends_with(CUT_MARKER));
        let kept = out.strip_suffix(CUT_MARKER).expect("marker");
        assert!(long.starts_with(kept));
        assert!(kept.len() > MAX_MESSAGE - CUT_MARKER.len() - 4);

        let ascii = "a".repeat(100 * 1024);
        let out = serialized_message(ascii);
        assert_eq!(out.len(), MAX_MESSAGE);
        assert!(out.ends_with(CUT_MARKER));

        for fits in [String::new(), "short".to_string(), "b".repeat(MAX_MESSAGE)] {
            assert_eq!(serialized_message(fits.clone()), fits);
        }
        let over = "c".repeat(MAX_MESSAGE + 1);
        assert!(serialized_message(over).ends_with(CUT_MARKER));
    }
}
