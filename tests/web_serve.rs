//! End-to-end tests of `retain serve` as a process: it binds, answers the public endpoints for
//! real sends (open, click, view, one-click unsubscribe), refuses tampered tracking tokens, keeps
//! the dashboard behind a login, hashes passwords, and on SIGTERM stops cleanly after writing the
//! events it was still holding.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::Duration;

use assert_cmd::cargo::CommandCargoExt;
use assert_cmd::Command;
use retain_core::tracking::Links;
use retain_store::{Claim, ConsentCheck, EventKind, NewSend, SendState, Store};

fn workspace() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    Command::cargo_bin("retain")
        .expect("binary")
        .arg("init")
        .arg(&ws)
        .arg("-q")
        .assert()
        .success();
    (dir, ws)
}

/// Starts `retain serve` on a free port; returns the child and the bound address.
fn serve(ws: &Path, env: &[(&str, &str)]) -> (Child, String) {
    serve_with(ws, env, &[])
}

/// [`serve`] with more arguments.
fn serve_with(ws: &Path, env: &[(&str, &str)], args: &[&str]) -> (Child, String) {
    let mut cmd = StdCommand::cargo_bin("retain").expect("binary");
    cmd.arg("--workspace")
        .arg(ws)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .args(args)
        .env_remove("RETAIN_WEB_TOKEN")
        .env_remove("RETAIN_SECRET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let first = lines.next().expect("a line").expect("utf-8");
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_string();
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

/// A raw HTTP/1.1 request: (status, headers+body text).
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read");
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn stop(mut child: Child) -> std::process::Output {
    StdCommand::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    let status = child.wait().expect("wait");
    std::process::Output {
        status,
        stdout: Vec::new(),
        stderr: Vec::new(),
    }
}

/// Two sent emails in the workspace's ledger (campaign `e2e`): their send ids.
fn sent_emails(ws: &Path) -> Vec<i64> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let store = Store::open_sqlite(&ws.join("retain.db")).await.expect("db");
        let customers: Vec<retain_core::Customer> = ["ann", "bob"]
            .iter()
            .map(|n| retain_core::Customer {
                id: n.to_string(),
                email: Some(format!("{n}@mail.example")),
                email_valid: true,
                subscribed: Some(true),
                ..Default::default()
            })
            .collect();
        store
            .import_customers("c.csv", &customers, (2, 2, 0))
            .await
            .expect("customers");
        let sends: Vec<NewSend> = customers
            .iter()
            .map(|c| NewSend {
                customer_id: c.id.clone(),
                email: c.email.clone().unwrap_or_default(),
                message_id: format!("<{}@shop.example>", c.id),
                suppressed: None,
            })
            .collect();
        store.queue_sends("e2e", &sends).await.expect("queue");
        store
            .acquire_send_lease("e2e", "test", 60)
            .await
            .expect("lease")
            .expect("free");
        let Claim::Claimed { sends, .. } = store
            .claim_sends("e2e", "test", 60, 10, ConsentCheck::default())
            .await
            .expect("claim")
        else {
            panic!("not claimed");
        };
        // Sent an hour ago: opens now are people, not prefetches.
        let at = chrono::Utc::now().timestamp() - 3600;
        let ids: Vec<i64> = sends.iter().map(|s| s.id).collect();
        store
            .mark_sent(&ids.iter().map(|&i| (i, at)).collect::<Vec<_>>())
            .await
            .expect("sent");
        store.close().await;
        ids
    })
}

/// What the workspace's database holds: (events by send and kind, suppressed addresses).
fn recorded(ws: &Path, ids: &[i64]) -> (Vec<(i64, EventKind)>, Vec<String>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let store = Store::open_sqlite(&ws.join("retain.db")).await.expect("db");
        let mut ev: Vec<(i64, EventKind)> = store
            .events_of_sends(ids)
            .await
            .expect("events")
            .into_iter()
            .map(|e| (e.send_id, e.kind))
            .collect();
        ev.sort_by_key(|(id, k)| (*id, format!("{k:?}")));
        let sup = store
            .suppressions()
            .await
            .expect("suppressions")
            .into_iter()
            .map(|s| s.email)
            .collect();
        let ann = store.send(ids[0]).await.expect("send").expect("row");
        assert_eq!(ann.state, SendState::Sent);
        store.close().await;
        (ev, sup)
    })
}

