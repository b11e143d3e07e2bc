//! Send throughput of the whole engine — render, CSS inlining, MIME, SMTP and the ledger (claim
//! `sending`, record `sent`) — to an SMTP sink on loopback, one JSON line.
//!
//! usage: send_bench --url smtp://127.0.0.1:PORT [--n 10000] [--concurrency 8]
//!                   [--templates DIR] [--template win_back] [--db FILE | --db-url URL]
//!                   [--phase all|queue|send]
//!
//! Several senders: `--phase queue` fills the ledger of `--db-url` once; then any number of
//! `--phase send` processes started together send it as workers sharing the database.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use retain_core::Customer;
use retain_mailer::transport::{SmtpSettings, SmtpTransport};
use retain_mailer::{
    queue_campaign, send_campaign, CampaignInfo, Composer, Identity, Member, Offer, Progress,
    Recipient, SendOptions, Shared, TemplateSet,
};
use retain_store::{ConsentCheck, Store};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let url = arg(&args, "--url").ok_or("--url smtp://127.0.0.1:PORT is required")?;
    let n: usize = arg(&args, "--n")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000);
    let concurrency: usize = arg(&args, "--concurrency")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(8);
    let dir = arg(&args, "--templates")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../templates"));
    let template = arg(&args, "--template").unwrap_or_else(|| "win_back".into());
    let tmp = tempfile::tempdir()?;
    let db = arg(&args, "--db")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().join("bench.db"));
    let secret = b"0123456789abcdef0123456789abcdef".to_vec();

    let phase = arg(&args, "--phase").unwrap_or_else(|| "all".into());
    let store = match arg(&args, "--db-url") {
        Some(url) => Store::open(&url).await?,
        None => Store::open_sqlite(&db).await?,
    };
    let customers: Vec<Customer> = (0..n)
        .map(|i| Customer {
            id: format!("c{i:06}"),
            email: Some(format!("user{i}@example.com")),
            email_valid: true,
            first_name: Some(format!("User{i}")),
            last_name: Some("Bench".into()),
            subscribed: Some(true),
            ..Default::default()
        })
        .collect();
    if phase != "send" {
        store
            .import_customers("bench", &customers, (n as u64, n as u64, 0))
            .await?;
    }
    let mut sample = retain_mailer::sample_recipient();
    let recipients: HashMap<String, Recipient> = customers
        .into_iter()
        .map(|c| {
            sample.customer = c;
            (sample.customer.id.clone(), sample.clone())
        })
        .collect();
    let members: Vec<Member> = recipients
        .keys()
        .map(|id| Member {
            customer_id: id.clone(),
            holdout: false,
        })
        .collect();
    let composer = Arc::new(Composer::new(
        TemplateSet::load(&dir, &template, "https://t.example.com", &secret)?,
        Identity::new("Example Shop <news@shop.example.com>", "")?,
        Shared {
            campaign: CampaignInfo {
                id: "bench".into(),
                goal: template.clone(),
                goal_name: template.clone(),
                template: template.clone(),
            },
            company_name: "Example Shop Ltd".into(),
            company_address: "1 Example Street, 10115 Berlin, Germany".into(),
            from: "Example Shop <news@shop.example.com>".into(),
            reply_to: String::new(),
            shop_url: "https://shop.example.com".into(),
            tracking_base_url: "https://t.example.com".into(),
            offer: Offer {
                discount_pct: Some(15.0),
                code_prefix: None,
            },
            today: "2026-11-22".into(),
        },
        secret,
        None,
    ));
    let t = Instant::now();
    if phase != "send" {
        queue_campaign(
            &store,
            &composer,
            &members,
            &recipients,
            ConsentCheck::default(),
        )
        .await?;
    }
    let queue_s = t.elapsed().as_secs_f64();
    if phase == "queue" {
        println!(
            "{}",
            serde_json::json!({"phase": "queue", "n": n, "queue_seconds": queue_s})
        );
        return Ok(());
    }
    let probe = composer.compose(1, "<probe@shop.example.com>", "user1@example.com", &sample)?;
    let settings = SmtpSettings::from_url(&url, None, None)?;
    let transport = Arc::new(SmtpTransport::new(settings, concurrency));
    let opts = SendOptions {
        rate: 0.0,
        concurrency,
        ..Default::default()
    };
    let t = Instant::now();
    let rep = send_campaign(
        &store,
        composer,
        transport,
        Arc::new(recipients),
        &opts,
        Arc::new(Progress::default()),
        Arc::new(AtomicBool::new(false)),
        0,
    )
    .await?;
    let s = t.elapsed().as_secs_f64();
    let counts = store.send_counts("bench").await?;
    println!(
        "{}",
        serde_json::json!({
            "tool": "retain", "n": n, "concurrency": concurrency, "sent": rep.sent,
            "failed": rep.failed, "ledger_sent": counts.sent, "seconds": (s * 1000.0).round() / 1000.0,
            "messages_per_s": (rep.sent as f64 / s).round(), "queue_seconds": (queue_s * 1000.0).round() / 1000.0,
            "message_bytes": probe.raw.len(),
        })
    );
    Ok(())
}
