//! Domain types shared by every crate: orders, customers, consent and per-customer features.
//!
//! Times are kept as [`chrono::NaiveDateTime`] in the shop's local time (exports rarely carry a
//! zone); whole-day arithmetic uses [`Day`], the number of days since 1970-01-01.

use std::collections::BTreeMap;

use chrono::{NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};

/// Days since 1970-01-01 (negative before). Cheap to compare and subtract.
pub type Day = i32;

/// Converts a calendar date to a [`Day`].
pub fn day_of(date: NaiveDate) -> Day {
    // 719_163 = days from 0001-01-01 (CE day 1) to 1970-01-01.
    date.num_days_from_ce() - 719_163
}

/// Converts a [`Day`] back to a calendar date (saturating at chrono's range).
pub fn date_of(day: Day) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(day + 719_163).unwrap_or(NaiveDate::MIN)
}

use chrono::Datelike;

/// One order (line items of the same order already collapsed), or one return.
///
/// `amount` is signed: returns and cancellations carry a negative amount and `is_return = true`;
/// they reduce revenue and never count as a purchase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub order_id: String,
    pub customer_id: String,
    pub ordered_at: NaiveDateTime,
    pub amount: f64,
    pub items: u32,
    pub is_return: bool,
    pub currency: Option<String>,
    pub email: Option<String>,
    pub product: Option<String>,
}

impl Order {
    /// The order's calendar day.
    pub fn day(&self) -> Day {
        day_of(self.ordered_at.date())
    }
}

/// What the shop knows about a customer beyond their orders.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    pub id: String,
    pub email: Option<String>,
    /// False when an email was given but is not a deliverable address; such customers are unsendable.
    pub email_valid: bool,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// Marketing consent: `Some(true)` opted in, `Some(false)` opted out, `None` unknown.
    pub subscribed: Option<bool>,
    pub signup_date: Option<NaiveDate>,
    pub locale: Option<String>,
    /// Every other column of the customers file, by its header.
    pub attributes: BTreeMap<String, String>,
}

/// Why an address must never be mailed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuppressionReason {
    Unsubscribed,
    HardBounce,
    Complaint,
    Manual,
}

impl SuppressionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unsubscribed => "unsubscribed",
            Self::HardBounce => "hard_bounce",
            Self::Complaint => "complaint",
            Self::Manual => "manual",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "unsubscribed" => Self::Unsubscribed,
            "hard_bounce" | "bounced" | "bounce" => Self::HardBounce,
            "complaint" => Self::Complaint,
            "manual" => Self::Manual,
            _ => return None,
        })
    }
}

/// Per-customer features as of a date: the inputs of segmentation and planning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerFeatures {
    pub customer_id: String,
    pub first_order: NaiveDate,
    pub last_order: NaiveDate,
    /// Days from the last purchase to the as-of date.
    pub recency_days: i64,
    /// Number of purchases (orders that are not returns).
    pub frequency: u32,
    /// Distinct purchase days after the first one (the BG/NBD `x`).
    pub repeat_purchases: u32,
    /// Net revenue: purchases minus returns.
    pub monetary_total: f64,
    /// `monetary_total / frequency`.
    pub avg_order_value: f64,
    /// Days from the first purchase to the as-of date.
    pub tenure_days: i64,
}

/// Per-customer predictions of the CLV models, when they have been fitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub customer_id: String,
    pub p_alive: f64,
    pub expected_purchases_90d: f64,
    pub clv: f64,
}
