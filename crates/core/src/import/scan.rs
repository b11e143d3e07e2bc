//! Reading an orders file straight into per-customer features ([`scan_file`] behind
//! `retain rfm FILE`, [`scan_features`] on bytes in memory): the same records and rules as the
//! import, folded customer by customer without materialising orders.
//!
//! The pass is built for exports of tens of millions of rows:
//! 1. the body is cut at line ends into pieces read in parallel. A UTF-8 file without quotes is
//!    read by each piece's thread in blocks from the file (never whole), and a generic one
//!    (no platform profile) only in the fields the order rules read: each record goes through
//!    [`Layout::generic_order`], the rules [`Layout::parse_with`] applies to every generic record
//!    of the import, without the import's per-record row and product line. Any other file is
//!    read whole, decoded, and parsed by [`Layout::parse_with`]. Each record's customer id is
//!    hashed and the record (id bytes, day, amount, flags — 16 bytes plus the id) goes to one of
//!    [`PARTS`] partitions chosen by that hash, so every customer's records land in one
//!    partition;
//! 2. partitions are folded in parallel (buffers reused by each thread), each with a small hash
//!    map of its own customers (cache-resident), records bucketed by customer in file order,
//!    then each customer's orders folded by [`features_from`] into a [`CustomerHistory`] and
//!    [`features_of`] (with order ids, line items first collapse into orders, [`fold_customer`]);
//! 3. the features are put in customer id order ([`crate::by_id::order_by_id`]) and moved once
//!    into that order.

use std::hash::{Hash as _, Hasher as _};
use std::path::Path;

use chrono::{NaiveDate, NaiveDateTime};
use rayon::prelude::*;
use rustc_hash::{FxHashMap as HashMap, FxHasher};
use serde::Serialize;

use super::orders::{decode_orders, layout, Layout, NotOrder, Parsed, Profile};
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
    Ok(fold_chunks(chunks, keyed, as_of))
}

/// Size of the blocks a file is read in by [`scan_file`].
const BLOCK: usize = 512 << 10;

/// [`scan_features`] of the file at `file`, with the same results: a UTF-8 file without quotes
/// is read in blocks by each piece's thread and never held whole (its records are read while the
/// block is in cache); any other file is read whole, and released before the fold.
pub fn scan_file(
    file: &Path,
    opts: &ImportOptions,
    as_of: Option<NaiveDate>,
) -> Result<(Vec<CustomerFeatures>, ScanStats), ImportError> {
    scan_file_in(file, opts, as_of, BLOCK)
}

/// [`scan_file`] with blocks of `block` bytes.
fn scan_file_in(
    file: &Path,
    opts: &ImportOptions,
    as_of: Option<NaiveDate>,
    block: usize,
) -> Result<(Vec<CustomerFeatures>, ScanStats), ImportError> {
    let (chunks, keyed) = match stream_chunks(file, opts, block)? {
        Some(read) => read,
        None => {
            let bytes = super::read_file(file)?;
            read_chunks(file, &bytes, opts)?
        }
    };
    Ok(fold_chunks(chunks, keyed, as_of))
}

