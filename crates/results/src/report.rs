//! Campaign results as pure computation: attribution of purchases to a campaign's recipients and
//! to its holdout, engagement (human opens and clicks, unsubscribes), uplift with confidence
//! intervals, incremental revenue, cost and ROI — overall, per segment, over time, and the
//! before/after activity of each segment. No I/O: [`crate::results`] loads the inputs from the
//! store; the CLI (`retain report`) and the dashboard render the output.
//!
//! Definitions:
//! - *Recipients* are the campaign's members outside the holdout (intent to treat: a member whose
//!   send failed or was suppressed still counts, so the comparison with the random holdout stays
//!   unbiased). *Sent* counts sends the server accepted, *failed* those it refused for good.
//! - A recipient *converts* when they make a purchase (an order that is not a return) within
//!   `window_days` after their email was sent (`sent_at`; recipients never sent: after the
//!   campaign's first send). Holdout members convert with a purchase within `window_days` after
//!   the campaign's first send. Revenue is the sum of those purchases.
//! - An open or click is *human* unless flagged as a bot when recorded (known proxies, scanners)
//!   or made within [`BOT_SECONDS`] of delivery (prefetching). A human click counts as an open.
//! - Uplift: recipients' conversion rate minus the holdout's, with Newcombe's hybrid score 95 %
//!   interval and a pooled z-test ([`crate::stats`]); the revenue-per-person difference uses
//!   Welch's t. Incremental conversions and revenue scale the per-person differences by the
//!   number of recipients; cost is `cost_per_recipient × sent`; ROI = (incremental revenue −
//!   cost) / cost.

use std::collections::{BTreeMap, HashMap};

use retain_core::Order;
use retain_store::{EventKind, EventRecord};
use serde::Serialize;

use crate::stats::{two_proportions, welch, Moments};

/// Opens and clicks within this many seconds of delivery are prefetches, not people.
pub const BOT_SECONDS: i64 = 5;

const DAY: i64 = 86_400;

/// The campaign being reported on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignInput {
    pub campaign_id: String,
    pub plan_id: String,
    pub goal: String,
    pub goal_name: String,
    pub window_days: i64,
    pub cost_per_recipient: f64,
}

/// One member of the campaign's audience.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemberInput {
    pub customer_id: String,
    pub holdout: bool,
    pub segment: String,
}

/// One send of the campaign.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SendInput {
    pub id: i64,
    pub customer_id: String,
    /// queued | sending | sent | failed | suppressed
    pub state: String,
    pub sent_at: Option<i64>,
}

/// Everything a report is computed from.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub campaign: &'a CampaignInput,
    pub members: &'a [MemberInput],
    pub sends: &'a [SendInput],
    pub events: &'a [EventRecord],
    pub orders: &'a [Order],
    /// Now, Unix seconds: decides whether the attribution window is still open.
    pub now: i64,
}

/// The holdout's side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HoldoutResult {
    pub size: u64,
    pub conversions: u64,
    pub conversion_rate: Option<f64>,
    pub revenue: f64,
    pub revenue_per_member: Option<f64>,
}

/// Conversion uplift: recipients' conversion rate minus the holdout's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Uplift {
    pub absolute: Option<f64>,
    pub relative: Option<f64>,
    /// Newcombe hybrid score 95 % interval of `absolute`.
    pub ci95: Option<[f64; 2]>,
    /// Katz log 95 % interval of `relative`.
    pub relative_ci95: Option<[f64; 2]>,
    pub p_value: Option<f64>,
    pub method: &'static str,
}

/// Revenue per person: recipients minus holdout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RevenueUplift {
    pub absolute: Option<f64>,
    pub ci95: Option<[f64; 2]>,
    pub p_value: Option<f64>,
    pub method: &'static str,
}

/// The results of a group of members (the whole campaign or one segment).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupResult {
    pub recipients: u64,
    pub sent: u64,
    pub delivered: u64,
    pub failed: u64,
    pub suppressed: u64,
    pub opens_unique: u64,
    pub clicks_unique: u64,
    pub bot_opens: u64,
    pub unsubscribes: u64,
    pub open_rate: Option<f64>,
    pub click_rate: Option<f64>,
    pub unsubscribe_rate: Option<f64>,
    pub conversions: u64,
    pub conversion_rate: Option<f64>,
    pub revenue: f64,
    pub revenue_per_recipient: Option<f64>,
    pub holdout: HoldoutResult,
    pub uplift: Uplift,
    pub revenue_uplift: RevenueUplift,
    pub incremental_conversions: Option<f64>,
    pub incremental_revenue: Option<f64>,
    /// Plain words when the sample is too small to conclude anything.
    pub sample_note: Option<String>,
    /// The 95 % interval of the conversion uplift excludes zero.
    pub significant: bool,
}

