//! Every state-changing form of the dashboard over HTTP (approve a plan, pause and resume a
//! campaign, log out): with a valid session and its own CSRF token it works; without a token,
//! with a wrong one, with another session's, or without a session it is refused and changes
//! nothing. Sessions expire after `SESSION_TTL` without use (the server's clock, moved by the test).
//! The dashboard has no discard or cancel form (those are CLI commands); a new form belongs in
//! `FORMS`.

mod common;

use axum::http::Response;
use common::*;
use retain_core::config::Config;
use retain_store::{CampaignSendState, NewPlan, NewPlanCampaign, PlanState, Store};
use retain_web::auth::{LOGIN_COOKIE, SESSION_COOKIE, SESSION_TTL};

const TOKEN: &str = "dashboard-test-token-0123";

/// What [`World::post`] answers for a redirect to the login page (no valid session).
const LOGIN: u16 = 1303;

/// A logged-in browser: its session cookie and the CSRF token its pages carry.
#[derive(Debug, Clone)]
struct Session {
    id: String,
    csrf: String,
}

impl Session {
    fn cookie(&self) -> String {
        format!("{SESSION_COOKIE}={}", self.id)
    }
}

fn set_cookie<B>(r: &Response<B>, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn location<B>(r: &Response<B>) -> Option<String> {
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The value of the first `name="csrf"` input of a page.
fn csrf_in(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf input") + 19;
    html[at..].split('"').next().expect("value").to_string()
}

fn get_with(uri: &str, cookie: &str) -> axum::http::Request<axum::body::Body> {
    axum::http::Request::get(uri)
        .header("cookie", cookie)
        .body(axum::body::Body::empty())
        .expect("request")
}

/// Logs in through the login form as a browser does.
async fn login(app: &App) -> Session {
    let (r, body) = request(&app.router, get("/login")).await;
    assert_eq!(r.status(), 200);
    let login_cookie = set_cookie(&r, LOGIN_COOKIE).expect("login cookie");
    assert_eq!(csrf_in(&body), login_cookie, "double-submit token");
    let (r, _) = request(
        &app.router,
        post_form(
            "/login",
            &format!("csrf={login_cookie}&password={TOKEN}"),
            Some(&format!("{LOGIN_COOKIE}={login_cookie}")),
        ),
    )
    .await;
    assert_eq!(r.status(), 303);
    let id = set_cookie(&r, SESSION_COOKIE).expect("session cookie");
    let (r, body) = request(
        &app.router,
        get_with("/plans", &format!("{SESSION_COOKIE}={id}")),
    )
    .await;
    assert_eq!(r.status(), 200);
    Session {
        id,
        csrf: csrf_in(&body),
    }
}

/// Whether `s` is still logged in.
async fn logged_in(app: &App, s: &Session) -> bool {
    let (r, _) = request(&app.router, get_with("/plans", &s.cookie())).await;
    match r.status().as_u16() {
        200 => true,
        303 => {
            assert_eq!(location(&r).as_deref(), Some("/login"));
            false
        }
        other => panic!("GET /plans: {other}"),
    }
}

/// A draft plan with one campaign; returns (plan id, campaign id).
async fn draft_plan(store: &Store) -> (String, String) {
    plan_of(store, &["c1", "c2"], &["c3"]).await
}

/// A draft plan of one win-back campaign to these recipients and holdout (customers made
/// here): (plan id, campaign id).
async fn plan_of(store: &Store, recipients: &[&str], holdout: &[&str]) -> (String, String) {
    let everyone: Vec<&str> = recipients.iter().chain(holdout).copied().collect();
    customers(store, &everyone).await;
    let owned = |ids: &[&str]| ids.iter().map(|c| c.to_string()).collect::<Vec<_>>();
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
                recipients: owned(recipients),
                holdout: owned(holdout),
                details: "{}".into(),
            }],
        })
        .await
        .expect("plan");
    let campaign = format!("{id}-win_back-1");
    (id, campaign)
}

/// The forms, each with the state it changes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Form {
    Approve,
    Pause,
    Resume,
    Logout,
}

const FORMS: [Form; 4] = [Form::Approve, Form::Pause, Form::Resume, Form::Logout];

struct World {
    app: App,
    plan: String,
    campaign: String,
}

async fn world() -> World {
    let (store, dir) = store().await;
    let (plan, campaign) = draft_plan(&store).await;
    send_campaign(&store, &campaign, &["c1@example.com"], 1_000).await;
    let app = app_with(store, dir, Config::default(), Some(TOKEN)).await;
    World {
        app,
        plan,
        campaign,
    }
}

