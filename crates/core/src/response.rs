//! The seeded simulation of the weeks after a send, for `retain demo`: who buys, who opens and
//! who clicks, with a known true effect, so that the measured uplift can be set beside the truth.
//!
//! Every customer may buy once in the window after the send with a base probability that falls
//! with recency and rises with frequency (the same for recipients, holdouts, the global control
//! and everyone else). A recipient who was actually sent the email buys with that probability
//! plus the goal's true uplift, scaled by how recently they bought (recent buyers respond much
//! more: the effect differs between customers, so uplift targeting has something to find).
//! The true effect of a campaign is the intent-to-treat effect the report estimates: the mean
//! added probability over all its recipients (zero for those never sent).
//! A follow-up step ([`simulate_step`]) adds its own effect for those of its recipients who had
//! not bought, between the step and the end of the window; the holdout never gets one.

use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use serde::Serialize;

/// One customer as the simulation sees them.
#[derive(Debug, Clone)]
pub struct Person {
    pub customer_id: String,
    pub email: String,
    pub recency_days: f64,
    pub frequency: u32,
    pub avg_order_value: f64,
    /// The campaign (index into [`ResponseSpec::campaigns`]) they are a member of, if any.
    pub campaign: Option<usize>,
    pub holdout: bool,
    /// The send of a recipient who was mailed: (send id, accepted at).
    pub sent: Option<(i64, i64)>,
}

/// A campaign's window and its true uplift at the reference responsiveness.
#[derive(Debug, Clone)]
pub struct CampaignTruth {
    pub window_days: i64,
    /// Added purchase probability for a recipient of average responsiveness (1.0).
    pub uplift: f64,
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct ResponseSpec {
    pub seed: u64,
    /// When the weeks after the send begin (the first send), Unix seconds.
    pub start: i64,
    /// Window of the base-rate purchases of customers outside every campaign.
    pub window_days: i64,
    pub campaigns: Vec<CampaignTruth>,
}

/// One simulated purchase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimOrder {
    pub order_id: String,
    pub customer_id: String,
    pub email: String,
    pub at: i64,
    pub amount: f64,
}

/// The simulated weeks.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Simulated {
    pub orders: Vec<SimOrder>,
    /// (send id, time) of human opens and of clicks.
    pub opens: Vec<(i64, i64)>,
    pub clicks: Vec<(i64, i64)>,
    /// Per campaign: the true intent-to-treat uplift of the conversion rate.
    pub true_uplift: Vec<f64>,
    /// Per campaign: the true incremental revenue (expected, from the added probabilities).
    pub true_incremental_revenue: Vec<f64>,
}

/// Base purchase probability in the weeks after the send (one window).
pub fn base_rate(recency_days: f64, frequency: u32) -> f64 {
    let r = (-recency_days.max(0.0) / 300.0).exp();
    (0.02 + 0.06 * r + 0.01 * f64::from(frequency.min(6))).min(0.5)
}

/// How strongly a customer responds to an email, relative to the goal's uplift (mean about 1
/// over a typical audience): recent buyers respond far more than long-lapsed ones.
pub fn responsiveness(recency_days: f64) -> f64 {
    if recency_days < 365.0 {
        1.6
    } else {
        0.5
    }
}

