//! Provider webhooks of `retain serve`: `POST /webhooks/ses` (Amazon SES through SNS),
//! `/webhooks/sendgrid`, `/webhooks/mailgun`, `/webhooks/postmark`. Each request is verified
//! first ([`verify`]: signatures, credentials, freshness, replays) — a missing one is 401, a
//! forged one 403, and nothing is recorded — then its events are read ([`events`]) and acted on
//! by the mailer's [`Ingest::provider_event`], the same code `retain bounces ingest` uses: tied
//! to their sends, recorded once, suppressing by the same rules, the guardrail run after. An
//! endpoint whose key or credentials are not configured (environment, see
//! [`retain_core::config::WebhookSecrets`]) answers 404.

pub mod events;
pub mod fetch;
pub mod verify;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use retain_core::config::WebhookSecrets;
use retain_mailer::{GuardrailLimits, Ingest, IngestSettings, ProviderEvent};
use rsa::RsaPublicKey;
use serde::Serialize;

use crate::server::AppState;
use verify::Rejected;

/// Fetches a URL over HTTPS and returns its body as text (the SNS signing certificate, the
/// subscription confirmation). Only called for URLs [`verify::sns_url_allowed`] accepts.
pub type FetchFn = Arc<
    dyn Fn(String) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send>> + Send + Sync,
>;

/// The verified settings of each provider (`None`: its endpoint answers 404), the SNS
/// certificates fetched so far and the Mailgun tokens seen recently.
pub struct Webhooks {
    ses: Option<Ses>,
    sendgrid: Option<p256::ecdsa::VerifyingKey>,
    mailgun: Option<Vec<u8>>,
    postmark: Option<(String, String)>,
    fetch: Option<FetchFn>,
    certs: Mutex<HashMap<String, RsaPublicKey>>,
    mailgun_tokens: Mutex<HashMap<String, i64>>,
}

struct Ses {
    pinned: Option<RsaPublicKey>,
    topic_arn: Option<String>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("ses", &self.ses.is_some())
            .field("sendgrid", &self.sendgrid.is_some())
            .field("mailgun", &self.mailgun.is_some())
            .field("postmark", &self.postmark.is_some())
            .finish()
    }
}

impl Default for Webhooks {
    fn default() -> Self {
        Self {
            ses: None,
            sendgrid: None,
            mailgun: None,
            postmark: None,
            fetch: None,
            certs: Mutex::new(HashMap::new()),
            mailgun_tokens: Mutex::new(HashMap::new()),
        }
    }
}

impl Webhooks {
    /// From the environment's secrets; a key that cannot be read is an error naming its
    /// variable (never its value). `fetch` fetches SNS certificates not pinned.
    pub fn new(secrets: &WebhookSecrets, fetch: Option<FetchFn>) -> Result<Self, String> {
        let pinned = match &secrets.ses_cert {
            None => None,
            Some(v) => {
                let pem = if v.trim_start().starts_with("-----BEGIN") {
                    v.clone()
                } else {
                    std::fs::read_to_string(v.trim()).map_err(|e| {
                        format!("RETAIN_WEBHOOK_SES_CERT: cannot read {}: {e}", v.trim())
                    })?
                };
                Some(
                    verify::sns_certificate_key(&pem)
                        .map_err(|e| format!("RETAIN_WEBHOOK_SES_CERT: {e}"))?,
                )
            }
        };
        let ses = (pinned.is_some() || secrets.ses_enabled).then(|| Ses {
            pinned,
            topic_arn: secrets.ses_topic_arn.clone(),
        });
        let sendgrid = secrets
            .sendgrid_public_key
            .as_deref()
            .map(verify::sendgrid_key)
            .transpose()
            .map_err(|e| format!("RETAIN_WEBHOOK_SENDGRID_PUBLIC_KEY: {e}"))?;
        let postmark =
            match (&secrets.postmark_user, &secrets.postmark_password) {
                (Some(u), Some(p)) => Some((u.clone(), p.clone())),
                (None, None) => None,
                _ => return Err(
                    "RETAIN_WEBHOOK_POSTMARK_USER and RETAIN_WEBHOOK_POSTMARK_PASSWORD go together"
                        .into(),
                ),
            };
        Ok(Self {
            ses,
            sendgrid,
            mailgun: secrets
                .mailgun_signing_key
                .as_ref()
                .map(|k| k.trim().as_bytes().to_vec()),
            postmark,
            fetch,
            ..Self::default()
        })
    }

