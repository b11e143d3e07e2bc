//! A provider webhook through the real `retain serve`: a planned, approved campaign sent through
//! a real SMTP server, then a Mailgun "failed" event for one recipient, HMAC-signed as Mailgun
//! signs it, posted to the running server. A forged copy is refused and changes nothing; the
//! genuine one suppresses the address, and the next `retain plan` excludes it as bounced.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command as StdCommand, Output, Stdio};
use std::time::Duration;

use assert_cmd::cargo::CommandCargoExt;
use hmac::{Hmac, Mac};
use retain_mailer::testkit::SmtpServer;
use serde_json::{json, Value};
use sha2::Sha256;

mod common;
use common::{retain, workspace};

const KEY: &str = "mailgun-test-signing-key";

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

fn cmd(ws: &Path, args: &[&str]) -> assert_cmd::Command {
    let mut c = retain(ws);
    c.arg("--quiet")
        .args(args)
        .env("RETAIN_SENDING_BOUNCE_DOMAIN", "bounce.shop.example")
        .env_remove("RETAIN_SECRET");
    c
}

async fn json_of(c: assert_cmd::Command) -> Value {
    let o = run(c).await;
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)))
}

async fn bounced(ws: &Path) -> i64 {
    let p = json_of(cmd(
        ws,
        &["plan", "--budget", "40", "--seed", "7", "--format", "json"],
    ))
    .await;
    p["excluded"]["bounced"].as_i64().unwrap_or(0)
}

fn serve(ws: &Path) -> (Child, String) {
    let mut c = StdCommand::cargo_bin("retain").expect("binary");
    c.arg("--workspace")
        .arg(ws)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env_remove("RETAIN_SECRET")
        .env_remove("RETAIN_DATABASE_URL")
        .env_remove("RETAIN_WORKSPACE")
        .env("RETAIN_WEBHOOK_MAILGUN_SIGNING_KEY", KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let first = lines.next().expect("a line").expect("utf-8");
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_string();
    let second = lines.next().expect("a line").expect("utf-8");
    assert!(second.contains("/webhooks/mailgun"), "{second}");
    assert!(!second.contains(KEY), "the key is never printed");
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

fn post_json(addr: &str, path: &str, body: &str) -> u16 {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read");
    String::from_utf8_lossy(&out)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn mailgun_event(key: &str, token: &str, recipient: &str, message_id: &str) -> String {
    let ts = chrono::Utc::now().timestamp();
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("key");
    mac.update(format!("{ts}{token}").as_bytes());
    let sig: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    json!({
        "signature": {"timestamp": ts.to_string(), "token": token, "signature": sig},
        "event-data": {
            "event": "failed", "severity": "permanent", "id": format!("ev-{token}"),
            "recipient": recipient,
            "delivery-status": {"code": 550, "message": "5.1.1 The email account does not exist"},
            "message": {"headers": {"message-id": message_id}}
        }
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_mailgun_bounce_through_retain_serve_excludes_the_address_from_the_next_plan() {
    let (dir, ws) = workspace();
    let data = dir.path().join("data");
    let mut c = cmd(
        &ws,
        &["demo-data", "--customers", "300", "--seed", "5", "--out"],
    );
    c.arg(&data);
    let o = run(c).await;
    assert!(o.status.success(), "{}", text(&o));
    for (kind, file) in [("customers", "customers.csv"), ("orders", "orders.csv")] {
        let mut c = cmd(&ws, &["import", kind]);
        c.arg(data.join(file));
        let o = run(c).await;
        assert!(o.status.success(), "{}", text(&o));
    }
    let o = run(cmd(&ws, &["segment"])).await;
    assert!(o.status.success(), "{}", text(&o));
    let plan = json_of(cmd(
        &ws,
        &["plan", "--budget", "40", "--seed", "7", "--format", "json"],
    ))
    .await;
    let plan_id = plan["plan_id"].as_str().expect("plan_id").to_string();
    let campaign = plan["campaigns"][0]["campaign_id"]
        .as_str()
        .expect("campaign")
        .to_string();
    let o = run(cmd(&ws, &["plan", "approve", &plan_id])).await;
    assert!(o.status.success(), "{}", text(&o));
    let server = SmtpServer::start().await.expect("smtp");
    let mut send = cmd(&ws, &["send", &campaign, "--rate", "0", "--format", "json"]);
    send.env("RETAIN_SMTP_URL", server.url());
    json_of(send).await;
    let received = server.received();
    assert!(!received.is_empty());
    let a = &received[0];
    let to = a.rcpt_to[0].clone();
    let mid = a
        .text()
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .expect("Message-ID")
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string();
    let before = bounced(&ws).await;

    let (child, addr) = serve(&ws);
    let forged = mailgun_event("a-guessed-key", "tok-1", &to, &mid);
    let genuine = mailgun_event(KEY, "tok-2", &to, &mid);
    let (f, g, replay) = tokio::task::spawn_blocking({
        let addr = addr.clone();
        move || {
            let f = post_json(&addr, "/webhooks/mailgun", &forged);
            let g = post_json(&addr, "/webhooks/mailgun", &genuine);
            let r = post_json(&addr, "/webhooks/mailgun", &genuine);
            (f, g, r)
        }
    })
    .await
    .expect("join");
    StdCommand::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    let mut child = child;
    child.wait().expect("wait");
    assert_eq!((f, g, replay), (403, 200, 403));

    let after = bounced(&ws).await;
    assert_eq!(after, before + 1, "the bounced address is excluded");
    let show = json_of(cmd(
        &ws,
        &["campaign", "show", &campaign, "--format", "json"],
    ))
    .await;
    assert_eq!(show["deliverability"]["hard_bounces"], 1, "{show}");
    let list = json_of(cmd(&ws, &["suppress", "list", "--format", "json"])).await;
    assert!(list.to_string().contains(&to), "{list}");
}
