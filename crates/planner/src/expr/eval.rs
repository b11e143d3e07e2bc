//! The compiled evaluator: a rule turned into a tree over field indices and interned segment ids,
//! evaluated once per customer and goal by the planner.

use std::collections::BTreeMap;

use super::{CmpOp, Expr, Field, Literal, NUM_FIELDS};

/// What the compiled evaluator reads about one customer.
#[derive(Debug, Clone)]
pub struct Row<'a> {
    /// Indexed by [`super::NumField::index`]; NaN when the customer has no value.
    pub numbers: [f64; NUM_FIELDS],
    /// Interned segment id (see [`Compiled::new`]).
    pub segment: u32,
    pub locale: Option<&'a str>,
    pub attributes: Option<&'a BTreeMap<String, String>>,
}

/// A rule ready for fast evaluation.
#[derive(Debug, Clone)]
pub struct Compiled {
    root: Node,
}

#[derive(Debug, Clone)]
enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Num {
        idx: usize,
        op: CmpOp,
        v: f64,
    },
    NumIn {
        idx: usize,
        vals: Vec<f64>,
        negated: bool,
    },
    Seg {
        ids: Vec<u32>,
        negated: bool,
    },
    Locale {
        vals: Vec<String>,
        negated: bool,
    },
    AttrText {
        name: String,
        vals: Vec<String>,
        negated: bool,
    },
    AttrNumIn {
        name: String,
        vals: Vec<f64>,
        negated: bool,
    },
    AttrNum {
        name: String,
        op: CmpOp,
        v: f64,
    },
}

/// Segment id that no customer has (a segment name the interner does not know).
const NO_SEGMENT: u32 = u32::MAX;

impl Compiled {
    /// Compiles `expr`; `segment_id` interns segment names (unknown names never match).
    pub fn new(expr: &Expr, segment_id: &dyn Fn(&str) -> Option<u32>) -> Self {
        Self {
            root: compile(expr, segment_id),
        }
    }

    /// Whether the customer in `row` is eligible.
    pub fn matches(&self, row: &Row<'_>) -> bool {
        eval(&self.root, row)
    }
}

fn compile(expr: &Expr, seg: &dyn Fn(&str) -> Option<u32>) -> Node {
    match expr {
        Expr::And(parts) => Node::And(parts.iter().map(|p| compile(p, seg)).collect()),
        Expr::Or(parts) => Node::Or(parts.iter().map(|p| compile(p, seg)).collect()),
        Expr::Not(inner) => Node::Not(Box::new(compile(inner, seg))),
        Expr::Compare { field, op, value } => match (field, value) {
            (Field::Num(n), Literal::Num(v)) => Node::Num {
                idx: n.index(),
                op: *op,
                v: *v,
            },
            (Field::Attr(a), Literal::Num(v)) => Node::AttrNum {
                name: a.clone(),
                op: *op,
                v: *v,
            },
            _ => list(field, std::slice::from_ref(value), *op == CmpOp::Ne, seg),
        },
        Expr::In {
            field,
            values,
            negated,
        } => list(field, values, *negated, seg),
    }
}

fn list(
    field: &Field,
    values: &[Literal],
    negated: bool,
    seg: &dyn Fn(&str) -> Option<u32>,
) -> Node {
    let texts = || {
        values.iter().filter_map(|v| {
            if let Literal::Text(t) = v {
                Some(t.clone())
            } else {
                None
            }
        })
    };
    let nums = || {
        values.iter().filter_map(|v| {
            if let Literal::Num(n) = v {
                Some(*n)
            } else {
                None
            }
        })
    };
    match field {
        Field::Num(n) => Node::NumIn {
            idx: n.index(),
            vals: nums().collect(),
            negated,
        },
        Field::Segment => Node::Seg {
            ids: texts().map(|t| seg(&t).unwrap_or(NO_SEGMENT)).collect(),
            negated,
        },
        Field::Locale => Node::Locale {
            vals: texts().map(|t| t.to_ascii_lowercase()).collect(),
            negated,
        },
        Field::Attr(a) if matches!(values.first(), Some(Literal::Num(_))) => Node::AttrNumIn {
            name: a.clone(),
            vals: nums().collect(),
            negated,
        },
        Field::Attr(a) => Node::AttrText {
            name: a.clone(),
            vals: texts().collect(),
            negated,
        },
    }
}

fn eval(node: &Node, row: &Row<'_>) -> bool {
    match node {
        Node::And(parts) => parts.iter().all(|p| eval(p, row)),
        Node::Or(parts) => parts.iter().any(|p| eval(p, row)),
        Node::Not(inner) => !eval(inner, row),
        Node::Num { idx, op, v } => {
            let x = row.numbers[*idx];
            !x.is_nan() && op.test(x, *v)
        }
        Node::NumIn { idx, vals, negated } => {
            let x = row.numbers[*idx];
            !x.is_nan() && vals.contains(&x) != *negated
        }
        Node::Seg { ids, negated } => ids.contains(&row.segment) != *negated,
        Node::Locale { vals, negated } => row
            .locale
            .is_some_and(|l| vals.iter().any(|v| v.eq_ignore_ascii_case(l)) != *negated),
        Node::AttrText {
            name,
            vals,
            negated,
        } => row
            .attributes
            .and_then(|m| m.get(name))
            .is_some_and(|raw| vals.iter().any(|v| v.eq_ignore_ascii_case(raw.trim())) != *negated),
        Node::AttrNumIn {
            name,
            vals,
            negated,
        } => row
            .attributes
            .and_then(|m| m.get(name))
            .and_then(|raw| raw.trim().parse::<f64>().ok())
            .is_some_and(|x| vals.contains(&x) != *negated),
        Node::AttrNum { name, op, v } => row
            .attributes
            .and_then(|m| m.get(name))
            .and_then(|raw| raw.trim().parse::<f64>().ok())
            .is_some_and(|x| op.test(x, *v)),
    }
}
