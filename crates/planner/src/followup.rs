//! Follow-up steps of a campaign: the `when` rules over what a recipient did after the first
//! email and who the recipient is, and which recipients a due step goes to.
//!
//! ```text
//! rule      := or
//! or        := and ("or" and)*
//! and       := unary ("and" unary)*
//! unary     := "not" unary | "(" rule ")" | event | condition
//! event     := "opened" | "clicked" | "converted" | "unsubscribed" | "bounced"
//! condition := one comparison of the eligibility language (crate::expr), e.g.
//!              clv > 100, segment in ["At Risk"], p_alive >= 0.5, attr.tier = "gold"
//! ```
//!
//! Keywords are case-insensitive. A condition reads the customer's fields as the goal rules do
//! (recency, frequency, monetary, segment, P(alive), CLV, RFM scores, locale, attributes), as
//! the store holds them when the step falls due; a field without a value makes its comparison
//! false, as in the goal rules. A step goes only to the campaign's recipients (never its
//! holdout), and suppression, consent and the frequency cap are checked again when the step is
//! queued.

use serde::Serialize;

use crate::expr::{self, Expr, Subject, Vocabulary, NUM_FIELDS};

/// What a recipient did since the campaign's first email.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Activity {
    pub opened: bool,
    pub clicked: bool,
    /// Ordered within the campaign's window.
    pub converted: bool,
    pub unsubscribed: bool,
    pub bounced: bool,
}

/// An event a rule can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    Opened,
    Clicked,
    Converted,
    Unsubscribed,
    Bounced,
}

/// The names of the events, as rules spell them.
pub const EVENTS: [&str; 5] = ["opened", "clicked", "converted", "unsubscribed", "bounced"];

impl Event {
    fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "opened" => Self::Opened,
            "clicked" => Self::Clicked,
            "converted" => Self::Converted,
            "unsubscribed" => Self::Unsubscribed,
            "bounced" => Self::Bounced,
            _ => return None,
        })
    }

    fn of(self, a: &Activity) -> bool {
        match self {
            Self::Opened => a.opened,
            Self::Clicked => a.clicked,
            Self::Converted => a.converted,
            Self::Unsubscribed => a.unsubscribed,
            Self::Bounced => a.bounced,
        }
    }
}

/// A parsed step rule.
#[derive(Debug, Clone, PartialEq)]
pub enum StepRule {
    Event(Event),
    /// A comparison over the customer's fields (the eligibility language).
    Customer(Expr),
    Not(Box<StepRule>),
    And(Box<StepRule>, Box<StepRule>),
    Or(Box<StepRule>, Box<StepRule>),
}

/// A customer about whom nothing is known: every comparison over their fields is false.
pub fn unknown_customer() -> Subject<'static> {
    Subject {
        segment: "",
        numbers: [f64::NAN; NUM_FIELDS],
        locale: None,
        attributes: None,
    }
}

impl StepRule {
    /// Whether a recipient who did `a` and is `customer` gets the step.
    pub fn matches(&self, a: &Activity, customer: &Subject<'_>) -> bool {
        match self {
            Self::Event(e) => e.of(a),
            Self::Customer(x) => x.evaluate(customer),
            Self::Not(r) => !r.matches(a, customer),
            Self::And(x, y) => x.matches(a, customer) && y.matches(a, customer),
            Self::Or(x, y) => x.matches(a, customer) || y.matches(a, customer),
        }
    }

    /// Whether the rule reads any customer field (else the events alone decide).
    pub fn reads_customer(&self) -> bool {
        match self {
            Self::Event(_) => false,
            Self::Customer(_) => true,
            Self::Not(r) => r.reads_customer(),
            Self::And(x, y) | Self::Or(x, y) => x.reads_customer() || y.reads_customer(),
        }
    }
}

/// A rule that does not parse: the character offset at fault and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRuleError {
    pub start: usize,
    pub message: String,
}

/// Parses a step's `when` rule, accepting any segment and attribute name (the goals file checks
/// them with [`parse_step_rule_with`]).
pub fn parse_step_rule(text: &str) -> Result<StepRule, StepRuleError> {
    parse_step_rule_with(text, &Vocabulary::default())
}

/// Parses a step's `when` rule, checking its conditions' segment and attribute names against
/// `vocab`.
pub fn parse_step_rule_with(text: &str, vocab: &Vocabulary) -> Result<StepRule, StepRuleError> {
    let mut p = Parser {
        chars: text.chars().collect(),
        at: 0,
        vocab,
    };
    let rule = p.or()?;
    p.skip_ws();
    if p.at < p.chars.len() {
        let (word, _) = p.word_at(p.at);
        let found = if word.is_empty() {
            p.chars[p.at].to_string()
        } else {
            word
        };
        return Err(StepRuleError {
            start: p.at,
            message: format!("unexpected `{found}`: expected `and`, `or` or the end"),
        });
    }
    Ok(rule)
}

