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
    /// The customer's personal data was erased (a GDPR erasure): the address survives only as a
    /// hash ([`email_hash`]), never stored in the suppression list itself.
    Erased,
}

impl SuppressionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unsubscribed => "unsubscribed",
            Self::HardBounce => "hard_bounce",
            Self::Complaint => "complaint",
            Self::Manual => "manual",
            Self::Erased => "erased",
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

/// The SHA-256 (lowercase hex) of an address trimmed and lowercased: how an erased customer's
/// address is remembered, so it can be recognised (and never mailed) without being kept.
pub fn email_hash(email: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(email.trim().to_lowercase().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
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

/// Money in exact minor units: hundredths of the currency unit (cents). Stored amounts are
/// integers so sums are exact on every backend.
pub type Minor = i64;

/// Converts an amount to [`Minor`] units, rounding half away from zero to the cent; `None` when it
/// is not finite or out of range.
pub fn to_minor(amount: f64) -> Option<Minor> {
    let x = amount * 100.0;
    // `x.round()` as integer arithmetic (without a rounding instruction the baseline x86-64
    // calls into libm): below 2^62 in magnitude the truncating cast is exact, and so is the
    // fraction `x - t`. NaN, infinities and larger values round out of range.
    if x.is_nan() || x.abs() >= 4.0e18 {
        return None;
    }
    let t = x as i64;
    let fraction = x - t as f64;
    let v = if fraction >= 0.5 {
        t + 1
    } else if fraction <= -0.5 {
        t - 1
    } else {
        t
    };
    (v.unsigned_abs() < 9_000_000_000_000_000).then_some(v)
}

/// Converts [`Minor`] units back to an amount.
pub fn from_minor(minor: Minor) -> f64 {
    minor as f64 / 100.0
}

/// The stable integer key of an order within its customer: a 62-bit FNV-1a hash of the order's
/// id (the export's own id, or the content key of an id-less row). Stable across versions and
/// machines, so re-importing a file finds the same orders; non-negative and below 2^62, so an
/// occurrence number can be added without overflow.
pub fn order_key(order_ref: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in order_ref.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h >> 2) as i64
}

/// The stable integer key of a product: [`order_key`]'s hash of its id or SKU (trimmed), so the
/// same product has the same key in every import and in the catalogue.
pub fn product_key(product_id: &str) -> i64 {
    order_key(product_id.trim())
}

/// The content key of an order row without an order id: its time and amount. Identical rows of
/// one customer are told apart by an occurrence number added to [`order_key`] of this key.
pub fn content_order_ref(at: NaiveDateTime, amount: f64) -> String {
    format!("{}/{}", at.format("%Y%m%dT%H%M%S"), amount)
}

/// [`order_key`] of [`content_order_ref`], without building the string: the import's hot path.
/// The bytes hashed are exactly [`content_order_ref`]'s (the key is stored, so it must never
/// change): the time's digits are written by hand, and an amount with at most two decimals (the
/// common case) too; any other amount goes through the standard float formatting.
pub fn content_order_key(at: NaiveDateTime, amount: f64) -> i64 {
    use chrono::Timelike;
    let d = at.date();
    if !(0..=9999).contains(&d.year()) {
        return order_key(&content_order_ref(at, amount));
    }
    let mut buf = [0u8; 64];
    let fields = [
        (d.year() as u32, 4),
        (d.month(), 2),
        (d.day(), 2),
        (at.hour(), 2),
        (at.minute(), 2),
        (at.second(), 2),
    ];
    let mut n = 0;
    for (i, (v, width)) in fields.into_iter().enumerate() {
        if i == 3 {
            buf[n] = b'T';
            n += 1;
        }
        let mut v = v;
        for j in (0..width).rev() {
            buf[n + j] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        n += width;
    }
    buf[n] = b'/';
    n += 1;
    let cents = (amount * 100.0).round();
    if amount != 0.0 && cents.abs() < 1e11 && cents / 100.0 == amount {
        // The shortest decimal that reads back as this float is the amount's own two-decimal
        // form without trailing zeros (two-decimal values are far apart next to the float's
        // precision at this size), which is what `{}` prints.
        let c = cents as i64;
        if c < 0 {
            buf[n] = b'-';
            n += 1;
        }
        let c = c.unsigned_abs();
        let int = itoa_into(&mut buf[n..], c / 100);
        n += int;
        let frac = c % 100;
        if frac != 0 {
            buf[n] = b'.';
            buf[n + 1] = b'0' + (frac / 10) as u8;
            n += 2;
            if frac % 10 != 0 {
                buf[n] = b'0' + (frac % 10) as u8;
                n += 1;
            }
        }
    } else {
        use std::io::Write;
        let mut w = &mut buf[n..];
        let before = w.len();
        if write!(w, "{amount}").is_err() {
            return order_key(&content_order_ref(at, amount));
        }
        n += before - w.len();
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in &buf[..n] {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h >> 2) as i64
}

/// Writes `v` in decimal at the start of `out`; returns the digits written.
fn itoa_into(out: &mut [u8], mut v: u64) -> usize {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let len = tmp.len() - i;
    out[..len].copy_from_slice(&tmp[i..]);
    len
}

/// The returns rule, the one place it is decided: an order is a return when its net amount is
/// negative, or when it nets to zero and any of its lines was a cancellation. (A cancelled line
/// always carries a negative amount, so an order mixing cancelled and kept lines is a purchase of
/// its net value.)
pub fn is_return(net_minor: Minor, cancelled: bool) -> bool {
    net_minor < 0 || (net_minor == 0 && cancelled)
}

/// One stored order line as the per-customer product folds read it: product, the order's day,
/// signed quantity and amount, cancelled flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemFact {
    pub product: i64,
    pub day: Day,
    pub quantity: i64,
    pub amount: Minor,
    pub cancelled: bool,
}

impl ItemFact {
    /// The returns rule applied to one line: a negative line (or a nil cancelled one, or a
    /// negative quantity) is a return.
    pub fn is_return(&self) -> bool {
        is_return(self.amount, self.cancelled || self.quantity < 0)
    }
}

/// One stored order as the per-customer folds read it: day, net amount, cancelled flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderFact {
    pub day: Day,
    pub amount: Minor,
    pub cancelled: bool,
}

impl OrderFact {
    pub fn is_return(&self) -> bool {
        is_return(self.amount, self.cancelled)
    }
}

/// A customer's orders folded into what every analysis needs (RFM, the CLV models' summaries,
/// shop metrics), as of a cutoff. Kept per customer in the store and recomputed by the imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CustomerAggregate {
    /// First and last purchase day (returns excluded).
    pub first_day: Day,
    pub last_day: Day,
    /// Distinct purchase days.
    pub purchase_days: u32,
    /// Purchase orders (several on one day count separately).
    pub purchases: u32,
    /// Return orders.
    pub returns: u32,
    /// Sum of purchases, minor units.
    pub purchase_total: Minor,
    /// Sum of returns, minor units (zero or negative).
    pub returns_total: Minor,
    /// Purchase value of the first purchase day, minor units.
    pub first_day_total: Minor,
    /// Last day with any order, purchase or return.
    pub last_order_day: Day,
}

