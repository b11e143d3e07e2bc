//! Evaluation of eligibility rules: semantics on hand-picked customers, and the compiled
//! evaluator agreeing with the tree walk on random rules and customers.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use retain_planner::expr::{
    parse, CmpOp, Compiled, Expr, Field, Literal, NumField, Row, Subject, Vocabulary, NUM_FIELDS,
};

const SEGMENTS: [&str; 3] = ["At Risk", "Champions", "Hibernating"];

fn subject<'a>(segment: &'a str, attrs: &'a BTreeMap<String, String>) -> Subject<'a> {
    let mut numbers = [f64::NAN; NUM_FIELDS];
    numbers[NumField::RecencyDays.index()] = 120.0;
    numbers[NumField::Frequency.index()] = 3.0;
    numbers[NumField::MonetaryTotal.index()] = 250.0;
    numbers[NumField::AvgOrderValue.index()] = 83.3;
    Subject {
        segment,
        numbers,
        locale: Some("de-DE"),
        attributes: Some(attrs),
    }
}

fn eval(rule: &str, s: &Subject<'_>) -> bool {
    let e = parse(rule, &Vocabulary::default()).unwrap_or_else(|e| panic!("{rule}: {e}"));
    let by_tree = e.evaluate(s);
    // The compiled evaluator must agree.
    let seg = |name: &str| SEGMENTS.iter().position(|s| *s == name).map(|i| i as u32);
    let row = Row {
        numbers: s.numbers,
        segment: seg(s.segment).unwrap_or(u32::MAX - 1),
        locale: s.locale,
        attributes: s.attributes,
    };
    assert_eq!(Compiled::new(&e, &seg).matches(&row), by_tree, "{rule}");
    by_tree
}

#[test]
fn comparisons_and_logic() {
    let attrs: BTreeMap<String, String> = [
        ("country".to_string(), "DE".to_string()),
        ("age".to_string(), " 41 ".to_string()),
    ]
    .into();
    let s = subject("At Risk", &attrs);
    for (rule, want) in [
        ("segment = 'At Risk'", true),
        ("segment != 'At Risk'", false),
        ("segment in ['Champions', 'At Risk']", true),
        ("segment not in ['Champions', 'At Risk']", false),
        ("recency_days >= 120 and frequency < 4", true),
        ("recency_days > 120 or frequency = 3", true),
        ("not (recency_days > 120 or frequency = 3)", false),
        ("! recency_days > 120 && frequency <= 3", true),
        ("frequency in [1, 2, 3]", true),
        ("100 < monetary_total", true),
        ("locale = 'DE-de'", true),
        ("locale != 'en'", true),
        ("attr.country = 'de'", true),
        ("attr.age >= 40", true),
        ("attr.age in [41]", true),
        ("attr.country > 3", false),
        ("attr.missing = 'x'", false),
        ("attr.missing != 'x'", false),
        ("not attr.missing = 'x'", true),
    ] {
        assert_eq!(eval(rule, &s), want, "{rule}");
    }
}

#[test]
fn missing_values_make_comparisons_false() {
    let attrs = BTreeMap::new();
    let mut s = subject("Champions", &attrs);
    s.locale = None;
    for (rule, want) in [
        ("clv > 100", false),
        ("clv <= 100", false),
        ("clv != 100", false),
        ("not clv > 100", true),
        ("clv in [1, 2]", false),
        ("clv not in [1, 2]", false),
        ("p_alive < 0.5 or segment = 'Champions'", true),
        ("locale = 'de'", false),
        ("locale != 'de'", false),
        ("days_since_last_email > 7", false),
    ] {
        assert_eq!(eval(rule, &s), want, "{rule}");
    }
}

fn random_literal(rng: &mut Xoshiro256PlusPlus, field: &Field) -> Literal {
    match field {
        Field::Num(_) => Literal::Num(f64::from(rng.gen_range(0..6u8))),
        Field::Segment => Literal::Text(SEGMENTS[rng.gen_range(0..3)].to_string()),
        Field::Locale => Literal::Text(["en", "DE", "fr"][rng.gen_range(0..3)].to_string()),
        Field::Attr(_) => {
            if rng.gen_bool(0.5) {
                Literal::Num(f64::from(rng.gen_range(0..4u8)))
            } else {
                Literal::Text(["a", "B", "3"][rng.gen_range(0..3)].to_string())
            }
        }
    }
}

