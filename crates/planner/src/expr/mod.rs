//! The eligibility expression language: which customers a goal may target.
//!
//! ```text
//! rule       := or
//! or         := and (("or" | "||") and)*
//! and        := unary (("and" | "&&") unary)*
//! unary      := ("not" | "!") unary | "(" rule ")" | comparison
//! comparison := field op literal | literal op field
//!             | field ["not"] "in" "[" literal ("," literal)* [","] "]"
//! op         := "=" | "==" | "!=" | "<" | "<=" | ">" | ">="
//! literal    := number | "text" | 'text'
//! ```
//!
//! Keywords are case-insensitive. Fields are the per-customer numbers of [`NumField`], the text
//! fields `segment` and `locale`, and customer attributes (`attr.<name>`, or the bare name when
//! it is a known attribute). Text fields take only `=`, `!=` and `in`; `segment` compares exactly
//! (and its names are checked against the known segments), `locale` and attributes compare
//! ASCII-case-insensitively. An attribute compared with a number is read as a number; the values
//! of one `in` list are all numbers or all text.
//!
//! A comparison whose field has no value for a customer (no prediction yet, no locale, attribute
//! absent or not a number) is false, whatever the operator; `not (clv > 100)` is therefore true
//! for a customer without a prediction while `clv <= 100` is false.
//!
//! This module owns parsing ([`parse`]), the syntax tree ([`Expr`]) and both evaluators: the
//! straightforward one over a [`Subject`] and the compiled one the planner runs per customer.

mod eval;
mod lexer;
mod parser;

use std::collections::BTreeMap;
use std::fmt;

pub use eval::{Compiled, Row};
pub use parser::parse;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    /// The operator with its operands swapped (`1 < x` is `x > 1`).
    pub fn flipped(self) -> Self {
        match self {
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::Le => CmpOp::Ge,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::Ge => CmpOp::Le,
            other => other,
        }
    }

    /// Applies the operator to two numbers.
    pub fn test(self, a: f64, b: f64) -> bool {
        match self {
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
        }
    }
}

/// The numeric per-customer fields a rule can compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NumField {
    /// Days from the last purchase to the plan date.
    RecencyDays,
    /// Number of purchases.
    Frequency,
    /// Distinct purchase days after the first one.
    RepeatPurchases,
    /// Net revenue of the customer.
    MonetaryTotal,
    AvgOrderValue,
    /// Days from the first purchase to the plan date.
    TenureDays,
    /// Probability that the customer is still active (needs predictions).
    PAlive,
    /// Predicted customer lifetime value (needs predictions).
    Clv,
    /// Predicted purchases over the next 90 days (needs predictions).
    ExpectedPurchases90d,
    /// RFM recency score (1–5, needs segments).
    RScore,
    FScore,
    MScore,
    /// Days since the last campaign email (absent when never mailed).
    DaysSinceLastEmail,
    /// Days until the customer's product due soonest should be bought again (negative:
    /// overdue; absent without a due product — needs order lines and `retain recommend`).
    DaysUntilDue,
}

/// Number of [`NumField`] variants.
pub const NUM_FIELDS: usize = 14;

impl NumField {
    pub const ALL: [NumField; NUM_FIELDS] = [
        NumField::RecencyDays,
        NumField::Frequency,
        NumField::RepeatPurchases,
        NumField::MonetaryTotal,
        NumField::AvgOrderValue,
        NumField::TenureDays,
        NumField::PAlive,
        NumField::Clv,
        NumField::ExpectedPurchases90d,
        NumField::RScore,
        NumField::FScore,
        NumField::MScore,
        NumField::DaysSinceLastEmail,
        NumField::DaysUntilDue,
    ];

