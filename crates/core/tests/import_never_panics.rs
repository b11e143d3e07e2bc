//! Property tests: importing arbitrary bytes, or CSV-shaped noise, never panics, and whatever
//! is accepted is internally consistent.

use std::path::Path;

use proptest::prelude::*;
use retain_core::import::{parse_customers, parse_orders, scan_features, ImportOptions};

fn opts_strategy() -> impl Strategy<Value = ImportOptions> {
    (
        prop::option::of(prop::sample::select(vec![b',', b';', b'\t', b'|'])),
        prop::option::of(prop::sample::select(vec![
            "%d.%m.%Y".to_string(),
            "%Y-%m-%d".to_string(),
            "%d %b %Y".to_string(),
            "%%%".to_string(),
        ])),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(delimiter, date_format, decimal_comma, strict)| ImportOptions {
                delimiter,
                date_format,
                decimal_comma,
                mapping: Vec::new(),
                profile: None,
                strict,
            },
        )
}

/// CSV-like text: a plausible header, then rows of plausible and hostile cells.
fn csvish() -> impl Strategy<Value = String> {
    let header = prop::sample::select(vec![
        "customer_id,order_date,amount",
        "InvoiceNo,Quantity,InvoiceDate,UnitPrice,CustomerID",
        "Kunde;Datum;Betrag",
        "email,created at,total,status",
        "id,email,subscribed,signup_date",
    ]);
    let cell = prop::sample::select(vec![
        "",
        "1",
        "-3",
        "17850.0",
        "C536365",
        "2024-02-30",
        "2024-01-01",
        "31.12.2023",
        "12/1/2010 8:26",
        "1,5",
        "1.234,56",
        "\"quoted, cell\"",
        "\"unterminated",
        "NaN",
        "inf",
        "1e308",
        "-0",
        "a@b.co",
        "yes",
        "cancelled",
        "refunded",
        "ü€",
        "\r",
        "   ",
    ]);
    (
        header,
        prop::collection::vec(prop::collection::vec(cell, 0..7), 0..30),
        prop::sample::select(vec![",", ";", "\t"]),
    )
        .prop_map(|(h, rows, d)| {
            let mut s = String::from(h);
            s.push('\n');
            for r in rows {
                s.push_str(&r.join(d));
                s.push('\n');
            }
            s
        })
}

/// Well-formed order exports whose rows mix purchases, negative amounts, negative quantities,
/// cancelled invoice numbers and return statuses, so the return rules are exercised every time.
fn orders_with_returns() -> impl Strategy<Value = String> {
    let row = (
        prop::sample::select(vec!["", "1001", "1002", "C1003", "C1004"]),
        prop::sample::select(vec!["a", "b", "c"]),
        prop::sample::select(vec!["2024-01-01", "2024-02-03", "2024-03-05"]),
        prop::sample::select(vec!["", "1", "2", "-1"]),
        prop::sample::select(vec!["10.5", "7", "0", "-5", "-0"]),
        prop::sample::select(vec!["", "paid", "shipped", "cancelled", "refunded"]),
    );
    prop::collection::vec(row, 1..25).prop_map(|rows| {
        let mut s = String::from("order_id,customer_id,order_date,quantity,amount,status\n");
        for (id, c, d, q, a, st) in rows {
            s.push_str(&format!("{id},{c},{d},{q},{a},{st}\n"));
        }
        s
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048), opts in opts_strategy()) {
        let p = Path::new("fuzz.csv");
        let _ = parse_orders(p, &bytes, &opts);
        let _ = parse_customers(p, &bytes, &opts);
        let _ = scan_features(p, &bytes, &opts, None);
    }

    #[test]
    fn csv_shaped_noise_never_panics_and_counts_add_up(text in csvish(), opts in opts_strategy()) {
        let p = Path::new("fuzz.csv");
        if let Ok(r) = parse_orders(p, text.as_bytes(), &opts) {
            prop_assert_eq!(r.rows_read, r.rows_imported + r.rows_rejected + r.rows_without_customer);
            prop_assert_eq!(r.rejects.len() as u64, r.rows_rejected + r.rows_without_customer);
            prop_assert!(r.orders.iter().all(|o| o.amount.is_finite()));
            // A negative amount is a return, and a return never adds revenue (a cancelled
            // order of 0 is a return of 0): each direction checked on its own.
            for o in &r.orders {
                prop_assert!(o.amount >= 0.0 || o.is_return, "negative but not a return: {:?}", o);
                prop_assert!(!o.is_return || o.amount <= 0.0, "a return with a positive amount: {:?}", o);
            }
            prop_assert_eq!(r.returns, r.orders.iter().filter(|o| o.is_return).count() as u64);
            if opts.strict {
                prop_assert_eq!(r.rows_rejected, 0);
            }
        }
        let _ = parse_customers(p, text.as_bytes(), &opts);
        let _ = scan_features(p, text.as_bytes(), &opts, None);
    }

    #[test]
    fn returns_are_negative_and_purchases_are_not(text in orders_with_returns()) {
        let r = parse_orders(Path::new("orders.csv"), text.as_bytes(), &ImportOptions::default())
            .expect("a well-formed file imports");
        prop_assert_eq!(r.rows_read, r.rows_imported + r.rows_rejected + r.rows_without_customer);
        for o in &r.orders {
            prop_assert!(o.amount >= 0.0 || o.is_return, "negative but not a return: {:?}", o);
            prop_assert!(!o.is_return || o.amount <= 0.0, "a return with a positive amount: {:?}", o);
        }
        prop_assert_eq!(r.returns, r.orders.iter().filter(|o| o.is_return).count() as u64);
    }
}
