//! The provider webhooks at the HTTP level, with payloads signed in the test by the fixture keys
//! of `tests/data/webhooks` (see its README): a genuine event is tied to its send, recorded
//! once and suppresses the address; a forged, tampered, stale, replayed or unsigned one is
//! refused (401/403) and records nothing; an endpoint without settings is 404.

mod common;

use axum::body::Body;
use axum::http::Request;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use common::*;
use hmac::{Hmac, Mac};
use p256::ecdsa::signature::Signer;
use p256::pkcs8::DecodePrivateKey;
use retain_core::config::{Config, WebhookSecrets};
use retain_core::SuppressionReason;
use retain_store::Store;
use retain_web::webhooks::{verify::SnsMessage, Webhooks};
use serde_json::json;
use sha2::Sha256;

fn data(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/webhooks")
        .join(name);
    std::fs::read_to_string(&p).expect("fixture")
}

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:retain-bounces";
const CERT_URL: &str = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem";

fn secrets() -> WebhookSecrets {
    WebhookSecrets {
        ses_cert: Some(data("sns-signing-cert.pem")),
        ses_topic_arn: Some(TOPIC.into()),
        sendgrid_public_key: Some(data("sendgrid-public-key.b64")),
        mailgun_signing_key: Some("mg-signing-key".into()),
        postmark_user: Some("pm".into()),
        postmark_password: Some("pm-pass".into()),
        ..Default::default()
    }
}

async fn app(emails: &[&str]) -> (App, Vec<i64>) {
    let (store, dir) = store().await;
    let ids = send_campaign(&store, "c1", emails, 1_000).await;
    let mut opts = options(Config::default(), None);
    opts.webhooks = Webhooks::new(&secrets(), None).expect("webhooks");
    (app_with_options(store, dir, opts).await, ids)
}

async fn events(store: &Store) -> usize {
    store
        .deliverability_events_of("c1")
        .await
        .expect("events")
        .len()
}

async fn suppressed(store: &Store, email: &str) -> Option<SuppressionReason> {
    store.suppression_of(email).await.expect("suppression")
}

fn post(uri: &str, body: &[u8], headers: &[(&str, &str)]) -> Request<Body> {
    let mut b = Request::post(uri).header("content-type", "application/json");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::from(body.to_vec())).expect("request")
}

// ---- SNS / SES

fn sns_notification(message: &str, version: &str) -> SnsMessage {
    SnsMessage {
        kind: "Notification".into(),
        message_id: "b3f5d2a4-0000-4000-8000-000000000001".into(),
        token: None,
        topic_arn: TOPIC.into(),
        subject: None,
        message: message.into(),
        timestamp: "2026-11-27T12:00:00.000Z".into(),
        signature_version: version.into(),
        signature: String::new(),
        signing_cert_url: CERT_URL.into(),
        subscribe_url: None,
    }
}

fn sign_sns(m: &mut SnsMessage, key_pem: &str) {
    use rsa::pkcs1v15::SigningKey;
    use rsa::signature::{SignatureEncoding, Signer as _};
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(key_pem).expect("rsa key");
    let text = retain_web::webhooks::verify::sns_string_to_sign(m).expect("canonical");
    let sig = if m.signature_version == "1" {
        SigningKey::<sha1::Sha1>::new(key)
            .sign(text.as_bytes())
            .to_vec()
    } else {
        SigningKey::<Sha256>::new(key)
            .sign(text.as_bytes())
            .to_vec()
    };
    m.signature = B64.encode(sig);
}

fn sns_json(m: &SnsMessage) -> Vec<u8> {
    let mut v = json!({
        "Type": m.kind, "MessageId": m.message_id, "TopicArn": m.topic_arn,
        "Message": m.message, "Timestamp": m.timestamp,
        "SignatureVersion": m.signature_version, "Signature": m.signature,
        "SigningCertURL": m.signing_cert_url,
    });
    if let Some(u) = &m.subscribe_url {
        v["SubscribeURL"] = json!(u);
    }
    if let Some(t) = &m.token {
        v["Token"] = json!(t);
    }
    v.to_string().into_bytes()
}

