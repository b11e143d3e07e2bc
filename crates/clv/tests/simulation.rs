//! Simulation checks: the fits recover the parameters that generated a seeded cohort
//! (Pareto/NBD, MBG/NBD), and the parameter intervals from the observed information cover the
//! truth at their nominal rate over 200 simulated cohorts.

use retain_clv::model::{self, normal_quantile_two_sided, Model, ModelFit, ModelParams};
use retain_clv::simulate::{cohort, Cohort};
use retain_clv::{MbgNbdParams, ParetoNbdParams, Summary};

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs()
}

#[test]
fn pareto_nbd_recovers_simulated_parameters() {
    let truth = ModelParams::ParetoNbd(ParetoNbdParams {
        r: 0.55,
        alpha: 10.0,
        s: 0.8,
        beta: 12.0,
    });
    let shape = Cohort {
        customers: 20_000,
        t_min: 30.0,
        t_max: 78.0,
        tick: Some(1.0 / 7.0),
    };
    let data = cohort(&truth, &shape, 42);
    let fit = model::fit(&data, Model::ParetoNbd).expect("fit");
    assert!(fit.converged, "{fit:?}");
    let got = fit.params.values();
    let se = fit.std_errors.expect("information").values();
    for (k, want) in truth.values().into_iter().enumerate() {
        // within 3 standard errors, and the standard error itself is informative
        assert!(
            (got[k] - want).abs() < 3.0 * se[k] && se[k] < 0.3 * want,
            "parameter {k}: {} ± {} vs truth {want}",
            got[k],
            se[k]
        );
    }
    assert!(
        rel(got[0], 0.55) < 0.1 && rel(got[1], 10.0) < 0.1,
        "{got:?}"
    );
    assert!(truth.log_likelihood(&data).expect("valid") <= fit.log_likelihood);
}

#[test]
fn mbgnbd_recovers_simulated_parameters() {
    let truth = ModelParams::MbgNbd(MbgNbdParams {
        r: 0.5,
        alpha: 6.0,
        a: 0.9,
        b: 1.6,
    });
    let shape = Cohort {
        customers: 20_000,
        t_min: 30.0,
        t_max: 78.0,
        tick: Some(1.0 / 7.0),
    };
    let data = cohort(&truth, &shape, 43);
    let fit = model::fit(&data, Model::MbgNbd).expect("fit");
    assert!(fit.converged, "{fit:?}");
    let got = fit.params.values();
    let se = fit.std_errors.expect("information").values();
    for (k, want) in truth.values().into_iter().enumerate() {
        assert!(
            (got[k] - want).abs() < 3.0 * se[k] && rel(got[k], want) < 0.2,
            "parameter {k}: {} ± {} vs truth {want}",
            got[k],
            se[k]
        );
    }
    // One-time buyers who stayed silent a long time are mostly gone under MBG/NBD.
    let silent = Summary {
        frequency: 0.0,
        recency: 0.0,
        t: 70.0,
        monetary: 0.0,
    };
    assert!(fit.params.p_alive(&silent) < 0.5);
}

/// The cohort's total expected purchases in the next `horizon` at `params`.
fn total(params: &ModelParams, data: &[Summary], horizon: f64) -> f64 {
    data.iter()
        .map(|s| {
            params
                .conditional_expected_purchases(horizon, s)
                .expect("finite")
        })
        .sum()
}

/// A delta-method interval for the cohort total, on the log scale.
fn total_interval(fit: &ModelFit, data: &[Summary], horizon: f64, z: f64) -> (f64, f64) {
    let cov = fit.log_covariance.expect("information");
    let base = total(&fit.params, data, horizon);
    let logs = fit.params.values().map(f64::ln);
    let h = 1e-6;
    let g: Vec<f64> = (0..4)
        .map(|k| {
            let mut v = logs;
            v[k] += h;
            let p = ModelParams::from_values(fit.model(), v.map(f64::exp));
            (total(&p, data, horizon).ln() - base.ln()) / h
        })
        .collect();
    let var: f64 = (0..4)
        .map(|i| (0..4).map(|j| g[i] * cov[i][j] * g[j]).sum::<f64>())
        .sum();
    let sd = var.sqrt();
    (base * (-z * sd).exp(), base * (z * sd).exp())
}

#[test]
fn intervals_cover_the_truth_over_200_cohorts() {
    // 95 % intervals; with 200 cohorts a true 95 % coverage falls below 93 % with probability
    // about 0.1, so the seed is fixed (a run is reproducible) and the bound is the issue's.
    let truth = ModelParams::BgNbd(retain_clv::BgNbdParams {
        r: 0.5,
        alpha: 5.0,
        a: 0.8,
        b: 2.5,
    });
    let shape = Cohort {
        customers: 600,
        t_min: 20.0,
        t_max: 40.0,
        tick: None,
    };
    let z = normal_quantile_two_sided(0.95).expect("level");
    let (mut covered_r, mut covered_alpha, mut covered_total, mut runs) = (0, 0, 0, 0);
    let mut width = 0.0;
    for seed in 0..200u64 {
        let data = cohort(&truth, &shape, 1_000 + seed);
        let fit = model::fit(&data, Model::BgNbd).expect("fit");
        runs += 1;
        let Some(ci) = fit.parameter_intervals(0.95) else {
            continue; // no information: counts as not covered
        };
        let v = truth.values();
        covered_r += usize::from(ci[0].0 <= v[0] && v[0] <= ci[0].1);
        covered_alpha += usize::from(ci[1].0 <= v[1] && v[1] <= ci[1].1);
        let (lo, hi) = total_interval(&fit, &data, 26.0, z);
        let want = total(&truth, &data, 26.0);
        covered_total += usize::from(lo <= want && want <= hi);
        width += (hi - lo) / want;
    }
    assert_eq!(runs, 200);
    let rate = |c: usize| c as f64 / runs as f64;
    assert!(rate(covered_r) >= 0.93, "r: {}", rate(covered_r));
    assert!(
        rate(covered_alpha) >= 0.93,
        "alpha: {}",
        rate(covered_alpha)
    );
    assert!(
        rate(covered_total) >= 0.93,
        "cohort total: {}",
        rate(covered_total)
    );
    // and not by being wide: the cohort-total interval is a few per cent of the total
    // (600 customers).
    let mean_width = width / runs as f64;
    assert!(mean_width < 0.3, "mean relative width {mean_width}");
}