/// Runs the simulation (deterministic for a seed).
pub fn simulate(spec: &ResponseSpec, people: &[Person]) -> Simulated {
    let mut rng = rand::rngs::StdRng::seed_from_u64(spec.seed ^ 0x5245_5350_4f4e_5345);
    let noise = LogNormal::new(-0.08, 0.4).ok();
    let mut out = Simulated {
        true_uplift: vec![0.0; spec.campaigns.len()],
        true_incremental_revenue: vec![0.0; spec.campaigns.len()],
        ..Default::default()
    };
    let mut recipients = vec![0u64; spec.campaigns.len()];
    let day = 86_400.0;
    for (n, p) in people.iter().enumerate() {
        let campaign = p
            .campaign
            .and_then(|c| spec.campaigns.get(c).map(|t| (c, t)));
        let window = campaign.map_or(spec.window_days, |(_, t)| t.window_days) as f64;
        // The same base chance for everyone, whatever their window: membership alone must not
        // change what a customer would have bought without the email.
        let base = base_rate(p.recency_days, p.frequency);
        let mut added = 0.0;
        if let Some((c, truth)) = campaign {
            if !p.holdout {
                recipients[c] += 1;
                if p.sent.is_some() {
                    added = (truth.uplift * responsiveness(p.recency_days)).min(0.9 - base);
                    out.true_uplift[c] += added;
                    out.true_incremental_revenue[c] += added * p.avg_order_value.max(1.0);
                }
            }
        }
        let buys = rng.gen::<f64>() < base + added;
        // Engagement of those who were sent the email.
        if let Some((send_id, sent_at)) = p.sent {
            let opens = rng.gen::<f64>() < if buys { 0.6 } else { 0.3 };
            if opens {
                let at = sent_at + (rng.gen_range(1.0..72.0) * 3600.0) as i64;
                out.opens.push((send_id, at));
                if rng.gen::<f64>() < if buys { 0.5 } else { 0.12 } {
                    out.clicks.push((send_id, at + rng.gen_range(5..600)));
                }
            }
        }
        if buys {
            let from = p.sent.map_or(spec.start, |(_, at)| at.max(spec.start));
            let at = from + 60 + (rng.gen::<f64>() * (window - 1.0) * day) as i64;
            let scale = noise.map_or(1.0, |d| d.sample(&mut rng));
            let amount = (p.avg_order_value.max(1.0) * scale * 100.0).round() / 100.0;
            out.orders.push(SimOrder {
                order_id: format!("S{}-{n}", spec.seed),
                customer_id: p.customer_id.clone(),
                email: p.email.clone(),
                at,
                amount: amount.max(1.0),
            });
        }
    }
    for (c, n) in recipients.iter().enumerate() {
        if *n > 0 {
            out.true_uplift[c] /= *n as f64;
        }
    }
    out
}

/// A follow-up step to simulate: who was sent it, when, and its true effect.
#[derive(Debug, Clone)]
pub struct StepSpec {
    pub seed: u64,
    /// When the step was due (the simulated clock), Unix seconds.
    pub at: i64,
    /// The end of the campaign's conversion window (its first send plus `window_days`).
    pub window_end: i64,
    /// Added purchase probability of the step for a recipient of average responsiveness.
    pub uplift: f64,
}

/// The simulated responses to a step.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SimulatedStep {
    pub orders: Vec<SimOrder>,
    pub opens: Vec<(i64, i64)>,
    pub clicks: Vec<(i64, i64)>,
    /// The expected conversions the step added (the sum of its recipients' added probabilities).
    pub true_added_conversions: f64,
    /// The expected revenue the step added.
    pub true_incremental_revenue: f64,
}

