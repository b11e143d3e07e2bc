//! Recommendations end to end through the real binary: a line-item orders file and a catalogue
//! imported, `retain recommend` trained and saved, `retain recommend evaluate` on a time split,
//! and an upsell email in the file outbox showing the customer's picks (escaped in HTML).

use std::path::Path;

use retain_store::{NewPlan, NewPlanCampaign, PlanState, Store};

mod common;
use common::{database_url, retain, workspace};

/// Quoted-printable decoding, enough to read a rendered email.
fn unqp(s: &str) -> String {
    let s = s.replace("=\r\n", "").replace("=\n", "");
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn write_shop(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let mut customers = String::from("customer_id,email,first_name,subscribed\n");
    let mut orders = String::from("customer_id,order_id,order_date,sku,product,quantity,amount\n");
    let mut n = 0;
    let mut order = |c: &str, day: u32, lines: &[(&str, &str)], orders: &mut String| {
        n += 1;
        for (sku, name) in lines {
            orders.push_str(&format!("{c},O{n},2024-03-{day:02},{sku},{name},1,10.00\n"));
        }
    };
    for i in 0..60 {
        let c = format!("c{i:03}");
        customers.push_str(&format!("{c},{c}@mail.example,Name{i},yes\n"));
        // Everyone buys the bag; tea buyers buy the pot later (the first 20 before the 10th,
        // the next 10 after it), mug buyers a spoon.
        order(&c, 1, &[("BAG", "Tote bag")], &mut orders);
        if i < 30 {
            order(&c, 2, &[("TEA", "Assam tea")], &mut orders);
            order(
                &c,
                if i < 20 { 5 } else { 20 },
                &[("POT", "Tea pot")],
                &mut orders,
            );
        } else {
            order(&c, 2, &[("MUG", "Mug"), ("SPOON", "Spoon")], &mut orders);
        }
    }
    // The customer to mail: bought tea only; returned a mug.
    customers.push_str("c099,c099@mail.example,Ada,yes\n");
    order("c099", 3, &[("TEA", "Assam tea")], &mut orders);
    orders.push_str("c099,C9,2024-03-04,MUG,Mug,-1,-10.00\n");
    let products = "sku,name,url,image,price,in_stock\n\
TEA,Assam tea,https://shop.example/tea,,8.00,yes\n\
POT,\"Tea pot <script>alert(1)</script>\",https://shop.example/pot,https://cdn.example/pot.jpg,30.00,yes\n\
BAG,Tote bag,https://shop.example/bag,,5.00,yes\n\
MUG,Mug,https://shop.example/mug,,9.00,yes\n\
SPOON,Spoon,https://shop.example/spoon,,2.00,no\n";
    let (cf, of, pf) = (
        dir.join("customers.csv"),
        dir.join("lines.csv"),
        dir.join("products.csv"),
    );
    std::fs::write(&cf, customers).expect("write");
    std::fs::write(&of, orders).expect("write");
    std::fs::write(&pf, products).expect("write");
    (cf, of, pf)
}

fn json(out: &[u8]) -> serde_json::Value {
    serde_json::from_slice(out).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(out)))
}