/// The chunks of a UTF-8 file without quotes read in blocks ([`text::read_plain_piece`]), cut
/// into the pieces [`read_chunks`] cuts its bytes into and read with the same layout (the first
/// piece is the sample); `None` for a file [`read_chunks`] reads otherwise, found before or while
/// reading (then read whole). A record's line number is then unique in the file but not its
/// physical line: it serves as the order key of a line without an order id.
#[cfg(unix)]
fn stream_chunks(
    file: &Path,
    opts: &ImportOptions,
    block: usize,
) -> Result<Option<(Vec<Chunk>, bool)>, ImportError> {
    use std::os::unix::fs::FileExt;
    let io = |source| ImportError::Io {
        file: file.to_path_buf(),
        source,
    };
    let f = std::fs::File::open(file).map_err(io)?;
    let meta = f.metadata().map_err(io)?;
    // A pipe or device has no length to cut at: read whole.
    if !meta.is_file() {
        return Ok(None);
    }
    let len = meta.len();
    let mut head = vec![0u8; usize::try_from(len.min(text::TEXT_CHECK_BYTES as u64)).unwrap_or(0)];
    f.read_exact_at(&mut head, 0).map_err(io)?;
    let raw = text::strip_bom(&head);
    let bom = (head.len() - raw.len()) as u64;
    // The head decides the text check unless it is blank and the file goes on.
    if (head.len() as u64) < len && raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    text::check_text(file, raw)?;
    let Some(header_end) = memchr::memchr(b'\n', raw) else {
        return Ok(None);
    };
    let Ok(head_text) = std::str::from_utf8(&raw[..=header_end]) else {
        return Ok(None);
    };
    let header_line = text::first_line(head_text);
    let body_start = bom + header_end as u64 + 1;
    if body_start >= len {
        return Ok(None);
    }
    let cuts = text::cut_file_at_lines(&f, body_start, len).map_err(io)?;
    let Some(&(first_start, first_end)) = cuts.first() else {
        return Ok(None);
    };
    let mut first = vec![0u8; usize::try_from(first_end - first_start).unwrap_or(0)];
    f.read_exact_at(&mut first, first_start).map_err(io)?;
    if memchr::memchr(b'"', &first).is_some() {
        return Ok(None);
    }
    let Ok(sample) = std::str::from_utf8(&first) else {
        return Ok(None);
    };
    // A file whose layout fails is read whole: that path reports the error.
    let Ok(lay) = layout(file, header_line, sample, opts) else {
        return Ok(None);
    };
    let keyed = lay.order_id.is_some();
    let generic = lay.profile == Profile::Generic;
    let keep = if generic {
        lay.order_columns().max().map_or(1, |i| i + 1)
    } else {
        usize::MAX
    };
    // Records per byte in the sample, to size each piece's partitions.
    let sample_lines = memchr::memchr_iter(b'\n', sample.as_bytes()).count() as u64;
    let per_byte =
        |bytes: u64| bytes.saturating_mul(sample_lines + 1) / (sample.len() as u64).max(1);
    let read: Vec<Result<Option<(Chunk, text::PlainPiece)>, std::io::Error>> = cuts
        .par_iter()
        .enumerate()
        .map(|(i, &(start, end))| {
            let mut acc = new_chunk(per_byte(end - start) + 1);
            // Line numbers unique in the file: the piece's number in the high bits.
            let first_line = (i as u64) << 40;
            let mut visit = |line: u64, fields: &[&str]| {
                if generic {
                    read_order(&lay, keyed, &mut acc, line, fields);
                } else {
                    read_record(&lay, keyed, &mut acc, line, fields);
                }
            };
            let piece = if i == 0 {
                let lines = text::visit_plain(sample, lay.delimiter, first_line, keep, &mut visit);
                let rest =
                    memchr::memrchr(b'\n', sample.as_bytes()).map_or(sample, |i| &sample[i + 1..]);
                Some(text::PlainPiece {
                    lines,
                    rest: rest.to_string(),
                })
            } else {
                text::read_plain_piece(
                    &f,
                    (start, end),
                    block,
                    lay.delimiter,
                    (first_line, keep),
                    &mut visit,
                )?
            };
            Ok(piece.map(|p| (acc, p)))
        })
        .collect();
    drop(first);
    let mut chunks = Vec::with_capacity(read.len());
    let mut lines = 0u64;
    let mut last = None;
    for r in read {
        let Some((chunk, piece)) = r.map_err(io)? else {
            return Ok(None);
        };
        chunks.push(chunk);
        lines += piece.lines;
        last = Some(piece);
    }
    if let Some(last) = last {
        // The body's end as the truncation check reads it: its last line and the line end
        // before it, if any.
        let tail = if last.lines > 0 {
            format!("\n{}", last.rest)
        } else {
            last.rest
        };
        text::check_truncation_tail(
            file,
            &tail,
            2 + lines,
            lay.delimiter,
            lay.header_fields(header_line),
        )?;
    }
    Ok(Some((chunks, keyed)))
}