    pub fn name(self) -> &'static str {
        match self {
            NumField::RecencyDays => "recency_days",
            NumField::Frequency => "frequency",
            NumField::RepeatPurchases => "repeat_purchases",
            NumField::MonetaryTotal => "monetary_total",
            NumField::AvgOrderValue => "avg_order_value",
            NumField::TenureDays => "tenure_days",
            NumField::PAlive => "p_alive",
            NumField::Clv => "clv",
            NumField::ExpectedPurchases90d => "expected_purchases_90d",
            NumField::RScore => "r_score",
            NumField::FScore => "f_score",
            NumField::MScore => "m_score",
            NumField::DaysSinceLastEmail => "days_since_last_email",
            NumField::DaysUntilDue => "days_until_due",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Index into [`Subject::numbers`] / [`Row::numbers`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Names of every built-in field, for "known fields" messages.
pub fn builtin_field_names() -> Vec<String> {
    let mut names = vec!["segment".to_string(), "locale".to_string()];
    names.extend(NumField::ALL.iter().map(|f| f.name().to_string()));
    names
}

/// What a comparison reads from the customer.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    Num(NumField),
    Segment,
    Locale,
    Attr(String),
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Num(n) => f.write_str(n.name()),
            Field::Segment => f.write_str("segment"),
            Field::Locale => f.write_str("locale"),
            Field::Attr(a) => write!(f, "attr.{a}"),
        }
    }
}

/// A number or text literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Num(f64),
    Text(String),
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Num(n) => write!(f, "{n}"),
            Literal::Text(t) => write!(f, "{t:?}"),
        }
    }
}

/// A parsed eligibility rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Compare {
        field: Field,
        op: CmpOp,
        value: Literal,
    },
    In {
        field: Field,
        values: Vec<Literal>,
        negated: bool,
    },
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::And(parts) | Expr::Or(parts) => {
                let sep = if matches!(self, Expr::And(_)) {
                    " and "
                } else {
                    " or "
                };
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(sep)?;
                    }
                    if matches!(p, Expr::And(_) | Expr::Or(_)) {
                        write!(f, "({p})")?;
                    } else {
                        write!(f, "{p}")?;
                    }
                }
                Ok(())
            }
            Expr::Not(inner) => match inner.as_ref() {
                Expr::And(_) | Expr::Or(_) => write!(f, "not ({inner})"),
                _ => write!(f, "not {inner}"),
            },
            Expr::Compare { field, op, value } => write!(f, "{field} {} {value}", op.as_str()),
            Expr::In {
                field,
                values,
                negated,
            } => {
                write!(f, "{field} {}in [", if *negated { "not " } else { "" })?;
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
        }
    }
}

impl Expr {
    /// Every segment name the rule mentions, in order of first mention.
    pub fn segments(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.visit_segments(&mut out);
        out
    }

    fn visit_segments(&self, out: &mut Vec<String>) {
        let mut push = |lit: &Literal| {
            if let Literal::Text(t) = lit {
                if !out.contains(t) {
                    out.push(t.clone());
                }
            }
        };
        match self {
            Expr::And(parts) | Expr::Or(parts) => parts.iter().for_each(|p| p.visit_segments(out)),
            Expr::Not(inner) => inner.visit_segments(out),
            Expr::Compare {
                field: Field::Segment,
                value,
                ..
            } => push(value),
            Expr::In {
                field: Field::Segment,
                values,
                ..
            } => values.iter().for_each(push),
            _ => {}
        }
    }

    /// Evaluates the rule for one customer (the simple tree walk; the planner uses [`Compiled`]).
    pub fn evaluate(&self, s: &Subject<'_>) -> bool {
        match self {
            Expr::And(parts) => parts.iter().all(|p| p.evaluate(s)),
            Expr::Or(parts) => parts.iter().any(|p| p.evaluate(s)),
            Expr::Not(inner) => !inner.evaluate(s),
            Expr::Compare { field, op, value } => compare(field, *op, value, s),
            Expr::In {
                field,
                values,
                negated,
            } => {
                let numeric = matches!(values.first(), Some(Literal::Num(_)));
                if !has_value(field, numeric, s) {
                    return false;
                }
                let found = values.iter().any(|v| compare(field, CmpOp::Eq, v, s));
                found != *negated
            }
        }
    }
}

fn has_value(field: &Field, numeric: bool, s: &Subject<'_>) -> bool {
    match field {
        Field::Num(n) => !s.numbers[n.index()].is_nan(),
        Field::Segment => true,
        Field::Locale => s.locale.is_some(),
        Field::Attr(a) => match s.attributes.and_then(|m| m.get(a)) {
            None => false,
            Some(raw) => !numeric || raw.trim().parse::<f64>().is_ok(),
        },
    }
}