#[test]
fn serves_tracking_and_guards_the_dashboard_then_stops_cleanly() {
    let (_dir, ws) = workspace();
    let ids = sent_emails(&ws);
    // The server's secret: the workspace's file (serve() clears RETAIN_SECRET).
    let secret = std::fs::read(ws.join("secret.key"))
        .expect("secret.key")
        .trim_ascii()
        .to_vec();
    let links = |id| Links {
        base_url: "https://t.example",
        secret: &secret,
        send_id: id,
    };
    let path = |url: String| url.trim_start_matches("https://t.example").to_string();
    // Events are held by the writer until shutdown (no timed flush, no full batch).
    let (child, addr) = serve_with(
        &ws,
        &[("RETAIN_WEB_TOKEN", "e2e-token-123456")],
        &["--flush-ms", "3600000", "--batch", "100000"],
    );
    assert_eq!(http(&addr, "GET", "/healthz", "").0, 200);
    // Real links of real sends.
    let (status, text) = http(&addr, "GET", &path(links(ids[0]).open_pixel()), "");
    assert_eq!(status, 200, "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: image/gif"),
        "{text}"
    );
    let target = "https://shop.example/back?c=1";
    let (status, text) = http(&addr, "GET", &path(links(ids[0]).click(target)), "");
    assert_eq!(status, 302, "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains(&format!("location: {target}")),
        "{text}"
    );
    let (status, text) = http(&addr, "GET", &path(links(ids[1]).view()), "");
    assert_eq!(status, 200, "{text}");
    let unsubscribe = path(links(ids[1]).unsubscribe());
    let (status, text) = http(&addr, "GET", &unsubscribe, "");
    assert_eq!(status, 200, "{text}");
    assert!(recorded(&ws, &ids).1.is_empty(), "a GET changes nothing");
    let (status, text) = http(&addr, "POST", &unsubscribe, "List-Unsubscribe=One-Click");
    assert_eq!(status, 200, "{text}");
    // The unsubscribe is in force at once; the four events are still held by the writer.
    let (events, suppressed) = recorded(&ws, &ids);
    assert_eq!(suppressed, ["bob@mail.example"]);
    assert!(events.is_empty(), "written before shutdown: {events:?}");
    // Tampered and unknown tracking tokens: 404, and no redirect anywhere.
    for path in [
        "/o/abc.def",
        "/c/Yzo3Omh0dHBzOi8vZXZpbC5leGFtcGxl.AAAAAAAAAAAAAAAAAAAAAA",
        "/u/x",
    ] {
        let (status, text) = http(&addr, "GET", path, "");
        assert_eq!(status, 404, "{path}: {text}");
        assert!(!text.to_ascii_lowercase().contains("location:"), "{text}");
    }
    let (status, _) = http(&addr, "POST", "/u/abc.def", "List-Unsubscribe=One-Click");
    assert_eq!(status, 404);
    // The dashboard needs a session.
    let (status, text) = http(&addr, "GET", "/campaigns", "");
    assert_eq!(status, 303);
    assert!(text.to_ascii_lowercase().contains("location: /login"));
    let (status, text) = http(&addr, "GET", "/login", "");
    assert_eq!(status, 200);
    assert!(text.contains("HttpOnly; SameSite=Strict"), "{text}");
    // A POST without the form's cookie is refused, even with the right token.
    let (status, _) = http(&addr, "POST", "/login", "csrf=x&password=e2e-token-123456");
    assert_eq!(status, 403);
    let (status, _) = http(&addr, "POST", "/plans/p1/approve", "csrf=x");
    assert_eq!(status, 303, "no session: sent to the login page");
    let out = stop(child);
    assert!(out.status.success(), "{:?}", out.status);
    // Shutdown drained the writer: every event is in the database.
    let (events, _) = recorded(&ws, &ids);
    let mut want = vec![
        (ids[0], EventKind::Open),
        (ids[0], EventKind::Click),
        (ids[1], EventKind::View),
        (ids[1], EventKind::Unsubscribe),
    ];
    want.sort_by_key(|(id, k)| (*id, format!("{k:?}")));
    assert_eq!(events, want);
}

