//! End-to-end tests of `retain rfm FILE`: features straight from an orders CSV (line items,
//! cancellations, float-written ids, rows without customer or with a bad date, orders after the
//! as-of date), the same from the file in a European shape (semicolons, decimal commas,
//! day-first dates, CRLF, BOM) and with quoted fields; the `--output` CSV sorted by customer id.

use assert_cmd::Command;
use serde_json::Value;

/// The orders, one per line: (order id, quantity, date y-m-d, time, unit price in cents,
/// customer).
const ROWS: &[(&str, i64, &str, &str, i64, &str)] = &[
    ("1", 2, "2024-01-01", "10:00", 500, "b2"),
    ("1", 1, "2024-01-01", "10:00", 300, "b2"),
    ("2", 1, "2024-01-05", "12:00", 400, "b2"),
    ("C3", -1, "2024-01-06", "10:00", 400, "b2"),
    ("4", 1, "2024-02-01", "10:00", 1000, "17850.0"),
    ("5", 2, "2024-02-10", "10:00", 250, "17850"),
    ("6", 1, "2024-01-20", "10:00", 100, ""),
    ("7", 1, "not a date", "", 100, "b2"),
    ("8", 1, "2024-03-05", "10:00", 900, "b2"),
];

/// The file as a US export writes it, or as a European one (`;`, `12,50`, `31.01.2024`, CRLF,
/// BOM); `quoted` quotes the text fields.
fn orders_csv(european: bool, quoted: bool) -> Vec<u8> {
    let (d, nl) = if european { (";", "\r\n") } else { (",", "\n") };
    let q = |s: &str| {
        if quoted {
            format!("\"{s}\"")
        } else {
            s.to_string()
        }
    };
    let mut out = String::new();
    if european {
        out.push('\u{feff}');
    }
    out.push_str(
        &[
            "InvoiceNo",
            "Quantity",
            "InvoiceDate",
            "UnitPrice",
            "CustomerID",
        ]
        .join(d),
    );
    out.push_str(nl);
    for (id, qty, date, time, cents, customer) in ROWS {
        let date = match date.split('-').collect::<Vec<_>>()[..] {
            [y, m, day] if european => format!("{day}.{m}.{y} {time}"),
            _ if time.is_empty() => date.to_string(),
            _ => format!("{date} {time}"),
        };
        let price = format!("{}.{:02}", cents / 100, cents % 100);
        let price = if european {
            price.replace('.', ",")
        } else {
            price
        };
        let fields = [q(id), qty.to_string(), date, price, q(customer)];
        out.push_str(&fields.join(d));
        out.push_str(nl);
    }
    out.into_bytes()
}

const EXPECTED: &str = "customer_id,first_order,last_order,recency_days,frequency,repeat_purchases,monetary_total,avg_order_value,tenure_days
17850,2024-02-01,2024-02-10,20,2,1,15.00,7.50,29
b2,2024-01-01,2024-01-05,56,2,1,13.00,6.50,60
";

#[test]
fn rfm_reads_the_same_features_from_every_shape_of_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (european, quoted) in [(false, false), (true, false), (false, true), (true, true)] {
        let file = dir.path().join("orders.csv");
        std::fs::write(&file, orders_csv(european, quoted)).expect("write");
        let out = dir.path().join("rfm.csv");
        let mut cmd = Command::cargo_bin("retain").expect("binary");
        cmd.arg("rfm")
            .arg(&file)
            .args(["--as-of", "2024-03-01", "--format", "json", "--output"])
            .arg(&out);
        if european {
            cmd.arg("--decimal-comma");
        }
        let run = cmd.assert().success();
        let doc: Value = serde_json::from_slice(&run.get_output().stdout).expect("json");
        let shape = format!("european {european}, quoted {quoted}");
        assert_eq!(doc["rows"], 9, "{shape}");
        assert_eq!(doc["rows_rejected"], 1, "{shape}");
        assert_eq!(doc["rows_without_customer"], 1, "{shape}");
        assert_eq!(doc["customers"], 2, "{shape}");
        // b2: orders 1, 2 and the return C3 (8 is after the as-of date); 17850: 4 and 5.
        assert_eq!(doc["orders"], 5, "{shape}");
        assert_eq!(doc["revenue"].as_f64(), Some(28.0), "{shape}");
        assert_eq!(doc["as_of"], "2024-03-01", "{shape}");
        let written = std::fs::read_to_string(&out).expect("output");
        assert_eq!(written, EXPECTED, "{shape}");
    }
}
