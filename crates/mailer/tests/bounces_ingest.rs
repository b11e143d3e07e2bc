//! Bounce and complaint reports acted on against a real ledger (SQLite): matching by return
//! path, Message-ID and recipient + campaign; suppression; the soft-bounce threshold; reading a
//! report twice; the guardrail pausing a campaign.

use retain_core::tracking::return_path;
use retain_core::SuppressionReason;
use retain_mailer::{GuardrailLimits, Ingest, IngestSettings, MatchedBy};
use retain_store::{CampaignSendState, NewSend, Store};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn fixture(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn settings(min_delivered: i64) -> IngestSettings {
    IngestSettings {
        secret: SECRET.to_vec(),
        soft_bounce_limit: 3,
        soft_bounce_days: 30,
        limits: GuardrailLimits {
            min_delivered,
            ..GuardrailLimits::default()
        },
    }
}

#[tokio::test]
async fn reports_match_their_sends_and_suppress() {
    let (store, _dir) = ledger_with_customers(10).await;
    let send = |i: usize| {
        let store = store.clone();
        async move {
            store
                .send_of("camp", &format!("c{i}"))
                .await
                .expect("q")
                .expect("row")
        }
    };
    let (gone, full, angry) = (send(0).await, send(1).await, send(2).await);
    let mut ingest = Ingest::new(&store, settings(200));

    // The DSN 5.1.1, delivered to the send's real return path: matched by it, suppressed.
    let rp = return_path(SECRET, gone.id, "bounce.shop.example");
    let dsn = fixture("dsn-5.1.1.eml")
        .replace("bounces+17-aaaaaaaaaaaaaaaa@bounce.shop.example", &rp)
        .replace("<0a1b2c3d@shop.example>", "<unknown@shop.example>");
    let r = ingest.message(dsn.as_bytes()).await.expect("ingest");
    assert_eq!(r.kind, "dsn");
    assert_eq!(r.items.len(), 1);
    assert_eq!(r.items[0].send_id, Some(gone.id));
    assert_eq!(r.items[0].matched_by, Some(MatchedBy::ReturnPath));
    assert!(r.items[0].suppressed, "{:?}", r.items[0]);
    assert_eq!(
        store.suppression_of("gone@mail.example").await.expect("q"),
        Some(SuppressionReason::HardBounce)
    );
    // Read again: recorded once, nothing more done.
    let again = ingest.message(dsn.as_bytes()).await.expect("again");
    assert!(
        again.items[0].action.contains("already recorded"),
        "{again:?}"
    );
    assert!(!again.items[0].suppressed);

    // A forged return path (another send id) does not match; without a Message-ID or campaign
    // match the report is unmatched and changes nothing.
    let forged = dsn
        .replace(&format!("+{}-", gone.id), &format!("+{}-", full.id))
        .replace(
            "X-Retain-Campaign: p1-win_back-1",
            "X-Retain-Campaign: other",
        );
    let r = ingest.message(forged.as_bytes()).await.expect("forged");
    assert_eq!(r.items[0].send_id, None, "{r:?}");
    assert!(r.items[0].action.starts_with("unmatched"), "{r:?}");

    // The ARF report: matched by the original's Message-ID, a complaint.
    let arf = fixture("arf-abuse.eml").replace("<9f8e7d6c@shop.example>", &angry.message_id);
    let r = ingest.message(arf.as_bytes()).await.expect("arf");
    assert_eq!(r.kind, "arf");
    assert_eq!(r.items[0].send_id, Some(angry.id));
    assert_eq!(r.items[0].matched_by, Some(MatchedBy::MessageId));
    assert_eq!(
        store.suppression_of("angry@mail.example").await.expect("q"),
        Some(SuppressionReason::Complaint)
    );

    // Soft bounces: matched by recipient + campaign; suppressed at the third message.
    for (n, mid) in ["<s1@mx>", "<s2@mx>", "<s3@mx>"].iter().enumerate() {
        let soft = fixture("dsn-4.2.2.eml")
            .replace("<dsn-2@mx.mail.example>", mid)
            .replace("<5e6f7a8b@shop.example>", "<not-ours@shop.example>")
            .replace(
                "X-Retain-Campaign: p1-win_back-1",
                "X-Retain-Campaign: camp",
            );
        let r = ingest.message(soft.as_bytes()).await.expect("soft");
        assert_eq!(r.items[0].matched_by, Some(MatchedBy::RecipientCampaign));
        assert_eq!(r.items[0].send_id, Some(full.id));
        let suppressed = store.suppression_of("full@mail.example").await.expect("q");
        // Every notice is about the same send here: one message soft-bounced, so never 3.
        assert_eq!(suppressed, None, "notice {n}: {r:?}");
        assert!(r.items[0].action.contains("1 of 3"), "{r:?}");
    }

    // Not a report, malformed: listed, nothing done.
    let r = ingest
        .message(fixture("malformed.eml").as_bytes())
        .await
        .expect("malformed");
    assert_eq!(r.kind, "malformed");
    assert!(r
        .note
        .as_deref()
        .is_some_and(|n| n.contains("delivery-status")));
    let r = ingest
        .message(b"From: a@b.example\r\n\r\nhello\r\n")
        .await
        .expect("other");
    assert_eq!(r.kind, "other");

    // 10 delivered, below the minimum of 200: no pause.
    let checks = ingest.finish().await.expect("guardrail");
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].counts.complaints, 1);
    assert_eq!(checks[0].counts.hard_bounces, 1);
    assert_eq!(checks[0].counts.delivered, 10);
    assert!(checks[0].breach.is_none() && !checks[0].paused_now);
    assert_eq!(
        store.send_campaign_state("camp").await.expect("s"),
        CampaignSendState::Active
    );
}

