//! Field paths such as `spec.rules[2].matches[0].path.value`, built without
//! allocating and only formatted when a message needs them.

use std::fmt;

/// A path into an object: a root name, then keys and indexes.
#[derive(Clone, Copy, Debug)]
pub enum FieldPath<'a> {
    Root(&'static str),
    Key(&'a FieldPath<'a>, &'static str),
    Index(&'a FieldPath<'a>, usize),
}

impl<'a> FieldPath<'a> {
    pub fn key(&'a self, key: &'static str) -> FieldPath<'a> {
        FieldPath::Key(self, key)
    }

    pub fn index(&'a self, index: usize) -> FieldPath<'a> {
        FieldPath::Index(self, index)
    }
}

impl fmt::Display for FieldPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldPath::Root(name) => f.write_str(name),
            FieldPath::Key(parent, key) => write!(f, "{parent}.{key}"),
            FieldPath::Index(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FieldPath;

    #[test]
    fn formats_keys_and_indexes() {
        let rules = FieldPath::Root("spec.rules");
        let rule = rules.index(2);
        assert_eq!(
            rule.key("matches").index(0).key("path").to_string(),
            "spec.rules[2].matches[0].path"
        );
    }
}