impl World {
    /// Puts the target of `form` in the state the form changes.
    async fn prepare(&self, form: Form) {
        if form == Form::Resume {
            self.app
                .store
                .set_send_campaign_state(&self.campaign, CampaignSendState::Paused)
                .await
                .expect("pause");
        }
    }

    fn uri(&self, form: Form) -> String {
        match form {
            Form::Approve => format!("/plans/{}/approve", self.plan),
            Form::Pause => format!("/campaigns/{}/pause", self.campaign),
            Form::Resume => format!("/campaigns/{}/resume", self.campaign),
            Form::Logout => "/logout".into(),
        }
    }

    /// Whether the form's change happened (for logout: whether `s` was logged out).
    async fn changed(&self, form: Form, s: &Session) -> bool {
        let store = &self.app.store;
        match form {
            Form::Approve => {
                let p = store.plan(&self.plan).await.expect("q").expect("plan");
                p.state == PlanState::Approved
            }
            Form::Pause => {
                store
                    .send_campaign_state(&self.campaign)
                    .await
                    .expect("state")
                    == CampaignSendState::Paused
            }
            Form::Resume => {
                store
                    .send_campaign_state(&self.campaign)
                    .await
                    .expect("state")
                    == CampaignSendState::Active
            }
            Form::Logout => !logged_in(&self.app, s).await,
        }
    }

    /// Posts the form: its status, and `LOGIN` when it was sent to the login page.
    async fn post(&self, form: Form, body: &str, cookie: Option<&str>) -> u16 {
        let (r, _) = request(&self.app.router, post_form(&self.uri(form), body, cookie)).await;
        let to_login = location(&r).as_deref() == Some("/login");
        match r.status().as_u16() {
            303 if to_login => LOGIN,
            s => s,
        }
    }
}

#[tokio::test]
async fn every_form_needs_its_sessions_csrf_token() {
    for form in FORMS {
        let w = world().await;
        w.prepare(form).await;
        let me = login(&w.app).await;
        let other = login(&w.app).await;
        assert_ne!(me.csrf, other.csrf, "each session has its own token");
        let mine = me.cookie();
        let refused = [
            ("no token", String::new(), Some(mine.as_str()), 403),
            (
                "an empty token",
                "csrf=".to_string(),
                Some(mine.as_str()),
                403,
            ),
            (
                "a wrong token",
                "csrf=not-the-token".to_string(),
                Some(mine.as_str()),
                403,
            ),
            (
                "a token one character off",
                format!("csrf={}x", &me.csrf[..me.csrf.len() - 1]),
                Some(mine.as_str()),
                403,
            ),
            (
                "another session's token",
                format!("csrf={}", other.csrf),
                Some(mine.as_str()),
                403,
            ),
            ("no session", format!("csrf={}", me.csrf), None, LOGIN),
            (
                "an unknown session",
                format!("csrf={}", me.csrf),
                Some("retain_session=forged"),
                LOGIN,
            ),
        ];
        for (what, body, cookie, status) in refused {
            assert_eq!(
                w.post(form, &body, cookie).await,
                status,
                "{form:?} with {what}"
            );
            assert!(
                !w.changed(form, &me).await,
                "{form:?} with {what} changed it"
            );
        }
        assert!(logged_in(&w.app, &me).await && logged_in(&w.app, &other).await);
        // Its own token works (logging out also ends on the login page).
        let done = if form == Form::Logout { LOGIN } else { 303 };
        assert_eq!(
            w.post(form, &format!("csrf={}", me.csrf), Some(&mine))
                .await,
            done,
            "{form:?}"
        );
        assert!(w.changed(form, &me).await, "{form:?} did nothing");
        // The other session is untouched (logout ends only its own).
        assert!(logged_in(&w.app, &other).await, "{form:?}");
    }
}

#[tokio::test]
async fn a_logged_out_session_cannot_post_forms_any_more() {
    let w = world().await;
    let me = login(&w.app).await;
    assert_eq!(
        w.post(
            Form::Logout,
            &format!("csrf={}", me.csrf),
            Some(&me.cookie())
        )
        .await,
        LOGIN
    );
    assert_eq!(
        w.post(
            Form::Approve,
            &format!("csrf={}", me.csrf),
            Some(&me.cookie())
        )
        .await,
        LOGIN,
        "to the login page"
    );
    assert!(!w.changed(Form::Approve, &me).await);
}

