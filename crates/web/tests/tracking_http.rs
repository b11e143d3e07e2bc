//! The tracking endpoints at the HTTP level: tampered and unknown tokens record nothing, clicks go
//! only where the token says, opens and bots are told apart, and one-click unsubscribe suppresses
//! the address at once (so the next send skips it).

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use retain_core::config::Config;
use retain_core::tracking::{Action, Links, Token};
use retain_core::SuppressionReason;
use retain_store::{EventKind, NewSend};
use retain_web::report::BOT_SECONDS;

fn links(send_id: i64) -> Links<'static> {
    Links {
        base_url: "http://t.example",
        secret: SECRET,
        send_id,
    }
}

fn path(url: &str) -> String {
    url.trim_start_matches("http://t.example").to_string()
}

#[tokio::test]
async fn tampered_unknown_and_misused_tokens_record_nothing() {
    let (store, dir) = store().await;
    let ids = send_campaign(&store, "c1", &["ann@example.com"], 1_000).await;
    let app = app_with(store, dir, Config::default(), None).await;
    let id = ids[0];
    let good_open = path(&links(id).open_pixel());
    // Flip one character of the signature.
    let mut bad = good_open.clone().into_bytes();
    let last = bad.len() - 1;
    bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
    let bad = String::from_utf8(bad).expect("ascii");
    // Another secret, an unknown send, a payload forged to another send with the old signature.
    let other_secret = Token {
        send_id: id,
        action: Action::Open,
    }
    .sign(b"another-secret-0123456789abcdef!!");
    let unknown = Token {
        send_id: 999_999,
        action: Action::Open,
    }
    .sign(SECRET);
    let sig = good_open.rsplit('.').next().expect("sig");
    let forged = format!(
        "/o/{}.{sig}",
        URL_SAFE_NO_PAD.encode(format!("o:{}", id + 1))
    );
    // An open token used as a click, a click token used as an unsubscribe.
    let open_tok = good_open.trim_start_matches("/o/").to_string();
    let click_tok = path(&links(id).click("https://shop.example/"))
        .trim_start_matches("/c/")
        .to_string();
    for uri in [
        bad.clone(),
        format!("/o/{other_secret}"),
        format!("/o/{unknown}"),
        forged,
        "/o/garbage".into(),
        "/o/a.b".into(),
        format!("/c/{open_tok}"),
        format!("/v/{open_tok}"),
        format!("/u/{click_tok}"),
    ] {
        let (r, _) = request(&app.router, get(&uri)).await;
        assert!(r.status().is_client_error(), "{uri}: {}", r.status());
        assert!(r.headers().get("location").is_none());
    }
    let (r, _) = request(
        &app.router,
        post_form(
            &format!("/u/{click_tok}"),
            "List-Unsubscribe=One-Click",
            None,
        ),
    )
    .await;
    assert!(r.status().is_client_error());
    let store = app.store.clone();
    assert_eq!(app.writer.shutdown().await, 0);
    assert_eq!(store.event_total().await.expect("count"), 0);
    assert!(store.suppressions().await.expect("list").is_empty());
}

#[tokio::test]
async fn clicks_redirect_only_to_the_signed_url() {
    let (store, dir) = store().await;
    let ids = send_campaign(&store, "c1", &["ann@example.com"], 1_000).await;
    let app = app_with(store, dir, Config::default(), None).await;
    let target = "https://shop.example/offer?id=7&utm=x";
    let uri = path(&links(ids[0]).click(target));
    let (r, _) = request(&app.router, get(&uri)).await;
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers().get("location").and_then(|v| v.to_str().ok()),
        Some(target)
    );
    // A query string cannot steer the redirect.
    let (r, _) = request(
        &app.router,
        get(&format!("{uri}?url=https://evil.example/")),
    )
    .await;
    assert_eq!(
        r.headers().get("location").and_then(|v| v.to_str().ok()),
        Some(target)
    );
    // Re-signing another URL without the secret fails: the payload changed, the MAC did not.
    let sig = uri.rsplit('.').next().expect("sig");
    let evil = format!(
        "/c/{}.{sig}",
        URL_SAFE_NO_PAD.encode(format!("c:{}:https://evil.example/", ids[0]))
    );
    let (r, _) = request(&app.router, get(&evil)).await;
    assert_eq!(r.status(), 404);
    assert!(r.headers().get("location").is_none());
    let store = app.store.clone();
    app.writer.shutdown().await;
    let ev = store.events_of_sends(&ids).await.expect("events");
    assert_eq!(ev.len(), 2);
    assert!(ev
        .iter()
        .all(|e| e.kind == EventKind::Click && e.url.as_deref() == Some(target)));
}

