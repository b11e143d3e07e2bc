//! A/B variants and follow-up steps end to end through the `retain` binary and an independent
//! SMTP server (Python's aiosmtpd into a Maildir): each recipient gets their variant's email once,
//! the holdout nothing; `retain followups run` sends the due step only to the recipients its rule
//! matches (here: those who did not unsubscribe), once, however often it runs.
//!
//! Needs a Python with aiosmtpd (`RETAIN_TEST_PYTHON`, else `<repo>/.venv/bin/python`, else
//! `python3`); skipped with a message without one unless `RETAIN_REQUIRE_AIOSMTPD=1`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};

use retain_store::{NewPlan, NewPlanCampaign, PlanState, Store, VariantAssignment};

mod common;
use common::{database_url, retain, workspace};

fn python() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("RETAIN_TEST_PYTHON").map(PathBuf::from),
        Some(common::repo(".venv/bin/python")),
        Some(PathBuf::from("python3")),
    ];
    candidates.into_iter().flatten().find(|p| {
        StdCommand::new(p)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const SERVER: &str = r#"
import asyncio, sys
from aiosmtpd.smtp import SMTP
from aiosmtpd.handlers import Mailbox
handler = Mailbox(sys.argv[1])
loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
server = loop.run_until_complete(loop.create_server(lambda: SMTP(handler, loop=loop), "127.0.0.1", 0))
print(server.sockets[0].getsockname()[1], flush=True)
loop.run_forever()
"#;

fn start_aiosmtpd(py: &Path, maildir: &Path) -> (Killed, u16) {
    let mut child = StdCommand::new(py)
        .args(["-c", SERVER])
        .arg(maildir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start aiosmtpd");
    let mut line = String::new();
    let read = child
        .stdout
        .take()
        .map(|out| BufReader::new(out).read_line(&mut line));
    let server = Killed(child);
    let port = match (read, line.trim().parse::<u16>()) {
        (Some(Ok(_)), Ok(p)) if p != 0 => p,
        other => panic!("aiosmtpd did not report its port: {other:?} {line:?}"),
    };
    (server, port)
}

/// (To, Subject) of every message in the Maildir.
fn delivered(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(entries) = std::fs::read_dir(dir.join(sub)) {
            for e in entries.flatten() {
                let text = std::fs::read_to_string(e.path()).expect("read message");
                let head = text.replace("\r\n", "\n");
                let head = head.split("\n\n").next().unwrap_or("").replace("\n ", " ");
                let get = |name: &str| {
                    head.lines()
                        .find_map(|l| {
                            let (n, v) = l.split_once(':')?;
                            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                        })
                        .unwrap_or_default()
                };
                out.push((get("To"), get("Subject")));
            }
        }
    }
    out.sort();
    out
}

fn write_template(ws: &Path, name: &str, subject: &str) {
    let t = ws.join("templates");
    std::fs::copy(t.join("win_back.html"), t.join(format!("{name}.html"))).expect("html");
    std::fs::copy(t.join("win_back.txt"), t.join(format!("{name}.txt"))).expect("txt");
    std::fs::write(t.join(format!("{name}.subject")), subject).expect("subject");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variants_and_a_follow_up_step_reach_the_smtp_server_once() {
    let Some(py) = python() else {
        let msg = "SKIP: variants_and_a_follow_up_step: no Python with aiosmtpd (pip install aiosmtpd, or set RETAIN_TEST_PYTHON)";
        if std::env::var("RETAIN_REQUIRE_AIOSMTPD").is_ok_and(|v| v == "1") {
            panic!("{msg}");
        }
        let _ = writeln!(std::io::stderr().lock(), "{msg}");
        return;
    };
    let (dir, ws) = workspace();
    let maildir = dir.path().join("Maildir");
    let (_server, port) = start_aiosmtpd(&py, &maildir);
    let smtp = format!("smtp://127.0.0.1:{port}");
    write_template(&ws, "offer_a", "Variant A subject");
    write_template(&ws, "offer_b", "Variant B subject");
    write_template(&ws, "reminder", "Reminder subject");

    // Ten customers: c0..c7 recipients (even: variant a, odd: b), c8 and c9 the holdout.
    let mut csv = String::from("customer_id,email,first_name,subscribed\n");
    for i in 0..10 {
        csv.push_str(&format!("c{i},c{i}@mail.example,N{i},yes\n"));
    }
    std::fs::write(dir.path().join("customers.csv"), csv).expect("csv");
    retain(&ws)
        .args(["import", "customers"])
        .arg(dir.path().join("customers.csv"))
        .assert()
        .success();
    let store = Store::open(&database_url(&ws)).await.expect("db");
    let recipients: Vec<String> = (0..8).map(|i| format!("c{i}")).collect();
    let variants: Vec<VariantAssignment> = recipients
        .iter()
        .enumerate()
        .map(|(i, id)| VariantAssignment {
            customer_id: id.clone(),
            variant: if i % 2 == 0 { "a" } else { "b" }.into(),
            template: if i % 2 == 0 { "offer_a" } else { "offer_b" }.into(),
        })
        .collect();
    let details = serde_json::json!({
        "goal_name": "Win-back",
        "window_days": 30,
        "steps": [{"number": 1, "after_days": 3, "when_text": "not unsubscribed", "template": "reminder"}],
        "approve": "sequence",
    });
    let plan_id = store
        .save_plan_with_variants(
            &NewPlan {
                budget: 10.0,
                used: 1.0,
                expected_value: 1.0,
                holdout_fraction: 0.2,
                seed: 1,
                as_of: None,
                goals_file: None,
                document: "{}".into(),
                campaigns: vec![NewPlanCampaign {
                    local_id: "win_back-1".into(),
                    goal: "win_back".into(),
                    template: "offer_a".into(),
                    segments: vec!["At Risk".into()],
                    expected_value: 1.0,
                    cost: 1.0,
                    recipients: recipients.clone(),
                    holdout: vec!["c8".into(), "c9".into()],
                    details: details.to_string(),
                }],
            },
            &[("win_back-1".into(), variants)],
        )
        .await
        .expect("plan");
    store
        .set_plan_state(&plan_id, PlanState::Approved)
        .await
        .expect("approve");
    let campaign = format!("{plan_id}-win_back-1");

    retain(&ws)
        .env("RETAIN_SMTP_URL", &smtp)
        .args(["send", &campaign, "--rate", "0"])
        .assert()
        .success();
    let first = delivered(&maildir);
    assert_eq!(first.len(), 8, "{first:?}");
    for (to, subject) in &first {
        // "N3 <c3@mail.example>"
        let i: usize = to
            .split_once("<c")
            .and_then(|(_, rest)| rest.split('@').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{to}"));
        let want = if i % 2 == 0 {
            "Variant A subject"
        } else {
            "Variant B subject"
        };
        assert_eq!(subject, want, "{to}");
    }

    // Not due yet: nothing happens.
    retain(&ws)
        .env("RETAIN_SMTP_URL", &smtp)
        .args(["followups", "run"])
        .assert()
        .success();
    assert_eq!(delivered(&maildir).len(), 8);

    // c3 unsubscribes; four days later the step is due and goes to the seven others.
    retain(&ws)
        .args(["suppress", "add", "c3@mail.example"])
        .assert()
        .success();
    let later = (chrono::Utc::now().timestamp() + 4 * 86_400).to_string();
    let dry = retain(&ws)
        .env("RETAIN_TEST_NOW", &later)
        .args(["followups", "run", "--dry-run", "--format", "json"])
        .output()
        .expect("dry run");
    let v: serde_json::Value = serde_json::from_slice(&dry.stdout).expect("json");
    assert_eq!(v["created"][0]["matched"], 8, "{v}");
    assert_eq!(v["created"][0]["queued"], 7, "{v}");
    assert_eq!(delivered(&maildir).len(), 8, "a dry run sends nothing");
    for _ in 0..2 {
        retain(&ws)
            .env("RETAIN_SMTP_URL", &smtp)
            .env("RETAIN_TEST_NOW", &later)
            .args(["followups", "run"])
            .assert()
            .success();
    }
    let all = delivered(&maildir);
    let reminders: Vec<&String> = all
        .iter()
        .filter(|(_, s)| s == "Reminder subject")
        .map(|(to, _)| to)
        .collect();
    assert_eq!(reminders.len(), 7, "{all:?}");
    assert!(!reminders.iter().any(|to| to.contains("c3@")));
    assert!(!all
        .iter()
        .any(|(to, _)| to.contains("c8@") || to.contains("c9@")));

    // The report shows the variants and the step's funnel.
    let out = retain(&ws)
        .args(["report", &campaign, "--format", "json"])
        .output()
        .expect("report");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let seq = &r["sequence"];
    assert_eq!(
        seq["variant_test"]["variants"][0]["result"]["recipients"],
        4
    );
    assert_eq!(seq["steps"][0]["sent"], 7, "{seq}");
    store.close().await;
}