#[tokio::test]
async fn soft_bounces_of_different_messages_suppress_at_the_threshold() {
    let (store, _dir) = ledger_with_customers(3).await;
    // Three campaigns each mailed full@mail.example.
    for c in ["camp2", "camp3"] {
        store
            .queue_sends(
                c,
                &[NewSend {
                    customer_id: "c1".into(),
                    email: "full@mail.example".into(),
                    message_id: format!("<{c}@shop.example>"),
                    suppressed: None,
                }],
            )
            .await
            .expect("queue");
    }
    let mut ingest = Ingest::new(&store, settings(200));
    for (i, mid) in [
        "<m1@shop.example>",
        "<camp2@shop.example>",
        "<camp3@shop.example>",
    ]
    .iter()
    .enumerate()
    {
        let soft = fixture("dsn-4.2.2.eml")
            .replace("<dsn-2@mx.mail.example>", &format!("<soft{i}@mx>"))
            .replace("<5e6f7a8b@shop.example>", mid);
        let r = ingest.message(soft.as_bytes()).await.expect("soft");
        assert_eq!(r.items[0].matched_by, Some(MatchedBy::MessageId), "{r:?}");
        let s = store.suppression_of("full@mail.example").await.expect("q");
        if i < 2 {
            assert_eq!(s, None, "soft bounce {} of 3 does not suppress", i + 1);
        } else {
            assert_eq!(s, Some(SuppressionReason::HardBounce));
            assert!(r.items[0].suppressed && r.items[0].action.contains("3 soft bounces"));
        }
    }
}

