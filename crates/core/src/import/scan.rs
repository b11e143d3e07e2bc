//! Reading an orders file straight into per-customer features ([`scan_features`], behind
//! `retain rfm FILE`): the same records and rules as the import ([`Layout::parse`]), folded
//! customer by customer without materialising orders.
//!
//! The pass is built for exports of tens of millions of rows:
//! 1. the body's chunks are read in parallel; each record's customer id is hashed and the record
//!    (id bytes, day, amount, flags — 16 bytes plus the id) goes to one of [`PARTS`] partitions
//!    chosen by that hash, so every customer's records land in one partition;
//! 2. partitions are folded in parallel, each with a small hash map of its own customers
//!    (cache-resident), records bucketed by customer in file order, then each customer's orders
//!    folded by [`fold_customer`] into a [`CustomerHistory`] and [`features_of`];
//! 3. the features are sorted by customer id on a byte-prefix key.

use std::hash::{Hash as _, Hasher as _};
use std::path::Path;

use chrono::NaiveDate;
use rayon::prelude::*;
use rustc_hash::{FxBuildHasher, FxHashMap as HashMap, FxHasher};
use serde::Serialize;

use super::orders::{layout, Layout, Parsed};
use super::text;
use super::{ImportError, ImportOptions};
use crate::dates::DateCache;
use crate::features::{features_of, fold_days, CustomerHistory};
use crate::model::{
    date_of, day_of, from_minor, is_return, to_minor, CustomerFeatures, Day, Minor,
};

/// Shop-level counts of a [`scan_features`] pass.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ScanStats {
    pub rows_read: u64,
    pub rows_rejected: u64,
    pub rows_without_customer: u64,
    pub orders: u64,
    pub revenue: f64,
    pub as_of: Option<NaiveDate>,
}

/// Number of customer-hash partitions: enough that a partition's customers fit in cache on a
/// large file (4,000 of a million), few enough that small files do not pay for empty ones.
const PARTS: usize = 256;

/// The cancelled flag in [`Rec::id_len`].
const CANCELLED: u32 = 1 << 31;

/// One record of a partition: its customer id is the next `id_len` bytes of the partition's id
/// text.
#[derive(Debug, Clone, Copy)]
struct Rec {
    /// Length of the customer id in bytes, with [`CANCELLED`] set for a cancellation.
    id_len: u32,
    day: Day,
    /// Signed amount in minor units.
    amount: Minor,
}

/// One chunk's records of one partition.
#[derive(Default)]
struct Bin {
    recs: Vec<Rec>,
    /// The records' customer ids, one after another.
    ids: String,
    /// The records' order keys (hash of the order id, else the line number) when the file has
    /// an order id column.
    keys: Vec<u64>,
}

/// What one chunk of the body read.
struct Chunk {
    parts: Vec<Bin>,
    dates: DateCache,
    rows: u64,
    rejected: u64,
    without_customer: u64,
    max_day: Day,
}

/// A customer's line as folded.
#[derive(Debug, Clone, Copy, Default)]
struct Line {
    /// Position in the file (within its partition): orders keep the order they first appear in.
    seq: u64,
    /// Order key: lines with the same key are items of one order.
    key: u64,
    day: Day,
    amount: Minor,
    cancelled: bool,
}

fn fx_hash(s: &str) -> u64 {
    let mut h = FxHasher::default();
    s.hash(&mut h);
    h.finish()
}