fn ses_bounce(recipient: &str, message_id: &str, status: &str, feedback: &str) -> String {
    json!({
        "notificationType": "Bounce",
        "bounce": {"bounceType": "Permanent", "feedbackId": feedback,
            "bouncedRecipients": [{"emailAddress": recipient, "status": status,
                "diagnosticCode": format!("smtp; 550 {status}")}]},
        "mail": {"messageId": "ses-0001", "source": "shop@shop.example",
            "commonHeaders": {"messageId": message_id}}
    })
    .to_string()
}

#[tokio::test]
async fn ses_notifications_are_verified_with_the_signing_certificate() {
    let (app, _) = app(&["ann@x.example", "bob@x.example", "cat@x.example"]).await;
    let key = data("sns-signing-key.pem");
    let forger = data("other-key.pem");

    // Forged variants first: nothing may be recorded.
    let msg = ses_bounce("ann@x.example", "<c1-0@shop.example>", "5.1.1", "fb-1");
    let mut other = sns_notification(&msg, "1");
    sign_sns(&mut other, &forger);
    let mut tampered = sns_notification(&msg, "2");
    sign_sns(&mut tampered, &key);
    tampered.message = ses_bounce("bob@x.example", "<c1-1@shop.example>", "5.1.1", "fb-1");
    let mut evil_url = sns_notification(&msg, "1");
    evil_url.signing_cert_url = "https://sns.us-east-1.amazonaws.com.evil.example/c.pem".into();
    sign_sns(&mut evil_url, &key);
    let mut http_url = sns_notification(&msg, "1");
    http_url.signing_cert_url = "http://sns.us-east-1.amazonaws.com/c.pem".into();
    sign_sns(&mut http_url, &key);
    let mut wrong_topic = sns_notification(&msg, "1");
    wrong_topic.topic_arn = "arn:aws:sns:us-east-1:999999999999:other".into();
    sign_sns(&mut wrong_topic, &key);
    let mut unknown_version = sns_notification(&msg, "1");
    sign_sns(&mut unknown_version, &key);
    unknown_version.signature_version = "3".into();
    for (name, m) in [
        ("another key", &other),
        ("tampered message", &tampered),
        ("certificate elsewhere", &evil_url),
        ("certificate over http", &http_url),
        ("another topic", &wrong_topic),
        ("unknown signature version", &unknown_version),
    ] {
        let (r, body) = request(&app.router, post("/webhooks/ses", &sns_json(m), &[])).await;
        assert_eq!(r.status(), 403, "{name}: {body}");
    }
    let unsigned = json!({"Type": "Notification", "MessageId": "x", "TopicArn": TOPIC,
        "Message": msg, "Timestamp": "t", "SignatureVersion": "1", "SigningCertURL": CERT_URL});
    let (r, _) = request(
        &app.router,
        post("/webhooks/ses", unsigned.to_string().as_bytes(), &[]),
    )
    .await;
    assert_eq!(r.status(), 401);
    assert_eq!(events(&app.store).await, 0);
    assert_eq!(suppressed(&app.store, "ann@x.example").await, None);

    // Genuine, SignatureVersion 1 and 2; the second delivery of the same event is recorded once.
    let mut v1 = sns_notification(&msg, "1");
    sign_sns(&mut v1, &key);
    for _ in 0..2 {
        let (r, body) = request(&app.router, post("/webhooks/ses", &sns_json(&v1), &[])).await;
        assert_eq!(r.status(), 200, "{body}");
    }
    assert_eq!(events(&app.store).await, 1);
    assert_eq!(
        suppressed(&app.store, "ann@x.example").await,
        Some(SuppressionReason::HardBounce)
    );
    // A 5.7.1 block is recorded and counts, but does not suppress.
    let block = ses_bounce("bob@x.example", "<c1-1@shop.example>", "5.7.1", "fb-2");
    let mut v2 = sns_notification(&block, "2");
    sign_sns(&mut v2, &key);
    let (r, body) = request(&app.router, post("/webhooks/ses", &sns_json(&v2), &[])).await;
    assert_eq!(r.status(), 200, "{body}");
    assert_eq!(events(&app.store).await, 2);
    assert_eq!(suppressed(&app.store, "bob@x.example").await, None);
    let d = app
        .store
        .campaign_deliverability("c1")
        .await
        .expect("rates");
    assert_eq!((d.total.hard_bounces, d.total.blocks), (1, 1));

    // A subscription confirmation is verified, noted, and records nothing.
    let mut sub = sns_notification("You have chosen to subscribe", "1");
    sub.kind = "SubscriptionConfirmation".into();
    sub.token = Some("tok".into());
    sub.subscribe_url =
        Some("https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=tok".into());
    sign_sns(&mut sub, &key);
    let (r, _) = request(&app.router, post("/webhooks/ses", &sns_json(&sub), &[])).await;
    assert_eq!(r.status(), 200);
    sub.subscribe_url = Some("https://evil.example/confirm".into());
    sign_sns(&mut sub, &key);
    let (r, _) = request(&app.router, post("/webhooks/ses", &sns_json(&sub), &[])).await;
    assert_eq!(r.status(), 403);
    assert_eq!(events(&app.store).await, 2);
}

