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

/// What a customers file's columns mean, decided once from its header and first records.
struct CustomerLayout {
    id: Option<Column>,
    email: Option<Column>,
    subscribed: Option<Column>,
    unsubscribed: Option<Column>,
    signup: Option<Column>,
    first_name: Option<Column>,
    last_name: Option<Column>,
    name: Option<Column>,
    locale: Option<Column>,
    signup_format: Option<DateFormat>,
    /// Columns kept as attributes: (index, header).
    extra: Vec<(usize, String)>,
    delimiter: u8,
    header_fields: usize,
    columns: Vec<(String, String)>,
}

/// One record of a customers file, read.
enum Record {
    /// A customer, with the note of its invalid email address if it has one.
    Customer(Customer, Option<Reject>),
    Rejected(Reject),
}

impl CustomerLayout {
    /// The layout from the header line and a sample of the body's first records (for the
    /// signup dates' format).
    fn new(
        file: &Path,
        header_line: &str,
        sample: &str,
        opts: &ImportOptions,
    ) -> Result<Self, ImportError> {
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
        let signup = get(CustomerField::SignupDate);
        let signup_format: Option<DateFormat> = match (&opts.date_format, &signup) {
            (Some(p), _) => Some(DateFormat::new(p)),
            (None, Some(c)) => {
                let mut rdr = csv::ReaderBuilder::new()
                    .has_headers(false)
                    .delimiter(delimiter)
                    .flexible(true)
                    .from_reader(sample.as_bytes());
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
        let extra = headers
            .iter()
            .enumerate()
            .filter(|(i, h)| !claimed.contains(i) && !h.is_empty())
            .map(|(i, h)| (i, h.clone()))
            .collect();
        Ok(Self {
            subscribed: get(CustomerField::Subscribed),
            unsubscribed: get(CustomerField::Unsubscribed),
            first_name: get(CustomerField::FirstName),
            last_name: get(CustomerField::LastName),
            name: get(CustomerField::Name),
            locale: get(CustomerField::Locale),
            columns: resolved
                .iter()
                .map(|(f, c)| (f.key().to_string(), c.header.clone()))
                .collect(),
            id,
            email,
            signup,
            signup_format,
            extra,
            delimiter,
            header_fields: headers.len(),
        })
    }

    /// What the reader says about the file as a whole.
    fn notes(&self, legacy_encoding: bool) -> Vec<String> {
        let mut notes = Vec::new();
        if legacy_encoding {
            notes.push("the file is not UTF-8; it was read as Windows-1252".into());
        }
        if self.id.is_none() {
            notes.push("no customer id column: customers are identified by their email".into());
        }
        notes
    }

    /// Reads one record (`line`: its line number in the file).
    fn record(&self, line: u64, fields: &[&str]) -> Record {
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
            record: fields.join(&char::from(self.delimiter).to_string()),
        };
        let email_value = field(&self.email).map(str::to_string);
        let cid = match (field(&self.id), &email_value) {
            (Some(i), _) => i.to_string(),
            (None, Some(e)) if self.id.is_none() => e.to_ascii_lowercase(),
            _ => return Record::Rejected(reject(&self.id, "no customer id".into())),
        };
        let email_valid = email_value.as_deref().is_some_and(is_valid_email);
        let invalid = (email_value.is_some() && !email_valid).then(|| {
            reject(
                &self.email,
                format!(
                    "'{}' is not a valid email address: the customer is kept but will not be mailed",
                    email_value.as_deref().unwrap_or_default()
                ),
            )
        });
        let mut subscribed = field(&self.subscribed).and_then(parse_flag);
        if let Some(unsub) = field(&self.unsubscribed).and_then(parse_flag) {
            subscribed = Some(!unsub && subscribed.unwrap_or(true));
        }
        let signup_date = match (field(&self.signup), &self.signup_format) {
            (Some(raw), Some(fmt)) => match fmt.parse(raw) {
                Some(d) => Some(d.date()),
                None => {
                    return Record::Rejected(reject(
                        &self.signup,
                        format!("'{raw}' is not a date in the format {}", fmt.pattern()),
                    ))
                }
            },
            _ => None,
        };
        let (mut first_name, mut last_name) = (
            field(&self.first_name).map(str::to_string),
            field(&self.last_name).map(str::to_string),
        );
        if first_name.is_none() && last_name.is_none() {
            if let Some(full) = field(&self.name) {
                match full.split_once(' ') {
                    Some((f, l)) => {
                        first_name = Some(f.to_string());
                        last_name = Some(l.trim().to_string());
                    }
                    None => first_name = Some(full.to_string()),
                }
            }
        }
        let attributes: BTreeMap<String, String> = self
            .extra
            .iter()
            .filter_map(|(i, h)| {
                fields
                    .get(*i)
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| (h.clone(), v.trim().to_string()))
            })
            .collect();
        Record::Customer(
            Customer {
                id: cid,
                email: email_value,
                email_valid,
                first_name,
                last_name,
                subscribed,
                signup_date,
                locale: field(&self.locale).map(str::to_string),
                attributes,
            },
            invalid,
        )
    }
}

