//! Criterion benchmarks of the per-recipient work: rendering the starter `win_back` template
//! (subject, HTML, text), the same plus CSS inlining and MIME composition (what `retain send`
//! does for each message), and the side-by-side newsletter template on one context.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use retain_mailer::{
    sample_recipient, CampaignInfo, Composer, Identity, Offer, Shared, TemplateSet,
};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn composer() -> Composer {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../templates");
    Composer::new(
        TemplateSet::load(&dir, "win_back", "https://t.example.com", SECRET).expect("templates"),
        Identity::new("Shop <news@shop.example>", "").expect("identity"),
        Shared {
            campaign: CampaignInfo {
                id: "bench-1".into(),
                goal: "win_back".into(),
                goal_name: "Win-back".into(),
                template: "win_back".into(),
            },
            company_name: "Example Shop Ltd".into(),
            company_address: "1 Example Street, 10115 Berlin".into(),
            from: "Shop <news@shop.example>".into(),
            reply_to: String::new(),
            shop_url: "https://shop.example".into(),
            tracking_base_url: "https://t.example.com".into(),
            offer: Offer {
                discount_pct: Some(15.0),
                code_prefix: None,
            },
            today: "2026-11-22".into(),
        },
        SECRET.to_vec(),
        None,
    )
}

fn bench(c: &mut Criterion) {
    let comp = composer();
    let r = sample_recipient();
    c.bench_function("compose win_back (render, inline CSS, MIME)", |b| {
        let mut id = 0;
        b.iter(|| {
            id += 1;
            black_box(
                comp.compose(id, "<x@shop.example>", "alex@mail.example", &r)
                    .expect("compose"),
            )
        })
    });
    c.bench_function("render win_back (subject, HTML + inline CSS, text)", |b| {
        b.iter(|| black_box(comp.render(7, "alex@mail.example", &r).expect("render")))
    });
    let mut tera = tera::Tera::new();
    retain_mailer::templates::register_helpers(&mut tera);
    tera.add_raw_template("n.html", include_str!("data/newsletter.html"))
        .expect("template");
    let product = |i: u32| {
        serde_json::json!({"name": format!("Product {i} & Co. <Deluxe> edition number {i} with a long name"),
            "price": 19.99 + f64::from(i), "old_price": if i % 3 == 0 { serde_json::json!(49.5) } else { serde_json::Value::Null },
            "url": format!("https://shop.example.com/p/{i}"), "image": format!("https://cdn.example.com/img/{i}.jpg")})
    };
    let ctx = tera::Context::from_serialize(&serde_json::json!({
        "subject": "Your weekly picks", "company": "Example Shop Ltd", "issue_date": "2026-11-22",
        "currency": "EUR", "discount_pct": 15, "campaign": "wk47", "shop_url": "https://shop.example.com",
        "unsubscribe_base": "https://shop.example.com/u", "company_address": "1 Example Street",
        "customer": {"id": 1, "first_name": "<script>x</script>", "email": "user1@example.com",
            "segment": "champion", "frequency": 12, "monetary": 1234.5, "recency_days": 40,
            "clv": 812.3, "code": "back000001", "token": "0123456789abcdef"},
        "products": (0..5).map(product).collect::<Vec<_>>(),
    }))
    .expect("context");
    c.bench_function("render newsletter (tera, no inlining)", |b| {
        b.iter(|| black_box(tera.render("n.html", &ctx).expect("render")))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