#[tokio::test]
async fn import_lines_recommend_and_mail_the_picks() {
    let (dir, ws) = workspace();
    let (cf, of, pf) = write_shop(dir.path());
    retain(&ws)
        .args(["import", "customers"])
        .arg(&cf)
        .assert()
        .success();
    let o = retain(&ws)
        .args(["import", "orders", "--format", "json"])
        .arg(&of)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let imported = json(&o.stdout);
    // 60 bags, 30 × (tea, pot), 30 × (mug, spoon), and c099's tea and returned mug.
    assert_eq!(imported["product_lines"], 182, "{imported}");
    // Re-importing the same file replaces the same lines.
    let o = retain(&ws)
        .args(["import", "orders", "--format", "json"])
        .arg(&of)
        .output()
        .expect("run");
    assert_eq!(json(&o.stdout)["product_lines"], 182);
    let o = retain(&ws)
        .args(["import", "products", "--format", "json"])
        .arg(&pf)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(json(&o.stdout)["products"], 5);

    let o = retain(&ws)
        .args(["recommend", "--format", "json"])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary = json(&o.stdout);
    assert_eq!(summary["customers"], 61, "{summary}");
    // A new customer's picks are the most popular in-stock products: never the spoon.
    let popular: Vec<&str> = summary["most_popular"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|p| p["product_id"].as_str())
        .collect();
    assert_eq!(popular.first(), Some(&"BAG"), "{summary}");
    assert!(!popular.contains(&"SPOON"));

    let o = retain(&ws)
        .args([
            "recommend",
            "--customer",
            "c099",
            "--top",
            "3",
            "--format",
            "json",
        ])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let picks = json(&o.stdout);
    let ids: Vec<&str> = picks
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|p| p["product_id"].as_str())
        .collect();
    assert_eq!(
        ids.first(),
        Some(&"POT"),
        "the tea buyers' pot comes first: {picks}"
    );
    assert!(!ids.contains(&"TEA"), "bought");
    assert!(!ids.contains(&"MUG"), "returned");
    assert!(!ids.contains(&"SPOON"), "out of stock");

    let o = retain(&ws)
        .args([
            "recommend",
            "evaluate",
            "--split-date",
            "2024-03-10",
            "--top",
            "1",
        ])
        .args(["--format", "json"])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let eval = json(&o.stdout);
    // Scored: the 10 who bought the pot after the split. The model learned tea → pot from the
    // 20 before it; popularity offers the mug (30 buyers before the split against the pot's 20).
    assert_eq!(eval["customers_evaluated"], 10, "{eval}");
    assert_eq!(eval["hit_rate_at_10"], 1.0, "{eval}");
    assert_eq!(eval["baseline_hit_rate_at_10"], 0.0, "{eval}");

    // An approved upsell campaign to c099, sent to the file outbox.
    let store = Store::open(&database_url(&ws)).await.expect("db");
    let id = store
        .save_plan(&NewPlan {
            budget: 10.0,
            used: 1.0,
            expected_value: 5.0,
            holdout_fraction: 0.0,
            seed: 1,
            as_of: None,
            goals_file: None,
            document: "{}".into(),
            campaigns: vec![NewPlanCampaign {
                local_id: "upsell_cross_sell-1".into(),
                goal: "upsell_cross_sell".into(),
                template: "upsell_cross_sell".into(),
                segments: vec!["Loyal".into()],
                expected_value: 5.0,
                cost: 1.0,
                recipients: vec!["c099".into()],
                holdout: vec![],
                details: "{}".into(),
            }],
        })
        .await
        .expect("plan");
    store
        .set_plan_state(&id, PlanState::Approved)
        .await
        .expect("approve");
    store.close().await;
    let campaign = format!("{id}-upsell_cross_sell-1");
    let o = retain(&ws)
        .env("RETAIN_SMTP_URL", "")
        .args(["send", &campaign, "--rate", "0"])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let outbox = ws.join("outbox").join(&campaign);
    let eml = std::fs::read_dir(&outbox)
        .expect("outbox")
        .flatten()
        .next()
        .expect("one email")
        .path();
    let raw = unqp(&std::fs::read_to_string(eml).expect("read"));
    assert!(
        raw.contains("Tea pot &lt;script&gt;alert(1)&lt;/script&gt;"),
        "{raw}"
    );
    assert!(
        !raw.contains("<strong>Assam tea"),
        "bought products are not offered"
    );
    assert!(!raw.contains("Spoon"), "out of stock");
    // The pick links through the click tracker, not to the shop directly.
    assert!(!raw.contains("href=\"https://shop.example/pot"), "{raw}");
}
