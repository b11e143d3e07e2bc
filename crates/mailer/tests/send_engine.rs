//! The send engine against the stub transport and the in-process SMTP server with injected
//! faults: exactly-once delivery, retries, hard bounces, send-time suppression, clean stops,
//! the lease, unconfirmed rows and the MIME/headers of what arrives.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use retain_core::tracking::{Action, Token};
use retain_core::{Customer, SuppressionReason};
use retain_mailer::testkit::{Fault, SmtpServer};
use retain_mailer::transport::{SmtpSettings, SmtpTransport, StubReply, StubTransport};
use retain_mailer::{
    queue_campaign, send_campaign, CampaignInfo, Composer, Identity, MailerError, Member, Offer,
    Progress, Recipient, SendOptions, Shared, StopReason, TemplateSet, TransportError,
};
use retain_store::{CampaignSendState, ConsentCheck, SendState, Store};

mod common;
use common::decode_parts;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

struct Fixture {
    store: Store,
    dir: tempfile::TempDir,
    composer: Arc<Composer>,
    recipients: Arc<HashMap<String, Recipient>>,
    members: Vec<Member>,
}

fn templates(html: &str) -> TemplateSet {
    let sources = vec![
        (
            "base.html".to_string(),
            "<html><head><title>{{ subject }}</title><style>.f{color:#888}</style></head><body>{% block body %}{% endblock %}<p class=\"f\">{{ company.name }} · {{ company.address }} · <a href=\"{{ urls.unsubscribe }}\">Unsubscribe</a></p><img src=\"{{ urls.open_pixel }}\" alt=\"\" width=\"1\" height=\"1\"></body></html>".to_string(),
        ),
        ("win_back.html".to_string(), html.to_string()),
        (
            "win_back.txt".to_string(),
            "Hi {{ customer.first_name | default(value='there') }},\nUse {{ offer.code }}.\nUnsubscribe: {{ urls.unsubscribe }}\n".to_string(),
        ),
        (
            "win_back.subject".to_string(),
            "{{ customer.first_name | default(value='Hello') }}, we miss you".to_string(),
        ),
    ];
    TemplateSet::from_sources("win_back", &sources, "https://t.example.com", SECRET)
        .expect("templates compile")
}

const HTML: &str = "{% extends \"base.html\" %}{% block body %}<h1>Hi {{ customer.first_name | default(value='there') }}</h1><p>It has been {{ stats.recency_days | default(value=0) }} days. Code <b>{{ offer.code }}</b>.</p><p><a href=\"{{ 'https://shop.example/back?c=1&d=2' | track }}\">Come back</a></p>{% endblock %}";

fn composer(html: &str) -> Composer {
    Composer::new(
        templates(html),
        Identity::new("Shop <news@shop.example>", "").expect("identity"),
        Shared {
            campaign: CampaignInfo {
                id: "camp-1".into(),
                goal: "win_back".into(),
                goal_name: "Win-back".into(),
                template: "win_back".into(),
            },
            company_name: "Shop & Co".into(),
            company_address: "1 Example Street".into(),
            from: "Shop <news@shop.example>".into(),
            reply_to: String::new(),
            shop_url: "https://shop.example".into(),
            tracking_base_url: "https://t.example.com".into(),
            offer: Offer::default(),
            today: "2025-01-01".into(),
        },
        SECRET.to_vec(),
        None,
    )
}

/// `n` opted-in customers u0..u{n-1}; every 10th (u9, u19, …) is a holdout member.
async fn fixture(n: usize) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_sqlite(&dir.path().join("t.db"))
        .await
        .expect("store");
    let customers: Vec<Customer> = (0..n)
        .map(|i| Customer {
            id: format!("u{i}"),
            email: Some(format!("u{i}@mail.example")),
            email_valid: true,
            first_name: Some(if i == 3 {
                "<script>alert(1)</script>".to_string()
            } else {
                format!("Name{i}")
            }),
            subscribed: Some(true),
            ..Default::default()
        })
        .collect();
    store
        .import_customers("c.csv", &customers, (n as u64, n as u64, 0))
        .await
        .expect("import");
    let recipients: HashMap<String, Recipient> = customers
        .into_iter()
        .map(|c| {
            (
                c.id.clone(),
                Recipient {
                    customer: c,
                    segment: Some("At Risk".into()),
                    ..Default::default()
                },
            )
        })
        .collect();
    let members = (0..n)
        .map(|i| Member {
            customer_id: format!("u{i}"),
            holdout: i % 10 == 9,
        })
        .collect();
    Fixture {
        store,
        dir,
        composer: Arc::new(composer(HTML)),
        recipients: Arc::new(recipients),
        members,
    }
}

