//! The dashboard can face the internet: failed logins are throttled per client and overall (429
//! with Retry-After; the right password works again once the window passes, timed by the
//! server's clock that the tests move), X-Forwarded-* are believed only behind a trusted proxy,
//! every response carries the security headers, cookies are `Secure` only behind https,
//! sessions live in the database and survive a restart, a viewer login sees every page but can
//! change nothing, and with a dashboard address of its own the public listener serves only the
//! tracking endpoints.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use common::*;
use retain_core::config::Config;
use retain_core::tracking::Links;
use retain_store::{CampaignSendState, NewPlan, NewPlanCampaign, PlanState, Store};
use retain_web::auth::{LOGIN_COOKIE, SESSION_COOKIE};
use retain_web::{Listen, LoginLimits, StateOptions, WriterConfig};

const TOKEN: &str = "hardening-admin-token-0123";
const VIEWER: &str = "hardening-viewer-token-4567";

fn set_cookie_line<B>(r: &Response<B>, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

fn set_cookie<B>(r: &Response<B>, name: &str) -> Option<String> {
    set_cookie_line(r, name)
        .and_then(|l| l.split(';').next().map(str::to_string))
        .and_then(|kv| kv.split_once('=').map(|(_, v)| v.to_string()))
}

fn header<B>(r: &Response<B>, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn csrf_in(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf input") + 19;
    html[at..].split('"').next().expect("value").to_string()
}

/// A request from `peer` (as `retain serve` sees it through the connection info).
fn from(mut req: Request<Body>, peer: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let addr: SocketAddr = peer.parse().expect("peer");
    req.extensions_mut().insert(ConnectInfo(addr));
    for (k, v) in headers {
        req.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            v.parse().expect("header value"),
        );
    }
    req
}

fn get_with(uri: &str, cookie: &str) -> Request<Body> {
    Request::get(uri)
        .header("cookie", cookie)
        .body(Body::empty())
        .expect("request")
}

/// One login attempt from `peer` with `headers`: the response (with a fresh login form first).
async fn attempt(
    app: &App,
    password: &str,
    peer: &str,
    headers: &[(&str, &str)],
) -> Response<Body> {
    let (r, body) = request(&app.router, from(get("/login"), peer, headers)).await;
    assert_eq!(r.status(), 200);
    let token = csrf_in(&body);
    assert_eq!(
        set_cookie(&r, LOGIN_COOKIE).as_deref(),
        Some(token.as_str())
    );
    let (r, _) = request(
        &app.router,
        from(
            post_form(
                "/login",
                &format!("csrf={token}&password={password}"),
                Some(&format!("{LOGIN_COOKIE}={token}")),
            ),
            peer,
            headers,
        ),
    )
    .await;
    r
}

/// Logs in with `password`: (session cookie, the CSRF token of its pages).
async fn login_as(app: &App, password: &str) -> (String, String) {
    let r = attempt(app, password, "192.0.2.1:4000", &[]).await;
    assert_eq!(r.status(), 303, "login");
    let cookie = format!(
        "{SESSION_COOKIE}={}",
        set_cookie(&r, SESSION_COOKIE).expect("session")
    );
    let (r, body) = request(&app.router, get_with("/plans", &cookie)).await;
    assert_eq!(r.status(), 200);
    (cookie, csrf_in(&body))
}

fn fast_limits() -> LoginLimits {
    LoginLimits {
        delay: Duration::from_millis(1),
        ..LoginLimits::default()
    }
}

async fn app_opts(config: Config, viewer: bool) -> App {
    let (store, dir) = store().await;
    let mut opts = options(config, Some(TOKEN));
    opts.login_limits = fast_limits();
    if viewer {
        opts.viewer_token = Some(VIEWER.into());
    }
    app_with_options(store, dir, opts).await
}

#[tokio::test]
async fn a_hundred_wrong_passwords_are_throttled_and_the_right_one_works_after_the_window() {
    let app = app_opts(Config::default(), false).await;
    let me = "198.51.100.7:5000";
    let mut statuses = Vec::new();
    for n in 0..100 {
        let r = attempt(&app, &format!("guess-{n}"), me, &[]).await;
        if r.status() == 429 {
            let wait: i64 = header(&r, "retry-after")
                .expect("Retry-After")
                .parse()
                .expect("seconds");
            assert!((1..=900).contains(&wait), "Retry-After {wait}");
        }
        assert!(
            set_cookie(&r, SESSION_COOKIE).is_none(),
            "attempt {n} logged in"
        );
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses[..5], [401; 5]);
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    // Still serving.
    let (r, body) = request(&app.router, get("/healthz")).await;
    assert_eq!((r.status().as_u16(), body.as_str()), (200, "ok\n"));
    // Inside the window even the right password is refused, without being checked...
    let r = attempt(&app, TOKEN, me, &[]).await;
    assert_eq!(r.status(), 429);
    assert!(set_cookie(&r, SESSION_COOKIE).is_none());
    // ...while another client logs in (5 failures are far from the overall limit).
    assert_eq!(
        attempt(&app, TOKEN, "203.0.113.9:1", &[]).await.status(),
        303
    );
    // Once the window has passed, the right password works.
    app.state.clock.advance(14 * 60);
    assert_eq!(attempt(&app, TOKEN, me, &[]).await.status(), 429);
    app.state.clock.advance(60);
    let r = attempt(&app, TOKEN, me, &[]).await;
    assert_eq!(r.status(), 303);
    let cookie = format!(
        "{SESSION_COOKIE}={}",
        set_cookie(&r, SESSION_COOKIE).expect("session")
    );
    let (r, _) = request(&app.router, get_with("/plans", &cookie)).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn too_many_failures_overall_lock_every_client_for_a_minute() {
    let app = app_opts(Config::default(), false).await;
    for n in 0..100 {
        let peer = format!("10.1.{}.1:1", n / 5);
        let r = attempt(&app, "wrong", &peer, &[]).await;
        assert_eq!(r.status(), 401, "attempt {n}");
    }
    let fresh = "10.9.9.9:1";
    let r = attempt(&app, TOKEN, fresh, &[]).await;
    assert_eq!(r.status(), 429);
    let wait: i64 = header(&r, "retry-after")
        .expect("Retry-After")
        .parse()
        .expect("secs");
    assert!((1..=60).contains(&wait), "{wait}");
    app.state.clock.advance(60);
    assert_eq!(attempt(&app, TOKEN, fresh, &[]).await.status(), 303);
    // The per-client windows still hold for the clients that failed.
    assert_eq!(attempt(&app, TOKEN, "10.1.0.1:1", &[]).await.status(), 429);
}

#[tokio::test]
async fn forwarded_for_names_the_client_only_behind_a_trusted_proxy() {
    let proxy = "127.0.0.1:9000";
    // Untrusted: a client cannot escape its count by inventing X-Forwarded-For.
    let app = app_opts(Config::default(), false).await;
    for n in 0..5 {
        let xff = format!("10.0.0.{n}");
        let r = attempt(&app, "wrong", proxy, &[("x-forwarded-for", &xff)]).await;
        assert_eq!(r.status(), 401);
    }
    let r = attempt(&app, TOKEN, proxy, &[("x-forwarded-for", "10.0.0.99")]).await;
    assert_eq!(r.status(), 429);
    // Trusted: the address the proxy appended is the client.
    let mut config = Config::default();
    config.web.trusted_proxy = true;
    let app = app_opts(config, false).await;
    for _ in 0..5 {
        let r = attempt(
            &app,
            "wrong",
            proxy,
            &[("x-forwarded-for", "6.6.6.6, 198.51.100.1")],
        )
        .await;
        assert_eq!(r.status(), 401);
    }
    let blocked = attempt(
        &app,
        TOKEN,
        proxy,
        &[("x-forwarded-for", "7.7.7.7, 198.51.100.1")],
    )
    .await;
    assert_eq!(
        blocked.status(),
        429,
        "a spoofed first entry changes nothing"
    );
    let other = attempt(&app, TOKEN, proxy, &[("x-forwarded-for", "198.51.100.2")]).await;
    assert_eq!(other.status(), 303, "another client behind the same proxy");
}

/// A draft plan with one campaign that is sending: one message sent, one still queued (so it can
/// be paused; a campaign with nothing left to send shows as finished, without the button).
async fn plan_and_campaign(store: &Store) -> (String, String) {
    customers(store, &["c1", "c2", "c3"]).await;
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
                recipients: vec!["c1".into(), "c2".into()],
                holdout: vec!["c3".into()],
                details: "{}".into(),
            }],
        })
        .await
        .expect("plan");
    let campaign = format!("{id}-win_back-1");
    send_campaign(store, &campaign, &["c1@example.com"], 1_000).await;
    store
        .queue_sends(
            &campaign,
            &[retain_store::NewSend {
                customer_id: "cust-c2".into(),
                email: "c2@example.com".into(),
                message_id: format!("<{campaign}-queued@shop.example>"),
                suppressed: None,
            }],
        )
        .await
        .expect("queue");
    (id, campaign)
}

