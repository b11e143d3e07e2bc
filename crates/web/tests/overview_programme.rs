//! The overview shows the whole programme against the global control group: revenue per
//! customer of both sides in the current control period and the incremental revenue with its 95%
//! interval; without a control group it says the programme cannot be measured.

mod common;

use common::*;
use retain_core::config::Config;
use retain_results::program::Program;
use retain_web::auth::{LOGIN_COOKIE, SESSION_COOKIE};

const TOKEN: &str = "overview-test-token-0123456";
/// 2026-11-21 12:00 UTC: in the control period 2026Q4.
const NOW: i64 = 1_795_262_400;

fn set_cookie<B>(r: &axum::http::Response<B>, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

async fn overview(program: Program) -> String {
    let (store, dir) = store().await;
    // 600 customers, each with one order in November 2026.
    let mut csv = String::from("order_id,customer_id,order_date,amount\n");
    for i in 0..600 {
        csv.push_str(&format!(
            "o{i},c{i:04},2026-11-0{},{}.00\n",
            1 + i % 9,
            20 + i % 17
        ));
    }
    let file = dir.path().join("orders.csv");
    std::fs::write(&file, csv).expect("csv");
    store
        .import_orders_file(
            &file,
            &retain_core::import::ImportOptions::default(),
            |_| {},
            |_| Ok(()),
        )
        .await
        .expect("import");
    let mut opts = options(Config::default(), Some(TOKEN));
    opts.program = Some(program);
    let app = app_with_options(store, dir, opts).await;
    app.state.clock.set(NOW);
    let (r, _) = request(&app.router, get("/login")).await;
    let login_cookie = set_cookie(&r, LOGIN_COOKIE).expect("login cookie");
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
    let cookie = format!(
        "{SESSION_COOKIE}={}",
        set_cookie(&r, SESSION_COOKIE).expect("session")
    );
    let req = axum::http::Request::get("/")
        .header("cookie", cookie)
        .body(axum::body::Body::empty())
        .expect("request");
    let (r, body) = request(&app.router, req).await;
    assert_eq!(r.status(), 200, "{body}");
    body
}

/// The number in the table cell after `label`'s row header, e.g. the programme's customers.
fn customers_of(body: &str, label: &str) -> u64 {
    let row = body
        .split("<tr><td>")
        .find(|r| r.starts_with(label))
        .unwrap_or_else(|| panic!("no row {label}: {body}"));
    row.split("<td>")
        .nth(1)
        .and_then(|c| c.split('<').next())
        .and_then(|n| n.replace(',', "").trim().parse().ok())
        .unwrap_or_else(|| panic!("row {label}: {row}"))
}

#[tokio::test]
async fn the_overview_measures_the_programme_against_the_global_control() {
    let body = overview(Program {
        control_share: 0.2,
        ..Program::default()
    })
    .await;
    assert!(
        body.contains("Programme vs global control (2026Q4)"),
        "{body}"
    );
    assert!(body.contains("Incremental revenue <b>"), "{body}");
    assert!(body.contains("per customer (95% CI "), "{body}");
    let (programme, control) = (
        customers_of(&body, "programme"),
        customers_of(&body, "global control"),
    );
    assert_eq!(programme + control, 600);
    // About a fifth of the customers are in the control.
    assert!((80..=160).contains(&control), "{control}");
}

#[tokio::test]
async fn without_a_control_group_the_overview_says_so() {
    let body = overview(Program {
        control_share: 0.0,
        ..Program::default()
    })
    .await;
    assert!(body.contains("Programme vs global control"), "{body}");
    assert!(body.contains("cannot be measured"), "{body}");
    assert!(!body.contains("Incremental revenue <b>"));
}