fn fast_opts() -> SendOptions {
    SendOptions {
        rate: 0.0,
        concurrency: 3,
        retry_base: Duration::from_millis(5),
        retry_max: Duration::from_millis(40),
        flush_interval: Duration::from_millis(5),
        ..Default::default()
    }
}

async fn run<T: retain_mailer::Transport>(
    f: &Fixture,
    t: Arc<T>,
    opts: &SendOptions,
    stop: Arc<AtomicBool>,
) -> Result<retain_mailer::SendReport, MailerError> {
    send_campaign(
        &f.store,
        f.composer.clone(),
        t,
        f.recipients.clone(),
        opts,
        Arc::new(Progress::default()),
        stop,
        0,
    )
    .await
}

async fn queue(f: &Fixture) -> retain_mailer::QueueSummary {
    queue_campaign(
        &f.store,
        &f.composer,
        &f.members,
        &f.recipients,
        ConsentCheck::default(),
    )
    .await
    .expect("queue")
}

#[tokio::test]
async fn each_eligible_recipient_gets_exactly_one_message() {
    let f = fixture(30).await;
    f.store
        .suppress("u1@mail.example", SuppressionReason::HardBounce, "test")
        .await
        .expect("suppress");
    f.store
        .set_consent_by_email("u2@mail.example", false)
        .await
        .expect("unsubscribe");
    let q = queue(&f).await;
    assert_eq!(q.holdout, 3);
    assert_eq!(q.added, 27);
    // The recipient snapshot predates u2's unsubscribe: only u1 is suppressed at queue time;
    // the send-time check catches u2.
    assert_eq!(q.suppressed, 1);
    assert_eq!(queue(&f).await.added, 0, "queueing is idempotent");

    let stub = Arc::new(StubTransport::new());
    let rep = run(
        &f,
        stub.clone(),
        &fast_opts(),
        Arc::new(AtomicBool::new(false)),
    )
    .await
    .expect("send");
    assert_eq!(rep.sent, 25);
    assert_eq!(rep.failed, 0);
    assert_eq!(rep.unconfirmed, 0);
    assert_eq!(rep.remaining, 0);
    assert_eq!(rep.suppressed, 2);
    // Messages per recipient, counted before anything is merged: a duplicate shows as a 2.
    let mut per_recipient: HashMap<String, usize> = HashMap::new();
    for m in stub.sent() {
        *per_recipient.entry(m.to.to_ascii_lowercase()).or_default() += 1;
    }
    let twice: Vec<_> = per_recipient.iter().filter(|(_, &n)| n != 1).collect();
    assert!(twice.is_empty(), "duplicates: {twice:?}");
    assert_eq!(per_recipient.len(), 25, "{per_recipient:?}");
    for bad in ["u1@", "u2@", "u9@", "u19@", "u29@"] {
        assert!(
            !per_recipient.keys().any(|t| t.starts_with(bad)),
            "{bad} got mail"
        );
    }
    // A second run has nothing to do.
    let again = run(
        &f,
        stub.clone(),
        &fast_opts(),
        Arc::new(AtomicBool::new(false)),
    )
    .await
    .expect("send again");
    assert_eq!(again.sent, 0);
    assert_eq!(stub.sent().len(), 25);
    // The ledger agrees, and Message-IDs are the ones recorded.
    let rows = f.store.sends_of("camp-1").await.expect("rows");
    let sent: Vec<_> = rows.iter().filter(|r| r.state == SendState::Sent).collect();
    assert_eq!(sent.len(), 25);
    for m in stub.sent() {
        let row = rows.iter().find(|r| r.id == m.send_id).expect("row");
        assert_eq!(row.message_id, m.message_id);
        assert!(row.sent_at.is_some());
    }
}

