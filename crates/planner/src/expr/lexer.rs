//! Tokens of the eligibility language and the lexer that finds them, with character spans.

use super::{CmpOp, ExprError, ExprErrorKind};

/// One token and where it sits in the rule (character offsets, end exclusive).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub kind: Tok,
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    Cmp(CmpOp),
    And,
    Or,
    Not,
    In,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Eof,
}

impl Tok {
    /// How the token reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Str(s) => format!("text \"{s}\""),
            Tok::Num(n) => format!("number {n}"),
            Tok::Cmp(op) => format!("`{}`", op.as_str()),
            Tok::And => "`and`".into(),
            Tok::Or => "`or`".into(),
            Tok::Not => "`not`".into(),
            Tok::In => "`in`".into(),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::LBracket => "`[`".into(),
            Tok::RBracket => "`]`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Eof => "the end of the rule".into(),
        }
    }
}

/// Splits a rule into tokens; the last token is always [`Tok::Eof`].
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, ExprError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let single = |kind: Tok| Token {
            kind,
            start,
            end: start + 1,
        };
        match c {
            '(' => {
                out.push(single(Tok::LParen));
                i += 1;
            }
            ')' => {
                out.push(single(Tok::RParen));
                i += 1;
            }
            '[' => {
                out.push(single(Tok::LBracket));
                i += 1;
            }
            ']' => {
                out.push(single(Tok::RBracket));
                i += 1;
            }
            ',' => {
                out.push(single(Tok::Comma));
                i += 1;
            }
            '=' => {
                let len = if chars.get(i + 1) == Some(&'=') { 2 } else { 1 };
                out.push(Token {
                    kind: Tok::Cmp(CmpOp::Eq),
                    start,
                    end: start + len,
                });
                i += len;
            }
            '!' => {
                if chars.get(i + 1) == Some(&'=') {
                    out.push(Token {
                        kind: Tok::Cmp(CmpOp::Ne),
                        start,
                        end: start + 2,
                    });
                    i += 2;
                } else {
                    out.push(single(Tok::Not));
                    i += 1;
                }
            }
            '<' | '>' => {
                let eq = chars.get(i + 1) == Some(&'=');
                let op = match (c, eq) {
                    ('<', false) => CmpOp::Lt,
                    ('<', true) => CmpOp::Le,
                    ('>', false) => CmpOp::Gt,
                    _ => CmpOp::Ge,
                };
                let len = if eq { 2 } else { 1 };
                out.push(Token {
                    kind: Tok::Cmp(op),
                    start,
                    end: start + len,
                });
                i += len;
            }
            '&' | '|' => {
                if chars.get(i + 1) == Some(&c) {
                    let kind = if c == '&' { Tok::And } else { Tok::Or };
                    out.push(Token {
                        kind,
                        start,
                        end: start + 2,
                    });
                    i += 2;
                } else {
                    let expected = if c == '&' {
                        "`&&` or `and`"
                    } else {
                        "`||` or `or`"
                    };
                    return Err(ExprError::new(
                        start,
                        start + 1,
                        ExprErrorKind::Unexpected {
                            found: format!("`{c}`"),
                            expected: expected.into(),
                        },
                    ));
                }
            }
            '"' | '\'' => {
                let quote = c;
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(ExprError::new(
                                start,
                                chars.len(),
                                ExprErrorKind::UnterminatedString,
                            ));
                        }
                        Some(&ch) if ch == quote => {
                            i += 1;
                            break;
                        }
                        Some('\\') => match chars.get(i + 1) {
                            Some(&esc @ ('\\' | '"' | '\'')) => {
                                text.push(esc);
                                i += 2;
                            }
                            _ => {
                                return Err(ExprError::new(
                                    i,
                                    (i + 2).min(chars.len()),
                                    ExprErrorKind::Unexpected {
                                        found: "`\\`".into(),
                                        expected: "an escape: \\\\, \\\" or \\'".into(),
                                    },
                                ));
                            }
                        },
                        Some(&ch) => {
                            text.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push(Token {
                    kind: Tok::Str(text),
                    start,
                    end: i,
                });
            }
            c if c.is_ascii_digit()
                || c == '.'
                || (c == '-' && next_starts_number(&chars, i + 1)) =>
            {
                let mut j = i + 1;
                while j < chars.len() {
                    let d = chars[j];
                    let exp_sign = (d == '-' || d == '+') && matches!(chars[j - 1], 'e' | 'E');
                    if d.is_ascii_digit()
                        || d == '.'
                        || d == '_'
                        || d == 'e'
                        || d == 'E'
                        || exp_sign
                    {
                        j += 1;
                    } else {
                        break;
                    }
                }
                let raw: String = chars[i..j].iter().filter(|&&d| d != '_').collect();
                let value: f64 = raw.parse().map_err(|_| {
                    ExprError::new(
                        start,
                        j,
                        ExprErrorKind::BadNumber(chars[i..j].iter().collect()),
                    )
                })?;
                if !value.is_finite() {
                    return Err(ExprError::new(
                        start,
                        j,
                        ExprErrorKind::BadNumber(chars[i..j].iter().collect()),
                    ));
                }
                out.push(Token {
                    kind: Tok::Num(value),
                    start,
                    end: j,
                });
                i = j;
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut j = i + 1;
                while j < chars.len()
                    && (chars[j].is_alphanumeric() || chars[j] == '_' || chars[j] == '.')
                {
                    j += 1;
                }
                let word: String = chars[i..j].iter().collect();
                let kind = match word.to_ascii_lowercase().as_str() {
                    "and" => Tok::And,
                    "or" => Tok::Or,
                    "not" => Tok::Not,
                    "in" => Tok::In,
                    _ => Tok::Ident(word),
                };
                out.push(Token {
                    kind,
                    start,
                    end: j,
                });
                i = j;
            }
            other => {
                return Err(ExprError::new(
                    start,
                    start + 1,
                    ExprErrorKind::Unexpected {
                        found: format!("`{other}`"),
                        expected: "a field, a value, an operator or a parenthesis".into(),
                    },
                ));
            }
        }
    }
    out.push(Token {
        kind: Tok::Eof,
        start: chars.len(),
        end: chars.len(),
    });
    Ok(out)
}