/// Merges a later record of the same customer over an earlier one, as a later import does in
/// the store: the fields it has replace, the ones it leaves empty are kept (an email's validity
/// goes with the email), attributes are merged.
pub fn merge_later(earlier: &mut Customer, later: Customer) {
    if later.email.is_some() {
        earlier.email = later.email;
        earlier.email_valid = later.email_valid;
    }
    fn keep<T>(old: &mut Option<T>, new: Option<T>) {
        if new.is_some() {
            *old = new;
        }
    }
    keep(&mut earlier.first_name, later.first_name);
    keep(&mut earlier.last_name, later.last_name);
    keep(&mut earlier.subscribed, later.subscribed);
    keep(&mut earlier.signup_date, later.signup_date);
    keep(&mut earlier.locale, later.locale);
    earlier.attributes.extend(later.attributes);
}

/// Customers in file order, one entry per id: a later record of an id is merged over the
/// earlier one ([`merge_later`]).
#[derive(Debug, Default)]
struct Merged {
    customers: Vec<Customer>,
    at: HashMap<String, usize>,
}

impl Merged {
    fn add(&mut self, c: Customer) {
        match self.at.get(&c.id) {
            Some(&i) => merge_later(&mut self.customers[i], c),
            None => {
                self.at.insert(c.id.clone(), self.customers.len());
                self.customers.push(c);
            }
        }
    }
}

/// The row counts of a read.
#[derive(Debug, Default)]
struct Tally {
    rows_read: u64,
    rows_rejected: u64,
    invalid_emails: u64,
}

impl Tally {
    /// Counts `r`; its customer, if any, goes to `keep`, its rejects to `rejects`. Under
    /// `strict` the first rejected row is an error.
    fn take(
        &mut self,
        file: &Path,
        strict: bool,
        r: Record,
        rejects: &mut Vec<Reject>,
        mut keep: impl FnMut(Customer),
    ) -> Result<(), ImportError> {
        self.rows_read += 1;
        match r {
            Record::Customer(c, invalid) => {
                if let Some(note) = invalid {
                    self.invalid_emails += 1;
                    rejects.push(note);
                }
                keep(c);
            }
            Record::Rejected(reject) => {
                if strict {
                    return Err(ImportError::Strict {
                        file: file.to_path_buf(),
                        reject,
                    });
                }
                self.rows_rejected += 1;
                rejects.push(reject);
            }
        }
        Ok(())
    }
}

