//! The streaming orders reader: a file of any size read in blocks cut at record boundaries (never
//! inside a quoted field), each block parsed in parallel, the rows handed on in file order in
//! batches. Memory is a few blocks, whatever the file's size. The rules are the in-memory
//! reader's ([`super::orders`]): the same layout, the same row parsing, the same keys.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use rayon::prelude::*;

use super::orders::{layout, Item, OrderLine, Profile};
use super::text;
use super::{ImportError, ImportOptions, Reject};

/// Bytes per block: large enough to split among threads, small enough to keep memory flat.
pub(crate) const BLOCK: usize = 4 << 20;
/// Blocks parsed together (in parallel) before their rows are handed on.
const GROUP: usize = 2;
/// Bytes of the file's start that decide its layout (header, delimiter, date format).
const HEAD: usize = 1 << 20;

/// The rows of a run of records, in file order.
#[derive(Debug, Default)]
pub struct OrderFeed {
    pub lines: Vec<OrderLine>,
    /// Records skipped for a bad value or without customer, with line and reason.
    pub rejects: Vec<Reject>,
}

/// What a streamed read found, besides the rows themselves.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StreamSummary {
    pub rows_read: u64,
    pub rows_imported: u64,
    pub rows_rejected: u64,
    pub rows_without_customer: u64,
    /// Further line-item rows of a platform export's orders.
    pub line_items: u64,
    /// Orders the platform marks cancelled, voided, unpaid or test, by reason.
    pub skipped: Vec<(String, u64)>,
    pub profile: Profile,
    pub columns: Vec<(String, String)>,
    pub delimiter: char,
    pub date_format: String,
    pub date_format_ambiguous: bool,
    pub notes: Vec<String>,
}

/// Reads `file` block by block and hands the rows to `sink` a parsed chunk at a time, in file
/// order; `sink`
/// returns false to stop early (the receiver is gone). `progress` gets the bytes read so far.
/// File-level problems (empty, binary, no columns, undetectable dates, truncated) are errors, as
/// is the first bad row under `strict`.
pub fn stream_orders(
    file: &Path,
    opts: &ImportOptions,
    progress: &(dyn Fn(u64) + Sync),
    sink: &mut dyn FnMut(OrderFeed) -> bool,
) -> Result<StreamSummary, ImportError> {
    stream_orders_in_blocks(file, opts, BLOCK, progress, sink)
}

/// [`stream_orders`] with blocks of about `block` bytes (tests cut files into tiny blocks).
pub(crate) fn stream_orders_in_blocks(
    file: &Path,
    opts: &ImportOptions,
    block: usize,
    progress: &(dyn Fn(u64) + Sync),
    sink: &mut dyn FnMut(OrderFeed) -> bool,
) -> Result<StreamSummary, ImportError> {
    let head = read_head(file)?;
    let lay = layout(file, &head.header_line, &head.sample, opts)?;
    let header_fields = lay.header_fields(&head.header_line);
    let mut summary = StreamSummary {
        profile: lay.profile,
        columns: lay.columns.clone(),
        delimiter: char::from(lay.delimiter),
        date_format: lay.date_format.pattern().to_string(),
        date_format_ambiguous: lay.date_format_ambiguous,
        ..Default::default()
    };
    // The (customer, order key) of the last order row read: further line-item rows join it.
    let mut last_order: Option<(String, i64)> = None;
    let legacy_seen = stream_body(
        file,
        &Body {
            delimiter: lay.delimiter,
            header_fields,
            legacy: head.legacy,
            block,
        },
        progress,
        &|line, fields| lay.item(line, fields),
        &mut |items: Vec<Item>| {
            let mut feed = OrderFeed::default();
            for item in items {
                summary.rows_read += 1;
                if matches!(item, Item::Skipped(_)) {
                    last_order = None;
                }
                match item {
                    Item::Lines(lines) => {
                        summary.rows_imported += 1;
                        if let Some(first) = &lines[0] {
                            last_order = Some((first.customer.clone(), first.order_key));
                        }
                        feed.lines.extend(lines.into_iter().flatten());
                    }
                    Item::Skip(reject, no_customer) => {
                        last_order = None;
                        if no_customer {
                            summary.rows_without_customer += 1;
                        } else {
                            if opts.strict {
                                return Err(ImportError::Strict {
                                    file: file.to_path_buf(),
                                    reject,
                                });
                            }
                            summary.rows_rejected += 1;
                        }
                        feed.rejects.push(reject);
                    }
                    Item::Continuation(line) => {
                        summary.line_items += 1;
                        // A further row's product line belongs to the order just read; the rows
                        // of a skipped (cancelled, voided, test) order are dropped with it.
                        if let Some(l) = line {
                            if last_order
                                .as_ref()
                                .is_some_and(|(c, k)| *c == l.customer && *k == l.order_key)
                            {
                                feed.lines.push(l);
                            }
                        }
                    }
                    Item::Skipped(why) => {
                        match summary.skipped.iter_mut().find(|(w, _)| w == why) {
                            Some((_, n)) => *n += 1,
                            None => summary.skipped.push((why.to_string(), 1)),
                        }
                    }
                }
            }
            Ok(sink(feed))
        },
    )?;
    summary.notes = lay.notes(legacy_seen);
    if legacy_seen && !head.legacy {
        summary
            .notes
            .push("part of the file is not UTF-8; those parts were read as Windows-1252".into());
    }
    Ok(summary)
}