// ---- SendGrid

fn sendgrid_sign(ts: &str, body: &[u8]) -> String {
    let key = p256::ecdsa::SigningKey::from_pkcs8_pem(&data("sendgrid-p256-key.pem")).expect("key");
    let mut signed = ts.as_bytes().to_vec();
    signed.extend_from_slice(body);
    let sig: p256::ecdsa::Signature = key.sign(&signed);
    B64.encode(sig.to_der().as_bytes())
}

#[tokio::test]
async fn sendgrid_events_are_verified_with_the_public_key() {
    let (app, _) = app(&["ann@x.example", "bob@x.example"]).await;
    let body = json!([
        {"event": "spamreport", "email": "ann@x.example", "smtp-id": "<c1-0@shop.example>",
         "sg_event_id": "sg-1", "timestamp": 1_700_000_000},
        {"event": "delivered", "email": "bob@x.example", "sg_event_id": "sg-2"}
    ])
    .to_string();
    let ts = "1700000000";
    let sig = sendgrid_sign(ts, body.as_bytes());
    let h = |ts: &'static str, sig: &str| -> Vec<(&'static str, String)> {
        vec![
            ("x-twilio-email-event-webhook-timestamp", ts.to_string()),
            ("x-twilio-email-event-webhook-signature", sig.to_string()),
        ]
    };
    let send = |hs: Vec<(&'static str, String)>, body: String| {
        let hs: Vec<(&str, String)> = hs;
        let pairs: Vec<(&str, &str)> = hs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        post("/webhooks/sendgrid", body.as_bytes(), &pairs)
    };
    // Tampered body, another timestamp, a signature of something else, none at all.
    let tampered = body.replace("ann@", "bob@");
    for (name, req, code) in [
        ("tampered", send(h(ts, &sig), tampered), 403),
        (
            "other timestamp",
            send(h("1700000001", &sig), body.clone()),
            403,
        ),
        (
            "other signature",
            send(h(ts, &sendgrid_sign(ts, b"[]")), body.clone()),
            403,
        ),
        ("garbage", send(h(ts, "bm90IGEgc2ln"), body.clone()), 403),
        (
            "unsigned",
            post("/webhooks/sendgrid", body.as_bytes(), &[]),
            401,
        ),
    ] {
        let (r, text) = request(&app.router, req).await;
        assert_eq!(r.status(), code, "{name}: {text}");
    }
    assert_eq!(events(&app.store).await, 0);
    for _ in 0..2 {
        let (r, text) = request(&app.router, send(h(ts, &sig), body.clone())).await;
        assert_eq!(r.status(), 200, "{text}");
    }
    assert_eq!(events(&app.store).await, 1);
    assert_eq!(
        suppressed(&app.store, "ann@x.example").await,
        Some(SuppressionReason::Complaint)
    );
    assert_eq!(suppressed(&app.store, "bob@x.example").await, None);
}

// ---- Mailgun

