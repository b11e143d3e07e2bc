//! `retain send`, `retain mail` and `retain campaign` end to end: a workspace with imported
//! customers and a stored plan, a real SMTP server (the mailer's in-process test server), and
//! the binary killed with SIGKILL in the middle of a campaign, then resumed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use retain_mailer::testkit::SmtpServer;
use retain_store::{NewPlan, NewPlanCampaign, PlanState, Store};

mod common;
use common::{database_url, use_database};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_retain"))
}

fn retain(ws: &Path, smtp: &str, args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.arg("--workspace").arg(ws).args(args);
    c.env("RETAIN_SMTP_URL", smtp)
        .env_remove("RETAIN_SECRET")
        .env_remove("RETAIN_DATABASE_URL")
        .env_remove("RETAIN_SMTP_PASSWORD");
    c
}

async fn run(mut c: Command) -> Output {
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

/// A workspace with `n` customers c000…; c001 opted out, c002 has a hostile first name.
async fn workspace(n: usize) -> (tempfile::TempDir, PathBuf) {
    workspace_on(n, None).await
}

/// [`workspace`] on the database `db` (its SQLite file when `None`).
async fn workspace_on(n: usize, db: Option<&str>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tmp");
    let ws = dir.path().join("shop");
    let o = run({
        let mut c = Command::new(bin());
        c.args(["init"]).arg(&ws);
        c
    })
    .await;
    assert!(o.status.success(), "{}", text(&o));
    if let Some(url) = db {
        use_database(&ws, url);
    }
    let mut csv = String::from("customer_id,email,first_name,subscribed\n");
    for i in 0..n {
        let name = match i {
            2 => "\"<script>alert(1)</script>\"".to_string(),
            _ => format!("Name{i}"),
        };
        let sub = if i == 1 { "no" } else { "yes" };
        csv.push_str(&format!("c{i:03},c{i:03}@mail.example,{name},{sub}\n"));
    }
    let file = dir.path().join("customers.csv");
    std::fs::write(&file, csv).expect("csv");
    let o = run({
        let mut c = Command::new(bin());
        c.arg("--workspace")
            .arg(&ws)
            .args(["import", "customers"])
            .arg(&file)
            .env_remove("RETAIN_DATABASE_URL");
        c
    })
    .await;
    assert!(o.status.success(), "{}", text(&o));
    (dir, ws)
}

/// Stores a plan with one win_back campaign over `members` (every 5th held out); returns the
/// campaign id.
async fn plan(ws: &Path, members: std::ops::Range<usize>, approve: bool) -> String {
    let store = Store::open(&database_url(ws)).await.expect("db");
    let ids: Vec<String> = members.map(|i| format!("c{i:03}")).collect();
    let (holdout, recipients): (Vec<String>, Vec<String>) = ids
        .iter()
        .cloned()
        .enumerate()
        .partition(|(i, _)| i % 5 == 4)
        .into_iter_pair();
    let id = store
        .save_plan(&NewPlan {
            budget: 100.0,
            used: 10.0,
            expected_value: 50.0,
            holdout_fraction: 0.2,
            seed: 1,
            as_of: None,
            goals_file: None,
            document: "{}".into(),
            campaigns: vec![NewPlanCampaign {
                local_id: "win_back-1".into(),
                goal: "win_back".into(),
                template: "win_back".into(),
                segments: vec!["At Risk".into()],
                expected_value: 50.0,
                cost: 10.0,
                recipients,
                holdout,
                details: "{}".into(),
            }],
        })
        .await
        .expect("plan");
    if approve {
        store
            .set_plan_state(&id, PlanState::Approved)
            .await
            .expect("approve");
    }
    store.close().await;
    format!("{id}-win_back-1")
}

trait Pair {
    fn into_iter_pair(self) -> (Vec<String>, Vec<String>);
}

impl Pair for (Vec<(usize, String)>, Vec<(usize, String)>) {
    fn into_iter_pair(self) -> (Vec<String>, Vec<String>) {
        (
            self.0.into_iter().map(|(_, s)| s).collect(),
            self.1.into_iter().map(|(_, s)| s).collect(),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_preview_test_and_campaign_commands() {
    let (_dir, ws) = workspace(20).await;
    let server = SmtpServer::start().await.expect("smtp");
    let url = server.url();
    let draft = plan(&ws, 0..5, false).await;
    let o = run(retain(&ws, &url, &["send", &draft])).await;
    assert_eq!(
        o.status.code(),
        Some(4),
        "draft plans do not send: {}",
        text(&o)
    );
    let o = run(retain(&ws, &url, &["send", "nope"])).await;
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));

    let campaign = plan(&ws, 0..20, true).await;
    // Dry run: nothing sent, nothing written.
    let o = run(retain(
        &ws,
        &url,
        &["send", &campaign, "--dry-run", "--format", "json"],
    ))
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let dry: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(dry["would_send"], 15, "{dry}"); // 16 recipients, c001 opted out
    assert_eq!(dry["skipped_holdout"], 4);
    assert_eq!(dry["rendered"], 15);
    assert!(server.received().is_empty());

    // Preview and a test copy (not recorded).
    let out = ws.join("pv");
    let mut c = retain(
        &ws,
        &url,
        &["mail", "preview", &campaign, "--customer", "c002", "--out"],
    );
    c.arg(&out);
    let o = run(c).await;
    assert!(o.status.success(), "{}", text(&o));
    let html = std::fs::read_to_string(out.join(format!("{campaign}-c002.html"))).expect("html");
    assert!(html.contains("&lt;script&gt;"), "escaped");
    assert!(!html.contains("<script>"));
    assert!(out.join(format!("{campaign}-c002.eml")).is_file());
    let o = run(retain(
        &ws,
        &url,
        &["mail", "test", &campaign, "--to", "qa@shop.example"],
    ))
    .await;
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(server.deliveries().get("qa@shop.example"), Some(&1));

    // Pause blocks sending; resume allows it.
    let o = run(retain(&ws, &url, &["campaign", "pause", &campaign])).await;
    assert!(o.status.success(), "{}", text(&o));
    let o = run(retain(&ws, &url, &["send", &campaign])).await;
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let o = run(retain(&ws, &url, &["campaign", "resume", &campaign])).await;
    assert!(o.status.success(), "{}", text(&o));

    let o = run(retain(
        &ws,
        &url,
        &["send", &campaign, "--rate", "0", "--format", "json"],
    ))
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    for key in [
        "campaign_id",
        "sent",
        "failed",
        "suppressed",
        "skipped_holdout",
        "unconfirmed",
        "elapsed_s",
    ] {
        assert!(rep.get(key).is_some(), "{key} in {rep}");
    }
    assert_eq!(rep["sent"], 15, "{rep}");
    assert_eq!(rep["suppressed"], 1);
    assert_eq!(rep["skipped_holdout"], 4);
    assert_eq!(rep["unconfirmed"], 0);
    let d = server.deliveries();
    assert_eq!(d.len(), 16, "15 recipients + the test copy");
    assert!(d.values().all(|&n| n == 1));
    assert!(!d.contains_key("c001@mail.example"), "opted out");
    assert!(!d.contains_key("c004@mail.example"), "holdout");
    // Sending again sends nothing.
    let o = run(retain(&ws, &url, &["send", &campaign, "--format", "json"])).await;
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(rep["sent"], 0, "{}", text(&o));
    assert_eq!(server.received().len(), 16);

    let o = run(retain(&ws, &url, &["campaign", "list", "--format", "json"])).await;
    assert!(o.status.success(), "{}", text(&o));
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let row = list
        .as_array()
        .expect("array")
        .iter()
        .find(|r| r["campaign_id"] == campaign.as_str())
        .expect("listed");
    assert_eq!(
        (row["sent"].as_i64(), row["suppressed"].as_i64()),
        (Some(15), Some(1))
    );
    let o = run(retain(&ws, &url, &["campaign", "cancel", &campaign])).await;
    assert!(o.status.success(), "{}", text(&o));
    let o = run(retain(&ws, &url, &["campaign", "resume", &campaign])).await;
    assert_eq!(
        o.status.code(),
        Some(4),
        "cancelled stays cancelled: {}",
        text(&o)
    );

    // Without an SMTP URL, messages go to .eml files in the outbox.
    let other = plan(&ws, 0..5, true).await;
    let o = run(retain(&ws, "", &["send", &other, "--rate", "0"])).await;
    assert!(o.status.success(), "{}", text(&o));
    let outbox = ws.join("outbox").join(&other);
    let emls = std::fs::read_dir(&outbox).expect("outbox").count();
    assert_eq!(emls, 3, "c000, c002, c003 (c001 opted out, c004 holdout)");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("sent now"),
        "{}",
        text(&o)
    );
    // -q: the same work, nothing printed.
    let quiet = plan(&ws, 0..5, true).await;
    let o = run(retain(&ws, "", &["-q", "send", &quiet, "--rate", "0"])).await;
    assert!(o.status.success(), "{}", text(&o));
    assert!(o.stdout.is_empty() && o.stderr.is_empty(), "{}", text(&o));
    let emls = std::fs::read_dir(ws.join("outbox").join(&quiet))
        .expect("outbox")
        .count();
    assert_eq!(emls, 3);
}

/// The claim TTL of the senders that the tests kill (the engine's `RETAIN_TEST_CLAIM_TTL_S`
/// hook): extended by their heartbeat while they live.
const CLAIM_TTL_S: &str = "6";

/// `retain send` again after a sender died: it starts at once (the dead sender's PID is gone).
async fn send_again(ws: &Path, url: &str, extra: &[&str]) -> Output {
    let mut args = vec!["send"];
    args.extend_from_slice(extra);
    run(retain(ws, url, &args)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_retain_send_then_resume() {
    kill_9_then_resume(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_retain_send_then_resume_on_postgres() {
    if let Some(db) = common::postgres() {
        kill_9_then_resume(Some(&db.url)).await;
    }
}

async fn kill_9_then_resume(db: Option<&str>) {
    let (_dir, ws) = workspace_on(300, db).await;
    let server = SmtpServer::start().await.expect("smtp");
    let url = server.url();
    let campaign = plan(&ws, 0..300, true).await;
    let mut child = retain(
        &ws,
        &url,
        &["send", &campaign, "--rate", "30", "--format", "json"],
    )
    .env("RETAIN_TEST_CLAIM_TTL_S", CLAIM_TTL_S)
    .spawn()
    .expect("spawn");
    assert!(
        server.wait_for(60, Duration::from_secs(60)).await,
        "sending started"
    );
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let before = server.received().len();
    // No waiting for an expiry: the rerun sees the dead sender's PID gone on this host and
    // takes its claimed-but-untried recipients at once.
    let o = run(retain(
        &ws,
        &url,
        &["send", &campaign, "--rate", "0", "--format", "json"],
    ))
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let d = server.deliveries();
    assert!(d.values().all(|&n| n == 1), "a recipient got two: {d:?}");
    let unconfirmed = rep["unconfirmed"].as_u64().expect("unconfirmed") as usize;
    let eligible = 240 - 1; // 300 members, 60 held out, c001 opted out
    let store = Store::open(&database_url(&ws)).await.expect("db");
    let counts = store.send_counts(&campaign).await.expect("counts");
    assert_eq!(counts.sent as usize + unconfirmed, eligible, "{rep}");
    // Unconfirmed: only what the killed sender had in flight (smtp.concurrency = 4 connections,
    // each one transaction plus at most one acceptance not yet written).
    assert!(unconfirmed <= 8, "{unconfirmed} unconfirmed: {rep}");
    assert!(d.len() >= counts.sent as usize && d.len() <= eligible);
    assert!(before < eligible, "killed mid-run");
    for r in store.sends_of(&campaign).await.expect("rows") {
        if r.state == retain_store::SendState::Sent {
            assert_eq!(d.get(&r.email), Some(&1), "{} sent once", r.email);
        }
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_servers_250_is_unconfirmed_until_resend_unconfirmed() {
    crash_after_accept_then_resend_unconfirmed(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_servers_250_on_postgres() {
    if let Some(db) = common::postgres() {
        crash_after_accept_then_resend_unconfirmed(Some(&db.url)).await;
    }
}

/// `retain send` dies (the engine's `RETAIN_TEST_CRASH_AFTER_ACCEPT` hook aborts it) right after
/// the server accepted the 5th message, before the ledger recorded it: the next run reports the
/// row unconfirmed and does not send it; only `--resend-unconfirmed` does.
async fn crash_after_accept_then_resend_unconfirmed(db: Option<&str>) {
    let (_dir, ws) = workspace_on(30, db).await;
    let server = SmtpServer::start().await.expect("smtp");
    let url = server.url();
    let campaign = plan(&ws, 0..30, true).await;
    let eligible = 24 - 1; // 30 members, 6 held out, c001 opted out
    let o = run({
        let mut c = retain(
            &ws,
            &url,
            &["send", &campaign, "--rate", "0", "--concurrency", "1"],
        );
        c.env("RETAIN_TEST_CRASH_AFTER_ACCEPT", "5")
            .env("RETAIN_TEST_CLAIM_TTL_S", CLAIM_TTL_S);
        c
    })
    .await;
    assert!(!o.status.success(), "it crashed: {}", text(&o));
    let received = server.received();
    assert_eq!(
        received.len(),
        5,
        "one connection: 5 accepted, then the crash"
    );
    let crashed = received[4].rcpt_to[0].clone();
    let store = Store::open(&database_url(&ws)).await.expect("db");
    let row = store
        .sends_of(&campaign)
        .await
        .expect("rows")
        .into_iter()
        .find(|r| r.email == crashed)
        .expect("row");
    assert_eq!(row.state, retain_store::SendState::Sending, "unconfirmed");

    let o = send_again(&ws, &url, &[&campaign, "--format", "json", "--rate", "0"]).await;
    assert!(o.status.success(), "{}", text(&o));
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let unconfirmed = rep["unconfirmed"].as_u64().expect("unconfirmed");
    assert!(unconfirmed >= 1, "{rep}");
    let d = server.deliveries();
    assert_eq!(d.get(&crashed), Some(&1), "not silently resent: {d:?}");
    assert!(d.values().all(|&n| n == 1), "{d:?}");
    let counts = store.send_counts(&campaign).await.expect("counts");
    assert_eq!(counts.sending as u64, unconfirmed);
    assert_eq!(counts.sent as u64 + unconfirmed, eligible, "{rep}");

    let o = run(retain(
        &ws,
        &url,
        &[
            "send",
            &campaign,
            "--resend-unconfirmed",
            "--rate",
            "0",
            "--format",
            "json",
        ],
    ))
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(rep["unconfirmed"], 0, "{rep}");
    assert_eq!(rep["sent"].as_u64(), Some(unconfirmed), "{rep}");
    let d = server.deliveries();
    assert_eq!(d.len() as u64, eligible);
    assert_eq!(d.get(&crashed), Some(&2), "resent because asked");
    // Twice only for messages the server had accepted before the crash (which the ledger had
    // not recorded yet: outcomes are written in batches); never three times.
    let before_crash: Vec<&String> = received.iter().map(|m| &m.rcpt_to[0]).collect();
    for (email, n) in &d {
        assert!(
            *n == 1 || (*n == 2 && before_crash.contains(&email)),
            "{email} got {n}: {d:?}"
        );
    }
    let counts = store.send_counts(&campaign).await.expect("counts");
    assert_eq!((counts.sent as u64, counts.sending), (eligible, 0));
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_error_stops_the_send_with_file_line_and_name() {
    let (_dir, ws) = workspace(6).await;
    let server = SmtpServer::start().await.expect("smtp");
    let campaign = plan(&ws, 0..6, true).await;
    let file = ws.join("templates/win_back.html");
    let original = std::fs::read_to_string(&file).expect("template");
    let mut lines: Vec<&str> = original.lines().collect();
    lines.insert(3, "<p>{{ customer.frist_name }}</p>");
    std::fs::write(&file, lines.join("\n")).expect("write");
    let o = run(retain(&ws, &server.url(), &["send", &campaign])).await;
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("win_back.html"), "{err}");
    assert!(err.contains("line 4"), "{err}");
    assert!(err.contains("frist_name"), "{err}");
    assert!(server.received().is_empty());
    std::fs::write(&file, original).expect("restore");
    let o = run(retain(
        &ws,
        &server.url(),
        &["send", &campaign, "--rate", "0"],
    ))
    .await;
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(server.received().len(), 4, "c000, c002, c003, c005");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_cleanly_and_the_next_send_finishes() {
    let (_dir, ws) = workspace(100).await;
    let server = SmtpServer::start().await.expect("smtp");
    let url = server.url();
    let campaign = plan(&ws, 0..100, true).await;
    let child = retain(
        &ws,
        &url,
        &["send", &campaign, "--rate", "10", "--format", "json"],
    )
    .stdout(std::process::Stdio::piped())
    .spawn()
    .expect("spawn");
    assert!(
        server.wait_for(15, Duration::from_secs(60)).await,
        "started"
    );
    let pid = child.id().to_string();
    let st = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill -INT");
    assert!(st.success());
    let o = tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"))
        .await
        .expect("join");
    assert!(o.status.success(), "{}", text(&o));
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json report");
    assert_eq!(rep["stopped"], "interrupted", "{rep}");
    assert_eq!(rep["unconfirmed"], 0, "clean stop: {rep}");
    let first = rep["sent"].as_u64().expect("sent") as usize;
    assert_eq!(server.received().len(), first);
    let eligible = 80 - 1; // 20 held out, c001 opted out
    assert!(first < eligible);
    let o = run(retain(
        &ws,
        &url,
        &["send", &campaign, "--rate", "0", "--format", "json"],
    ))
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let d = server.deliveries();
    assert_eq!(d.len(), eligible);
    assert!(d.values().all(|&n| n == 1));
}
