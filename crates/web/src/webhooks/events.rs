//! Reading the providers' event payloads (after their signatures were verified) into
//! [`ProviderEvent`]s: Amazon SES notifications (inside SNS), SendGrid event batches, Mailgun
//! event data, Postmark bounce and spam-complaint webhooks. Status codes go through the mailer's
//! one classification rule ([`classify_status`]); events that are not bounces, blocks or
//! complaints (deliveries, opens, deferrals a provider still retries …) are skipped. Pure.

use retain_mailer::bounces::{classify_status, Outcome};
use retain_mailer::ProviderEvent;
use serde_json::Value;

fn s(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(x) if !x.trim().is_empty() => Some(x.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The first `d.d.d` status code in a text (`550 5.1.1 user unknown` → `5.1.1`).
pub fn status_in(text: &str) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | ',' | ';' | '#' | '[' | ']'))
        .find(|w| {
            let p: Vec<&str> = w.split('.').collect();
            p.len() == 3
                && matches!(p[0], "2" | "4" | "5")
                && p[1..]
                    .iter()
                    .all(|x| !x.is_empty() && x.len() <= 3 && x.chars().all(|c| c.is_ascii_digit()))
        })
        .map(str::to_string)
}

fn lower(a: Option<String>) -> Option<String> {
    a.map(|x| {
        x.trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_ascii_lowercase()
    })
}

/// An SES notification (the SNS message's `Message`, itself JSON): `Bounce` or `Complaint`,
/// from notifications (`notificationType`) or event publishing (`eventType`).
pub fn ses(message: &str) -> Result<Vec<ProviderEvent>, String> {
    let v: Value = serde_json::from_str(message).map_err(|e| format!("SES message: {e}"))?;
    let kind = s(&v, "notificationType").or_else(|| s(&v, "eventType"));
    let mail = v.get("mail").cloned().unwrap_or(Value::Null);
    let headers = mail.get("headers").and_then(Value::as_array);
    let header = |name: &str| {
        headers.and_then(|hs| {
            hs.iter()
                .find(|h| s(h, "name").is_some_and(|n| n.eq_ignore_ascii_case(name)))
                .and_then(|h| s(h, "value"))
        })
    };
    let message_id = mail
        .get("commonHeaders")
        .and_then(|c| s(c, "messageId"))
        .or_else(|| header("Message-ID"));
    let campaign = header("X-Retain-Campaign");
    let return_paths: Vec<String> = s(&mail, "source").into_iter().collect();
    let ses_id = s(&mail, "messageId").unwrap_or_default();
    let base =
        |recipient: Option<String>, outcome, status: String, detail, id: String| ProviderEvent {
            provider: "ses".into(),
            event_id: id,
            return_paths: return_paths.clone(),
            message_id: message_id.clone(),
            campaign: campaign.clone(),
            recipient: lower(recipient),
            outcome,
            status,
            detail,
        };
    let mut out = Vec::new();
    match kind.as_deref() {
        Some("Bounce") => {
            let b = v.get("bounce").cloned().unwrap_or(Value::Null);
            let bounce_type = s(&b, "bounceType").unwrap_or_default();
            let feedback = s(&b, "feedbackId").unwrap_or_else(|| ses_id.clone());
            for r in b
                .get("bouncedRecipients")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let status = s(r, "status").and_then(|x| status_in(&x));
                let outcome = match (&status, bounce_type.as_str()) {
                    (Some(code), _) => classify_status(code, "failed"),
                    (None, "Permanent") => Outcome::HardBounce,
                    (None, "Transient") => Outcome::SoftBounce,
                    (None, other) => Outcome::Ignored(format!("SES bounce type {other}")),
                };
                let recipient = s(r, "emailAddress");
                let id = format!("{feedback}|{}", recipient.clone().unwrap_or_default());
                out.push(base(
                    recipient,
                    outcome,
                    status.unwrap_or(bounce_type.to_ascii_lowercase()),
                    s(r, "diagnosticCode"),
                    id,
                ));
            }
        }
        Some("Complaint") => {
            let c = v.get("complaint").cloned().unwrap_or(Value::Null);
            let feedback = s(&c, "feedbackId").unwrap_or_else(|| ses_id.clone());
            let ftype = s(&c, "complaintFeedbackType").unwrap_or_else(|| "abuse".into());
            let outcome = if ftype.eq_ignore_ascii_case("not-spam") {
                Outcome::Ignored("feedback type not-spam".into())
            } else {
                Outcome::Complaint
            };
            for r in c
                .get("complainedRecipients")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let recipient = s(r, "emailAddress");
                let id = format!("{feedback}|{}", recipient.clone().unwrap_or_default());
                out.push(base(
                    recipient,
                    outcome.clone(),
                    ftype.clone(),
                    s(&c, "userAgent"),
                    id,
                ));
            }
        }
        _ => {}
    }
    Ok(out)
}

