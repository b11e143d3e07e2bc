//! The global control group: a share of all customers that no campaign mails, so the whole
//! programme's effect can be measured against customers who received nothing.
//!
//! Membership is a pure function of the customer's id, the period and a seed: a seeded hash of
//! `(id, period)` mapped to [0, 1), in the control when below the share. The period (a quarter by
//! default) rotates the group, so no customer is kept out of every campaign for ever, while within
//! a period every plan, report and process agrees on who is in it without storing a list.

use chrono::{Datelike, TimeZone, Utc};
use serde::Serialize;

/// Share of customers in the global control group unless `[program] control_share` says otherwise.
pub const DEFAULT_CONTROL_SHARE: f64 = 0.05;

/// How often the global control group is drawn afresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ControlPeriod {
    Month,
    #[default]
    Quarter,
    Year,
}

impl ControlPeriod {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "month" => Some(Self::Month),
            "quarter" => Some(Self::Quarter),
            "year" => Some(Self::Year),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Month => "month",
            Self::Quarter => "quarter",
            Self::Year => "year",
        }
    }

    /// The label of the period holding `unix` seconds: `2026-11`, `2026Q4` or `2026`.
    pub fn label(self, unix: i64) -> String {
        let d = Utc
            .timestamp_opt(unix, 0)
            .single()
            .unwrap_or_else(|| Utc.timestamp_opt(0, 0).single().unwrap_or_default());
        match self {
            Self::Month => format!("{}-{:02}", d.year(), d.month()),
            Self::Quarter => format!("{}Q{}", d.year(), (d.month() - 1) / 3 + 1),
            Self::Year => format!("{}", d.year()),
        }
    }

    /// Unix seconds of the start of the period holding `unix`, and of the next period.
    pub fn bounds(self, unix: i64) -> (i64, i64) {
        let d = Utc.timestamp_opt(unix, 0).single().unwrap_or_default();
        let (y, m) = (d.year(), d.month());
        let (start_m, len) = match self {
            Self::Month => (m, 1),
            Self::Quarter => ((m - 1) / 3 * 3 + 1, 3),
            Self::Year => (1, 12),
        };
        let at = |y: i32, m: u32| {
            let (y, m) = (y + ((m - 1) / 12) as i32, (m - 1) % 12 + 1);
            Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
                .single()
                .map_or(0, |t| t.timestamp())
        };
        (at(y, start_m), at(y, start_m + len))
    }
}

/// The `[program]` settings of the goals file.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Program {
    /// Share of all customers kept out of every campaign (0: no global control group).
    pub control_share: f64,
    pub control_period: ControlPeriod,
    /// Seed of the membership hash.
    pub control_seed: u64,
}

impl Default for Program {
    fn default() -> Self {
        Self {
            control_share: DEFAULT_CONTROL_SHARE,
            control_period: ControlPeriod::Quarter,
            control_seed: 0,
        }
    }
}

/// The global control group of one period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GlobalControl {
    pub share: f64,
    /// The period label the draw belongs to (`2026Q4`).
    pub period: String,
    pub seed: u64,
}

impl GlobalControl {
    /// The control group of `program` for the period holding `now`.
    pub fn of(program: &Program, now: i64) -> Self {
        Self {
            share: program.control_share,
            period: program.control_period.label(now),
            seed: program.control_seed,
        }
    }

    /// Whether the customer with external id `customer_id` is in the control group.
    pub fn contains(&self, customer_id: &str) -> bool {
        self.share > 0.0 && unit_hash(self.seed, &self.period, customer_id) < self.share
    }
}

/// A uniform number in [0, 1) from the seed, the period and the id (FNV-1a then SplitMix64:
/// stable across platforms and releases).
pub fn unit_hash(seed: u64, period: &str, id: &str) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in period.bytes().chain([0xff]).chain(id.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let z = crate::holdout::splitmix64(h ^ crate::holdout::splitmix64(seed));
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_bounds_of_periods() {
        // 2026-11-27 12:00 UTC.
        let t = 1_795_780_800;
        assert_eq!(ControlPeriod::Quarter.label(t), "2026Q4");
        assert_eq!(ControlPeriod::Month.label(t), "2026-11");
        assert_eq!(ControlPeriod::Year.label(t), "2026");
        let (a, b) = ControlPeriod::Quarter.bounds(t);
        assert_eq!(ControlPeriod::Quarter.label(a), "2026Q4");
        assert_eq!(ControlPeriod::Quarter.label(b), "2027Q1");
        assert_eq!(ControlPeriod::Quarter.label(b - 1), "2026Q4");
        assert_eq!((b - a) / 86_400, 92, "Oct + Nov + Dec");
    }

    #[test]
    fn share_is_respected_and_rotates_with_the_period() {
        let g = GlobalControl {
            share: 0.05,
            period: "2026Q4".into(),
            seed: 7,
        };
        let n = 100_000;
        let ids: Vec<String> = (0..n).map(|i| format!("C{i}")).collect();
        let inside: Vec<bool> = ids.iter().map(|id| g.contains(id)).collect();
        let k = inside.iter().filter(|&&x| x).count() as f64;
        // Binomial(100000, 0.05): sd ≈ 69; 5 sd either side.
        assert!((k - 5000.0).abs() < 350.0, "{k}");
        let next = GlobalControl {
            period: "2027Q1".into(),
            ..g.clone()
        };
        let both = ids
            .iter()
            .zip(&inside)
            .filter(|(id, &x)| x && next.contains(id))
            .count() as f64;
        // Independent draws overlap in about share² of customers (250), not in 5000.
        assert!(both < 500.0, "{both}");
        // Deterministic.
        assert_eq!(g.contains("C17"), g.contains("C17"));
        let none = GlobalControl {
            share: 0.0,
            ..g.clone()
        };
        assert!(!ids.iter().any(|id| none.contains(id)));
    }
}
