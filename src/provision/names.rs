//! Names and labels of the objects portico creates for a Gateway: stable, at
//! most 63 characters, and collision-free (a hash suffix when truncated).

use std::collections::BTreeMap;

use crate::identity::content_version;

pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

/// `<prefix><gateway>`, or a truncated form with an 8-hex-digit hash of the
/// full name when that would exceed 63 characters.
pub fn object_name(prefix: &str, gateway: &str) -> String {
    const MAX: usize = 63;
    let full = format!("{prefix}{gateway}");
    if full.len() <= MAX {
        return full;
    }
    let hash = &content_version(full.as_bytes())[..8];
    let mut keep = MAX - hash.len() - 1;
    while !full.is_char_boundary(keep) {
        keep -= 1;
    }
    let head = full[..keep].trim_end_matches(['-', '.']);
    format!("{head}-{hash}")
}

/// The labels that select a Gateway's Envoy pods.
pub fn selector_labels(gateway: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "envoy".to_string()),
        (
            "app.kubernetes.io/instance".to_string(),
            truncate_label(gateway),
        ),
        (GATEWAY_NAME_LABEL.to_string(), truncate_label(gateway)),
    ])
}

/// Label values are at most 63 characters too.
fn truncate_label(value: &str) -> String {
    if value.len() <= 63 {
        value.to_string()
    } else {
        object_name("", value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_kept_long_ones_truncated_with_a_hash() {
        assert_eq!(object_name("envoy-", "web"), "envoy-web");
        let long = "a".repeat(70);
        let a = object_name("envoy-", &long);
        let b = object_name("envoy-", &format!("{long}b"));
        assert!(a.len() <= 63 && b.len() <= 63);
        assert_ne!(a, b, "different Gateways never share a name");
        assert_eq!(a, object_name("envoy-", &long), "names are stable");
    }
}