#[tokio::test]
async fn opens_are_recorded_with_bots_flagged() {
    let (store, dir) = store().await;
    // The server's clock is set by hand: the requests below land at known offsets from delivery.
    let sent = 1_700_000_000;
    // a: sent an hour before; b and c: sent at `sent`.
    let a = send_campaign(&store, "old", &["a@example.com"], sent - 3600).await[0];
    let b = send_campaign(&store, "new", &["b@example.com"], sent).await[0];
    let c = send_campaign(&store, "edge", &["c@example.com"], sent).await[0];
    let app = app_with(store, dir, Config::default(), None).await;
    let ua = |uri: &str, agent: &str| {
        axum::http::Request::get(uri)
            .header("user-agent", agent)
            .body(axum::body::Body::empty())
            .expect("req")
    };
    let person = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15";
    // 4 s after delivery: still inside the 5 s prefetch window.
    app.state.clock.set(sent + BOT_SECONDS - 1);
    let (r, body) = request(&app.router, ua(&path(&links(a).open_pixel()), person)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("image/gif")
    );
    assert!(body.starts_with("GIF89a"));
    request(
        &app.router,
        ua(&path(&links(a).open_pixel()), "Barracuda Sentinel (EE)"),
    )
    .await;
    request(&app.router, ua(&path(&links(b).open_pixel()), person)).await;
    let (r, body) = request(&app.router, ua(&path(&links(a).view()), person)).await;
    assert_eq!(r.status(), 200);
    assert!(body.contains("a…@example.com") && !body.contains("a@example.com"));
    // Exactly 5 s after delivery: the window is over, a person.
    app.state.clock.set(sent + BOT_SECONDS);
    request(&app.router, ua(&path(&links(c).open_pixel()), person)).await;
    let store = app.store.clone();
    app.writer.shutdown().await;
    let ev = store.events_of_sends(&[a, b, c]).await.expect("events");
    let flags: Vec<(i64, EventKind, bool, i64)> = ev
        .iter()
        .map(|e| (e.send_id, e.kind, e.bot, e.at))
        .collect();
    assert_eq!(flags.len(), 5, "{flags:?}");
    let at = sent + BOT_SECONDS - 1;
    assert!(flags.contains(&(a, EventKind::Open, false, at)));
    assert!(flags.contains(&(a, EventKind::Open, true, at)));
    assert!(flags.contains(&(b, EventKind::Open, true, at)), "prefetch");
    assert!(flags.contains(&(a, EventKind::View, false, at)));
    assert!(
        flags.contains(&(c, EventKind::Open, false, sent + BOT_SECONDS)),
        "{flags:?}"
    );
}

#[tokio::test]
async fn one_click_unsubscribe_suppresses_at_once_and_the_next_send_skips_it() {
    let (store, dir) = store().await;
    let ids = send_campaign(&store, "c1", &["Ann@Example.com", "bob@example.com"], 1_000).await;
    let app = app_with(store, dir, Config::default(), None).await;
    let unsub = path(&links(ids[0]).unsubscribe());
    // GET only asks: mail scanners follow links.
    let (r, body) = request(&app.router, get(&unsub)).await;
    assert_eq!(r.status(), 200);
    assert!(body.contains("<form method=\"post\"") && body.contains("List-Unsubscribe"));
    assert!(app.store.suppressions().await.expect("list").is_empty());
    // RFC 8058 one-click POST.
    let (r, _) = request(
        &app.router,
        post_form(&unsub, "List-Unsubscribe=One-Click", None),
    )
    .await;
    assert_eq!(r.status(), 200);
    // In effect before any batching: the answer came after the suppression.
    assert_eq!(
        app.store
            .suppression_of("ann@example.com")
            .await
            .expect("q"),
        Some(SuppressionReason::Unsubscribed)
    );
    assert_eq!(
        app.store
            .suppression_of("bob@example.com")
            .await
            .expect("q"),
        None
    );
    let ann = app
        .store
        .customer("cust-Ann")
        .await
        .expect("q")
        .expect("ann");
    assert_eq!(ann.subscribed, Some(false), "consent withdrawn");
    // A later campaign to both: the send-time check skips Ann.
    app.store
        .queue_sends(
            "c2",
            &[
                NewSend {
                    customer_id: "cust-Ann".into(),
                    email: "ann@example.com".into(),
                    message_id: "<c2-0@x>".into(),
                    suppressed: None,
                },
                NewSend {
                    customer_id: "cust-bob".into(),
                    email: "bob@example.com".into(),
                    message_id: "<c2-1@x>".into(),
                    suppressed: None,
                },
            ],
        )
        .await
        .expect("queue");
    let (claimed, suppressed) = claim_all(&app.store, "c2").await;
    assert_eq!(
        claimed.iter().map(|c| c.1.as_str()).collect::<Vec<_>>(),
        ["bob@example.com"]
    );
    assert_eq!(suppressed.len(), 1);
    let store = app.store.clone();
    app.writer.shutdown().await;
    let ev = store.events_of_sends(&ids).await.expect("events");
    assert_eq!(
        ev.iter()
            .filter(|e| e.kind == EventKind::Unsubscribe)
            .count(),
        1
    );
}