#[tokio::test]
async fn every_dashboard_response_carries_the_security_headers() {
    let app = app_opts(Config::default(), false).await;
    let (plan, campaign) = plan_and_campaign(&app.store).await;
    let (cookie, csrf) = login_as(&app, TOKEN).await;
    let pages = [
        "/",
        "/segments",
        "/predictions",
        "/plans",
        &format!("/plans/{plan}"),
        "/campaigns",
        &format!("/campaigns/{campaign}"),
        &format!("/campaigns/{campaign}/report.html"),
        "/plans/nope",
        "/no-such-page",
    ]
    .map(str::to_string);
    let mut responses = Vec::new();
    for p in &pages {
        let (r, body) = request(&app.router, get_with(p, &cookie)).await;
        assert!(
            !body.to_ascii_lowercase().contains("<script"),
            "{p} has a script"
        );
        responses.push((p.clone(), r));
    }
    let (r, _) = request(&app.router, get("/login")).await;
    responses.push(("/login".into(), r));
    let (r, _) = request(&app.router, get("/")).await;
    assert_eq!(r.status(), 303);
    responses.push(("/ logged out".into(), r));
    let r = attempt(&app, "wrong", "192.0.2.50:1", &[]).await;
    assert_eq!(r.status(), 401);
    responses.push(("failed login".into(), r));
    let (r, _) = request(
        &app.router,
        post_form(&format!("/plans/{plan}/approve"), "csrf=bad", Some(&cookie)),
    )
    .await;
    assert_eq!(r.status(), 403);
    responses.push(("refused form".into(), r));
    let (r, _) = request(
        &app.router,
        post_form(
            &format!("/campaigns/{campaign}/pause"),
            &format!("csrf={csrf}"),
            Some(&cookie),
        ),
    )
    .await;
    assert_eq!(r.status(), 303);
    responses.push(("pause".into(), r));
    for (what, r) in &responses {
        let csp = header(r, "content-security-policy").unwrap_or_default();
        for directive in [
            "default-src 'self'",
            "script-src 'none'",
            "frame-ancestors 'none'",
            "form-action 'self'",
            "object-src 'none'",
        ] {
            assert!(
                csp.contains(directive),
                "{what}: CSP {csp:?} lacks {directive}"
            );
        }
        assert_eq!(
            header(r, "x-frame-options").as_deref(),
            Some("DENY"),
            "{what}"
        );
        assert_eq!(
            header(r, "x-content-type-options").as_deref(),
            Some("nosniff"),
            "{what}"
        );
        assert_eq!(
            header(r, "referrer-policy").as_deref(),
            Some("no-referrer"),
            "{what}"
        );
    }
}

