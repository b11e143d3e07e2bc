//! What the planner is given: the customers to consider ([`Candidate`]) and the options of one
//! planning run ([`PlanOptions`]), plus the reasons a customer can be excluded before matching.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use retain_core::{Customer, CustomerFeatures, Prediction, SuppressionReason};
use serde::{Deserialize, Serialize};

use crate::expr::{NumField, Row, Subject, NUM_FIELDS};
use crate::PlanError;

/// RFM scores (1–5 each) of a customer, when the segmentation computed them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RfmScores {
    pub r: u8,
    pub f: u8,
    pub m: u8,
}

/// One customer as the planner sees it. Borrowed, so a million of them cost only pointers.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub customer: &'a Customer,
    pub features: &'a CustomerFeatures,
    /// The customer's segment name (from the latest segmentation).
    pub segment: &'a str,
    pub scores: Option<RfmScores>,
    pub prediction: Option<&'a Prediction>,
    /// Set when the customer's address is on the suppression list.
    pub suppression: Option<SuppressionReason>,
    /// Unix seconds (UTC) of the last campaign email sent to the customer.
    pub last_campaign_at: Option<i64>,
    /// The day (days since 1970-01-01) the customer's product due soonest should be bought
    /// again (replenishment timing).
    pub due_day: Option<i32>,
}

impl<'a> Candidate<'a> {
    /// The numbers a rule can read, NaN where the customer has no value.
    pub fn numbers(&self, now: i64) -> [f64; NUM_FIELDS] {
        let f = self.features;
        let mut n = [f64::NAN; NUM_FIELDS];
        n[NumField::RecencyDays.index()] = f.recency_days as f64;
        n[NumField::Frequency.index()] = f64::from(f.frequency);
        n[NumField::RepeatPurchases.index()] = f64::from(f.repeat_purchases);
        n[NumField::MonetaryTotal.index()] = f.monetary_total;
        n[NumField::AvgOrderValue.index()] = f.avg_order_value;
        n[NumField::TenureDays.index()] = f.tenure_days as f64;
        if let Some(p) = self.prediction {
            n[NumField::PAlive.index()] = p.p_alive;
            n[NumField::Clv.index()] = p.clv;
            n[NumField::ExpectedPurchases90d.index()] = p.expected_purchases_90d;
        }
        if let Some(s) = self.scores {
            n[NumField::RScore.index()] = f64::from(s.r);
            n[NumField::FScore.index()] = f64::from(s.f);
            n[NumField::MScore.index()] = f64::from(s.m);
        }
        if let Some(at) = self.last_campaign_at {
            n[NumField::DaysSinceLastEmail.index()] = ((now - at) as f64 / 86_400.0).floor();
        }
        if let Some(due) = self.due_day {
            let today = now.div_euclid(86_400);
            n[NumField::DaysUntilDue.index()] = (i64::from(due) - today) as f64;
        }
        // Non-finite inputs (a NaN CLV, say) read as "no value".
        for x in &mut n {
            if !x.is_finite() {
                *x = f64::NAN;
            }
        }
        n
    }

    /// The customer as the simple rule evaluator sees it.
    pub fn subject(&self, now: i64) -> Subject<'a> {
        Subject {
            segment: self.segment,
            numbers: self.numbers(now),
            locale: self.customer.locale.as_deref(),
            attributes: Some(&self.customer.attributes),
        }
    }

    pub(crate) fn row(&self, now: i64, segment: u32) -> Row<'a> {
        Row {
            numbers: self.numbers(now),
            segment,
            locale: self.customer.locale.as_deref(),
            attributes: Some(&self.customer.attributes),
        }
    }
}

/// Which consent lets the planner include a customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentPolicy {
    /// Only customers who opted in (`subscribed = true`).
    RequireOptIn,
    /// Opted-in customers and customers whose consent is unknown (existing customers, the
    /// "soft opt-in" basis); explicit opt-outs are always excluded. The plan warns how many
    /// customers of unknown consent it targets.
    #[default]
    AllowUnknown,
}

