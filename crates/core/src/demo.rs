//! The seeded demo-data generator behind `retain demo-data`: a realistic shop of N customers.
//!
//! Customers arrive over two years (growing, with a December peak); each buys as a Poisson process
//! with a Gamma-distributed rate and may drop out after any purchase with a Beta-distributed
//! probability (the BG/NBD story), spends Gamma-Gamma-distributed amounts, and sometimes returns
//! an item. Orders are written as line items (order id, quantity × unit price), the shape most shop
//! exports have. The same seed always writes the same files.

use std::io::Write;

use chrono::{Datelike, Duration, NaiveDate, NaiveTime};
use rand::{Rng, SeedableRng};
use rand_distr::{Beta, Distribution, Exp, Gamma};

/// What to generate.
#[derive(Debug, Clone)]
pub struct DemoSpec {
    pub customers: u64,
    pub seed: u64,
    /// First day of the shop's history; it lasts `days`.
    pub start: NaiveDate,
    pub days: i64,
}

impl Default for DemoSpec {
    fn default() -> Self {
        Self {
            customers: 2_000,
            seed: 42,
            start: NaiveDate::from_ymd_opt(2023, 1, 1).unwrap_or(NaiveDate::MIN),
            days: 730,
        }
    }
}

/// Counts of what was written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DemoSummary {
    pub customers: u64,
    pub orders: u64,
    pub line_items: u64,
    pub returns: u64,
}

const PRODUCTS: &[(&str, &str, f64)] = &[
    ("Espresso beans 1kg", "coffee", 24.0),
    ("Filter coffee 500g", "coffee", 11.5),
    ("Green tea 100g", "tea", 8.9),
    ("Chai blend 250g", "tea", 12.0),
    ("Ceramic mug", "accessories", 14.0),
    ("Pour-over kit", "equipment", 39.0),
    ("Hand grinder", "equipment", 69.0),
    ("Gift card", "gifts", 25.0),
];
const FIRST: &[&str] = &[
    "Ana", "Ben", "Chloé", "Dmitri", "Eva", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi",
    "Lena", "Mateo", "Noor", "Oskar", "Priya",
];
const LAST: &[&str] = &[
    "Silva", "Meyer", "Dubois", "Ivanov", "Rossi", "Haddad", "Okafor", "Tanaka", "García", "Berg",
    "Novak", "Khan",
];
const LOCALES: &[&str] = &["en", "en", "en", "de", "fr", "es"];

