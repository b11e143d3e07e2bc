//! Rendering: the embedded tera templates of the dashboard and the report, the plain pages of the
//! public endpoints, number formatting, and the display view of a [`CampaignReport`] (every
//! number formatted, every chart drawn) shared by the dashboard and the self-contained HTML report
//! that `retain report --format html` writes.

use serde::Serialize;

use crate::report::CampaignReport;
use crate::svg;
use crate::WebError;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("login.html", include_str!("../templates/login.html")),
    ("overview.html", include_str!("../templates/overview.html")),
    ("segments.html", include_str!("../templates/segments.html")),
    (
        "predictions.html",
        include_str!("../templates/predictions.html"),
    ),
    ("plans.html", include_str!("../templates/plans.html")),
    ("plan.html", include_str!("../templates/plan.html")),
    (
        "campaigns.html",
        include_str!("../templates/campaigns.html"),
    ),
    ("campaign.html", include_str!("../templates/campaign.html")),
    (
        "customers.html",
        include_str!("../templates/customers.html"),
    ),
    ("customer.html", include_str!("../templates/customer.html")),
    (
        "report_body.html",
        include_str!("../templates/report_body.html"),
    ),
    ("report.html", include_str!("../templates/report.html")),
];

/// The compiled templates (HTML autoescaped; charts are passed through `safe`).
pub struct Views {
    tera: tera::Tera,
}

impl std::fmt::Debug for Views {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Views").finish_non_exhaustive()
    }
}

impl Views {
    pub fn new() -> Result<Self, WebError> {
        let mut tera = tera::Tera::default();
        tera.autoescape_on([".html"]);
        tera.add_raw_templates(TEMPLATES.iter().copied())
            .map_err(|e| WebError::Template(e.to_string()))?;
        Ok(Self { tera })
    }

    /// Renders `name` with the serializable `data` as its context.
    pub fn render<T: Serialize>(&self, name: &str, data: &T) -> Result<String, WebError> {
        let ctx =
            tera::Context::from_serialize(data).map_err(|e| WebError::Template(e.to_string()))?;
        self.tera
            .render(name, &ctx)
            .map_err(|e| WebError::Template(format!("{name}: {e:?}")))
    }
}

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A minimal standalone page (the public unsubscribe and view pages); `body` is trusted HTML.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title>\
         <style>body{{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#1a202c}}\
         button{{background:#2b6cb0;color:#fff;border:0;border-radius:4px;padding:.6rem 1.2rem;font-size:1rem}}</style>\
         </head><body>{body}</body></html>",
        escape(title)
    )
}

/// `1234567.891` → `1,234,567.89`.
pub fn money(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let neg = v < 0.0;
    let cents = (v.abs() * 100.0).round() as u128;
    format!(
        "{}{}.{:02}",
        if neg { "−" } else { "" },
        group(cents / 100),
        cents % 100
    )
}

/// `1234567` → `1,234,567`.
pub fn count(v: u64) -> String {
    group(u128::from(v))
}

fn group(v: u128) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// `0.1234` → `12.3%`; `None` → `–`.
pub fn pct(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{:.1}%", v * 100.0),
        _ => "–".into(),
    }
}

/// A difference of rates in percentage points: `0.0123` → `+1.23 pp`.
pub fn pp(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{:+.2} pp", v * 100.0),
        _ => "–".into(),
    }
}

fn signed_money(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => {
            if v >= 0.0 {
                format!("+{}", money(v))
            } else {
                money(v)
            }
        }
        _ => "–".into(),
    }
}

fn p_value(v: Option<f64>) -> String {
    match v {
        Some(p) if p < 0.001 => "< 0.001".into(),
        Some(p) => format!("{p:.3}"),
        None => "–".into(),
    }
}

/// A Unix time as `YYYY-MM-DD HH:MM UTC`.
pub fn datetime(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "–".into())
}

/// A label and a value for a card.
#[derive(Debug, Clone, Serialize)]
pub struct Card {
    pub label: String,
    pub value: String,
}