/// Reads an orders file straight into per-customer features sorted by customer id, as of `as_of`
/// (default: the day after the last order). Same rules as [`super::parse_orders`]; bad rows are
/// counted, not listed, and `strict` does not apply.
pub fn scan_features(
    file: &Path,
    bytes: &[u8],
    opts: &ImportOptions,
    as_of: Option<NaiveDate>,
) -> Result<(Vec<CustomerFeatures>, ScanStats), ImportError> {
    let (chunks, keyed) = read_chunks(file, bytes, opts)?;
    let mut stats = ScanStats::default();
    let mut max_day = Day::MIN;
    let mut by_part: Vec<Vec<Bin>> = (0..PARTS).map(|_| Vec::new()).collect();
    for c in chunks {
        stats.rows_read += c.rows;
        stats.rows_rejected += c.rejected;
        stats.rows_without_customer += c.without_customer;
        max_day = max_day.max(c.max_day);
        for (p, piece) in c.parts.into_iter().enumerate() {
            if !piece.recs.is_empty() {
                by_part[p].push(piece);
            }
        }
    }
    let as_of = as_of.or_else(|| (max_day > Day::MIN).then(|| date_of(max_day + 1)));
    stats.as_of = as_of;
    let Some(as_of_date) = as_of else {
        return Ok((Vec::new(), stats));
    };
    let cutoff = day_of(as_of_date);
    let folded: Vec<(Vec<CustomerFeatures>, u64)> = by_part
        .into_par_iter()
        .map(|pieces| fold_partition(pieces, keyed, cutoff, as_of_date))
        .collect();
    let mut features = Vec::with_capacity(folded.iter().map(|f| f.0.len()).sum());
    for (f, orders) in folded {
        stats.orders += orders;
        features.extend(f);
    }
    let features = sort_by_id(features);
    // Net revenue over customers in id order, compensated (Neumaier) so that the shop total does
    // not drift with the number of customers.
    let (mut sum, mut carry) = (0.0f64, 0.0f64);
    for f in &features {
        let v = f.monetary_total;
        let t = sum + v;
        carry += if sum.abs() >= v.abs() {
            (sum - t) + v
        } else {
            (v - t) + sum
        };
        sum = t;
    }
    stats.revenue = sum + carry;
    Ok((features, stats))
}

/// Reads the body's records into chunks (in file order), in parallel; with whether the file has an
/// order id column. A UTF-8 file without quotes is read in place, piece by piece (no decoded
/// copy, no sequential pass); any other goes through [`text::decode`].
fn read_chunks(
    file: &Path,
    bytes: &[u8],
    opts: &ImportOptions,
) -> Result<(Vec<Chunk>, bool), ImportError> {
    let init = || Chunk {
        parts: (0..PARTS).map(|_| Bin::default()).collect(),
        dates: DateCache::default(),
        rows: 0,
        rejected: 0,
        without_customer: 0,
        max_day: Day::MIN,
    };
    let raw = text::strip_bom(bytes);
    text::check_text(file, raw)?;
    let body_start = memchr::memchr(b'\n', raw).map_or(raw.len(), |i| i + 1);
    let plain = std::str::from_utf8(&raw[..body_start])
        .ok()
        .zip(text::utf8_pieces(&raw[body_start..], 2))
        .filter(|(_, pieces)| pieces.iter().all(|p| p.quotes == 0));
    if let Some((head, pieces)) = plain {
        let header_line = text::first_line(head);
        // The first piece (at least 4 MiB, or the whole body) is the sample for date formats.
        let sample = pieces.first().map_or("", |p| p.text);
        let lay = layout(file, header_line, sample, opts)?;
        text::check_truncation_pieces(
            file,
            &pieces,
            lay.delimiter,
            lay.header_fields(header_line),
        )?;
        let keyed = lay.order_id.is_some();
        let chunks = text::for_each_piece(&pieces, lay.delimiter, init, |acc, line, fields| {
            read_record(&lay, keyed, acc, line, fields)
        });
        return Ok((chunks, keyed));
    }
    let text = text::decode(file, bytes)?;
    let all: &str = &text.text;
    let header_line = text::first_line(all);
    let body_start = memchr::memchr(b'\n', all.as_bytes()).map_or(all.len(), |i| i + 1);
    let body = &all[body_start..];
    let lay = layout(file, header_line, body, opts)?;
    text::check_truncation(file, body, lay.delimiter, lay.header_fields(header_line), 2)?;
    let keyed = lay.order_id.is_some();
    let chunks = text::for_each_chunk(body, lay.delimiter, 2, init, |acc, line, fields| {
        read_record(&lay, keyed, acc, line, fields)
    });
    Ok((chunks, keyed))
}