/// A SendGrid event batch (a JSON array): `bounce` (type `bounce` or `blocked`) and
/// `spamreport`; `dropped` and `deferred` are SendGrid's own business and skipped.
pub fn sendgrid(body: &[u8]) -> Result<Vec<ProviderEvent>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("SendGrid events: {e}"))?;
    let Some(items) = v.as_array() else {
        return Err("SendGrid events: not a JSON array".into());
    };
    let mut out = Vec::new();
    for e in items {
        let event = s(e, "event").unwrap_or_default();
        let reason = s(e, "reason");
        let status = s(e, "status")
            .and_then(|x| status_in(&x))
            .or_else(|| reason.as_deref().and_then(status_in));
        let (outcome, status) = match event.as_str() {
            "bounce" => {
                let blocked = s(e, "type").as_deref() == Some("blocked");
                match (&status, blocked) {
                    (Some(code), _) => (classify_status(code, "failed"), code.clone()),
                    (None, true) => (Outcome::Block, "blocked".into()),
                    (None, false) => (Outcome::HardBounce, "bounce".into()),
                }
            }
            "spamreport" => (Outcome::Complaint, "abuse".into()),
            _ => continue,
        };
        let id = s(e, "sg_event_id").unwrap_or_else(|| {
            format!(
                "{}|{}|{}",
                s(e, "sg_message_id").unwrap_or_default(),
                event,
                s(e, "email").unwrap_or_default()
            )
        });
        out.push(ProviderEvent {
            provider: "sendgrid".into(),
            event_id: id,
            return_paths: Vec::new(),
            message_id: s(e, "smtp-id"),
            campaign: s(e, "retain_campaign").or_else(|| s(e, "campaign")),
            recipient: lower(s(e, "email")),
            outcome,
            status,
            detail: reason,
        });
    }
    Ok(out)
}

