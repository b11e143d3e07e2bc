//! The goals file: a TOML catalogue of retention goals, parsed with positions so that every
//! mistake — TOML syntax, a missing key, a bad number, an eligibility rule that does not parse or
//! names an unknown field, segment or template — is reported at its line and column.
//!
//! ```toml
//! [[goal]]
//! id = "win_back"                       # snake_case, unique; also the default template name
//! name = "Win-back"
//! description = "Bring lapsing customers back."
//! rule = '''segment in ["At Risk", "Can't Lose Them"]'''
//! template = "win_back"                 # optional, defaults to the id
//! objective = "purchase"                # a conversion is a purchase ...
//! window_days = 30                      # ... within this many days of the send
//! response_prior = 0.03                 # expected incremental response (probability)
//! cost_per_recipient = 0.10
//! value = "clv"                         # or "avg_order_value"
//! priority = 1                          # optional, lower wins ties (default 100)
//! audience_cap = 20000                  # optional, most recipients for the goal
//! baseline_rate = 0.05                  # optional, purchase rate without the email (power estimate)
//! approve = "sequence"                  # optional: approving the plan approves every step, or
//!                                       # "each_step": each follow-up step is approved on its own
//! min_difference = 0.01                 # optional: variant difference the A/B test must detect
//! test_share = 0.2                      # optional, with variants: test on this share of the
//!                                       # recipients, then send the winner to the rest
//! test_days = 14                        # optional: the test's fixed horizon (default window_days);
//!                                       # the rest waits until then
//! default_variant = "a"                 # optional: what the rest gets when the test has no valid
//!                                       # winner at its horizon (default: the first variant)
//!
//! [[goal.variants]]                     # optional, 2–4: A/B variants, each its own template
//! id = "a"
//! template = "win_back"
//! [[goal.variants]]
//! id = "b"
//! template = "win_back_short"
//!
//! [[goal.steps]]                        # optional follow-ups to the same recipients
//! after_days = 7
//! when = "not converted and not unsubscribed"   # events: opened clicked converted unsubscribed
//!                                       # bounced, and customer conditions: "clv > 100 and not opened"
//! template = "win_back_reminder"
//!
//! [program]                             # optional, the whole programme
//! control_share = 0.05                  # global control group: no campaign mails it
//! control_period = "quarter"            # redrawn every month | quarter | year
//! control_seed = 0
//! ```

use std::ops::Range;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::{GoalsError, Position};
use crate::expr::{parse, Expr, Vocabulary};
use crate::followup::{parse_step_rule_with, StepRule};
use crate::program::{ControlPeriod, Program};
use crate::variants::MAX_VARIANTS;

/// What a converted recipient is worth to a goal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueBasis {
    /// The customer's predicted lifetime value: what a retention goal keeps. Customers without a
    /// prediction fall back to their average order value (the plan warns how many).
    Clv,
    /// The customer's average order value: what one more order brings (upsell, launches).
    AvgOrderValue,
}

impl ValueBasis {
    pub fn as_str(self) -> &'static str {
        match self {
            ValueBasis::Clv => "clv",
            ValueBasis::AvgOrderValue => "avg_order_value",
        }
    }
}

/// One retention goal of the catalogue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Goal {
    pub id: String,
    pub name: String,
    pub description: String,
    /// The eligibility rule as written.
    pub rule_text: String,
    #[serde(skip)]
    pub rule: Expr,
    /// Email template the mailer renders for this goal.
    pub template: String,
    /// A conversion is a purchase within this many days of the send.
    pub window_days: u32,
    /// Expected incremental response: the probability the email causes a conversion.
    pub response_prior: f64,
    pub cost_per_recipient: f64,
    /// Lower numbers win ties between goals of equal expected value.
    pub priority: i64,
    /// Most recipients this goal may have in one plan.
    pub audience_cap: Option<u64>,
    pub value: ValueBasis,
    /// Purchase rate within the window without the email, for the power estimate.
    pub baseline_rate: Option<f64>,
    /// A/B variants (empty: one template, no test).
    pub variants: Vec<Variant>,
    /// Absolute conversion-rate difference between variants the test is sized to detect
    /// (default: half the response rate).
    pub min_difference: Option<f64>,
    /// Test the variants on a share of the recipients first (`None`: on all of them).
    pub share_test: Option<ShareTest>,
    /// Follow-up steps, in order of `after_days`.
    pub steps: Vec<Step>,
    pub approve: Approval,
    /// Where the goal's `id` sits in the file.
    pub position: Position,
}