fn mailgun_body(ts: i64, token: &str, key: &[u8], event_id: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("key");
    mac.update(format!("{ts}{token}").as_bytes());
    let sig: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    json!({
        "signature": {"timestamp": ts.to_string(), "token": token, "signature": sig},
        "event-data": {"event": "failed", "severity": "permanent", "id": event_id,
            "recipient": "bob@x.example",
            "delivery-status": {"code": 550, "message": "5.1.1 mailbox does not exist"},
            "message": {"headers": {"message-id": "c1-1@shop.example"}}}
    })
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn mailgun_events_need_a_fresh_unreplayed_signature() {
    let (app, _) = app(&["ann@x.example", "bob@x.example"]).await;
    let now = 1_800_000_000;
    app.state.clock.set(now);
    let key = b"mg-signing-key";
    for (name, body, code) in [
        (
            "another key",
            mailgun_body(now, "t1", b"other-key", "e1"),
            403,
        ),
        ("stale", mailgun_body(now - 3_600, "t2", key, "e1"), 403),
        (
            "from the future",
            mailgun_body(now + 3_600, "t3", key, "e1"),
            403,
        ),
        (
            "unsigned",
            br#"{"event-data":{"event":"failed","recipient":"bob@x.example"}}"#.to_vec(),
            401,
        ),
    ] {
        let (r, text) = request(&app.router, post("/webhooks/mailgun", &body, &[])).await;
        assert_eq!(r.status(), code, "{name}: {text}");
    }
    assert_eq!(events(&app.store).await, 0);
    let good = mailgun_body(now - 10, "t4", key, "e1");
    let (r, text) = request(&app.router, post("/webhooks/mailgun", &good, &[])).await;
    assert_eq!(r.status(), 200, "{text}");
    assert_eq!(
        suppressed(&app.store, "bob@x.example").await,
        Some(SuppressionReason::HardBounce)
    );
    // The same request again is a replay.
    let (r, _) = request(&app.router, post("/webhooks/mailgun", &good, &[])).await;
    assert_eq!(r.status(), 403);
    // The same event under a new token (a provider retry) is recorded once.
    let retry = mailgun_body(now - 5, "t5", key, "e1");
    let (r, _) = request(&app.router, post("/webhooks/mailgun", &retry, &[])).await;
    assert_eq!(r.status(), 200);
    assert_eq!(events(&app.store).await, 1);
}

// ---- Postmark

#[tokio::test]
async fn postmark_events_need_the_configured_credentials() {
    let (app, _) = app(&["ann@x.example"]).await;
    let body = json!({"RecordType": "Bounce", "ID": 4_242, "Type": "HardBounce",
        "Email": "ann@x.example", "Tag": "c1", "Details": "smtp;550 5.1.1 unknown user"})
    .to_string();
    let auth = |u: &str, p: &str| format!("Basic {}", B64.encode(format!("{u}:{p}")));
    let wrong = auth("pm", "guess");
    let (r, _) = request(
        &app.router,
        post(
            "/webhooks/postmark",
            body.as_bytes(),
            &[("authorization", &wrong)],
        ),
    )
    .await;
    assert_eq!(r.status(), 403);
    let (r, _) = request(
        &app.router,
        post("/webhooks/postmark", body.as_bytes(), &[]),
    )
    .await;
    assert_eq!(r.status(), 401);
    assert_eq!(events(&app.store).await, 0);
    let right = auth("pm", "pm-pass");
    for _ in 0..2 {
        let (r, text) = request(
            &app.router,
            post(
                "/webhooks/postmark",
                body.as_bytes(),
                &[("authorization", &right)],
            ),
        )
        .await;
        assert_eq!(r.status(), 200, "{text}");
    }
    assert_eq!(events(&app.store).await, 1);
    assert_eq!(
        suppressed(&app.store, "ann@x.example").await,
        Some(SuppressionReason::HardBounce)
    );
}

#[tokio::test]
async fn endpoints_without_settings_are_not_found() {
    let (store, dir) = store().await;
    let app = app_with(store, dir, Config::default(), None).await;
    for p in [
        "/webhooks/ses",
        "/webhooks/sendgrid",
        "/webhooks/mailgun",
        "/webhooks/postmark",
    ] {
        let (r, _) = request(&app.router, post(p, b"{}", &[])).await;
        assert_eq!(r.status(), 404, "{p}");
    }
}

#[test]
fn bad_keys_are_refused_at_startup_without_echoing_them() {
    let e = Webhooks::new(
        &WebhookSecrets {
            sendgrid_public_key: Some("not-a-key-SECRETVALUE".into()),
            ..Default::default()
        },
        None,
    )
    .expect_err("bad key");
    assert!(
        e.contains("RETAIN_WEBHOOK_SENDGRID_PUBLIC_KEY") && !e.contains("SECRETVALUE"),
        "{e}"
    );
}