/// Reads one record into its chunk's partition.
fn read_record(lay: &Layout, keyed: bool, acc: &mut Chunk, line: u64, fields: &[&str]) {
    acc.rows += 1;
    match lay.parse_with(fields, &mut acc.dates) {
        Parsed::Row(r) => {
            let id: &str = &r.customer;
            // The import's rule: an amount that does not fit minor units rejects the row.
            let (Some(amount), Ok(len)) = (to_minor(r.amount), u32::try_from(id.len())) else {
                acc.rejected += 1;
                return;
            };
            if len >= CANCELLED {
                acc.rejected += 1;
                return;
            }
            let day = day_of(r.at.date());
            acc.max_day = acc.max_day.max(day);
            // Bits the partition maps do not use for their buckets (low) or tags (high).
            let part = &mut acc.parts[(fx_hash(id) >> 32) as usize % PARTS];
            part.ids.push_str(id);
            part.recs.push(Rec {
                id_len: len | if r.cancelled { CANCELLED } else { 0 },
                day,
                amount,
            });
            if keyed {
                part.keys.push(match r.order_id {
                    Some(o) => fx_hash(o),
                    None => line,
                });
            }
        }
        Parsed::NoCustomer => acc.without_customer += 1,
        Parsed::Reject(..) => acc.rejected += 1,
        Parsed::LineItem(_) | Parsed::Skipped(_) => {}
    }
}

/// Folds one partition (its pieces in file order) into features: (features, orders).
fn fold_partition(
    pieces: Vec<Bin>,
    keyed: bool,
    cutoff: Day,
    as_of: NaiveDate,
) -> (Vec<CustomerFeatures>, u64) {
    let n: usize = pieces.iter().map(|p| p.recs.len()).sum();
    // Customer numbers in order of first appearance, and each record's.
    let mut index: HashMap<&str, u32> =
        HashMap::with_capacity_and_hasher(n / 4 + 16, FxBuildHasher);
    let mut names: Vec<&str> = Vec::new();
    let mut cust: Vec<u32> = Vec::with_capacity(n);
    for piece in &pieces {
        let mut at = 0usize;
        for r in &piece.recs {
            let len = (r.id_len & !CANCELLED) as usize;
            let id = piece.ids.get(at..at + len).unwrap_or("");
            at += len;
            let next = names.len() as u32;
            let c = *index.entry(id).or_insert_with(|| {
                names.push(id);
                next
            });
            cust.push(c);
        }
    }
    drop(index);
    // Bucket the records by customer (a counting sort: file order kept within a customer).
    let mut offsets = vec![0usize; names.len() + 1];
    for &c in &cust {
        offsets[c as usize + 1] += 1;
    }
    for i in 1..offsets.len() {
        offsets[i] += offsets[i - 1];
    }
    let mut fill = offsets.clone();
    let mut lines = vec![Line::default(); n];
    let mut seq = 0u64;
    let mut cust = cust.into_iter();
    for piece in &pieces {
        for (i, r) in piece.recs.iter().enumerate() {
            let Some(c) = cust.next() else { break };
            let slot = &mut fill[c as usize];
            lines[*slot] = Line {
                seq,
                // Without order ids every line is an order of its own.
                key: if keyed {
                    piece.keys.get(i).copied().unwrap_or(seq)
                } else {
                    seq
                },
                day: r.day,
                amount: r.amount,
                cancelled: r.id_len & CANCELLED != 0,
            };
            *slot += 1;
            seq += 1;
        }
    }
    drop(fill);
    let mut orders_total = 0u64;
    let mut scratch = Scratch::default();
    let mut out = Vec::with_capacity(names.len());
    for (c, id) in names.iter().enumerate() {
        let mine = &lines[offsets[c]..offsets[c + 1]];
        if let Some((f, n)) = fold_customer(id, mine, keyed, cutoff, as_of, &mut scratch) {
            orders_total += n;
            out.push(f);
        }
    }
    (out, orders_total)
}