fn random_expr(rng: &mut Xoshiro256PlusPlus, depth: u32) -> Expr {
    if depth > 0 && rng.gen_bool(0.5) {
        return match rng.gen_range(0..3) {
            0 => Expr::And(
                (0..rng.gen_range(2..4))
                    .map(|_| random_expr(rng, depth - 1))
                    .collect(),
            ),
            1 => Expr::Or(
                (0..rng.gen_range(2..4))
                    .map(|_| random_expr(rng, depth - 1))
                    .collect(),
            ),
            _ => Expr::Not(Box::new(random_expr(rng, depth - 1))),
        };
    }
    let field = match rng.gen_range(0..5) {
        0 => Field::Segment,
        1 => Field::Locale,
        2 => Field::Attr(["x", "y"][rng.gen_range(0..2)].to_string()),
        _ => {
            Field::Num([NumField::Frequency, NumField::Clv, NumField::RScore][rng.gen_range(0..3)])
        }
    };
    if rng.gen_bool(0.3) {
        let first = random_literal(rng, &field);
        let mut values = vec![first.clone()];
        for _ in 0..rng.gen_range(0..3) {
            let v = random_literal(rng, &field);
            if std::mem::discriminant(&v) == std::mem::discriminant(&first) {
                values.push(v);
            }
        }
        return Expr::In {
            field,
            values,
            negated: rng.gen_bool(0.5),
        };
    }
    let value = random_literal(rng, &field);
    let op = match (&field, &value) {
        (_, Literal::Text(_)) => [CmpOp::Eq, CmpOp::Ne][rng.gen_range(0..2)],
        _ => [
            CmpOp::Eq,
            CmpOp::Ne,
            CmpOp::Lt,
            CmpOp::Le,
            CmpOp::Gt,
            CmpOp::Ge,
        ][rng.gen_range(0..6)],
    };
    Expr::Compare { field, op, value }
}

#[test]
fn compiled_evaluator_agrees_with_the_tree_walk() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
    let seg = |name: &str| SEGMENTS.iter().position(|s| *s == name).map(|i| i as u32);
    let mut agreed_true = 0;
    for _ in 0..3000 {
        let e = random_expr(&mut rng, 3);
        // The printed rule parses back to the same tree.
        let reparsed = parse(&e.to_string(), &Vocabulary::default())
            .unwrap_or_else(|err| panic!("{e}: {err}"));
        assert_eq!(reparsed, e, "{e}");
        let compiled = Compiled::new(&e, &seg);
        for _ in 0..10 {
            let mut attrs = BTreeMap::new();
            for key in ["x", "y"] {
                match rng.gen_range(0..4) {
                    0 => {}
                    1 => {
                        attrs.insert(key.to_string(), rng.gen_range(0..4).to_string());
                    }
                    _ => {
                        attrs.insert(
                            key.to_string(),
                            ["a", "b", " A "][rng.gen_range(0..3)].to_string(),
                        );
                    }
                }
            }
            let mut numbers = [f64::NAN; NUM_FIELDS];
            for f in [NumField::Frequency, NumField::Clv, NumField::RScore] {
                if rng.gen_bool(0.8) {
                    numbers[f.index()] = f64::from(rng.gen_range(0..6u8));
                }
            }
            let segment = SEGMENTS[rng.gen_range(0..3)];
            let locale = [None, Some("en"), Some("de")][rng.gen_range(0..3)];
            let s = Subject {
                segment,
                numbers,
                locale,
                attributes: Some(&attrs),
            };
            let row = Row {
                numbers,
                segment: seg(segment).expect("known"),
                locale,
                attributes: Some(&attrs),
            };
            let want = e.evaluate(&s);
            assert_eq!(compiled.matches(&row), want, "{e} on {s:?}");
            agreed_true += usize::from(want);
        }
    }
    // Both outcomes were exercised.
    assert!(agreed_true > 3000 && agreed_true < 27_000, "{agreed_true}");
}