pub fn card(label: &str, value: String) -> Card {
    Card {
        label: label.into(),
        value,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SegmentRow {
    pub name: String,
    pub recipients: String,
    pub sent: String,
    pub opens: String,
    pub clicks: String,
    pub unsubscribes: String,
    pub conversion: String,
    pub holdout: String,
    pub uplift: String,
    pub ci: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RetentionView {
    pub segment: String,
    pub group: String,
    pub members: String,
    pub before: String,
    pub after: String,
}

/// A [`CampaignReport`] ready for a template.
#[derive(Debug, Clone, Serialize)]
pub struct ReportView {
    pub campaign_id: String,
    pub plan_id: String,
    pub goal_name: String,
    pub window_days: i64,
    pub window_closed: bool,
    pub started: String,
    pub sample_note: Option<String>,
    pub verdict: String,
    pub cards: Vec<Card>,
    pub recipients: String,
    pub conversions: String,
    pub conversion_rate: String,
    pub revenue: String,
    pub rpr: String,
    pub holdout_size: String,
    pub holdout_conversions: String,
    pub holdout_rate: String,
    pub holdout_revenue: String,
    pub holdout_rpm: String,
    pub uplift_abs: String,
    pub uplift_ci: String,
    pub uplift_p: String,
    pub uplift_rel: String,
    pub uplift_rel_ci: String,
    pub rev_abs: String,
    pub rev_ci: String,
    pub rev_p: String,
    pub inc_conv: String,
    pub inc_rev: String,
    pub cost: String,
    pub roi: String,
    pub uplift_chart: String,
    pub funnel_chart: String,
    pub timeline_chart: String,
    pub segments: Vec<SegmentRow>,
    pub retention: Vec<RetentionView>,
}

fn ci_pp(ci: Option<[f64; 2]>) -> String {
    match ci {
        Some([a, b]) => format!("{:+.2} to {:+.2} pp", a * 100.0, b * 100.0),
        None => "–".into(),
    }
}

/// Plain words on what the uplift says.
pub fn verdict(r: &CampaignReport) -> String {
    let (Some(abs), Some([lo, hi])) = (r.uplift.absolute, r.uplift.ci95) else {
        return "No uplift can be measured yet (nothing sent, or no holdout).".into();
    };
    let base = if lo > 0.0 {
        format!(
            "The campaign raised conversion by {} (95% CI {}): about {:.0} extra buyers.",
            pp(Some(abs)),
            ci_pp(Some([lo, hi])),
            r.incremental_conversions.unwrap_or(0.0)
        )
    } else if hi < 0.0 {
        format!(
            "Recipients converted less than the holdout by {} (95% CI {}).",
            pp(Some(-abs)),
            ci_pp(Some([lo, hi]))
        )
    } else {
        format!(
            "No clear effect: the 95% interval of the uplift ({}) includes zero.",
            ci_pp(Some([lo, hi]))
        )
    };
    match &r.sample_note {
        Some(n) => format!("{base} Caution — {n}."),
        None => base,
    }
}

impl ReportView {
    pub fn of(r: &CampaignReport) -> Self {
        let mut estimates = Vec::new();
        if let (Some(v), Some([lo, hi])) = (r.uplift.absolute, r.uplift.ci95) {
            estimates.push(svg::Estimate {
                label: "whole campaign".into(),
                value: v,
                lo,
                hi,
            });
        }
        for s in r.segments.iter().filter(|_| r.segments.len() > 1) {
            if let (Some(v), Some([lo, hi])) = (s.result.uplift.absolute, s.result.uplift.ci95) {
                estimates.push(svg::Estimate {
                    label: s.segment.clone(),
                    value: v,
                    lo,
                    hi,
                });
            }
        }
        let timeline_labels: Vec<String> = r
            .timeline
            .iter()
            .map(|p| {
                chrono::DateTime::from_timestamp(p.at, 0)
                    .map(|d| {
                        if r.timeline.len() > 1 && r.timeline[1].at - r.timeline[0].at >= 86_400 {
                            d.format("%m-%d").to_string()
                        } else {
                            d.format("%d %Hh").to_string()
                        }
                    })
                    .unwrap_or_default()
            })
            .collect();
        Self {
            campaign_id: r.campaign_id.clone(),
            plan_id: r.plan_id.clone(),
            goal_name: r.goal_name.clone(),
            window_days: r.window_days,
            window_closed: r.window_closed,
            started: r
                .started_at
                .map(datetime)
                .unwrap_or_else(|| "not sent yet".into()),
            sample_note: r.sample_note.clone(),
            verdict: verdict(r),
            cards: vec![
                card("sent", count(r.sent)),
                card("delivered", count(r.delivered)),
                card("failed", count(r.failed)),
                card("unique opens (people)", count(r.opens_unique)),
                card("unique clicks", count(r.clicks_unique)),
                card("unsubscribe rate", pct(r.unsubscribe_rate)),
                card("conversion rate", pct(r.conversion_rate)),
                card("holdout conversion rate", pct(r.holdout.conversion_rate)),
                card("uplift", pp(r.uplift.absolute)),
                card("incremental revenue", signed_money(r.incremental_revenue)),
                card("ROI", pct(r.roi)),
            ],
            recipients: count(r.recipients),
            conversions: count(r.conversions),
            conversion_rate: pct(r.conversion_rate),
            revenue: money(r.revenue),
            rpr: r
                .revenue_per_recipient
                .map(money)
                .unwrap_or_else(|| "–".into()),
            holdout_size: count(r.holdout.size),
            holdout_conversions: count(r.holdout.conversions),
            holdout_rate: pct(r.holdout.conversion_rate),
            holdout_revenue: money(r.holdout.revenue),
            holdout_rpm: r
                .holdout
                .revenue_per_member
                .map(money)
                .unwrap_or_else(|| "–".into()),
            uplift_abs: pp(r.uplift.absolute),
            uplift_ci: ci_pp(r.uplift.ci95),
            uplift_p: p_value(r.uplift.p_value),
            uplift_rel: pct(r.uplift.relative),
            uplift_rel_ci: match r.uplift.relative_ci95 {
                Some([a, b]) => format!("{} to {}", pct(Some(a)), pct(Some(b))),
                None => "–".into(),
            },
            rev_abs: signed_money(r.revenue_uplift.absolute),
            rev_ci: match r.revenue_uplift.ci95 {
                Some([a, b]) => format!("{} to {}", signed_money(Some(a)), signed_money(Some(b))),
                None => "–".into(),
            },
            rev_p: p_value(r.revenue_uplift.p_value),
            inc_conv: r
                .incremental_conversions
                .map(|v| format!("{v:+.1}"))
                .unwrap_or_else(|| "–".into()),
            inc_rev: signed_money(r.incremental_revenue),
            cost: money(r.cost),
            roi: pct(r.roi),
            uplift_chart: if estimates.is_empty() {
                String::new()
            } else {
                svg::error_bars(
                    "Conversion uplift with 95% intervals, overall and per segment",
                    &estimates,
                    100.0,
                    " pp",
                )
            },
            funnel_chart: svg::funnel(
                "Funnel",
                &[
                    ("recipients".into(), r.recipients as f64),
                    ("sent".into(), r.sent as f64),
                    ("opened".into(), r.opens_unique as f64),
                    ("clicked".into(), r.clicks_unique as f64),
                    ("converted".into(), r.conversions as f64),
                ],
            ),
            timeline_chart: svg::bars(
                "Human opens and clicks over time",
                &timeline_labels,
                &[
                    svg::Series {
                        name: "opens",
                        values: r.timeline.iter().map(|p| p.opens as f64).collect(),
                    },
                    svg::Series {
                        name: "clicks",
                        values: r.timeline.iter().map(|p| p.clicks as f64).collect(),
                    },
                ],
                false,
            ),
            segments: r
                .segments
                .iter()
                .map(|s| SegmentRow {
                    name: s.segment.clone(),
                    recipients: count(s.result.recipients),
                    sent: count(s.result.sent),
                    opens: count(s.result.opens_unique),
                    clicks: count(s.result.clicks_unique),
                    unsubscribes: count(s.result.unsubscribes),
                    conversion: pct(s.result.conversion_rate),
                    holdout: pct(s.result.holdout.conversion_rate),
                    uplift: pp(s.result.uplift.absolute),
                    ci: ci_pp(s.result.uplift.ci95),
                })
                .collect(),
            retention: r
                .retention
                .iter()
                .map(|x| RetentionView {
                    segment: x.segment.clone(),
                    group: x.group.to_string(),
                    members: count(x.members),
                    before: pct(x.active_before),
                    after: pct(x.active_after),
                })
                .collect(),
        }
    }
}

#[derive(Serialize)]
struct StandaloneReport<'a> {
    title: String,
    reports: Vec<ReportView>,
    company: &'a str,
    generated: String,
}

/// The self-contained HTML report of one or more campaigns: inline CSS and SVG, no script, no
/// link to anything outside the file.
pub fn report_html(
    views: &Views,
    reports: &[CampaignReport],
    company: &str,
    now: i64,
) -> Result<String, WebError> {
    let title = match reports {
        [one] => format!("Campaign report {}", one.campaign_id),
        _ => format!(
            "Campaign report: plan {}",
            reports.first().map(|r| r.plan_id.as_str()).unwrap_or("")
        ),
    };
    views.render(
        "report.html",
        &StandaloneReport {
            title,
            reports: reports.iter().map(ReportView::of).collect(),
            company,
            generated: datetime(now),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting() {
        assert_eq!(money(1_234_567.891), "1,234,567.89");
        assert_eq!(money(-0.5), "−0.50");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(pct(Some(0.1234)), "12.3%");
        assert_eq!(pct(None), "–");
        assert_eq!(pp(Some(0.0123)), "+1.23 pp");
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn templates_compile_and_escape() {
        let v = Views::new().expect("templates");
        #[derive(Serialize)]
        struct Login {
            title: &'static str,
            logged_in: bool,
            nav: &'static str,
            csrf: &'static str,
            flash: Option<String>,
            error: Option<String>,
            enabled: bool,
            login_csrf: &'static str,
        }
        let html = v
            .render(
                "login.html",
                &Login {
                    title: "Log in",
                    logged_in: false,
                    nav: "",
                    csrf: "",
                    flash: None,
                    error: Some("<script>".into()),
                    enabled: true,
                    login_csrf: "tok",
                },
            )
            .expect("render");
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"));
        assert!(html.contains("name=\"csrf\" value=\"tok\""));
    }

    #[test]
    fn standalone_report_is_self_contained() {
        use crate::report::{compute, CampaignInput, Inputs, MemberInput, SendInput};
        let c = CampaignInput {
            campaign_id: "c-<1>".into(),
            plan_id: "p1".into(),
            goal: "winback".into(),
            goal_name: "Win back".into(),
            window_days: 14,
            cost_per_recipient: 0.1,
        };
        let members: Vec<MemberInput> = (0..40)
            .map(|i| MemberInput {
                customer_id: format!("m{i}"),
                holdout: i >= 30,
                segment: if i % 2 == 0 { "loyal" } else { "at_risk" }.into(),
            })
            .collect();
        let sends: Vec<SendInput> = (0..30)
            .map(|i| SendInput {
                id: i,
                customer_id: format!("m{i}"),
                state: "sent".into(),
                sent_at: Some(1_700_000_000),
            })
            .collect();
        let r = compute(Inputs {
            campaign: &c,
            members: &members,
            sends: &sends,
            events: &[],
            orders: &[],
            now: 1_700_000_000,
        });
        let v = Views::new().expect("views");
        let html = report_html(&v, &[r.clone(), r], "Shop & Co", 1_700_000_000).expect("html");
        assert_eq!(html.matches("<section>").count(), 2);
        assert!(html.contains("Campaign c-&lt;1&gt;: Win back"));
        assert!(html.contains("Shop &amp; Co"));
        assert!(html.contains("<svg") && html.contains("<style>"));
        assert!(html.contains("sample too small"));
        for banned in ["<script", "src=", "<link", "href=\"http"] {
            assert!(!html.contains(banned), "{banned}");
        }
    }
}
