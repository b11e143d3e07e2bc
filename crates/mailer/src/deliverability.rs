//! Acting on bounce and complaint reports, and the guardrail that pauses a campaign that harms
//! the sender's reputation.
//!
//! [`Ingest`] takes one message at a time (parsed by [`crate::bounces`]), ties each report to
//! its send — by the signed return path it was delivered to (VERP), else the original's
//! Message-ID, else the recipient and the campaign header — records it once against that send,
//! and suppresses the address: at once for hard bounces and complaints, after
//! `soft_bounce_limit` different messages soft-bounced within `soft_bounce_days`. A report that
//! matches no send is listed and changes nothing (it may be forged or not ours).
//! [`check_guardrail`] judges a campaign's complaint and hard-bounce rates against its delivered
//! messages and pauses it, recording why; ingest runs it for every campaign it touched, and a
//! running `retain send` stops at its next claim once the campaign is paused.

use std::collections::BTreeSet;

use retain_core::tracking::send_id_of_return_path;
use retain_core::SuppressionReason;
use retain_store::{
    DeliverabilityCounts, DeliverabilityKind, NewDeliverabilityEvent, SendRecord, Store,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::bounces::{self, Outcome, Parsed, Report};
use crate::error::MailerError;

/// When a campaign pauses itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GuardrailLimits {
    /// Complaints per delivered message (0.001 = 0.1%).
    pub complaint_rate: f64,
    /// Hard bounces per delivered message (0.02 = 2%).
    pub hard_bounce_rate: f64,
    /// Rates are judged from this many delivered messages on.
    pub min_delivered: i64,
}

impl Default for GuardrailLimits {
    fn default() -> Self {
        Self {
            complaint_rate: 0.001,
            hard_bounce_rate: 0.02,
            min_delivered: 200,
        }
    }
}

/// How reports are acted on.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// The tracking secret (verifies return-path tokens).
    pub secret: Vec<u8>,
    pub soft_bounce_limit: u32,
    pub soft_bounce_days: u32,
    pub limits: GuardrailLimits,
}

/// How a report was tied to its send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchedBy {
    /// The signed return path the report was delivered to.
    ReturnPath,
    /// The original message's Message-ID.
    MessageId,
    /// The recipient address and the original's campaign header.
    RecipientCampaign,
}

/// What was done with one recipient of a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemResult {
    pub recipient: Option<String>,
    /// hard_bounce | soft_bounce | complaint | ignored
    pub outcome: String,
    /// The DSN status or ARF feedback type.
    pub status: String,
    pub send_id: Option<i64>,
    pub campaign_id: Option<String>,
    pub customer_id: Option<String>,
    pub matched_by: Option<MatchedBy>,
    /// What was done, in words.
    pub action: String,
    /// The address was suppressed by this report.
    pub suppressed: bool,
}

/// One message read by [`Ingest::message`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ingested {
    /// dsn | arf | other | malformed
    pub kind: String,
    pub report_id: Option<String>,
    pub items: Vec<ItemResult>,
    /// Why it was not acted on (not a report, malformed).
    pub note: Option<String>,
}

/// A bounce, complaint or block an email provider reported by webhook, after its signature was
/// verified, with every clue that ties it to its send.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderEvent {
    /// ses | sendgrid | mailgun | postmark
    pub provider: String,
    /// The provider's id for this event (its message id plus the event kind where it has no
    /// event id): the same event is recorded once, however often it is delivered.
    pub event_id: String,
    /// Envelope senders the message had (the signed VERP return path, if the provider says).
    pub return_paths: Vec<String>,
    /// The original message's Message-ID header (with or without angle brackets).
    pub message_id: Option<String>,
    /// The campaign id, if the provider passes the `X-Retain-Campaign` header or a tag back.
    pub campaign: Option<String>,
    pub recipient: Option<String>,
    pub outcome: Outcome,
    /// The status code (`5.1.1`) or complaint type.
    pub status: String,
    pub detail: Option<String>,
}