/// Why a customer was left out before matching. Each excluded customer is counted once, under
/// the first reason in declaration order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExclusionReason {
    /// In the programme's global control group this period: no campaign mails them.
    GlobalControl,
    /// Opted out, or on the suppression list as unsubscribed, complaint or manual.
    UnsubscribedOrSuppressed,
    /// On the suppression list after a hard bounce.
    Bounced,
    /// Consent unknown while the policy requires an opt-in.
    NoConsent,
    /// No address, or an address that is not deliverable.
    InvalidOrMissingEmail,
    /// Mailed by a campaign within the frequency-cap window.
    FrequencyCap,
}

impl ExclusionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GlobalControl => "global_control",
            Self::UnsubscribedOrSuppressed => "unsubscribed_or_suppressed",
            Self::Bounced => "bounced",
            Self::NoConsent => "no_consent",
            Self::InvalidOrMissingEmail => "invalid_or_missing_email",
            Self::FrequencyCap => "frequency_cap",
        }
    }

    /// Why `c` may not be mailed under `options`, if it may not.
    pub fn of(c: &Candidate<'_>, options: &PlanOptions) -> Option<Self> {
        if options
            .control
            .as_ref()
            .is_some_and(|g| g.contains(&c.customer.id))
        {
            return Some(Self::GlobalControl);
        }
        match c.suppression {
            Some(SuppressionReason::HardBounce) => return Some(Self::Bounced),
            Some(_) => return Some(Self::UnsubscribedOrSuppressed),
            None => {}
        }
        match (c.customer.subscribed, options.consent) {
            (Some(false), _) => return Some(Self::UnsubscribedOrSuppressed),
            (None, ConsentPolicy::RequireOptIn) => return Some(Self::NoConsent),
            _ => {}
        }
        let has_address = c
            .customer
            .email
            .as_deref()
            .is_some_and(|e| !e.trim().is_empty());
        if !has_address || !c.customer.email_valid {
            return Some(Self::InvalidOrMissingEmail);
        }
        if let Some(at) = c.last_campaign_at {
            let window = i64::from(options.frequency_cap_days) * 86_400;
            if options.now - at < window {
                return Some(Self::FrequencyCap);
            }
        }
        None
    }
}

impl fmt::Display for ExclusionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The company's stage, which sets how much of the marketing budget should go to retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Startup,
    #[default]
    Growth,
    Mature,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Startup => "startup",
            Stage::Growth => "growth",
            Stage::Mature => "mature",
        }
    }
}

impl FromStr for Stage {
    type Err = PlanError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "startup" => Ok(Stage::Startup),
            "growth" => Ok(Stage::Growth),
            "mature" => Ok(Stage::Mature),
            _ => Err(PlanError::UnknownStage(s.to_string())),
        }
    }
}

/// The budget that means "no limit" (everyone worth their cost is selected).
pub const UNLIMITED_BUDGET: f64 = f64::MAX;

/// The options of one planning run.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanOptions {
    /// Money available for this plan's sends (recipients × cost per recipient).
    pub budget: f64,
    /// The plan's time, Unix seconds (UTC): the frequency cap counts back from it.
    pub now: i64,
    /// At most one campaign email per this many days (default 7).
    pub frequency_cap_days: u32,
    /// Share of every campaign's selected customers kept as a control group (0.01–0.5, default
    /// 0.1; 0: none, every selected customer is mailed and nothing can be measured).
    pub holdout_fraction: f64,
    /// Seed of the holdout draw: same inputs, same seed, same plan.
    pub seed: u64,
    pub consent: ConsentPolicy,
    /// Incremental response rates measured by past campaigns, by goal id; they replace the
    /// goals' priors.
    pub observed_rates: BTreeMap<String, f64>,
    /// The company's stage (default growth) for the retention/acquisition balance.
    pub stage: Option<Stage>,
    /// The whole marketing budget (acquisition + retention), for the balance.
    pub marketing_budget: Option<f64>,
    /// Predicted uplift by goal id: per candidate (in the order of the candidates handed to
    /// [`crate::plan()`]), the change of the conversion probability that mailing them causes,
    /// as an uplift model estimates it. A goal listed here ranks its customers by
    /// `uplift × value − cost` instead of `response rate × value − cost`; a non-finite entry
    /// counts as no effect.
    pub uplift: BTreeMap<String, Vec<f64>>,
    /// The programme's global control group: its members are excluded from every campaign.
    pub control: Option<crate::program::GlobalControl>,
}