fn next_starts_number(chars: &[char], i: usize) -> bool {
    chars
        .get(i)
        .is_some_and(|c| c.is_ascii_digit() || *c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<Tok> {
        tokenize(src)
            .expect("tokenizes")
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    #[test]
    fn operators_keywords_and_literals() {
        assert_eq!(
            kinds("a>=1 AND b!='x' || !c in [-2.5e1]"),
            vec![
                Tok::Ident("a".into()),
                Tok::Cmp(CmpOp::Ge),
                Tok::Num(1.0),
                Tok::And,
                Tok::Ident("b".into()),
                Tok::Cmp(CmpOp::Ne),
                Tok::Str("x".into()),
                Tok::Or,
                Tok::Not,
                Tok::Ident("c".into()),
                Tok::In,
                Tok::LBracket,
                Tok::Num(-25.0),
                Tok::RBracket,
                Tok::Eof,
            ]
        );
    }

    #[test]
    fn strings_keep_escapes_and_other_quotes() {
        assert_eq!(
            kinds(r#""Can't Lose Them""#)[0],
            Tok::Str("Can't Lose Them".into())
        );
        assert_eq!(kinds(r"'Can\'t'")[0], Tok::Str("Can't".into()));
    }

    #[test]
    fn spans_count_characters() {
        let toks = tokenize("é = 'ü'").expect("tokenizes");
        assert_eq!((toks[1].start, toks[1].end), (2, 3));
        assert_eq!((toks[2].start, toks[2].end), (4, 7));
    }

    #[test]
    fn unterminated_string_is_an_error_at_its_quote() {
        let err = tokenize("segment = 'At Risk").expect_err("unterminated");
        assert_eq!(err.start, 10);
        assert_eq!(err.kind, ExprErrorKind::UnterminatedString);
    }

    #[test]
    fn lone_ampersand_is_an_error() {
        let err = tokenize("a = 1 & b = 2").expect_err("lone &");
        assert_eq!(err.start, 6);
    }
}