#[tokio::test]
async fn cookies_are_secure_only_behind_a_trusted_https_proxy() {
    let https = [("x-forwarded-proto", "https")];
    let peer = "127.0.0.1:9";
    // Plain HTTP: no Secure (a browser would drop the cookie otherwise).
    let app = app_opts(Config::default(), false).await;
    let r = attempt(&app, TOKEN, peer, &[]).await;
    let line = set_cookie_line(&r, SESSION_COOKIE).expect("session");
    assert!(!line.contains("Secure"), "{line}");
    assert!(line.contains("HttpOnly") && line.contains("SameSite=Strict"));
    // The header from an untrusted peer is not believed.
    let r = attempt(&app, TOKEN, peer, &https).await;
    assert!(!set_cookie_line(&r, SESSION_COOKIE)
        .expect("session")
        .contains("Secure"));
    // Behind the trusted proxy: Secure on the session and the login form's cookie.
    let mut config = Config::default();
    config.web.trusted_proxy = true;
    let app = app_opts(config, false).await;
    let (r, _) = request(&app.router, from(get("/login"), peer, &https)).await;
    assert!(set_cookie_line(&r, LOGIN_COOKIE)
        .expect("login cookie")
        .ends_with("; Secure"));
    let r = attempt(&app, TOKEN, peer, &https).await;
    assert_eq!(r.status(), 303);
    assert!(set_cookie_line(&r, SESSION_COOKIE)
        .expect("session")
        .contains("; Secure"));
    let r = attempt(&app, TOKEN, peer, &[("x-forwarded-proto", "http")]).await;
    assert!(!set_cookie_line(&r, SESSION_COOKIE)
        .expect("session")
        .contains("Secure"));
}