/// Reads a customers file loaded into memory (the reference the streamed reader,
/// [`stream_customers`], agrees with). Later rows for the same id are merged over earlier
/// ones ([`merge_later`]).
pub fn parse_customers(
    file: &Path,
    bytes: &[u8],
    opts: &ImportOptions,
) -> Result<CustomersImport, ImportError> {
    let text = text::decode(file, bytes)?;
    let all: &str = &text.text;
    let header_line = text::first_line(all);
    let body_start = memchr::memchr(b'\n', all.as_bytes()).map_or(all.len(), |i| i + 1);
    let body = &all[body_start..];
    let lay = CustomerLayout::new(file, header_line, body, opts)?;
    text::check_truncation(file, body, lay.delimiter, lay.header_fields, 2)?;
    let records = text::for_each_chunk(
        body,
        lay.delimiter,
        2,
        Vec::new,
        |v: &mut Vec<Record>, line, f| v.push(lay.record(line, f)),
    );
    let mut tally = Tally::default();
    let mut merged = Merged::default();
    let mut rejects = Vec::new();
    for r in records.into_iter().flatten() {
        tally.take(file, opts.strict, r, &mut rejects, |c| merged.add(c))?;
    }
    Ok(CustomersImport {
        customers: merged.customers,
        rows_read: tally.rows_read,
        rows_rejected: tally.rows_rejected,
        invalid_emails: tally.invalid_emails,
        rejects,
        notes: lay.notes(text.legacy_encoding),
        columns: lay.columns,
    })
}

/// A run of a customers file's records, in file order: one entry per customer id (a later
/// record of an id in the same run merged over the earlier one), and the rows set aside.
#[derive(Debug, Default)]
pub struct CustomerFeed {
    pub customers: Vec<Customer>,
    pub rejects: Vec<Reject>,
}

/// What a streamed read of a customers file found, besides the customers themselves.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CustomersSummary {
    pub rows_read: u64,
    pub rows_rejected: u64,
    /// Customers whose email is present but not a valid address (kept, never mailed).
    pub invalid_emails: u64,
    pub columns: Vec<(String, String)>,
    pub notes: Vec<String>,
}

/// Reads a customers file of any size block by block (the orders reader's blocks, cut at record
/// boundaries and parsed in parallel) and hands the customers to `sink` a run at a time, in file
/// order; `sink` returns false to stop early. Memory is a few blocks whatever the file's size.
/// The rules are [`parse_customers`]': applied in order, the runs give the same customers.
pub fn stream_customers(
    file: &Path,
    opts: &ImportOptions,
    progress: &(dyn Fn(u64) + Sync),
    sink: &mut dyn FnMut(CustomerFeed) -> bool,
) -> Result<CustomersSummary, ImportError> {
    stream_customers_in_blocks(file, opts, super::stream::BLOCK, progress, sink)
}

