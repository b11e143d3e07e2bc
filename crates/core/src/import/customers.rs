//! Customers files: id, email, names, marketing consent, signup date, locale; every other column
//! is kept as an attribute. Invalid email addresses are reported and the customer kept unsendable.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Serialize;

use super::columns::{self, Column, CustomerField};
use super::text;
use super::{ImportError, ImportOptions, Reject};
use crate::dates::{detect_date_format, DateFormat};
use crate::model::Customer;

/// The outcome of reading a customers file.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CustomersImport {
    pub customers: Vec<Customer>,
    pub rows_read: u64,
    pub rows_rejected: u64,
    /// Customers whose email is present but not a valid address (kept, never mailed).
    pub invalid_emails: u64,
    pub rejects: Vec<Reject>,
    pub columns: Vec<(String, String)>,
    pub notes: Vec<String>,
}

/// A syntactic check of an email address: one `@`, a non-empty local part, a dotted domain of
/// letters, digits and hyphens, no spaces or control characters, at most 254 characters.
pub fn is_valid_email(s: &str) -> bool {
    if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    if local.is_empty()
        || local.len() > 64
        || local.contains('@')
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
    {
        return false;
    }
    if local.chars().any(|c| "()<>[]\\,;:\"".contains(c)) {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && !tld.chars().all(|c| c.is_ascii_digit()))
}

/// Reads a consent-like value: yes/no, true/false, 1/0, y/n, subscribed/unsubscribed, opted in/out.
pub fn parse_flag(s: &str) -> Option<bool> {
    let n = columns::normalize(s);
    match n.as_str() {
        "1" | "true" | "yes" | "y" | "t" | "subscribed" | "optedin" | "optin" | "on" | "ja"
        | "oui" | "si" => Some(true),
        "0" | "false" | "no" | "n" | "f" | "unsubscribed" | "optedout" | "optout" | "off"
        | "nein" | "non" | "notsubscribed" | "cleaned" => Some(false),
        _ => None,
    }
}