/// Without positional reads the file is read whole.
#[cfg(not(unix))]
fn stream_chunks(
    _file: &Path,
    _opts: &ImportOptions,
    _block: usize,
) -> Result<Option<(Vec<Chunk>, bool)>, ImportError> {
    Ok(None)
}

/// Folds the chunks' partitions into features sorted by customer id, with the shop's counts.
fn fold_chunks(
    chunks: Vec<Chunk>,
    keyed: bool,
    as_of: Option<NaiveDate>,
) -> (Vec<CustomerFeatures>, ScanStats) {
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
        return (Vec::new(), stats);
    };
    let cutoff = day_of(as_of_date);
    let folded: Vec<(Vec<CustomerFeatures>, u64)> = by_part
        .into_par_iter()
        .map_init(FoldBufs::default, |bufs, pieces| {
            fold_partition(pieces, keyed, (cutoff, as_of_date), bufs)
        })
        .collect();
    let mut parts = Vec::with_capacity(folded.len());
    for (f, orders) in folded {
        stats.orders += orders;
        parts.push(f);
    }
    let features = sort_by_id(parts);
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
    (features, stats)
}

/// A chunk with one empty partition per customer hash, sized for about `lines` records.
fn new_chunk(lines: u64) -> Chunk {
    // A little over the mean: the customer hash spreads records evenly over the partitions.
    let per_part = usize::try_from(lines / PARTS as u64)
        .unwrap_or(0)
        .saturating_mul(9)
        / 8;
    Chunk {
        parts: (0..PARTS)
            .map(|_| Bin {
                recs: Vec::with_capacity(per_part),
                ids: String::new(),
                keys: Vec::new(),
            })
            .collect(),
        dates: DateCache::default(),
        rows: 0,
        rejected: 0,
        without_customer: 0,
        max_day: Day::MIN,
    }
}

/// Reads the body's records into chunks (in file order), in parallel; with whether the file has an
/// order id column. A UTF-8 file without quotes is read in place, piece by piece (no decoded
/// copy, no sequential pass); a generic one (no platform profile) only in the columns the order
/// rules read ([`Layout::generic_order`]), the rest of each line skipped. Any other file goes
/// through [`text::decode`] and [`Layout::parse_with`].
fn read_chunks(
    file: &Path,
    bytes: &[u8],
    opts: &ImportOptions,
) -> Result<(Vec<Chunk>, bool), ImportError> {
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
        let init = |p: &text::Piece<'_>| new_chunk(p.lines + 1);
        let chunks = if lay.profile == Profile::Generic {
            // Only the leading fields up to the last column the rules read are split.
            let keep = lay.order_columns().max().map_or(1, |i| i + 1);
            text::for_each_piece_upto(&pieces, lay.delimiter, keep, init, |acc, line, fields| {
                read_order(&lay, keyed, acc, line, fields)
            })
        } else {
            text::for_each_piece(&pieces, lay.delimiter, init, |acc, line, fields| {
                read_record(&lay, keyed, acc, line, fields)
            })
        };
        return Ok((chunks, keyed));
    }
    let decoded = decode_orders(file, bytes, opts)?;
    let lay = &decoded.lay;
    let keyed = lay.order_id.is_some();
    let chunks = text::for_each_chunk(
        decoded.body(),
        lay.delimiter,
        2,
        || new_chunk(0),
        |acc, line, fields| read_record(lay, keyed, acc, line, fields),
    );
    Ok((chunks, keyed))
}

/// Reads one record of a generic file through the order rules alone ([`Layout::generic_order`]:
/// no product line, no per-record [`super::orders::Row`]) into its chunk's partition.
fn read_order(lay: &Layout, keyed: bool, acc: &mut Chunk, line: u64, fields: &[&str]) {
    acc.rows += 1;
    match lay.generic_order(fields, &mut acc.dates) {
        Ok((o, cancelled)) => push(
            acc,
            keyed,
            line,
            &o.customer,
            o.at,
            o.amount,
            cancelled,
            o.order_id,
        ),
        Err(NotOrder::NoCustomer) => acc.without_customer += 1,
        Err(NotOrder::Reject(..)) => acc.rejected += 1,
    }
}