#[tokio::test]
async fn sessions_expire_after_the_ttl_without_use() {
    let w = world().await;
    let me = login(&w.app).await;
    let idle = login(&w.app).await;
    // The server's clock (what sessions are timed with) moves; real time does not matter here.
    let clock = w.app.state.clock.clone();
    let advance = |d: std::time::Duration| {
        let clock = clock.clone();
        async move { clock.advance(d.as_secs() as i64) }
    };
    // Used just before the TTL is up: still valid, and the use refreshes it.
    advance(SESSION_TTL - std::time::Duration::from_secs(60)).await;
    assert!(logged_in(&w.app, &me).await);
    advance(std::time::Duration::from_secs(120)).await;
    assert!(logged_in(&w.app, &me).await, "refreshed by the last use");
    // Idle past the TTL: gone, and its forms are refused.
    assert_eq!(
        w.post(
            Form::Approve,
            &format!("csrf={}", idle.csrf),
            Some(&idle.cookie())
        )
        .await,
        LOGIN,
        "to the login page"
    );
    assert!(!w.changed(Form::Approve, &idle).await);
    assert!(!logged_in(&w.app, &idle).await);
    advance(SESSION_TTL + std::time::Duration::from_secs(1)).await;
    assert!(!logged_in(&w.app, &me).await);
    assert_eq!(
        w.post(
            Form::Pause,
            &format!("csrf={}", me.csrf),
            Some(&me.cookie())
        )
        .await,
        LOGIN
    );
    assert!(!w.changed(Form::Pause, &me).await);
}