/// Reads a customers file loaded into memory. Later rows for the same id replace earlier ones.
pub fn parse_customers(
    file: &Path,
    bytes: &[u8],
    opts: &ImportOptions,
) -> Result<CustomersImport, ImportError> {
    let text = text::decode(file, bytes)?;
    let all: &str = &text.text;
    let header_line = text::first_line(all);
    let delimiter = opts
        .delimiter
        .unwrap_or_else(|| text::sniff_delimiter(header_line));
    let headers = text::split_header(header_line, delimiter);
    let resolved = columns::resolve(
        file,
        &headers,
        CustomerField::ALL,
        CustomerField::key,
        CustomerField::synonyms,
        CustomerField::from_key,
        &opts.mapping,
    )?;
    let get = |f: CustomerField| {
        resolved
            .iter()
            .find(|(x, _)| *x == f)
            .map(|(_, c)| c.clone())
    };
    let id = get(CustomerField::CustomerId);
    let email = get(CustomerField::Email);
    if id.is_none() && email.is_none() {
        return Err(ImportError::MissingColumns {
            file: file.to_path_buf(),
            missing: "a customer id (e.g. customer_id, CustomerID) or an email column".into(),
            found: headers.join(", "),
        });
    }
    let body_start = memchr::memchr(b'\n', all.as_bytes()).map_or(all.len(), |i| i + 1);
    let body = &all[body_start..];
    text::check_truncation(file, body, delimiter, headers.len(), 2)?;
    let signup = get(CustomerField::SignupDate);
    let signup_format: Option<DateFormat> = match (&opts.date_format, &signup) {
        (Some(p), _) => Some(DateFormat::new(p)),
        (None, Some(c)) => {
            let mut rdr = csv::ReaderBuilder::new()
                .has_headers(false)
                .delimiter(delimiter)
                .flexible(true)
                .from_reader(body.as_bytes());
            let samples: Vec<String> = rdr
                .records()
                .map_while(Result::ok)
                .filter_map(|r| r.get(c.index).map(|s| s.trim().to_string()))
                .filter(|s| !s.is_empty())
                .take(2000)
                .collect();
            detect_date_format(samples.iter().map(String::as_str)).map(|d| d.format)
        }
        (None, None) => None,
    };
    let claimed: Vec<usize> = resolved.iter().map(|(_, c)| c.index).collect();
    let extra: Vec<(usize, String)> = headers
        .iter()
        .enumerate()
        .filter(|(i, h)| !claimed.contains(i) && !h.is_empty())
        .map(|(i, h)| (i, h.clone()))
        .collect();

    let mut out = CustomersImport {
        columns: resolved
            .iter()
            .map(|(f, c)| (f.key().to_string(), c.header.clone()))
            .collect(),
        ..Default::default()
    };
    if text.legacy_encoding {
        out.notes
            .push("the file is not UTF-8; it was read as Windows-1252".into());
    }
    if id.is_none() {
        out.notes
            .push("no customer id column: customers are identified by their email".into());
    }
    let records = text::for_each_chunk(
        body,
        delimiter,
        2,
        Vec::new,
        |v: &mut Vec<(u64, Vec<String>)>, line, f| {
            v.push((line, f.iter().map(|s| s.to_string()).collect()));
        },
    );
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for (line, fields) in records.into_iter().flatten() {
        out.rows_read += 1;
        let field = |c: &Option<Column>| {
            c.as_ref()
                .and_then(|c| fields.get(c.index))
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
        };
        let reject = |col: &Option<Column>, reason: String| Reject {
            line,
            column: col.as_ref().map(|c| (c.index + 1, c.header.clone())),
            reason,
            record: fields.join(&char::from(delimiter).to_string()),
        };
        let email_value = field(&email).map(str::to_string);
        let cid = match (field(&id), &email_value) {
            (Some(i), _) => i.to_string(),
            (None, Some(e)) if id.is_none() => e.to_ascii_lowercase(),
            _ => {
                let r = reject(&id, "no customer id".into());
                if opts.strict {
                    return Err(ImportError::Strict {
                        file: file.to_path_buf(),
                        reject: r,
                    });
                }
                out.rows_rejected += 1;
                out.rejects.push(r);
                continue;
            }
        };
        let email_valid = email_value.as_deref().is_some_and(is_valid_email);
        if email_value.is_some() && !email_valid {
            out.invalid_emails += 1;
            out.rejects.push(reject(
                &email,
                format!(
                    "'{}' is not a valid email address: the customer is kept but will not be mailed",
                    email_value.as_deref().unwrap_or_default()
                ),
            ));
        }
        let mut subscribed = field(&get(CustomerField::Subscribed)).and_then(parse_flag);
        if let Some(unsub) = field(&get(CustomerField::Unsubscribed)).and_then(parse_flag) {
            subscribed = Some(!unsub && subscribed.unwrap_or(true));
        }
        let signup_date = match (field(&signup), &signup_format) {
            (Some(raw), Some(fmt)) => match fmt.parse(raw) {
                Some(d) => Some(d.date()),
                None => {
                    let r = reject(
                        &signup,
                        format!("'{raw}' is not a date in the format {}", fmt.pattern()),
                    );
                    if opts.strict {
                        return Err(ImportError::Strict {
                            file: file.to_path_buf(),
                            reject: r,
                        });
                    }
                    out.rows_rejected += 1;
                    out.rejects.push(r);
                    continue;
                }
            },
            _ => None,
        };
        let (mut first_name, mut last_name) = (
            field(&get(CustomerField::FirstName)).map(str::to_string),
            field(&get(CustomerField::LastName)).map(str::to_string),
        );
        if first_name.is_none() && last_name.is_none() {
            if let Some(full) = field(&get(CustomerField::Name)) {
                match full.split_once(' ') {
                    Some((f, l)) => {
                        first_name = Some(f.to_string());
                        last_name = Some(l.trim().to_string());
                    }
                    None => first_name = Some(full.to_string()),
                }
            }
        }
        let attributes: BTreeMap<String, String> = extra
            .iter()
            .filter_map(|(i, h)| {
                fields
                    .get(*i)
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| (h.clone(), v.trim().to_string()))
            })
            .collect();
        let customer = Customer {
            id: cid.clone(),
            email: email_value,
            email_valid,
            first_name,
            last_name,
            subscribed,
            signup_date,
            locale: field(&get(CustomerField::Locale)).map(str::to_string),
            attributes,
        };
        match by_id.get(&cid) {
            Some(&i) => out.customers[i] = customer,
            None => {
                by_id.insert(cid, out.customers.len());
                out.customers.push(customer);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_validation() {
        for ok in [
            "a@b.co",
            "first.last+tag@mail.example.org",
            "x@sub-domain.example.de",
            "ü@bücher.de",
        ] {
            assert!(is_valid_email(ok), "{ok}");
        }
        for bad in [
            "", "a", "a@b", "@b.co", "a@.co", "a b@c.de", "a@b..co", "a@-b.co", "a@b.c",
            "<a>@b.co", "a@b.co\n", "a@1.2",
        ] {
            assert!(!is_valid_email(bad), "{bad}");
        }
    }

    #[test]
    fn customers_with_consent_names_attributes_and_bad_emails() {
        let csv = "Customer ID,E-mail,Name,Accepts Marketing,Created At,Language,Tier\n\
1,ann@example.com,Ann Lee,yes,2024-01-05,en,gold\n\
2,not-an-email,Bob,no,2024-01-06,de,\n\
3,,Cy,,,fr,silver\n\
,dan@example.com,Dan,yes,2024-01-07,en,\n\
1,ann@example.org,Ann Lee,no,2024-01-05,en,gold\n";
        let r = parse_customers(
            Path::new("c.csv"),
            csv.as_bytes(),
            &ImportOptions::default(),
        )
        .expect("ok");
        assert_eq!(r.rows_read, 5);
        assert_eq!(r.customers.len(), 3);
        assert_eq!(r.rows_rejected, 1);
        assert_eq!(r.invalid_emails, 1);
        let ann = &r.customers[0];
        assert_eq!(
            ann.email.as_deref(),
            Some("ann@example.org"),
            "later row wins"
        );
        assert_eq!(ann.subscribed, Some(false));
        assert_eq!(ann.first_name.as_deref(), Some("Ann"));
        assert_eq!(ann.last_name.as_deref(), Some("Lee"));
        assert_eq!(ann.attributes.get("Tier").map(String::as_str), Some("gold"));
        assert_eq!(ann.locale.as_deref(), Some("en"));
        assert!(!r.customers[1].email_valid);
        assert_eq!(r.customers[2].subscribed, None);
        assert!(!r.customers[2].email_valid, "no email → unsendable");
        assert!(r
            .rejects
            .iter()
            .any(|x| x.line == 5 && x.reason.contains("no customer id")));
    }

    #[test]
    fn unsubscribed_column_inverts() {
        let csv = "id;email;unsubscribed\na;a@x.io;1\nb;b@x.io;0\n";
        let r = parse_customers(
            Path::new("c.csv"),
            csv.as_bytes(),
            &ImportOptions::default(),
        )
        .expect("ok");
        assert_eq!(r.customers[0].subscribed, Some(false));
        assert_eq!(r.customers[1].subscribed, Some(true));
    }
}