/// The `event-data` of a Mailgun webhook: `failed` (permanent or temporary) and `complained`.
pub fn mailgun(data: &Value) -> Vec<ProviderEvent> {
    let event = s(data, "event").unwrap_or_default();
    let ds = data.get("delivery-status").cloned().unwrap_or(Value::Null);
    let text = [
        s(&ds, "enhanced-code"),
        s(&ds, "message"),
        s(&ds, "description"),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    let status = status_in(&text);
    let (outcome, status) = match event.as_str() {
        "failed" => {
            let severity = s(data, "severity").unwrap_or_default();
            match (&status, severity.as_str()) {
                // Mailgun retries temporary failures itself: a temporary 5.x.x is still soft.
                (Some(code), "temporary") => (classify_status(code, "delayed"), code.clone()),
                (Some(code), _) => (classify_status(code, "failed"), code.clone()),
                (None, "temporary") => (Outcome::SoftBounce, "temporary".into()),
                (None, _) => (Outcome::HardBounce, "permanent".into()),
            }
        }
        "complained" => (Outcome::Complaint, "abuse".into()),
        _ => return Vec::new(),
    };
    let message = data.get("message").cloned().unwrap_or(Value::Null);
    let headers = message.get("headers").cloned().unwrap_or(Value::Null);
    let vars = data.get("user-variables").cloned().unwrap_or(Value::Null);
    let envelope = data.get("envelope").cloned().unwrap_or(Value::Null);
    vec![ProviderEvent {
        provider: "mailgun".into(),
        event_id: s(data, "id").unwrap_or_else(|| {
            format!(
                "{}|{event}|{}",
                s(&headers, "message-id").unwrap_or_default(),
                s(data, "recipient").unwrap_or_default()
            )
        }),
        return_paths: s(&envelope, "sender").into_iter().collect(),
        message_id: s(&headers, "message-id"),
        campaign: s(&vars, "retain_campaign").or_else(|| s(&vars, "campaign")),
        recipient: lower(s(data, "recipient")),
        outcome,
        status,
        detail: (!text.is_empty()).then_some(text),
    }]
}

/// A Postmark webhook: `RecordType` `Bounce` (by `Type`) or `SpamComplaint`. Postmark does not
/// return the original Message-ID: events match by recipient and the campaign, taken from the
/// message's metadata (`retain_campaign`) or tag (`X-PM-Tag`).
pub fn postmark(body: &[u8]) -> Result<Vec<ProviderEvent>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("Postmark event: {e}"))?;
    let record = s(&v, "RecordType").unwrap_or_default();
    let typ = s(&v, "Type").unwrap_or_default();
    let details = s(&v, "Details");
    let code = details.as_deref().and_then(status_in);
    let (outcome, status) = match (record.as_str(), typ.as_str()) {
        ("SpamComplaint", _) | (_, "SpamComplaint") => (Outcome::Complaint, "abuse".into()),
        ("Bounce", _) => match (code, typ.as_str()) {
            (Some(c), "HardBounce" | "BadEmailAddress" | "Blocked" | "ISPBlock" | "SoftBounce") => {
                (classify_status(&c, "failed"), c)
            }
            (_, "HardBounce" | "BadEmailAddress") => (Outcome::HardBounce, typ.clone()),
            (_, "Blocked" | "ISPBlock" | "SpamNotification") => (Outcome::Block, typ.clone()),
            (_, "SoftBounce" | "Transient" | "DnsError" | "AutoResponder" | "Unknown") => {
                if typ == "AutoResponder" {
                    (Outcome::Ignored("auto-responder".into()), typ.clone())
                } else {
                    (Outcome::SoftBounce, typ.clone())
                }
            }
            _ => (
                Outcome::Ignored(format!("Postmark type {typ}")),
                typ.clone(),
            ),
        },
        _ => return Ok(Vec::new()),
    };
    let meta = v.get("Metadata").cloned().unwrap_or(Value::Null);
    Ok(vec![ProviderEvent {
        provider: "postmark".into(),
        event_id: s(&v, "ID").unwrap_or_else(|| {
            format!(
                "{}|{record}|{}",
                s(&v, "MessageID").unwrap_or_default(),
                s(&v, "Email").unwrap_or_default()
            )
        }),
        return_paths: Vec::new(),
        message_id: None,
        campaign: s(&meta, "retain_campaign").or_else(|| s(&v, "Tag")),
        recipient: lower(s(&v, "Email")),
        outcome,
        status,
        detail: details.or_else(|| s(&v, "Description")),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_codes_in_text() {
        assert_eq!(
            status_in("550 5.1.1 user unknown").as_deref(),
            Some("5.1.1")
        );
        assert_eq!(
            status_in("smtp; 552 (5.2.2) full").as_deref(),
            Some("5.2.2")
        );
        assert_eq!(status_in("version 1.2.3 of 550"), None);
    }

    #[test]
    fn ses_bounces_and_complaints() {
        let m = json!({
            "notificationType": "Bounce",
            "bounce": {"bounceType": "Permanent", "feedbackId": "fb1",
                "bouncedRecipients": [
                    {"emailAddress": "A@x.example", "status": "5.1.1", "diagnosticCode": "smtp; 550 5.1.1"},
                    {"emailAddress": "b@x.example", "status": "5.7.1"},
                    {"emailAddress": "c@x.example", "status": "5.2.2"}]},
            "mail": {"messageId": "ses-1", "source": "bounces+1-ab@b.example",
                "commonHeaders": {"messageId": "<m1@shop.example>"},
                "headers": [{"name": "X-Retain-Campaign", "value": "p1-x-1"}]}
        });
        let e = ses(&m.to_string()).expect("parses");
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].outcome, Outcome::HardBounce);
        assert_eq!(e[0].recipient.as_deref(), Some("a@x.example"));
        assert_eq!(e[0].message_id.as_deref(), Some("<m1@shop.example>"));
        assert_eq!(e[0].campaign.as_deref(), Some("p1-x-1"));
        assert_eq!(
            e[0].return_paths,
            vec!["bounces+1-ab@b.example".to_string()]
        );
        assert_eq!(e[1].outcome, Outcome::Block);
        assert_eq!(e[2].outcome, Outcome::SoftBounce);
        assert_ne!(e[0].event_id, e[1].event_id);
        let c = json!({"notificationType": "Complaint",
            "complaint": {"feedbackId": "fb2", "complainedRecipients": [{"emailAddress": "a@x.example"}]},
            "mail": {"messageId": "ses-2"}});
        let e = ses(&c.to_string()).expect("parses");
        assert_eq!(e[0].outcome, Outcome::Complaint);
        assert!(ses("{\"notificationType\":\"Delivery\"}")
            .expect("ok")
            .is_empty());
        assert!(ses("not json").is_err());
    }

    #[test]
    fn sendgrid_events() {
        let body = json!([
            {"event": "bounce", "type": "bounce", "status": "5.1.1", "email": "a@x.example",
             "smtp-id": "<m1@shop.example>", "sg_event_id": "e1", "reason": "550 no such user"},
            {"event": "bounce", "type": "blocked", "status": "5.7.1", "email": "b@x.example", "sg_event_id": "e2"},
            {"event": "spamreport", "email": "c@x.example", "sg_event_id": "e3"},
            {"event": "delivered", "email": "d@x.example", "sg_event_id": "e4"},
            {"event": "deferred", "email": "d@x.example", "sg_event_id": "e5"}
        ]);
        let e = sendgrid(body.to_string().as_bytes()).expect("parses");
        let outcomes: Vec<_> = e.iter().map(|x| x.outcome.clone()).collect();
        assert_eq!(
            outcomes,
            vec![Outcome::HardBounce, Outcome::Block, Outcome::Complaint]
        );
        assert_eq!(e[0].message_id.as_deref(), Some("<m1@shop.example>"));
        assert!(sendgrid(b"{}").is_err());
    }

    #[test]
    fn mailgun_events() {
        let d = json!({"event": "failed", "severity": "permanent", "id": "ev1",
            "recipient": "a@x.example",
            "delivery-status": {"code": 550, "message": "5.1.1 The email account does not exist"},
            "message": {"headers": {"message-id": "m1@shop.example"}},
            "envelope": {"sender": "bounces+1-ab@b.example"}});
        let e = mailgun(&d);
        assert_eq!(e[0].outcome, Outcome::HardBounce);
        assert_eq!(e[0].status, "5.1.1");
        assert_eq!(e[0].message_id.as_deref(), Some("m1@shop.example"));
        let t = json!({"event": "failed", "severity": "temporary", "id": "ev2",
            "recipient": "a@x.example", "delivery-status": {"message": "mailbox busy"}});
        assert_eq!(mailgun(&t)[0].outcome, Outcome::SoftBounce);
        let c = json!({"event": "complained", "id": "ev3", "recipient": "a@x.example"});
        assert_eq!(mailgun(&c)[0].outcome, Outcome::Complaint);
        assert!(mailgun(&json!({"event": "opened"})).is_empty());
    }

    #[test]
    fn postmark_events() {
        let b = json!({"RecordType": "Bounce", "ID": 42, "Type": "HardBounce",
            "Email": "A@x.example", "Tag": "p1-x-1", "Details": "smtp;550 5.1.1 unknown"});
        let e = postmark(b.to_string().as_bytes()).expect("parses");
        assert_eq!(e[0].outcome, Outcome::HardBounce);
        assert_eq!(e[0].event_id, "42");
        assert_eq!(e[0].campaign.as_deref(), Some("p1-x-1"));
        assert_eq!(e[0].recipient.as_deref(), Some("a@x.example"));
        let s = json!({"RecordType": "SpamComplaint", "ID": 43, "Type": "SpamComplaint",
            "Email": "a@x.example", "Metadata": {"retain_campaign": "p1-x-1"}});
        let e = postmark(s.to_string().as_bytes()).expect("parses");
        assert_eq!(e[0].outcome, Outcome::Complaint);
        let blk =
            json!({"RecordType": "Bounce", "ID": 44, "Type": "Blocked", "Email": "a@x.example"});
        assert_eq!(
            postmark(blk.to_string().as_bytes()).expect("p")[0].outcome,
            Outcome::Block
        );
        assert!(postmark(br#"{"RecordType":"Delivery"}"#)
            .expect("ok")
            .is_empty());
    }
}
