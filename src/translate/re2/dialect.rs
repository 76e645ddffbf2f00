//! RE2's grammar as Envoy 1.40 runs it, checked over a parsed pattern: the
//! constructs RE2 reads as Rust's regex syntax does are let through, the
//! others are refused with the construct and its offset. RE2's own rules are
//! enforced too: counted repetitions up to 1000, also multiplied through
//! nesting, and no stacked repetition operators.

use regex_syntax::ast::{
    self, Ast, ClassBracketed, ClassSet, ClassSetItem, Flag, FlagsItemKind, GroupKind,
    HexLiteralKind, LiteralKind, RepetitionKind, RepetitionRange,
};

use super::MAX_REPEAT;

/// The grammar check: what RE2's parser accepts with the same meaning.
pub struct Dialect<'p> {
    pub pattern: &'p str,
}

impl Dialect<'_> {
    fn text(&self, span: &ast::Span) -> &str {
        self.pattern
            .get(span.start.offset..span.end.offset)
            .unwrap_or("")
    }

    fn refuse(&self, span: &ast::Span, what: &str) -> Result<(), String> {
        Err(format!(
            "`{}` at offset {} {what}",
            self.text(span),
            span.start.offset
        ))
    }

    /// Checks `node`; `budget` is what is left of RE2's repetition bound
    /// after the counted repetitions around it.
    pub fn node(&self, node: &Ast, budget: u32) -> Result<(), String> {
        match node {
            Ast::Empty(_) | Ast::Dot(_) | Ast::ClassPerl(_) => Ok(()),
            Ast::Flags(set) => self.flags(&set.flags),
            Ast::Literal(lit) => self.literal(lit),
            Ast::Assertion(a) => match a.kind {
                ast::AssertionKind::StartLine
                | ast::AssertionKind::EndLine
                | ast::AssertionKind::StartText
                | ast::AssertionKind::EndText
                | ast::AssertionKind::WordBoundary
                | ast::AssertionKind::NotWordBoundary => Ok(()),
                _ => self.refuse(
                    &a.span,
                    "is not RE2 syntax: RE2 knows only \\b and \\B as word boundaries \
                     (and reads \\< and \\> as the characters < and >)",
                ),
            },
            Ast::ClassUnicode(class) => self.unicode_class(class),
            Ast::ClassBracketed(class) => self.bracketed(class),
            Ast::Repetition(rep) => {
                if let Ast::Repetition(inner) = rep.ast.as_ref() {
                    return self.refuse(
                        &inner.op.span,
                        "is followed by another repetition operator, which RE2 refuses \
                         (write a group, as in (?:a*)*)",
                    );
                }
                let budget = match &rep.op.kind {
                    RepetitionKind::Range(range) => self.counted(&rep.op.span, range, budget)?,
                    _ => budget,
                };
                self.node(&rep.ast, budget)
            }
            Ast::Group(group) => {
                match &group.kind {
                    GroupKind::CaptureIndex(_) => {}
                    GroupKind::CaptureName { name, .. } => {
                        if !name
                            .name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
                        {
                            return self.refuse(
                                &name.span,
                                "is not a group name RE2 accepts (letters, digits and _)",
                            );
                        }
                    }
                    GroupKind::NonCapturing(flags) => self.flags(flags)?,
                }
                self.node(&group.ast, budget)
            }
            Ast::Alternation(alt) => alt.asts.iter().try_for_each(|a| self.node(a, budget)),
            Ast::Concat(cat) => cat.asts.iter().try_for_each(|a| self.node(a, budget)),
        }
    }

    fn flags(&self, flags: &ast::Flags) -> Result<(), String> {
        for item in &flags.items {
            match item.kind {
                FlagsItemKind::Negation
                | FlagsItemKind::Flag(
                    Flag::CaseInsensitive
                    | Flag::MultiLine
                    | Flag::DotMatchesNewLine
                    | Flag::SwapGreed,
                ) => {}
                FlagsItemKind::Flag(Flag::Unicode | Flag::CRLF | Flag::IgnoreWhitespace) => {
                    return self.refuse(
                        &item.span,
                        "is not a flag RE2 knows (RE2 knows i, m, s and U)",
                    );
                }
            }
        }
        Ok(())
    }

    fn literal(&self, lit: &ast::Literal) -> Result<(), String> {
        match lit.kind {
            LiteralKind::HexFixed(HexLiteralKind::UnicodeShort | HexLiteralKind::UnicodeLong)
            | LiteralKind::HexBrace(HexLiteralKind::UnicodeShort | HexLiteralKind::UnicodeLong) => {
                self.refuse(&lit.span, "is not RE2 syntax; write \\xHH instead")
            }
            LiteralKind::HexFixed(HexLiteralKind::X) | LiteralKind::HexBrace(HexLiteralKind::X)
                if u32::from(lit.c) > 0xFF =>
            {
                self.refuse(
                    &lit.span,
                    "is above \\xFF: Envoy's RE2 matches bytes and refuses it; match the \
                     character's UTF-8 bytes, each written as \\xHH",
                )
            }
            _ if !lit.c.is_ascii()
                && !matches!(
                    lit.kind,
                    LiteralKind::HexFixed(_) | LiteralKind::HexBrace(_)
                ) =>
            {
                self.refuse(
                    &lit.span,
                    "is not ASCII: Envoy's RE2 matches bytes, where it would stand for its \
                     UTF-8 bytes as separate characters; write those bytes as \\xHH escapes",
                )
            }
            _ => Ok(()),
        }
    }

    /// A counted repetition must be written as RE2 reads one (`{n}`, `{n,}`,
    /// `{n,m}`; RE2 reads `{,m}` as text), stay within 1000, and leave some
    /// of the bound for what it repeats.
    fn counted(
        &self,
        span: &ast::Span,
        range: &RepetitionRange,
        budget: u32,
    ) -> Result<u32, String> {
        let text = self.text(span);
        let body = text.trim_end_matches('?');
        let well_formed = body
            .strip_prefix('{')
            .and_then(|b| b.strip_suffix('}'))
            .is_some_and(|inner| {
                let (lo, hi) = inner.split_once(',').unwrap_or((inner, ""));
                !lo.is_empty()
                    && lo.bytes().all(|b| b.is_ascii_digit())
                    && hi.bytes().all(|b| b.is_ascii_digit())
            });
        if !well_formed {
            self.refuse(
                span,
                "is not a counted repetition RE2 reads (it takes {n}, {n,} or {n,m} \
                 without spaces, and reads {,m} as text)",
            )?;
        }
        let most = match *range {
            RepetitionRange::Exactly(n) | RepetitionRange::AtLeast(n) => n,
            RepetitionRange::Bounded(lo, hi) => lo.max(hi),
        };
        if most > MAX_REPEAT {
            self.refuse(
                span,
                "repeats more than 1000 times, RE2's limit for a counted repetition",
            )?;
        }
        let left = budget.checked_div(most).unwrap_or(budget);
        if left == 0 {
            self.refuse(
                span,
                "with the repetitions around it repeats its operand more than 1000 times, \
                 RE2's limit for nested counted repetitions",
            )?;
        }
        Ok(left)
    }

    fn unicode_class(&self, class: &ast::ClassUnicode) -> Result<(), String> {
        self.refuse(
            &class.span,
            "is a Unicode class, which Envoy's RE2 applies to single bytes (Latin-1) only; \
             use ASCII classes such as [a-zA-Z] or [[:alpha:]]",
        )
    }

    fn bracketed(&self, class: &ClassBracketed) -> Result<(), String> {
        match &class.kind {
            ClassSet::BinaryOp(op) => self.refuse(
                &op.span,
                "uses a class set operation (&&, -- or ~~), which RE2 does not know",
            ),
            ClassSet::Item(item) => self.class_item(item),
        }
    }

    fn class_item(&self, item: &ClassSetItem) -> Result<(), String> {
        match item {
            ClassSetItem::Empty(_) | ClassSetItem::Ascii(_) | ClassSetItem::Perl(_) => Ok(()),
            ClassSetItem::Range(range) => {
                self.literal(&range.start)?;
                self.literal(&range.end)
            }
            ClassSetItem::Literal(lit) => self.literal(lit),
            ClassSetItem::Unicode(class) => self.unicode_class(class),
            ClassSetItem::Bracketed(nested) => self.refuse(
                &nested.span,
                "is a class nested in a class, which RE2 does not know (it reads [ inside a \
                 class as the character [); escape it as \\[",
            ),
            ClassSetItem::Union(union) => union.items.iter().try_for_each(|i| self.class_item(i)),
        }
    }
}