#[tokio::test]
async fn recipients_suppressed_after_queueing_are_checked_again_at_send_time() {
    let f = fixture(10).await;
    queue(&f).await;
    f.store
        .suppress("U4@mail.example", SuppressionReason::Unsubscribed, "web")
        .await
        .expect("suppress");
    f.store
        .set_consent_by_email("u5@mail.example", false)
        .await
        .expect("consent");
    let stub = Arc::new(StubTransport::new());
    let rep = run(
        &f,
        stub.clone(),
        &fast_opts(),
        Arc::new(AtomicBool::new(false)),
    )
    .await
    .expect("send");
    assert_eq!(rep.sent, 7);
    assert_eq!(stub.attempts("u4@mail.example"), 0);
    assert_eq!(stub.attempts("u5@mail.example"), 0);
    let r4 = f
        .store
        .send_of("camp-1", "u4")
        .await
        .expect("q")
        .expect("row");
    assert_eq!(r4.state, SendState::Suppressed);
}

#[tokio::test]
async fn retries_bounces_and_permanent_failures() {
    let f = fixture(8).await;
    queue(&f).await;
    let stub = Arc::new(StubTransport::new());
    let t451 = || {
        StubReply::Fail(TransportError::Transient {
            code: Some(451),
            message: "4.7.1 slow down".into(),
        })
    };
    stub.script("u0@mail.example", vec![t451(), t451()]);
    stub.script(
        "u1@mail.example",
        vec![StubReply::Fail(TransportError::Permanent {
            code: 550,
            message: "5.1.1 user unknown".into(),
        })],
    );
    stub.script(
        "u2@mail.example",
        vec![StubReply::Fail(TransportError::Permanent {
            code: 554,
            message: "5.7.1 rejected as spam".into(),
        })],
    );
    stub.script("u3@mail.example", vec![t451(); 10]);
    let mut opts = fast_opts();
    opts.max_attempts = 4;
    let rep = run(&f, stub.clone(), &opts, Arc::new(AtomicBool::new(false)))
        .await
        .expect("send");
    assert_eq!(rep.sent, 5, "{rep:?}"); // u0 after two 451s, u4..u7
    assert_eq!(stub.attempts("u0@mail.example"), 3);
    assert_eq!(stub.attempts("u3@mail.example"), 4);
    assert_eq!(rep.failed, 3);
    assert_eq!(rep.hard_bounces, 1);
    assert_eq!(
        f.store.suppression_of("u1@mail.example").await.expect("q"),
        Some(SuppressionReason::HardBounce)
    );
    assert_eq!(
        f.store.suppression_of("u2@mail.example").await.expect("q"),
        None
    );
    let r0 = f
        .store
        .send_of("camp-1", "u0")
        .await
        .expect("q")
        .expect("row");
    assert_eq!((r0.state, r0.attempts), (SendState::Sent, 3));
    let r3 = f
        .store
        .send_of("camp-1", "u3")
        .await
        .expect("q")
        .expect("row");
    assert_eq!(r3.state, SendState::Failed);
    assert!(!r3.permanent);
    assert!(r3.last_error.as_deref().is_some_and(|e| e.contains("451")));
    // Transient failures can be retried later; the bounce and the spam rejection are not.
    let mut again = fast_opts();
    again.retry_failed = true;
    let rep = run(&f, stub.clone(), &again, Arc::new(AtomicBool::new(false)))
        .await
        .expect("retry");
    assert_eq!(rep.sent, 0, "u3 still answers 451 (2 of 10 left)");
    let rep = run(&f, stub.clone(), &again, Arc::new(AtomicBool::new(false)))
        .await
        .expect("retry");
    assert_eq!(rep.sent, 1);
    assert_eq!(stub.attempts("u1@mail.example"), 1);
    assert_eq!(stub.attempts("u2@mail.example"), 1);
}

/// A transport that raises the stop flag (as Ctrl-C does) from inside its `stop_after`-th send:
/// the stop lands mid-run whatever the machine's speed.
struct StopAfter {
    inner: StubTransport,
    stop: Arc<AtomicBool>,
    stop_after: usize,
    calls: std::sync::atomic::AtomicUsize,
}