/// Buffers reused from one customer to the next.
#[derive(Default)]
struct Scratch {
    kept: Vec<Line>,
    orders: Vec<ScanOrder>,
    days: Vec<(Day, f64)>,
}

/// An order of one customer as folded: first line's position, day, net amount, cancelled.
#[derive(Debug, Clone, Copy)]
struct ScanOrder {
    seq: u64,
    day: Day,
    amount: Minor,
    cancelled: bool,
}

/// One customer's lines (in file order) as features, with the number of orders — what importing the lines and then computing features gives:
/// line items of one order (same key) add up into the order (its first day, net amount,
/// cancelled when any line is), orders on or after `cutoff` are dropped, each order is a
/// purchase or a return by [`is_return`], and same-day purchases fold into one purchase day.
/// `None` when no purchase is left.
fn fold_customer(
    id: &str,
    lines: &[Line],
    keyed: bool,
    cutoff: Day,
    as_of: NaiveDate,
    scratch: &mut Scratch,
) -> Option<(CustomerFeatures, u64)> {
    let Scratch { kept, orders, days } = scratch;
    orders.clear();
    let order = |l: &Line| ScanOrder {
        seq: l.seq,
        day: l.day,
        amount: l.amount,
        cancelled: l.cancelled,
    };
    if keyed {
        kept.clear();
        kept.extend_from_slice(lines);
        kept.sort_unstable_by_key(|l| (l.key, l.seq));
        let mut last_key = None;
        for l in kept.iter() {
            match orders.last_mut() {
                Some(o) if last_key == Some(l.key) => {
                    o.day = o.day.min(l.day);
                    o.amount += l.amount;
                    o.cancelled |= l.cancelled;
                }
                _ => {
                    orders.push(order(l));
                    last_key = Some(l.key);
                }
            }
        }
        orders.sort_unstable_by_key(|o| o.seq);
    } else {
        orders.extend(lines.iter().map(order));
    }
    orders.retain(|o| o.day < cutoff);
    let mut days = std::mem::take(days);
    days.clear();
    let mut returns_total = 0.0;
    let mut purchases = 0u32;
    for o in orders.iter() {
        let amount = from_minor(o.amount);
        if is_return(o.amount, o.cancelled) {
            returns_total -= amount.abs();
        } else {
            purchases += 1;
            days.push((o.day, amount));
        }
    }
    let h = CustomerHistory {
        // The id is set on the features below: no copy is made for the history.
        customer_id: String::new(),
        purchase_days: fold_days(days),
        purchases,
        returns_total,
    };
    let f = features_of(&h, as_of);
    scratch.days = h.purchase_days;
    let mut f = f?;
    f.customer_id = id.to_string();
    Some((f, orders.len() as u64))
}

