//! What a template sees for one recipient: customer fields and attributes, segment and scores,
//! purchase statistics, CLV predictions when present, the goal and campaign, the offer, company
//! and sender details, the recipient's own URLs (unsubscribe, view in browser, open pixel), their
//! product recommendations (`recommendations`: id, name, url, image, price) and the product they
//! are due to buy again (`due_product`, with `days_until_due`).
//!
//! Every key is always present (`null` when unknown), so `{% if prediction %}` works and a typo
//! in a variable name is an "undefined variable" error caught before sending.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use retain_core::tracking::Links;
use retain_core::{Customer, CustomerFeatures, Prediction};
use serde::Serialize;
use sha2::Sha256;

/// RFM scores (1–5) of a customer, when segmentation has run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scores {
    pub r: u8,
    pub f: u8,
    pub m: u8,
}

/// Everything known about one recipient that a template may use.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recipient {
    pub customer: Customer,
    pub segment: Option<String>,
    pub scores: Option<Scores>,
    pub features: Option<CustomerFeatures>,
    pub prediction: Option<Prediction>,
    /// Recommended products, best first (empty when none are stored).
    pub recommendations: Vec<ProductCard>,
    /// The product the customer is due to buy again, and in how many days (negative: overdue).
    pub due: Option<(ProductCard, i64)>,
}

/// A product as an email shows it. `url` and `image` are http(s) URLs or absent (the template
/// falls back to the shop's URL); `name` falls back to the product id.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProductCard {
    pub id: String,
    pub name: String,
    pub url: Option<String>,
    pub image: Option<String>,
    pub price: Option<f64>,
}

/// The campaign being sent, as the mailer needs it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignInfo {
    pub id: String,
    pub goal: String,
    pub goal_name: String,
    /// Template name (files `NAME.html`, `NAME.txt`, `NAME.subject`).
    pub template: String,
}

/// The campaign's offer: a discount and a per-recipient code.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Offer {
    /// Percent off, if the campaign carries a discount.
    pub discount_pct: Option<f64>,
    /// Prefix of the generated codes (default: the goal id, upper-cased, letters only).
    pub code_prefix: Option<String>,
}

/// Settings shared by every recipient of a send.
#[derive(Debug, Clone, PartialEq)]
pub struct Shared {
    pub campaign: CampaignInfo,
    pub company_name: String,
    pub company_address: String,
    pub from: String,
    pub reply_to: String,
    /// The shop's site, for call-to-action links.
    pub shop_url: String,
    pub tracking_base_url: String,
    pub offer: Offer,
    /// Date shown as "today" (YYYY-MM-DD).
    pub today: String,
}

#[derive(Serialize)]
struct CustomerCtx<'a> {
    id: &'a str,
    email: &'a str,
    first_name: Option<&'a str>,
    last_name: Option<&'a str>,
    /// First name, else "there"-free fallback: full name or empty.
    name: String,
    locale: Option<&'a str>,
    signup_date: Option<String>,
    attributes: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct StatsCtx {
    recency_days: i64,
    frequency: u32,
    monetary_total: f64,
    avg_order_value: f64,
    tenure_days: i64,
    first_order: String,
    last_order: String,
}

#[derive(Serialize)]
struct PredictionCtx {
    p_alive: f64,
    expected_purchases_90d: f64,
    clv: f64,
}