#[test]
fn hash_password_prints_an_argon2_hash_the_server_accepts() {
    let out = Command::cargo_bin("retain")
        .expect("binary")
        .args(["serve", "--hash-password"])
        .write_stdin("a long passphrase\n")
        .output()
        .expect("run");
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let short = Command::cargo_bin("retain")
        .expect("binary")
        .args(["serve", "--hash-password"])
        .write_stdin("short\n")
        .output()
        .expect("run");
    assert_eq!(short.status.code(), Some(3));
    // The hash in the configuration: the server starts and its login page is open.
    let (_dir, ws) = workspace();
    let cfg = ws.join("retain.toml");
    let text = std::fs::read_to_string(&cfg).expect("config");
    let text = text.replace(
        "password_hash = \"\"",
        &format!("password_hash = \"{hash}\""),
    );
    std::fs::write(&cfg, text).expect("write config");
    let (child, addr) = serve(&ws, &[]);
    let (status, text) = http(&addr, "GET", "/login", "");
    assert_eq!(status, 200);
    assert!(text.contains("name=\"password\""), "{text}");
    assert!(stop(child).status.success());
    // A broken hash is a configuration error, not a silently open dashboard.
    let text = std::fs::read_to_string(&cfg).expect("config");
    std::fs::write(&cfg, text.replace(&hash, "not-a-hash")).expect("write");
    let out = Command::cargo_bin("retain")
        .expect("binary")
        .arg("--workspace")
        .arg(&ws)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env_remove("RETAIN_WEB_TOKEN")
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `retain serve` with `args`: the child, the main address and the dashboard's own address (the
/// second line of its log).
fn serve_split(ws: &Path, env: &[(&str, &str)], args: &[&str]) -> (Child, String, String) {
    let mut cmd = StdCommand::cargo_bin("retain").expect("binary");
    cmd.arg("--workspace")
        .arg(ws)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .args(args)
        .env_remove("RETAIN_WEB_TOKEN")
        .env_remove("RETAIN_SECRET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut addr_in = |what: &str| {
        let line = lines.next().expect("a line").expect("utf-8");
        line.split("http://")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .unwrap_or_else(|| panic!("no {what} address in {line:?}"))
            .to_string()
    };
    let main = addr_in("main");
    let dashboard = addr_in("dashboard");
    std::thread::spawn(move || for _ in lines {});
    (child, main, dashboard)
}

/// A raw HTTP/1.1 request with a cookie: (status, headers+body text).
fn http_cookie(addr: &str, method: &str, path: &str, body: &str, cookie: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nCookie: {cookie}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read");
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// The value of a `Set-Cookie` of a raw response.
fn set_cookie_in(text: &str, name: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .filter_map(|(_, v)| v.trim().split(';').next())
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

#[test]
fn the_dashboard_on_its_own_address_and_sessions_across_a_restart() {
    let (_dir, ws) = workspace();
    let ids = sent_emails(&ws);
    let secret = std::fs::read(ws.join("secret.key"))
        .expect("secret.key")
        .trim_ascii()
        .to_vec();
    let open = Links {
        base_url: "",
        secret: &secret,
        send_id: ids[0],
    }
    .open_pixel();
    let env = [("RETAIN_WEB_TOKEN", "e2e-token-123456")];
    let args = ["--dashboard-addr", "127.0.0.1:0"];
    let (child, public, dashboard) = serve_split(&ws, &env, &args);
    assert_ne!(public, dashboard);
    assert_eq!(http(&public, "GET", &open, "").0, 200);
    assert_eq!(http(&public, "GET", "/", "").0, 404);
    assert_eq!(http(&public, "GET", "/login", "").0, 404);
    assert_eq!(http(&dashboard, "GET", &open, "").0, 404);
    // Log in on the dashboard's address.
    let (status, text) = http(&dashboard, "GET", "/login", "");
    assert_eq!(status, 200);
    assert!(text.contains("frame-ancestors 'none'"), "{text}");
    let login = set_cookie_in(&text, "retain_login").expect("login cookie");
    let (status, text) = http_cookie(
        &dashboard,
        "POST",
        "/login",
        &format!("csrf={login}&password=e2e-token-123456"),
        &format!("retain_login={login}"),
    );
    assert_eq!(status, 303, "{text}");
    let session = format!(
        "retain_session={}",
        set_cookie_in(&text, "retain_session").expect("session")
    );
    assert_eq!(
        http_cookie(&dashboard, "GET", "/plans", "", &session).0,
        200
    );
    assert!(stop(child).status.success());
    // A new process over the same workspace: still logged in.
    let (child, _, dashboard) = serve_split(&ws, &env, &args);
    let (status, text) = http_cookie(&dashboard, "GET", "/plans", "", &session);
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        http_cookie(&dashboard, "GET", "/plans", "", "retain_session=forged").0,
        303
    );
    assert!(stop(child).status.success());
    // A bad address in retain.toml is bad input.
    let toml = std::fs::read_to_string(ws.join("retain.toml")).expect("toml");
    std::fs::write(
        ws.join("retain.toml"),
        toml.replace(
            "dashboard_addr = \"\"",
            "dashboard_addr = \"not-an-address\"",
        ),
    )
    .expect("write");
    let out = Command::cargo_bin("retain")
        .expect("binary")
        .arg("--workspace")
        .arg(&ws)
        .arg("serve")
        .env("RETAIN_WEB_TOKEN", "e2e-token-123456")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("web.dashboard_addr"));
}