/// Writes `orders` (line items) and `customers` CSVs for `spec`.
pub fn generate(
    spec: &DemoSpec,
    mut orders: impl Write,
    mut customers: impl Write,
) -> std::io::Result<DemoSummary> {
    let mut rng = rand_xorshift(spec.seed);
    let mut summary = DemoSummary::default();
    writeln!(
        orders,
        "order_id,customer_id,email,order_date,product,category,quantity,unit_price"
    )?;
    writeln!(
        customers,
        "customer_id,email,first_name,last_name,subscribed,signup_date,locale"
    )?;
    let rate = Gamma::new(0.9, 1.0 / 45.0).map_err(std::io::Error::other)?; // purchases per day
    let dropout = Beta::new(1.0, 3.0).map_err(std::io::Error::other)?;
    let spend_scale = Gamma::new(6.0, 1.0 / 15.0).map_err(std::io::Error::other)?;
    let mut order_no: u64 = 100_000;
    for c in 1..=spec.customers {
        summary.customers += 1;
        let id = format!("C{c:06}");
        // Arrival: growth over time (square-root law) plus a December bump.
        let mut arrival = ((rng.gen::<f64>().sqrt()) * spec.days as f64) as i64;
        if rng.gen::<f64>() < 0.15 {
            let dec = NaiveDate::from_ymd_opt(
                spec.start.year() + rng.gen_range(0..=(spec.days / 366) as i32),
                12,
                1,
            )
            .unwrap_or(spec.start);
            arrival = (dec - spec.start).num_days() + rng.gen_range(0..24);
        }
        let arrival = arrival.clamp(0, spec.days - 1);
        let lambda: f64 = f64::max(rate.sample(&mut rng), 1e-4);
        let p_drop: f64 = dropout.sample(&mut rng);
        let nu: f64 = spend_scale.sample(&mut rng);
        let spend = Gamma::new(3.0, 1.0 / nu.max(1e-3)).map_err(std::io::Error::other)?;
        let gap = Exp::new(lambda).map_err(std::io::Error::other)?;
        let first = FIRST[rng.gen_range(0..FIRST.len())];
        let last = LAST[rng.gen_range(0..LAST.len())];
        let email = format!(
            "{}.{}{}@example.com",
            ascii_fold(first),
            ascii_fold(last),
            c
        );
        let subscribed = if rng.gen::<f64>() < 0.85 { "yes" } else { "no" };
        let signup = spec.start + Duration::days(arrival);
        writeln!(
            customers,
            "{id},{email},{first},{last},{subscribed},{},{}",
            signup.format("%Y-%m-%d"),
            LOCALES[rng.gen_range(0..LOCALES.len())]
        )?;
        let mut t = arrival as f64;
        loop {
            let day = spec.start + Duration::days(t as i64);
            // Seasonality: weekend and December orders are more likely to happen.
            let season = if day.month() == 12 { 1.0 } else { 0.8 };
            if rng.gen::<f64>() < season {
                order_no += 1;
                summary.orders += 1;
                let time = NaiveTime::from_hms_opt(
                    rng.gen_range(7..23),
                    rng.gen_range(0..60),
                    rng.gen_range(0..60),
                )
                .unwrap_or(NaiveTime::MIN);
                let at = day.and_time(time).format("%Y-%m-%d %H:%M:%S");
                let target: f64 = spend.sample(&mut rng).max(3.0);
                let mut left = target;
                let lines = rng.gen_range(1..=3);
                let mut bought = Vec::new();
                for l in 0..lines {
                    let (name, cat, price) = PRODUCTS[rng.gen_range(0..PRODUCTS.len())];
                    let qty = if l + 1 == lines {
                        (left / price).round().max(1.0)
                    } else {
                        1.0
                    };
                    left -= qty * price;
                    summary.line_items += 1;
                    writeln!(
                        orders,
                        "{order_no},{id},{email},{at},{name},{cat},{qty},{price:.2}"
                    )?;
                    bought.push((name, cat, price));
                    if left <= 0.0 {
                        break;
                    }
                }
                if rng.gen::<f64>() < 0.04 {
                    // A return of one item a few days later, as a cancellation invoice.
                    let (name, cat, price) = bought[0];
                    let rday = day + Duration::days(rng.gen_range(2..20));
                    if (rday - spec.start).num_days() < spec.days {
                        summary.returns += 1;
                        summary.line_items += 1;
                        writeln!(
                            orders,
                            "C{order_no},{id},{email},{} 12:00:00,{name},{cat},-1,{price:.2}",
                            rday.format("%Y-%m-%d")
                        )?;
                    }
                }
                if rng.gen::<f64>() < p_drop {
                    break;
                }
            }
            t += gap.sample(&mut rng).max(1.0);
            if t >= spec.days as f64 {
                break;
            }
        }
    }
    orders.flush()?;
    customers.flush()?;
    Ok(summary)
}

fn ascii_fold(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'é' => 'e',
            'í' => 'i',
            _ => c,
        })
        .filter(char::is_ascii_alphanumeric)
        .flat_map(char::to_lowercase)
        .collect()
}

fn rand_xorshift(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::{parse_customers, parse_orders, ImportOptions};
    use std::path::Path;

    #[test]
    fn same_seed_same_files_and_they_import_cleanly() {
        let spec = DemoSpec {
            customers: 300,
            seed: 7,
            ..Default::default()
        };
        let (mut o1, mut c1, mut o2, mut c2) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let s1 = generate(&spec, &mut o1, &mut c1).expect("gen");
        let s2 = generate(&spec, &mut o2, &mut c2).expect("gen");
        assert_eq!(o1, o2);
        assert_eq!(c1, c2);
        assert_eq!(s1, s2);
        let other = generate(
            &DemoSpec {
                seed: 8,
                ..spec.clone()
            },
            Vec::new(),
            Vec::new(),
        )
        .expect("gen");
        assert_ne!(other, s1);
        let r = parse_orders(Path::new("o.csv"), &o1, &ImportOptions::default()).expect("imports");
        assert_eq!(r.rows_rejected, 0);
        assert_eq!(r.rows_read, s1.line_items);
        assert_eq!(r.orders.len() as u64, s1.orders + s1.returns);
        assert_eq!(r.returns, s1.returns);
        let cust =
            parse_customers(Path::new("c.csv"), &c1, &ImportOptions::default()).expect("imports");
        assert_eq!(cust.customers.len(), 300);
        assert_eq!(cust.invalid_emails, 0);
        // Heterogeneity: some customers buy once, some many times.
        let feats = crate::features::customer_features(
            &r.orders,
            crate::features::default_as_of(&r.orders).expect("orders"),
        );
        assert!(feats.iter().any(|f| f.frequency == 1));
        assert!(feats.iter().any(|f| f.frequency >= 5));
    }
}