impl retain_mailer::Transport for StopAfter {
    async fn send(
        &self,
        worker: usize,
        msg: &retain_mailer::OutgoingMessage,
    ) -> Result<retain_mailer::transport::Delivery, TransportError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) + 1 == self.stop_after {
            self.stop.store(true, Ordering::SeqCst);
        }
        self.inner.send(worker, msg).await
    }

    async fn close(&self) {}

    fn describe(&self) -> String {
        "stop-after".into()
    }
}

#[tokio::test]
async fn a_stop_leaves_no_unconfirmed_rows_and_the_next_run_finishes() {
    let f = fixture(40).await;
    queue(&f).await;
    let stop = Arc::new(AtomicBool::new(false));
    let t = Arc::new(StopAfter {
        inner: StubTransport::new(),
        stop: stop.clone(),
        stop_after: 5,
        calls: Default::default(),
    });
    let mut opts = fast_opts();
    opts.claim_batch = 4;
    let rep = send_campaign(
        &f.store,
        f.composer.clone(),
        t.clone(),
        f.recipients.clone(),
        &opts,
        Arc::new(Progress::default()),
        stop,
        0,
    )
    .await
    .expect("send");
    assert_eq!(rep.stopped, Some(StopReason::Interrupted));
    // The 5th message and those already in the workers' hands finish; nothing else starts.
    let concurrency = opts.concurrency as u64;
    assert!(rep.sent >= 5 && rep.sent < 5 + concurrency, "{rep:?}");
    assert_eq!(rep.unconfirmed, 0, "clean stop");
    assert_eq!(rep.remaining as u64, 36 - rep.sent);
    let rep2 = run(
        &f,
        t.clone(),
        &fast_opts(),
        Arc::new(AtomicBool::new(false)),
    )
    .await
    .expect("resume");
    assert_eq!(rep.sent + rep2.sent, 36);
    let mut per_recipient: HashMap<String, usize> = HashMap::new();
    for m in t.inner.sent() {
        *per_recipient.entry(m.to.to_ascii_lowercase()).or_default() += 1;
    }
    assert_eq!(per_recipient.len(), 36);
    assert!(per_recipient.values().all(|&n| n == 1), "{per_recipient:?}");
}

/// The one window SMTP cannot close: the server keeps a message, but the connection drops
/// before its 250 reaches us. The sender cannot tell it from a failed delivery and retries, so
/// that recipient gets a second copy; pinned here so a change to it is a decision.
#[tokio::test]
async fn a_reply_lost_after_the_server_accepted_is_retried_once() {
    let f = fixture(6).await;
    queue(&f).await;
    let server = SmtpServer::start().await.expect("server");
    server.script("u2@mail.example", vec![Fault::DropAfterAccept]);
    let settings = SmtpSettings::from_url(&server.url(), None, None).expect("url");
    let rep = run(
        &f,
        Arc::new(SmtpTransport::new(settings, 2)),
        &fast_opts(),
        Arc::new(AtomicBool::new(false)),
    )
    .await
    .expect("send");
    assert_eq!(
        (rep.sent, rep.failed, rep.unconfirmed),
        (6, 0, 0),
        "{rep:?}"
    );
    let d = server.deliveries();
    assert_eq!(d.get("u2@mail.example"), Some(&2), "{d:?}");
    assert!(
        d.iter()
            .filter(|(k, _)| k.as_str() != "u2@mail.example")
            .all(|(_, &n)| n == 1),
        "{d:?}"
    );
    let r2 = f
        .store
        .send_of("camp-1", "u2")
        .await
        .expect("q")
        .expect("row");
    assert_eq!((r2.state, r2.attempts), (SendState::Sent, 2));
}