/// The start of a file, which decides its layout: the header line and a sample of whole
/// records, and whether they had to be read as Windows-1252.
pub(crate) struct Head {
    pub(crate) legacy: bool,
    pub(crate) header_line: String,
    pub(crate) sample: String,
}

/// Reads the head of `file` (encoding problems, the header, a sample for the date format).
pub(crate) fn read_head(file: &Path) -> Result<Head, ImportError> {
    let mut head = Vec::new();
    File::open(file)
        .map_err(|source| io_error(file, source))?
        .take(HEAD as u64)
        .read_to_end(&mut head)
        .map_err(|source| io_error(file, source))?;
    if head.len() >= HEAD {
        // Only whole records are a sample.
        let cut = last_boundary(&head).unwrap_or(head.len());
        head.truncate(cut);
    }
    let text = text::decode(file, &head)?;
    let header_line = text::first_line(&text.text).to_string();
    let body_start = memchr::memchr(b'\n', text.text.as_bytes()).map_or(text.text.len(), |i| i + 1);
    Ok(Head {
        legacy: text.legacy_encoding,
        sample: text.text[body_start..].to_string(),
        header_line,
    })
}

fn io_error(file: &Path, source: std::io::Error) -> ImportError {
    ImportError::Io {
        file: file.to_path_buf(),
        source,
    }
}

/// How a file's body is cut and checked.
pub(crate) struct Body {
    pub(crate) delimiter: u8,
    /// Fields of the header line (a last line without a line end must have as many).
    pub(crate) header_fields: usize,
    /// The head was read as Windows-1252.
    pub(crate) legacy: bool,
    /// Bytes per block.
    pub(crate) block: usize,
}

/// Reads the body of `file` (after its header line) in blocks cut at record boundaries, parses
/// the records of each group of blocks in parallel with `parse(line, fields)`, and hands the
/// results to `each` one parsed chunk at a time, in file order (`Ok(false)` stops early). Then checks that the file
/// ends in a complete record. Returns whether any part was read as Windows-1252.
pub(crate) fn stream_body<T: Send>(
    file: &Path,
    body: &Body,
    progress: &(dyn Fn(u64) + Sync),
    parse: &(dyn Fn(u64, &[&str]) -> T + Sync),
    each: &mut dyn FnMut(Vec<T>) -> Result<bool, ImportError>,
) -> Result<bool, ImportError> {
    let mut legacy_seen = body.legacy;
    let mut reader = Blocks::new(File::open(file).map_err(|source| io_error(file, source))?);
    let mut pending: Vec<(String, u64)> = Vec::new();
    let mut next_line = 2u64;
    let mut last_tail = String::new();
    let mut quotes_odd = false;
    let mut header_skipped = false;
    let mut done = false;
    while !done || !pending.is_empty() {
        while !done && pending.len() < GROUP {
            match reader
                .next_block(body.block)
                .map_err(|source| io_error(file, source))?
            {
                Some(mut bytes) => {
                    if !header_skipped {
                        header_skipped = true;
                        let end = memchr::memchr(b'\n', &bytes).map_or(bytes.len(), |i| i + 1);
                        bytes.drain(..end);
                    }
                    let (s, legacy_block) = text::decode_block(bytes, legacy_seen);
                    legacy_seen |= legacy_block;
                    let lines = memchr::memchr_iter(b'\n', s.as_bytes()).count() as u64;
                    quotes_odd ^= memchr::memchr_iter(b'"', s.as_bytes()).count() % 2 == 1;
                    if !s.is_empty() {
                        last_tail = tail_of(&s);
                    }
                    pending.push((s, next_line));
                    next_line += lines;
                }
                None => done = true,
            }
        }
        progress(reader.read);
        let parsed: Vec<Vec<Vec<T>>> = pending
            .par_iter()
            .map(|(block, start)| {
                text::for_each_chunk(
                    block,
                    body.delimiter,
                    *start,
                    Vec::new,
                    |v, line, fields| v.push(parse(line, fields)),
                )
            })
            .collect();
        pending.clear();
        // Each chunk's rows are handed over as they are: gathering a group's rows into one
        // vector first copied every row once more, into a fresh allocation of hundreds of MiB.
        let mut stopped = false;
        for rows in parsed.into_iter().flatten() {
            if !each(rows)? {
                stopped = true;
                break;
            }
        }
        if stopped {
            break;
        }
    }
    // The end of the file must be a complete record.
    if quotes_odd {
        return Err(ImportError::Truncated {
            file: file.to_path_buf(),
            line: next_line,
            reason: "a quoted field is never closed before the end of the file".into(),
        });
    }
    if !last_tail.is_empty() && !last_tail.ends_with('\n') {
        let fields = text::split_header(&last_tail, body.delimiter).len();
        if !last_tail.trim().is_empty() && fields < body.header_fields && body.header_fields > 1 {
            return Err(ImportError::Truncated {
                file: file.to_path_buf(),
                line: next_line,
                reason: format!(
                    "the last line has {fields} of the header's {} fields and no line end",
                    body.header_fields
                ),
            });
        }
    }
    Ok(legacy_seen)
}