struct Parser<'v> {
    chars: Vec<char>,
    at: usize,
    vocab: &'v Vocabulary,
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.chars.get(self.at).is_some_and(|c| c.is_whitespace()) {
            self.at += 1;
        }
    }

    /// The word (lowercased) starting at `i` and where it ends; empty when none starts there.
    fn word_at(&self, i: usize) -> (String, usize) {
        let starts = self
            .chars
            .get(i)
            .is_some_and(|c| c.is_ascii_alphabetic() || *c == '_');
        if !starts {
            return (String::new(), i);
        }
        let mut j = i;
        while self.chars.get(j).is_some_and(|c| is_word_char(*c)) {
            j += 1;
        }
        (
            self.chars[i..j]
                .iter()
                .collect::<String>()
                .to_ascii_lowercase(),
            j,
        )
    }

    /// Consumes the keyword `k` when it comes next.
    fn keyword(&mut self, k: &str) -> bool {
        self.skip_ws();
        let (w, end) = self.word_at(self.at);
        if w == k {
            self.at = end;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<StepRule, StepRuleError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            let right = self.and()?;
            left = StepRule::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<StepRule, StepRuleError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            let right = self.unary()?;
            left = StepRule::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<StepRule, StepRuleError> {
        self.skip_ws();
        let Some(&c) = self.chars.get(self.at) else {
            return Err(StepRuleError {
                start: self.at,
                message: format!(
                    "expected an event ({}) or a customer condition such as `clv > 100`",
                    EVENTS.join(", ")
                ),
            });
        };
        if c == '(' {
            self.at += 1;
            let inner = self.or()?;
            self.skip_ws();
            if self.chars.get(self.at) != Some(&')') {
                return Err(StepRuleError {
                    start: self.at,
                    message: "expected `)`".into(),
                });
            }
            self.at += 1;
            return Ok(inner);
        }
        let (word, end) = self.word_at(self.at);
        if word == "not" {
            self.at = end;
            return Ok(StepRule::Not(Box::new(self.unary()?)));
        }
        if let Some(e) = Event::parse(&word) {
            self.at = end;
            return Ok(StepRule::Event(e));
        }
        self.condition()
    }

    /// One comparison over the customer's fields: the text up to the next `and`/`or` or
    /// unmatched `)` outside quotes and brackets, parsed by the eligibility language.
    fn condition(&mut self) -> Result<StepRule, StepRuleError> {
        let start = self.at;
        let mut i = start;
        let mut quote: Option<char> = None;
        let mut depth = 0usize;
        while i < self.chars.len() {
            let c = self.chars[i];
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None => match c {
                    '"' | '\'' => quote = Some(c),
                    '[' => depth += 1,
                    ']' => depth = depth.saturating_sub(1),
                    ')' | '(' if depth == 0 => break,
                    _ if depth == 0
                        && (i == start || !is_word_char(self.chars[i - 1]))
                        && c.is_ascii_alphabetic() =>
                    {
                        let (w, _) = self.word_at(i);
                        if i > start && (w == "and" || w == "or") {
                            break;
                        }
                    }
                    _ => {}
                },
            }
            i += 1;
        }
        let mut end = i;
        while end > start && self.chars[end - 1].is_whitespace() {
            end -= 1;
        }
        let text: String = self.chars[start..end].iter().collect();
        let (word, word_end) = self.word_at(start);
        if end == word_end && expr::NumField::from_name(&word).is_none() {
            // A bare word that is no event: most likely a misspelt event.
            let found = if word.is_empty() {
                self.chars
                    .get(start)
                    .map(char::to_string)
                    .unwrap_or_default()
            } else {
                word
            };
            return Err(StepRuleError {
                start,
                message: format!(
                    "unknown event `{found}`; known events: {}, or a customer condition such as `clv > 100`",
                    EVENTS.join(", ")
                ),
            });
        }
        let parsed = expr::parse(&text, self.vocab).map_err(|e| StepRuleError {
            start: start + e.start,
            message: format!("{}", e.kind),
        })?;
        self.at = i;
        Ok(StepRule::Customer(parsed))
    }
}

/// Whether a step is due: its day has come (`first_sent_at + after_days`), counted in whole
/// days from the campaign's first send.
pub fn is_due(first_sent_at: i64, after_days: u32, now: i64) -> bool {
    now >= first_sent_at + i64::from(after_days) * 86_400
}

#[cfg(test)]
mod tests {
    use super::*;

    fn act(opened: bool, converted: bool, unsubscribed: bool) -> Activity {
        Activity {
            opened,
            converted,
            unsubscribed,
            ..Default::default()
        }
    }

