//! Reading bounce and complaint reports: delivery status notifications (RFC 3464,
//! `multipart/report; report-type=delivery-status`) and abuse feedback reports (ARF, RFC 5965,
//! `multipart/report; report-type=feedback-report`), parsed with mail-parser into a [`Report`]:
//! what happened to which recipient, and every clue that ties it to its send — the return-path
//! addresses the report was delivered to (VERP), the original message's Message-ID and campaign
//! header. Pure: no store, no I/O. Anything else that arrives is [`Parsed::NotAReport`]; a report
//! that cannot be read is a [`BounceError`] saying why.

use mail_parser::{Message, MessageParser, MimeHeaders};
use serde::Serialize;

/// Why a message could not be read as a report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BounceError {
    #[error("malformed: {0}")]
    Malformed(String),
}

fn malformed(why: impl Into<String>) -> BounceError {
    BounceError::Malformed(why.into())
}

/// Which kind of report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    /// A delivery status notification (RFC 3464).
    Dsn,
    /// An abuse feedback report (RFC 5965).
    Arf,
}

impl ReportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dsn => "dsn",
            Self::Arf => "arf",
        }
    }
}

/// What a report says about one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A permanent failure of the address (see [`classify_status`]): suppress at once.
    HardBounce,
    /// A transient failure or a full mailbox (see [`classify_status`]): counted.
    SoftBounce,
    /// A policy or spam block (5.7.x, see [`classify_status`]): counts toward the campaign's
    /// guardrail, never suppresses the address on its own.
    Block,
    /// A spam complaint (feedback type abuse, fraud, virus or other): suppress at once.
    Complaint,
    /// Nothing to act on (delivered, relayed, not-spam, …), with why.
    Ignored(String),
}

impl Outcome {
    pub fn as_str(&self) -> &str {
        match self {
            Self::HardBounce => "hard_bounce",
            Self::SoftBounce => "soft_bounce",
            Self::Block => "block",
            Self::Complaint => "complaint",
            Self::Ignored(_) => "ignored",
        }
    }
}

/// One recipient of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportItem {
    /// Final-Recipient (DSN) or Original-Rcpt-To / the original's To (ARF), lowercase; `None`
    /// when the report does not say (feedback loops often redact it).
    pub recipient: Option<String>,
    pub outcome: Outcome,
    /// The DSN status code (`5.1.1`) or the ARF feedback type (`abuse`).
    pub status: String,
    /// The Diagnostic-Code, or the ARF User-Agent.
    pub detail: Option<String>,
}

/// Headers of the message the report is about, as far as the report includes them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Original {
    /// With angle brackets, as the ledger stores it.
    pub message_id: Option<String>,
    /// The `X-Retain-Campaign` header.
    pub campaign: Option<String>,
    pub to: Option<String>,
    pub return_path: Option<String>,
}

/// A parsed DSN or ARF report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub kind: ReportKind,
    /// The report's own Message-ID.
    pub report_id: Option<String>,
    /// Addresses that may be a return path (VERP): the report's To, Delivered-To and
    /// X-Original-To, the ARF Original-Mail-From and the original's Return-Path.
    pub return_paths: Vec<String>,
    /// The DSN's Original-Envelope-Id.
    pub envelope_id: Option<String>,
    pub original: Original,
    pub items: Vec<ReportItem>,
}

/// What a message turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Report(Report),
    /// An ordinary message, an auto-reply, a read receipt …: nothing to act on, with why.
    NotAReport(String),
}

/// Fields of a header block (`Name: value`, folded lines joined), names lowercase; blocks are
/// separated by blank lines (a DSN's per-message and per-recipient fields).
fn field_groups(text: &str) -> Vec<Vec<(String, String)>> {
    let mut groups = Vec::new();
    let mut cur: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !cur.is_empty() {
                groups.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = cur.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            cur.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    if !cur.is_empty() {
        groups.push(cur);
    }
    groups
}

fn field<'a>(group: &'a [(String, String)], name: &str) -> Option<&'a str> {
    group
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// `rfc822; Bob@X.io` → `bob@x.io`; `<a@b>` → `a@b`.
fn address_value(v: &str) -> Option<String> {
    let v = match v.split_once(';') {
        Some((_, a)) => a,
        None => v,
    };
    let v = v.trim();
    let v = match (v.find('<'), v.rfind('>')) {
        (Some(a), Some(b)) if a < b => &v[a + 1..b],
        _ => v,
    };
    let v = v.trim();
    (v.contains('@') && !v.chars().any(char::is_whitespace)).then(|| v.to_ascii_lowercase())
}

