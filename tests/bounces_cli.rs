//! `retain bounces ingest` end to end: a planned, approved campaign sent through a real SMTP
//! server with per-message return paths; a DSN 5.1.1 (to one message's return path) and an ARF
//! abuse report (naming another's Message-ID) read from a directory; the next `retain plan`
//! excludes both addresses; a soft bounce read from standard input suppresses nothing; a second
//! complaint over the guardrail's limit pauses the campaign, and `retain campaign show` says why.

use std::path::Path;
use std::process::Output;

use retain_mailer::testkit::{Received, SmtpServer};
use serde_json::Value;

mod common;
use common::{repo, retain, workspace};

const BOUNCE_DOMAIN: &str = "bounce.shop.example";

async fn run(mut c: assert_cmd::Command) -> Output {
    tokio::task::spawn_blocking(move || c.output().expect("run retain"))
        .await
        .expect("join")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn json(c: assert_cmd::Command) -> Value {
    let o = run(c).await;
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)))
}

fn cmd(ws: &Path, args: &[&str]) -> assert_cmd::Command {
    let mut c = retain(ws);
    c.arg("--quiet")
        .args(args)
        .env("RETAIN_SENDING_BOUNCE_DOMAIN", BOUNCE_DOMAIN)
        .env_remove("RETAIN_SECRET")
        .env_remove("RETAIN_SENDING_GUARDRAIL_MIN_DELIVERED");
    c
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(repo("crates/mailer/tests/data").join(name)).expect("fixture")
}

fn message_id(m: &Received) -> String {
    m.text()
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .expect("Message-ID header")
        .trim()
        .to_string()
}

