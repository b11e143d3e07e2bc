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
const BLOCK: usize = 4 << 20;
/// Blocks parsed together (in parallel) before their rows are handed on.
const GROUP: usize = 2;

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

/// Reads `file` block by block and hands each group of rows to `sink` in file order; `sink`
/// returns false to stop early (the receiver is gone). `progress` gets the bytes read so far.
/// File-level problems (empty, binary, no columns, undetectable dates, truncated) are errors, as
/// is the first bad row under `strict`.
pub fn stream_orders(
    file: &Path,
    opts: &ImportOptions,
    progress: &(dyn Fn(u64) + Sync),
    sink: &mut dyn FnMut(OrderFeed) -> bool,
) -> Result<StreamSummary, ImportError> {
    let io = |source| ImportError::Io {
        file: file.to_path_buf(),
        source,
    };
    let mut reader = Blocks::new(File::open(file).map_err(io)?);
    let first = reader.next_block(BLOCK).map_err(io)?;
    let Some(first) = first else {
        return Err(ImportError::Empty {
            file: file.to_path_buf(),
        });
    };
    // The head decides encoding problems, the header and the date format.
    let head = text::decode(file, &first)?;
    let legacy = head.legacy_encoding;
    let header_line = text::first_line(&head.text).to_string();
    let body_start = memchr::memchr(b'\n', head.text.as_bytes()).map_or(head.text.len(), |i| i + 1);
    let lay = layout(file, &header_line, &head.text[body_start..], opts)?;
    let header_fields = lay.header_fields(&header_line);
    let mut summary = StreamSummary {
        profile: lay.profile,
        columns: lay.columns.clone(),
        delimiter: char::from(lay.delimiter),
        date_format: lay.date_format.pattern().to_string(),
        date_format_ambiguous: lay.date_format_ambiguous,
        ..Default::default()
    };
    let mut legacy_seen = legacy;

    // Blocks as text with the physical line number of their first line.
    let first_body = head.text[body_start..].to_string();
    drop(head);
    let mut pending: Vec<(String, u64)> = vec![(first_body, 2)];
    let mut next_line = 2 + memchr::memchr_iter(b'\n', pending[0].0.as_bytes()).count() as u64;
    let mut last_tail = String::new();
    let mut quotes_odd = memchr::memchr_iter(b'"', pending[0].0.as_bytes()).count() % 2 == 1;
    let mut done = false;
    while !done || !pending.is_empty() {
        while !done && pending.len() < GROUP {
            match reader.next_block(BLOCK).map_err(io)? {
                Some(bytes) => {
                    let (s, legacy_block) = text::decode_block(bytes, legacy_seen);
                    legacy_seen |= legacy_block;
                    let lines = memchr::memchr_iter(b'\n', s.as_bytes()).count() as u64;
                    quotes_odd ^= memchr::memchr_iter(b'"', s.as_bytes()).count() % 2 == 1;
                    pending.push((s, next_line));
                    next_line += lines;
                }
                None => done = true,
            }
        }
        progress(reader.read);
        if done {
            if let Some((last, _)) = pending.last() {
                last_tail = tail_of(last);
            }
        }
        let parsed: Vec<Vec<Vec<Item>>> = pending
            .par_iter()
            .map(|(block, start)| {
                text::for_each_chunk(block, lay.delimiter, *start, Vec::new, |v, line, fields| {
                    v.push(lay.item(line, fields))
                })
            })
            .collect();
        pending.clear();
        let mut feed = OrderFeed::default();
        for item in parsed.into_iter().flatten().flatten() {
            summary.rows_read += 1;
            match item {
                Item::Lines(lines) => {
                    summary.rows_imported += 1;
                    feed.lines.extend(lines.into_iter().flatten());
                }
                Item::Skip(reject, no_customer) => {
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
                Item::Continuation => summary.line_items += 1,
                Item::Skipped(why) => match summary.skipped.iter_mut().find(|(w, _)| w == why) {
                    Some((_, n)) => *n += 1,
                    None => summary.skipped.push((why.to_string(), 1)),
                },
            }
        }
        if !sink(feed) {
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
        let fields = text::split_header(&last_tail, lay.delimiter).len();
        if !last_tail.trim().is_empty() && fields < header_fields && header_fields > 1 {
            return Err(ImportError::Truncated {
                file: file.to_path_buf(),
                line: next_line,
                reason: format!(
                    "the last line has {fields} of the header's {header_fields} fields and no line end"
                ),
            });
        }
    }
    summary.notes = lay.notes(legacy_seen);
    if legacy_seen && !legacy {
        summary
            .notes
            .push("part of the file is not UTF-8; those parts were read as Windows-1252".into());
    }
    Ok(summary)
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
        let mut want = target;
        loop {
            while !self.eof && self.carry.len() < want {
                let old = self.carry.len();
                self.carry.resize(want.max(old + 64 * 1024), 0);
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
}