#[tokio::test]
async fn limit_pause_and_unconfirmed_rows() {
    let f = fixture(12).await;
    queue(&f).await;
    let stub = Arc::new(StubTransport::new());
    let mut opts = fast_opts();
    opts.limit = Some(4);
    let rep = run(&f, stub.clone(), &opts, Arc::new(AtomicBool::new(false)))
        .await
        .expect("limited");
    assert_eq!(rep.sent, 4);
    assert_eq!(rep.stopped, Some(StopReason::Limit));

    // Another sender crashed mid-run (a row left `sending`; it never registered as alive).
    let claim = f
        .store
        .claim_sends("camp-1", "someone-else", -5, 1, ConsentCheck::default())
        .await
        .expect("claim");
    let crashed = match claim {
        retain_store::Claim::Claimed { sends, .. } => sends[0].clone(),
        other => panic!("{other:?}"),
    };
    let rep = run(
        &f,
        stub.clone(),
        &fast_opts(),
        Arc::new(AtomicBool::new(false)),
    )
    .await
    .expect("after crash");
    assert_eq!(rep.sent, 6);
    assert_eq!(rep.unconfirmed, 1);
    assert_eq!(
        stub.attempts(&crashed.email),
        0,
        "unconfirmed row not resent"
    );
    // Paused: refused.
    f.store
        .set_send_campaign_state("camp-1", CampaignSendState::Paused)
        .await
        .expect("pause");
    assert!(matches!(
        run(
            &f,
            stub.clone(),
            &fast_opts(),
            Arc::new(AtomicBool::new(false))
        )
        .await,
        Err(MailerError::CampaignStopped { .. })
    ));
    f.store
        .set_send_campaign_state("camp-1", CampaignSendState::Active)
        .await
        .expect("resume");
    let mut resend = fast_opts();
    resend.resend_unconfirmed = true;
    let rep = run(&f, stub.clone(), &resend, Arc::new(AtomicBool::new(false)))
        .await
        .expect("resend");
    assert_eq!(
        (rep.sent, rep.requeued_unconfirmed, rep.unconfirmed),
        (1, 1, 0)
    );
    assert_eq!(stub.attempts(&crashed.email.to_lowercase()), 1);
}

#[tokio::test]
async fn a_database_failure_while_sending_stops_the_run_and_says_why() {
    use sqlx::Connection;
    let f = fixture(20).await;
    queue(&f).await;
    // The ledger refuses to mark rows `sending` from now on.
    let mut c = sqlx::SqliteConnection::connect(&format!(
        "sqlite://{}",
        f.dir.path().join("t.db").display()
    ))
    .await
    .expect("connect");
    sqlx::query(
        "CREATE TRIGGER retain_test_fail_sending BEFORE UPDATE OF state ON sends \
         WHEN NEW.state = 'sending' BEGIN SELECT RAISE(ABORT, 'injected ledger failure'); END",
    )
    .execute(&mut c)
    .await
    .expect("trigger");
    let stub = Arc::new(StubTransport::new());
    let e = run(
        &f,
        stub.clone(),
        &fast_opts(),
        Arc::new(AtomicBool::new(false)),
    )
    .await
    .expect_err("the database failed");
    assert!(matches!(e, MailerError::Ledger(_)), "{e:?}");
    assert!(e.to_string().contains("injected ledger failure"), "{e}");
    // Nothing was handed to the server and nothing is left unconfirmed: every row is queued.
    assert!(stub.sent().is_empty());
    let counts = f.store.send_counts("camp-1").await.expect("counts");
    assert_eq!((counts.queued, counts.sending, counts.sent), (18, 0, 0));
}

#[tokio::test]
async fn a_template_error_stops_before_anything_is_sent() {
    let mut f = fixture(5).await;
    f.composer = Arc::new(composer(
        "{% extends \"base.html\" %}{% block body %}\n<p>{{ customer.frist_name }}</p>{% endblock %}",
    ));
    queue(&f).await;
    let stub = Arc::new(StubTransport::new());
    let e = run(
        &f,
        stub.clone(),
        &fast_opts(),
        Arc::new(AtomicBool::new(false)),
    )
    .await
    .expect_err("template error");
    let msg = e.to_string();
    assert!(msg.contains("win_back.html"), "{msg}");
    assert!(msg.contains("line 2"), "{msg}");
    assert!(msg.contains("frist_name"), "{msg}");
    assert!(stub.sent().is_empty());
    let c = f.store.send_counts("camp-1").await.expect("c");
    assert_eq!((c.queued, c.sending), (5, 0));
}

