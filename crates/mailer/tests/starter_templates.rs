//! The starter templates in the repository's `templates/` (copied into every new workspace):
//! one per default goal, each compiles and renders for a fully known recipient and for one
//! about whom nothing but the address is known.

use std::path::PathBuf;

use retain_core::Customer;
use retain_mailer::{
    sample_recipient, CampaignInfo, Composer, Identity, Offer, Recipient, Shared, TemplateSet,
};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../templates")
}

fn goals() -> Vec<String> {
    let text = std::fs::read_to_string(dir().join("goals.toml")).expect("goals.toml");
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("id = \""))
        .filter_map(|l| l.split('"').next())
        .map(str::to_string)
        .collect()
}

fn composer(goal: &str, discount: Option<f64>) -> Composer {
    let templates =
        TemplateSet::load(&dir(), goal, "https://t.example.com", SECRET).expect("loads");
    Composer::new(
        templates,
        Identity::new("Shop <news@shop.example>", "").expect("identity"),
        Shared {
            campaign: CampaignInfo {
                id: format!("{goal}-1"),
                goal: goal.into(),
                goal_name: goal.into(),
                template: goal.into(),
            },
            company_name: "Shop & Co".into(),
            company_address: "1 Example Street, 00000 Example City".into(),
            from: "Shop <news@shop.example>".into(),
            reply_to: String::new(),
            shop_url: "https://shop.example".into(),
            tracking_base_url: "https://t.example.com".into(),
            offer: Offer {
                discount_pct: discount,
                code_prefix: None,
            },
            today: "2025-01-01".into(),
        },
        SECRET.to_vec(),
        None,
    )
}

#[test]
fn every_default_goal_has_a_template_that_renders() {
    let goals = goals();
    assert!(goals.len() >= 9, "{goals:?}");
    let bare = Recipient {
        customer: Customer {
            id: "x".into(),
            email: Some("x@mail.example".into()),
            email_valid: true,
            ..Default::default()
        },
        ..Default::default()
    };
    for goal in &goals {
        for discount in [None, Some(15.0)] {
            let c = composer(goal, discount);
            c.check(Some(("x@mail.example", &bare)))
                .unwrap_or_else(|e| panic!("{goal}: {e}"));
            for (r, name) in [(&sample_recipient(), "Alex"), (&bare, "there")] {
                let out = c.render(7, "x@mail.example", r).expect("renders");
                let visible = retain_mailer::html_text::html_to_text(&out.html);
                for part in [&out.subject, &visible, &out.text] {
                    assert!(
                        !part.contains("none") && !part.contains("None"),
                        "{goal}: {part}"
                    );
                    assert!(
                        !part.contains("{{") && !part.contains("{%"),
                        "{goal}: {part}"
                    );
                }
                assert!(!out.subject.is_empty());
                assert!(
                    out.html.contains("https://t.example.com/u/"),
                    "{goal}: unsubscribe"
                );
                assert!(
                    out.html.contains("https://t.example.com/o/"),
                    "{goal}: pixel"
                );
                assert!(
                    out.html.contains("https://t.example.com/c/"),
                    "{goal}: tracked link"
                );
                assert!(
                    out.text.contains("https://t.example.com/u/"),
                    "{goal}: text unsubscribe"
                );
                assert!(
                    out.html.contains("1 Example Street"),
                    "{goal}: postal address"
                );
                assert!(
                    out.html.contains("Shop &amp; Co"),
                    "{goal}: escaped company"
                );
                assert!(
                    out.html.contains(name)
                        || out.subject.contains(name)
                        || goal == "launch_awareness",
                    "{goal}: personalised"
                );
                if discount.is_some() && goal != "referral_request" {
                    assert!(out.text.contains("15% off"), "{goal}: {}", out.text);
                }
                assert!(out.html.contains("style=\""), "{goal}: CSS inlined");
            }
        }
    }
}

/// The HTML with the values of double-quoted attributes cut out.
fn without_quoted_attributes(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(i) = rest.find("=\"") {
        out.push_str(&rest[..i + 2]);
        let after = &rest[i + 2..];
        match after.find('"') {
            Some(j) => rest = &after[j..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn recommendations_render_escaped_with_tracked_links() {
    let hostile = "<script>alert(1)</script> & \"Tea\" <b>bold</b>";
    let mut r = sample_recipient();
    r.recommendations = vec![
        retain_mailer::ProductCard {
            id: "X1".into(),
            name: hostile.into(),
            url: Some("https://shop.example/p/x1?a=1&b=2".into()),
            image: Some("https://cdn.example/x1.jpg\" onerror=\"alert(2)".into()),
            price: Some(9.5),
        },
        retain_mailer::ProductCard {
            id: "Y2".into(),
            name: "Green tea".into(),
            url: None,
            image: None,
            price: None,
        },
    ];
    for goal in ["upsell_cross_sell", "win_back", "loyalty_reward"] {
        let out = composer(goal, None)
            .render(7, "x@mail.example", &r)
            .expect("renders");
        // Inside a quoted attribute (the image's alt text) `<` is inert and the HTML serializer
        // leaves it; quotes are escaped, so nothing breaks out. Everywhere else it is escaped.
        let outside = without_quoted_attributes(&out.html);
        assert!(!outside.contains("<script>"), "{goal}: {outside}");
        assert!(!outside.contains("<b>bold"), "{goal}");
        assert!(!out.html.contains("\" onerror=\""), "{goal}");
        assert!(out.html.contains("&quot;Tea&quot;"), "{goal}");
        assert!(
            out.html
                .contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;")
                || out.html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{goal}: {}",
            out.html
        );
        assert!(out.html.contains("Green tea"), "{goal}");
        // The text part names both picks; every product link goes through the click tracker.
        assert!(
            out.text.contains(hostile) && out.text.contains("Green tea"),
            "{goal}: {}",
            out.text
        );
        let visible = retain_mailer::html_text::html_to_text(&out.html);
        assert!(visible.contains("9.5"), "{goal}: {visible}");
        assert!(
            !out.html.contains("href=\"https://shop.example/p/x1"),
            "{goal}: untracked link"
        );
        assert!(
            !out.text.contains("https://shop.example/p/x1"),
            "{goal}: untracked link"
        );
    }
    // Without recommendations, no empty product table.
    let mut bare = sample_recipient();
    bare.recommendations.clear();
    let out = composer("upsell_cross_sell", None)
        .render(7, "x@mail.example", &bare)
        .expect("renders");
    assert!(!out.html.contains("class=\"picks\""));
}

#[test]
fn the_renewal_reminder_names_the_due_product() {
    let mut r = sample_recipient();
    r.due = Some((
        retain_mailer::ProductCard {
            id: "C1".into(),
            name: "Coffee <beans>".into(),
            url: Some("https://shop.example/coffee".into()),
            image: None,
            price: Some(14.0),
        },
        4,
    ));
    let out = composer("renewal_reminder", None)
        .render(7, "x@mail.example", &r)
        .expect("renders");
    assert!(out.html.contains("Coffee &lt;beans&gt;"), "{}", out.html);
    assert!(
        out.text.contains("Time to restock Coffee <beans>"),
        "{}",
        out.text
    );
}