#[derive(Serialize)]
struct OfferCtx {
    code: String,
    /// A whole number prints as `15`, not `15.0`.
    discount_pct: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct UrlsCtx {
    unsubscribe: String,
    view: String,
    open_pixel: String,
    shop: String,
}

/// Builds the template context of one send.
pub fn build(
    shared: &Shared,
    secret: &[u8],
    send_id: i64,
    email: &str,
    r: &Recipient,
) -> tera::Context {
    let c = &r.customer;
    let links = Links {
        base_url: &shared.tracking_base_url,
        secret,
        send_id,
    };
    let name = match (c.first_name.as_deref(), c.last_name.as_deref()) {
        (Some(f), _) if !f.trim().is_empty() => f.trim().to_string(),
        (_, Some(l)) if !l.trim().is_empty() => l.trim().to_string(),
        _ => String::new(),
    };
    let mut ctx = tera::Context::new();
    ctx.insert("send_id", &send_id);
    ctx.insert(
        "customer",
        &CustomerCtx {
            id: &c.id,
            email,
            first_name: c.first_name.as_deref().filter(|s| !s.trim().is_empty()),
            last_name: c.last_name.as_deref().filter(|s| !s.trim().is_empty()),
            name,
            locale: c.locale.as_deref(),
            signup_date: c.signup_date.map(|d| d.format("%Y-%m-%d").to_string()),
            attributes: &c.attributes,
        },
    );
    ctx.insert("segment", &r.segment);
    ctx.insert("scores", &r.scores);
    ctx.insert(
        "stats",
        &r.features.as_ref().map(|f| StatsCtx {
            recency_days: f.recency_days,
            frequency: f.frequency,
            monetary_total: f.monetary_total,
            avg_order_value: f.avg_order_value,
            tenure_days: f.tenure_days,
            first_order: f.first_order.format("%Y-%m-%d").to_string(),
            last_order: f.last_order.format("%Y-%m-%d").to_string(),
        }),
    );
    ctx.insert(
        "prediction",
        &r.prediction.as_ref().map(|p| PredictionCtx {
            p_alive: p.p_alive,
            expected_purchases_90d: p.expected_purchases_90d,
            clv: p.clv,
        }),
    );
    ctx.insert(
        "goal",
        &serde_json::json!({ "id": shared.campaign.goal, "name": shared.campaign.goal_name }),
    );
    ctx.insert("campaign", &shared.campaign);
    ctx.insert(
        "offer",
        &OfferCtx {
            code: offer_code(shared, secret, &c.id),
            discount_pct: shared.offer.discount_pct.map(|d| {
                if d.fract() == 0.0 && d.abs() < 1e15 {
                    serde_json::Value::from(d as i64)
                } else {
                    serde_json::Value::from(d)
                }
            }),
        },
    );
    ctx.insert(
        "company",
        &serde_json::json!({ "name": shared.company_name, "address": shared.company_address }),
    );
    ctx.insert(
        "sender",
        &serde_json::json!({ "from": shared.from, "reply_to": shared.reply_to }),
    );
    ctx.insert(
        "urls",
        &UrlsCtx {
            unsubscribe: links.unsubscribe(),
            view: links.view(),
            open_pixel: links.open_pixel(),
            shop: shared.shop_url.clone(),
        },
    );
    ctx.insert("today", &shared.today);
    ctx.insert("recommendations", &r.recommendations);
    ctx.insert(
        "due_product",
        &r.due.as_ref().map(|(p, days)| {
            serde_json::json!({
                "id": p.id, "name": p.name, "url": p.url, "image": p.image, "price": p.price,
                "days_until_due": days,
            })
        }),
    );
    ctx
}

/// A recipient's offer code: the prefix and 8 characters derived (HMAC) from the secret, the
/// campaign and the customer — stable across runs, unguessable without the secret.
pub fn offer_code(shared: &Shared, secret: &[u8], customer_id: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let prefix = shared.offer.code_prefix.clone().unwrap_or_else(|| {
        shared
            .campaign
            .goal
            .chars()
            .filter(|c| c.is_ascii_alphabetic())
            .take(8)
            .collect::<String>()
            .to_ascii_uppercase()
    });
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return prefix,
    };
    mac.update(shared.campaign.id.as_bytes());
    mac.update(b"\0");
    mac.update(customer_id.as_bytes());
    let bytes = mac.finalize().into_bytes();
    let code: String = bytes
        .iter()
        .take(8)
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect();
    if prefix.is_empty() {
        code
    } else {
        format!("{prefix}-{code}")
    }
}