    /// The endpoints that are configured, for the startup message.
    pub fn enabled(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.ses.is_some() {
            v.push("/webhooks/ses");
        }
        if self.sendgrid.is_some() {
            v.push("/webhooks/sendgrid");
        }
        if self.mailgun.is_some() {
            v.push("/webhooks/mailgun");
        }
        if self.postmark.is_some() {
            v.push("/webhooks/postmark");
        }
        v
    }

    async fn sns_key(&self, url: &str) -> Result<RsaPublicKey, Rejected> {
        if !verify::sns_url_allowed(url) {
            return Err(Rejected::Forged(format!(
                "SigningCertURL '{url}' is not an https URL on sns.<region>.amazonaws.com"
            )));
        }
        if let Some(k) = self.ses.as_ref().and_then(|s| s.pinned.clone()) {
            return Ok(k);
        }
        if let Some(k) = self.certs.lock().ok().and_then(|c| c.get(url).cloned()) {
            return Ok(k);
        }
        let Some(fetch) = &self.fetch else {
            return Err(Rejected::Forged(
                "no pinned SNS certificate (RETAIN_WEBHOOK_SES_CERT) and fetching is off".into(),
            ));
        };
        let pem = fetch(url.to_string())
            .await
            .map_err(|e| Rejected::Forged(format!("cannot fetch the signing certificate: {e}")))?;
        let key = verify::sns_certificate_key(&pem)?;
        if let Ok(mut c) = self.certs.lock() {
            if c.len() >= 64 {
                c.clear();
            }
            c.insert(url.to_string(), key.clone());
        }
        Ok(key)
    }
}

/// What a webhook request did.
#[derive(Debug, Default, Serialize)]
pub struct Outcome {
    pub events: usize,
    pub recorded: usize,
    pub duplicates: usize,
    pub unmatched: usize,
    pub ignored: usize,
}

fn rejected(r: Rejected) -> Response {
    let code = match r {
        Rejected::Missing(_) => StatusCode::UNAUTHORIZED,
        Rejected::Forged(_) => StatusCode::FORBIDDEN,
        Rejected::Bad(_) => StatusCode::BAD_REQUEST,
    };
    (code, format!("{r}\n")).into_response()
}

fn not_configured(provider: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        format!("the {provider} webhook is not configured\n"),
    )
        .into_response()
}

/// Acts on verified events through the mailer's ingest (the one implementation of the
/// suppression rules), then runs the guardrail over the campaigns they touched.
async fn record(st: &AppState, events: Vec<ProviderEvent>) -> Response {
    let s = &st.config.sending;
    let mut ingest = Ingest::new(
        &st.store,
        IngestSettings {
            secret: st.secret.clone(),
            soft_bounce_limit: s.soft_bounce_limit,
            soft_bounce_days: s.soft_bounce_days,
            limits: GuardrailLimits {
                complaint_rate: s.complaint_rate_limit,
                hard_bounce_rate: s.hard_bounce_rate_limit,
                min_delivered: i64::from(s.guardrail_min_delivered),
            },
        },
    );
    let mut out = Outcome {
        events: events.len(),
        ..Outcome::default()
    };
    for e in &events {
        match ingest.provider_event(e).await {
            Ok(r) if r.outcome == "ignored" => out.ignored += 1,
            Ok(r) if r.send_id.is_none() => out.unmatched += 1,
            Ok(r) if r.action.starts_with("already recorded") => out.duplicates += 1,
            Ok(_) => out.recorded += 1,
            // The provider retries on a 5xx; what was recorded is recorded once.
            Err(e) => {
                return (StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}\n")).into_response()
            }
        }
    }
    if let Err(e) = ingest.finish().await {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}\n")).into_response();
    }
    axum::Json(out).into_response()
}