/// The campaign page's deliverability section: counts and rates in total and per recipient
/// domain, the guardrail's limits, and why the guardrail paused the campaign.
#[tokio::test]
async fn the_campaign_page_shows_deliverability_and_the_guardrail() {
    let (store, dir) = store().await;
    let (_, campaign) = draft_plan(&store).await;
    let emails = [
        "a1@one.example",
        "a2@one.example",
        "a3@one.example",
        "b1@two.example",
    ];
    send_campaign(&store, &campaign, &emails, 1_000).await;
    let sends = store.sends_of(&campaign).await.expect("sends");
    for (i, (email, kind)) in [
        (
            "a1@one.example",
            retain_store::DeliverabilityKind::HardBounce,
        ),
        (
            "a2@one.example",
            retain_store::DeliverabilityKind::Complaint,
        ),
        ("b1@two.example", retain_store::DeliverabilityKind::Block),
    ]
    .into_iter()
    .enumerate()
    {
        let s = sends.iter().find(|s| s.email == email).expect("send");
        store
            .record_deliverability_event(&retain_store::NewDeliverabilityEvent {
                send_id: s.id,
                campaign_id: campaign.clone(),
                email: email.into(),
                kind,
                status: None,
                detail: None,
                fingerprint: format!("f{i}"),
                at: 1_000,
            })
            .await
            .expect("event");
    }
    let app = app_with(store, dir, Config::default(), Some(TOKEN)).await;
    let s = login(&app).await;
    let page = |app: &App, s: &Session| {
        let req = axum::http::Request::get(format!("/campaigns/{campaign}"))
            .header("cookie", s.cookie())
            .body(axum::body::Body::empty())
            .expect("request");
        let router = app.router.clone();
        async move { request(&router, req).await }
    };
    let (r, html) = page(&app, &s).await;
    assert_eq!(r.status(), 200, "{html}");
    assert!(html.contains(r#"id="deliverability-table""#), "{html}");
    // 4 delivered: 1 hard bounce (25.00%), 1 complaint, 1 block; one.example 3, two.example 1.
    assert!(
        html.contains(
            "<td>4</td><td>1 (25.00%)</td><td>0 (0.00%)</td><td>1 (25.00%)</td><td>1 (25.00%)</td>"
        ),
        "{html}"
    );
    assert!(
        html.contains("<td>one.example</td><td>3</td><td>1 (33.33%)</td>"),
        "{html}"
    );
    assert!(html.contains("<td>two.example</td><td>1</td><td>0 (0.00%)</td><td>0 (0.00%)</td><td>1 (100.00%)</td>"), "{html}");
    assert!(
        html.contains("complaints reach 0.1%") && html.contains("reach 2%"),
        "{html}"
    );
    assert!(html.contains(r#"id="guardrail-ok""#), "{html}");
    app.store
        .pause_send_campaign_for(
            &campaign,
            "complaint rate 25.00% (1 of 4 delivered) reached the 0.10% limit",
        )
        .await
        .expect("pause");
    let (_, html) = page(&app, &s).await;
    assert!(html.contains(r#"id="guardrail-paused""#), "{html}");
    // The campaigns list: bounces with blocks, complaints, and the guardrail's mark.
    let req = axum::http::Request::get("/campaigns")
        .header("cookie", s.cookie())
        .body(axum::body::Body::empty())
        .expect("request");
    let (_, list) = request(&app.router, req).await;
    assert!(
        list.contains("<td class=\"n\">2 (50.00%)</td><td class=\"n\">1 (25.00%)</td>"),
        "{list}"
    );
    assert!(list.contains("(guardrail)"), "{list}");
    assert!(
        html.contains("complaint rate 25.00% (1 of 4 delivered)"),
        "{html}"
    );
}

/// The campaigns list and a campaign's page keep each report until its data changes: a new
/// event (an open) and a newly sent recipient both show on the next visit, and an unchanged
/// campaign answers the same.
#[tokio::test]
async fn campaign_reports_follow_new_events_and_sends() {
    let (store, dir) = store().await;
    // Recipients named as `send_campaign` names them (cust-<local part>).
    let (_, campaign) = plan_of(&store, &["cust-a", "cust-b", "cust-c"], &[]).await;
    let ids = send_campaign(
        &store,
        &campaign,
        &["a@one.example", "b@one.example"],
        1_000,
    )
    .await;
    let app = app_with(store, dir, Config::default(), Some(TOKEN)).await;
    let s = login(&app).await;
    let get = |uri: String| {
        let req = get_with(&uri, &s.cookie());
        let router = app.router.clone();
        async move { request(&router, req).await.1 }
    };
    // sent, opens, clicks of the campaign's row in the list.
    let row = |html: &str| -> Vec<String> {
        let at = html
            .find(&format!(">{campaign}</a>"))
            .expect("campaign row");
        html[at..]
            .split("<td class=\"n\">")
            .skip(1)
            .take(3)
            .map(|c| c.split('<').next().unwrap_or_default().to_string())
            .collect()
    };
    let list = get("/campaigns".into()).await;
    assert_eq!(row(&list), ["2", "0", "0"], "{list}");
    assert_eq!(get("/campaigns".into()).await, list, "nothing changed");
    app.store
        .record_events(&[retain_store::NewEvent {
            send_id: ids[0],
            kind: retain_store::EventKind::Open,
            at: 1_100,
            bot: false,
            url: None,
            user_agent: None,
        }])
        .await
        .expect("event");
    let list = get("/campaigns".into()).await;
    assert_eq!(row(&list), ["2", "1", "0"], "the open shows: {list}");
    // A third recipient queued and sent: the campaign's sends changed.
    send_campaign(&app.store, &campaign, &["c@one.example"], 1_200).await;
    let list = get("/campaigns".into()).await;
    assert_eq!(row(&list), ["3", "1", "0"], "the new send shows: {list}");
    let page = get(format!("/campaigns/{campaign}")).await;
    assert!(page.contains(&campaign), "{page}");
    assert_eq!(get(format!("/campaigns/{campaign}")).await, page);
    // The deliverability table: the domain's row, delivered then hard bounces.
    let domain_row = |html: &str| -> Vec<String> {
        let at = html.find("<td>one.example</td>").expect("domain row");
        html[at..]
            .split("<td>")
            .skip(2)
            .take(2)
            .map(|c| c.split(['<', ' ']).next().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(domain_row(&page), ["3", "0"], "{page}");
    // A bounce report arrives: the next visit counts it.
    let sent = app.store.send(ids[0]).await.expect("send").expect("row");
    app.store
        .record_deliverability_event(&retain_store::NewDeliverabilityEvent {
            send_id: sent.id,
            campaign_id: sent.campaign_id.clone(),
            email: sent.email.clone(),
            kind: retain_store::DeliverabilityKind::HardBounce,
            status: Some("5.1.1".into()),
            detail: None,
            fingerprint: "bounce-1".into(),
            at: 1_300,
        })
        .await
        .expect("report");
    let page = get(format!("/campaigns/{campaign}")).await;
    assert_eq!(domain_row(&page), ["3", "1"], "the bounce shows: {page}");
}
