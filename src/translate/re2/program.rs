//! The size of the program RE2 compiles for a pattern, estimated from the
//! parsed pattern without compiling anything: the number Envoy compares with
//! `re2.max_program_size.error_level`.
//!
//! Envoy 1.40's RE2 works on bytes (Latin-1), and its count (measured with
//! the error level set to 1, which makes Envoy print every program's size)
//! is: one instruction per literal byte, one per range of a class within a
//! byte, one more for `?` and one or two more for `*` and `+` (loops that
//! follow one another cost more), counted repetitions written out
//! (`x{n,m}` is n copies of x and m-n optional ones), two per capture, one
//! per assertion, none per alternative, and four for the program itself.
//! The estimate follows that and rounds up where RE2 may compile less
//! (case-insensitive letters count two, any alternation one more per
//! branch), so it is never below Envoy's own count.

use regex_syntax::ast::{
    self, Ast, ClassAsciiKind, ClassPerlKind, ClassSet, ClassSetItem, Flag, FlagsItemKind,
    GroupKind, RepetitionKind, RepetitionRange,
};

/// What every program holds besides the pattern (Envoy counts four: the
/// failure and match instructions and the unanchored `.*?` prefix), plus one.
const OVERHEAD: u64 = 5;

/// An upper bound of Envoy's RE2 program size for `pattern`.
pub fn estimate(pattern: &Ast) -> u64 {
    let folds = case_insensitive_anywhere(pattern);
    size(pattern, folds).saturating_add(OVERHEAD)
}

/// Whether `(?i)` is switched on anywhere; the estimate then counts every
/// letter as folded.
fn case_insensitive_anywhere(node: &Ast) -> bool {
    let sets_i = |flags: &ast::Flags| {
        let mut negated = false;
        flags.items.iter().any(|item| match item.kind {
            FlagsItemKind::Negation => {
                negated = true;
                false
            }
            FlagsItemKind::Flag(Flag::CaseInsensitive) => !negated,
            FlagsItemKind::Flag(_) => false,
        })
    };
    match node {
        Ast::Flags(set) => sets_i(&set.flags),
        Ast::Group(group) => {
            matches!(&group.kind, GroupKind::NonCapturing(flags) if sets_i(flags))
                || case_insensitive_anywhere(&group.ast)
        }
        Ast::Repetition(rep) => case_insensitive_anywhere(&rep.ast),
        Ast::Alternation(alt) => alt.asts.iter().any(case_insensitive_anywhere),
        Ast::Concat(cat) => cat.asts.iter().any(case_insensitive_anywhere),
        _ => false,
    }
}

fn size(node: &Ast, folds: bool) -> u64 {
    match node {
        Ast::Empty(_) | Ast::Flags(_) => 0,
        Ast::Literal(lit) => {
            if folds && Bytes::folds(u32::from(lit.c)) {
                2
            } else {
                1
            }
        }
        Ast::Dot(_) => 2,
        Ast::Assertion(_) => 1,
        Ast::ClassPerl(perl) => Bytes::perl(perl.kind.clone(), perl.negated).ranges(),
        Ast::ClassUnicode(_) => 0,
        Ast::ClassBracketed(class) => {
            let mut bytes = Bytes::default();
            bytes.add_set(&class.kind);
            if folds {
                bytes.fold();
            }
            if class.negated {
                bytes.negate();
            }
            bytes.ranges()
        }
        Ast::Repetition(rep) => {
            let one = size(&rep.ast, folds);
            let (min, max) = match &rep.op.kind {
                RepetitionKind::ZeroOrOne => (0, Some(1)),
                RepetitionKind::ZeroOrMore => (0, None),
                RepetitionKind::OneOrMore => (1, None),
                RepetitionKind::Range(RepetitionRange::Exactly(n)) => (*n, Some(*n)),
                RepetitionKind::Range(RepetitionRange::AtLeast(n)) => (*n, None),
                RepetitionKind::Range(RepetitionRange::Bounded(lo, hi)) => (*lo, Some(*hi)),
            };
            let min = u64::from(min);
            match max {
                // A loop: Envoy counts one more, and one more again when
                // its copies follow one another (`(?:.+){3}` is 11, not 9).
                None => min.max(1).saturating_mul(one.saturating_add(2)),
                Some(max) => {
                    let optional = u64::from(max).saturating_sub(min);
                    min.saturating_mul(one)
                        .saturating_add(optional.saturating_mul(one.saturating_add(1)))
                }
            }
        }
        Ast::Group(group) => {
            let inner = size(&group.ast, folds);
            match group.kind {
                GroupKind::NonCapturing(_) => inner,
                _ => inner.saturating_add(2),
            }
        }
        Ast::Alternation(alt) => alt.asts.iter().fold(alt.asts.len() as u64, |n, a| {
            n.saturating_add(size(a, folds))
        }),
        Ast::Concat(cat) => cat
            .asts
            .iter()
            .fold(0u64, |n, a| n.saturating_add(size(a, folds))),
    }
}

