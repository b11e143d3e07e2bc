//! CSS inlined once per template gives exactly what inlining every rendered message gave: every
//! starter template in `templates/` (and the benchmark templates) is rendered for many contexts
//! — hostile values, loops of 0 to 6 recommendations, every conditional both ways, empty lists —
//! with the compiled template and with per-message inlining, and the outputs are compared byte
//! for byte.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use retain_core::{Customer, CustomerFeatures, Prediction};
use retain_mailer::{
    context, CampaignInfo, Offer, ProductCard, Recipient, Scores, Shared, TemplateSet,
};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Template names in a directory: every `NAME.html` but the layout and partials.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("template dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter_map(|f| f.strip_suffix(".html").map(str::to_string))
        .filter(|n| n != "base" && !n.starts_with('_'))
        .collect();
    v.sort();
    v
}

/// Values a customer file or a catalogue may hold, the unpleasant ones included.
const WORDS: &[&str] = &[
    "Alex",
    "<script>alert('x')</script>",
    "O'Brien & \"Sons\"",
    "Zoë\u{a0}Ünïcode 🙂",
    "&amp; &#x27; &lt;b&gt; &nbsp",
    "{{ not_a_tag }} {% if %}",
    "--> <!-- ]]>",
    "  spaced  ",
    "a\nb\tc",
    "\u{a0}",
    "x>y<z",
];

/// Values the HTML parser changes (line ends, NUL): such a message is inlined on its own.
const RAW: &[&str] = &["line\r\nbreak", "nul\0byte", "cr\ronly"];

fn card(i: usize) -> ProductCard {
    let w = WORDS[i % WORDS.len()];
    ProductCard {
        id: format!("P-{i}"),
        name: if i % 5 == 4 {
            String::new()
        } else {
            w.to_string()
        },
        url: (i % 3 != 1).then(|| format!("https://shop.example/p/{i}?a=1&b=\"{}\"", i % 7)),
        image: (i % 4 != 2).then(|| format!("https://cdn.example/{i}.jpg?w=80&h={w}")),
        price: match i % 4 {
            0 => None,
            1 => Some(12.5),
            2 => Some(20.0),
            _ => Some(1234.5678),
        },
    }
}

fn recipient(i: usize) -> Recipient {
    let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).expect("date");
    let w = |k: usize| WORDS[(i + k) % WORDS.len()].to_string();
    let mut customer = Customer {
        id: format!("c{i}"),
        email: Some(format!("user{i}@mail.example")),
        email_valid: true,
        first_name: if i % 7 == 6 {
            Some(RAW[i % RAW.len()].to_string())
        } else {
            (i % 6 != 0).then(|| w(0))
        },
        last_name: (i % 4 != 0).then(|| w(3)),
        subscribed: Some(true),
        signup_date: (i % 2 == 0).then(|| day(2023, 3, 14)),
        locale: match i % 3 {
            0 => None,
            1 => Some("de".into()),
            _ => Some(w(5)),
        },
        ..Default::default()
    };
    if i % 2 == 1 {
        customer.attributes.insert("city".into(), w(7));
    }
    let n_recs = [0, 1, 2, 4, 6][i % 5];
    Recipient {
        segment: (i % 3 != 2).then(|| w(2)),
        scores: (i % 2 == 0).then_some(Scores { r: 5, f: 1, m: 3 }),
        features: (i % 4 != 3).then(|| CustomerFeatures {
            customer_id: customer.id.clone(),
            first_order: day(2023, 3, 14),
            last_order: day(2024, 11, 2),
            recency_days: [0, 1, 21, 400][i % 4],
            frequency: [1, 2, 9][i % 3] as u32,
            repeat_purchases: 1,
            monetary_total: 842.5,
            avg_order_value: 93.61,
            tenure_days: 620,
        }),
        prediction: (i % 5 != 1).then(|| Prediction {
            customer_id: customer.id.clone(),
            p_alive: 0.93,
            expected_purchases_90d: 1.4,
            clv: 512.0,
        }),
        recommendations: (0..n_recs).map(|k| card(i + k)).collect(),
        due: (i % 3 == 0).then(|| (card(i + 11), [5, 0, -3][i % 3])),
        customer,
    }
}

fn shared(name: &str, i: usize) -> Shared {
    Shared {
        campaign: CampaignInfo {
            id: format!("{name}-1"),
            goal: name.into(),
            goal_name: if i % 2 == 0 {
                "Win-back".into()
            } else {
                "<b>Goal</b> & co".into()
            },
            template: name.into(),
        },
        company_name: if i % 2 == 0 {
            "Shop & Co <Ltd>".into()
        } else {
            "Shop".into()
        },
        company_address: "1 \"Example\" Street, 00000 Example City".into(),
        from: "Shop <news@shop.example>".into(),
        reply_to: String::new(),
        shop_url: "https://shop.example/?ref=mail&x=1".into(),
        tracking_base_url: "https://t.example.com".into(),
        offer: Offer {
            discount_pct: [None, Some(15.0), Some(12.5)][i % 3],
            code_prefix: None,
        },
        today: "2025-01-01".into(),
    }
}