/// The guardrail's verdict on one campaign.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GuardrailCheck {
    pub campaign_id: String,
    pub counts: DeliverabilityCounts,
    pub complaint_rate: f64,
    pub hard_bounce_rate: f64,
    /// A limit is crossed (with enough delivered messages), and why.
    pub breach: Option<String>,
    /// The campaign was paused by this check (false when it already was, was cancelled, or its
    /// operator resumed it after an earlier guardrail pause).
    pub paused_now: bool,
}

/// Judges a campaign's complaint and hard-bounce rates and pauses it, recording why, when one
/// reaches its limit with at least `min_delivered` delivered messages. The send engine may call
/// this between batches; ingest calls it for each campaign a report touched.
pub async fn check_guardrail(
    store: &Store,
    campaign_id: &str,
    limits: &GuardrailLimits,
) -> Result<GuardrailCheck, MailerError> {
    let d = store.campaign_deliverability(campaign_id).await?;
    judge(store, campaign_id, d.total, limits).await
}

/// Between two batches of a send: judges the campaign's totals (counted in SQL) and pauses it
/// when a limit is reached. Returns the reason when the campaign paused now. Without a
/// complaint, hard bounce or block no limit can be reached, so the delivered messages (a count
/// that grows with the campaign) are counted only once such a report exists.
pub async fn guardrail_between_batches(
    store: &Store,
    campaign_id: &str,
    limits: &GuardrailLimits,
) -> Result<Option<String>, MailerError> {
    let reports = store.campaign_deliverability_reports(campaign_id).await?;
    if reports.complaints + reports.hard_bounces + reports.blocks == 0 {
        return Ok(None);
    }
    let c = store.campaign_deliverability_totals(campaign_id).await?;
    let check = judge(store, campaign_id, c, limits).await?;
    Ok(check.paused_now.then_some(check.breach).flatten())
}

/// The guardrail's rule, in one place: with at least `min_delivered` delivered messages, the
/// campaign pauses when complaints reach `complaint_rate` of them, or hard bounces plus policy
/// blocks (5.7.x) reach `hard_bounce_rate` of them.
async fn judge(
    store: &Store,
    campaign_id: &str,
    c: DeliverabilityCounts,
    limits: &GuardrailLimits,
) -> Result<GuardrailCheck, MailerError> {
    let pct = |r: f64| format!("{:.2}%", r * 100.0);
    let reached = |n: i64, limit: f64| n > 0 && n as f64 >= limit * c.delivered as f64 - 1e-9;
    let bounced = c.hard_bounces + c.blocks;
    let breach = if c.delivered < limits.min_delivered.max(1) {
        None
    } else if reached(c.complaints, limits.complaint_rate) {
        Some(format!(
            "complaint rate {} ({} of {} delivered) reached the {} limit",
            pct(c.complaint_rate()),
            c.complaints,
            c.delivered,
            pct(limits.complaint_rate)
        ))
    } else if reached(bounced, limits.hard_bounce_rate) {
        Some(format!(
            "hard bounce rate {} ({} of {} delivered{}) reached the {} limit",
            pct(c.hard_bounce_rate() + c.block_rate()),
            bounced,
            c.delivered,
            if c.blocks > 0 {
                format!(", {} of them blocks", c.blocks)
            } else {
                String::new()
            },
            pct(limits.hard_bounce_rate)
        ))
    } else {
        None
    };
    let paused_now = match &breach {
        Some(why) => store.pause_send_campaign_for(campaign_id, why).await?,
        None => false,
    };
    Ok(GuardrailCheck {
        campaign_id: campaign_id.to_string(),
        complaint_rate: c.complaint_rate(),
        hard_bounce_rate: c.hard_bounce_rate() + c.block_rate(),
        counts: c,
        breach,
        paused_now,
    })
}

/// Reads reports one message at a time and remembers the campaigns they touched.
#[derive(Debug)]
pub struct Ingest<'a> {
    store: &'a Store,
    settings: IngestSettings,
    touched: BTreeSet<String>,
}