/// A set of bytes (RE2's Latin-1 characters), as a class compiles.
#[derive(Clone, Copy)]
struct Bytes([bool; 256]);

impl Default for Bytes {
    fn default() -> Self {
        Self([false; 256])
    }
}

impl Bytes {
    fn add(&mut self, lo: u32, hi: u32) {
        for b in lo.min(256)..=hi.min(255) {
            self.0[b as usize] = true;
        }
    }

    /// RE2's Perl classes: ASCII digits, word characters, and `[\t\n\f\r ]`.
    fn perl(kind: ClassPerlKind, negated: bool) -> Self {
        Self::built(negated, |set| match kind {
            ClassPerlKind::Digit => set.add_ascii(&ClassAsciiKind::Digit),
            ClassPerlKind::Word => set.add_ascii(&ClassAsciiKind::Word),
            ClassPerlKind::Space => {
                for c in [b'\t', b'\n', 0x0C, b'\r', b' '] {
                    set.add(c.into(), c.into());
                }
            }
        })
    }

    fn add_ascii(&mut self, kind: &ClassAsciiKind) {
        let ranges: &[(u8, u8)] = match kind {
            ClassAsciiKind::Alnum => &[(b'0', b'9'), (b'A', b'Z'), (b'a', b'z')],
            ClassAsciiKind::Alpha => &[(b'A', b'Z'), (b'a', b'z')],
            ClassAsciiKind::Ascii => &[(0, 0x7F)],
            ClassAsciiKind::Blank => &[(b'\t', b'\t'), (b' ', b' ')],
            ClassAsciiKind::Cntrl => &[(0, 0x1F), (0x7F, 0x7F)],
            ClassAsciiKind::Digit => &[(b'0', b'9')],
            ClassAsciiKind::Graph => &[(b'!', b'~')],
            ClassAsciiKind::Lower => &[(b'a', b'z')],
            ClassAsciiKind::Print => &[(b' ', b'~')],
            ClassAsciiKind::Punct => &[(b'!', b'/'), (b':', b'@'), (b'[', b'`'), (b'{', b'~')],
            ClassAsciiKind::Space => &[(b'\t', b'\r'), (b' ', b' ')],
            ClassAsciiKind::Upper => &[(b'A', b'Z')],
            ClassAsciiKind::Word => &[(b'0', b'9'), (b'A', b'Z'), (b'_', b'_'), (b'a', b'z')],
            ClassAsciiKind::Xdigit => &[(b'0', b'9'), (b'A', b'F'), (b'a', b'f')],
        };
        for (lo, hi) in ranges {
            self.add((*lo).into(), (*hi).into());
        }
    }

    fn add_set(&mut self, set: &ClassSet) {
        if let ClassSet::Item(item) = set {
            self.add_item(item);
        }
    }

    fn add_item(&mut self, item: &ClassSetItem) {
        match item {
            ClassSetItem::Empty(_) | ClassSetItem::Unicode(_) => {}
            ClassSetItem::Literal(lit) => self.add(lit.c.into(), lit.c.into()),
            ClassSetItem::Range(r) => self.add(r.start.c.into(), r.end.c.into()),
            ClassSetItem::Ascii(a) => {
                self.union(&Self::built(a.negated, |set| set.add_ascii(&a.kind)));
            }
            ClassSetItem::Perl(p) => self.union(&Self::perl(p.kind.clone(), p.negated)),
            ClassSetItem::Bracketed(nested) => {
                self.union(&Self::built(nested.negated, |set| {
                    set.add_set(&nested.kind)
                }));
            }
            ClassSetItem::Union(union) => union.items.iter().for_each(|i| self.add_item(i)),
        }
    }

    /// The set `fill` adds to an empty one, negated if `negated`.
    fn built(negated: bool, fill: impl FnOnce(&mut Self)) -> Self {
        let mut set = Self::default();
        fill(&mut set);
        if negated {
            set.negate();
        }
        set
    }

    fn union(&mut self, other: &Self) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            *mine |= theirs;
        }
    }

    fn negate(&mut self) {
        for b in &mut self.0 {
            *b = !*b;
        }
    }

    /// Whether the character has another case in Latin-1.
    fn folds(c: u32) -> bool {
        matches!(c, 0x41..=0x5A | 0x61..=0x7A | 0xB5 | 0xC0..=0xD6 | 0xD8..=0xF6 | 0xF8..=0xFF)
    }

    /// Adds the other case of every letter.
    fn fold(&mut self) {
        for c in 0..256u32 {
            if self.0[c as usize] && Self::folds(c) {
                let other = match c {
                    0x41..=0x5A | 0xC0..=0xDE => c + 0x20,
                    0x61..=0x7A | 0xE0..=0xFE => c - 0x20,
                    _ => c,
                };
                self.0[other as usize] = true;
            }
        }
    }

    /// The number of runs of consecutive bytes: the ranges RE2 compiles.
    fn ranges(&self) -> u64 {
        let mut runs = 0;
        let mut inside = false;
        for &b in &self.0 {
            if b && !inside {
                runs += 1;
            }
            inside = b;
        }
        runs
    }
}
