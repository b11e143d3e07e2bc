//! Fixture for scripts/bench-web.sh: `bench_fixture setup DB N BASE_URL OUT_DIR` creates N
//! customers with sent emails of one campaign in the SQLite file DB (secret from RETAIN_SECRET)
//! and writes OUT_DIR/open.txt and OUT_DIR/click.txt, one tracking path per line;
//! `bench_fixture count DB` prints the number of recorded events per kind as JSON;
//! `bench_fixture write DB N BATCH` measures the raw write rate of the events store.

use std::io::Write;

use retain_core::tracking::{load_secret, Links};
use retain_core::Customer;
use retain_store::{Claim, ConsentCheck, NewSend, Store};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("setup") if args.len() == 6 => {
            let store = Store::open_sqlite(std::path::Path::new(&args[2])).await?;
            let n: usize = args[3].parse()?;
            let secret = load_secret(std::path::Path::new("."))?;
            let customers: Vec<Customer> = (0..n)
                .map(|i| Customer {
                    id: format!("bench-{i}"),
                    email: Some(format!("bench{i}@example.com")),
                    email_valid: true,
                    subscribed: Some(true),
                    ..Default::default()
                })
                .collect();
            store
                .import_customers("bench", &customers, (0, 0, 0))
                .await?;
            let sends: Vec<NewSend> = customers
                .iter()
                .map(|c| NewSend {
                    customer_id: c.id.clone(),
                    email: c.email.clone().unwrap_or_default(),
                    message_id: format!("<{}@bench>", c.id),
                    suppressed: None,
                })
                .collect();
            store.queue_sends("bench", &sends).await?;
            store
                .acquire_send_lease("bench", "bench", 600)
                .await?
                .map_err(|_| "lease taken")?;
            let claimed = match store
                .claim_sends("bench", "bench", 600, n, ConsentCheck::default())
                .await?
            {
                Claim::Claimed { sends, .. } => sends,
                other => return Err(format!("claim: {other:?}").into()),
            };
            // Sent an hour ago: no open counts as a prefetch.
            let at = chrono::Utc::now().timestamp() - 3600;
            let marked: Vec<(i64, i64)> = claimed.iter().map(|s| (s.id, at)).collect();
            store.mark_sent(&marked).await?;
            let out = std::path::Path::new(&args[5]);
            let mut open = std::fs::File::create(out.join("open.txt"))?;
            let mut click = std::fs::File::create(out.join("click.txt"))?;
            for s in &claimed {
                let l = Links {
                    base_url: &args[4],
                    secret: &secret,
                    send_id: s.id,
                };
                let strip = |u: String| u.trim_start_matches(args[4].as_str()).to_string();
                writeln!(open, "{}", strip(l.open_pixel()))?;
                writeln!(
                    click,
                    "{}",
                    strip(l.click(&format!("https://shop.example/p/{}", s.id)))
                )?;
            }
            store.close().await;
            Ok(())
        }
        Some("count") if args.len() == 3 => {
            let store = Store::open_sqlite(std::path::Path::new(&args[2])).await?;
            let counts = store.event_counts().await?;
            println!("{}", serde_json::to_string(&counts)?);
            store.close().await;
            Ok(())
        }
        Some("write") if args.len() == 5 => {
            // Raw write throughput of the events store: N events in batches of B.
            let store = Store::open_sqlite(std::path::Path::new(&args[2])).await?;
            let n: usize = args[3].parse()?;
            let b: usize = args[4].parse()?;
            let events: Vec<retain_store::NewEvent> = (0..n)
                .map(|i| retain_store::NewEvent {
                    send_id: (i * 7919 % 20000) as i64,
                    kind: retain_store::EventKind::Open,
                    at: 1_700_000_000 + i as i64,
                    bot: false,
                    url: None,
                    user_agent: Some("Mozilla/5.0 (X11; Linux x86_64)".into()),
                })
                .collect();
            let t = std::time::Instant::now();
            for chunk in events.chunks(b.max(1)) {
                store.record_events(chunk).await?;
            }
            let s = t.elapsed().as_secs_f64();
            println!(
                "{n} events in batches of {b}: {s:.2} s = {:.0} events/s",
                n as f64 / s
            );
            store.close().await;
            Ok(())
        }
        _ => Err(
            "usage: bench_fixture setup DB N BASE_URL OUT_DIR | count DB | write DB N BATCH".into(),
        ),
    }
}