/// Sorts features by customer id (byte order): on the ids' first 8 bytes as a big-endian
/// number, the whole id breaking ties.
fn sort_by_id(features: Vec<CustomerFeatures>) -> Vec<CustomerFeatures> {
    let prefix = |s: &str| {
        let mut b = [0u8; 8];
        let n = s.len().min(8);
        b[..n].copy_from_slice(&s.as_bytes()[..n]);
        u64::from_be_bytes(b)
    };
    let mut order: Vec<(u64, usize)> = features
        .iter()
        .enumerate()
        .map(|(i, f)| (prefix(&f.customer_id), i))
        .collect();
    order.par_sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| features[a.1].customer_id.cmp(&features[b.1].customer_id))
    });
    let mut slots: Vec<Option<CustomerFeatures>> = features.into_iter().map(Some).collect();
    order
        .into_iter()
        .filter_map(|(_, i)| slots.get_mut(i).and_then(Option::take))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::customer_features;
    use crate::import::parse_orders;
    use proptest::prelude::*;

    /// What importing the file and then computing features gives: the reference.
    fn imported(bytes: &[u8], opts: &ImportOptions, as_of: NaiveDate) -> Vec<CustomerFeatures> {
        let r = parse_orders(Path::new("t.csv"), bytes, opts).expect("imports");
        customer_features(&r.orders, as_of)
    }

    #[test]
    fn a_cancelled_line_item_does_not_make_its_order_a_return() {
        // Order 1 nets 5.00 although one of its lines is a cancellation: a purchase, as imported.
        let csv = "InvoiceNo,Quantity,InvoiceDate,UnitPrice,CustomerID,Status\n\
1,2,2024-01-01 10:00,5,a,\n1,1,2024-01-02 10:00,5,a,refund\n2,1,2024-01-03 10:00,4,a,\n";
        let o = ImportOptions::default();
        let as_of = NaiveDate::from_ymd_opt(2024, 3, 1).expect("d");
        let (got, stats) =
            scan_features(Path::new("t.csv"), csv.as_bytes(), &o, Some(as_of)).expect("scan");
        assert_eq!(got, imported(csv.as_bytes(), &o, as_of));
        assert_eq!(got[0].frequency, 2);
        assert!((got[0].monetary_total - 9.0).abs() < 1e-9);
        assert_eq!(stats.orders, 2);
    }

    #[test]
    fn an_order_straddling_the_as_of_date_counts_with_all_its_lines() {
        let csv = "order_id,customer,date,amount\nA,x,2024-01-31,10\nA,x,2024-02-02,5\nB,x,2024-02-03,7\n";
        let o = ImportOptions::default();
        let as_of = NaiveDate::from_ymd_opt(2024, 2, 1).expect("d");
        let (got, stats) =
            scan_features(Path::new("t.csv"), csv.as_bytes(), &o, Some(as_of)).expect("scan");
        assert_eq!(got, imported(csv.as_bytes(), &o, as_of));
        assert!((got[0].monetary_total - 15.0).abs() < 1e-9);
        assert_eq!(stats.orders, 1);
    }

    #[test]
    fn many_pieces_and_partitions_agree_with_the_import() {
        // Large enough for several pieces (4 MiB each) and every partition.
        let mut csv = String::from("customer_id,date,amount\n");
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..400_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            csv.push_str(&format!(
                "cust{},2024-{:02}-{:02},{}.{:02}\r\n",
                x % 20_000,
                x >> 20 & 7 | 1,
                (x >> 30) % 28 + 1,
                (x >> 40) % 300,
                (x >> 8) % 100
            ));
        }
        assert!(csv.len() > 9 << 20);
        let o = ImportOptions::default();
        let (got, stats) =
            scan_features(Path::new("t.csv"), csv.as_bytes(), &o, None).expect("scan");
        let as_of = stats.as_of.expect("as of");
        assert_eq!(got, imported(csv.as_bytes(), &o, as_of));
        assert_eq!(stats.rows_read, 400_000);
        assert_eq!(stats.orders, 400_000);
        let total: f64 = got.iter().map(|f| f.monetary_total).sum();
        assert!((stats.revenue - total).abs() < 1e-3);
    }

    /// A field as a spreadsheet writes it: quoted when it holds a delimiter, quote or line end.
    fn field(s: &str, delimiter: char) -> String {
        if s.contains([delimiter, '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    }

    /// Orders files in the shapes exports come in: with or without order ids (line items,
    /// cancellations `C…`), a status column with refunds, day-first dates, semicolons with decimal
    /// commas, CRLF, BOM, quoted fields, Windows-1252 bytes, customer ids written as floats or
    /// missing, bad dates and amounts.
    fn file_strategy() -> impl Strategy<Value = (Vec<u8>, bool)> {
        let row = (
            prop::sample::select(vec![
                "c1",
                "c2",
                "17850",
                "17850.0",
                "",
                "nan",
                "c,3",
                "c\"4",
                "M\u{fc}ller",
            ]),
            prop::option::of(prop::sample::select(vec!["A1", "A2", "C9", "B,7", "c1"])),
            (
                0u32..70,
                prop::sample::select(vec![true, true, true, false]),
            ),
            -5000i64..20000,
            prop::sample::select(vec!["", "", "paid", "refunded", "Cancelled"]),
        );
        (
            prop::collection::vec(row, 0..60),
            (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
            (any::<bool>(), any::<bool>(), any::<bool>()),
        )
            .prop_map(
                |(rows, (crlf, bom, with_id, final_newline), (day_first, semicolon, latin1))| {
                    let nl = if crlf { "\r\n" } else { "\n" };
                    let d = if semicolon { ';' } else { ',' };
                    let date = |n: u32| {
                        let (m, day) = (n / 28 % 12 + 1, n % 28 + 1);
                        if day_first {
                            format!("{day:02}.{m:02}.2024")
                        } else {
                            format!("2024-{m:02}-{day:02}")
                        }
                    };
                    let amount = |c: i64| {
                        let s = format!("{}.{:02}", c / 100, (c % 100).abs());
                        let s = if c < 0 && c > -100 {
                            format!("-{s}")
                        } else {
                            s
                        };
                        if semicolon {
                            s.replace('.', ",")
                        } else {
                            s
                        }
                    };
                    let mut out = String::new();
                    if bom {
                        out.push('\u{feff}');
                    }
                    let mut header = vec!["customer_id", "date", "amount", "status"];
                    if with_id {
                        header.insert(1, "order_id");
                    }
                    out.push_str(&header.join(&d.to_string()));
                    // At least one good row so the date format can be found.
                    let mut first = vec!["c1".to_string(), date(0), amount(100), String::new()];
                    if with_id {
                        first.insert(1, "A1".into());
                    }
                    out.push_str(nl);
                    out.push_str(&first.join(&d.to_string()));
                    for (c, id, (day, good_date), cents, status) in rows {
                        let mut f = vec![
                            field(c, d),
                            if good_date { date(day) } else { "soon".into() },
                            amount(cents),
                            status.to_string(),
                        ];
                        if with_id {
                            f.insert(1, field(id.unwrap_or(""), d));
                        }
                        out.push_str(nl);
                        out.push_str(&f.join(&d.to_string()));
                    }
                    if final_newline {
                        out.push_str(nl);
                    }
                    let bytes = if latin1 {
                        // Windows-1252: ü is one byte.
                        out.replace('\u{fc}', "\u{1}")
                            .into_bytes()
                            .into_iter()
                            .map(|b| if b == 1 { 0xFC } else { b })
                            .collect()
                    } else {
                        out.into_bytes()
                    };
                    (bytes, semicolon)
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The scan gives exactly the features of importing the file and computing them, and the
        /// import's row counts.
        #[test]
        fn scan_equals_import_then_features((bytes, decimal_comma) in file_strategy()) {
            let opts = ImportOptions { decimal_comma, ..Default::default() };
            let scanned = scan_features(Path::new("t.csv"), &bytes, &opts, None);
            let reference = parse_orders(Path::new("t.csv"), &bytes, &opts);
            match (scanned, reference) {
                (Ok((got, stats)), Ok(r)) => {
                    prop_assert_eq!(stats.rows_read, r.rows_read);
                    prop_assert_eq!(stats.rows_rejected, r.rows_rejected);
                    prop_assert_eq!(stats.rows_without_customer, r.rows_without_customer);
                    let as_of = stats.as_of.expect("a good first row");
                    prop_assert_eq!(&got, &customer_features(&r.orders, as_of));
                    let cutoff = day_of(as_of);
                    let buyers: std::collections::HashSet<&str> =
                        got.iter().map(|f| f.customer_id.as_str()).collect();
                    let orders = r
                        .orders
                        .iter()
                        .filter(|o| o.day() < cutoff && buyers.contains(o.customer_id.as_str()))
                        .count() as u64;
                    prop_assert_eq!(stats.orders, orders);
                    let revenue: f64 = got.iter().map(|f| f.monetary_total).sum();
                    prop_assert!((stats.revenue - revenue).abs() < 1e-6);
                }
                (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
                (a, b) => prop_assert!(false, "scan {:?} vs import {:?}", a.map(|s| s.1), b.map(|r| r.rows_read)),
            }
        }
    }
}