#[tokio::test]
async fn real_smtp_with_faults_delivers_each_message_once_with_the_right_headers() {
    let f = fixture(12).await;
    queue(&f).await;
    let server = SmtpServer::start().await.expect("server");
    server.script(
        "u0@mail.example",
        vec![Fault::AtRcpt(451, "4.7.1 greylisted".into())],
    );
    server.script(
        "u1@mail.example",
        vec![Fault::AtRcpt(550, "5.1.1 no such user".into())],
    );
    server.script("u2@mail.example", vec![Fault::DropMidData(200)]);
    server.script("u4@mail.example", vec![Fault::DropAfterData]);
    server.script(
        "u5@mail.example",
        vec![Fault::AtEndOfData(554, "5.7.1 content rejected".into())],
    );
    server.fail_next(vec![Fault::AtMail(421, "4.3.2 too busy, closing".into())]);
    let settings = SmtpSettings::from_url(&server.url(), None, None).expect("url");
    let transport = Arc::new(SmtpTransport::new(settings, 3));
    let rep = run(
        &f,
        transport,
        &fast_opts(),
        Arc::new(AtomicBool::new(false)),
    )
    .await
    .expect("send");
    // 12 members, 1 holdout (u9): 11 queued; u1 bounces, u5 is rejected.
    assert_eq!(rep.sent, 9, "{rep:?}");
    assert_eq!(rep.failed, 2);
    assert_eq!(rep.hard_bounces, 1);
    let d = server.deliveries();
    assert_eq!(d.len(), 9);
    assert!(d.values().all(|&n| n == 1), "exactly once: {d:?}");
    for missing in ["u1@mail.example", "u5@mail.example", "u9@mail.example"] {
        assert!(!d.contains_key(missing), "{missing}");
    }
    let rows = f.store.sends_of("camp-1").await.expect("rows");
    for m in server.received() {
        let to = &m.rcpt_to[0];
        let row = rows
            .iter()
            .find(|r| r.email.eq_ignore_ascii_case(to))
            .expect("row");
        assert_eq!(row.state, SendState::Sent);
        assert_eq!(
            m.header("Message-ID").as_deref(),
            Some(row.message_id.as_str())
        );
        assert_eq!(m.mail_from, "news@shop.example");
        let text = m.text();
        assert!(
            text.contains("Content-Type: multipart/alternative"),
            "{text}"
        );
        assert!(text.contains("text/plain; charset=utf-8"));
        assert!(text.contains("text/html; charset=utf-8"));
        assert!(m.header("Date").is_some());
        assert_eq!(
            m.header("From").as_deref(),
            Some("Shop <news@shop.example>")
        );
        assert_eq!(m.header("X-Retain-Campaign").as_deref(), Some("camp-1"));
        assert_eq!(
            m.header("List-Unsubscribe-Post").as_deref(),
            Some("List-Unsubscribe=One-Click")
        );
        let lu = m.header("List-Unsubscribe").expect("List-Unsubscribe");
        let https = lu
            .split(['<', '>'])
            .find(|p| p.starts_with("https://"))
            .expect("https link");
        assert!(lu.contains("<mailto:news@shop.example?subject=unsubscribe%20"));
        let token = https.rsplit('/').next().expect("token");
        let t = Token::verify(SECRET, token).expect("signed");
        assert_eq!((t.send_id, t.action), (row.id, Action::Unsubscribe));
        let n: usize = row.customer_id[1..].parse().expect("n");
        let subject = m.header("Subject").expect("subject");
        if n != 3 {
            assert_eq!(subject, format!("Name{n}, we miss you"));
        }
    }
    // The hostile name is escaped in HTML (and kept verbatim in the text part).
    let hostile = server
        .received()
        .into_iter()
        .find(|m| m.rcpt_to[0] == "u3@mail.example")
        .expect("u3");
    let body = decode_parts(&hostile.text());
    assert!(
        body.contains("Hi &lt;script&gt;alert(1)&lt;/script&gt;"),
        "{body}"
    );
    assert!(!body.contains("<h1>Hi <script>"), "{body}");
    assert!(
        body.contains("Hi <script>alert(1)</script>,"),
        "text part is not HTML: {body}"
    );
    let r1 = rows.iter().find(|r| r.customer_id == "u1").expect("u1");
    assert_eq!(r1.state, SendState::Failed);
    assert!(r1.permanent);
    assert_eq!(
        f.store.suppression_of("u1@mail.example").await.expect("q"),
        Some(SuppressionReason::HardBounce)
    );
    // The 421 closed one connection, the drops two more: the client reconnected.
    assert!(server.connections() >= 4, "{}", server.connections());
}