/// One A/B variant of a goal's email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Variant {
    pub id: String,
    pub template: String,
}

/// "Test on a share, then send the winner to the rest": the variants go to `share` of the
/// recipients; the rest waits `days` (the test's fixed horizon), then gets the variant that won
/// the test — or, without a valid winner by then, `default_variant`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShareTest {
    pub share: f64,
    pub days: u32,
    pub default_variant: String,
}

/// A follow-up email to a campaign's recipients some days after the first one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// 1-based position in the sequence (the first email is step 0).
    pub number: u32,
    pub after_days: u32,
    pub when_text: String,
    #[serde(skip)]
    pub when: StepRule,
    pub template: String,
}

/// What approving a plan approves of a goal's follow-up steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    /// The whole sequence: the steps go out when due without another approval.
    #[default]
    Sequence,
    /// Each step waits for its own approval (`retain followups approve`).
    EachStep,
}

impl Approval {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sequence => "sequence",
            Self::EachStep => "each_step",
        }
    }
}

/// A whole goals file: the goals and the `[program]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalogue {
    pub goals: Vec<Goal>,
    pub program: Program,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    #[allow(dead_code)]
    version: Option<u32>,
    #[serde(default)]
    goal: Vec<RawGoal>,
    program: Option<RawProgram>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProgram {
    control_share: Option<Spanned<f64>>,
    control_period: Option<Spanned<String>>,
    control_seed: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVariant {
    id: Spanned<String>,
    template: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    after_days: Spanned<i64>,
    when: Spanned<String>,
    template: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGoal {
    id: Spanned<String>,
    name: String,
    #[serde(default)]
    description: String,
    rule: Spanned<String>,
    template: Option<Spanned<String>>,
    objective: Option<Spanned<String>>,
    window_days: Spanned<i64>,
    response_prior: Spanned<f64>,
    cost_per_recipient: Spanned<f64>,
    value: Spanned<String>,
    priority: Option<i64>,
    audience_cap: Option<Spanned<i64>>,
    baseline_rate: Option<Spanned<f64>>,
    #[serde(default)]
    variants: Vec<RawVariant>,
    #[serde(default)]
    steps: Vec<RawStep>,
    approve: Option<Spanned<String>>,
    min_difference: Option<Spanned<f64>>,
    test_share: Option<Spanned<f64>>,
    test_days: Option<Spanned<i64>>,
    default_variant: Option<Spanned<String>>,
}

/// Parses a goals file. `file` names it in messages; `vocab` lists the known segments, templates
/// and customer attributes (`None` lists are not checked).
pub fn parse_goals(text: &str, file: &str, vocab: &Vocabulary) -> Result<Vec<Goal>, GoalsError> {
    parse_catalogue(text, file, vocab).map(|c| c.goals)
}

/// Parses a goals file with its `[program]` settings (see [`parse_goals`]).
pub fn parse_catalogue(
    text: &str,
    file: &str,
    vocab: &Vocabulary,
) -> Result<Catalogue, GoalsError> {
    let at = |offset: usize, message: String| GoalsError {
        file: file.to_string(),
        position: Position::of_byte(text, offset),
        message,
    };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        at(offset, e.message().trim().to_string())
    })?;
    if raw.goal.is_empty() {
        return Err(at(
            0,
            "no goals: expected at least one `[[goal]]` table".into(),
        ));
    }
    let mut goals: Vec<Goal> = Vec::with_capacity(raw.goal.len());
    for g in raw.goal {
        let id = g.id.get_ref().clone();
        let id_at = g.id.span().start;
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(at(
                id_at,
                format!("goal id \"{id}\": expected snake_case (a-z, 0-9, _)"),
            ));
        }
        if let Some(first) = goals.iter().find(|o| o.id == id) {
            return Err(at(
                id_at,
                format!(
                    "duplicate goal id \"{id}\": already defined at line {}",
                    first.position.line
                ),
            ));
        }
        let ctx = |what: &str| format!("goal `{id}`, {what}");

        let (rule_text, rule_span) = (g.rule.get_ref().clone(), g.rule.span());
        let rule = parse(&rule_text, vocab).map_err(|e| {
            let offset = rule_offset(text, rule_span.clone(), &rule_text, e.start);
            at(offset, ctx(&format!("rule: {}", e.kind)))
        })?;

        let (template, template_at) = match &g.template {
            Some(t) => (t.get_ref().clone(), t.span().start),
            None => (id.clone(), id_at),
        };
        let check_template = |template: &str, template_at: usize| -> Result<(), GoalsError> {
            if let Some(known) = &vocab.templates {
                if !known.iter().any(|k| k == template) {
                    let list = if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    };
                    return Err(at(
                        template_at,
                        ctx(&format!(
                            "unknown template \"{template}\"; known templates: {list}"
                        )),
                    ));
                }
            }
            Ok(())
        };
        if g.variants.is_empty() {
            check_template(&template, template_at)?;
        }
        if let Some(obj) = &g.objective {
            if obj.get_ref() != "purchase" {
                return Err(at(
                    obj.span().start,
                    ctx(&format!(
                        "objective \"{}\": expected \"purchase\"",
                        obj.get_ref()
                    )),
                ));
            }
        }
        let window = *g.window_days.get_ref();
        if !(1..=3650).contains(&window) {
            return Err(at(
                g.window_days.span().start,
                ctx(&format!("window_days {window}: expected 1 to 3650 days")),
            ));
        }
        let prior = *g.response_prior.get_ref();
        if !(prior > 0.0 && prior <= 1.0) {
            return Err(at(
                g.response_prior.span().start,
                ctx(&format!(
                    "response_prior {prior}: expected a probability above 0 and at most 1"
                )),
            ));
        }
        let cost = *g.cost_per_recipient.get_ref();
        if !(cost.is_finite() && cost >= 0.0) {
            return Err(at(
                g.cost_per_recipient.span().start,
                ctx(&format!(
                    "cost_per_recipient {cost}: expected an amount of 0 or more"
                )),
            ));
        }
        let value = match g.value.get_ref().as_str() {
            "clv" => ValueBasis::Clv,
            "avg_order_value" | "aov" => ValueBasis::AvgOrderValue,
            other => {
                return Err(at(
                    g.value.span().start,
                    ctx(&format!(
                        "value \"{other}\": expected \"clv\" or \"avg_order_value\""
                    )),
                ));
            }
        };
        let audience_cap = match &g.audience_cap {
            None => None,
            Some(c) if *c.get_ref() >= 1 => Some(*c.get_ref() as u64),
            Some(c) => {
                return Err(at(
                    c.span().start,
                    ctx(&format!("audience_cap {}: expected 1 or more", c.get_ref())),
                ));
            }
        };
        let baseline_rate = match &g.baseline_rate {
            None => None,
            Some(b) if (0.0..1.0).contains(b.get_ref()) => Some(*b.get_ref()),
            Some(b) => {
                return Err(at(
                    b.span().start,
                    ctx(&format!(
                        "baseline_rate {}: expected a probability from 0 up to 1",
                        b.get_ref()
                    )),
                ));
            }
        };
        let mut variants: Vec<Variant> = Vec::new();
        for v in &g.variants {
            let vid = v.id.get_ref().clone();
            if vid.is_empty()
                || !vid
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                return Err(at(
                    v.id.span().start,
                    ctx(&format!(
                        "variant id \"{vid}\": expected snake_case (a-z, 0-9, _)"
                    )),
                ));
            }
            if variants.iter().any(|o| o.id == vid) {
                return Err(at(
                    v.id.span().start,
                    ctx(&format!("duplicate variant id \"{vid}\"")),
                ));
            }
            check_template(v.template.get_ref(), v.template.span().start)?;
            variants.push(Variant {
                id: vid,
                template: v.template.get_ref().clone(),
            });
        }
        if !variants.is_empty() && !(2..=MAX_VARIANTS).contains(&variants.len()) {
            let first = g.variants.first().map_or(id_at, |v| v.id.span().start);
            return Err(at(
                first,
                ctx(&format!(
                    "{} variant: expected 2 to {MAX_VARIANTS} variants (or none)",
                    variants.len()
                )),
            ));
        }
        let share_test = match &g.test_share {
            None => {
                for (what, span) in [
                    ("test_days", g.test_days.as_ref().map(|d| d.span().start)),
                    (
                        "default_variant",
                        g.default_variant.as_ref().map(|d| d.span().start),
                    ),
                ] {
                    if let Some(start) = span {
                        return Err(at(start, ctx(&format!("{what} needs `test_share`"))));
                    }
                }
                None
            }
            Some(t) => {
                let share = *t.get_ref();
                if variants.is_empty() {
                    return Err(at(
                        t.span().start,
                        ctx("test_share needs `[[goal.variants]]`: it tests them on a share, then sends the winner to the rest"),
                    ));
                }
                if !(share > 0.0 && share < 1.0) {
                    return Err(at(
                        t.span().start,
                        ctx(&format!(
                            "test_share {share}: expected a share above 0 and below 1"
                        )),
                    ));
                }
                let days = match &g.test_days {
                    None => *g.window_days.get_ref(),
                    Some(d) if (1..=*g.window_days.get_ref()).contains(d.get_ref()) => *d.get_ref(),
                    Some(d) => {
                        return Err(at(
                            d.span().start,
                            ctx(&format!(
                                "test_days {}: expected 1 to window_days ({}) days",
                                d.get_ref(),
                                g.window_days.get_ref()
                            )),
                        ));
                    }
                };
                let default_variant = match &g.default_variant {
                    None => variants.first().map(|v| v.id.clone()).unwrap_or_default(),
                    Some(d) if variants.iter().any(|v| &v.id == d.get_ref()) => d.get_ref().clone(),
                    Some(d) => {
                        return Err(at(
                            d.span().start,
                            ctx(&format!(
                                "default_variant \"{}\": expected one of the variants ({})",
                                d.get_ref(),
                                variants
                                    .iter()
                                    .map(|v| v.id.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )),
                        ));
                    }
                };
                if let Some(v) = g
                    .variants
                    .iter()
                    .find(|v| v.id.get_ref() == crate::variants::REST_VARIANT)
                {
                    return Err(at(
                        v.id.span().start,
                        ctx(&format!(
                            "variant id \"{}\" is reserved for the recipients who wait for the winner",
                            crate::variants::REST_VARIANT
                        )),
                    ));
                }
                Some(ShareTest {
                    share,
                    days: days.clamp(1, 365) as u32,
                    default_variant,
                })
            }
        };
        let min_difference = match &g.min_difference {
            None => None,
            Some(d) if *d.get_ref() > 0.0 && *d.get_ref() < 1.0 => Some(*d.get_ref()),
            Some(d) => {
                return Err(at(
                    d.span().start,
                    ctx(&format!(
                        "min_difference {}: expected a difference above 0 and below 1",
                        d.get_ref()
                    )),
                ));
            }
        };
        if min_difference.is_some() && variants.is_empty() {
            let d = g.min_difference.as_ref().map_or(id_at, |d| d.span().start);
            return Err(at(d, ctx("min_difference needs `[[goal.variants]]`")));
        }
        let mut steps: Vec<Step> = Vec::new();
        for s in &g.steps {
            let days = *s.after_days.get_ref();
            if !(1..=365).contains(&days) {
                return Err(at(
                    s.after_days.span().start,
                    ctx(&format!("step after_days {days}: expected 1 to 365 days")),
                ));
            }
            if let Some(prev) = steps.last() {
                if i64::from(prev.after_days) >= days {
                    return Err(at(
                        s.after_days.span().start,
                        ctx(&format!(
                            "step after_days {days}: steps must come in increasing after_days (the previous one is {})",
                            prev.after_days
                        )),
                    ));
                }
            }
            let text_when = s.when.get_ref().clone();
            let when = parse_step_rule_with(&text_when, vocab).map_err(|e| {
                let offset = rule_offset(text, s.when.span(), &text_when, e.start);
                at(offset, ctx(&format!("step when: {}", e.message)))
            })?;
            check_template(s.template.get_ref(), s.template.span().start)?;
            steps.push(Step {
                number: steps.len() as u32 + 1,
                after_days: days as u32,
                when_text: text_when,
                when,
                template: s.template.get_ref().clone(),
            });
        }
        let approve = match &g.approve {
            None => Approval::Sequence,
            Some(a) => match a.get_ref().as_str() {
                "sequence" => Approval::Sequence,
                "each_step" => Approval::EachStep,
                other => {
                    return Err(at(
                        a.span().start,
                        ctx(&format!(
                            "approve \"{other}\": expected \"sequence\" or \"each_step\""
                        )),
                    ));
                }
            },
        };
        let template = variants.first().map_or(template, |v| v.template.clone());
        goals.push(Goal {
            variants,
            share_test,
            min_difference,
            steps,
            approve,
            name: g.name,
            description: g.description,
            rule_text,
            rule,
            template,
            window_days: window as u32,
            response_prior: prior,
            cost_per_recipient: cost,
            priority: g.priority.unwrap_or(100),
            audience_cap,
            value,
            baseline_rate,
            position: Position::of_byte(text, id_at),
            id,
        });
    }
    let program = match raw.program {
        None => Program::default(),
        Some(p) => {
            let mut program = Program::default();
            if let Some(share) = p.control_share {
                let v = *share.get_ref();
                if !(0.0..=0.5).contains(&v) {
                    return Err(at(
                        share.span().start,
                        format!("[program] control_share {v}: expected a share from 0 to 0.5"),
                    ));
                }
                program.control_share = v;
            }
            if let Some(period) = p.control_period {
                program.control_period = ControlPeriod::parse(period.get_ref()).ok_or_else(|| {
                    at(
                        period.span().start,
                        format!(
                            "[program] control_period \"{}\": expected \"month\", \"quarter\" or \"year\"",
                            period.get_ref()
                        ),
                    )
                })?;
            }
            if let Some(seed) = p.control_seed {
                program.control_seed = *seed.get_ref() as u64;
            }
            program
        }
    };
    Ok(Catalogue { goals, program })
}