fn bracketed(id: &str) -> Option<String> {
    let inner = id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    (!inner.is_empty()).then(|| format!("<{inner}>"))
}

fn original_from_fields(text: &str) -> Original {
    let group = field_groups(text).into_iter().next().unwrap_or_default();
    Original {
        message_id: field(&group, "message-id").and_then(bracketed),
        campaign: field(&group, "x-retain-campaign").map(|s| s.trim().to_string()),
        to: field(&group, "to").and_then(address_value),
        return_path: field(&group, "return-path").and_then(address_value),
    }
}

fn original_from_message(m: &Message<'_>) -> Original {
    Original {
        message_id: m.message_id().and_then(bracketed),
        campaign: m
            .header_raw("X-Retain-Campaign")
            .map(|s| s.trim().to_string()),
        to: m
            .to()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .map(|a| a.to_ascii_lowercase()),
        return_path: m.header_raw("Return-Path").and_then(address_value),
    }
}

fn text_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Reads one message: a DSN or ARF report, something else, or an error saying why it cannot be
/// read. Never panics, whatever the bytes.
pub fn parse(raw: &[u8]) -> Result<Parsed, BounceError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(malformed("the message is empty"));
    }
    let msg = MessageParser::default()
        .parse(raw)
        .ok_or_else(|| malformed("not an email message"))?;
    if msg.headers().is_empty() {
        return Err(malformed("not an email message: no header fields"));
    }
    let (ctype, subtype, report_type) = match msg.content_type() {
        Some(ct) => (
            ct.ctype().to_ascii_lowercase(),
            ct.subtype().unwrap_or_default().to_ascii_lowercase(),
            ct.attribute("report-type")
                .unwrap_or_default()
                .to_ascii_lowercase(),
        ),
        None => ("text".into(), "plain".into(), String::new()),
    };
    if (ctype.as_str(), subtype.as_str()) != ("multipart", "report") {
        return Ok(Parsed::NotAReport(format!(
            "not a DSN or ARF report (content type {ctype}/{subtype})"
        )));
    }
    let kind = match report_type.as_str() {
        "delivery-status" => ReportKind::Dsn,
        "feedback-report" => ReportKind::Arf,
        "" => return Err(malformed("multipart/report without a report-type")),
        other => {
            return Ok(Parsed::NotAReport(format!(
                "a {other} report, not a bounce or complaint"
            )))
        }
    };

    // The report's parts: the machine-readable status and the original (whole or headers).
    let mut status: Option<String> = None;
    let mut original = Original::default();
    for part in msg.parts.iter().skip(1) {
        let Some(ct) = part.content_type() else {
            continue;
        };
        let t = format!(
            "{}/{}",
            ct.ctype().to_ascii_lowercase(),
            ct.subtype().unwrap_or_default().to_ascii_lowercase()
        );
        match t.as_str() {
            "message/delivery-status" | "message/global-delivery-status"
                if kind == ReportKind::Dsn =>
            {
                status.get_or_insert_with(|| text_of(part.contents()));
            }
            "message/feedback-report" if kind == ReportKind::Arf => {
                status.get_or_insert_with(|| text_of(part.contents()));
            }
            "message/rfc822" | "message/global" => {
                if let Some(m) = part.message() {
                    original = original_from_message(m);
                }
            }
            "text/rfc822-headers" | "message/global-headers" => {
                original = original_from_fields(&text_of(part.contents()));
            }
            _ => {}
        }
    }
    let mut return_paths: Vec<String> = Vec::new();
    for name in ["Delivered-To", "X-Original-To", "To"] {
        for v in msg.header_values(name) {
            if let Some(text) = v.as_text() {
                return_paths.extend(address_value(text));
            }
            if let Some(list) = v.as_address() {
                return_paths.extend(
                    list.iter()
                        .filter_map(|a| a.address())
                        .map(str::to_ascii_lowercase),
                );
            }
        }
    }
    let report_id = msg.message_id().and_then(bracketed);
    let mut report = Report {
        kind,
        report_id,
        return_paths,
        envelope_id: None,
        original,
        items: Vec::new(),
    };
    match kind {
        ReportKind::Dsn => {
            let text = status.ok_or_else(|| {
                malformed("a delivery-status report without its message/delivery-status part")
            })?;
            dsn_items(&text, &mut report)?;
        }
        ReportKind::Arf => {
            let text = status.ok_or_else(|| {
                malformed("a feedback report without its message/feedback-report part")
            })?;
            arf_items(&text, &mut report)?;
        }
    }
    if let Some(rp) = report.original.return_path.clone() {
        report.return_paths.push(rp);
    }
    report.return_paths.dedup();
    Ok(Parsed::Report(report))
}