fn compare(field: &Field, op: CmpOp, value: &Literal, s: &Subject<'_>) -> bool {
    match (field, value) {
        (Field::Num(n), Literal::Num(v)) => {
            let x = s.numbers[n.index()];
            !x.is_nan() && op.test(x, *v)
        }
        (Field::Segment, Literal::Text(t)) => text_op(op, s.segment == t),
        (Field::Locale, Literal::Text(t)) => s
            .locale
            .is_some_and(|l| text_op(op, l.eq_ignore_ascii_case(t))),
        (Field::Attr(a), Literal::Text(t)) => s
            .attributes
            .and_then(|m| m.get(a))
            .is_some_and(|x| text_op(op, x.trim().eq_ignore_ascii_case(t))),
        (Field::Attr(a), Literal::Num(v)) => s
            .attributes
            .and_then(|m| m.get(a))
            .and_then(|x| x.trim().parse::<f64>().ok())
            .is_some_and(|x| op.test(x, *v)),
        // The parser rejects the other pairings.
        _ => false,
    }
}

fn text_op(op: CmpOp, equal: bool) -> bool {
    match op {
        CmpOp::Eq => equal,
        CmpOp::Ne => !equal,
        _ => false,
    }
}

/// What the simple evaluator reads about one customer.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    pub segment: &'a str,
    /// Indexed by [`NumField::index`]; NaN when the customer has no value.
    pub numbers: [f64; NUM_FIELDS],
    pub locale: Option<&'a str>,
    pub attributes: Option<&'a BTreeMap<String, String>>,
}

/// Names the rule may use: known segments, templates and customer attributes.
///
/// `None` means "not checked": any segment name / template / `attr.<name>` is accepted.
#[derive(Debug, Clone, Default)]
pub struct Vocabulary {
    pub segments: Option<Vec<String>>,
    pub templates: Option<Vec<String>>,
    pub attributes: Option<Vec<String>>,
}

/// A rule that does not parse or names something unknown, with the character span at fault.
#[derive(Debug, Clone, PartialEq)]
pub struct ExprError {
    /// Character offset in the rule where the problem starts.
    pub start: usize,
    /// Character offset (exclusive) where it ends.
    pub end: usize,
    pub kind: ExprErrorKind,
}

impl ExprError {
    pub(crate) fn new(start: usize, end: usize, kind: ExprErrorKind) -> Self {
        Self { start, end, kind }
    }
}

/// The kinds of rule error.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprErrorKind {
    Unexpected {
        found: String,
        expected: String,
    },
    UnterminatedString,
    BadNumber(String),
    UnknownField {
        name: String,
        known: Vec<String>,
    },
    UnknownSegment {
        name: String,
        known: Vec<String>,
    },
    UnknownAttribute {
        name: String,
        known: Vec<String>,
    },
    TypeMismatch {
        field: String,
        expected: &'static str,
        found: String,
    },
    TextOrdering {
        field: String,
        op: CmpOp,
    },
}

impl fmt::Display for ExprErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExprErrorKind::Unexpected { found, expected } => {
                write!(f, "expected {expected}, found {found}")
            }
            ExprErrorKind::UnterminatedString => {
                f.write_str("text literal is not closed: expected a closing quote")
            }
            ExprErrorKind::BadNumber(raw) => write!(f, "`{raw}` is not a number"),
            ExprErrorKind::UnknownField { name, known } => {
                write!(
                    f,
                    "unknown field `{name}`; known fields: {}",
                    known.join(", ")
                )
            }
            ExprErrorKind::UnknownSegment { name, known } => {
                write!(
                    f,
                    "unknown segment \"{name}\"; known segments: {}",
                    quote_list(known)
                )
            }
            ExprErrorKind::UnknownAttribute { name, known } => {
                if known.is_empty() {
                    write!(
                        f,
                        "unknown customer attribute `{name}`; the customers have no attributes"
                    )
                } else {
                    write!(
                        f,
                        "unknown customer attribute `{name}`; known attributes: {}",
                        known.join(", ")
                    )
                }
            }
            ExprErrorKind::TypeMismatch {
                field,
                expected,
                found,
            } => {
                write!(f, "`{field}` holds {expected}: expected {expected} to compare with, found {found}")
            }
            ExprErrorKind::TextOrdering { field, op } => write!(
                f,
                "`{field}` is text: expected `=`, `!=` or `in`, found `{}` (text has no order)",
                op.as_str()
            ),
        }
    }
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column {}: {}", self.start + 1, self.kind)
    }
}

impl std::error::Error for ExprError {}

fn quote_list(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}
