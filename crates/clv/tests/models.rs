//! MBG/NBD and Pareto/NBD on the CDNOW sample, from the raw transactions as of 1997-09-30 in
//! weeks: parity with the published Pareto/NBD fit and with python lifetimes 0.11.3 (reference
//! values made by tests/data/lifetimes_reference.py, stored in lifetimes_reference.json and
//! copied here), plus model selection on the CDNOW calibration/holdout split.

use std::path::PathBuf;

use chrono::{NaiveDate, NaiveDateTime};
use retain_clv::model::{self, Model, ModelParams};
use retain_clv::{summarize, Period, Summary};
use retain_core::features::{histories, CustomerHistory};
use retain_core::model::Order;

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/cdnow")
}

fn raw_orders() -> Vec<Order> {
    let text = std::fs::read_to_string(data_dir().join("CDNOW_sample.txt")).expect("raw file");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let customer: u32 = f[1].parse().expect("customer id");
            let date = NaiveDate::parse_from_str(f[2], "%Y%m%d").expect("date");
            Order {
                order_id: i.to_string(),
                customer_id: customer.to_string(),
                ordered_at: NaiveDateTime::new(date, chrono::NaiveTime::MIN),
                amount: f[4].parse().expect("dollars"),
                items: f[3].parse().expect("CDs"),
                is_return: false,
                currency: None,
                email: None,
                product: None,
            }
        })
        .collect()
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs()
}

fn cdnow_histories() -> Vec<CustomerHistory> {
    histories(&raw_orders(), None)
}

fn cdnow_summaries() -> Vec<Summary> {
    summarize(&cdnow_histories(), date("1997-09-30"), Period::Week)
        .into_iter()
        .map(|p| p.1)
        .collect()
}

#[test]
fn pareto_nbd_matches_the_published_fit_and_lifetimes() {
    let data = cdnow_summaries();
    let fit = model::fit(&data, Model::ParetoNbd).expect("fit");
    assert!(fit.converged, "{fit:?}");
    let [r, alpha, s, beta] = fit.params.values();
    // Published (Fader, Hardie & Lee 2005): r=0.553, α=10.58, s=0.606, β=11.67.
    for (got, want) in [(r, 0.553), (alpha, 10.58), (s, 0.606), (beta, 11.67)] {
        assert!(rel(got, want) < 1e-2, "{got} vs published {want}");
    }
    // lifetimes' ParetoNBDFitter on the same transactions.
    for (got, want) in [
        (r, 0.553_272_395_723_890_3),
        (alpha, 10.577_710_934_853_329),
        (s, 0.606_250_408_714_997_1),
        (beta, 11.669_544_260_797_56),
    ] {
        assert!(rel(got, want) < 2e-3, "{got} vs lifetimes {want}");
    }
    // lifetimes' point cannot beat our maximum.
    let at_lifetimes = ModelParams::ParetoNbd(retain_clv::ParetoNbdParams {
        r: 0.553_272_395_723_890_3,
        alpha: 10.577_710_934_853_329,
        s: 0.606_250_408_714_997_1,
        beta: 11.669_544_260_797_56,
    })
    .log_likelihood(&data)
    .expect("valid");
    assert!(at_lifetimes <= fit.log_likelihood + 1e-6);
    // Standard errors exist; r and α are well determined on 2,357 customers, the death
    // process (s, β) much less so.
    let se = fit.std_errors.expect("information").values();
    for (v, e) in fit.params.values().iter().zip(se) {
        assert!(e > 0.0 && e < *v, "{v} ± {e}");
    }
    assert!(se[0] < 0.25 * r && se[1] < 0.25 * alpha, "{se:?}");
}

#[test]
fn mbgnbd_matches_lifetimes() {
    let data = cdnow_summaries();
    let fit = model::fit(&data, Model::MbgNbd).expect("fit");
    assert!(fit.converged, "{fit:?}");
    let [r, alpha, a, b] = fit.params.values();
    for (got, want) in [
        (r, 0.524_842_903_149_633_9),
        (alpha, 6.183_081_764_399_498),
        (a, 0.891_359_517_271_119_8),
        (b, 1.614_002_931_197_966_7),
    ] {
        assert!(rel(got, want) < 2e-3, "{got} vs lifetimes {want}");
    }
    // Summed over the customers for the next 39 weeks, lifetimes says 1576.7282658885847.
    let total: f64 = data
        .iter()
        .map(|s| {
            fit.params
                .conditional_expected_purchases(39.0, s)
                .expect("e")
        })
        .sum();
    assert!(rel(total, 1_576.728_265_888_584_7) < 2e-3, "{total}");
    // One-time buyers are not certainly alive under MBG/NBD.
    let one_time = data
        .iter()
        .find(|s| s.frequency == 0.0)
        .expect("one-time buyer");
    assert!(fit.params.p_alive(one_time) < 0.6);
}

#[test]
fn auto_selects_by_holdout_error_and_shows_the_evidence() {
    let hist = cdnow_histories();
    let sel = retain_clv::select_model(&hist, date("1997-09-30"), date("1998-06-30"), Period::Week)
        .expect("selection");
    assert_eq!(sel.customers, 2357);
    assert!((sel.holdout_length - 39.0).abs() < 1e-12);
    assert_eq!(sel.candidates.len(), 3);
    let best_mae = sel
        .candidates
        .iter()
        .map(|c| c.holdout_mae.expect("scored"))
        .fold(f64::INFINITY, f64::min);
    let chosen = sel
        .candidates
        .iter()
        .find(|c| c.model == sel.best)
        .expect("chosen is a candidate");
    assert!(chosen.holdout_mae.expect("mae") <= best_mae * (1.0 + retain_clv::selection::MAE_TIE));
    for c in &sel.candidates {
        assert!(c.error.is_none(), "{c:?}");
        let fit = c.fit.as_ref().expect("fit");
        assert_eq!(fit.model(), c.model);
        assert!(c.log_likelihood.expect("ll") < 0.0);
        // Every model under-predicts CDNOW's holdout a little (FHL 2005: 1653 vs 1882).
        let total = c.predicted_total.expect("total");
        assert!(
            (total - sel.actual_total).abs() < 0.2 * sel.actual_total,
            "{c:?}"
        );
        assert_eq!(c.total_error, Some(total - sel.actual_total));
        assert_eq!(c.deciles.len(), 10);
        assert_eq!(c.deciles.iter().map(|d| d.customers).sum::<usize>(), 2357);
        // The calibration chart rises: the top decile buys far more than the bottom one.
        assert!(c.deciles[9].actual_mean > 5.0 * c.deciles[0].actual_mean.max(0.01));
    }
    // The whole auto run: chosen model predicts, evidence attached.
    let run = retain_clv::predict_auto(
        &hist,
        date("1998-06-30"),
        None,
        &retain_clv::PredictOptions::default(),
    )
    .expect("auto");
    let selection = run.selection.as_ref().expect("evidence");
    assert_eq!(run.model, selection.best);
    assert_eq!(run.fit.model(), selection.best);
    assert!(selection.calibration_end < date("1998-06-30"));
    assert_eq!(run.customers, 2357);
}
