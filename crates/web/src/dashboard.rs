//! The dashboard's pages and forms: login/logout, overview, segments, predictions, plans (review
//! and approve) and campaigns (results, pause/resume). Server-rendered HTML with inline SVG,
//! readable without JavaScript; every page needs a session and every form a CSRF token. Logins
//! are throttled per client and overall ([`crate::throttle`]); a viewer session sees every page
//! but no state-changing form, and those forms' handlers answer it 403.

// Handlers answer early with a ready response; boxing it would only add noise.
#![allow(clippy::result_large_err)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use retain_core::metrics::Period;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::auth::{
    self, constant_time_eq, set_cookie, Role, Session, LOGIN_COOKIE, SESSION_COOKIE, SESSION_TTL,
};
use crate::results;
use crate::server::AppState;
use crate::shop::{retention_trend, rf_grid, FREQUENCY_BUCKETS, RECENCY_BUCKETS};
use crate::svg::{self, Series};
use crate::views::{self, card, count, datetime, money, pct, ReportView};
use retain_store::{CustomerProfile, SendCounts, StoreError};

/// A page's answer when something failed.
fn error_page(status: StatusCode, message: &str) -> Response {
    (
        status,
        Html(crate::views::page(
            "Error",
            &format!(
                "<h1>{}</h1><p>{}</p>",
                status,
                crate::views::escape(message)
            ),
        )),
    )
        .into_response()
}

fn internal(e: impl std::fmt::Display) -> Response {
    eprintln!("retain serve: {e}");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong; the server log says what.",
    )
}

/// The peer's address (absent when the router runs without connection info, as in tests).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        ))
    }
}

/// Whether this request's cookies get `Secure`.
fn secure(st: &AppState, headers: &HeaderMap) -> bool {
    auth::is_https(headers, st.config.web.trusted_proxy)
}

/// The session, or a redirect to the login page.
async fn guard(st: &AppState, headers: &HeaderMap) -> Result<Session, Response> {
    match st.auth.session(headers).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(Redirect::to("/login").into_response()),
        Err(e) => Err(internal(e)),
    }
}

/// Who may send a form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum May {
    /// Any session (logging out).
    AnyRole,
    /// Only the administrator (everything that changes a plan or a campaign).
    Admin,
}

/// A state-changing form: the session, a role allowed to send it and a matching CSRF token, or
/// 403.
async fn guard_post(
    st: &AppState,
    headers: &HeaderMap,
    csrf: &str,
    may: May,
) -> Result<Session, Response> {
    let s = guard(st, headers).await?;
    if may == May::Admin && s.role != Role::Admin {
        return Err(error_page(
            StatusCode::FORBIDDEN,
            "This login is read-only: it cannot change plans or campaigns.",
        ));
    }
    if constant_time_eq(s.csrf.as_bytes(), csrf.as_bytes()) {
        Ok(s)
    } else {
        Err(error_page(StatusCode::FORBIDDEN, "This form has expired or did not come from this dashboard. Reload the page and try again."))
    }
}