fn fingerprint(report: &Report, raw: &[u8], send_id: i64, kind: DeliverabilityKind) -> String {
    let mut h = Sha256::new();
    match &report.report_id {
        Some(id) => h.update(id.as_bytes()),
        None => h.update(raw),
    }
    h.update(format!("|{send_id}|{}", kind.as_str()).as_bytes());
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl<'a> Ingest<'a> {
    pub fn new(store: &'a Store, settings: IngestSettings) -> Self {
        Self {
            store,
            settings,
            touched: BTreeSet::new(),
        }
    }

    /// Reads one message and acts on it. Only store failures are errors; a message that is not
    /// a report, or cannot be read, comes back with a note saying so.
    pub async fn message(&mut self, raw: &[u8]) -> Result<Ingested, MailerError> {
        let report = match bounces::parse(raw) {
            Ok(Parsed::Report(r)) => r,
            Ok(Parsed::NotAReport(why)) => {
                return Ok(Ingested {
                    kind: "other".into(),
                    report_id: None,
                    items: Vec::new(),
                    note: Some(why),
                })
            }
            Err(e) => {
                return Ok(Ingested {
                    kind: "malformed".into(),
                    report_id: None,
                    items: Vec::new(),
                    note: Some(e.to_string()),
                })
            }
        };
        let by_return_path = self.by_return_path(&report.return_paths).await?;
        let mut items = Vec::with_capacity(report.items.len());
        for item in &report.items {
            let matched = match &by_return_path {
                Some(s) => Some((s.clone(), MatchedBy::ReturnPath)),
                None => {
                    self.by_original(
                        report.original.message_id.as_deref(),
                        report.original.campaign.as_deref(),
                        item.recipient.as_deref(),
                    )
                    .await?
                }
            };
            let result = self
                .act(
                    matched,
                    item.recipient.clone(),
                    &item.outcome,
                    &item.status,
                    item.detail.clone(),
                    |send_id, kind| fingerprint(&report, raw, send_id, kind),
                )
                .await?;
            items.push(result);
        }
        Ok(Ingested {
            kind: report.kind.as_str().into(),
            report_id: report.report_id.clone(),
            items,
            note: None,
        })
    }

    /// Acts on one event a provider's webhook reported (its signature already verified by the
    /// caller), by the same rules as [`Ingest::message`]: tied to its send by the signed return
    /// path, else the Message-ID, else recipient + campaign; recorded once per provider event id.
    pub async fn provider_event(&mut self, e: &ProviderEvent) -> Result<ItemResult, MailerError> {
        let matched = match self.by_return_path(&e.return_paths).await? {
            Some(s) => Some((s, MatchedBy::ReturnPath)),
            None => {
                self.by_original(
                    e.message_id.as_deref(),
                    e.campaign.as_deref(),
                    e.recipient.as_deref(),
                )
                .await?
            }
        };
        self.act(
            matched,
            e.recipient.clone(),
            &e.outcome,
            &e.status,
            e.detail.clone(),
            |send_id, kind| {
                let mut h = Sha256::new();
                h.update(format!(
                    "{}|{}|{send_id}|{}",
                    e.provider,
                    e.event_id,
                    kind.as_str()
                ));
                h.finalize()[..16]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect()
            },
        )
        .await
    }

    /// Records one outcome against its send and applies the suppression rules: the one place
    /// they live, whichever route the report came by.
    async fn act(
        &mut self,
        matched: Option<(SendRecord, MatchedBy)>,
        recipient: Option<String>,
        outcome: &Outcome,
        status: &str,
        detail: Option<String>,
        fingerprint: impl Fn(i64, DeliverabilityKind) -> String,
    ) -> Result<ItemResult, MailerError> {
        let mut result = ItemResult {
            recipient,
            outcome: outcome.as_str().to_string(),
            status: status.to_string(),
            send_id: None,
            campaign_id: None,
            customer_id: None,
            matched_by: None,
            action: String::new(),
            suppressed: false,
        };
        let Some((send, how)) = matched else {
            result.action = match outcome {
                Outcome::Ignored(why) => format!("ignored ({why})"),
                _ => "unmatched: no send found, nothing done".into(),
            };
            return Ok(result);
        };
        result.send_id = Some(send.id);
        result.campaign_id = Some(send.campaign_id.clone());
        result.customer_id = Some(send.customer_id.clone());
        result.matched_by = Some(how);
        let kind = match outcome {
            Outcome::HardBounce => DeliverabilityKind::HardBounce,
            Outcome::SoftBounce => DeliverabilityKind::SoftBounce,
            Outcome::Complaint => DeliverabilityKind::Complaint,
            Outcome::Block => DeliverabilityKind::Block,
            Outcome::Ignored(why) => {
                result.action = format!("ignored ({why})");
                return Ok(result);
            }
        };
        let now = chrono::Utc::now().timestamp();
        let new = self
            .store
            .record_deliverability_event(&NewDeliverabilityEvent {
                send_id: send.id,
                campaign_id: send.campaign_id.clone(),
                email: send.email.clone(),
                kind,
                status: Some(status.to_string()),
                detail,
                fingerprint: fingerprint(send.id, kind),
                at: now,
            })
            .await?;
        self.touched.insert(send.campaign_id.clone());
        if !new {
            result.action = "already recorded: nothing more done".into();
            return Ok(result);
        }
        let suppression = match kind {
            DeliverabilityKind::HardBounce => {
                Some((SuppressionReason::HardBounce, format!("bounce {status}")))
            }
            DeliverabilityKind::Complaint => {
                Some((SuppressionReason::Complaint, format!("complaint {status}")))
            }
            DeliverabilityKind::Block => {
                result.action =
                    format!("recorded: blocked ({status}), counts toward the guardrail");
                None
            }
            DeliverabilityKind::SoftBounce => {
                let days = self.settings.soft_bounce_days;
                let limit = i64::from(self.settings.soft_bounce_limit.max(1));
                let n = self
                    .store
                    .soft_bounced_sends(&send.email, now - i64::from(days) * 86_400)
                    .await?;
                if n >= limit {
                    Some((
                        SuppressionReason::HardBounce,
                        format!("{n} soft bounces within {days} days"),
                    ))
                } else {
                    result.action =
                        format!("recorded: soft bounce {n} of {limit} within {days} days");
                    None
                }
            }
        };
        if !send.email.contains('@') {
            // The customer was erased since: there is no address left to suppress.
            result.action = "recorded; the recipient was erased, nothing to suppress".into();
            return Ok(result);
        }
        if let Some((reason, source)) = suppression {
            let added = self.store.suppress(&send.email, reason, &source).await?;
            result.suppressed = added;
            result.action = if added {
                format!("recorded, suppressed ({source})")
            } else {
                format!("recorded ({source}); already suppressed")
            };
        }
        Ok(result)
    }

    async fn by_return_path(&self, addrs: &[String]) -> Result<Option<SendRecord>, MailerError> {
        for a in addrs {
            if let Some(id) = send_id_of_return_path(&self.settings.secret, a) {
                if let Some(s) = self.store.send(id).await? {
                    return Ok(Some(s));
                }
            }
        }
        Ok(None)
    }

    async fn by_original(
        &self,
        message_id: Option<&str>,
        campaign: Option<&str>,
        recipient: Option<&str>,
    ) -> Result<Option<(SendRecord, MatchedBy)>, MailerError> {
        if let Some(mid) = message_id {
            if let Some(s) = self.store.send_by_message_id(mid).await? {
                return Ok(Some((s, MatchedBy::MessageId)));
            }
        }
        if let (Some(campaign), Some(r)) = (campaign, recipient) {
            if let Some(s) = self.store.send_by_campaign_email(campaign, r).await? {
                return Ok(Some((s, MatchedBy::RecipientCampaign)));
            }
        }
        Ok(None)
    }

    /// The guardrail over every campaign the reports touched, sorted by campaign.
    pub async fn finish(self) -> Result<Vec<GuardrailCheck>, MailerError> {
        let mut out = Vec::with_capacity(self.touched.len());
        for c in &self.touched {
            out.push(check_guardrail(self.store, c, &self.settings.limits).await?);
        }
        Ok(out)
    }
}
