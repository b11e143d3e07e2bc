//! `retain doctor` end to end: a fresh workspace fails on DKIM and plain-http links (exit 3,
//! saying why); the same workspace with a DKIM key, an aligned signing domain, https links, TLS
//! and a bounce domain passes, and the SMTP password is never printed.

mod common;

use common::{retain, workspace};
use serde_json::Value;

fn statuses(out: &[u8]) -> Vec<(String, String)> {
    let v: Value = serde_json::from_slice(out).expect("json");
    v.as_array()
        .expect("array")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().expect("name").to_string(),
                c["status"].as_str().expect("status").to_string(),
            )
        })
        .collect()
}

fn status_of(all: &[(String, String)], name: &str) -> String {
    all.iter()
        .find(|(n, _)| n == name)
        .map(|(_, s)| s.clone())
        .unwrap_or_else(|| panic!("no check {name}: {all:?}"))
}

#[test]
fn doctor_fails_a_bare_setup_and_passes_a_complete_one() {
    let (dir, ws) = workspace();
    let out = retain(&ws)
        .args(["doctor", "--offline", "--format", "json"])
        .env("RETAIN_SENDER_FROM", "Shop <news@shop.example>")
        .env("RETAIN_TRACKING_BASE_URL", "http://shop.example")
        .env_remove("RETAIN_DKIM_SELECTOR")
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = statuses(&out.stdout);
    assert_eq!(status_of(&all, "dkim"), "fail");
    assert_eq!(status_of(&all, "unsubscribe and tracking links"), "fail");
    assert!(String::from_utf8_lossy(&out.stderr).contains("check(s) failed"));

    let key = dir.path().join("dkim.key");
    // An Ed25519 private key as lettre reads it (base64 of the 32-byte seed).
    std::fs::write(&key, "ld7SQt8U3Eg5oyV0j1qGDpO9QExCYSKL3Ge6rSJhV9c=").expect("key");
    let out = retain(&ws)
        .args(["doctor", "--offline", "--format", "json"])
        .env("RETAIN_SENDER_FROM", "Shop <news@mail.shop.example>")
        .env("RETAIN_TRACKING_BASE_URL", "https://t.shop.example")
        .env(
            "RETAIN_SMTP_URL",
            "smtps://user:sup3rsecret@smtp.example:465",
        )
        .env("RETAIN_SENDING_BOUNCE_DOMAIN", "bounce.shop.example")
        .env("RETAIN_DKIM_SELECTOR", "s1")
        .env("RETAIN_DKIM_DOMAIN", "shop.example")
        .env("RETAIN_DKIM_KEY_FILE", &key)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = statuses(&out.stdout);
    for name in [
        "from",
        "dkim",
        "dkim alignment",
        "unsubscribe and tracking links",
        "smtp",
        "bounce domain",
    ] {
        assert_eq!(status_of(&all, name), "pass", "{name}: {all:?}");
    }
    assert_eq!(status_of(&all, "dmarc"), "skip");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("sup3rsecret"));

    // Looked up: `.example` names never resolve (RFC 2606), online or not, so SPF and DMARC
    // are warnings that say they were not looked up, and the doctor still passes.
    let out = retain(&ws)
        .args(["doctor", "--dns-timeout", "1", "--format", "json"])
        .env("RETAIN_SENDER_FROM", "Shop <news@mail.shop.example>")
        .env("RETAIN_TRACKING_BASE_URL", "https://t.shop.example")
        .env("RETAIN_SMTP_URL", "smtps://smtp.example:465")
        .env("RETAIN_SENDING_BOUNCE_DOMAIN", "bounce.shop.example")
        .env("RETAIN_DKIM_SELECTOR", "s1")
        .env("RETAIN_DKIM_DOMAIN", "shop.example")
        .env("RETAIN_DKIM_KEY_FILE", &key)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    for name in ["spf", "dmarc"] {
        let c = v
            .as_array()
            .and_then(|a| a.iter().find(|c| c["name"] == name))
            .unwrap_or_else(|| panic!("no {name}: {v}"));
        assert_eq!(c["status"], "warn", "{c}");
        assert!(
            c["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("not looked up")),
            "{c}"
        );
    }
}