    #[test]
    fn rules_evaluate_with_precedence() {
        let r = parse_step_rule("not converted and not unsubscribed").expect("parses");
        assert!(r.matches(&act(false, false, false), &nobody()));
        assert!(!r.matches(&act(true, true, false), &nobody()));
        assert!(!r.matches(&act(false, false, true), &nobody()));
        // `and` binds tighter than `or`.
        let r = parse_step_rule("opened or converted and unsubscribed").expect("parses");
        assert!(r.matches(&act(true, false, false), &nobody()));
        assert!(!r.matches(&act(false, true, false), &nobody()));
        let r = parse_step_rule("(opened OR converted) and NOT unsubscribed").expect("parses");
        assert!(r.matches(&act(false, true, false), &nobody()));
        assert!(!r.matches(&act(true, false, true), &nobody()));
    }

    fn nobody() -> Subject<'static> {
        unknown_customer()
    }

    #[test]
    fn rules_read_customer_fields() {
        use crate::expr::NumField;
        use std::collections::BTreeMap;
        let mut numbers = [f64::NAN; NUM_FIELDS];
        numbers[NumField::Clv.index()] = 250.0;
        numbers[NumField::PAlive.index()] = 0.4;
        let attrs: BTreeMap<String, String> = [("tier".to_string(), "Gold".to_string())].into();
        let vip = Subject {
            segment: "Champions",
            numbers,
            locale: Some("de"),
            attributes: Some(&attrs),
        };
        let r = parse_step_rule(
            r#"not converted and (clv > 100 or segment in ["At Risk", "Can't Lose Them"]) and attr.tier = "gold""#,
        )
        .expect("parses");
        assert!(r.reads_customer());
        assert!(r.matches(&act(false, false, false), &vip));
        assert!(!r.matches(&act(false, true, false), &vip), "converted");
        // Nothing known about the customer: every comparison is false.
        assert!(!r.matches(&act(false, false, false), &nobody()));
        let r = parse_step_rule("opened AND p_alive < 0.5").expect("parses");
        assert!(r.matches(&act(true, false, false), &vip));
        assert!(!r.matches(&act(false, false, false), &vip));
        // `not` over a missing value is true, as in the goal rules.
        let r = parse_step_rule("not (p_alive >= 0.5) and not unsubscribed").expect("parses");
        assert!(r.matches(&act(false, false, false), &nobody()));
        assert!(!parse_step_rule("not converted")
            .expect("parses")
            .reads_customer());
        // Conditions stop at `and`/`or` outside quotes: a segment named with "and" is one value.
        let r = parse_step_rule(r#"segment = "Bought and left" or clicked"#).expect("parses");
        let left = Subject {
            segment: "Bought and left",
            ..nobody()
        };
        assert!(r.matches(&act(false, false, false), &left));
        assert!(!r.matches(&act(false, false, false), &vip));
    }

    #[test]
    fn conditions_are_checked_against_the_vocabulary() {
        let vocab = Vocabulary {
            segments: Some(vec!["At Risk".into()]),
            templates: None,
            attributes: Some(vec!["tier".into()]),
        };
        let text = r#"not converted and segment = "At Rsk""#;
        let e = parse_step_rule_with(text, &vocab).expect_err("unknown segment");
        assert!(e.message.contains("known segments"), "{}", e.message);
        assert_eq!(e.start, 28, "points at the segment name");
        let e = parse_step_rule_with("clv >", &vocab).expect_err("no value");
        assert!(e.message.contains("expected"), "{}", e.message);
        let e = parse_step_rule_with("clvv > 3", &vocab).expect_err("unknown field");
        assert!(e.message.contains("unknown field `clvv`"), "{}", e.message);
        assert!(parse_step_rule_with("attr.tier = 'gold' and opened", &vocab).is_ok());
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = parse_step_rule("not convertd").expect_err("unknown");
        assert_eq!(e.start, 4);
        assert!(e.message.contains("known events: opened"), "{}", e.message);
        let e = parse_step_rule("opened and").expect_err("dangling");
        assert!(e.message.contains("expected an event"), "{}", e.message);
        let e = parse_step_rule("(opened").expect_err("paren");
        assert!(e.message.contains("`)`"));
        let e = parse_step_rule("opened clicked").expect_err("two");
        assert_eq!(e.start, 7);
        let e = parse_step_rule("opened = 1").expect_err("char");
        assert_eq!(e.start, 7);
    }

    #[test]
    fn due_after_whole_days() {
        assert!(!is_due(1000, 7, 1000 + 7 * 86_400 - 1));
        assert!(is_due(1000, 7, 1000 + 7 * 86_400));
    }
}
