//! The whole programme against the global control group: every customer's revenue in one
//! control period, customers in the control (whom no campaign mailed) against everyone else, as
//! incremental revenue per customer with Welch's interval. Intent to treat: the rest counts every
//! customer the control was drawn from, mailed or not, so the difference is what the programme
//! as a whole changed per customer.

use retain_planner::GlobalControl;
/// The programme's settings (`[program]` in goals.toml), for callers without the planner.
pub use retain_planner::Program;
use retain_store::Store;
use serde::Serialize;

use crate::results::ResultsError;
use crate::stats::{welch, MeanDiff, Moments};

/// Revenue per customer of the programme against its global control group in one period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProgramReport {
    /// The control period (`2026Q4`) and its bounds, Unix seconds.
    pub period: String,
    pub from: i64,
    pub to: i64,
    pub control_share: f64,
    pub customers: u64,
    pub control: GroupRevenue,
    pub programme: GroupRevenue,
    /// Programme minus control revenue per customer, with Welch's 95 % interval.
    pub incremental_per_customer: Option<MeanDiff>,
    /// Per customer × the programme's customers.
    pub incremental_revenue: Option<f64>,
    pub note: Option<String>,
}

/// One side of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GroupRevenue {
    pub customers: u64,
    pub buyers: u64,
    pub revenue: f64,
    pub revenue_per_customer: Option<f64>,
}

/// Welford accumulators of the two groups.
#[derive(Default)]
struct Acc {
    n: [u64; 2],
    mean: [f64; 2],
    m2: [f64; 2],
    buyers: [u64; 2],
    sum: [f64; 2],
}

impl Acc {
    fn add(&mut self, g: usize, v: f64, bought: bool) {
        self.n[g] += 1;
        let d = v - self.mean[g];
        self.mean[g] += d / self.n[g] as f64;
        self.m2[g] += d * (v - self.mean[g]);
        self.sum[g] += v;
        self.buyers[g] += u64::from(bought);
    }

    fn moments(&self, g: usize) -> Moments {
        Moments {
            n: self.n[g],
            mean: self.mean[g],
            var: if self.n[g] > 1 {
                self.m2[g] / (self.n[g] - 1) as f64
            } else {
                0.0
            },
        }
    }

    fn group(&self, g: usize) -> GroupRevenue {
        GroupRevenue {
            customers: self.n[g],
            buyers: self.buyers[g],
            revenue: self.sum[g],
            revenue_per_customer: (self.n[g] > 0).then_some(self.mean[g]),
        }
    }
}

/// The programme report of the control period holding `at` (Unix seconds), counting orders up to
/// `until` (default: the period's end).
pub async fn program_report(
    store: &Store,
    program: &Program,
    at: i64,
    until: Option<i64>,
) -> Result<ProgramReport, ResultsError> {
    let control = GlobalControl::of(program, at);
    let (from, end) = program.control_period.bounds(at);
    let to = until.map_or(end, |u| u.min(end));
    let acc = store
        .fold_period_revenue(from, to, Acc::default(), |acc, id, minor, orders| {
            let g = usize::from(control.contains(id));
            acc.add(g, minor as f64 / 100.0, orders > 0 && minor > 0);
        })
        .await?;
    Ok(finish(&control, from, to, &acc))
}

fn finish(control: &GlobalControl, from: i64, to: i64, acc: &Acc) -> ProgramReport {
    let diff = welch(acc.moments(0), acc.moments(1));
    let note = if control.share <= 0.0 {
        Some("no global control group ([program] control_share = 0): the programme cannot be measured".into())
    } else if acc.n[1] < 2 {
        Some("the control group has fewer than two customers".into())
    } else {
        None
    };
    ProgramReport {
        period: control.period.clone(),
        from,
        to,
        control_share: control.share,
        customers: acc.n[0] + acc.n[1],
        control: acc.group(1),
        programme: acc.group(0),
        incremental_revenue: diff.as_ref().map(|d| d.absolute * acc.n[0] as f64),
        incremental_per_customer: diff,
        note,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welford_groups_match_direct_sums() {
        let mut acc = Acc::default();
        let vals = [(0, 10.0), (0, 0.0), (0, 20.0), (1, 5.0), (1, 0.0), (1, 1.0)];
        for (g, v) in vals {
            acc.add(g, v, v > 0.0);
        }
        let m0 = acc.moments(0);
        assert!((m0.mean - 10.0).abs() < 1e-12);
        assert!((m0.var - 100.0).abs() < 1e-9, "{}", m0.var);
        let r = finish(
            &GlobalControl {
                share: 0.5,
                period: "2026Q4".into(),
                seed: 0,
            },
            0,
            1,
            &acc,
        );
        assert_eq!(r.customers, 6);
        assert_eq!(r.control.buyers, 2);
        let d = r.incremental_per_customer.expect("diff");
        assert!((d.absolute - 8.0).abs() < 1e-12);
        assert!(d.ci95[0] < 8.0 && d.ci95[1] > 8.0);
        assert!((r.incremental_revenue.expect("total") - 24.0).abs() < 1e-9);
    }
}