/// A DSN status code `class.subject.detail` (class 2, 4 or 5).
fn status_code(v: &str) -> Option<String> {
    let code = v.split_whitespace().next()?;
    let parts: Vec<&str> = code.split('.').collect();
    let ok = parts.len() == 3
        && ["2", "4", "5"].contains(&parts[0])
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.chars().all(|c| c.is_ascii_digit()));
    ok.then(|| code.to_string())
}

/// The one rule that turns a delivery status (RFC 3463 `class.subject.detail`, with the DSN
/// action when there is one: `failed`, `delayed`, `delivered` …) into an [`Outcome`]. Every
/// route a bounce arrives by — DSN reports, provider webhooks — goes through it:
///
/// | status | outcome |
/// |---|---|
/// | action `delivered`, `relayed`, `expanded`, or class 2 | ignored |
/// | action `delayed`, or class 4 (transient) | soft bounce |
/// | x.2.2 mailbox full, x.2.3 message too big for the mailbox, x.3.1 mail system full (either class) | soft bounce |
/// | 5.7.x security or policy (spam block, reputation, authentication) | block: counts toward the guardrail, does not suppress |
/// | 5.1.x bad address (no such user, bad domain, moved), 5.2.1 mailbox disabled, and every other 5.x.x | hard bounce |
///
/// A status that is not a code (`status_code` rejects it) is the caller's business.
pub fn classify_status(status: &str, action: &str) -> Outcome {
    let action = action.trim().to_ascii_lowercase();
    if matches!(action.as_str(), "delivered" | "relayed" | "expanded") {
        return Outcome::Ignored(action);
    }
    let mut parts = status.trim().split('.');
    let class = parts.next().unwrap_or_default();
    let subject = parts.next().unwrap_or_default();
    let detail = parts.next().unwrap_or_default();
    match (class, subject, detail) {
        ("2", _, _) => Outcome::Ignored("delivered".into()),
        _ if action == "delayed" => Outcome::SoftBounce,
        ("4", _, _) => Outcome::SoftBounce,
        (_, "2", "2" | "3") | (_, "3", "1") => Outcome::SoftBounce,
        ("5", "7", _) => Outcome::Block,
        ("5", _, _) => Outcome::HardBounce,
        _ => Outcome::Ignored(format!("status {status}")),
    }
}

fn dsn_items(text: &str, report: &mut Report) -> Result<(), BounceError> {
    let groups = field_groups(text);
    let mut per_message = true;
    for g in &groups {
        if per_message && field(g, "final-recipient").is_none() {
            report.envelope_id = field(g, "original-envelope-id").map(str::to_string);
            per_message = false;
            continue;
        }
        per_message = false;
        let Some(recipient) = field(g, "final-recipient").or(field(g, "original-recipient")) else {
            continue;
        };
        let recipient = address_value(recipient)
            .ok_or_else(|| malformed(format!("Final-Recipient '{recipient}' is not an address")))?;
        let raw_status = field(g, "status").unwrap_or_default();
        let status = status_code(raw_status).ok_or_else(|| {
            malformed(format!(
                "{recipient}: Status '{raw_status}' is not a class.subject.detail code"
            ))
        })?;
        let action = field(g, "action").unwrap_or_default().to_ascii_lowercase();
        let outcome = classify_status(&status, &action);
        report.items.push(ReportItem {
            recipient: Some(recipient),
            outcome,
            status,
            detail: field(g, "diagnostic-code").map(str::to_string),
        });
    }
    if report.items.is_empty() {
        return Err(malformed(
            "the delivery-status part names no recipient (Final-Recipient)",
        ));
    }
    Ok(())
}