#[tokio::test]
async fn the_guardrail_pauses_a_campaign_at_the_complaint_limit_and_says_why() {
    let (store, _dir) = ledger_with_customers(10).await;
    let angry = store.send_of("camp", "c2").await.expect("q").expect("row");
    let mut ingest = Ingest::new(&store, settings(10));
    let arf = fixture("arf-abuse.eml").replace("<9f8e7d6c@shop.example>", &angry.message_id);
    ingest.message(arf.as_bytes()).await.expect("arf");
    let checks = ingest.finish().await.expect("guardrail");
    assert!(checks[0].paused_now, "{checks:?}");
    let why = checks[0].breach.clone().expect("breach");
    assert!(
        why.contains("complaint rate 10.00% (1 of 10 delivered)"),
        "{why}"
    );
    assert_eq!(
        store
            .send_campaign_state_and_reason("camp")
            .await
            .expect("s"),
        (CampaignSendState::Paused, Some(why))
    );
    // Resumed by its operator: the guardrail leaves it alone.
    store
        .set_send_campaign_state("camp", CampaignSendState::Active)
        .await
        .expect("resume");
    let again = retain_mailer::check_guardrail(&store, "camp", &settings(10).limits)
        .await
        .expect("check");
    assert!(again.breach.is_some() && !again.paused_now);
    // Hard bounces at 2% of 10 delivered: 1 is 10%; a campaign without complaints pauses for
    // them.
    let gone = store.send_of("camp", "c0").await.expect("q").expect("row");
    store
        .queue_sends(
            "camp-b",
            &[NewSend {
                customer_id: "c0".into(),
                email: gone.email.clone(),
                message_id: "<b0@shop.example>".into(),
                suppressed: None,
            }],
        )
        .await
        .expect("queue");
    let b = store
        .send_of("camp-b", "c0")
        .await
        .expect("q")
        .expect("row");
    mark_all_sent(&store, "camp-b", &[b.id]).await;
    let mut ingest = Ingest::new(&store, settings(1));
    let dsn = fixture("dsn-5.1.1.eml").replace("<0a1b2c3d@shop.example>", "<b0@shop.example>");
    ingest.message(dsn.as_bytes()).await.expect("dsn");
    let checks = ingest.finish().await.expect("guardrail");
    assert_eq!(checks.len(), 1);
    assert!(checks[0].paused_now, "{checks:?}");
    assert!(checks[0]
        .breach
        .as_deref()
        .is_some_and(|b| b.starts_with("hard bounce rate")));
}

/// A ledger of `n` delivered messages of campaign `camp` to c0… (gone@, full@, angry@ and then
/// c3@… at mail.example) whose Message-IDs are `<m{i}@shop.example>`.
async fn ledger_with_customers(n: usize) -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open_sqlite(&dir.path().join("t.db"))
        .await
        .expect("open");
    let mut sends: Vec<NewSend> = (0..n)
        .map(|i| NewSend {
            customer_id: format!("c{i}"),
            email: format!("c{i}@mail.example"),
            message_id: format!("<m{i}@shop.example>"),
            suppressed: None,
        })
        .collect();
    for (i, email) in ["gone", "full", "angry"].iter().enumerate().take(n) {
        sends[i].email = format!("{email}@mail.example");
    }
    store.queue_sends("camp", &sends).await.expect("queue");
    let ids: Vec<i64> = store
        .sends_of("camp")
        .await
        .expect("rows")
        .iter()
        .map(|s| s.id)
        .collect();
    mark_all_sent(&store, "camp", &ids).await;
    (store, dir)
}

async fn mark_all_sent(store: &Store, campaign: &str, ids: &[i64]) {
    // The ledger only moves sending → sent; claim without a consent check moves queued →
    // sending for rows whose customers exist, so make the customers first.
    let rows = store.sends_of(campaign).await.expect("rows");
    let customers: Vec<retain_core::Customer> = rows
        .iter()
        .map(|s| retain_core::Customer {
            id: s.customer_id.clone(),
            email: Some(s.email.clone()),
            email_valid: true,
            subscribed: Some(true),
            ..Default::default()
        })
        .collect();
    let n = customers.len() as u64;
    store
        .import_customers("c.csv", &customers, (n, n, 0))
        .await
        .expect("customers");
    store
        .acquire_send_lease(campaign, "t", 60)
        .await
        .expect("lease")
        .expect("free");
    match store
        .claim_sends(campaign, "t", 60, ids.len(), Default::default())
        .await
        .expect("claim")
    {
        retain_store::Claim::Claimed { sends, .. } => assert_eq!(sends.len(), ids.len()),
        other => panic!("{other:?}"),
    }
    let sent: Vec<(i64, i64)> = ids.iter().map(|&id| (id, 1)).collect();
    assert_eq!(
        store.mark_sent(&sent).await.expect("sent"),
        ids.len() as u64
    );
}