/// One segment's results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentResult {
    pub segment: String,
    #[serde(flatten)]
    pub result: GroupResult,
}

/// Human opens and clicks in one time bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelinePoint {
    /// Start of the bucket, Unix seconds.
    pub at: i64,
    pub opens: u64,
    pub clicks: u64,
}

/// Share of a segment's recipients (or holdout) who purchased in the window before the campaign
/// and in the window after it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetentionRow {
    pub segment: String,
    pub group: &'static str,
    pub members: u64,
    pub active_before: Option<f64>,
    pub active_after: Option<f64>,
}

/// The whole report of one campaign. The top-level keys are those `retain report --format json`
/// promises.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignReport {
    pub campaign_id: String,
    pub plan_id: String,
    pub goal: String,
    pub goal_name: String,
    pub window_days: i64,
    /// First send, Unix seconds (None: nothing sent yet).
    pub started_at: Option<i64>,
    /// The attribution window has ended for every recipient.
    pub window_closed: bool,
    pub recipients: u64,
    pub sent: u64,
    pub delivered: u64,
    pub failed: u64,
    pub suppressed: u64,
    pub opens_unique: u64,
    pub clicks_unique: u64,
    pub bot_opens: u64,
    pub unsubscribes: u64,
    pub open_rate: Option<f64>,
    pub click_rate: Option<f64>,
    pub unsubscribe_rate: Option<f64>,
    pub conversions: u64,
    pub conversion_rate: Option<f64>,
    pub revenue: f64,
    pub revenue_per_recipient: Option<f64>,
    pub holdout: HoldoutResult,
    pub uplift: Uplift,
    pub revenue_uplift: RevenueUplift,
    pub incremental_conversions: Option<f64>,
    pub incremental_revenue: Option<f64>,
    pub cost: f64,
    pub roi: Option<f64>,
    pub sample_note: Option<String>,
    pub significant: bool,
    pub segments: Vec<SegmentResult>,
    pub timeline: Vec<TimelinePoint>,
    pub retention: Vec<RetentionRow>,
    /// A/B variants, follow-up steps and the whole sequence's uplift (None: neither).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence: Option<crate::sequence::SequenceReport>,
}

impl CampaignReport {
    /// The campaign's totals as one group.
    pub fn overall(&self) -> GroupResult {
        GroupResult {
            recipients: self.recipients,
            sent: self.sent,
            delivered: self.delivered,
            failed: self.failed,
            suppressed: self.suppressed,
            opens_unique: self.opens_unique,
            clicks_unique: self.clicks_unique,
            bot_opens: self.bot_opens,
            unsubscribes: self.unsubscribes,
            open_rate: self.open_rate,
            click_rate: self.click_rate,
            unsubscribe_rate: self.unsubscribe_rate,
            conversions: self.conversions,
            conversion_rate: self.conversion_rate,
            revenue: self.revenue,
            revenue_per_recipient: self.revenue_per_recipient,
            holdout: self.holdout.clone(),
            uplift: self.uplift.clone(),
            revenue_uplift: self.revenue_uplift.clone(),
            incremental_conversions: self.incremental_conversions,
            incremental_revenue: self.incremental_revenue,
            sample_note: self.sample_note.clone(),
            significant: self.significant,
        }
    }
}

/// Per-member outcome, computed once and grouped many ways.
#[derive(Debug, Clone)]
struct Outcome<'a> {
    segment: &'a str,
    holdout: bool,
    state: Option<&'a str>,
    converted: bool,
    revenue: f64,
    opened: bool,
    clicked: bool,
    bot_open: bool,
    unsubscribed: bool,
    active_before: bool,
}

/// Purchases (time, amount) per customer, sorted by time.
fn purchases_by_customer(orders: &[Order]) -> HashMap<&str, Vec<(i64, f64)>> {
    let mut m: HashMap<&str, Vec<(i64, f64)>> = HashMap::new();
    for o in orders.iter().filter(|o| !o.is_return) {
        m.entry(o.customer_id.as_str())
            .or_default()
            .push((o.ordered_at.and_utc().timestamp(), o.amount));
    }
    for v in m.values_mut() {
        v.sort_by_key(|p| p.0);
    }
    m
}

