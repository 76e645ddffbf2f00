//! The regex dialect of Envoy: every pattern a route carries (HTTPRoute path,
//! header and query matches, GRPCRoute service and method) is judged here as
//! RE2, Envoy's engine, will judge it.
//!
//! In: a pattern. Out: accepted, or the reason it is refused. Nothing is
//! compiled: the pattern is parsed under limits set before parsing starts
//! (length, nesting), each construct is checked against RE2's grammar as
//! Envoy 1.40 runs it, and the number of instructions RE2 would compile is
//! estimated from the parsed form and bounded (Envoy refuses programs above
//! its configured size, and a refused regex fails the whole route
//! configuration). Time and memory per pattern are linear in its length.
//!
//! Envoy's RE2 reads patterns and matches input as bytes (Latin-1): `.` and
//! negated classes match one byte, `\xHH` is the byte HH, code points above
//! `\xFF` are refused by Envoy, and a non-ASCII character would stand for its
//! UTF-8 bytes as separate characters (wrong under repetition, in classes and
//! with `(?i)`), so portico refuses non-ASCII characters and Unicode classes
//! (`\pL` would match only Latin-1 letters). Constructs only Rust's regex
//! syntax knows (`(?x)`, `\u0041`, `\<`, class set operations, `{,n}`) are
//! refused, and so are RE2's own rules: counted repetitions up to 1000, also
//! multiplied through nesting, and no stacked repetition operators. `\d`,
//! `\s`, `\w` and `\b` are ASCII, as in RE2. Verdicts are remembered per
//! pattern (a bounded memo), so a pattern is judged once per process, not once
//! per translation.

mod dialect;
mod program;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use regex_syntax::ast;

use self::dialect::Dialect;

/// Longest pattern judged at all.
pub const MAX_PATTERN_BYTES: usize = 1024;
/// Deepest nesting of groups, classes and repetitions.
pub const MAX_NESTING: u32 = 64;
/// RE2's bound on one counted repetition, and on the product of nested ones.
pub const MAX_REPEAT: u32 = 1000;
/// The largest estimated RE2 program accepted. Envoy's limit, set by every
/// bootstrap portico writes, is `bootstrap::ENVOY_RE2_MAX_PROGRAM_SIZE`; the
/// estimate is an upper bound of RE2's count, so this leaves a margin.
pub const MAX_PROGRAM: u64 = 1800;
/// Patterns whose verdict is remembered; the memo is emptied when full.
const MEMO_ENTRIES: usize = 4096;

/// Why a pattern is refused; the text follows the field path in messages.
pub type Refusal = Arc<str>;

/// Verdicts by pattern.
type Memo = HashMap<Box<str>, Result<(), Refusal>>;

static MEMO: LazyLock<Mutex<Memo>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// Judges `pattern` as Envoy's RE2 will, remembering the verdict.
pub fn check(pattern: &str) -> Result<(), Refusal> {
    if let Some(verdict) = MEMO
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(pattern)
    {
        return verdict.clone();
    }
    let verdict = verdict(pattern);
    let mut memo = MEMO.lock().unwrap_or_else(PoisonError::into_inner);
    if memo.len() >= MEMO_ENTRIES {
        memo.clear();
    }
    if pattern.len() <= MAX_PATTERN_BYTES {
        memo.insert(pattern.into(), verdict.clone());
    }
    verdict
}

/// The verdict on `pattern` without the memo (what `check` remembers).
pub fn verdict(pattern: &str) -> Result<(), Refusal> {
    if pattern.len() > MAX_PATTERN_BYTES {
        return Err(format!(
            "regular expression of {} bytes is longer than the {MAX_PATTERN_BYTES} allowed",
            pattern.len()
        )
        .into());
    }
    if pattern.is_empty() {
        return Err("an empty regular expression; Envoy requires at least one character".into());
    }
    judge(pattern).map_err(|detail| {
        Refusal::from(format!("invalid regular expression {pattern:?}: {detail}"))
    })
}