/// The block's last line with its line end, or the unterminated text after its last newline.
fn tail_of(block: &str) -> String {
    if block.ends_with('\n') {
        return "\n".to_string();
    }
    let start = memchr::memrchr(b'\n', block.as_bytes()).map_or(0, |i| i + 1);
    block[start..].to_string()
}

/// Reads a file in blocks that end at a record boundary: a newline outside double quotes.
struct Blocks<R> {
    src: R,
    carry: Vec<u8>,
    eof: bool,
    /// Bytes read from the source so far.
    read: u64,
    first: bool,
}

impl<R: Read> Blocks<R> {
    fn new(src: R) -> Self {
        Self {
            src,
            carry: Vec::new(),
            eof: false,
            read: 0,
            first: true,
        }
    }

    /// The next block of about `target` bytes, or `None` at the end.
    fn next_block(&mut self, target: usize) -> std::io::Result<Option<Vec<u8>>> {
        // The first read covers a byte-order mark whatever the block size.
        let mut want = if self.first { target.max(3) } else { target };
        loop {
            while !self.eof && self.carry.len() < want {
                let old = self.carry.len();
                self.carry.resize(want, 0);
                let n = self.src.read(&mut self.carry[old..])?;
                self.carry.truncate(old + n);
                self.read += n as u64;
                if n == 0 {
                    self.eof = true;
                }
            }
            if self.first {
                self.first = false;
                if self.carry.starts_with(b"\xEF\xBB\xBF") {
                    self.carry.drain(..3);
                    // Read on: the mark is no block.
                    continue;
                }
            }
            if self.carry.is_empty() {
                return Ok(None);
            }
            let cut = if self.eof {
                Some(self.carry.len())
            } else {
                last_boundary(&self.carry)
            };
            match cut {
                Some(cut) => {
                    let rest = self.carry.split_off(cut);
                    let block = std::mem::replace(&mut self.carry, rest);
                    return Ok(Some(block));
                }
                // A record longer than the block (a huge quoted field): read on.
                None if want < 1 << 30 => want *= 2,
                None => {
                    // Unbalanced quotes all the way: cut at the last newline and let the
                    // record parser report what it finds.
                    let cut =
                        memchr::memrchr(b'\n', &self.carry).map_or(self.carry.len(), |i| i + 1);
                    let rest = self.carry.split_off(cut);
                    return Ok(Some(std::mem::replace(&mut self.carry, rest)));
                }
            }
        }
    }
}