impl CustomerAggregate {
    /// Folds one customer's orders (any order), keeping those before `cutoff` (all when `None`).
    /// `None` when no purchase is left: a customer with returns only has no first purchase.
    pub fn fold(orders: &[OrderFact], cutoff: Option<Day>) -> Option<Self> {
        let cutoff = cutoff.unwrap_or(Day::MAX);
        let mut days: Vec<(Day, Minor)> = Vec::with_capacity(orders.len());
        let mut a = CustomerAggregate {
            last_order_day: Day::MIN,
            ..Default::default()
        };
        for o in orders.iter().filter(|o| o.day < cutoff) {
            a.last_order_day = a.last_order_day.max(o.day);
            if o.is_return() {
                a.returns += 1;
                a.returns_total -= o.amount.abs();
            } else {
                a.purchases += 1;
                a.purchase_total += o.amount;
                days.push((o.day, o.amount));
            }
        }
        days.sort_unstable_by_key(|d| d.0);
        let (first, _) = *days.first()?;
        a.first_day = first;
        a.last_day = days.last()?.0;
        a.first_day_total = days.iter().take_while(|d| d.0 == first).map(|d| d.1).sum();
        let mut distinct = 0u32;
        let mut prev = None;
        for (d, _) in &days {
            if prev != Some(*d) {
                distinct += 1;
                prev = Some(*d);
            }
        }
        a.purchase_days = distinct;
        Some(a)
    }

    /// Net revenue: purchases plus returns, as an amount.
    pub fn net_revenue(&self) -> f64 {
        from_minor(self.purchase_total + self.returns_total)
    }