fn arf_items(text: &str, report: &mut Report) -> Result<(), BounceError> {
    let fields: Vec<(String, String)> = field_groups(text).into_iter().flatten().collect();
    let feedback_type = field(&fields, "feedback-type")
        .ok_or_else(|| malformed("the feedback report has no Feedback-Type"))?
        .to_ascii_lowercase();
    let outcome = match feedback_type.as_str() {
        "abuse" | "fraud" | "virus" | "other" => Outcome::Complaint,
        other => Outcome::Ignored(format!("feedback type {other}")),
    };
    if let Some(from) = field(&fields, "original-mail-from").and_then(address_value) {
        report.return_paths.push(from);
    }
    let mut recipients: Vec<String> = fields
        .iter()
        .filter(|(n, _)| n == "original-rcpt-to")
        .filter_map(|(_, v)| address_value(v))
        .collect();
    if recipients.is_empty() {
        recipients.extend(report.original.to.clone());
    }
    let detail = field(&fields, "user-agent").map(str::to_string);
    let mut push = |recipient: Option<String>| {
        report.items.push(ReportItem {
            recipient,
            outcome: outcome.clone(),
            status: feedback_type.clone(),
            detail: detail.clone(),
        })
    };
    if recipients.is_empty() {
        push(None);
    }
    for r in recipients {
        push(Some(r));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn report(name: &str) -> Report {
        match parse(&fixture(name)).expect("parses") {
            Parsed::Report(r) => r,
            Parsed::NotAReport(why) => panic!("{name}: not a report: {why}"),
        }
    }

    #[test]
    fn a_dsn_5_1_1_is_a_hard_bounce_of_its_final_recipient() {
        let r = report("dsn-5.1.1.eml");
        assert_eq!(r.kind, ReportKind::Dsn);
        assert_eq!(r.items.len(), 1);
        let i = &r.items[0];
        assert_eq!(i.recipient.as_deref(), Some("gone@mail.example"));
        assert_eq!(i.outcome, Outcome::HardBounce);
        assert_eq!(i.status, "5.1.1");
        assert!(
            i.detail.as_deref().is_some_and(|d| d.contains("550")),
            "{i:?}"
        );
        assert_eq!(r.envelope_id.as_deref(), Some("retain-17"));
        assert_eq!(
            r.original.message_id.as_deref(),
            Some("<0a1b2c3d@shop.example>")
        );
        assert_eq!(r.original.campaign.as_deref(), Some("p1-win_back-1"));
        assert!(
            r.return_paths
                .iter()
                .any(|a| a == "bounces+17-aaaaaaaaaaaaaaaa@bounce.shop.example"),
            "{:?}",
            r.return_paths
        );
        assert_eq!(r.report_id.as_deref(), Some("<dsn-1@mx.mail.example>"));
    }

    #[test]
    fn a_dsn_4_2_2_is_a_soft_bounce() {
        let r = report("dsn-4.2.2.eml");
        assert_eq!(r.items.len(), 1);
        assert_eq!(r.items[0].outcome, Outcome::SoftBounce);
        assert_eq!(r.items[0].status, "4.2.2");
        assert_eq!(r.items[0].recipient.as_deref(), Some("full@mail.example"));
        assert_eq!(r.envelope_id, None);
    }

    #[test]
    fn an_arf_abuse_report_is_a_complaint_with_the_originals_headers() {
        let r = report("arf-abuse.eml");
        assert_eq!(r.kind, ReportKind::Arf);
        assert_eq!(r.items.len(), 1);
        assert_eq!(r.items[0].outcome, Outcome::Complaint);
        assert_eq!(r.items[0].status, "abuse");
        assert_eq!(r.items[0].recipient.as_deref(), Some("angry@mail.example"));
        assert_eq!(
            r.original.message_id.as_deref(),
            Some("<9f8e7d6c@shop.example>")
        );
        assert_eq!(r.original.campaign.as_deref(), Some("p1-win_back-1"));
        assert_eq!(r.original.to.as_deref(), Some("angry@mail.example"));
    }

    #[test]
    fn a_malformed_report_says_why_and_others_are_not_reports() {
        let e = parse(&fixture("malformed.eml")).expect_err("malformed");
        assert!(e.to_string().contains("delivery-status"), "{e}");
        assert!(parse(b"").is_err());
        assert!(parse(b"\r\n\r\n").is_err());
        let plain = b"From: a@b.example\r\nTo: c@d.example\r\nSubject: hi\r\n\r\nhello\r\n";
        assert!(matches!(parse(plain), Ok(Parsed::NotAReport(_))));
        let receipt = b"From: a@b.example\r\nContent-Type: multipart/report; report-type=disposition-notification; boundary=x\r\n\r\n--x\r\n\r\nread\r\n--x--\r\n";
        match parse(receipt) {
            Ok(Parsed::NotAReport(why)) => assert!(why.contains("disposition"), "{why}"),
            other => panic!("{other:?}"),
        }
        let bad_status = b"From: m@x.example\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--x\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\nFinal-Recipient: rfc822; a@b.example\r\nAction: failed\r\nStatus: oops\r\n--x--\r\n";
        let e = parse(bad_status).expect_err("bad status");
        assert!(e.to_string().contains("oops"), "{e}");
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let samples: Vec<Vec<u8>> = vec![
            vec![0xff; 64],
            b"Content-Type: multipart/report; report-type=feedback-report; boundary=\"\"\r\n\r\n--\r\n".to_vec(),
            b"Content-Type: multipart/report; report-type=delivery-status\r\n\r\n".to_vec(),
            b":\r\n:\r\n\r\n".to_vec(),
        ];
        for s in samples {
            let _ = parse(&s);
        }
        let dsn = fixture("dsn-5.1.1.eml");
        for cut in (0..dsn.len()).step_by(37) {
            let _ = parse(&dsn[..cut]);
        }
    }

    #[test]
    fn statuses_are_classified_by_rfc_3463() {
        use Outcome::*;
        let cases = [
            ("5.1.1", "failed", HardBounce),  // bad destination mailbox
            ("5.1.2", "failed", HardBounce),  // bad destination system
            ("5.1.10", "failed", HardBounce), // null MX
            ("5.2.1", "failed", HardBounce),  // mailbox disabled
            ("5.2.2", "failed", SoftBounce),  // mailbox full: may empty
            ("4.2.2", "delayed", SoftBounce),
            ("5.3.1", "failed", SoftBounce), // mail system full
            ("4.4.1", "failed", SoftBounce), // no answer from host
            ("5.7.1", "failed", Block),      // delivery not authorized (spam block)
            ("5.7.26", "failed", Block),     // authentication failed (DMARC)
            ("5.1.1", "delayed", SoftBounce),
            ("5.0.0", "", HardBounce),
        ];
        for (status, action, want) in cases {
            assert_eq!(classify_status(status, action), want, "{status} {action}");
        }
        assert!(matches!(classify_status("2.0.0", "failed"), Ignored(_)));
        assert!(matches!(classify_status("5.1.1", "relayed"), Ignored(_)));
        assert!(matches!(classify_status("x", ""), Ignored(_)));
    }

    #[test]
    fn field_values() {
        assert_eq!(
            address_value("rfc822; Bob@X.io").as_deref(),
            Some("bob@x.io")
        );
        assert_eq!(
            address_value("<a@b.example>").as_deref(),
            Some("a@b.example")
        );
        assert_eq!(address_value("rfc822; not an address"), None);
        assert_eq!(status_code("5.1.1 (bad mailbox)").as_deref(), Some("5.1.1"));
        assert_eq!(status_code("550"), None);
        assert_eq!(status_code("5.1"), None);
        let g = field_groups("A: 1\r\n  continued\r\n\r\nB: 2\n");
        assert_eq!(g.len(), 2);
        assert_eq!(field(&g[0], "a"), Some("1 continued"));
    }
}