#[tokio::test]
async fn sessions_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("t.db");
    let store = Store::open_sqlite(&db).await.expect("open");
    let (plan, _) = plan_and_campaign(&store).await;
    let first = app_with_options(store, tempfile::tempdir().expect("tmp"), {
        let mut o = options(Config::default(), Some(TOKEN));
        o.login_limits = fast_limits();
        o
    })
    .await;
    let (cookie, csrf) = login_as(&first, TOKEN).await;
    // Stop the first server entirely.
    let App { store, writer, .. } = first;
    writer.shutdown().await;
    store.close().await;
    // A new server over the same database.
    let store = Store::open_sqlite(&db).await.expect("reopen");
    let second = app_with_options(
        store,
        tempfile::tempdir().expect("tmp"),
        options(Config::default(), Some(TOKEN)),
    )
    .await;
    let (r, body) = request(&second.router, get_with("/plans", &cookie)).await;
    assert_eq!(r.status(), 200, "still logged in");
    assert_eq!(csrf_in(&body), csrf, "the same CSRF token");
    let (r, _) = request(
        &second.router,
        post_form(
            &format!("/plans/{plan}/approve"),
            &format!("csrf={csrf}"),
            Some(&cookie),
        ),
    )
    .await;
    assert_eq!(r.status(), 303);
    let p = second.store.plan(&plan).await.expect("q").expect("plan");
    assert_eq!(p.state, PlanState::Approved);
    // Logging out ends it for good, and an unknown cookie is no session.
    let (r, _) = request(
        &second.router,
        post_form("/logout", &format!("csrf={csrf}"), Some(&cookie)),
    )
    .await;
    assert_eq!(r.status(), 303);
    let (r, _) = request(&second.router, get_with("/plans", &cookie)).await;
    assert_eq!(header(&r, "location").as_deref(), Some("/login"));
    let (r, _) = request(
        &second.router,
        get_with("/plans", &format!("{SESSION_COOKIE}=forged")),
    )
    .await;
    assert_eq!(header(&r, "location").as_deref(), Some("/login"));
}

#[tokio::test]
async fn a_viewer_sees_every_page_but_can_change_nothing() {
    let app = app_opts(Config::default(), true).await;
    let (plan, campaign) = plan_and_campaign(&app.store).await;
    let (admin, _) = login_as(&app, TOKEN).await;
    let (viewer, csrf) = login_as(&app, VIEWER).await;
    let plan_page = format!("/plans/{plan}");
    let campaign_page = format!("/campaigns/{campaign}");
    // The administrator has the buttons (so their absence below means something).
    let (_, body) = request(&app.router, get_with(&plan_page, &admin)).await;
    assert!(body.contains("id=\"approve\""));
    assert!(!body.contains("id=\"read-only\""));
    let (_, body) = request(&app.router, get_with(&campaign_page, &admin)).await;
    assert!(body.contains("id=\"pause\""));
    for p in [
        "/",
        "/segments",
        "/predictions",
        "/plans",
        &plan_page,
        "/campaigns",
        &campaign_page,
        &format!("/campaigns/{campaign}/report.html"),
    ] {
        let (r, body) = request(&app.router, get_with(p, &viewer)).await;
        assert_eq!(r.status(), 200, "{p}");
        for button in [
            "id=\"approve\"",
            "id=\"pause\"",
            "id=\"resume\"",
            "/approve\"",
            "/pause\"",
            "/resume\"",
        ] {
            assert!(!body.contains(button), "{p} shows {button} to a viewer");
        }
    }
    let (_, body) = request(&app.router, get_with(&plan_page, &viewer)).await;
    assert!(body.contains("id=\"read-only\""));
    // Every state-changing form, with the viewer's own valid CSRF token: 403, nothing changes.
    let status = |s: &Store| {
        let (s, plan, campaign) = (s.clone(), plan.clone(), campaign.clone());
        async move {
            (
                s.plan(&plan).await.expect("q").expect("plan").state,
                s.send_campaign_state(&campaign).await.expect("state"),
            )
        }
    };
    let before = status(&app.store).await;
    assert_eq!(before, (PlanState::Draft, CampaignSendState::Active));
    for (uri, prepare) in [
        (format!("/plans/{plan}/approve"), None),
        (format!("/campaigns/{campaign}/pause"), None),
        (
            format!("/campaigns/{campaign}/resume"),
            Some(CampaignSendState::Paused),
        ),
    ] {
        if let Some(state) = prepare {
            app.store
                .set_send_campaign_state(&campaign, state)
                .await
                .expect("prepare");
        }
        let expected = status(&app.store).await;
        let (r, body) = request(
            &app.router,
            post_form(&uri, &format!("csrf={csrf}"), Some(&viewer)),
        )
        .await;
        assert_eq!(r.status(), 403, "{uri}");
        assert!(body.contains("read-only"), "{uri}: {body}");
        assert_eq!(
            status(&app.store).await,
            expected,
            "{uri} changed something"
        );
    }
    // A viewer may log out.
    let (r, _) = request(
        &app.router,
        post_form("/logout", &format!("csrf={csrf}"), Some(&viewer)),
    )
    .await;
    assert_eq!(header(&r, "location").as_deref(), Some("/login"));
    let (r, _) = request(&app.router, get_with("/plans", &viewer)).await;
    assert_eq!(header(&r, "location").as_deref(), Some("/login"));
}