    /// Mean value of the repeat purchase days (the first day excluded), 0 without repeats: the
    /// `monetary` value of the CLV models.
    pub fn repeat_day_mean(&self) -> f64 {
        let repeats = self.purchase_days.saturating_sub(1);
        if repeats == 0 {
            0.0
        } else {
            from_minor(self.purchase_total - self.first_day_total) / f64::from(repeats)
        }
    }

    /// Recency, frequency, monetary and tenure as of `as_of` (a day after every counted order).
    pub fn features(&self, customer_id: &str, as_of: NaiveDate) -> CustomerFeatures {
        let as_of = day_of(as_of);
        let monetary_total = self.net_revenue();
        CustomerFeatures {
            customer_id: customer_id.to_string(),
            first_order: date_of(self.first_day),
            last_order: date_of(self.last_day),
            recency_days: i64::from(as_of - self.last_day),
            frequency: self.purchases,
            repeat_purchases: self.purchase_days.saturating_sub(1),
            monetary_total,
            avg_order_value: monetary_total / f64::from(self.purchases.max(1)),
            tenure_days: i64::from(as_of - self.first_day),
        }
    }
}

#[cfg(test)]
mod email_hash_tests {
    use super::*;

    #[test]
    fn email_hash_is_sha256_of_the_trimmed_lowercase_address() {
        // sha256("ann@example.com"), computed independently.
        let want = "71d4f55f72fa128dfb468a1a3901507c804b74316488744d769d7f4b16696476";
        assert_eq!(email_hash("ann@example.com"), want);
        assert_eq!(email_hash("  Ann@Example.COM "), want);
        assert_ne!(email_hash("bob@example.com"), want);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_minor_rounds_exactly_as_f64_round() {
        let reference = |a: f64| {
            let v = (a * 100.0).round();
            (v.is_finite() && v.abs() < 9.0e15).then_some(v as Minor)
        };
        let mut values = vec![
            0.0,
            -0.0,
            0.005,
            -0.005,
            0.015,
            1.005,
            2.675,
            -2.675,
            0.004_999_999_999_999_999,
            89_999_999_999_999.99,
            89_999_999_999_999.995,
            -89_999_999_999_999.995,
            90_000_000_000_000.0,
            4.0e16,
            4.7e16,
            -4.7e16,
            1e300,
            f64::MIN_POSITIVE,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(f64::from_bits(x));
            // Half cents and their neighbours.
            let half = ((x % 2_000_000) as f64 - 1_000_000.0 + 0.5) / 100.0;
            let bits = half.to_bits();
            values.extend([half, f64::from_bits(bits + 1), f64::from_bits(bits - 1)]);
            values.push((x >> 11) as f64 / 1024.0 - 4.0e15);
        }
        for a in values {
            assert_eq!(to_minor(a), reference(a), "{a:e}");
        }
    }
    use proptest::prelude::*;

    fn at(days: i64, secs: u32) -> NaiveDateTime {
        let d = NaiveDate::from_ymd_opt(1, 1, 1).expect("a date") + chrono::Duration::days(days);
        d.and_hms_opt(secs / 3600, secs / 60 % 60, secs % 60)
            .expect("a time")
    }

    proptest! {
        #[test]
        fn the_content_key_hashes_exactly_the_content_reference(
            days in 0i64..3_700_000,
            secs in 0u32..86_400,
            cents in -100_000_000_000i64..100_000_000_000,
            raw in proptest::num::f64::ANY,
            shape in 0u8..4,
        ) {
            let amount = match shape {
                0 => cents as f64 / 100.0,
                1 => (cents % 100_000) as f64 / 100.0,
                2 => raw,
                _ => cents as f64 / 1000.0,
            };
            let t = at(days, secs);
            prop_assert_eq!(content_order_key(t, amount), order_key(&content_order_ref(t, amount)));
        }
    }

    #[test]
    fn the_content_key_of_edge_amounts_and_years() {
        for amount in [
            0.0,
            -0.0,
            0.01,
            -0.01,
            0.1,
            10.0,
            12.5,
            -3.25,
            1e9,
            999_999_999.99,
            1e21,
            f64::NAN,
            f64::INFINITY,
            5e-324,
        ] {
            for t in [at(0, 0), at(3_652_058, 86_399), at(738_000, 45_296)] {
                assert_eq!(
                    content_order_key(t, amount),
                    order_key(&content_order_ref(t, amount)),
                    "{t} {amount}"
                );
            }
        }
    }
}