/// `POST /webhooks/ses`: an SNS message (Notification, SubscriptionConfirmation,
/// UnsubscribeConfirmation), verified with the signing certificate.
pub async fn ses(State(st): State<AppState>, body: Bytes) -> Response {
    let Some(cfg) = &st.webhooks.ses else {
        return not_configured("SES");
    };
    let msg: verify::SnsMessage = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => {
            // Without the signature fields it cannot be verified: unauthenticated.
            return rejected(if e.to_string().contains("missing field `Signature") {
                Rejected::Missing("the SNS signature")
            } else {
                Rejected::Bad(format!("not an SNS message: {e}"))
            });
        }
    };
    if let Some(arn) = &cfg.topic_arn {
        if &msg.topic_arn != arn {
            return rejected(Rejected::Forged(format!(
                "topic '{}' is not the configured one",
                msg.topic_arn
            )));
        }
    }
    let key = match st.webhooks.sns_key(&msg.signing_cert_url).await {
        Ok(k) => k,
        Err(r) => return rejected(r),
    };
    if let Err(r) = verify::verify_sns(&msg, &key) {
        return rejected(r);
    }
    match msg.kind.as_str() {
        "SubscriptionConfirmation" => {
            let url = msg.subscribe_url.clone().unwrap_or_default();
            if !verify::sns_url_allowed(&url) {
                return rejected(Rejected::Forged(format!(
                    "SubscribeURL '{url}' is not on sns.<region>.amazonaws.com"
                )));
            }
            match &st.webhooks.fetch {
                Some(fetch) => match fetch(url.clone()).await {
                    Ok(_) => {
                        eprintln!(
                            "retain serve: confirmed the SNS subscription to {}",
                            msg.topic_arn
                        );
                        (StatusCode::OK, "subscription confirmed\n").into_response()
                    }
                    Err(e) => {
                        eprintln!(
                            "retain serve: cannot confirm the SNS subscription to {} ({e}); open {url}",
                            msg.topic_arn
                        );
                        (
                            StatusCode::BAD_GATEWAY,
                            format!("cannot confirm the subscription: {e}\n"),
                        )
                            .into_response()
                    }
                },
                None => {
                    eprintln!(
                        "retain serve: to confirm the SNS subscription to {}, open {url}",
                        msg.topic_arn
                    );
                    (
                        StatusCode::OK,
                        "subscription noted; confirm it by its SubscribeURL\n",
                    )
                        .into_response()
                }
            }
        }
        "UnsubscribeConfirmation" => (StatusCode::OK, "ok\n").into_response(),
        _ => match events::ses(&msg.message) {
            Ok(evs) => record(&st, evs).await,
            Err(e) => rejected(Rejected::Bad(e)),
        },
    }
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// `POST /webhooks/sendgrid`: a batch of events, signed (ECDSA P-256) over timestamp + body.
pub async fn sendgrid(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(key) = &st.webhooks.sendgrid else {
        return not_configured("SendGrid");
    };
    if let Err(r) = verify::verify_sendgrid(
        key,
        header_str(&headers, "x-twilio-email-event-webhook-timestamp"),
        header_str(&headers, "x-twilio-email-event-webhook-signature"),
        &body,
    ) {
        return rejected(r);
    }
    match events::sendgrid(&body) {
        Ok(evs) => record(&st, evs).await,
        Err(e) => rejected(Rejected::Bad(e)),
    }
}

/// `POST /webhooks/mailgun`: one event with its HMAC signature; stale timestamps and replayed
/// tokens are refused.
pub async fn mailgun(State(st): State<AppState>, body: Bytes) -> Response {
    let Some(key) = &st.webhooks.mailgun else {
        return not_configured("Mailgun");
    };
    let v: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return rejected(Rejected::Bad(format!("not JSON: {e}"))),
    };
    let sig = v.get("signature");
    let field = |k: &str| {
        sig.and_then(|s| s.get(k)).and_then(|x| match x {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    let (Some(ts), Some(token), Some(signature)) =
        (field("timestamp"), field("token"), field("signature"))
    else {
        return rejected(Rejected::Missing("the Mailgun signature"));
    };
    let now = st.clock.now();
    if let Err(r) = verify::verify_mailgun(key, &ts, &token, &signature, now) {
        return rejected(r);
    }
    let seen = st
        .webhooks
        .mailgun_tokens
        .lock()
        .map(|t| t.contains_key(&token))
        .unwrap_or(false);
    if seen {
        return rejected(Rejected::Forged("replayed Mailgun token".into()));
    }
    let evs = events::mailgun(v.get("event-data").unwrap_or(&serde_json::Value::Null));
    let response = record(&st, evs).await;
    if response.status().is_success() {
        // Remembered for as long as the timestamp is fresh: older ones are refused anyway.
        if let Ok(mut t) = st.webhooks.mailgun_tokens.lock() {
            t.retain(|_, at| now - *at <= 2 * verify::MAILGUN_MAX_AGE_S);
            t.insert(token, now);
        }
    }
    response
}

/// `POST /webhooks/postmark`: Postmark does not sign; the request must carry the basic-auth
/// credentials configured in its webhook URL.
pub async fn postmark(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some((user, password)) = &st.webhooks.postmark else {
        return not_configured("Postmark");
    };
    if let Err(r) = verify::verify_basic(
        header_str(&headers, header::AUTHORIZATION.as_str()),
        user,
        password,
    ) {
        let mut resp = rejected(r);
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Basic realm=\"retain webhooks\""),
        );
        return resp;
    }
    match events::postmark(&body) {
        Ok(evs) => record(&st, evs).await,
        Err(e) => rejected(Rejected::Bad(e)),
    }
}