/// The position just after the last newline outside double quotes (the buffer starts outside
/// quotes), or `None` when there is none.
fn last_boundary(buf: &[u8]) -> Option<usize> {
    let mut quoted = false;
    let mut last = None;
    for i in memchr::memchr2_iter(b'"', b'\n', buf) {
        if buf[i] == b'"' {
            quoted = !quoted;
        } else if !quoted {
            last = Some(i + 1);
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_end_outside_quotes() {
        let data = b"a,b\n1,\"x\ny\"\n2,z\n3,\"q\"\n".repeat(50);
        for target in [1, 3, 7, 16, 64, 1000] {
            let mut r = Blocks::new(&data[..]);
            let mut all = Vec::new();
            while let Some(b) = r.next_block(target).expect("read") {
                let quotes = b.iter().filter(|c| **c == b'"').count();
                assert_eq!(quotes % 2, 0, "block cut inside quotes at target {target}");
                all.extend_from_slice(&b);
            }
            assert_eq!(all, data, "blocks put back together are the file");
        }
    }

    #[test]
    fn bom_is_dropped_once() {
        let data = b"\xEF\xBB\xBFa,b\n1,2\n";
        let mut r = Blocks::new(&data[..]);
        let b = r.next_block(4).expect("read").expect("block");
        assert!(b.starts_with(b"a,b"));
    }

    use super::super::orders::{parse_orders, Collapse};
    use proptest::prelude::*;

    /// Streams `bytes` (written to a file) in blocks of `block` bytes: the lines, the rejects and
    /// the summary.
    fn streamed(
        path: &Path,
        opts: &ImportOptions,
        block: usize,
    ) -> Result<(Vec<OrderLine>, Vec<Reject>, StreamSummary), ImportError> {
        let mut lines = Vec::new();
        let mut rejects = Vec::new();
        let summary = stream_orders_in_blocks(path, opts, block, &|_| {}, &mut |f| {
            lines.extend(f.lines);
            rejects.extend(f.rejects);
            true
        })?;
        Ok((lines, rejects, summary))
    }

    /// A CSV field as a spreadsheet writes it: quoted when it has a delimiter, quote or line end.
    fn field(s: &str) -> String {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    }

    fn file_strategy() -> impl Strategy<Value = (Vec<u8>, bool)> {
        let row = (
            prop::sample::select(vec!["c1", "c2", "c,3", "", "c\"4"]),
            prop::option::of(prop::sample::select(vec!["A1", "A2", "C9", "B,7"])),
            prop::sample::select(vec![
                "2024-01-02",
                "2024-02-29",
                "2023-12-31",
                "yesterday",
                "",
            ]),
            (-5000i64..20000).prop_map(|c| format!("{}.{:02}", c / 100, (c % 100).abs())),
            "[a-z ,\"\n]{0,12}",
        );
        (
            prop::collection::vec(row, 0..60),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(rows, crlf, bom, with_id, final_newline)| {
                let nl = if crlf { "\r\n" } else { "\n" };
                let mut out = String::new();
                if bom {
                    out.push('\u{feff}');
                }
                out.push_str(if with_id {
                    "customer_id,order_id,date,amount,note"
                } else {
                    "customer_id,date,amount,note"
                });
                // At least one good row so the date format can be found.
                out.push_str(nl);
                out.push_str(if with_id {
                    "c1,A1,2024-01-01,1.00,x"
                } else {
                    "c1,2024-01-01,1.00,x"
                });
                for (c, id, date, amount, note) in rows {
                    out.push_str(nl);
                    out.push_str(&field(c));
                    if with_id {
                        out.push(',');
                        out.push_str(&field(id.unwrap_or("")));
                    }
                    out.push(',');
                    out.push_str(date);
                    out.push(',');
                    out.push_str(&amount);
                    out.push(',');
                    out.push_str(&field(&note));
                }
                if final_newline {
                    out.push_str(nl);
                }
                (out.into_bytes(), with_id)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The streamed import equals the in-memory reference, whatever the block size: blocks
        /// end inside quoted fields, CRLF, BOM, line items, identical rows, bad rows.
        #[test]
        fn streaming_equals_the_in_memory_reader((bytes, _) in file_strategy(), block in 1usize..200) {
            let opts = ImportOptions::default();
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("o.csv");
            std::fs::write(&path, &bytes).expect("write");
            let reference = parse_orders(&path, &bytes, &opts);
            let got = streamed(&path, &opts, block);
            match (reference, got) {
                (Ok(r), Ok((lines, rejects, summary))) => {
                    let mut c = Collapse::default();
                    for l in &lines {
                        c.push(l);
                    }
                    prop_assert_eq!(c.finish(), r.orders);
                    prop_assert_eq!(rejects, r.rejects);
                    prop_assert_eq!(summary.rows_read, r.rows_read);
                    prop_assert_eq!(summary.rows_imported, r.rows_imported);
                    prop_assert_eq!(summary.rows_rejected, r.rows_rejected);
                    prop_assert_eq!(summary.rows_without_customer, r.rows_without_customer);
                }
                (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
                (a, b) => prop_assert!(false, "reference {:?} vs streamed {:?}", a.map(|r| r.rows_read), b.map(|s| s.2.rows_read)),
            }
        }
    }
}
