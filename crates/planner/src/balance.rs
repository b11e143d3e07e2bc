//! Retention versus acquisition: the share of the marketing budget a company at a given stage
//! should spend on keeping customers, and where a plan's spend lands against it.

use serde::Serialize;

use crate::input::Stage;

/// Recommended retention share of the marketing budget by stage.
pub fn recommended_share(stage: Stage) -> f64 {
    match stage {
        Stage::Startup => 0.2,
        Stage::Growth => 0.4,
        Stage::Mature => 0.6,
    }
}

/// Share above the recommendation that draws a warning.
const TOLERANCE: f64 = 0.05;

/// The balance section of a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Balance {
    pub stage: Stage,
    /// Whether the stage was given (otherwise growth is assumed).
    pub stage_given: bool,
    pub marketing_budget: Option<f64>,
    pub recommended_retention_share: f64,
    /// `recommended_retention_share × marketing_budget`.
    pub recommended_retention_budget: Option<f64>,
    /// The plan's spend as a share of the marketing budget (all planned campaigns mail existing
    /// customers, so all of it is retention spend).
    pub planned_retention_share: Option<f64>,
    pub planned_spend: f64,
    pub reasoning: String,
}

/// Computes the balance; returns it with any warnings.
pub fn balance(
    stage: Option<Stage>,
    marketing_budget: Option<f64>,
    planned_spend: f64,
) -> (Balance, Vec<String>) {
    let stage_given = stage.is_some();
    let stage = stage.unwrap_or_default();
    let share = recommended_share(stage);
    let mut warnings = Vec::new();
    let mut reasoning = String::new();
    if !stage_given {
        reasoning.push_str("Stage not given; assuming growth. ");
    }
    reasoning.push_str(match stage {
        Stage::Startup => {
            "A startup has few customers to keep yet, so most of its marketing money must win new ones; \
             about 20% on retention keeps first buyers coming back and teaches what makes them return."
        }
        Stage::Growth => {
            "A growing company has a base worth protecting while it still needs new customers; \
             about 40% on retention protects repeat revenue without starving acquisition."
        }
        Stage::Mature => {
            "A mature company earns most of its revenue from existing customers, and keeping one costs \
             less than winning one; about 60% on retention matches where the money comes from."
        }
    });
    let (recommended_budget, planned_share) = match marketing_budget {
        Some(m) if m > 0.0 => {
            let rec = share * m;
            let planned = planned_spend / m;
            reasoning.push_str(&format!(
                " Of a marketing budget of {m:.2}, that is {rec:.2} for retention; this plan spends {planned_spend:.2} \
                 ({:.1}% of the marketing budget, {:.0}% of the recommended retention budget).",
                planned * 100.0,
                if rec > 0.0 { planned_spend / rec * 100.0 } else { 0.0 },
            ));
            if planned > share + TOLERANCE {
                warnings.push(format!(
                    "the plan spends {:.1}% of the marketing budget on retention, above the {:.0}% recommended for a {} company",
                    planned * 100.0,
                    share * 100.0,
                    stage.as_str()
                ));
            }
            (Some(rec), Some(planned))
        }
        Some(_) => {
            reasoning.push_str(" The marketing budget is zero, so no share can be computed.");
            (Some(0.0), None)
        }
        None => {
            reasoning.push_str(&format!(
                " Give the whole marketing budget to see where this plan's spend of {planned_spend:.2} lands."
            ));
            (None, None)
        }
    };
    (
        Balance {
            stage,
            stage_given,
            marketing_budget,
            recommended_retention_share: share,
            recommended_retention_budget: recommended_budget,
            planned_retention_share: planned_share,
            planned_spend,
            reasoning,
        },
        warnings,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_grow_with_maturity() {
        assert!(recommended_share(Stage::Startup) < recommended_share(Stage::Growth));
        assert!(recommended_share(Stage::Growth) < recommended_share(Stage::Mature));
    }

    #[test]
    fn planned_share_and_warning() {
        let (b, w) = balance(Some(Stage::Startup), Some(10_000.0), 500.0);
        assert_eq!(b.recommended_retention_budget, Some(2_000.0));
        assert_eq!(b.planned_retention_share, Some(0.05));
        assert!(w.is_empty());
        assert!(b.reasoning.contains("startup") || b.reasoning.contains("A startup"));
        let (b, w) = balance(Some(Stage::Startup), Some(10_000.0), 3_000.0);
        assert_eq!(b.planned_retention_share, Some(0.3));
        assert_eq!(w.len(), 1, "{w:?}");
    }

    #[test]
    fn missing_inputs() {
        let (b, w) = balance(None, None, 100.0);
        assert_eq!(b.stage, Stage::Growth);
        assert!(!b.stage_given);
        assert!(b.reasoning.starts_with("Stage not given"));
        assert_eq!(b.planned_retention_share, None);
        assert!(w.is_empty());
    }
}