/// Renders `template` with the common fields (title, nav, csrf) merged into `data`.
fn render(
    st: &AppState,
    template: &str,
    title: &str,
    nav: &str,
    session: Option<&Session>,
    data: Value,
) -> Response {
    let mut ctx = match data {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    ctx.insert("title".into(), json!(title));
    ctx.insert("nav".into(), json!(nav));
    ctx.insert("logged_in".into(), json!(session.is_some()));
    ctx.insert(
        "can_edit".into(),
        json!(session.is_some_and(|s| s.role == Role::Admin)),
    );
    ctx.insert(
        "csrf".into(),
        json!(session.map(|s| s.csrf.as_str()).unwrap_or("")),
    );
    ctx.entry("flash").or_insert(Value::Null);
    match st.views.render(template, &Value::Object(ctx)) {
        Ok(html) => ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response(),
        Err(e) => internal(e),
    }
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub password: String,
}

fn login_form(
    st: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let token = auth::random_token();
    let mut r = render(
        st,
        "login.html",
        "Log in",
        "",
        None,
        json!({ "error": error, "enabled": st.auth.enabled(), "login_csrf": token }),
    );
    *r.status_mut() = status;
    let cookie = set_cookie(
        LOGIN_COOKIE,
        &token,
        std::time::Duration::from_secs(1800),
        secure(st, headers),
    );
    if let Ok(v) = cookie.parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// GET /login.
pub async fn login_page(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if guard(&st, &headers).await.is_ok() {
        return Redirect::to("/").into_response();
    }
    login_form(&st, &headers, StatusCode::OK, None)
}

/// POST /login: the double-submit token must match its cookie. A client with too many recent
/// failures (or a server with too many overall) is refused with 429 and `Retry-After` before its
/// password is checked; a wrong password waits a moment and answers 401.
pub async fn login(
    State(st): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let cookie = auth::cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if cookie.is_empty() || !constant_time_eq(cookie.as_bytes(), f.csrf.as_bytes()) {
        return login_form(
            &st,
            &headers,
            StatusCode::FORBIDDEN,
            Some("The login form expired. Please try again."),
        );
    }
    let client = auth::client_ip(&headers, peer, st.config.web.trusted_proxy);
    if let Err(wait) = st.throttle.check(client) {
        tokio::time::sleep(st.throttle.limits().delay).await;
        let minutes = (wait + 59) / 60;
        let mut r = login_form(
            &st,
            &headers,
            StatusCode::TOO_MANY_REQUESTS,
            Some(&format!(
                "Too many failed logins. Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            )),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, axum::http::HeaderValue::from(wait));
        return r;
    }
    let role = if st.auth.enabled() {
        st.auth.check(&f.password)
    } else {
        None
    };
    let Some(role) = role else {
        st.throttle.failed(client);
        tokio::time::sleep(st.throttle.limits().delay).await;
        return login_form(
            &st,
            &headers,
            StatusCode::UNAUTHORIZED,
            Some("Wrong password or token."),
        );
    };
    st.throttle.succeeded(client);
    let id = match st.auth.login(role).await {
        Ok((id, _)) => id,
        Err(e) => return internal(e),
    };
    let secure = secure(&st, &headers);
    let mut r = Redirect::to("/").into_response();
    for c in [
        set_cookie(SESSION_COOKIE, &id, SESSION_TTL, secure),
        set_cookie(LOGIN_COOKIE, "", std::time::Duration::ZERO, secure),
    ] {
        if let Ok(v) = c.parse() {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

/// POST /logout (any role).
pub async fn logout(
    State(st): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(r) = guard_post(&st, &headers, &f.csrf, May::AnyRole).await {
        return r;
    }
    if let Err(e) = st.auth.logout(&headers).await {
        return internal(e);
    }
    let mut r = Redirect::to("/login").into_response();
    let cookie = set_cookie(
        SESSION_COOKIE,
        "",
        std::time::Duration::ZERO,
        secure(&st, &headers),
    );
    if let Ok(v) = cookie.parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// GET /: customers, revenue, retention and churn, acquisition vs retention, cohorts.
pub async fn overview(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let s = match guard(&st, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match cached(&st, "overview", overview_data(st.clone())).await {
        Ok(data) => render(&st, "overview.html", "Overview", "overview", Some(&s), data),
        Err(e) => internal(e),
    }
}

/// The data of [`overview`]: computed from the whole shop, so kept until the data changes.
async fn overview_data(st: AppState) -> Result<Value, String> {
    let stats = match st.store.shop_stats(None, Period::Month).await {
        Ok(Some(stats)) => stats,
        Ok(None) => return Ok(json!({ "has_orders": false })),
        Err(e) => return Err(e.to_string()),
    };
    let last = |n: usize, len: usize| len.saturating_sub(n);
    let periods = &stats.periods[last(24, stats.periods.len())..];
    let labels: Vec<String> = periods.iter().map(|p| p.period.clone()).collect();
    let balance_chart = svg::bars(
        "Active customers per month: new and returning",
        &labels,
        &[
            Series {
                name: "returning",
                values: periods
                    .iter()
                    .map(|p| p.returning_customers as f64)
                    .collect(),
            },
            Series {
                name: "new",
                values: periods.iter().map(|p| p.new_customers as f64).collect(),
            },
        ],
        true,
    );
    let revenue_chart = svg::lines(
        "Net revenue per month",
        &labels,
        &[Series {
            name: "revenue",
            values: periods.iter().map(|p| p.revenue).collect(),
        }],
    );
    let trend = retention_trend(&stats);
    let trend = &trend[last(24, trend.len())..];
    let retention_chart = svg::lines(
        "Share of last month's buyers who bought again (retention) and who did not (churn)",
        &trend.iter().map(|t| t.0.clone()).collect::<Vec<_>>(),
        &[
            Series {
                name: "retention",
                values: trend.iter().map(|t| t.1).collect(),
            },
            Series {
                name: "churn",
                values: trend.iter().map(|t| 1.0 - t.1).collect(),
            },
        ],
    );
    let cohorts = &stats.cohorts[last(12, stats.cohorts.len())..];
    let width = cohorts
        .iter()
        .map(|c| c.retention.len())
        .max()
        .unwrap_or(0)
        .min(12);
    let cohort_chart = svg::heat_grid(
        "Cohort retention",
        &cohorts
            .iter()
            .map(|c| format!("{} ({})", c.cohort, c.customers))
            .collect::<Vec<_>>(),
        &(0..width).map(|i| format!("+{i}")).collect::<Vec<_>>(),
        &cohorts
            .iter()
            .map(|c| {
                (0..width)
                    .map(|i| c.retention.get(i).copied().unwrap_or(f64::NAN))
                    .collect()
            })
            .collect::<Vec<_>>(),
        |v| format!("{:.0}%", v * 100.0),
    );
    let mut cards = vec![
        card("customers", count(stats.customers)),
        card("orders", count(stats.orders)),
        card("net revenue", money(stats.revenue)),
        card("average order", money(stats.average_order_value)),
        card(
            "repeat-purchase rate",
            pct(Some(stats.repeat_purchase_rate)),
        ),
    ];
    if let Some(r) = &stats.retention {
        cards.push(card(
            &format!("retention {}", r.period),
            pct(r.retention_rate),
        ));
        cards.push(card(&format!("churn {}", r.period), pct(r.churn_rate)));
    }
    let programme = match &st.program {
        Some(p) => {
            let r = retain_results::program::program_report(&st.store, p, st.clock.now(), None)
                .await
                .map_err(|e| e.to_string())?;
            programme_view(&r)
        }
        None => Value::Null,
    };
    Ok(json!({
        "has_orders": true,
        "as_of": stats.as_of.to_string(),
        "period": "month",
        "cards": cards,
        "programme": programme,
        "balance_chart": balance_chart,
        "revenue_chart": revenue_chart,
        "retention_chart": retention_chart,
        "cohort_chart": cohort_chart,
    }))
}

/// The whole programme against the global control group in the current control period: revenue
/// per customer of each side and the incremental revenue with its 95% interval.
fn programme_view(r: &retain_results::program::ProgramReport) -> Value {
    let side = |g: &retain_results::program::GroupRevenue| {
        json!({
            "customers": count(g.customers),
            "buyers": count(g.buyers),
            "revenue": money(g.revenue),
            "per_customer": g.revenue_per_customer.map_or_else(|| "–".to_string(), money),
        })
    };
    let d = r.incremental_per_customer.as_ref();
    json!({
        "period": r.period,
        "control_share": pct(Some(r.control_share)),
        "programme": side(&r.programme),
        "control": side(&r.control),
        "measured": d.is_some(),
        "incremental_per_customer": d.map(|d| money(d.absolute)),
        "ci_low": d.map(|d| money(d.ci95[0])),
        "ci_high": d.map(|d| money(d.ci95[1])),
        "p_value": d.map(|d| format!("{:.3}", d.p_value)),
        "significant": d.is_some_and(|d| d.ci95[0] > 0.0 || d.ci95[1] < 0.0),
        "incremental_revenue": r.incremental_revenue.map(money),
        "note": r.note,
    })
}

/// GET /segments: sizes and revenue share of the latest segmentation, the R×F grid, and the
/// migration between the two latest runs.
pub async fn segments(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let s = match guard(&st, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match cached(&st, "segments", segments_data(st.clone())).await {
        Ok(data) => render(&st, "segments.html", "Segments", "segments", Some(&s), data),
        Err(e) => internal(e),
    }
}

/// The data of [`segments`]: computed from the whole shop, so kept until the data changes.
async fn segments_data(st: AppState) -> Result<Value, String> {
    let feats = match st.store.customer_features(None).await {
        Ok(f) => f.map(|(_, f)| f).unwrap_or_default(),
        Err(e) => return Err(e.to_string()),
    };
    let Some((n, avg)) = rf_grid(&feats) else {
        return Ok(json!({ "has_orders": false }));
    };
    let runs = match st.store.segment_runs().await {
        Ok(r) => r,
        Err(e) => return Err(e.to_string()),
    };
    let mut segments = Vec::new();
    let mut segments_chart = String::new();
    let mut migration = Vec::new();
    let mut migration_cols = Vec::new();
    if let Some(latest) = runs.first() {
        let profiles = match st.store.segment_profiles(latest.id).await {
            Ok(p) => p,
            Err(e) => return Err(e.to_string()),
        };
        for p in &profiles {
            segments.push(json!({
                "name": p.name,
                "customers": count(p.size.max(0) as u64),
                "share": pct(Some(p.share)),
                "revenue_share": pct(Some(p.revenue_share)),
            }));
        }
        let labels: Vec<String> = profiles.iter().map(|p| p.name.clone()).collect();
        segments_chart = svg::bars(
            "Share of customers and of revenue per segment",
            &labels,
            &[
                Series {
                    name: "customers %",
                    values: profiles.iter().map(|p| p.share * 100.0).collect(),
                },
                Series {
                    name: "revenue %",
                    values: profiles.iter().map(|p| p.revenue_share * 100.0).collect(),
                },
            ],
            false,
        );
        if let Some(prev) = runs.get(1) {
            match (
                st.store.segment_assignments(prev.id).await,
                st.store.segment_assignments(latest.id).await,
            ) {
                (Ok(a), Ok(b)) => {
                    let m = crate::shop::migration(
                        a.iter()
                            .map(|x| (x.customer_id.as_str(), x.segment.as_str())),
                        b.iter()
                            .map(|x| (x.customer_id.as_str(), x.segment.as_str())),
                    );
                    migration_cols = m.to.clone();
                    migration = m
                        .from
                        .iter()
                        .zip(&m.counts)
                        .map(|(f, row)| json!({ "from": f, "counts": row.iter().map(|c| count(*c)).collect::<Vec<_>>() }))
                        .collect();
                }
                (Err(e), _) | (_, Err(e)) => return Err(e.to_string()),
            }
        }
    }
    let rows: Vec<String> = RECENCY_BUCKETS
        .iter()
        .map(|r| format!("last buy {}", r.1))
        .collect();
    let cols: Vec<String> = FREQUENCY_BUCKETS
        .iter()
        .map(|f| format!("{} orders", f.1))
        .collect();
    Ok(json!({
        "has_orders": true,
        "segments": segments,
        "segments_chart": segments_chart,
        "rf_chart": svg::heat_grid("Customers by recency and frequency", &rows, &cols, &n, |v| count(v as u64)),
        "rf_revenue_chart": svg::heat_grid("Average revenue per customer by recency and frequency", &rows, &cols, &avg, |v| format!("{v:.0}")),
        "migration": migration,
        "migration_cols": migration_cols,
    }))
}

/// GET /predictions: the model and its parameters (± standard error), churn-risk bands, P(alive)
/// and CLV distributions, predicted vs actual purchases, and — when the run chose its model with
/// `--model auto` — the chosen model's calibration chart on the holdout and every model's evidence.
pub async fn predictions(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let s = match guard(&st, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match cached(&st, "predictions", predictions_data(st.clone())).await {
        Ok(data) => render(
            &st,
            "predictions.html",
            "Predictions",
            "predictions",
            Some(&s),
            data,
        ),
        Err(e) => internal(e),
    }
}

/// The data of [`predictions`]: every stored prediction and the orders after them, so kept until
/// the data changes.
async fn predictions_data(st: AppState) -> Result<Value, String> {
    // Four numbers per customer and the bands counted in the database: never the stored rows.
    let (run, preds, risk) = match (
        st.store.latest_prediction_run().await,
        st.store.prediction_points().await,
        st.store.churn_risk_counts().await,
    ) {
        (Ok(r), Ok(p), Ok(b)) => (r, p, b),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return Err(e.to_string()),
    };
    let Some(run) = run.filter(|_| !preds.is_empty()) else {
        return Ok(json!({ "has_predictions": false }));
    };
    let alive: Vec<f64> = preds.iter().map(|p| p.p_alive).collect();
    let clv: Vec<f64> = preds
        .iter()
        .filter_map(|p| p.clv)
        .filter(|v| v.is_finite())
        .collect();
    // What the customers did in the 90 days after the prediction date, when the orders cover them.
    let actual = match (
        chrono::NaiveDate::parse_from_str(&run.as_of, "%Y-%m-%d"),
        st.store.last_order_day().await,
    ) {
        (Ok(as_of), Ok(Some(last))) => {
            // Predictions include the as-of date's orders: the window starts the day after.
            let start = retain_core::day_of(as_of) + 1;
            if last >= start + 89 {
                st.store.purchase_days_between(start, start + 90).await.ok()
            } else {
                None
            }
        }
        _ => None,
    };
    let actual_chart = match actual {
        Some(actual) => crate::shop::predicted_vs_actual(
            &actual,
            &preds
                .iter()
                .map(|p| (p.key, p.expected_purchases_90d))
                .collect::<Vec<_>>(),
        )
        .map(|(labels, pred, act)| {
            svg::bars(
                "Mean purchases in the 90 days after the prediction date, by predicted decile",
                &labels,
                &[
                    Series {
                        name: "predicted",
                        values: pred,
                    },
                    Series {
                        name: "actual",
                        values: act,
                    },
                ],
                false,
            )
        }),
        _ => None,
    };
    let model = model_view(&run);
    let bands = churn_bands(&risk);
    let bands_chart = svg::bars(
        "Customers by churn risk",
        &bands.iter().map(|b| b.0.to_string()).collect::<Vec<_>>(),
        &[Series {
            name: "customers",
            values: bands.iter().map(|b| b.1 as f64).collect(),
        }],
        false,
    );
    let unbanded = preds.len() as u64 - bands.iter().map(|b| b.1).sum::<u64>();
    let cards = vec![
        card("customers scored", count(preds.len() as u64)),
        card("as of", run.as_of.clone()),
        card("mean P(alive)", pct(Some(run.p_alive_mean))),
        card(
            "mean purchases next 90 days",
            format!("{:.2}", run.expected_purchases_90d_mean),
        ),
        card(
            "mean CLV",
            run.clv_mean.map(money).unwrap_or_else(|| "–".into()),
        ),
    ];
    Ok(json!({
        "has_predictions": true,
        "cards": cards,
        "alive_chart": svg::histogram("Distribution of P(alive)", &alive, 10),
        "clv_chart": if clv.is_empty() { String::new() } else { svg::histogram("Distribution of CLV", &clv, 12) },
        "actual_chart": actual_chart,
        "model": model,
        "bands": bands.iter().map(|(name, n)| json!({
            "name": name,
            "customers": count(*n),
            "share": pct(Some(*n as f64 / preds.len().max(1) as f64)),
        })).collect::<Vec<_>>(),
        "bands_chart": bands_chart,
        "unbanded": if unbanded > 0 { Some(count(unbanded)) } else { None },
    }))
}

/// Customers per churn-risk band, in the order low, medium, high (rows stored before the bands
/// were kept count in none).
fn churn_bands(
    counts: &std::collections::BTreeMap<Option<String>, u64>,
) -> [(&'static str, u64); 3] {
    let mut out = [("low", 0u64), ("medium", 0), ("high", 0)];
    for b in &mut out {
        b.1 = counts.get(&Some(b.0.to_string())).copied().unwrap_or(0);
    }
    out
}

fn short4(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        "–".into()
    }
}

/// The run's model for the page: its name, parameters ± standard errors, and, with `auto`, the
/// calibration chart and the evidence of every model. `null` for runs stored before the model was
/// kept; a document that no longer reads is reported on the page, not an error.
fn model_view(run: &retain_store::PredictionRunRecord) -> Value {
    use retain_clv::{ModelFit, ModelSelection};
    let Some(params) = &run.params else {
        return Value::Null;
    };
    let fit: ModelFit = match serde_json::from_value(params.clone()) {
        Ok(f) => f,
        Err(e) => {
            return json!({ "unreadable": format!("the stored fit does not read: {e}") });
        }
    };
    let model = fit.model();
    let errors = fit.std_errors.map(|e| e.values());
    let parameters: Vec<Value> = model
        .parameter_names()
        .iter()
        .zip(fit.params.values())
        .enumerate()
        .map(|(k, (name, v))| {
            json!({
                "name": name,
                "value": short4(v),
                "std_error": errors.map(|e| short4(e[k])).unwrap_or_else(|| "–".into()),
            })
        })
        .collect();
    let selection: Option<ModelSelection> = run
        .selection
        .as_ref()
        .and_then(|s| serde_json::from_value(s.clone()).ok());
    let (calibration_chart, evidence, holdout) = match &selection {
        Some(sel) => {
            let chosen = sel.candidates.iter().find(|c| c.model == sel.best);
            let chart = chosen.filter(|c| !c.deciles.is_empty()).map(|c| {
                svg::bars(
                    &format!(
                        "{}: mean purchases in the holdout ({} to {}) by decile of prediction",
                        sel.best.label(),
                        sel.calibration_end,
                        sel.holdout_end
                    ),
                    &c.deciles
                        .iter()
                        .map(|d| d.decile.to_string())
                        .collect::<Vec<_>>(),
                    &[
                        Series {
                            name: "predicted",
                            values: c.deciles.iter().map(|d| d.predicted_mean).collect(),
                        },
                        Series {
                            name: "actual",
                            values: c.deciles.iter().map(|d| d.actual_mean).collect(),
                        },
                    ],
                    false,
                )
            });
            let rows: Vec<Value> = sel
                .candidates
                .iter()
                .map(|c| {
                    json!({
                        "model": c.model.label(),
                        "chosen": c.model == sel.best,
                        "log_likelihood": c.log_likelihood.map(|v| format!("{v:.2}")).unwrap_or_else(|| "–".into()),
                        "mae": c.holdout_mae.map(short4).unwrap_or_else(|| "–".into()),
                        "predicted_total": c.predicted_total.map(|v| format!("{v:.1}")).unwrap_or_else(|| "–".into()),
                        "actual_total": format!("{:.0}", sel.actual_total),
                        "error": c.error,
                    })
                })
                .collect();
            let holdout = json!({
                "calibration_end": sel.calibration_end.to_string(),
                "holdout_end": sel.holdout_end.to_string(),
                "customers": count(sel.customers as u64),
                "rule": sel.rule,
            });
            (chart, rows, Some(holdout))
        }
        None => (None, Vec::new(), None),
    };
    json!({
        "label": model.label(),
        "parameters": parameters,
        "log_likelihood": format!("{:.2}", fit.log_likelihood),
        "has_errors": errors.is_some(),
        "interval_level": run.interval_level.map(|l| format!("{:.0}%", 100.0 * l)),
        "auto": run.selection.is_some(),
        "selection_unreadable": run.selection.is_some() && selection.is_none(),
        "calibration_chart": calibration_chart,
        "evidence": evidence,
        "holdout": holdout,
    })
}

/// GET /plans: every plan with its state and audience.
pub async fn plans(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let s = match guard(&st, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let plans = match st.store.plans().await {
        Ok(p) => p,
        Err(e) => return internal(e),
    };
    let rows: Vec<Value> = plans
        .iter()
        .map(|p| {
            let rec: i64 = p.campaigns.iter().map(|c| c.recipients).sum();
            let hold: i64 = p.campaigns.iter().map(|c| c.holdout).sum();
            json!({
                "id": p.id, "state": p.state.as_str(), "campaigns": p.campaigns.len(),
                "recipients": count(rec.max(0) as u64), "holdout": count(hold.max(0) as u64),
                "created": datetime(p.created_at),
            })
        })
        .collect();
    render(
        &st,
        "plans.html",
        "Plans",
        "plans",
        Some(&s),
        json!({ "plans": rows }),
    )
}

/// GET /plans/<id>: the plan's campaigns for review, and the approve button while it is a draft.
pub async fn plan(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let s = match guard(&st, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let p = match st.store.plan(&id).await {
        Ok(Some(p)) => p,
        Ok(None) => return error_page(StatusCode::NOT_FOUND, "No such plan."),
        Err(e) => return internal(e),
    };
    let rows: Vec<Value> = p
        .campaigns
        .iter()
        .map(|c| {
            let details: Value = serde_json::from_str(&c.details).unwrap_or_default();
            json!({
                "id": c.campaign_id,
                "goal_name": details.get("goal_name").and_then(Value::as_str).unwrap_or(&c.goal),
                "template": c.template,
                "segments": c.segments.join(", "),
                "recipients": count(c.recipients.max(0) as u64),
                "holdout": count(c.holdout.max(0) as u64),
                "window": details.get("window_days").and_then(Value::as_i64).map(|d| format!("{d} d")).unwrap_or_default(),
                "cost": if c.recipients > 0 { money(c.cost / c.recipients as f64) } else { "–".into() },
            })
        })
        .collect();
    render(
        &st,
        "plan.html",
        &format!("Plan {id}"),
        "plans",
        Some(&s),
        json!({ "plan": { "id": p.id, "state": p.state.as_str(), "created": datetime(p.created_at) }, "campaigns": rows }),
    )
}

/// POST /plans/<id>/approve.
pub async fn approve_plan(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(r) = guard_post(&st, &headers, &f.csrf, May::Admin).await {
        return r;
    }
    match st
        .store
        .set_plan_state(&id, retain_store::PlanState::Approved)
        .await
    {
        Ok(_) => Redirect::to(&format!("/plans/{id}")).into_response(),
        Err(retain_store::StoreError::NotFound(m)) => error_page(StatusCode::NOT_FOUND, &m),
        Err(retain_store::StoreError::Conflict(m)) => error_page(StatusCode::CONFLICT, &m),
        Err(e) => internal(e),
    }
}

/// GET /campaigns: every campaign with its results so far and the uplift chart.
pub async fn campaigns(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let s = match guard(&st, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (list, states, counts) = match (
        results::all_campaigns(&st.store)
            .await
            .map_err(|e| e.to_string()),
        st.store
            .send_campaign_states()
            .await
            .map_err(|e| e.to_string()),
        st.store.send_counts_all().await.map_err(|e| e.to_string()),
    ) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return internal(e),
    };
    let mut rows = Vec::new();
    let mut estimates = Vec::new();
    let marks = match report_marks(&st).await {
        Ok(m) => m,
        Err(e) => return internal(e),
    };
    for c in &list {
        let r = match cached_report(&st, &c.input.campaign_id, marks, Some(&counts)).await {
            Ok((r, _)) => r,
            Err(e) => return internal(e),
        };
        if let (Some(v), Some([lo, hi])) = (r.uplift.absolute, r.uplift.ci95) {
            if r.sent > 0 {
                estimates.push(svg::Estimate {
                    label: c.input.campaign_id.clone(),
                    value: v,
                    lo,
                    hi,
                });
            }
        }
        let (d, paused_reason) = match (
            st.store
                .campaign_deliverability_totals(&c.input.campaign_id)
                .await,
            st.store.send_campaign_reason(&c.input.campaign_id).await,
        ) {
            (Ok(d), Ok(r)) => (d, r),
            (Err(e), _) | (_, Err(e)) => return internal(e),
        };
        let rate = |r: f64| format!("{:.2}%", r * 100.0);
        rows.push(json!({
            "id": c.input.campaign_id, "goal_name": c.input.goal_name, "plan": c.input.plan_id,
            "bounces": format!("{} ({})", d.hard_bounces + d.blocks, rate(d.hard_bounce_rate() + d.block_rate())),
            "complaints": format!("{} ({})", d.complaints, rate(d.complaint_rate())),
            "paused_reason": paused_reason,
            "send_state": sending_label(
                states.get(&c.input.campaign_id).copied(),
                counts.get(&c.input.campaign_id).copied().unwrap_or_default(),
            ),
            "sent": count(r.sent), "opens": count(r.opens_unique), "clicks": count(r.clicks_unique),
            "conversion": pct(r.conversion_rate), "holdout": pct(r.holdout.conversion_rate),
            "uplift": views::pp(r.uplift.absolute),
        }));
    }
    let uplift_chart = if estimates.is_empty() {
        String::new()
    } else {
        svg::error_bars(
            "Conversion uplift per campaign with 95% intervals",
            &estimates,
            100.0,
            " pp",
        )
    };
    render(
        &st,
        "campaigns.html",
        "Campaigns",
        "campaigns",
        Some(&s),
        json!({ "campaigns": rows, "uplift_chart": uplift_chart }),
    )
}

/// GET /campaigns/<id>: funnel, uplift with error bars, opens and clicks over time, segments,
/// pause/resume.
pub async fn campaign(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let s = match guard(&st, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let marks = match report_marks(&st).await {
        Ok(m) => m,
        Err(e) => return internal(e),
    };
    let (r, counts) = match cached_report(&st, &id, marks, None).await {
        Ok(r) => r,
        Err(ReportError::Results(results::ResultsError::UnknownCampaign(_))) => {
            return error_page(StatusCode::NOT_FOUND, "No such campaign.")
        }
        Err(e) => return internal(e),
    };
    let state = match st.store.send_campaign_state(&id).await {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    let deliverability = match deliverability_view(&st, &id, counts).await {
        Ok(d) => d,
        Err(e) => return internal(e),
    };
    use retain_store::CampaignSendState as S;
    render(
        &st,
        "campaign.html",
        &format!("Campaign {id}"),
        "campaigns",
        Some(&s),
        json!({
            "c": { "id": r.campaign_id, "goal_name": r.goal_name, "plan": r.plan_id },
            "send_state": sending_label(Some(state), counts),
            // Nothing left to pause once every row is sent, failed or suppressed.
            "can_pause": state == S::Active && !counts.finished(),
            "can_resume": state == S::Paused,
            "r": ReportView::of(&r),
            "seq": sequence_view(&r),
            "d": deliverability,
        }),
    )
}

/// A campaign's A/B test and follow-up steps as the campaign page shows them (null: neither).
fn sequence_view(r: &crate::report::CampaignReport) -> serde_json::Value {
    let Some(seq) = &r.sequence else {
        return serde_json::Value::Null;
    };
    let ci = |c: Option<[f64; 2]>| match c {
        Some([a, b]) => format!("{} to {}", views::pp(Some(a)), views::pp(Some(b))),
        None => "–".into(),
    };
    let test = seq.variant_test.as_ref().map(|t| {
        json!({
            "method": t.method,
            "verdict": t.verdict,
            "variants": t.variants.iter().map(|v| json!({
                "id": v.variant, "template": v.template, "recipients": v.result.recipients,
                "opens": v.result.opens_unique, "clicks": v.result.clicks_unique,
                "conversion": views::pct(v.result.conversion_rate),
                "uplift": views::pp(v.result.uplift.absolute), "ci": ci(v.result.uplift.ci95),
            })).collect::<Vec<_>>(),
            "pairs": t.comparisons.iter().filter_map(|c| c.diff.as_ref().map(|d| json!({
                "a": c.a, "b": c.b, "diff": views::pp(Some(d.absolute)), "ci": ci(Some(d.ci95)),
                "p": format!("{:.3}", d.p_value), "significant": c.significant,
            }))).collect::<Vec<_>>(),
        })
    });
    json!({
        "test": test,
        "steps": seq.steps.iter().map(|s| json!({
            "step": s.step, "template": s.template, "sent": s.sent, "opened": s.opened,
            "clicked": s.clicked, "converted": s.converted,
        })).collect::<Vec<_>>(),
        "sequence": seq.sequence.as_ref().map(|g| json!({
            "days": seq.sequence_window_days,
            "uplift": views::pp(g.uplift.absolute),
            "ci": ci(g.uplift.ci95),
        })),
    })
}

/// One row of the deliverability table: counts and rates per delivered message.
fn deliverability_row(name: &str, c: &retain_store::DeliverabilityCounts) -> serde_json::Value {
    let rate = |r: f64| format!("{:.2}%", r * 100.0);
    json!({
        "name": name,
        "delivered": c.delivered,
        "hard": c.hard_bounces,
        "hard_rate": rate(c.hard_bounce_rate()),
        "soft": c.soft_bounces,
        "soft_rate": rate(c.soft_bounce_rate()),
        "blocks": c.blocks,
        "block_rate": rate(c.block_rate()),
        "complaints": c.complaints,
        "complaint_rate": rate(c.complaint_rate()),
    })
}

/// Campaigns' deliverability (delivered messages per recipient domain, bounces, complaints),
/// each with the version it was counted at: the campaign's sends per state and the newest
/// report's id. A finished campaign's page then answers from memory instead of reading every
/// delivered address again; a new send or a new report recounts it.
pub type DeliverabilityCache = VersionedCache<DeliverabilityVersion, Arc<Deliverability>>;

type Deliverability = retain_store::CampaignDeliverability;

/// The campaign's sends per state and the newest report's id.
type DeliverabilityVersion = (SendCounts, i64);

/// The deliverability of campaign `id` whose sends per state are `counts`, from the cache
/// while its version holds.
async fn cached_deliverability(
    st: &AppState,
    id: &str,
    counts: SendCounts,
) -> Result<Arc<Deliverability>, StoreError> {
    let version = (counts, st.store.latest_deliverability_event_id().await?);
    st.deliverability
        .get_or_compute(id, version, async {
            Ok(Arc::new(st.store.campaign_deliverability(id).await?))
        })
        .await
}

/// A campaign's deliverability for its page: totals and per recipient domain, the guardrail's
/// limits and, when the guardrail paused it, why.
async fn deliverability_view(
    st: &AppState,
    id: &str,
    counts: SendCounts,
) -> Result<serde_json::Value, retain_store::StoreError> {
    let d = cached_deliverability(st, id, counts).await?;
    let reason = st.store.send_campaign_reason(id).await?;
    let s = &st.config.sending;
    let pct = |r: f64| format!("{}%", (r * 10_000.0).round() / 100.0);
    let domains: Vec<serde_json::Value> = d
        .domains
        .iter()
        .map(|(name, c)| deliverability_row(if name.is_empty() { "(none)" } else { name }, c))
        .collect();
    Ok(json!({
        "total": deliverability_row("all recipients", &d.total),
        "domains": domains,
        "complaint_limit": pct(s.complaint_rate_limit),
        "hard_bounce_limit": pct(s.hard_bounce_rate_limit),
        "min_delivered": s.guardrail_min_delivered,
        "paused_reason": reason,
    }))
}

/// What the dashboard says about a campaign's sending: `finished` once no row is queued or
/// being sent (whatever the campaign's switch says), `not started` without a ledger, else the
/// switch (`active`, `paused`, `cancelled`).
fn sending_label(
    state: Option<retain_store::CampaignSendState>,
    counts: SendCounts,
) -> &'static str {
    use retain_store::CampaignSendState as S;
    match state {
        Some(S::Cancelled) => "cancelled",
        _ if counts.finished() => "finished",
        _ if counts.total() == 0 => "not started",
        Some(s) => s.as_str(),
        None => S::Active.as_str(),
    }
}

/// GET /campaigns/<id>/report.html: the self-contained report, as a download.
pub async fn campaign_report(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = guard(&st, &headers).await {
        return r;
    }
    let marks = match report_marks(&st).await {
        Ok(m) => m,
        Err(e) => return internal(e),
    };
    let r = match cached_report(&st, &id, marks, None).await {
        Ok((r, _)) => r,
        Err(ReportError::Results(results::ResultsError::UnknownCampaign(_))) => {
            return error_page(StatusCode::NOT_FOUND, "No such campaign.")
        }
        Err(e) => return internal(e),
    };
    match views::report_html(
        &st.views,
        std::slice::from_ref(&*r),
        &st.company_name,
        chrono::Utc::now().timestamp(),
    ) {
        Ok(html) => (
            [
                (
                    header::CONTENT_DISPOSITION,
                    format!(
                        "inline; filename=\"report-{}.html\"",
                        id.replace(
                            |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_',
                            "_"
                        )
                    ),
                ),
                (header::CACHE_CONTROL, "no-store".to_string()),
            ],
            Html(html),
        )
            .into_response(),
        Err(e) => internal(e),
    }
}

async fn set_state(
    st: &AppState,
    headers: &HeaderMap,
    id: &str,
    csrf: &str,
    pause: bool,
) -> Response {
    if let Err(r) = guard_post(st, headers, csrf, May::Admin).await {
        return r;
    }
    let state = if pause {
        retain_store::CampaignSendState::Paused
    } else {
        retain_store::CampaignSendState::Active
    };
    match st.store.set_send_campaign_state(id, state).await {
        Ok(_) => Redirect::to(&format!("/campaigns/{id}")).into_response(),
        Err(retain_store::StoreError::Conflict(m)) => error_page(StatusCode::CONFLICT, &m),
        Err(e) => internal(e),
    }
}

/// POST /campaigns/<id>/pause.
pub async fn pause_campaign(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    set_state(&st, &headers, &id, &f.csrf, true).await
}

/// POST /campaigns/<id>/resume.
pub async fn resume_campaign(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    set_state(&st, &headers, &id, &f.csrf, false).await
}

/// Values kept per key (a page, a campaign) with the version of the data they were computed
/// from: a value is served from memory while its version holds, and computed again (and kept in
/// its place) once the version differs. The dashboard's three caches are this one.
pub struct VersionedCache<V, T>(std::sync::Mutex<std::collections::HashMap<String, (V, T)>>);

impl<V, T> Default for VersionedCache<V, T> {
    fn default() -> Self {
        Self(std::sync::Mutex::new(std::collections::HashMap::new()))
    }
}

impl<V: PartialEq, T: Clone> VersionedCache<V, T> {
    /// The value of `key` at `version`: the kept one if it was computed at that version, else
    /// the result of `compute`, kept for the next visit (an error is returned, not kept).
    async fn get_or_compute<E>(
        &self,
        key: &str,
        version: V,
        compute: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        if let Ok(map) = self.0.lock() {
            if let Some((v, kept)) = map.get(key) {
                if *v == version {
                    return Ok(kept.clone());
                }
            }
        }
        let value = compute.await?;
        if let Ok(mut map) = self.0.lock() {
            map.insert(key.to_string(), (version, value.clone()));
        }
        Ok(value)
    }
}

/// View data of the pages computed from the whole shop (overview, segments, predictions), per page, with the
/// data version they were computed at: a page is recomputed only after an import, a segmentation
/// or a prediction run, so it answers from memory otherwise.
pub type PageCache = VersionedCache<(i64, i64, i64), Value>;

async fn cached(
    st: &AppState,
    page: &'static str,
    compute: impl std::future::Future<Output = Result<Value, String>>,
) -> Result<Value, String> {
    let version = st.store.data_version().await.map_err(|e| e.to_string())?;
    st.pages.get_or_compute(page, version, compute).await
}

/// Campaign reports, each with the version of the data it was computed from
/// ([`ReportVersion`]): a visit recomputes a campaign's report only after an import, a
/// segmentation or prediction run, a newly recorded event, or a change in the campaign's (or its
/// follow-up steps') sends per state — so a finished campaign of a million recipients answers
/// from memory, and one still sending is recomputed as it goes.
pub type ReportCache = VersionedCache<ReportVersion, Arc<retain_results::report::CampaignReport>>;

/// The whole shop's markers: the data version and the newest event's id.
type ReportMarks = ((i64, i64, i64), i64);

/// A campaign report's version: the shop's markers, then the sends per state of the campaign
/// and of each of its steps.
type ReportVersion = (ReportMarks, Vec<SendCounts>);

#[derive(Debug, thiserror::Error)]
enum ReportError {
    #[error(transparent)]
    Results(#[from] results::ResultsError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

async fn report_marks(st: &AppState) -> Result<ReportMarks, StoreError> {
    Ok((
        st.store.data_version().await?,
        st.store.latest_event_id().await?,
    ))
}

/// The report of campaign `id`, from the cache while its version holds, with the campaign's own
/// sends per state that version was checked against (the campaign page shows them). `counts`:
/// every ledger campaign's sends per state when the caller has them (else read for this
/// campaign and its steps).
async fn cached_report(
    st: &AppState,
    id: &str,
    marks: ReportMarks,
    counts: Option<&std::collections::BTreeMap<String, SendCounts>>,
) -> Result<(Arc<retain_results::report::CampaignReport>, SendCounts), ReportError> {
    let mut ledgers = vec![id.to_string()];
    ledgers.extend(
        st.store
            .campaign_steps(id)
            .await?
            .into_iter()
            .map(|s| s.ledger_id),
    );
    let mut sends = Vec::with_capacity(ledgers.len());
    for l in &ledgers {
        sends.push(match counts {
            Some(all) => all.get(l).copied().unwrap_or_default(),
            None => st.store.send_counts(l).await?,
        });
    }
    // The campaign's own ledger comes first.
    let own = sends[0];
    let report = st
        .reports
        .get_or_compute(id, (marks, sends), async {
            Ok::<_, ReportError>(Arc::new(
                results::campaign_report(&st.store, id, None).await?,
            ))
        })
        .await?;
    Ok((report, own))
}

/// Computes the cached pages ahead of the first visit.
pub async fn warm(st: AppState) {
    for (page, result) in [
        (
            "overview",
            cached(&st, "overview", overview_data(st.clone())).await,
        ),
        (
            "segments",
            cached(&st, "segments", segments_data(st.clone())).await,
        ),
        (
            "predictions",
            cached(&st, "predictions", predictions_data(st.clone())).await,
        ),
    ] {
        if let Err(e) = result {
            eprintln!("retain serve: preparing the {page} page: {e}");
        }
    }
    // Then every campaign's report, for the campaigns page.
    let reports = async {
        let marks = report_marks(&st).await?;
        let counts = st.store.send_counts_all().await?;
        for c in results::all_campaigns(&st.store).await? {
            let id = &c.input.campaign_id;
            let (_, own) = cached_report(&st, id, marks, Some(&counts)).await?;
            // And its deliverability, for the campaign's page.
            cached_deliverability(&st, id, own).await?;
        }
        Ok::<(), ReportError>(())
    };
    if let Err(e) = reports.await {
        eprintln!("retain serve: preparing the campaign reports: {e}");
    }
}

#[derive(Debug, Deserialize)]
pub struct CustomerQuery {
    #[serde(default)]
    pub q: String,
}

/// `%`-encodes a customer id for a path segment.
fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'@') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// GET /customers?q=ID|EMAIL: the search form; a query naming one customer redirects to their
/// page.
pub async fn customers(
    State(st): State<AppState>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<CustomerQuery>,
) -> Response {
    let s = match guard(&st, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = query.q.trim().to_string();
    let mut message = None;
    if !q.is_empty() {
        match st.store.customer_profile(&q).await {
            Ok(Some(p)) => {
                return Redirect::to(&format!("/customers/{}", path_segment(&p.customer.id)))
                    .into_response()
            }
            Ok(None) => message = Some(format!("No customer has the id or address “{q}”.")),
            Err(StoreError::Conflict(why)) => message = Some(why),
            Err(e) => return internal(e),
        }
    }
    let mut r = render(
        &st,
        "customers.html",
        "Customers",
        "customers",
        Some(&s),
        json!({ "q": q, "message": message }),
    );
    if message.is_some() {
        *r.status_mut() = StatusCode::NOT_FOUND;
    }
    r
}

/// GET /customers/<id>: everything held about one customer (`Store::customer_profile`).
pub async fn customer(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let s = match guard(&st, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let p = match st.store.customer_profile(&id).await {
        Ok(Some(p)) => p,
        Ok(None) => return error_page(StatusCode::NOT_FOUND, "No such customer."),
        Err(StoreError::Conflict(why)) => return error_page(StatusCode::BAD_REQUEST, &why),
        Err(e) => return internal(e),
    };
    render(
        &st,
        "customer.html",
        &format!("Customer {}", p.customer.id),
        "customers",
        Some(&s),
        customer_view(&p),
    )
}

fn customer_view(p: &CustomerProfile) -> Value {
    let c = &p.customer;
    let status = match p.suppression {
        Some(r) => format!("not mailable: suppressed ({})", r.as_str()),
        None if c.subscribed == Some(false) => "not mailable: opted out".into(),
        None if c.email.is_none() => "not mailable: no address".into(),
        None if !c.email_valid => "not mailable: invalid address".into(),
        None => "mailable".into(),
    };
    let name = [c.first_name.as_deref(), c.last_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let revenue: f64 = p.orders.iter().map(|o| o.amount).sum::<f64>() + 0.0;
    let purchases = p.orders.iter().filter(|o| !o.is_return).count();
    let mut cards = vec![
        card("orders", count(p.orders.len() as u64)),
        card("purchases", count(purchases as u64)),
        card("net revenue", money(revenue)),
    ];
    if let Some(x) = &p.prediction {
        cards.push(card("P(alive)", pct(Some(x.p_alive))));
        cards.push(card(
            "expected purchases, 90 days",
            format!("{:.2}", x.expected_purchases_90d),
        ));
        cards.push(card("CLV", x.clv.map(money).unwrap_or_else(|| "–".into())));
    }
    json!({
        "id": c.id,
        "key": p.key,
        "erased": p.erased,
        "email": c.email,
        "name": name,
        "consent": match c.subscribed { Some(true) => "opted in", Some(false) => "opted out", None => "unknown" },
        "status": status,
        "mailable": status == "mailable",
        "signup": c.signup_date.map(|d| d.to_string()),
        "locale": c.locale,
        "attributes": c.attributes,
        "cards": cards,
        "prediction": p.prediction.as_ref().map(|x| json!({ "run": x.run_id, "as_of": x.as_of })),
        "orders": p.orders.iter().map(|o| json!({
            "date": o.ordered_at.format("%Y-%m-%d").to_string(),
            "id": o.order_id,
            "amount": money(o.amount),
            "items": o.items,
            "is_return": o.is_return,
            "product": o.product,
        })).collect::<Vec<_>>(),
        "segments": p.segments.iter().map(|x| json!({
            "run": x.run_id, "method": x.method, "as_of": x.as_of, "segment": x.segment,
            "rfm": format!("{}{}{}", x.r, x.f, x.m),
        })).collect::<Vec<_>>(),
        "campaigns": p.campaigns.iter().map(|x| json!({
            "id": x.campaign_id, "plan": x.plan_id, "plan_state": x.plan_state.map(|s| s.as_str()),
            "goal": x.goal,
            "role": if x.holdout { "held out" } else { "recipient" },
            "send_state": x.send.as_ref().map(|s| s.state.as_str()).unwrap_or(if x.holdout { "–" } else { "not queued" }),
            "sent_at": x.send.as_ref().and_then(|s| s.sent_at).map(datetime),
        })).collect::<Vec<_>>(),
        "events": p.events.iter().map(|e| json!({
            "at": datetime(e.at), "campaign": e.campaign_id, "kind": e.kind.as_str(),
            "url": e.url, "bot": e.bot,
        })).collect::<Vec<_>>(),
    })
}
