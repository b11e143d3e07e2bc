//! Follow-up steps of a campaign: the `when` rules over what a recipient did after the first
//! email, and which recipients a due step goes to.
//!
//! ```text
//! rule  := or
//! or    := and ("or" and)*
//! and   := unary ("and" unary)*
//! unary := "not" unary | "(" rule ")" | event
//! event := "opened" | "clicked" | "converted" | "unsubscribed" | "bounced"
//! ```
//!
//! Keywords are case-insensitive. The step's own customer conditions are the goal's eligibility
//! rule, re-checked for nobody: a step goes only to the campaign's recipients (never its holdout),
//! and suppression, consent and the frequency cap are checked again when the step is queued.

use serde::Serialize;

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum StepRule {
    Event(Event),
    Not(Box<StepRule>),
    And(Box<StepRule>, Box<StepRule>),
    Or(Box<StepRule>, Box<StepRule>),
}

impl StepRule {
    pub fn matches(&self, a: &Activity) -> bool {
        match self {
            Self::Event(e) => e.of(a),
            Self::Not(r) => !r.matches(a),
            Self::And(x, y) => x.matches(a) && y.matches(a),
            Self::Or(x, y) => x.matches(a) || y.matches(a),
        }
    }
}

/// A rule that does not parse: the character offset at fault and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRuleError {
    pub start: usize,
    pub message: String,
}

/// Parses a step's `when` rule.
pub fn parse_step_rule(text: &str) -> Result<StepRule, StepRuleError> {
    let tokens = tokenize(text)?;
    let mut p = Parser { tokens, at: 0 };
    let rule = p.or()?;
    match p.tokens.get(p.at) {
        None => Ok(rule),
        Some(t) => Err(StepRuleError {
            start: t.start,
            message: format!("unexpected `{}`: expected `and`, `or` or the end", t.text),
        }),
    }
}

#[derive(Debug, Clone)]
struct Token {
    start: usize,
    text: String,
}

fn tokenize(text: &str) -> Result<Vec<Token>, StepRuleError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' || c == ')' {
            out.push(Token {
                start: i,
                text: c.to_string(),
            });
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token {
                start,
                text: chars[start..i]
                    .iter()
                    .collect::<String>()
                    .to_ascii_lowercase(),
            });
        } else {
            return Err(StepRuleError {
                start: i,
                message: format!("unexpected character `{c}`"),
            });
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(|t| t.text.as_str())
    }

    fn or(&mut self) -> Result<StepRule, StepRuleError> {
        let mut left = self.and()?;
        while self.peek() == Some("or") {
            self.at += 1;
            let right = self.and()?;
            left = StepRule::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<StepRule, StepRuleError> {
        let mut left = self.unary()?;
        while self.peek() == Some("and") {
            self.at += 1;
            let right = self.unary()?;
            left = StepRule::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<StepRule, StepRuleError> {
        let end = self.tokens.last().map_or(0, |t| t.start + t.text.len());
        let Some(t) = self.tokens.get(self.at).cloned() else {
            return Err(StepRuleError {
                start: end,
                message: format!("expected an event ({})", EVENTS.join(", ")),
            });
        };
        self.at += 1;
        match t.text.as_str() {
            "not" => Ok(StepRule::Not(Box::new(self.unary()?))),
            "(" => {
                let inner = self.or()?;
                if self.peek() != Some(")") {
                    return Err(StepRuleError {
                        start: self.tokens.get(self.at).map_or(end, |t| t.start),
                        message: "expected `)`".into(),
                    });
                }
                self.at += 1;
                Ok(inner)
            }
            word => Event::parse(word)
                .map(StepRule::Event)
                .ok_or(StepRuleError {
                    start: t.start,
                    message: format!(
                        "unknown event `{word}`; known events: {}",
                        EVENTS.join(", ")
                    ),
                }),
        }
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
        assert!(r.matches(&act(false, false, false)));
        assert!(!r.matches(&act(true, true, false)));
        assert!(!r.matches(&act(false, false, true)));
        // `and` binds tighter than `or`.
        let r = parse_step_rule("opened or converted and unsubscribed").expect("parses");
        assert!(r.matches(&act(true, false, false)));
        assert!(!r.matches(&act(false, true, false)));
        let r = parse_step_rule("(opened OR converted) and NOT unsubscribed").expect("parses");
        assert!(r.matches(&act(false, true, false)));
        assert!(!r.matches(&act(true, false, true)));
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