impl PlanOptions {
    /// Options with the defaults: 7-day frequency cap, 10% holdout, seed 0, unknown consent allowed.
    pub fn new(budget: f64, now: i64) -> Self {
        Self {
            budget,
            now,
            frequency_cap_days: 7,
            holdout_fraction: 0.1,
            seed: 0,
            consent: ConsentPolicy::default(),
            observed_rates: BTreeMap::new(),
            stage: None,
            marketing_budget: None,
            uplift: BTreeMap::new(),
            control: None,
        }
    }

    /// Checks every option's range.
    pub fn validate(&self) -> Result<(), PlanError> {
        if !self.budget.is_finite() || self.budget < 0.0 {
            return Err(PlanError::InvalidBudget(self.budget));
        }
        if let Some(m) = self.marketing_budget {
            if !m.is_finite() || m < 0.0 {
                return Err(PlanError::InvalidMarketingBudget(m));
            }
        }
        if !(self.holdout_fraction == 0.0 || (0.01..=0.5).contains(&self.holdout_fraction)) {
            return Err(PlanError::InvalidHoldout(self.holdout_fraction));
        }
        if let Some(c) = &self.control {
            if !(0.0..=0.5).contains(&c.share) {
                return Err(PlanError::InvalidControlShare(c.share));
            }
        }
        if self.frequency_cap_days == 0 {
            return Err(PlanError::InvalidFrequencyCap(0));
        }
        for (goal, &rate) in &self.observed_rates {
            if !(0.0..=1.0).contains(&rate) {
                return Err(PlanError::InvalidObservedRate {
                    goal: goal.clone(),
                    rate,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::{parse, Vocabulary};

    fn chrono_free_date() -> chrono::NaiveDate {
        retain_core::date_of(20_000)
    }

    #[test]
    fn days_until_due_counts_from_now_and_is_absent_without_a_due_product() {
        let customer = Customer::default();
        let features = CustomerFeatures {
            customer_id: String::new(),
            first_order: chrono_free_date(),
            last_order: chrono_free_date(),
            recency_days: 10,
            frequency: 3,
            repeat_purchases: 2,
            monetary_total: 90.0,
            avg_order_value: 30.0,
            tenure_days: 100,
        };
        let mut c = Candidate {
            customer: &customer,
            features: &features,
            segment: "Loyal Customers",
            scores: None,
            prediction: None,
            suppression: None,
            last_campaign_at: None,
            due_day: Some(20_005),
        };
        // Noon of day 20 000.
        let now = 20_000 * 86_400 + 43_200;
        assert_eq!(c.numbers(now)[NumField::DaysUntilDue.index()], 5.0);
        let rule = parse("days_until_due <= 7", &Vocabulary::default()).expect("parses");
        assert!(rule.evaluate(&c.subject(now)));
        assert!(
            !rule.evaluate(&c.subject(now - 10 * 86_400)),
            "due in 15 days"
        );
        c.due_day = None;
        assert!(c.numbers(now)[NumField::DaysUntilDue.index()].is_nan());
        assert!(!rule.evaluate(&c.subject(now)));
    }
}
