//! Hostnames: validation of listener and route hostnames (RFC 1123 names with an
//! optional leading `*.` label) and the intersection rules that decide which
//! hostnames a route serves on a listener.

/// Why a hostname is not acceptable.
pub fn validate(hostname: &str) -> Result<(), String> {
    if hostname.is_empty() {
        return Err("hostname is empty".into());
    }
    if hostname.len() > 253 {
        return Err(format!(
            "hostname {hostname:?} is longer than 253 characters"
        ));
    }
    if hostname.parse::<std::net::IpAddr>().is_ok() {
        return Err(format!(
            "hostname {hostname:?} is an IP address; a DNS name is required"
        ));
    }
    let name = hostname.strip_prefix("*.").unwrap_or(hostname);
    for label in name.split('.') {
        let valid = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !valid {
            return Err(format!(
                "hostname {hostname:?} is not a valid DNS name (lowercase RFC 1123 labels, optionally prefixed by \"*.\")"
            ));
        }
    }
    Ok(())
}

/// Whether a concrete or wildcard `hostname` is covered by `pattern`
/// (`*.example.com` covers `a.example.com` and `a.b.example.com`, not `example.com`).
pub fn covers(pattern: &str, hostname: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some(suffix) => hostname.len() > suffix.len() && hostname.ends_with(suffix),
        None => pattern == hostname,
    }
}

/// The hostnames a route serves on a listener: `None` for the listener
/// hostname means "any". A route without hostnames takes the listener's
/// (or `*` when the listener has none). Returns an empty list when nothing
/// intersects.
pub fn intersect(listener: Option<&str>, route: &[String]) -> Vec<String> {
    let Some(listener) = listener else {
        if route.is_empty() {
            return vec!["*".to_string()];
        }
        return route.to_vec();
    };
    if route.is_empty() {
        return vec![listener.to_string()];
    }
    let mut out = Vec::new();
    for host in route {
        if covers(listener, host) || host == listener {
            out.push(host.clone());
        } else if covers(host, listener) {
            out.push(listener.to_string());
        }
    }
    out.sort();
    out.dedup();
    out
}

/// How specific a hostname pattern is: exact names beat wildcards, longer
/// wildcard suffixes beat shorter ones, and `*` matches last.
pub fn specificity(hostname: &str) -> (bool, usize) {
    (!hostname.starts_with('*'), hostname.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_names() {
        assert!(validate("foo.example.com").is_ok());
        assert!(validate("*.example.com").is_ok());
        assert!(validate("10.0.0.1").is_err());
        assert!(validate("*.*.example.com").is_err());
        assert!(validate("Foo.example.com").is_err());
        assert!(validate("foo..com").is_err());
        assert!(validate("-foo.com").is_err());
    }

    #[test]
    fn wildcard_covers_subdomains_only() {
        assert!(covers("*.example.com", "a.example.com"));
        assert!(covers("*.example.com", "a.b.example.com"));
        assert!(covers("*.example.com", "*.b.example.com"));
        assert!(!covers("*.example.com", "example.com"));
        assert!(!covers("a.example.com", "b.example.com"));
    }

    #[test]
    fn intersection_follows_the_spec() {
        let r = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(intersect(None, &[]), r(&["*"]));
        assert_eq!(intersect(Some("a.example.com"), &[]), r(&["a.example.com"]));
        assert_eq!(
            intersect(Some("*.example.com"), &r(&["a.example.com", "other.org"])),
            r(&["a.example.com"])
        );
        assert_eq!(
            intersect(Some("a.example.com"), &r(&["*.example.com"])),
            r(&["a.example.com"])
        );
        assert_eq!(
            intersect(Some("*.example.com"), &r(&["*.example.com"])),
            r(&["*.example.com"])
        );
        assert!(intersect(Some("a.example.com"), &r(&["b.example.com"])).is_empty());
    }
}