/// A minimal HTTP/1.1 GET over a real connection: (status, body).
async fn http_get(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    let body = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| buf[at + 4..].to_vec())
        .unwrap_or_default();
    (status, body)
}

/// Runs `retain_web::serve` on free ports; returns the bound addresses and the stop switch.
async fn start(
    listen_dashboard: bool,
) -> (
    Listen,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
    i64,
    tempfile::TempDir,
) {
    let (store, dir) = store().await;
    let ids = send_campaign(&store, "c1", &["ann@example.com"], 1_000).await;
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let opts: StateOptions = options(Config::default(), Some(TOKEN));
    let task = tokio::spawn(async move {
        retain_web::serve(
            store,
            Listen {
                addr: any,
                dashboard: listen_dashboard.then_some(any),
            },
            opts,
            WriterConfig::default(),
            move |b| {
                let _ = bound_tx.send(b);
            },
            async move {
                let _ = stop_rx.await;
            },
        )
        .await
        .expect("serve");
    });
    let bound = bound_rx.await.expect("bound");
    (bound, stop_tx, task, ids[0], dir)
}

#[tokio::test]
async fn the_dashboard_can_have_its_own_address() {
    let (bound, stop, task, send, _dir) = start(true).await;
    let dashboard = bound.dashboard.expect("a dashboard address");
    assert_ne!(dashboard, bound.addr);
    let open = Links {
        base_url: "",
        secret: SECRET,
        send_id: send,
    }
    .open_pixel();
    // Public: the tracking endpoints only.
    let (status, body) = http_get(bound.addr, &open).await;
    assert_eq!(status, 200, "{open}");
    assert!(body.starts_with(b"GIF89a"));
    for p in ["/", "/login", "/plans", "/campaigns"] {
        assert_eq!(http_get(bound.addr, p).await.0, 404, "public {p}");
    }
    // The dashboard's own address: the dashboard, not the tracking endpoints.
    assert_eq!(http_get(dashboard, "/").await.0, 303);
    assert_eq!(http_get(dashboard, "/login").await.0, 200);
    assert_eq!(http_get(dashboard, &open).await.0, 404);
    assert_eq!(http_get(dashboard, "/healthz").await.0, 200);
    assert_eq!(http_get(bound.addr, "/healthz").await.0, 200);
    let _ = stop.send(());
    task.await.expect("stopped cleanly");
}

#[tokio::test]
async fn without_a_dashboard_address_one_listener_serves_both() {
    let (bound, stop, task, send, _dir) = start(false).await;
    assert_eq!(bound.dashboard, None);
    let open = Links {
        base_url: "",
        secret: SECRET,
        send_id: send,
    }
    .open_pixel();
    assert_eq!(http_get(bound.addr, &open).await.0, 200);
    assert_eq!(http_get(bound.addr, "/").await.0, 303);
    assert_eq!(http_get(bound.addr, "/login").await.0, 200);
    let _ = stop.send(());
    task.await.expect("stopped cleanly");
}