/// [`stream_customers`] with blocks of about `block` bytes (tests cut files into tiny blocks).
pub(crate) fn stream_customers_in_blocks(
    file: &Path,
    opts: &ImportOptions,
    block: usize,
    progress: &(dyn Fn(u64) + Sync),
    sink: &mut dyn FnMut(CustomerFeed) -> bool,
) -> Result<CustomersSummary, ImportError> {
    let head = super::stream::read_head(file)?;
    let lay = CustomerLayout::new(file, &head.header_line, &head.sample, opts)?;
    let mut tally = Tally::default();
    let legacy_seen = super::stream::stream_body(
        file,
        &super::stream::Body {
            delimiter: lay.delimiter,
            header_fields: lay.header_fields,
            legacy: head.legacy,
            block,
        },
        progress,
        &|line, fields| lay.record(line, fields),
        &mut |records: Vec<Record>| {
            let mut merged = Merged::default();
            let mut rejects = Vec::new();
            for r in records {
                tally.take(file, opts.strict, r, &mut rejects, |c| merged.add(c))?;
            }
            Ok(sink(CustomerFeed {
                customers: merged.customers,
                rejects,
            }))
        },
    )?;
    let mut notes = lay.notes(head.legacy);
    if legacy_seen && !head.legacy {
        notes.push("part of the file is not UTF-8; those parts were read as Windows-1252".into());
    }
    Ok(CustomersSummary {
        rows_read: tally.rows_read,
        rows_rejected: tally.rows_rejected,
        invalid_emails: tally.invalid_emails,
        columns: lay.columns,
        notes,
    })
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

    /// A CSV field as a spreadsheet writes it: quoted when it has a delimiter, quote or line end.
    fn field(s: &str) -> String {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    }

    /// Customers files with repeated ids (fields filled in and left empty), bad emails and dates,
    /// quoted line ends and delimiters, attributes; CRLF or LF, BOM or not.
    fn file_strategy() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let row = (
            prop::sample::select(vec!["1", "2", "3", "", "c,4", "c\"5"]),
            prop::sample::select(vec!["a@x.io", "b@y.org", "not-an-email", ""]),
            prop::sample::select(vec!["Ann Lee", "Bo", "", "Cy \"Q\", Jr"]),
            prop::sample::select(vec!["yes", "no", "", "maybe"]),
            prop::sample::select(vec!["2024-01-02", "2023-12-31", "", "someday"]),
            "[a-z ,\"\n]{0,10}",
        );
        (
            prop::collection::vec(row, 0..60),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(rows, crlf, bom, final_newline)| {
                let nl = if crlf { "\r\n" } else { "\n" };
                let mut out = String::new();
                if bom {
                    out.push('\u{feff}');
                }
                out.push_str("customer_id,email,name,subscribed,signup_date,tier");
                // One good row first, so the signup dates' format can be found.
                out.push_str(nl);
                out.push_str("1,a@x.io,Ann Lee,yes,2024-01-01,gold");
                for (id, email, name, sub, day, tier) in rows {
                    out.push_str(nl);
                    let fields = [
                        field(id),
                        field(email),
                        field(name),
                        field(sub),
                        field(day),
                        field(&tier),
                    ];
                    out.push_str(&fields.join(","));
                }
                if final_newline {
                    out.push_str(nl);
                }
                out.into_bytes()
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// The streamed reader, its runs merged in order as the store merges them, equals the
        /// in-memory reference whatever the block size: blocks end inside quoted fields, CRLF,
        /// BOM, repeated ids, bad rows.
        #[test]
        fn streaming_equals_the_in_memory_reader(bytes in file_strategy(), block in 1usize..200) {
            let opts = ImportOptions::default();
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("c.csv");
            std::fs::write(&path, &bytes).expect("write");
            let reference = parse_customers(&path, &bytes, &opts);
            let mut merged = Merged::default();
            let mut rejects = Vec::new();
            let got = stream_customers_in_blocks(&path, &opts, block, &|_| {}, &mut |feed| {
                for c in feed.customers {
                    merged.add(c);
                }
                rejects.extend(feed.rejects);
                true
            });
            match (reference, got) {
                (Ok(r), Ok(summary)) => {
                    proptest::prop_assert_eq!(merged.customers, r.customers);
                    proptest::prop_assert_eq!(rejects, r.rejects);
                    proptest::prop_assert_eq!(summary.rows_read, r.rows_read);
                    proptest::prop_assert_eq!(summary.rows_rejected, r.rows_rejected);
                    proptest::prop_assert_eq!(summary.invalid_emails, r.invalid_emails);
                    proptest::prop_assert_eq!(summary.columns, r.columns);
                    proptest::prop_assert_eq!(summary.notes, r.notes);
                }
                (Err(a), Err(b)) => proptest::prop_assert_eq!(a.to_string(), b.to_string()),
                (a, b) => proptest::prop_assert!(false, "reference {:?} vs streamed {:?}", a.map(|r| r.rows_read), b.map(|s| s.rows_read)),
            }
        }
    }

    /// A later row of a customer fills in what it has and keeps what it leaves empty.
    #[test]
    fn later_rows_merge_over_earlier_ones() {
        let csv = "id,email,first_name,subscribed,tier,city\n\
7,a@x.io,Ann,yes,gold,\n\
7,,,no,,Oslo\n";
        let r = parse_customers(
            Path::new("c.csv"),
            csv.as_bytes(),
            &ImportOptions::default(),
        )
        .expect("ok");
        assert_eq!(r.customers.len(), 1);
        let c = &r.customers[0];
        assert_eq!(c.email.as_deref(), Some("a@x.io"));
        assert!(c.email_valid);
        assert_eq!(c.first_name.as_deref(), Some("Ann"));
        assert_eq!(c.subscribed, Some(false));
        assert_eq!(c.attributes.get("tier").map(String::as_str), Some("gold"));
        assert_eq!(c.attributes.get("city").map(String::as_str), Some("Oslo"));
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
