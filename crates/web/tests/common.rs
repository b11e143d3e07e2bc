//! Shared helpers of the web crate's HTTP tests: a temp store with sent campaign emails, the app
//! with its event writer, and one-shot requests.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Request, Response};
use axum::Router;
use retain_core::config::Config;
use retain_store::{Claim, ConsentCheck, NewSend, Store};
use retain_web::writer::{self, WriterConfig, WriterTask};
use retain_web::{router, AppState, LoginLimits, StateOptions};
use tower::ServiceExt;

pub const SECRET: &[u8] = b"test-secret-0123456789abcdef-xyz";

pub struct App {
    pub store: Store,
    /// The handlers' shared state (its `clock` can be set).
    pub state: AppState,
    pub router: Router,
    pub writer: WriterTask,
    pub _dir: tempfile::TempDir,
}

/// A store with `emails` queued and marked sent (at `sent_at`) in campaign `campaign`; returns
/// their send ids in order.
pub async fn send_campaign(
    store: &Store,
    campaign: &str,
    emails: &[&str],
    sent_at: i64,
) -> Vec<i64> {
    let sends: Vec<NewSend> = emails
        .iter()
        .enumerate()
        .map(|(i, e)| NewSend {
            customer_id: format!("cust-{}", e.split('@').next().unwrap_or("x")),
            email: e.to_string(),
            message_id: format!("<{campaign}-{i}@shop.example>"),
            suppressed: None,
        })
        .collect();
    let customers: Vec<retain_core::Customer> = sends
        .iter()
        .map(|s| retain_core::Customer {
            id: s.customer_id.clone(),
            email: Some(s.email.clone()),
            email_valid: true,
            subscribed: Some(true),
            ..Default::default()
        })
        .collect();
    store
        .import_customers("test", &customers, (0, 0, 0))
        .await
        .expect("customers");
    store.queue_sends(campaign, &sends).await.expect("queue");
    let claimed = claim_all(store, campaign).await;
    assert!(claimed.1.is_empty(), "suppressed at claim: {:?}", claimed.1);
    let ids: Vec<i64> = claimed.0.iter().map(|s| s.0).collect();
    store
        .mark_sent(&ids.iter().map(|i| (*i, sent_at)).collect::<Vec<_>>())
        .await
        .expect("sent");
    store
        .sends_of(campaign)
        .await
        .expect("sends")
        .into_iter()
        .map(|s| s.id)
        .collect()
}

/// Claims every due send of a campaign: (claimed ids, suppressed ids with reasons).
pub async fn claim_all(store: &Store, campaign: &str) -> (Vec<(i64, String)>, Vec<(i64, String)>) {
    store
        .acquire_send_lease(campaign, "test", 60)
        .await
        .expect("lease")
        .expect("free");
    match store
        .claim_sends(campaign, "test", 60, 10_000, ConsentCheck::default())
        .await
        .expect("claim")
    {
        Claim::Claimed { sends, suppressed } => (
            sends.into_iter().map(|s| (s.id, s.email)).collect(),
            suppressed,
        ),
        other => panic!("claim: {other:?}"),
    }
}

pub async fn app_with(
    store: Store,
    dir: tempfile::TempDir,
    config: Config,
    token: Option<&str>,
) -> App {
    app_with_options(store, dir, options(config, token)).await
}

/// The state options of the tests: `token` for the administrator, the default login limits.
pub fn options(config: Config, token: Option<&str>) -> StateOptions {
    StateOptions {
        webhooks: Default::default(),
        config,
        secret: SECRET.to_vec(),
        web_token: token.map(str::to_string),
        viewer_token: None,
        view_renderer: None,
        login_limits: LoginLimits::default(),
        program: None,
    }
}

pub async fn app_with_options(store: Store, dir: tempfile::TempDir, opts: StateOptions) -> App {
    let (events, task) = writer::spawn(
        store.clone(),
        WriterConfig {
            flush_every: std::time::Duration::from_millis(20),
            max_batch: 500,
            channel: 10_000,
        },
    );
    let state = AppState::new(store.clone(), events, opts).expect("state");
    App {
        store,
        router: router(state.clone()),
        state,
        writer: task,
        _dir: dir,
    }
}

/// Creates customers with these ids (plans and sends name customers the store holds).
#[allow(dead_code)] // not every test file uses it
pub async fn customers(store: &Store, ids: &[&str]) {
    let rows: Vec<retain_core::Customer> = ids
        .iter()
        .map(|id| retain_core::Customer {
            id: id.to_string(),
            ..retain_core::Customer::default()
        })
        .collect();
    store
        .import_customers("customers.csv", &rows, (0, 0, 0))
        .await
        .expect("customers");
}

pub async fn store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open_sqlite(&dir.path().join("t.db"))
        .await
        .expect("open");
    (store, dir)
}

pub async fn request(app: &Router, req: Request<Body>) -> (Response<Body>, String) {
    let resp = app.clone().oneshot(req).await.expect("response");
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 10 << 20).await.expect("body");
    (
        Response::from_parts(parts, Body::empty()),
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).expect("request")
}

pub fn post_form(uri: &str, body: &str, cookie: Option<&str>) -> Request<Body> {
    let mut b = Request::post(uri).header("content-type", "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        b = b.header("cookie", c);
    }
    b.body(Body::from(body.to_string())).expect("request")
}