/// Reads one record into its chunk's partition.
fn read_record(lay: &Layout, keyed: bool, acc: &mut Chunk, line: u64, fields: &[&str]) {
    acc.rows += 1;
    match lay.parse_with(fields, &mut acc.dates) {
        Parsed::Row(r) => push(
            acc,
            keyed,
            line,
            &r.customer,
            r.at,
            r.amount,
            r.cancelled,
            r.order_id,
        ),
        Parsed::NoCustomer => acc.without_customer += 1,
        Parsed::Reject(..) => acc.rejected += 1,
        Parsed::LineItem(_) | Parsed::Skipped(_) => {}
    }
}

/// Adds one read order line to its chunk's partition (by a hash of its customer id), or counts
/// it rejected when its amount does not fit minor units (the import's rule).
#[allow(clippy::too_many_arguments)]
#[inline]
fn push(
    acc: &mut Chunk,
    keyed: bool,
    line: u64,
    id: &str,
    at: NaiveDateTime,
    amount: f64,
    cancelled: bool,
    order_id: Option<&str>,
) {
    let (Some(amount), Ok(len)) = (to_minor(amount), u32::try_from(id.len())) else {
        acc.rejected += 1;
        return;
    };
    if len >= CANCELLED {
        acc.rejected += 1;
        return;
    }
    let day = day_of(at.date());
    acc.max_day = acc.max_day.max(day);
    // Bits the partition maps do not use for their buckets (low) or tags (high).
    let part = &mut acc.parts[(fx_hash(id) >> 32) as usize % PARTS];
    part.ids.push_str(id);
    part.recs.push(Rec {
        id_len: len | if cancelled { CANCELLED } else { 0 },
        day,
        amount,
    });
    if keyed {
        part.keys.push(match order_id {
            Some(o) => fx_hash(o),
            None => line,
        });
    }
}

/// Buffers one thread reuses from one partition to the next (the partitions are alike in size:
/// allocated once, they stay in cache and cost no new pages).
#[derive(Default)]
struct FoldBufs {
    /// Customer number by the hash of the customer id.
    by_hash: HashMap<u64, u32>,
    /// Each record's customer number.
    cust: Vec<u32>,
    /// Where each customer's records start in `recs` or `lines`, and where the next goes.
    offsets: Vec<usize>,
    fill: Vec<usize>,
    recs: Vec<Rec>,
    lines: Vec<Line>,
    scratch: Scratch,
}

/// The customer ids of a piece's records, in record order.
fn record_ids(piece: &Bin) -> impl Iterator<Item = &str> + '_ {
    let mut at = 0usize;
    piece.recs.iter().map(move |r| {
        let len = (r.id_len & !CANCELLED) as usize;
        let id = piece.ids.get(at..at + len).unwrap_or("");
        at += len;
        id
    })
}

/// Numbers the customers of a partition's records in order of first appearance (`names`) and
/// gives each record its customer's number (`cust`), by the 64-bit hash of the id; `false` when
/// two ids share a hash (then nothing is to be used).
fn number_by_hash<'a>(
    pieces: &'a [Bin],
    by_hash: &mut HashMap<u64, u32>,
    names: &mut Vec<&'a str>,
    cust: &mut Vec<u32>,
) -> bool {
    for piece in pieces {
        for id in record_ids(piece) {
            let next = names.len() as u32;
            let c = *by_hash.entry(fx_hash(id)).or_insert(next);
            if c == next {
                names.push(id);
            } else if !names.get(c as usize).is_some_and(|n| same_id(n, id)) {
                return false;
            }
            cust.push(c);
        }
    }
    true
}

/// `a == b`, for short ids without a call to `memcmp`: ids of up to 8 bytes compare as one
/// word.
#[inline]
fn same_id(a: &str, b: &str) -> bool {
    let word = |s: &str| {
        let mut w = [0u8; 8];
        w[..s.len()].copy_from_slice(s.as_bytes());
        u64::from_ne_bytes(w)
    };
    a.len() == b.len()
        && if a.len() <= 8 {
            word(a) == word(b)
        } else {
            a == b
        }
}

