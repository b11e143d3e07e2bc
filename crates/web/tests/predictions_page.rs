//! The dashboard's predictions page over HTTP on the CDNOW sample: before any run it says so;
//! after a BG/NBD run it shows the model with its parameters ± standard errors and the customers
//! per churn-risk band; after an `auto` run, also the chosen model's calibration chart (predicted
//! vs actual by decile on the holdout) and every model's evidence.

mod common;

use chrono::NaiveDate;
use common::*;
use retain_clv::{
    predict, predict_auto, summarize, ChurnRisk, Period, PredictOptions, PredictionRun,
};
use retain_core::config::Config;
use retain_store::{NewPredictionRun, Store, StoredPrediction};
use retain_web::auth::{LOGIN_COOKIE, SESSION_COOKIE};

const TOKEN: &str = "predictions-test-token-0123";

fn set_cookie<B>(r: &axum::http::Response<B>, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Logs in through the login form; returns the session cookie.
async fn login(app: &App) -> String {
    let (r, _) = request(&app.router, get("/login")).await;
    let login_cookie = set_cookie(&r, LOGIN_COOKIE).expect("login cookie");
    let (r, _) = request(
        &app.router,
        post_form(
            "/login",
            &format!("csrf={login_cookie}&password={TOKEN}"),
            Some(&format!("{LOGIN_COOKIE}={login_cookie}")),
        ),
    )
    .await;
    assert_eq!(r.status(), 303);
    format!(
        "{SESSION_COOKIE}={}",
        set_cookie(&r, SESSION_COOKIE).expect("session")
    )
}

async fn page(app: &App, cookie: &str) -> String {
    let req = axum::http::Request::get("/predictions")
        .header("cookie", cookie)
        .body(axum::body::Body::empty())
        .expect("request");
    let (r, body) = request(&app.router, req).await;
    assert_eq!(r.status(), 200, "{body}");
    body
}

/// Stores a run as `retain predict` does.
async fn save(store: &Store, run: &PredictionRun, as_of: NaiveDate) {
    let record = NewPredictionRun {
        as_of: as_of.to_string(),
        period: run.options.period.as_str().into(),
        horizon_months: i64::from(run.options.horizon_months),
        discount: run.options.discount,
        customers: run.customers as i64,
        bgnbd_r: run.bgnbd.params.r,
        bgnbd_alpha: run.bgnbd.params.alpha,
        bgnbd_a: run.bgnbd.params.a,
        bgnbd_b: run.bgnbd.params.b,
        bgnbd_log_likelihood: run.bgnbd.log_likelihood,
        bgnbd_converged: run.bgnbd.converged,
        gamma_gamma: run
            .gamma_gamma
            .as_ref()
            .map(|g| (g.params.p, g.params.q, g.params.v)),
        gamma_gamma_reason: run.gamma_gamma_reason.clone(),
        p_alive_mean: run.p_alive_mean,
        expected_purchases_90d_mean: run.expected_purchases_90d_mean,
        clv_mean: run.clv_mean,
        model: run.model.as_str().into(),
        params: serde_json::to_value(&run.fit).expect("fit"),
        selection: run
            .selection
            .as_ref()
            .map(|s| serde_json::to_value(s).expect("selection")),
        interval_level: run.options.interval_level,
    };
    let rows: Vec<StoredPrediction> = run
        .predictions
        .iter()
        .map(|p| StoredPrediction {
            customer_id: p.customer_id.clone(),
            frequency: p.summary.frequency,
            recency: p.summary.recency,
            t: p.summary.t,
            monetary: p.summary.monetary,
            p_alive: p.p_alive,
            expected_purchases_90d: p.expected_purchases_90d,
            clv: p.clv,
            expected_purchases_90d_low: Some(p.expected_purchases_90d_low),
            expected_purchases_90d_high: Some(p.expected_purchases_90d_high),
            clv_low: p.clv_low,
            clv_high: p.clv_high,
            churn_risk: Some(p.churn_risk.as_str().into()),
            next_order_date: p.next_order_date(as_of).map(|d| d.to_string()),
        })
        .collect();
    store.save_predictions(&record, &rows).await.expect("save");
}

/// The text of the table with `id`, tags removed and whitespace collapsed.
fn table_text(html: &str, id: &str) -> String {
    let start = html
        .find(&format!("<table id=\"{id}\""))
        .unwrap_or_else(|| panic!("no table {id}"));
    let end = start + html[start..].find("</table>").expect("table end");
    let mut out = String::new();
    let mut in_tag = false;
    for c in html[start..end].chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test]
async fn the_predictions_page_shows_model_bands_and_the_calibration_of_auto() {
    let (store, dir) = store().await;
    let app = app_with(store.clone(), dir, Config::default(), Some(TOKEN)).await;
    let cookie = login(&app).await;
    assert!(page(&app, &cookie)
        .await
        .contains("id=\"predictions-empty\""));

    let csv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/cdnow/orders.csv");
    store
        .import_orders_file(
            &csv,
            &retain_core::import::ImportOptions::default(),
            |_| {},
            |_| Ok(()),
        )
        .await
        .expect("import");
    let as_of = NaiveDate::from_ymd_opt(1997, 9, 30).expect("date");
    let histories = store
        .customer_histories(as_of.succ_opt())
        .await
        .expect("histories");
    let options = PredictOptions::default();

    // BG/NBD: the model, its parameters ± standard errors, and the churn bands.
    let run = predict(&summarize(&histories, as_of, Period::Week), &options).expect("fit");
    save(&store, &run, as_of).await;
    let html = page(&app, &cookie).await;
    assert!(html.contains("Predicted by <b>BG/NBD</b>"), "{html}");
    let params = table_text(&html, "parameters");
    let se = run.fit.std_errors.expect("standard errors").values();
    for (name, (v, e)) in ["r", "alpha", "a", "b"]
        .iter()
        .zip(run.fit.params.values().iter().zip(se))
    {
        let row = format!("{name} {v:.4} {e:.4}");
        assert!(params.contains(&row), "{row} not in {params}");
    }
    let bands = table_text(&html, "churn-bands");
    let n = |r: ChurnRisk| run.predictions.iter().filter(|p| p.churn_risk == r).count();
    assert!(n(ChurnRisk::Low) > 0 && n(ChurnRisk::High) > 0);
    for (name, risk) in [
        ("low", ChurnRisk::Low),
        ("medium", ChurnRisk::Medium),
        ("high", ChurnRisk::High),
    ] {
        let row = format!("{name} {}", retain_web::views::count(n(risk) as u64));
        assert!(bands.contains(&row), "{row} not in {bands}");
    }
    assert!(html.contains("aria-label=\"Customers by churn risk\""));
    // The orders cover the 90 days after the prediction date: predicted against actual
    // purchases per predicted decile, customers matched by key.
    let label = "Mean purchases in the 90 days after the prediction date, by predicted decile";
    let at = html.find(label).expect("predicted vs actual chart");
    let chart = &html[at..at + html[at..].find("</svg>").expect("svg")];
    let bar = |d: &str, series: &str| -> &str {
        let t = format!("<title>{d} {series}: ");
        let from = chart.find(&t).unwrap_or_else(|| panic!("no {t}")) + t.len();
        &chart[from..from + chart[from..].find('<').expect("title end")]
    };
    let num = |v: &str| -> f64 { v.parse().unwrap_or_else(|_| panic!("{v} is not a number")) };
    let mut predicted: Vec<f64> = run
        .predictions
        .iter()
        .map(|p| p.expected_purchases_90d)
        .collect();
    predicted.sort_by(f64::total_cmp);
    let top = &predicted[9 * predicted.len() / 10..];
    let top_mean = top.iter().sum::<f64>() / top.len() as f64;
    assert_eq!(bar("D10", "predicted"), retain_web::svg::short(top_mean));
    assert!(
        num(bar("D10", "actual")) > num(bar("D1", "actual")),
        "the likeliest buyers bought more: {chart}"
    );
    // Not chosen by `auto`: no calibration on a holdout.
    assert!(!html.contains("calibration-chart") && !html.contains("id=\"evidence\""));

    // `auto`: the chosen model's calibration chart and the evidence of all three.
    let auto = predict_auto(&histories, as_of, None, &options).expect("auto");
    save(&store, &auto, as_of).await;
    let html = page(&app, &cookie).await;
    let sel = auto.selection.as_ref().expect("selection");
    assert!(html.contains(&format!("Predicted by <b>{}</b>", sel.best.label())));
    assert!(html.contains("id=\"calibration-chart\""), "{html}");
    let chosen = sel
        .candidates
        .iter()
        .find(|c| c.model == sel.best)
        .expect("chosen");
    assert_eq!(chosen.deciles.len(), 10);
    // Every decile's predicted and actual bar, as the chart titles them.
    let chart_start = html.find("id=\"calibration-chart\"").expect("chart");
    let chart = &html[chart_start..chart_start + html[chart_start..].find("</svg>").expect("svg")];
    for d in &chosen.deciles {
        for (series, v) in [("predicted", d.predicted_mean), ("actual", d.actual_mean)] {
            let title = format!(
                "<title>{} {series}: {}</title>",
                d.decile,
                retain_web::svg::short(v.max(0.0))
            );
            assert!(chart.contains(&title), "{title} not in the chart");
        }
    }
    let evidence = table_text(&html, "evidence");
    for c in &sel.candidates {
        let row = format!(
            "{} {:.2} {:.4} {:.1} {:.0}",
            c.model.label(),
            c.log_likelihood.expect("fitted"),
            c.holdout_mae.expect("fitted"),
            c.predicted_total.expect("fitted"),
            sel.actual_total
        );
        assert!(evidence.contains(&row), "{row} not in {evidence}");
    }
    assert_eq!(evidence.matches("chosen").count(), 1, "{evidence}");
}