async fn excluded(ws: &Path) -> (i64, i64) {
    let p = json(cmd(
        ws,
        &["plan", "--budget", "40", "--seed", "7", "--format", "json"],
    ))
    .await;
    let ex = &p["excluded"];
    (
        ex["bounced"].as_i64().unwrap_or(0),
        ex["unsubscribed_or_suppressed"].as_i64().unwrap_or(0),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounces_and_complaints_stop_further_mail_and_pause_the_campaign() {
    let (dir, ws) = workspace();
    let data = dir.path().join("data");
    let o = run({
        let mut c = cmd(
            &ws,
            &["demo-data", "--customers", "300", "--seed", "5", "--out"],
        );
        c.arg(&data);
        c
    })
    .await;
    assert!(o.status.success(), "{}", text(&o));
    for (kind, file) in [("customers", "customers.csv"), ("orders", "orders.csv")] {
        let mut c = cmd(&ws, &["import", kind]);
        c.arg(data.join(file));
        let o = run(c).await;
        assert!(o.status.success(), "{}", text(&o));
    }
    let o = run(cmd(&ws, &["segment"])).await;
    assert!(o.status.success(), "{}", text(&o));

    // Plan, approve, send through the test SMTP server.
    let plan = json(cmd(
        &ws,
        &["plan", "--budget", "40", "--seed", "7", "--format", "json"],
    ))
    .await;
    let plan_id = plan["plan_id"].as_str().expect("plan_id").to_string();
    let campaign = plan["campaigns"][0]["campaign_id"]
        .as_str()
        .expect("a campaign")
        .to_string();
    let o = run(cmd(&ws, &["plan", "approve", &plan_id])).await;
    assert!(o.status.success(), "{}", text(&o));
    let server = SmtpServer::start().await.expect("smtp");
    let mut send = cmd(&ws, &["send", &campaign, "--rate", "0", "--format", "json"]);
    send.env("RETAIN_SMTP_URL", server.url());
    let sent = json(send).await;
    let received = server.received();
    assert!(received.len() >= 3, "{sent}");
    assert_eq!(sent["sent"].as_u64(), Some(received.len() as u64));
    // Every envelope sender is the message's own return path.
    for m in &received {
        assert!(
            m.mail_from.starts_with("bounces+") && m.mail_from.ends_with(BOUNCE_DOMAIN),
            "{}",
            m.mail_from
        );
    }
    let senders: std::collections::BTreeSet<&str> =
        received.iter().map(|m| m.mail_from.as_str()).collect();
    assert_eq!(senders.len(), received.len(), "one return path per message");
    let (a, b, c) = (&received[0], &received[1], &received[2]);
    let (to_a, to_b, to_c) = (&a.rcpt_to[0], &b.rcpt_to[0], &c.rcpt_to[0]);
    let before = excluded(&ws).await;

    // A DSN 5.1.1 to a's return path (its original's Message-ID unknown: the return path is
    // what matches) and an ARF abuse report quoting b's headers, plus a malformed message.
    let reports = dir.path().join("reports");
    std::fs::create_dir(&reports).expect("dir");
    let dsn = fixture("dsn-5.1.1.eml")
        .replace(
            "bounces+17-aaaaaaaaaaaaaaaa@bounce.shop.example",
            &a.mail_from,
        )
        .replace("gone@mail.example", to_a)
        .replace("<0a1b2c3d@shop.example>", "<lost@shop.example>");
    std::fs::write(reports.join("1-dsn.eml"), dsn).expect("write");
    let arf = fixture("arf-abuse.eml")
        .replace("<9f8e7d6c@shop.example>", &message_id(b))
        .replace("Angry@mail.example", to_b)
        .replace("angry@mail.example", to_b)
        .replace("p1-win_back-1", &campaign);
    std::fs::write(reports.join("2-arf.eml"), arf).expect("write");
    std::fs::write(reports.join("3-broken.eml"), fixture("malformed.eml")).expect("write");
    std::fs::write(reports.join("notes.txt"), "not a message").expect("write");
    let mut c1 = cmd(&ws, &["bounces", "ingest", "--format", "json"]);
    c1.arg(&reports);
    let out = json(c1).await;
    assert_eq!(out["summary"]["files"], 3, "{out}");
    assert_eq!(out["summary"]["matched"], 2, "{out}");
    assert_eq!(out["summary"]["suppressed"], 2, "{out}");
    assert_eq!(out["summary"]["malformed"], 1, "{out}");
    let files = out["files"].as_array().expect("files");
    assert_eq!(files[0]["kind"], "dsn");
    assert_eq!(files[0]["items"][0]["matched_by"], "return_path");
    assert_eq!(files[0]["items"][0]["outcome"], "hard_bounce");
    assert_eq!(files[1]["kind"], "arf");
    assert_eq!(files[1]["items"][0]["matched_by"], "message_id");
    assert_eq!(files[1]["items"][0]["campaign_id"], campaign.as_str());
    assert!(files[2]["file"]
        .as_str()
        .is_some_and(|f| f.ends_with("3-broken.eml")));
    assert!(
        files[2]["note"]
            .as_str()
            .is_some_and(|n| n.contains("delivery-status")),
        "{out}"
    );
    // Below the guardrail's minimum of 200 delivered: judged later, not paused.
    assert_eq!(out["campaigns"][0]["paused_now"], false, "{out}");

    // The next plan excludes both: one as bounced, one as suppressed.
    let after = excluded(&ws).await;
    assert_eq!(after.0, before.0 + 1, "bounced: {before:?} → {after:?}");
    assert_eq!(after.1, before.1 + 1, "suppressed: {before:?} → {after:?}");

    // A soft bounce of c, from standard input (an MTA pipe): counted, not suppressed.
    let soft = fixture("dsn-4.2.2.eml")
        .replace(
            "bounces+18-bbbbbbbbbbbbbbbb@bounce.shop.example",
            &c.mail_from,
        )
        .replace("full@mail.example", to_c);
    let mut c2 = cmd(&ws, &["bounces", "ingest", "-", "--format", "json"]);
    c2.write_stdin(soft);
    let out = json(c2).await;
    assert_eq!(out["files"][0]["file"], "-");
    assert_eq!(
        out["files"][0]["items"][0]["outcome"], "soft_bounce",
        "{out}"
    );
    assert_eq!(out["files"][0]["items"][0]["suppressed"], false);
    let list = json(cmd(&ws, &["suppress", "list", "--format", "json"])).await;
    let listed = list.to_string();
    assert!(
        listed.contains(to_a.as_str()) && listed.contains(to_b.as_str()),
        "{list}"
    );
    assert!(
        !listed.contains(to_c.as_str()),
        "a soft bounce does not suppress: {list}"
    );

    // A second complaint with the minimum lowered: 2 of N delivered crosses 0.1%, the campaign
    // pauses itself and says why.
    let arf_c = fixture("arf-abuse.eml")
        .replace("<arf-1@fbl.mail.example>", "<arf-2@fbl.mail.example>")
        .replace("<9f8e7d6c@shop.example>", &message_id(c))
        .replace("Angry@mail.example", to_c)
        .replace("angry@mail.example", to_c);
    let mut c3 = cmd(&ws, &["bounces", "ingest", "-"]);
    c3.env("RETAIN_SENDING_GUARDRAIL_MIN_DELIVERED", "2")
        .write_stdin(arf_c);
    let o = run(c3).await;
    assert!(o.status.success(), "{}", text(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("PAUSED: complaint rate"), "{table}");
    let show = json(cmd(
        &ws,
        &["campaign", "show", &campaign, "--format", "json"],
    ))
    .await;
    assert_eq!(show["send_state"], "paused", "{show}");
    assert!(
        show["paused_reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("complaint rate")),
        "{show}"
    );
    assert_eq!(show["deliverability"]["complaints"], 2);
    assert_eq!(show["deliverability"]["hard_bounces"], 1);
    assert_eq!(show["deliverability"]["soft_bounces"], 1);
    assert_eq!(
        show["deliverability"]["delivered"].as_u64(),
        Some(received.len() as u64)
    );
    assert!(show["domains"].as_array().is_some_and(|d| !d.is_empty()));
    // A paused campaign sends nothing more.
    let mut again = cmd(&ws, &["send", &campaign]);
    again.env("RETAIN_SMTP_URL", server.url());
    let o = run(again).await;
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
}