/// [`number_by_hash`] by the ids themselves.
fn number_by_id<'a>(pieces: &'a [Bin], names: &mut Vec<&'a str>, cust: &mut Vec<u32>) {
    let mut index: HashMap<&str, u32> = HashMap::default();
    for piece in pieces {
        for id in record_ids(piece) {
            let next = names.len() as u32;
            let c = *index.entry(id).or_insert_with(|| {
                names.push(id);
                next
            });
            cust.push(c);
        }
    }
}

/// Folds one partition (its pieces in file order) into features: (features, orders).
fn fold_partition(
    pieces: Vec<Bin>,
    keyed: bool,
    (cutoff, as_of): (Day, NaiveDate),
    bufs: &mut FoldBufs,
) -> (Vec<CustomerFeatures>, u64) {
    let FoldBufs {
        by_hash,
        cust,
        offsets,
        fill,
        recs,
        lines,
        scratch,
    } = bufs;
    let n: usize = pieces.iter().map(|p| p.recs.len()).sum();
    // Customer numbers in order of first appearance, and each record's.
    let mut names: Vec<&str> = Vec::new();
    by_hash.clear();
    cust.clear();
    if !number_by_hash(&pieces, by_hash, &mut names, cust) {
        names.clear();
        cust.clear();
        number_by_id(&pieces, &mut names, cust);
    }
    // Bucket the records by customer (a counting sort: file order kept within a customer).
    offsets.clear();
    offsets.resize(names.len() + 1, 0);
    for &c in cust.iter() {
        offsets[c as usize + 1] += 1;
    }
    for i in 1..offsets.len() {
        offsets[i] += offsets[i - 1];
    }
    fill.clear();
    fill.extend_from_slice(offsets);
    let mut orders_total = 0u64;
    let mut out = Vec::with_capacity(names.len());
    let mut cust = cust.iter();
    if keyed {
        lines.clear();
        lines.resize(n, Line::default());
        let mut seq = 0u64;
        for piece in &pieces {
            for (i, r) in piece.recs.iter().enumerate() {
                let Some(&c) = cust.next() else { break };
                let slot = &mut fill[c as usize];
                lines[*slot] = Line {
                    seq,
                    // A line without an order id is an order of its own.
                    key: piece.keys.get(i).copied().unwrap_or(seq),
                    day: r.day,
                    amount: r.amount,
                    cancelled: r.id_len & CANCELLED != 0,
                };
                *slot += 1;
                seq += 1;
            }
        }
        for (c, id) in names.iter().enumerate() {
            let mine = &lines[offsets[c]..offsets[c + 1]];
            if let Some((f, n)) = fold_customer(id, mine, cutoff, as_of, scratch) {
                orders_total += n;
                out.push(f);
            }
        }
    } else {
        // Without order ids every line is an order of its own: the records are the orders.
        recs.clear();
        recs.resize(
            n,
            Rec {
                id_len: 0,
                day: 0,
                amount: 0,
            },
        );
        for piece in &pieces {
            for r in &piece.recs {
                let Some(&c) = cust.next() else { break };
                let slot = &mut fill[c as usize];
                recs[*slot] = *r;
                *slot += 1;
            }
        }
        for (c, id) in names.iter().enumerate() {
            let mine = recs[offsets[c]..offsets[c + 1]]
                .iter()
                .map(|r| (r.day, r.amount, r.id_len & CANCELLED != 0));
            if let Some((f, n)) = features_from(id, mine, cutoff, as_of, &mut scratch.days) {
                orders_total += n;
                out.push(f);
            }
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

/// One customer's lines (in file order) of a file with order ids as features, with the number
/// of orders — what importing the lines and then computing features gives: line items of one
/// order (same key) add up into the order (its first day, net amount, cancelled when any line
/// is), then [`features_from`] the orders in the order they first appear.
fn fold_customer(
    id: &str,
    lines: &[Line],
    cutoff: Day,
    as_of: NaiveDate,
    scratch: &mut Scratch,
) -> Option<(CustomerFeatures, u64)> {
    let Scratch { kept, orders, days } = scratch;
    orders.clear();
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
                orders.push(ScanOrder {
                    seq: l.seq,
                    day: l.day,
                    amount: l.amount,
                    cancelled: l.cancelled,
                });
                last_key = Some(l.key);
            }
        }
    }
    orders.sort_unstable_by_key(|o| o.seq);
    let mine = orders.iter().map(|o| (o.day, o.amount, o.cancelled));
    features_from(id, mine, cutoff, as_of, days)
}