/// Byte offset in the file of character `char_index` of the decoded string whose TOML token
/// occupies `span`. Falls back to the token's start if the token cannot be mapped.
fn rule_offset(text: &str, span: Range<usize>, decoded: &str, char_index: usize) -> usize {
    let Some(raw) = text.get(span.clone()) else {
        return span.start;
    };
    match decode_offsets(raw) {
        Some((value, offsets)) if value == decoded => {
            span.start
                + offsets
                    .get(char_index)
                    .copied()
                    .unwrap_or_else(|| offsets.last().copied().unwrap_or(0))
        }
        _ => span.start,
    }
}

/// Decodes a TOML string token, returning the value and, for each of its characters (plus one
/// past the end), the byte offset in `raw` where that character comes from.
fn decode_offsets(raw: &str) -> Option<(String, Vec<usize>)> {
    let (open, basic) = if raw.starts_with("\"\"\"") {
        (3, true)
    } else if raw.starts_with("'''") {
        (3, false)
    } else if raw.starts_with('"') {
        (1, true)
    } else if raw.starts_with('\'') {
        (1, false)
    } else {
        return None;
    };
    if raw.len() < 2 * open {
        return None;
    }
    let body_end = raw.len() - open;
    let chars: Vec<(usize, char)> = raw[..body_end]
        .char_indices()
        .skip_while(|&(i, _)| i < open)
        .collect();
    let mut i = 0;
    if open == 3 {
        // A newline right after the opening delimiter is not part of the value.
        if chars.first().map(|c| c.1) == Some('\n') {
            i = 1;
        } else if chars.first().map(|c| c.1) == Some('\r')
            && chars.get(1).map(|c| c.1) == Some('\n')
        {
            i = 2;
        }
    }
    let mut value = String::new();
    let mut offsets = Vec::new();
    while i < chars.len() {
        let (at, c) = chars[i];
        if basic && c == '\\' {
            let next = chars.get(i + 1)?.1;
            let simple = match next {
                'b' => Some('\u{8}'),
                't' => Some('\t'),
                'n' => Some('\n'),
                'f' => Some('\u{c}'),
                'r' => Some('\r'),
                'e' => Some('\u{1b}'),
                '"' => Some('"'),
                '\\' => Some('\\'),
                _ => None,
            };
            if let Some(ch) = simple {
                value.push(ch);
                offsets.push(at);
                i += 2;
                continue;
            }
            if next == 'u' || next == 'U' || next == 'x' {
                let len = match next {
                    'u' => 4,
                    'U' => 8,
                    _ => 2,
                };
                let hex: String = chars.get(i + 2..i + 2 + len)?.iter().map(|c| c.1).collect();
                let ch = char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?;
                value.push(ch);
                offsets.push(at);
                i += 2 + len;
                continue;
            }
            if open == 3 && next.is_whitespace() {
                // Line-ending backslash: skip whitespace and newlines up to the next character.
                let mut j = i + 1;
                while j < chars.len() && chars[j].1.is_whitespace() {
                    j += 1;
                }
                i = j;
                continue;
            }
            return None;
        }
        value.push(c);
        offsets.push(at);
        i += 1;
    }
    offsets.push(body_end);
    Some((value, offsets))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> Vocabulary {
        Vocabulary {
            segments: Some(crate::RFM_SEGMENTS.iter().map(|s| s.to_string()).collect()),
            templates: Some(vec!["win_back".into(), "upsell".into()]),
            attributes: Some(vec![]),
        }
    }

    const GOOD: &str = r#"
[[goal]]
id = "win_back"
name = "Win-back"
rule = '''segment in ["At Risk", "Can't Lose Them"] and clv > 10'''
window_days = 30
response_prior = 0.03
cost_per_recipient = 0.1
value = "clv"

[[goal]]
id = "upsell"
name = "Upsell"
description = "More of what they like."
rule = "segment = \"Champions\" and frequency >= 2"
window_days = 14
response_prior = 0.05
cost_per_recipient = 0.01
value = "avg_order_value"
priority = 2
audience_cap = 500
"#;

    fn err(text: &str) -> GoalsError {
        match parse_goals(text, "goals.toml", &vocab()) {
            Ok(g) => panic!("parsed: {g:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn parses_a_good_file() {
        let goals = parse_goals(GOOD, "goals.toml", &vocab()).expect("parses");
        assert_eq!(goals.len(), 2);
        assert_eq!(goals[0].template, "win_back");
        assert_eq!(goals[0].priority, 100);
        assert_eq!(goals[0].position, Position { line: 3, column: 6 });
        assert_eq!(goals[1].audience_cap, Some(500));
        assert_eq!(goals[1].value, ValueBasis::AvgOrderValue);
        assert_eq!(goals[1].rule.segments(), vec!["Champions".to_string()]);
    }

    const VARIANTS: &str = r#"
[[goal.variants]]
id = "a"
template = "win_back"
[[goal.variants]]
id = "b"
template = "upsell"
"#;

    #[test]
    fn a_share_test_is_parsed_and_checked() {
        let head = GOOD
            .split("\n[[goal]]\nid = \"upsell\"")
            .next()
            .expect("first goal");
        let with = |extra: &str| format!("{head}{extra}{VARIANTS}");
        let g = parse_goals(
            &with("test_share = 0.2\ntest_days = 10\ndefault_variant = \"b\"\n"),
            "goals.toml",
            &vocab(),
        )
        .expect("parses");
        assert_eq!(
            g[0].share_test,
            Some(ShareTest {
                share: 0.2,
                days: 10,
                default_variant: "b".into()
            })
        );
        // Defaults: the window as the horizon, the first variant as the default.
        let g = parse_goals(&with("test_share = 0.5\n"), "goals.toml", &vocab()).expect("parses");
        let t = g[0].share_test.clone().expect("test");
        assert_eq!((t.days, t.default_variant.as_str()), (30, "a"));
        for (extra, want) in [
            ("test_share = 1.0\n", "above 0 and below 1"),
            (
                "test_share = 0.2\ntest_days = 31\n",
                "1 to window_days (30)",
            ),
            (
                "test_share = 0.2\ndefault_variant = \"c\"\n",
                "one of the variants (a, b)",
            ),
            ("test_days = 3\n", "test_days needs `test_share`"),
        ] {
            let e = err(&with(extra));
            assert!(e.to_string().contains(want), "{extra}: {e}");
        }
        let e = err(&format!("{head}test_share = 0.2\n"));
        assert!(e.to_string().contains("needs `[[goal.variants]]`"), "{e}");
    }

    #[test]
    fn step_rules_may_read_customer_fields() {
        let head = GOOD
            .split("\n[[goal]]\nid = \"upsell\"")
            .next()
            .expect("first goal");
        let step = |when: &str| {
            format!("{head}\n[[goal.steps]]\nafter_days = 7\nwhen = '{when}'\ntemplate = \"win_back\"\n")
        };
        let g = parse_goals(&step("not converted and clv > 100"), "goals.toml", &vocab())
            .expect("parses");
        assert!(g[0].steps[0].when.reads_customer());
        let e = err(&step(r#"not converted and segment = "Champs""#));
        assert!(e.to_string().contains("known segments"), "{e}");
    }

    #[test]
    fn rule_errors_point_into_the_file() {
        // Literal multi-line string: offset maps one to one.
        let text = GOOD.replace("\"Can't Lose Them\"]", "\"Cant Lose Them\"]");
        let e = err(&text);
        assert_eq!(e.position.line, 5, "{e}");
        let line = text.lines().nth(4).expect("line 5");
        let at: String = line.chars().skip(e.position.column - 1).collect();
        assert!(at.starts_with("\"Cant Lose Them\""), "{e} -> {at}");
        assert_eq!(e.position.column, 34);
        assert!(
            e.message.contains("unknown segment \"Cant Lose Them\""),
            "{e}"
        );
        assert!(
            e.message.contains("\"Can't Lose Them\""),
            "lists known: {e}"
        );
        assert!(
            e.to_string()
                .starts_with("goals.toml:5:34: goal `win_back`, rule:"),
            "{e}"
        );
    }

    #[test]
    fn escapes_in_basic_strings_shift_columns() {
        // `rule = "segment = \"Champions\" and frequency >= 2"`: the error is at `frequenzy`.
        let text = GOOD.replace("frequency >= 2", "frequenzy >= 2");
        let e = err(&text);
        let line = text.lines().nth(e.position.line - 1).expect("line");
        let col_byte = line
            .char_indices()
            .nth(e.position.column - 1)
            .expect("col")
            .0;
        assert!(line[col_byte..].starts_with("frequenzy"), "{e} -> {line}");
        assert!(e.message.contains("unknown field `frequenzy`"), "{e}");
    }

    #[test]
    fn multiline_basic_strings_map_lines() {
        let text = GOOD.replace(
            "rule = \"segment = \\\"Champions\\\" and frequency >= 2\"",
            "rule = \"\"\"\nsegment = \"Champions\" \\\n    and frequency >= 'two'\"\"\"",
        );
        let e = err(&text);
        let line = text.lines().nth(e.position.line - 1).expect("line");
        let col_byte = line
            .char_indices()
            .nth(e.position.column - 1)
            .expect("col")
            .0;
        assert!(line[col_byte..].starts_with("'two'"), "{e} -> {line:?}");
    }

    #[test]
    fn unknown_template_lists_known() {
        let e = err(&GOOD.replace("id = \"upsell\"", "id = \"upsell\"\ntemplate = \"upsel\""));
        assert!(
            e.message
                .contains("unknown template \"upsel\"; known templates: win_back, upsell"),
            "{e}"
        );
        assert_eq!(e.position.line, 13);
        assert_eq!(e.position.column, 12);
    }

    #[test]
    fn toml_problems_carry_positions() {
        let e = err(&GOOD.replace("window_days = 14", "window_days = 14\nwindow = 3"));
        assert!(e.message.contains("unknown field `window`"), "{e}");
        assert_eq!(e.position.line, 17);
        let e = err(&GOOD.replace("response_prior = 0.05", "response_prior = \"high\""));
        assert_eq!(e.position.line, 17, "{e}");
        let e = err(&GOOD.replace("response_prior = 0.05", "response_prior = 1.5"));
        assert!(e.message.contains("expected a probability"), "{e}");
        assert_eq!(
            e.position,
            Position {
                line: 17,
                column: 18
            }
        );
        let e = err(&GOOD.replace("name = \"Upsell\"\n", ""));
        assert!(e.message.contains("missing field `name`"), "{e}");
        let e = err("[[goal]\n");
        assert_eq!(e.position.line, 1, "{e}");
    }

    #[test]
    fn ids_are_checked() {
        let e = err(&GOOD.replace(
            "id = \"upsell\"",
            "id = \"win_back\"\ntemplate = \"upsell\"",
        ));
        assert!(
            e.message
                .contains("duplicate goal id \"win_back\": already defined at line 3"),
            "{e}"
        );
        let e = err(&GOOD.replace("id = \"upsell\"", "id = \"Up Sell\"\ntemplate = \"upsell\""));
        assert!(e.message.contains("snake_case"), "{e}");
        let e = err("version = 1\n");
        assert!(e.message.contains("no goals"), "{e}");
    }

    #[test]
    fn value_basis_and_caps_are_checked() {
        let e = err(&GOOD.replace("value = \"clv\"", "value = \"revenue\""));
        assert!(
            e.message
                .contains("expected \"clv\" or \"avg_order_value\""),
            "{e}"
        );
        let e = err(&GOOD.replace("audience_cap = 500", "audience_cap = 0"));
        assert!(e.message.contains("audience_cap 0"), "{e}");
    }

    #[test]
    fn decode_offsets_handles_every_string_kind() {
        let (v, o) = decode_offsets(r#""a\"b\u00e9c""#).expect("basic");
        assert_eq!(v, "a\"béc");
        assert_eq!(o, vec![1, 2, 4, 5, 11, 12]);
        let (v, o) = decode_offsets("'''\nab'''").expect("ml literal");
        assert_eq!(v, "ab");
        assert_eq!(o, vec![4, 5, 6]);
        let (v, _) = decode_offsets("\"\"\"a \\\n   b\"\"\"").expect("ml basic");
        assert_eq!(v, "a b");
    }
}