#[tokio::test]
async fn an_unreachable_server_stops_the_run_and_keeps_the_queue() {
    let f = fixture(6).await;
    queue(&f).await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let settings =
        SmtpSettings::from_url(&format!("smtp://127.0.0.1:{port}"), None, None).expect("url");
    let mut opts = fast_opts();
    opts.max_attempts = 2;
    let rep = run(
        &f,
        Arc::new(SmtpTransport::new(settings, 2)),
        &opts,
        Arc::new(AtomicBool::new(false)),
    )
    .await
    .expect("returns a report");
    assert!(
        matches!(&rep.stopped, Some(StopReason::TransportFailed(m)) if m.contains("cannot connect")),
        "{rep:?}"
    );
    assert_eq!((rep.sent, rep.failed, rep.unconfirmed), (0, 0, 0));
    assert_eq!(rep.remaining, 6, "nothing lost, nothing failed");
}

/// A transport that, at its `at`-th message, records two complaints against the campaign (as a
/// provider webhook or `retain bounces ingest` in another process would, while it is sending).
struct ComplaintsArrive {
    inner: StubTransport,
    store: Store,
    at: usize,
    calls: std::sync::atomic::AtomicUsize,
}

impl retain_mailer::Transport for ComplaintsArrive {
    async fn send(
        &self,
        worker: usize,
        msg: &retain_mailer::OutgoingMessage,
    ) -> Result<retain_mailer::transport::Delivery, TransportError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) + 1 == self.at {
            let sends = self.store.sends_of("camp-1").await.expect("sends");
            for (i, s) in sends.iter().take(2).enumerate() {
                self.store
                    .record_deliverability_event(&retain_store::NewDeliverabilityEvent {
                        send_id: s.id,
                        campaign_id: s.campaign_id.clone(),
                        email: s.email.clone(),
                        kind: retain_store::DeliverabilityKind::Complaint,
                        status: Some("abuse".into()),
                        detail: None,
                        fingerprint: format!("fbl-{i}"),
                        at: 1,
                    })
                    .await
                    .expect("record");
            }
        }
        self.inner.send(worker, msg).await
    }

    async fn close(&self) {}

    fn describe(&self) -> String {
        "complaints-arrive".into()
    }
}

#[tokio::test]
async fn the_guardrail_pauses_a_campaign_between_batches_and_says_why() {
    let f = fixture(40).await;
    queue(&f).await;
    let t = Arc::new(ComplaintsArrive {
        inner: StubTransport::new(),
        store: f.store.clone(),
        at: 6,
        calls: Default::default(),
    });
    let mut opts = fast_opts();
    // One worker and small batches: the claim loop runs at most a few messages ahead.
    opts.concurrency = 1;
    opts.claim_batch = 2;
    opts.guardrail = Some(retain_mailer::GuardrailLimits {
        complaint_rate: 0.05,
        hard_bounce_rate: 0.02,
        min_delivered: 1,
    });
    let rep = run(&f, t.clone(), &opts, Arc::new(AtomicBool::new(false)))
        .await
        .expect("send");
    assert_eq!(rep.stopped, Some(StopReason::Paused), "{rep:?}");
    // Two complaints reach 5% of anything up to 40 delivered: it stops soon after the 6th.
    assert!(rep.sent >= 6 && rep.sent < 36, "{rep:?}");
    assert!(rep.remaining > 0, "{rep:?}");
    let why = rep.pause_reason.clone().expect("a reason");
    assert!(why.starts_with("complaint rate"), "{why}");
    assert_eq!(
        f.store.send_campaign_state("camp-1").await.expect("state"),
        CampaignSendState::Paused
    );
    // Without the guardrail (or after its operator resumed it) the rest goes out.
    f.store
        .set_send_campaign_state("camp-1", CampaignSendState::Active)
        .await
        .expect("resume");
    let rep2 = run(&f, t.clone(), &opts, Arc::new(AtomicBool::new(false)))
        .await
        .expect("resumed");
    assert_eq!(rep2.stopped, None, "{rep2:?}");
    assert_eq!(rep.sent + rep2.sent, 36);
}