/// One customer's orders (day, net amount in minor units, cancelled; in the order they first
/// appear in the file) as features, with the number of orders before `cutoff`: orders on or
/// after `cutoff` are dropped, each order is a purchase or a return by [`is_return`], and
/// same-day purchases fold into one purchase day. `None` when no purchase is left. `days` is a
/// buffer reused from one customer to the next.
fn features_from(
    id: &str,
    orders: impl Iterator<Item = (Day, Minor, bool)>,
    cutoff: Day,
    as_of: NaiveDate,
    days: &mut Vec<(Day, f64)>,
) -> Option<(CustomerFeatures, u64)> {
    let mut purchase_days = std::mem::take(days);
    purchase_days.clear();
    let mut returns_total = 0.0;
    let mut purchases = 0u32;
    let mut n = 0u64;
    for (day, minor, cancelled) in orders {
        if day >= cutoff {
            continue;
        }
        n += 1;
        let amount = from_minor(minor);
        if is_return(minor, cancelled) {
            returns_total -= amount.abs();
        } else {
            purchases += 1;
            purchase_days.push((day, amount));
        }
    }
    let h = CustomerHistory {
        // The id is set on the features below: no copy is made for the history.
        customer_id: String::new(),
        purchase_days: fold_days(purchase_days),
        purchases,
        returns_total,
    };
    let f = features_of(&h, as_of);
    *days = h.purchase_days;
    let mut f = f?;
    f.customer_id = id.to_string();
    Some((f, n))
}

