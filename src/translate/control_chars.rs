//! Control characters in the values translation copies into Envoy
//! configuration: paths, header and query values, names. In: a field path and
//! its value. Out: `Ok`, or an error naming the field, the character and where
//! it is. A control character (U+0000-U+001F, U+007F) in such a value is at
//! best a configuration Envoy rejects (one bad route would fail the whole
//! route configuration), at worst a header or log line split in two.
//!
//! Header values may hold a horizontal tab between other characters: RFC 9110
//! allows it inside a field value, and Envoy and HTTP/2 pass it unchanged. A
//! tab at either end is refused, since HTTP/1 parsers strip it (so the value
//! would not be what was written) and RFC 9113 makes such a value malformed.

use super::field_path::FieldPath;

/// Whether `c` is a control character: U+0000-U+001F or U+007F.
pub fn is_control(c: char) -> bool {
    c < ' ' || c == '\u{7f}'
}

/// Refuses every control character (paths, query values, names).
pub fn check_text(field: &FieldPath<'_>, value: &str) -> Result<(), String> {
    match value.char_indices().find(|(_, c)| is_control(*c)) {
        Some((at, c)) => Err(found(field, c, at)),
        None => Ok(()),
    }
}

/// Refuses control characters in a header value, except a tab with other
/// characters on both sides.
pub fn check_header_value(field: &FieldPath<'_>, value: &str) -> Result<(), String> {
    let last = value.len().saturating_sub(1);
    for (at, c) in value.char_indices() {
        if c == '\t' && at != 0 && at != last {
            continue;
        }
        if c == '\t' {
            return Err(format!(
                "{field}: a header value must not start or end with a tab"
            ));
        }
        if is_control(c) {
            return Err(found(field, c, at));
        }
    }
    Ok(())
}

fn found(field: &FieldPath<'_>, c: char, at: usize) -> String {
    format!(
        "{field}: control character U+{:04X} at byte {at}; control characters (U+0000-U+001F, U+007F) are not allowed",
        u32::from(c)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_refused_with_their_field() {
        let field = FieldPath::Root("spec.rules[0].filters[1].requestHeaderModifier.set[0].value");
        for bad in ["a\nb", "\r", "x\0", "del\u{7f}", "\u{1b}[31m", "a\u{1}"] {
            let e = check_text(&field, bad).expect_err(bad);
            assert!(
                e.starts_with("spec.rules[0].filters[1].requestHeaderModifier.set[0].value: control character U+"),
                "{e}"
            );
            assert!(check_header_value(&field, bad).is_err(), "{bad:?}");
        }
        let e = check_text(&field, "ab\ncd").expect_err("newline");
        assert!(e.contains("U+000A at byte 2"), "{e}");
        for good in ["", "/a/b", "caf\u{e9}", "a b", "~!@#$%^&*()"] {
            assert_eq!(check_text(&field, good), Ok(()), "{good:?}");
            assert_eq!(check_header_value(&field, good), Ok(()), "{good:?}");
        }
    }

    #[test]
    fn header_values_may_hold_an_inner_tab() {
        let field = FieldPath::Root("value");
        assert_eq!(check_header_value(&field, "a\tb"), Ok(()));
        assert_eq!(check_header_value(&field, "a\t\tb"), Ok(()));
        for edge in ["\tab", "ab\t", "\t"] {
            let e = check_header_value(&field, edge).expect_err(edge);
            assert!(e.contains("tab"), "{e}");
        }
        assert!(check_text(&field, "a\tb").is_err());
    }
}