/// The verdict without the memo.
fn judge(pattern: &str) -> Result<(), String> {
    let ast = ast::parse::ParserBuilder::new()
        .nest_limit(MAX_NESTING)
        .build()
        .parse(pattern)
        .map_err(|e| format!("{} at offset {}", e.kind(), e.span().start.offset))?;
    Dialect { pattern }.node(&ast, MAX_REPEAT)?;
    let size = program::estimate(&ast);
    if size > MAX_PROGRAM {
        return Err(format!(
            "RE2 would compile it to about {size} instructions, more than the {MAX_PROGRAM} \
             allowed; simplify it (counted repetitions such as {{1,200}} multiply its size)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(pattern: &str) -> String {
        match check(pattern) {
            Ok(()) => panic!("{pattern:?} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn ordinary_patterns_pass() {
        for p in [
            "/api/v[0-9]+/.*",
            "^/users/[^/]+/?$",
            "(?i)/Admin(/.*)?",
            r"\d{3}-\w+",
            "(?P<id>[a-f0-9]{8})",
            "(?<name>x)",
            r"caf\xC3\xA9",
            r"[[:alpha:]_][[:alnum:]_]*",
            r"a\.b\/c\_d",
        ] {
            assert_eq!(check(p), Ok(()), "{p}");
        }
    }

    /// Measured with Envoy 1.40 (`re2.max_program_size.error_level` 1 makes
    /// it print every program's size): the estimate never falls below it.
    #[test]
    fn estimates_cover_envoys_program_sizes() {
        for (pattern, envoy) in [
            ("abc", 7),
            ("[a-z]{100}", 104),
            (".{10}", 24),
            (r"\w", 7),
            (r"\S{500}", 2004),
            (r"[^\s]{100}", 404),
            (r"\W{100}", 504),
            ("a{2,5}", 12),
            ("(?:ab|cd){3}", 16),
            ("(?:(a)|b){300}", 1204),
            ("(?:a?){999}", 2002),
            (r"(?<g>\B){1000,}", 3005),
            ("(?:.+){500,}", 2003),
            ("(?:.+){3}", 15),
            ("(?:a+){3}", 12),
            ("(?:a*){3}", 9),
            (
                "^/api/v[0-9]+/users/[a-z0-9-]+/orders/[0-9]{1,10}(/items/[a-z]{2,40})?$",
                132,
            ),
        ] {
            let ast = ast::parse::Parser::new().parse(pattern).expect("parses");
            let ours = program::estimate(&ast);
            assert!(ours >= envoy, "{pattern}: estimate {ours}, Envoy {envoy}");
            assert!(
                ours <= envoy * 2,
                "{pattern}: estimate {ours}, Envoy {envoy}"
            );
        }
    }

    /// Each pattern is refused with a message containing its reason.
    fn refuses(cases: &[(&str, &str)]) {
        for (pattern, reason) in cases {
            let message = refused(pattern);
            assert!(message.contains(reason), "{pattern}: {message}");
        }
    }

    #[test]
    fn rust_only_syntax_is_refused_with_the_construct() {
        refuses(&[
            ("(?x) a b", "`x`"),
            (r"\u0041", r"`\u0041`"),
            (r"\<word\>", "word boundaries"),
            ("[a-z&&[^aeiou]]", "class set operation"),
            ("[[a-z]]", "nested"),
            (r"\p{Greek}", "Unicode class"),
            (r"\x{100}", "above"),
            ("café", "not ASCII"),
            ("", "empty"),
            ("a{,5}", "offset 2"),
            ("a**", "another repetition"),
        ]);
    }

    #[test]
    fn repetition_and_program_size_are_bounded_as_in_re2() {
        for pattern in ["a{1000}", "(?:a{10}){100}", "[a-z]{1000}", "[a-z]{100}"] {
            assert_eq!(check(pattern), Ok(()), "{pattern}");
        }
        refuses(&[
            ("a{1001}", "more than 1000"),
            ("(?:(?:a{1000}){1000}){1000}", "nested"),
            ("(?:a{2}){501}", "nested"),
            ("[a-z]{1000}[0-9]{900}", "instructions"),
            (r"(?<g>\B){1000,}", "instructions"),
            ("(?:ab|cd){500}", "instructions"),
        ]);
    }

    #[test]
    fn long_and_deep_patterns_are_refused_before_parsing() {
        assert!(refused(&"a".repeat(2000)).contains("longer than"));
        let deep = format!("{}a{}", "(".repeat(100), ")".repeat(100));
        assert!(refused(&deep).contains("nest"));
    }

    #[test]
    fn syntax_errors_name_the_offset() {
        assert!(refused("(unclosed").contains("offset 0"));
    }
}