/// Simulates a follow-up step after [`simulate`]: each step recipient (a person with the step's
/// send id) who did not buy in the first simulation buys with the step's added probability,
/// scaled by responsiveness as the first email's is, between the step and the window's end; the
/// holdout gets no step, so it stays at the base rate. Opens and clicks as for the first email.
/// `bought` holds the customers who bought in the first simulation. Deterministic for a seed.
pub fn simulate_step(
    spec: &StepSpec,
    recipients: &[(&Person, i64)],
    bought: &std::collections::HashSet<&str>,
) -> SimulatedStep {
    let mut rng = rand::rngs::StdRng::seed_from_u64(spec.seed ^ 0x5354_4550_5245_5350);
    let noise = LogNormal::new(-0.08, 0.4).ok();
    let mut out = SimulatedStep::default();
    let span = (spec.window_end - spec.at - 120).max(1) as f64;
    for (n, &(p, send_id)) in recipients.iter().enumerate() {
        let mut buys = false;
        if !bought.contains(p.customer_id.as_str()) {
            let base = base_rate(p.recency_days, p.frequency);
            let added = (spec.uplift * responsiveness(p.recency_days)).min(0.9 - base);
            out.true_added_conversions += added;
            out.true_incremental_revenue += added * p.avg_order_value.max(1.0);
            buys = rng.gen::<f64>() < added;
        }
        if rng.gen::<f64>() < if buys { 0.6 } else { 0.3 } {
            let at = spec.at + (rng.gen_range(1.0..72.0) * 3600.0) as i64;
            out.opens.push((send_id, at));
            if rng.gen::<f64>() < if buys { 0.5 } else { 0.12 } {
                out.clicks.push((send_id, at + rng.gen_range(5..600)));
            }
        }
        if buys {
            let at = spec.at + 60 + (rng.gen::<f64>() * span) as i64;
            let scale = noise.map_or(1.0, |d| d.sample(&mut rng));
            let amount = (p.avg_order_value.max(1.0) * scale * 100.0).round() / 100.0;
            out.orders.push(SimOrder {
                order_id: format!("T{}-{n}", spec.seed),
                customer_id: p.customer_id.clone(),
                email: p.email.clone(),
                at,
                amount: amount.max(1.0),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn people(n: usize) -> Vec<Person> {
        (0..n)
            .map(|i| Person {
                customer_id: format!("C{i}"),
                email: format!("c{i}@x.io"),
                recency_days: ((i * 37) % 700) as f64,
                frequency: (i % 5) as u32 + 1,
                avg_order_value: 40.0,
                campaign: Some(0),
                // Independent of recency and frequency, as a random holdout is.
                holdout: (i / 7) % 5 == 0,
                sent: ((i / 7) % 5 != 0 && i % 11 != 0).then_some((i as i64, 1_000)),
            })
            .collect()
    }

    #[test]
    fn rates_follow_the_truth() {
        let ps = people(60_000);
        let spec = ResponseSpec {
            seed: 3,
            start: 1_000,
            window_days: 30,
            campaigns: vec![CampaignTruth {
                window_days: 30,
                uplift: 0.05,
            }],
        };
        let s = simulate(&spec, &ps);
        let bought: std::collections::HashSet<&str> =
            s.orders.iter().map(|o| o.customer_id.as_str()).collect();
        let rate = |f: &dyn Fn(&Person) -> bool| {
            let g: Vec<&Person> = ps.iter().filter(|p| f(p)).collect();
            g.iter()
                .filter(|p| bought.contains(p.customer_id.as_str()))
                .count() as f64
                / g.len() as f64
        };
        let treated = rate(&|p: &Person| !p.holdout);
        let control = rate(&|p: &Person| p.holdout);
        // 48k treated, 12k control: the difference's sd is about 0.003.
        assert!(
            (treated - control - s.true_uplift[0]).abs() < 0.015,
            "{treated} - {control} vs {}",
            s.true_uplift[0]
        );
        // Never-sent recipients add nothing: the ITT truth is below the per-sent effect.
        assert!(s.true_uplift[0] < 0.05 * 1.6);
        assert!(s.orders.iter().all(|o| o.at >= 1_000 + 60));
        assert_eq!(s.orders, simulate(&spec, &ps).orders, "seeded");
        assert!(!s.opens.is_empty() && s.clicks.len() < s.opens.len());
    }

    #[test]
    fn a_step_adds_only_to_those_who_had_not_bought() {
        let ps = people(40_000);
        let bought: std::collections::HashSet<&str> = ps
            .iter()
            .filter(|p| p.frequency == 1)
            .map(|p| p.customer_id.as_str())
            .collect();
        let recipients: Vec<(&Person, i64)> =
            ps.iter().enumerate().map(|(i, p)| (p, i as i64)).collect();
        let spec = StepSpec {
            seed: 5,
            at: 10_000,
            window_end: 10_000 + 20 * 86_400,
            uplift: 0.04,
        };
        let s = simulate_step(&spec, &recipients, &bought);
        assert!(s
            .orders
            .iter()
            .all(|o| !bought.contains(o.customer_id.as_str())
                && o.at > spec.at
                && o.at < spec.window_end));
        // 32k eligible at about 0.04 each: about 1,300 expected, sd about 36.
        let expected = s.true_added_conversions;
        assert!(expected > 500.0, "{expected}");
        assert!(
            (s.orders.len() as f64 - expected).abs() < 150.0,
            "{} orders vs {expected}",
            s.orders.len()
        );
        assert!(!s.opens.is_empty() && s.clicks.len() < s.opens.len());
    }
}