/// The campaign's start: its first accepted send (None: nothing sent yet).
pub fn first_send(sends: &[SendInput]) -> Option<i64> {
    sends
        .iter()
        .filter(|s| s.state == "sent")
        .filter_map(|s| s.sent_at)
        .min()
}

/// The attribution rule, for one member: (converted, revenue) from their purchases
/// (`(Unix seconds, amount)` sorted by time, returns left out). A recipient's window opens when
/// their email was sent (`sent_at`; never sent: the campaign's start), a holdout member's at the
/// campaign's start (`started_at`); it lasts `window_days`. Nothing is attributed before the
/// campaign started. Reports and the uplift learner's training data both use it.
pub fn attribute(
    purchases: Option<&[(i64, f64)]>,
    holdout: bool,
    sent_at: Option<i64>,
    started_at: Option<i64>,
    window_days: i64,
) -> (bool, f64) {
    let window = window_days.max(0) * DAY;
    let from = if holdout {
        started_at
    } else {
        sent_at.or(started_at)
    };
    match from {
        Some(f) => in_window(purchases, f, f + window),
        None => (false, 0.0),
    }
}

/// (any purchase, revenue) in `[from, to)`.
fn in_window(p: Option<&[(i64, f64)]>, from: i64, to: i64) -> (bool, f64) {
    let Some(p) = p else { return (false, 0.0) };
    let start = p.partition_point(|(t, _)| *t < from);
    let mut any = false;
    let mut rev = 0.0;
    for (t, a) in &p[start..] {
        if *t >= to {
            break;
        }
        any = true;
        rev += a;
    }
    (any, rev)
}

