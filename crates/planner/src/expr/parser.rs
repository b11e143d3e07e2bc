//! Recursive-descent parser of eligibility rules; checks field names, segment names and operand
//! types while it parses so every error points at the offending characters.

use super::lexer::{tokenize, Tok, Token};
use super::{
    builtin_field_names, CmpOp, Expr, ExprError, ExprErrorKind, Field, Literal, NumField,
    Vocabulary,
};

/// Parses one rule, checking it against the known names in `vocab`.
pub fn parse(src: &str, vocab: &Vocabulary) -> Result<Expr, ExprError> {
    let tokens = tokenize(src)?;
    let mut p = Parser {
        tokens,
        pos: 0,
        vocab,
    };
    if matches!(p.peek().kind, Tok::Eof) {
        return Err(p.unexpected("a rule such as `segment = \"At Risk\"`"));
    }
    let expr = p.or()?;
    if !matches!(p.peek().kind, Tok::Eof) {
        return Err(p.unexpected("`and`, `or` or the end of the rule"));
    }
    Ok(expr)
}

struct Parser<'v> {
    tokens: Vec<Token>,
    pos: usize,
    vocab: &'v Vocabulary,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        // tokenize always ends with Eof and `advance` never moves past it.
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn advance(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn unexpected(&self, expected: &str) -> ExprError {
        let t = self.peek();
        let end = if t.end > t.start { t.end } else { t.start + 1 };
        ExprError::new(
            t.start,
            end,
            ExprErrorKind::Unexpected {
                found: t.kind.describe(),
                expected: expected.into(),
            },
        )
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        let mut parts = vec![self.and()?];
        while matches!(self.peek().kind, Tok::Or) {
            self.advance();
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        let mut parts = vec![self.unary()?];
        while matches!(self.peek().kind, Tok::And) {
            self.advance();
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::And(parts)
        })
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        match self.peek().kind {
            Tok::Not => {
                self.advance();
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            Tok::LParen => {
                self.advance();
                let inner = self.or()?;
                if !matches!(self.peek().kind, Tok::RParen) {
                    return Err(self.unexpected("`)`, `and` or `or`"));
                }
                self.advance();
                Ok(inner)
            }
            _ => self.comparison(),
        }
    }

    fn comparison(&mut self) -> Result<Expr, ExprError> {
        let first = self.peek().clone();
        match first.kind {
            Tok::Ident(name) => {
                self.advance();
                let field = self.field(&name, first.start, first.end)?;
                self.after_field(field)
            }
            Tok::Num(_) | Tok::Str(_) => {
                // literal op field
                self.advance();
                let lit_tok = Token {
                    kind: first.kind.clone(),
                    start: first.start,
                    end: first.end,
                };
                let op = match self.peek().kind {
                    Tok::Cmp(op) => op,
                    _ => return Err(self.unexpected("a comparison operator (=, !=, <, <=, >, >=)")),
                };
                self.advance();
                let ftok = self.advance();
                let field = match ftok.kind {
                    Tok::Ident(name) => self.field(&name, ftok.start, ftok.end)?,
                    other => {
                        let end = if ftok.end > ftok.start {
                            ftok.end
                        } else {
                            ftok.start + 1
                        };
                        return Err(ExprError::new(
                            ftok.start,
                            end,
                            ExprErrorKind::Unexpected {
                                found: other.describe(),
                                expected: "a field name".into(),
                            },
                        ));
                    }
                };
                let op = op.flipped();
                let value = self.check_literal(&field, op, &lit_tok)?;
                Ok(Expr::Compare { field, op, value })
            }
            _ => Err(self.unexpected("a field name, `not` or `(`")),
        }
    }

    fn after_field(&mut self, field: Field) -> Result<Expr, ExprError> {
        match self.peek().kind.clone() {
            Tok::Cmp(op) => {
                self.advance();
                let lit = self.literal_token()?;
                let value = self.check_literal(&field, op, &lit)?;
                Ok(Expr::Compare { field, op, value })
            }
            Tok::In => {
                self.advance();
                self.list(field, false)
            }
            Tok::Not => {
                self.advance();
                if !matches!(self.peek().kind, Tok::In) {
                    return Err(self.unexpected("`in` after `not`"));
                }
                self.advance();
                self.list(field, true)
            }
            _ => Err(self.unexpected("a comparison operator (=, !=, <, <=, >, >=) or `in`")),
        }
    }

    fn list(&mut self, field: Field, negated: bool) -> Result<Expr, ExprError> {
        if !matches!(self.peek().kind, Tok::LBracket) {
            return Err(self.unexpected("`[` to start a list"));
        }
        self.advance();
        let mut values = Vec::new();
        loop {
            if matches!(self.peek().kind, Tok::RBracket) && !values.is_empty() {
                self.advance();
                break;
            }
            let lit = self.literal_token()?;
            let value = self.check_literal(&field, CmpOp::Eq, &lit)?;
            if let Some(first) = values.first() {
                if std::mem::discriminant(first) != std::mem::discriminant(&value) {
                    let expected = if matches!(first, Literal::Num(_)) {
                        "a number"
                    } else {
                        "text"
                    };
                    return Err(ExprError::new(
                        lit.start,
                        lit.end,
                        ExprErrorKind::TypeMismatch {
                            field: format!("{field} list"),
                            expected,
                            found: lit.kind.describe(),
                        },
                    ));
                }
            }
            values.push(value);
            match self.peek().kind {
                Tok::Comma => {
                    self.advance();
                }
                Tok::RBracket => {
                    self.advance();
                    break;
                }
                _ => return Err(self.unexpected("`,` or `]`")),
            }
        }
        Ok(Expr::In {
            field,
            values,
            negated,
        })
    }

    fn literal_token(&mut self) -> Result<Token, ExprError> {
        match self.peek().kind {
            Tok::Num(_) | Tok::Str(_) => Ok(self.advance()),
            _ => Err(self.unexpected("a number or a quoted text")),
        }
    }

    fn field(&self, name: &str, start: usize, end: usize) -> Result<Field, ExprError> {
        if name == "segment" {
            return Ok(Field::Segment);
        }
        if name == "locale" {
            return Ok(Field::Locale);
        }
        if let Some(n) = NumField::from_name(name) {
            return Ok(Field::Num(n));
        }
        let explicit = name
            .strip_prefix("attr.")
            .or_else(|| name.strip_prefix("attributes."));
        if let Some(attr) = explicit {
            return match &self.vocab.attributes {
                Some(known) if !known.iter().any(|k| k == attr) => Err(ExprError::new(
                    start,
                    end,
                    ExprErrorKind::UnknownAttribute {
                        name: attr.to_string(),
                        known: known.clone(),
                    },
                )),
                _ => Ok(Field::Attr(attr.to_string())),
            };
        }
        if let Some(known) = &self.vocab.attributes {
            if known.iter().any(|k| k == name) {
                return Ok(Field::Attr(name.to_string()));
            }
        }
        let mut known = builtin_field_names();
        if let Some(attrs) = &self.vocab.attributes {
            known.extend(attrs.iter().map(|a| format!("attr.{a}")));
        } else {
            known.push("attr.<name>".into());
        }
        Err(ExprError::new(
            start,
            end,
            ExprErrorKind::UnknownField {
                name: name.to_string(),
                known,
            },
        ))
    }

    fn check_literal(&self, field: &Field, op: CmpOp, tok: &Token) -> Result<Literal, ExprError> {
        let err = |kind| Err(ExprError::new(tok.start, tok.end, kind));
        match (field, &tok.kind) {
            (Field::Num(_), Tok::Num(n)) => Ok(Literal::Num(*n)),
            (Field::Num(_), other) => err(ExprErrorKind::TypeMismatch {
                field: field.to_string(),
                expected: "a number",
                found: other.describe(),
            }),
            (Field::Segment | Field::Locale, Tok::Num(_)) => err(ExprErrorKind::TypeMismatch {
                field: field.to_string(),
                expected: "text",
                found: tok.kind.describe(),
            }),
            (Field::Segment | Field::Locale | Field::Attr(_), Tok::Str(_))
                if !matches!(op, CmpOp::Eq | CmpOp::Ne) =>
            {
                err(ExprErrorKind::TextOrdering {
                    field: field.to_string(),
                    op,
                })
            }
            (Field::Segment, Tok::Str(s)) => match &self.vocab.segments {
                Some(known) if !known.iter().any(|k| k == s) => {
                    err(ExprErrorKind::UnknownSegment {
                        name: s.clone(),
                        known: known.clone(),
                    })
                }
                _ => Ok(Literal::Text(s.clone())),
            },
            (_, Tok::Str(s)) => Ok(Literal::Text(s.clone())),
            (_, Tok::Num(n)) => Ok(Literal::Num(*n)),
            (_, other) => err(ExprErrorKind::Unexpected {
                found: other.describe(),
                expected: "a literal".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfm() -> Vocabulary {
        Vocabulary {
            segments: Some(crate::RFM_SEGMENTS.iter().map(|s| s.to_string()).collect()),
            templates: None,
            attributes: Some(vec!["country".into(), "tier".into(), "age".into()]),
        }
    }

    fn ok(src: &str) -> Expr {
        parse(src, &rfm()).unwrap_or_else(|e| panic!("{src}: {e}"))
    }

    fn err(src: &str) -> ExprError {
        match parse(src, &rfm()) {
            Ok(e) => panic!("{src} parsed as {e:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn precedence_not_over_and_over_or() {
        let e = ok("not frequency > 1 and clv > 2 or p_alive < 0.5");
        let expected = Expr::Or(vec![
            Expr::And(vec![
                Expr::Not(Box::new(Expr::Compare {
                    field: Field::Num(NumField::Frequency),
                    op: CmpOp::Gt,
                    value: Literal::Num(1.0),
                })),
                Expr::Compare {
                    field: Field::Num(NumField::Clv),
                    op: CmpOp::Gt,
                    value: Literal::Num(2.0),
                },
            ]),
            Expr::Compare {
                field: Field::Num(NumField::PAlive),
                op: CmpOp::Lt,
                value: Literal::Num(0.5),
            },
        ]);
        assert_eq!(e, expected);
    }

    #[test]
    fn parentheses_override_precedence() {
        let e = ok("recency_days > 1 and (frequency = 1 or frequency = 2)");
        assert!(matches!(&e, Expr::And(parts) if matches!(parts[1], Expr::Or(_))));
    }

    #[test]
    fn literal_first_comparisons_flip() {
        assert_eq!(ok("30 < recency_days"), ok("recency_days > 30"));
    }

    #[test]
    fn in_lists_and_attributes() {
        let e = ok(
            r#"segment not in ["At Risk", "Can't Lose Them",] and attr.country = 'DE' and tier = "gold""#,
        );
        assert_eq!(
            e.segments(),
            vec!["At Risk".to_string(), "Can't Lose Them".to_string()]
        );
        assert!(
            matches!(&e, Expr::And(p) if matches!(&p[1], Expr::Compare { field: Field::Attr(a), .. } if a == "country"))
        );
    }

    #[test]
    fn display_round_trips() {
        for src in [
            r#"segment in ["At Risk", "Hibernating"] and (clv >= 100 or not p_alive < 0.2)"#,
            "not (frequency = 1 and recency_days <= 30)",
            r#"locale != "de" or attr.tier not in ["gold", "silver"] or attr.age in [30, 40]"#,
        ] {
            let e = ok(src);
            assert_eq!(ok(&e.to_string()), e, "{src} -> {e}");
        }
    }

    #[test]
    fn missing_operator_points_at_the_token_after_the_field() {
        let e = err("segment 'At Risk'");
        assert_eq!((e.start, e.end), (8, 17));
        let msg = e.to_string();
        assert!(msg.contains("expected a comparison operator"), "{msg}");
        assert!(msg.starts_with("column 9:"), "{msg}");
    }

    #[test]
    fn unknown_segment_lists_the_known_ones() {
        let e = err(r#"segment in ["At Risk", "At Rsk"]"#);
        assert_eq!(e.start, 23);
        match e.kind {
            ExprErrorKind::UnknownSegment { name, known } => {
                assert_eq!(name, "At Rsk");
                assert_eq!(known.len(), 10);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_field_and_attribute() {
        let e = err("recency > 3");
        assert_eq!((e.start, e.end), (0, 7));
        assert!(e.to_string().contains("recency_days"), "{e}");
        let e = err("attr.colour = 'red'");
        assert!(
            matches!(e.kind, ExprErrorKind::UnknownAttribute { .. }),
            "{e:?}"
        );
    }

    #[test]
    fn type_errors() {
        assert!(matches!(
            err("clv > 'high'").kind,
            ExprErrorKind::TypeMismatch { .. }
        ));
        assert!(matches!(
            err("segment = 3").kind,
            ExprErrorKind::TypeMismatch { .. }
        ));
        assert!(matches!(
            err("locale < 'de'").kind,
            ExprErrorKind::TextOrdering { .. }
        ));
        assert!(matches!(
            err("frequency in [1, 'two']").kind,
            ExprErrorKind::TypeMismatch { .. }
        ));
    }

    #[test]
    fn structural_errors() {
        let e = err("");
        assert!(e.to_string().contains("expected a rule"), "{e}");
        let e = err("(clv > 1");
        assert_eq!(e.start, 8);
        assert!(e.to_string().contains("expected `)`"), "{e}");
        let e = err("clv > 1 clv");
        assert!(e.to_string().contains("`and`, `or` or the end"), "{e}");
        let e = err("segment in []");
        assert!(e.to_string().contains("a number or a quoted text"), "{e}");
        let e = err("clv > 1 and");
        assert_eq!(e.start, 11);
        let e = err("segment not 'x'");
        assert!(e.to_string().contains("`in` after `not`"), "{e}");
    }

    #[test]
    fn unchecked_vocabulary_accepts_any_segment_and_attribute() {
        let e = parse(
            "segment = 'Whatever' and attr.x = 1",
            &Vocabulary::default(),
        )
        .expect("parses");
        assert_eq!(e.segments(), vec!["Whatever".to_string()]);
    }
}
