//! From a recipient to a finished message: the template context, rendering and the MIME
//! message with its headers. Also the template check that runs before any email of a campaign
//! is sent, against a fully populated sample recipient and a real one.

use std::time::SystemTime;

use chrono::NaiveDate;
use retain_core::tracking::Links;
use retain_core::{Customer, CustomerFeatures, Prediction};

use crate::context::{self, ProductCard, Recipient, Scores, Shared};
use crate::error::MailerError;
use crate::message::{compose, Addressing, Dkim, Identity, OutgoingMessage};
use crate::templates::{Rendered, TemplateSet};

/// Everything needed to turn a ledger row into a message.
#[derive(Debug)]
pub struct Composer {
    templates: TemplateSet,
    identity: Identity,
    shared: Shared,
    secret: Vec<u8>,
    dkim: Option<Dkim>,
    /// A/B variants: the template sets by template name, and each recipient's template (by
    /// customer id), resolved when the plan was made. Recipients not listed get `templates`.
    variant_sets: std::collections::HashMap<String, TemplateSet>,
    variant_of: std::collections::HashMap<String, String>,
}

impl Composer {
    pub fn new(
        templates: TemplateSet,
        identity: Identity,
        shared: Shared,
        secret: Vec<u8>,
        dkim: Option<Dkim>,
    ) -> Self {
        Self {
            templates,
            identity,
            shared,
            secret,
            dkim,
            variant_sets: Default::default(),
            variant_of: Default::default(),
        }
    }

    /// Adds A/B variants: `sets` by template name, `assignment` from customer id to template.
    pub fn with_variants(
        mut self,
        sets: std::collections::HashMap<String, TemplateSet>,
        assignment: std::collections::HashMap<String, String>,
    ) -> Self {
        self.variant_sets = sets;
        self.variant_of = assignment;
        self
    }

    /// The template set of a recipient: their variant's, or the campaign's.
    fn templates_for(&self, customer_id: &str) -> &TemplateSet {
        self.variant_of
            .get(customer_id)
            .and_then(|t| self.variant_sets.get(t))
            .unwrap_or(&self.templates)
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Renders subject, HTML and text for one send.
    pub fn render(
        &self,
        send_id: i64,
        email: &str,
        r: &Recipient,
    ) -> Result<Rendered, MailerError> {
        let ctx = context::build(&self.shared, &self.secret, send_id, email, r);
        self.templates_for(&r.customer.id).render(&ctx)
    }

    /// Renders and builds the message of one send.
    pub fn compose(
        &self,
        send_id: i64,
        message_id: &str,
        email: &str,
        r: &Recipient,
    ) -> Result<OutgoingMessage, MailerError> {
        let rendered = self.render(send_id, email, r)?;
        let unsubscribe = Links {
            base_url: &self.shared.tracking_base_url,
            secret: &self.secret,
            send_id,
        }
        .unsubscribe();
        let full_name = match (
            r.customer.first_name.as_deref(),
            r.customer.last_name.as_deref(),
        ) {
            (Some(f), Some(l)) => Some(format!("{f} {l}")),
            (Some(n), None) | (None, Some(n)) => Some(n.to_string()),
            (None, None) => None,
        };
        let return_path = self
            .identity
            .bounce_domain
            .as_deref()
            .map(|d| retain_core::tracking::return_path(&self.secret, send_id, d));
        compose(
            &self.identity,
            &Addressing {
                campaign_id: &self.shared.campaign.id,
                send_id,
                message_id,
                to_email: email,
                to_name: full_name.as_deref(),
                unsubscribe_url: &unsubscribe,
                return_path: return_path.as_deref(),
            },
            &rendered,
            self.dkim.as_ref(),
            SystemTime::now(),
        )
    }

    /// Compiles were checked at load; this renders against a sample recipient with every field
    /// set (so every `{% if %}` branch on data runs) and, when given, a real one. The first
    /// error (template, line, variable) is returned.
    pub fn check(&self, real: Option<(&str, &Recipient)>) -> Result<(), MailerError> {
        let sample = sample_recipient();
        self.compose(
            0,
            &self.identity.new_message_id(),
            "sample@example.com",
            &sample,
        )?;
        // Every variant's templates too.
        let mut names: Vec<&String> = self.variant_sets.keys().collect();
        names.sort_unstable();
        for name in names {
            let mut r = sample.clone();
            if let Some((id, _)) = self.variant_of.iter().find(|(_, t)| *t == name) {
                r.customer.id = id.clone();
                self.render(0, "sample@example.com", &r)?;
            }
        }
        if let Some((email, r)) = real {
            self.compose(0, &self.identity.new_message_id(), email, r)?;
        }
        Ok(())
    }
}

/// A recipient with every field filled, for template checks and previews.
pub fn sample_recipient() -> Recipient {
    let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default();
    let mut customer = Customer {
        id: "sample".into(),
        email: Some("sample@example.com".into()),
        email_valid: true,
        first_name: Some("Alex".into()),
        last_name: Some("Sample".into()),
        subscribed: Some(true),
        signup_date: Some(day(2023, 3, 14)),
        locale: Some("en".into()),
        ..Default::default()
    };
    customer
        .attributes
        .insert("city".into(), "Springfield".into());
    Recipient {
        segment: Some("Champions".into()),
        scores: Some(Scores { r: 5, f: 4, m: 5 }),
        features: Some(CustomerFeatures {
            customer_id: "sample".into(),
            first_order: day(2023, 3, 14),
            last_order: day(2024, 11, 2),
            recency_days: 21,
            frequency: 9,
            repeat_purchases: 8,
            monetary_total: 842.5,
            avg_order_value: 93.61,
            tenure_days: 620,
        }),
        prediction: Some(Prediction {
            customer_id: "sample".into(),
            p_alive: 0.93,
            expected_purchases_90d: 1.4,
            clv: 512.0,
        }),
        recommendations: vec![
            ProductCard {
                id: "TEA-1".into(),
                name: "Loose leaf Assam".into(),
                url: Some("https://shop.example.com/assam".into()),
                image: Some("https://shop.example.com/assam.jpg".into()),
                price: Some(12.5),
            },
            ProductCard {
                id: "MUG-2".into(),
                name: "Blue mug".into(),
                url: None,
                image: None,
                price: Some(20.0),
            },
        ],
        due: Some((
            ProductCard {
                id: "COFFEE-1".into(),
                name: "Coffee beans".into(),
                url: Some("https://shop.example.com/coffee".into()),
                image: None,
                price: Some(14.0),
            },
            5,
        )),
        customer,
    }
}
