//! The dashboard's customer pages (`/customers?q=`, `/customers/{id}`) and the campaign page's
//! sending state once every email is out ("finished", no pause button).

mod common;

use axum::http::Response;
use common::*;
use retain_core::config::Config;
use retain_core::SuppressionReason;
use retain_store::{NewEvent, NewPlan, NewPlanCampaign, NewSend};
use retain_web::auth::{LOGIN_COOKIE, SESSION_COOKIE};

const TOKEN: &str = "customer-page-token-0123";

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

async fn login(app: &App) -> String {
    let (r, body) = request(&app.router, get("/login")).await;
    let login_cookie = set_cookie(&r, LOGIN_COOKIE).expect("login cookie");
    assert!(body.contains(&login_cookie));
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
    format!(
        "{SESSION_COOKIE}={}",
        set_cookie(&r, SESSION_COOKIE).expect("session")
    )
}

async fn page(app: &App, cookie: &str, uri: &str) -> (u16, String, Option<String>) {
    let req = axum::http::Request::get(uri)
        .header("cookie", cookie)
        .body(axum::body::Body::empty())
        .expect("request");
    let (r, body) = request(&app.router, req).await;
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (r.status().as_u16(), body, location)
}

#[tokio::test]
async fn customer_pages_and_a_finished_campaign() {
    let (store, dir) = store().await;
    customers(&store, &["cust-ann", "cust-bob", "cust-dan"]).await;
    let plan = store
        .save_plan(&NewPlan {
            budget: 100.0,
            used: 1.0,
            expected_value: 5.0,
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
                expected_value: 5.0,
                cost: 1.0,
                recipients: vec!["cust-ann".into(), "cust-bob".into()],
                holdout: vec!["cust-dan".into()],
                details: "{}".into(),
            }],
        })
        .await
        .expect("plan");
    assert_eq!(plan, "p1");
    let ids = send_campaign(
        &store,
        "p1-win_back-1",
        &["ann@example.com", "bob@example.com"],
        1_700_000_000,
    )
    .await;
    store
        .record_events(&[NewEvent {
            send_id: ids[0],
            kind: retain_store::EventKind::Click,
            at: 1_700_000_100,
            bot: false,
            url: Some("https://shop.example/<b>tea</b>".into()),
            user_agent: None,
        }])
        .await
        .expect("event");
    store
        .suppress("bob@example.com", SuppressionReason::Complaint, "test")
        .await
        .expect("suppress");
    let app = app_with(store, dir, Config::default(), Some(TOKEN)).await;
    let cookie = login(&app).await;

    // Without a session: the login page.
    let (status, _, location) = page(&app, "", "/customers/cust-ann").await;
    assert_eq!((status, location.as_deref()), (303, Some("/login")));

    // The search form; a query naming one customer redirects to their page.
    let (status, body, _) = page(&app, &cookie, "/customers").await;
    assert_eq!(status, 200);
    assert!(body.contains("id=\"customer-search\""), "{body}");
    let (status, _, location) = page(&app, &cookie, "/customers?q=ANN%40example.com").await;
    assert_eq!(
        (status, location.as_deref()),
        (303, Some("/customers/cust-ann"))
    );
    let (status, body, _) = page(&app, &cookie, "/customers?q=nobody").await;
    assert_eq!(status, 404);
    assert!(body.contains("id=\"search-message\""), "{body}");

    // The page: attributes, status, campaigns with the send state, events (escaped).
    let (status, body, _) = page(&app, &cookie, "/customers/cust-ann").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("ann@example.com"), "{body}");
    assert!(body.contains(">mailable<"), "{body}");
    assert!(body.contains("p1-win_back-1"), "{body}");
    assert!(body.contains("<td>sent</td>"), "{body}");
    assert!(body.contains("p1</a> (draft)"), "{body}");
    assert!(
        body.contains("&lt;b&gt;tea"),
        "event URLs are escaped: {body}"
    );
    let (_, body, _) = page(&app, &cookie, "/customers/cust-bob").await;
    assert!(
        body.contains("not mailable: suppressed (complaint)"),
        "{body}"
    );
    let (status, _, _) = page(&app, &cookie, "/customers/nobody").await;
    assert_eq!(status, 404);

    // Every email of the campaign is out: finished, nothing to pause.
    let (status, body, _) = page(&app, &cookie, "/campaigns/p1-win_back-1").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<b id=\"send-state\">finished</b>"), "{body}");
    assert!(!body.contains("id=\"pause\""), "{body}");
    let (_, list, _) = page(&app, &cookie, "/campaigns").await;
    assert!(list.contains("<td>finished</td>"), "{list}");

    // One more recipient queued: active again, with its pause button.
    app.store
        .queue_sends(
            "p1-win_back-1",
            &[NewSend {
                customer_id: "cust-cy".into(),
                email: "cy@example.com".into(),
                message_id: "<y@shop.example>".into(),
                suppressed: None,
            }],
        )
        .await
        .expect("queue");
    let (_, body, _) = page(&app, &cookie, "/campaigns/p1-win_back-1").await;
    assert!(body.contains("<b id=\"send-state\">active</b>"), "{body}");
    assert!(body.contains("id=\"pause\""), "{body}");
}