/// Whether an event was a person (not flagged, not within [`BOT_SECONDS`] of delivery).
pub fn is_human(e: &EventRecord, sent_at: Option<i64>) -> bool {
    if e.bot {
        return false;
    }
    match (e.kind, sent_at) {
        (EventKind::Open | EventKind::Click, Some(s)) => e.at - s >= BOT_SECONDS,
        _ => true,
    }
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

fn group(outcomes: &[&Outcome<'_>]) -> GroupResult {
    let treat: Vec<&&Outcome> = outcomes.iter().filter(|o| !o.holdout).collect();
    let hold: Vec<&&Outcome> = outcomes.iter().filter(|o| o.holdout).collect();
    let count = |f: &dyn Fn(&Outcome) -> bool| treat.iter().filter(|o| f(o)).count() as u64;
    let recipients = treat.len() as u64;
    let sent = count(&|o| o.state == Some("sent"));
    let failed = count(&|o| o.state == Some("failed"));
    let suppressed = count(&|o| o.state == Some("suppressed"));
    let opens_unique = count(&|o| o.opened || o.clicked);
    let clicks_unique = count(&|o| o.clicked);
    let bot_opens = count(&|o| o.bot_open);
    let unsubscribes = count(&|o| o.unsubscribed);
    let conversions = count(&|o| o.converted);
    let revenue: f64 = treat.iter().map(|o| o.revenue).sum();
    let h_conv = hold.iter().filter(|o| o.converted).count() as u64;
    let h_size = hold.len() as u64;
    let h_rev: f64 = hold.iter().map(|o| o.revenue).sum();
    let diff = two_proportions(conversions, recipients, h_conv, h_size);
    let rdiff = welch(
        Moments::of(treat.iter().map(|o| o.revenue)),
        Moments::of(hold.iter().map(|o| o.revenue)),
    );
    let sample_note = match (&diff, h_size) {
        (_, 0) => Some("no holdout: uplift cannot be measured".to_string()),
        (Some(d), _) => d.small_sample.clone(),
        (None, _) => Some("no recipients".to_string()),
    };
    GroupResult {
        recipients,
        sent,
        delivered: sent,
        failed,
        suppressed,
        opens_unique,
        clicks_unique,
        bot_opens,
        unsubscribes,
        open_rate: ratio(opens_unique, sent),
        click_rate: ratio(clicks_unique, sent),
        unsubscribe_rate: ratio(unsubscribes, sent),
        conversions,
        conversion_rate: ratio(conversions, recipients),
        revenue,
        revenue_per_recipient: (recipients > 0).then(|| revenue / recipients as f64),
        holdout: HoldoutResult {
            size: h_size,
            conversions: h_conv,
            conversion_rate: ratio(h_conv, h_size),
            revenue: h_rev,
            revenue_per_member: (h_size > 0).then(|| h_rev / h_size as f64),
        },
        uplift: Uplift {
            absolute: diff.as_ref().map(|d| d.absolute),
            relative: diff.as_ref().and_then(|d| d.relative),
            ci95: diff.as_ref().map(|d| d.ci95),
            relative_ci95: diff.as_ref().and_then(|d| d.relative_ci95),
            p_value: diff.as_ref().map(|d| d.p_value),
            method: "newcombe hybrid score interval; pooled two-proportion z-test",
        },
        revenue_uplift: RevenueUplift {
            absolute: rdiff.as_ref().map(|d| d.absolute),
            ci95: rdiff.as_ref().map(|d| d.ci95),
            p_value: rdiff.as_ref().map(|d| d.p_value),
            method: "welch t",
        },
        incremental_conversions: diff.as_ref().map(|d| d.absolute * recipients as f64),
        incremental_revenue: rdiff.as_ref().map(|d| d.absolute * recipients as f64),
        sample_note,
        significant: diff
            .as_ref()
            .is_some_and(|d| d.ci95[0] > 0.0 || d.ci95[1] < 0.0),
    }
}

/// Whether a campaign's attribution window has closed at `now`: `window_days` after its last
/// accepted message (never, before anything was accepted).
pub fn window_closed(last_sent: Option<i64>, window_days: i64, now: i64) -> bool {
    last_sent.is_some_and(|l| now >= l + window_days.max(0) * DAY)
}

/// Computes a campaign's report.
pub fn compute(inp: Inputs<'_>) -> CampaignReport {
    let window = inp.campaign.window_days.max(0) * DAY;
    let send_of: HashMap<&str, &SendInput> = inp
        .sends
        .iter()
        .map(|s| (s.customer_id.as_str(), s))
        .collect();
    let sent_at_of: HashMap<i64, Option<i64>> =
        inp.sends.iter().map(|s| (s.id, s.sent_at)).collect();
    let started_at = first_send(inp.sends);
    let last_sent = inp.sends.iter().filter_map(|s| s.sent_at).max();
    // Per send: (human open, human click, bot open, unsubscribe).
    let mut eng: HashMap<i64, (bool, bool, bool, bool)> = HashMap::new();
    let mut timeline_events: Vec<(i64, EventKind)> = Vec::new();
    for e in inp.events {
        let Some(sent_at) = sent_at_of.get(&e.send_id) else {
            continue;
        };
        let human = is_human(e, *sent_at);
        let x = eng.entry(e.send_id).or_default();
        match e.kind {
            EventKind::Open if human => x.0 = true,
            EventKind::Open => x.2 = true,
            EventKind::Click if human => x.1 = true,
            EventKind::Unsubscribe => x.3 = true,
            _ => {}
        }
        if human && matches!(e.kind, EventKind::Open | EventKind::Click) {
            timeline_events.push((e.at, e.kind));
        }
    }
    let purchases = purchases_by_customer(inp.orders);
    let outcomes: Vec<Outcome> = inp
        .members
        .iter()
        .map(|m| {
            let send = send_of.get(m.customer_id.as_str()).copied();
            let p = purchases.get(m.customer_id.as_str());
            let (converted, revenue) = attribute(
                p.map(Vec::as_slice),
                m.holdout,
                send.and_then(|s| s.sent_at),
                started_at,
                inp.campaign.window_days,
            );
            let active_before =
                started_at.is_some_and(|s| in_window(p.map(Vec::as_slice), s - window, s).0);
            let (opened, clicked, bot_open, unsubscribed) = send
                .and_then(|s| eng.get(&s.id))
                .copied()
                .unwrap_or_default();
            Outcome {
                segment: m.segment.as_str(),
                holdout: m.holdout,
                state: send.map(|s| s.state.as_str()),
                converted,
                revenue,
                opened,
                clicked,
                bot_open,
                unsubscribed,
                active_before,
            }
        })
        .collect();
    let all: Vec<&Outcome> = outcomes.iter().collect();
    let total = group(&all);
    let mut by_segment: BTreeMap<&str, Vec<&Outcome>> = BTreeMap::new();
    for o in &outcomes {
        by_segment.entry(o.segment).or_default().push(o);
    }
    let segments = by_segment
        .iter()
        .map(|(s, os)| SegmentResult {
            segment: s.to_string(),
            result: group(os),
        })
        .collect();
    let mut retention = Vec::new();
    if started_at.is_some() {
        for (s, os) in &by_segment {
            for (name, hold) in [("recipients", false), ("holdout", true)] {
                let g: Vec<&&Outcome> = os.iter().filter(|o| o.holdout == hold).collect();
                let n = g.len() as u64;
                if n == 0 {
                    continue;
                }
                retention.push(RetentionRow {
                    segment: s.to_string(),
                    group: name,
                    members: n,
                    active_before: ratio(g.iter().filter(|o| o.active_before).count() as u64, n),
                    active_after: ratio(g.iter().filter(|o| o.converted).count() as u64, n),
                });
            }
        }
    }
    let timeline = timeline(started_at, &timeline_events);
    let cost = inp.campaign.cost_per_recipient * total.sent as f64;
    let roi = match (total.incremental_revenue, cost > 0.0) {
        (Some(r), true) => Some((r - cost) / cost),
        _ => None,
    };
    CampaignReport {
        campaign_id: inp.campaign.campaign_id.clone(),
        plan_id: inp.campaign.plan_id.clone(),
        goal: inp.campaign.goal.clone(),
        goal_name: inp.campaign.goal_name.clone(),
        window_days: inp.campaign.window_days,
        started_at,
        window_closed: window_closed(last_sent, inp.campaign.window_days, inp.now),
        recipients: total.recipients,
        sent: total.sent,
        delivered: total.delivered,
        failed: total.failed,
        suppressed: total.suppressed,
        opens_unique: total.opens_unique,
        clicks_unique: total.clicks_unique,
        bot_opens: total.bot_opens,
        unsubscribes: total.unsubscribes,
        open_rate: total.open_rate,
        click_rate: total.click_rate,
        unsubscribe_rate: total.unsubscribe_rate,
        conversions: total.conversions,
        conversion_rate: total.conversion_rate,
        revenue: total.revenue,
        revenue_per_recipient: total.revenue_per_recipient,
        holdout: total.holdout,
        uplift: total.uplift,
        revenue_uplift: total.revenue_uplift,
        incremental_conversions: total.incremental_conversions,
        incremental_revenue: total.incremental_revenue,
        cost,
        roi,
        sample_note: total.sample_note,
        significant: total.significant,
        segments,
        timeline,
        retention,
        sequence: None,
    }
}

/// Hourly buckets when the events span three days or less, daily ones otherwise.
fn timeline(start: Option<i64>, events: &[(i64, EventKind)]) -> Vec<TimelinePoint> {
    let Some(start) = start else {
        return Vec::new();
    };
    let last = events.iter().map(|e| e.0).max().unwrap_or(start).max(start);
    let bucket = if last - start <= 3 * DAY { 3600 } else { DAY };
    let origin = start - start.rem_euclid(bucket);
    let n = ((last - origin) / bucket + 1) as usize;
    let mut pts: Vec<TimelinePoint> = (0..n)
        .map(|i| TimelinePoint {
            at: origin + i as i64 * bucket,
            opens: 0,
            clicks: 0,
        })
        .collect();
    for (at, kind) in events {
        let Some(p) = usize::try_from((at - origin) / bucket)
            .ok()
            .and_then(|i| pts.get_mut(i))
        else {
            continue;
        };
        match kind {
            EventKind::Open => p.opens += 1,
            EventKind::Click => p.clicks += 1,
            _ => {}
        }
    }
    pts
}

/// Observed conversion rate of recipients per goal over many campaign reports: the priors the
/// planner can use instead of its defaults. `goal → (rate, recipients)`; campaigns with nothing
/// sent are skipped.
pub fn response_rates<'a>(
    reports: impl IntoIterator<Item = &'a CampaignReport>,
) -> HashMap<String, (f64, u64)> {
    let mut acc: HashMap<String, (u64, u64)> = HashMap::new();
    for r in reports {
        if r.sent == 0 {
            continue;
        }
        let e = acc.entry(r.goal.clone()).or_default();
        e.0 += r.conversions;
        e.1 += r.recipients;
    }
    acc.into_iter()
        .filter(|(_, (_, n))| *n > 0)
        .map(|(g, (x, n))| (g, (x as f64 / n as f64, n)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    const T: i64 = 1_700_000_000; // the campaign's first send

    fn order(c: &str, at: i64, amount: f64) -> Order {
        Order {
            order_id: format!("{c}-{at}"),
            customer_id: c.into(),
            ordered_at: DateTime::from_timestamp(at, 0).expect("ts").naive_utc(),
            amount,
            items: 1,
            is_return: amount < 0.0,
            currency: None,
            email: None,
            product: None,
        }
    }

    fn member(c: &str, holdout: bool, segment: &str) -> MemberInput {
        MemberInput {
            customer_id: c.into(),
            holdout,
            segment: segment.into(),
        }
    }

    fn send(id: i64, c: &str, state: &str, sent_at: Option<i64>) -> SendInput {
        SendInput {
            id,
            customer_id: c.into(),
            state: state.into(),
            sent_at,
        }
    }

    fn event(send_id: i64, kind: EventKind, at: i64, bot: bool) -> EventRecord {
        EventRecord {
            id: at,
            send_id,
            kind,
            at,
            bot,
            url: None,
        }
    }

    fn campaign(window_days: i64, cost: f64) -> CampaignInput {
        CampaignInput {
            campaign_id: "c1".into(),
            plan_id: "p1".into(),
            goal: "winback".into(),
            goal_name: "Win back".into(),
            window_days,
            cost_per_recipient: cost,
        }
    }

    #[test]
    fn attribution_windows() {
        let c = campaign(7, 0.0);
        let members = vec![
            member("a", false, "loyal"),
            member("b", false, "loyal"),
            member("c", false, "at_risk"),
            member("d", false, "at_risk"),
            member("e", false, "at_risk"),
            member("h1", true, "loyal"),
            member("h2", true, "at_risk"),
            member("h3", true, "at_risk"),
        ];
        // e was sent a day after the first send.
        let sends = vec![
            send(1, "a", "sent", Some(T)),
            send(2, "b", "sent", Some(T)),
            send(3, "c", "sent", Some(T)),
            send(4, "d", "failed", None),
            send(5, "e", "sent", Some(T + DAY)),
        ];
        let orders = vec![
            order("a", T + 2 * DAY, 50.0),      // in the window
            order("a", T + 3 * DAY, 25.0),      // in the window, same person
            order("b", T + 7 * DAY, 80.0),      // at the end: excluded (half-open)
            order("b", T - 3600, 80.0),         // before the send
            order("c", T + DAY, -30.0),         // a return is no purchase
            order("d", T + 6 * DAY, 10.0),      // never sent: window from the first send
            order("e", T + 7 * DAY + 60, 40.0), // inside e's own window (sent a day later)
            order("h1", T + 6 * DAY, 20.0),     // holdout, in the window
            order("h2", T + 7 * DAY + 1, 20.0), // holdout, after the window
            order("h3", T - DAY, 15.0),         // holdout, active before only
        ];
        let r = compute(Inputs {
            campaign: &c,
            members: &members,
            sends: &sends,
            events: &[],
            orders: &orders,
            now: T + 3 * DAY,
        });
        assert_eq!(r.started_at, Some(T));
        assert!(!r.window_closed);
        assert_eq!((r.recipients, r.sent, r.failed), (5, 4, 1));
        assert_eq!(r.conversions, 3, "a, d and e convert");
        assert!((r.revenue - 125.0).abs() < 1e-9);
        assert_eq!(r.conversion_rate, Some(0.6));
        assert_eq!(r.holdout.size, 3);
        assert_eq!(r.holdout.conversions, 1);
        assert!((r.holdout.revenue - 20.0).abs() < 1e-9);
        let loyal = &r
            .segments
            .iter()
            .find(|s| s.segment == "loyal")
            .expect("loyal")
            .result;
        assert_eq!((loyal.recipients, loyal.conversions), (2, 1));
        assert_eq!((loyal.holdout.size, loyal.holdout.conversions), (1, 1));
        let before = r
            .retention
            .iter()
            .find(|x| x.segment == "at_risk" && x.group == "holdout")
            .expect("row");
        assert_eq!(before.members, 2);
        assert_eq!(before.active_before, Some(0.5));
        assert_eq!(before.active_after, Some(0.0));
        assert!(r.sample_note.as_deref().unwrap_or("").contains("too small"));
        let later = compute(Inputs {
            now: T + 8 * DAY,
            ..Inputs {
                campaign: &c,
                members: &members,
                sends: &sends,
                events: &[],
                orders: &orders,
                now: 0,
            }
        });
        assert!(later.window_closed);
    }

    #[test]
    fn engagement_counts_people_not_prefetches() {
        let c = campaign(7, 0.0);
        let members: Vec<MemberInput> = ["a", "b", "c", "d"]
            .iter()
            .map(|m| member(m, false, "s"))
            .collect();
        let sends: Vec<SendInput> = members
            .iter()
            .enumerate()
            .map(|(i, m)| send(i as i64 + 1, &m.customer_id, "sent", Some(T)))
            .collect();
        let events = vec![
            event(1, EventKind::Open, T + 1, false), // prefetch: too soon
            event(1, EventKind::Open, T + 600, false), // a person
            event(1, EventKind::Open, T + 700, false), // the same person again
            event(2, EventKind::Open, T + 2, false), // prefetch only
            event(3, EventKind::Open, T + 900, true), // flagged proxy
            event(3, EventKind::Click, T + 950, true), // flagged scanner
            event(4, EventKind::Click, T + 3600, false), // a click without an open
            event(4, EventKind::Unsubscribe, T + 3700, false),
            event(99, EventKind::Open, T + 60, false), // not this campaign's send
        ];
        let r = compute(Inputs {
            campaign: &c,
            members: &members,
            sends: &sends,
            events: &events,
            orders: &[],
            now: T,
        });
        assert_eq!(r.opens_unique, 2, "sends 1 and 4");
        assert_eq!(r.clicks_unique, 1);
        assert_eq!(r.bot_opens, 3);
        assert_eq!(r.unsubscribes, 1);
        assert_eq!(r.unsubscribe_rate, Some(0.25));
        assert_eq!(r.open_rate, Some(0.5));
        let opens: u64 = r.timeline.iter().map(|p| p.opens).sum();
        let clicks: u64 = r.timeline.iter().map(|p| p.clicks).sum();
        assert_eq!((opens, clicks), (2, 1));
        assert_eq!(r.holdout.size, 0);
        assert!(r.uplift.absolute.is_none());
        assert!(r
            .sample_note
            .as_deref()
            .unwrap_or("")
            .contains("no holdout"));
    }

    #[test]
    fn uplift_money_and_roi_by_hand() {
        // 100 recipients, 30 buy 10.0 each; 100 holdout, 20 buy 10.0 each. Cost 0.5 per send.
        let c = campaign(14, 0.5);
        let mut members = Vec::new();
        let mut sends = Vec::new();
        let mut orders = Vec::new();
        for i in 0..200 {
            let id = format!("m{i}");
            let holdout = i >= 100;
            members.push(member(&id, holdout, "s"));
            if !holdout {
                sends.push(send(i, &id, "sent", Some(T)));
            }
            let buys = if holdout { i - 100 < 20 } else { i < 30 };
            if buys {
                orders.push(order(&id, T + DAY, 10.0));
            }
        }
        let r = compute(Inputs {
            campaign: &c,
            members: &members,
            sends: &sends,
            events: &[],
            orders: &orders,
            now: T + 30 * DAY,
        });
        let abs = r.uplift.absolute.expect("uplift");
        assert!((abs - 0.1).abs() < 1e-12);
        assert!((r.uplift.relative.expect("rel") - 0.5).abs() < 1e-12);
        // Pooled p = 0.25, se = sqrt(0.25·0.75·0.02) = 0.061237, z = 1.63299 → p = 0.1025.
        assert!((r.uplift.p_value.expect("p") - 0.1025).abs() < 5e-4);
        assert!(!r.significant);
        assert!((r.incremental_conversions.expect("inc") - 10.0).abs() < 1e-9);
        // Revenue per person 3.0 vs 2.0: +1.0 each, 100 recipients → +100; cost 50 → ROI 1.0.
        assert!((r.incremental_revenue.expect("rev") - 100.0).abs() < 1e-9);
        assert!((r.cost - 50.0).abs() < 1e-12);
        assert!((r.roi.expect("roi") - 1.0).abs() < 1e-9);
        let ci = r.revenue_uplift.ci95.expect("ci");
        assert!(ci[0] < 1.0 && ci[1] > 1.0);
        assert!(r.sample_note.is_none());
        let rates = response_rates([&r]);
        assert_eq!(rates.get("winback"), Some(&(0.3, 100)));
    }
}
