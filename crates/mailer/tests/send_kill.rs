//! Crash safety with a real process kill: a sending process (this test binary re-run as a
//! child) is killed with SIGKILL in the middle of a campaign, twice; resuming never sends a
//! recipient twice, every `sent` row was delivered exactly once, rows left `sending` are
//! reported as unconfirmed and only `--resend-unconfirmed` sends them again.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use retain_core::Customer;
use retain_mailer::testkit::SmtpServer;
use retain_mailer::transport::{SmtpSettings, SmtpTransport};
use retain_mailer::{
    queue_campaign, send_campaign, CampaignInfo, Composer, Identity, MailerError, Member, Offer,
    Progress, Recipient, SendOptions, Shared, TemplateSet,
};
use retain_store::{ConsentCheck, SendState, Store};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const N: usize = 240;

fn composer() -> Composer {
    let sources = vec![
        (
            "k.html".to_string(),
            "<html><head><title>Hi {{ customer.first_name }}</title></head><body><p>Hi {{ customer.first_name }}</p><a href=\"{{ urls.unsubscribe }}\">u</a></body></html>".to_string(),
        ),
    ];
    Composer::new(
        TemplateSet::from_sources("k", &sources, "https://t.example.com", SECRET).expect("tpl"),
        Identity::new("news@shop.example", "").expect("id"),
        Shared {
            campaign: CampaignInfo {
                id: "kill".into(),
                goal: "win_back".into(),
                goal_name: "Win-back".into(),
                template: "k".into(),
            },
            company_name: "Shop".into(),
            company_address: "Street 1".into(),
            from: "news@shop.example".into(),
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

async fn recipients(store: &Store) -> HashMap<String, Recipient> {
    store
        .customers()
        .await
        .expect("customers")
        .into_iter()
        .map(|c| {
            (
                c.id.clone(),
                Recipient {
                    customer: c,
                    ..Default::default()
                },
            )
        })
        .collect()
}

async fn try_send(
    store: &Store,
    url: &str,
    opts: SendOptions,
) -> Result<retain_mailer::SendReport, MailerError> {
    let settings = SmtpSettings::from_url(url, None, None).expect("url");
    send_campaign(
        store,
        Arc::new(composer()),
        Arc::new(SmtpTransport::new(settings, opts.concurrency)),
        Arc::new(recipients(store).await),
        &opts,
        Arc::new(Progress::default()),
        Arc::new(AtomicBool::new(false)),
        0,
    )
    .await
}

/// Sends right away: the dead sender's claimed rows are released because its PID is gone.
async fn send(
    store: &Store,
    url: &str,
    rate: f64,
    resend_unconfirmed: bool,
) -> retain_mailer::SendReport {
    let opts = SendOptions {
        rate,
        concurrency: 4,
        resend_unconfirmed,
        ..Default::default()
    };
    match try_send(store, url, opts).await {
        Ok(rep) => rep,
        Err(e) => panic!("send: {e}"),
    }
}

/// The child: sends the campaign until it is killed (or aborts itself through the engine's
/// `RETAIN_TEST_CRASH_AFTER_ACCEPT` hook). A no-op in a normal test run.
#[tokio::test]
async fn child_sender() {
    let (Ok(db), Ok(url)) = (
        std::env::var("RETAIN_KILL_TEST_DB"),
        std::env::var("RETAIN_KILL_TEST_URL"),
    ) else {
        return;
    };
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<f64>().ok());
    let store = Store::open_sqlite(Path::new(&db)).await.expect("store");
    let opts = SendOptions {
        rate: env("RETAIN_KILL_TEST_RATE").unwrap_or(30.0),
        concurrency: env("RETAIN_KILL_TEST_CONCURRENCY").unwrap_or(4.0) as usize,
        ..Default::default()
    };
    try_send(&store, &url, opts).await.expect("child send");
}

/// Re-runs this binary as the child sender, with a short claim TTL and `extra` environment.
fn spawn_child(db: &Path, url: &str, extra: &[(&str, &str)]) -> Child {
    let mut c = Command::new(std::env::current_exe().expect("exe"));
    c.args(["child_sender", "--exact", "--nocapture", "--test-threads=1"])
        .env("RETAIN_KILL_TEST_DB", db)
        .env("RETAIN_KILL_TEST_URL", url)
        .env("RETAIN_TEST_CLAIM_TTL_S", CLAIM_TTL_S);
    for (k, v) in extra {
        c.env(k, v);
    }
    c.spawn().expect("spawn child")
}

/// The child's claim TTL: renewed by its heartbeat while it lives, so a loaded machine does
/// not make it lose its claims.
const CLAIM_TTL_S: &str = "4";

/// A store at `db` with `n` opted-in customers k000… queued for the campaign `kill`.
async fn queued_store(db: &Path, n: usize) -> Store {
    let store = Store::open_sqlite(db).await.expect("store");
    let customers: Vec<Customer> = (0..n)
        .map(|i| Customer {
            id: format!("k{i:03}"),
            email: Some(format!("k{i:03}@mail.example")),
            email_valid: true,
            first_name: Some(format!("K{i}")),
            subscribed: Some(true),
            ..Default::default()
        })
        .collect();
    store
        .import_customers("k.csv", &customers, (n as u64, n as u64, 0))
        .await
        .expect("import");
    let members: Vec<Member> = customers
        .iter()
        .map(|c| Member {
            customer_id: c.id.clone(),
            holdout: false,
        })
        .collect();
    queue_campaign(
        &store,
        &composer(),
        &members,
        &recipients(&store).await,
        ConsentCheck::default(),
    )
    .await
    .expect("queue");
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_run_then_resume_never_resends() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("kill.db");
    let store = queued_store(&db, N).await;
    let server = SmtpServer::start().await.expect("server");

    // Two kills at different points of the campaign.
    for at in [N / 4, N / 2] {
        let mut child = spawn_child(&db, &server.url(), &[]);
        assert!(
            server.wait_for(at, Duration::from_secs(60)).await,
            "the child sent {} of {at}",
            server.received().len()
        );
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        // No wait: the next child finds the dead one's PID gone and takes its claims at once.
    }
    let delivered_before = server.received().len();
    assert!(delivered_before < N, "killed before the end");

    let rep = send(&store, &server.url(), 0.0, false).await;
    let rows = store.sends_of("kill").await.expect("rows");
    let deliveries = server.deliveries();
    // Never twice, without --resend-unconfirmed.
    assert!(
        deliveries.values().all(|&n| n == 1),
        "duplicates: {deliveries:?}"
    );
    let mut unconfirmed = 0;
    for r in &rows {
        let got = deliveries.get(&r.email).copied().unwrap_or(0);
        match r.state {
            SendState::Sent => assert_eq!(got, 1, "{} sent but delivered {got}×", r.email),
            SendState::Sending => unconfirmed += 1,
            s => panic!("{}: unexpected state {s}", r.email),
        }
    }
    eprintln!(
        "killed twice: {delivered_before} delivered before resuming, {unconfirmed} unconfirmed, {} sent by the resumed run",
        rep.sent
    );
    assert_eq!(rep.unconfirmed, unconfirmed);
    assert_eq!(rep.remaining, 0);
    assert!(
        unconfirmed <= 2 * 64,
        "unconfirmed rows are bounded by the claim window: {unconfirmed}"
    );
    // The operator chooses to resend them: everyone has the email, only previously
    // unconfirmed recipients may have it twice.
    let unconfirmed_emails: Vec<String> = rows
        .iter()
        .filter(|r| r.state == SendState::Sending)
        .map(|r| r.email.clone())
        .collect();
    let rep = send(&store, &server.url(), 0.0, true).await;
    assert_eq!(rep.requeued_unconfirmed as usize, unconfirmed_emails.len());
    assert_eq!(rep.unconfirmed, 0);
    let deliveries = server.deliveries();
    assert_eq!(deliveries.len(), N, "everyone got it");
    for (email, n) in &deliveries {
        if *n > 1 {
            assert!(unconfirmed_emails.contains(email), "{email} got {n}");
            assert_eq!(*n, 2);
        }
    }
    let c = store.send_counts("kill").await.expect("counts");
    assert_eq!(c.sent as usize, N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_the_servers_250_and_the_ledger_leaves_the_row_unconfirmed() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("crash.db");
    let store = queued_store(&db, 20).await;
    let server = SmtpServer::start().await.expect("server");
    // One worker, no pacing; the engine aborts the process right after the 7th 250.
    let mut child = spawn_child(
        &db,
        &server.url(),
        &[
            ("RETAIN_TEST_CRASH_AFTER_ACCEPT", "7"),
            ("RETAIN_KILL_TEST_RATE", "0"),
            ("RETAIN_KILL_TEST_CONCURRENCY", "1"),
        ],
    );
    let status = tokio::task::spawn_blocking(move || child.wait().expect("wait"))
        .await
        .expect("join");
    assert!(!status.success(), "the child crashed: {status:?}");
    let received = server.received();
    assert_eq!(received.len(), 7, "one worker: exactly 7 accepted");
    let crashed = received[6].rcpt_to[0].clone();
    let rows = store.sends_of("kill").await.expect("rows");
    let row = |email: &str| rows.iter().find(|r| r.email == email).expect("row").clone();
    // The server has it, the ledger does not know: unconfirmed, not queued, not sent.
    assert_eq!(row(&crashed).state, SendState::Sending);
    for m in &received {
        let r = row(&m.rcpt_to[0]);
        assert!(
            matches!(r.state, SendState::Sent | SendState::Sending),
            "{}: {}",
            r.email,
            r.state
        );
    }

    // The next run (once the dead sender's lease expired) reports it and does not resend it.
    let rep = send(&store, &server.url(), 0.0, false).await;
    let rows = store.sends_of("kill").await.expect("rows");
    let sending: Vec<String> = rows
        .iter()
        .filter(|r| r.state == SendState::Sending)
        .map(|r| r.email.clone())
        .collect();
    assert!(sending.contains(&crashed), "{sending:?}");
    assert_eq!(rep.unconfirmed as usize, sending.len());
    assert_eq!(rep.remaining, 0);
    let d = server.deliveries();
    assert_eq!(d.get(&crashed), Some(&1), "never silently resent");
    assert!(d.values().all(|&n| n == 1), "{d:?}");
    for r in rows.iter().filter(|r| r.state == SendState::Sent) {
        assert_eq!(d.get(&r.email), Some(&1), "{}", r.email);
    }

    // Only when the operator asks: sent again (the crashed one knowingly twice).
    let rep = send(&store, &server.url(), 0.0, true).await;
    assert_eq!(rep.requeued_unconfirmed as usize, sending.len());
    assert_eq!(rep.unconfirmed, 0);
    let d = server.deliveries();
    assert_eq!(d.len(), 20);
    assert_eq!(d.get(&crashed), Some(&2));
    for (email, n) in &d {
        if *n > 1 {
            assert!(sending.contains(email), "{email} got {n}");
        }
    }
}