/// Renders `n` contexts both ways; returns how many the compiled template rendered itself.
fn compare(set: &TemplateSet, name: &str, n: usize) -> usize {
    let mut compiled = 0;
    for i in 0..n {
        let ctx = context::build(
            &shared(name, i),
            SECRET,
            i as i64 + 1,
            "user@mail.example",
            &recipient(i),
        );
        let fast = set.render(&ctx).expect("renders");
        let slow = set.render_per_message(&ctx).expect("renders per message");
        assert_eq!(fast, slow, "{name}, context {i}");
        // The HTML alone, from the compiled template when it accepted the context.
        let mut with_subject = ctx.clone();
        with_subject.insert("subject", &slow.subject);
        if let Some(html) = set.render_html_compiled(&with_subject) {
            assert_eq!(html, slow.html, "{name}, context {i}");
            compiled += 1;
        }
    }
    compiled
}

#[test]
fn starter_templates_inline_at_compile_time_with_identical_output() {
    let dir = root().join("templates");
    let names = names(&dir);
    assert!(names.len() >= 9, "{names:?}");
    for name in &names {
        let set = TemplateSet::load(&dir, name, "https://t.example.com", SECRET).expect("loads");
        assert_eq!(
            set.per_message_inlining(),
            None,
            "{name} inlines per message"
        );
        let n = 2 * WORDS.len() * 5;
        let compiled = compare(&set, name, n);
        // Values with a carriage return or a NUL are inlined per message; everything else by
        // the compiled template.
        assert!(
            compiled * 10 >= n * 6,
            "{name}: only {compiled} of {n} compiled"
        );
    }
}

#[test]
fn benchmark_templates_inline_at_compile_time_with_identical_output() {
    let dir = root().join("crates/mailer/benches/data/templates");
    for name in names(&dir) {
        let set = TemplateSet::load(&dir, &name, "https://t.example.com", SECRET).expect("loads");
        assert_eq!(
            set.per_message_inlining(),
            None,
            "{name} inlines per message"
        );
        assert!(compare(&set, &name, 60) > 30);
    }
    // The newsletter of the render benchmark, with the baseline's kind of context.
    let src = std::fs::read_to_string(root().join("crates/mailer/benches/data/newsletter.html"))
        .expect("newsletter");
    let set = TemplateSet::from_sources(
        "newsletter",
        &[("newsletter.html".to_string(), src)],
        "https://t.example.com",
        SECRET,
    )
    .expect("compiles");
    assert_eq!(set.per_message_inlining(), None);
    let mut compiled = 0;
    for i in 0..80 {
        let w = |k: usize| WORDS[(i + k) % WORDS.len()];
        let products: Vec<serde_json::Value> = (0..i % 6)
            .map(|k| {
                serde_json::json!({"name": w(k), "price": 19.99 + k as f64,
                    "old_price": if k % 2 == 0 { serde_json::json!(49.5) } else { serde_json::Value::Null },
                    "url": format!("https://shop.example.com/p/{k}"), "image": format!("https://cdn.example.com/{}.jpg", w(k + 1))})
            })
            .collect();
        let segment = ["champion", "at_risk", "new", "loyal"][i % 4];
        let frequency = [1, 2, 12][i % 3];
        let mut customer = serde_json::json!({"id": i, "first_name": w(0),
            "email": format!("u{i}@example.com"), "segment": segment,
            "frequency": frequency, "monetary": 1234.5, "recency_days": 40, "clv": 812.3,
            "code": format!("back{i:06}"), "token": w(2)});
        if i % 4 == 0 {
            // No first name: the template's default.
            if let serde_json::Value::Object(m) = &mut customer {
                m.remove("first_name");
            }
        }
        let ctx = tera::Context::from_serialize(&serde_json::json!({
            "subject": w(3), "company": w(4), "issue_date": "2026-11-22", "currency": "EUR",
            "discount_pct": 15, "campaign": w(5), "shop_url": "https://shop.example.com",
            "unsubscribe_base": "https://shop.example.com/u", "company_address": w(6),
            "customer": customer,
            "products": products,
        }))
        .expect("context");
        let fast = set.render_html(&ctx).expect("renders");
        let slow = set.render_html_per_message(&ctx).expect("renders");
        assert_eq!(fast, slow, "newsletter, context {i}");
        if let Some(html) = set.render_html_compiled(&ctx) {
            assert_eq!(html, slow, "newsletter, context {i}");
            compiled += 1;
        }
    }
    assert!(compiled >= 48, "{compiled}");
}

#[test]
fn a_template_that_cannot_be_inlined_once_is_inlined_per_message() {
    let sources = vec![
        (
            "t.html".to_string(),
            "<html><head><style>li + li { color: red }</style></head><body><ul>{% for x in xs %}<li>{{ x }}</li>{% endfor %}</ul></body></html>".to_string(),
        ),
        ("t.subject".to_string(), "S".to_string()),
    ];
    let set = TemplateSet::from_sources("t", &sources, "https://t.example.com", SECRET)
        .expect("compiles");
    let why = set.per_message_inlining().expect("per message");
    assert!(why.contains("li + li"), "{why}");
    let mut ctx = tera::Context::new();
    ctx.insert("xs", &["a", "b", "c"]);
    let r = set.render(&ctx).expect("renders");
    assert_eq!(r.html.matches("color: red").count(), 2, "{}", r.html);
    assert!(set.render_html_compiled(&ctx).is_none());
}