/// The partitions' features in one list sorted by customer id (byte order, by
/// [`crate::by_id::order_by_id`]); each feature is moved once, from its partition to its place.
fn sort_by_id(mut parts: Vec<Vec<CustomerFeatures>>) -> Vec<CustomerFeatures> {
    // (partition, index in the partition) of every feature.
    let at: Vec<(u32, u32)> = parts
        .iter()
        .enumerate()
        .flat_map(|(p, fs)| (0..fs.len()).map(move |i| (p as u32, i as u32)))
        .collect();
    let order = crate::by_id::order_by_id(at.len(), |k| {
        let (p, i) = at[k];
        parts
            .get(p as usize)
            .and_then(|fs| fs.get(i as usize))
            .map_or("", |f| f.customer_id.as_str())
    });
    // What is left behind in a partition: no allocation.
    let moved = || CustomerFeatures {
        customer_id: String::new(),
        first_order: NaiveDate::MIN,
        last_order: NaiveDate::MIN,
        recency_days: 0,
        frequency: 0,
        repeat_purchases: 0,
        monetary_total: 0.0,
        avg_order_value: 0.0,
        tenure_days: 0,
    };
    order
        .into_iter()
        .filter_map(|k| {
            let (p, i) = at[k];
            let f = parts.get_mut(p as usize)?.get_mut(i as usize)?;
            Some(std::mem::replace(f, moved()))
        })
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
        // The file read in pieces and blocks gives the same.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.csv");
        std::fs::write(&path, &csv).expect("write");
        let streamed = scan_file(&path, &o, None).expect("scan file");
        assert_eq!(streamed, (got, stats));
        // So it does with order ids (pairs of lines share one: line items of one order when the
        // customer is the same), and with a quote in the last piece (then the file is read whole
        // and by the csv reader).
        let keyed: String = csv
            .lines()
            .enumerate()
            .map(|(i, l)| match i {
                0 => format!("order_id,{l}\n"),
                _ => format!("o{},{l}\n", i / 2),
            })
            .collect();
        let quoted = format!("{keyed}\"o0\",cust1,2024-01-02,1.00\n");
        for text in [keyed, quoted] {
            std::fs::write(&path, &text).expect("write");
            let bytes = scan_features(&path, text.as_bytes(), &o, None).expect("scan");
            assert!(bytes.1.orders < bytes.1.rows_read);
            assert_eq!(scan_file(&path, &o, None).expect("scan file"), bytes);
        }
    }

    #[test]
    fn plain_files_are_read_in_blocks_and_others_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.csv");
        let o = ImportOptions::default();
        let head = "customer_id,date,amount,country\n";
        for (body, in_blocks) in [
            ("c1,2024-01-01,5,DE\nc2,2024-01-02,7\n", true),
            ("c1,2024-01-01,5,\"D,E\"\n", false),
            ("c1,2024-01-01,5,M\u{fc}ller\n", true),
        ] {
            std::fs::write(&path, format!("{head}{body}")).expect("write");
            let read = stream_chunks(&path, &o, 4).expect("reads");
            assert_eq!(read.is_some(), in_blocks, "{body}");
        }
        // Windows-1252.
        std::fs::write(&path, b"customer_id,date,amount\nM\xFCller,2024-01-01,5\n").expect("write");
        assert!(stream_chunks(&path, &o, 4).expect("reads").is_none());
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
    /// missing, bad dates and amounts; half of them without quotes (read by the column-projected
    /// reader), some with a quantity column (negative quantities are returns) or further columns
    /// after the ones the rules read.
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
            (
                prop::sample::select(vec!["1", "2", "-1", "", "x"]),
                prop::sample::select(vec!["DE", "", " FR ", "n/a"]),
            ),
        );
        (
            prop::collection::vec(row, 0..60),
            (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
            (any::<bool>(), any::<bool>(), any::<bool>()),
            (any::<bool>(), any::<bool>(), any::<bool>()),
        )
            .prop_map(
                |(
                    rows,
                    (crlf, bom, with_id, final_newline),
                    (day_first, semicolon, latin1),
                    (unquoted, with_quantity, with_extra),
                )| {
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
                    // Without quotes: values that would need them lose their delimiter or quote.
                    let text = |s: &str| {
                        if unquoted {
                            field(&s.replace([',', ';', '"'], ""), d)
                        } else {
                            field(s, d)
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
                    if with_quantity {
                        header.push("quantity");
                    }
                    if with_extra {
                        header.push("country");
                    }
                    out.push_str(&header.join(&d.to_string()));
                    // At least one good row so the date format can be found.
                    let mut first = vec!["c1".to_string(), date(0), amount(100), String::new()];
                    if with_id {
                        first.insert(1, "A1".into());
                    }
                    if with_quantity {
                        first.push("1".into());
                    }
                    if with_extra {
                        first.push("DE".into());
                    }
                    out.push_str(nl);
                    out.push_str(&first.join(&d.to_string()));
                    for (c, id, (day, good_date), cents, status, (quantity, extra)) in rows {
                        let mut f = vec![
                            text(c),
                            if good_date { date(day) } else { "soon".into() },
                            amount(cents),
                            status.to_string(),
                        ];
                        if with_id {
                            f.insert(1, text(id.unwrap_or("")));
                        }
                        if with_quantity {
                            f.push(quantity.to_string());
                        }
                        if with_extra {
                            f.push(extra.to_string());
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
        fn scan_equals_import_then_features(
            (bytes, decimal_comma) in file_strategy(),
            block in 1usize..48,
        ) {
            let opts = ImportOptions { decimal_comma, ..Default::default() };
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("t.csv");
            std::fs::write(&path, &bytes).expect("write");
            let scanned = scan_features(&path, &bytes, &opts, None);
            // The file read in blocks (small ones here: lines span blocks) gives the same.
            let streamed = scan_file_in(&path, &opts, None, block);
            match (&scanned, &streamed) {
                (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
                (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
                (a, b) => prop_assert!(false, "bytes {:?} vs file {:?}", a.as_ref().map(|s| &s.1), b.as_ref().map(|s| &s.1)),
            }
            let reference = parse_orders(&path, &bytes, &opts);
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
