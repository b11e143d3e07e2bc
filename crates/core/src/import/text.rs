//! From file bytes to records: encoding (UTF-8 with or without BOM, else Windows-1252), binary
//! detection, delimiter sniffing, truncation checks, and record iteration in parallel chunks.
//!
//! Files without any quote character are split on newlines directly (zero-copy, parallel);
//! files with quotes go through the `csv` crate so quoted delimiters and newlines are honoured.

use std::borrow::Cow;
use std::path::Path;

use rayon::prelude::*;

use super::ImportError;

/// Windows-1252 code points for bytes 0x80–0x9F (the rest of the range is Latin-1).
const CP1252: [char; 32] = [
    '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž', '\u{8f}',
    '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}', 'ž', 'Ÿ',
];

/// The decoded text of a file and what was noticed on the way.
#[derive(Debug)]
pub struct Text<'a> {
    pub text: Cow<'a, str>,
    /// Set when the file was not UTF-8 and was read as Windows-1252.
    pub legacy_encoding: bool,
}

/// Decodes a file's bytes, rejecting binary content.
pub fn decode<'a>(file: &Path, bytes: &'a [u8]) -> Result<Text<'a>, ImportError> {
    let bytes = strip_bom(bytes);
    check_text(file, bytes)?;
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(Text {
            text: Cow::Borrowed(s),
            legacy_encoding: false,
        }),
        Err(_) => Ok(Text {
            text: Cow::Owned(cp1252(bytes)),
            legacy_encoding: true,
        }),
    }
}

/// The bytes without a leading UTF-8 byte order mark.
pub fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

/// Rejects what is not a text file: blank, or NUL bytes or many control characters in the first
/// 64 KiB. `bytes` is the file without its byte order mark.
pub fn check_text(file: &Path, bytes: &[u8]) -> Result<(), ImportError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ImportError::Empty {
            file: file.to_path_buf(),
        });
    }
    let head = &bytes[..bytes.len().min(64 * 1024)];
    if head.contains(&0) {
        return Err(ImportError::NotCsv {
            file: file.to_path_buf(),
            reason: "it contains binary data (NUL bytes); expected text with a header line".into(),
        });
    }
    let controls = head
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t'))
        .count();
    if controls * 100 > head.len().max(1) {
        return Err(ImportError::NotCsv {
            file: file.to_path_buf(),
            reason: "it contains binary control characters; expected text with a header line"
                .into(),
        });
    }
    Ok(())
}

/// A piece of a UTF-8 body that ends at a line end (or the body's end).
#[derive(Debug, Clone, Copy)]
pub struct Piece<'a> {
    pub text: &'a str,
    /// Physical line number of the piece's first line.
    pub first_line: u64,
    /// Line ends in the piece.
    pub lines: u64,
    /// Double quotes in the piece.
    pub quotes: usize,
}

/// Cuts `body` at line ends into pieces — a few per thread, at least 4 MiB each — and checks in
/// parallel that each is UTF-8 (so the whole is), counting lines and quotes on the way. `None`
/// when the body is not UTF-8. `first_line` is the physical line number of the body's first line.
pub fn utf8_pieces(body: &[u8], first_line: u64) -> Option<Vec<Piece<'_>>> {
    let counted: Vec<(&str, u64, usize)> = cut_at_lines(body)
        .into_par_iter()
        .map(|(start, end)| {
            let b = &body[start..end];
            let text = std::str::from_utf8(b).ok()?;
            let lines = memchr::memchr_iter(b'\n', b).count() as u64;
            Some((text, lines, memchr::memchr_iter(b'"', b).count()))
        })
        .collect::<Option<_>>()?;
    let mut line = first_line;
    Some(
        counted
            .into_iter()
            .map(|(text, lines, quotes)| {
                let p = Piece {
                    text,
                    first_line: line,
                    lines,
                    quotes,
                };
                line += lines;
                p
            })
            .collect(),
    )
}

/// The length a piece of a body of `len` bytes is cut at (then extended to the next line end):
/// a few pieces per thread, at least 4 MiB.
fn piece_target(len: u64) -> u64 {
    (4u64 << 20).max(len / (4 * rayon::current_num_threads() as u64).max(1))
}

/// Where the body of a file, bytes `start..end` of `f`, is cut into pieces: the cuts of
/// [`utf8_pieces`] on the same bytes, found by reading only around each cut.
#[cfg(unix)]
pub fn cut_file_at_lines(
    f: &std::fs::File,
    start: u64,
    end: u64,
) -> std::io::Result<Vec<(u64, u64)>> {
    use std::os::unix::fs::FileExt;
    let target = piece_target(end.saturating_sub(start));
    let mut window = vec![0u8; 64 << 10];
    let mut out = Vec::new();
    let mut at = start;
    while at < end {
        let mut cut = at.saturating_add(target).min(end);
        // The cut moves past the next line end.
        while cut < end {
            let n = window
                .len()
                .min(usize::try_from(end - cut).unwrap_or(usize::MAX));
            f.read_exact_at(&mut window[..n], cut)?;
            match memchr::memchr(b'\n', &window[..n]) {
                Some(i) => {
                    cut += i as u64 + 1;
                    break;
                }
                None => cut += n as u64,
            }
        }
        out.push((at, cut));
        at = cut;
    }
    Ok(out)
}

/// What [`read_plain_piece`] read: the line ends it passed and the text after the last of them
/// (the piece's unterminated last line, empty when it ends with a line end).
#[derive(Debug)]
pub struct PlainPiece {
    pub lines: u64,
    pub rest: String,
}

/// Reads bytes `start..end` of `f` in blocks of about `block` bytes, each cut after its last line
/// end, and visits the records of each (the first `keep` fields, as [`for_each_piece_upto`]
/// does) while the block is in cache; `first_line` numbers the piece's first line. `None` as
/// soon as a block is not UTF-8 or holds a double quote: such a file is read whole (the visits
/// made so far are to be discarded).
#[cfg(unix)]
pub fn read_plain_piece(
    f: &std::fs::File,
    (start, end): (u64, u64),
    block: usize,
    delimiter: u8,
    (first_line, keep): (u64, usize),
    cb: &mut impl FnMut(u64, &[&str]),
) -> std::io::Result<Option<PlainPiece>> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; block.max(1)];
    let (mut filled, mut at, mut line) = (0usize, start, first_line);
    loop {
        if filled == buf.len() {
            // A line longer than the block: the block grows.
            buf.resize(buf.len() * 2, 0);
        }
        let n =
            (buf.len() - filled).min(usize::try_from(end.saturating_sub(at)).unwrap_or(usize::MAX));
        f.read_exact_at(&mut buf[filled..filled + n], at)?;
        at += n as u64;
        filled += n;
        let done = at >= end;
        let cut = match memchr::memrchr(b'\n', &buf[..filled]) {
            Some(i) => i + 1,
            None if done => 0,
            None => continue,
        };
        let upto = if done { filled } else { cut };
        if memchr::memchr(b'"', &buf[..upto]).is_some() {
            return Ok(None);
        }
        let Ok(text) = std::str::from_utf8(&buf[..upto]) else {
            return Ok(None);
        };
        line += visit_plain(text, delimiter, line, keep, cb);
        if done {
            let rest = text.get(cut..).unwrap_or("").to_string();
            return Ok(Some(PlainPiece {
                lines: line - first_line,
                rest,
            }));
        }
        buf.copy_within(cut..filled, 0);
        filled -= cut;
    }
}

/// Visits the records of quote-free `text` (the first `keep` fields of each, as
/// [`for_each_piece_upto`] does), numbering lines from `first_line`; returns the number of line
/// ends passed.
pub fn visit_plain(
    text: &str,
    delimiter: u8,
    first_line: u64,
    keep: usize,
    cb: &mut impl FnMut(u64, &[&str]),
) -> u64 {
    drive_plain(text, delimiter, first_line, keep, cb)
}

/// Bytes at the start of a file that decide [`check_text`] (64 KiB after a byte order mark) for
/// a file that is not blank.
pub const TEXT_CHECK_BYTES: usize = (64 << 10) + 3;

/// [`check_truncation`] of a quote-free body given its end: `tail` ends where the body ends and
/// holds its last line end (or is its only line), `last_line` is the number of its last line.
pub fn check_truncation_tail(
    file: &Path,
    tail: &str,
    last_line: u64,
    delimiter: u8,
    header_fields: usize,
) -> Result<(), ImportError> {
    check_end(file, tail, 0, last_line, delimiter, header_fields)
}

/// Where `body` is cut into chunks, as byte ranges: after a line end, a few chunks per thread,
/// at least 4 MiB each.
fn cut_at_lines(body: &[u8]) -> Vec<(usize, usize)> {
    let target = piece_target(body.len() as u64) as usize;
    let mut out = Vec::new();
    let mut start = 0;
    while start < body.len() {
        let mut end = (start + target).min(body.len());
        if end < body.len() {
            end = memchr::memchr(b'\n', &body[end..]).map_or(body.len(), |i| end + i + 1);
        }
        out.push((start, end));
        start = end;
    }
    out
}

/// Decodes one block of a streamed file: UTF-8 when it is (and no earlier block was not),
/// Windows-1252 otherwise. Returns the text and whether it was read as Windows-1252.
pub fn decode_block(bytes: Vec<u8>, legacy: bool) -> (String, bool) {
    if !legacy {
        match String::from_utf8(bytes) {
            Ok(s) => return (s, false),
            Err(e) => return (cp1252(e.as_bytes()), true),
        }
    }
    (cp1252(&bytes), true)
}

fn cp1252(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            0x80..=0x9F => CP1252[usize::from(b - 0x80)],
            _ => char::from(b),
        })
        .collect()
}

/// Picks the delimiter that splits the header line into the most fields (outside quotes).
pub fn sniff_delimiter(header_line: &str) -> u8 {
    let mut best = (b',', 0usize);
    for d in [b',', b';', b'\t', b'|'] {
        let mut n = 0;
        let mut quoted = false;
        for b in header_line.bytes() {
            if b == b'"' {
                quoted = !quoted;
            } else if b == d && !quoted {
                n += 1;
            }
        }
        if n > best.1 {
            best = (d, n);
        }
    }
    best.0
}

/// The first line of `text` without its line end.
pub fn first_line(text: &str) -> &str {
    let end = memchr::memchr(b'\n', text.as_bytes()).unwrap_or(text.len());
    text[..end].trim_end_matches('\r')
}

/// Splits one line into fields honouring double quotes (used for headers and quote-free lines).
pub fn split_header(line: &str, delimiter: u8) -> Vec<String> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(line.as_bytes());
    let mut rec = csv::StringRecord::new();
    match rdr.read_record(&mut rec) {
        Ok(true) => rec.iter().map(|s| s.trim().to_string()).collect(),
        _ => Vec::new(),
    }
}

/// Checks that the file ends in a complete record: quotes balanced, and a last line that lacks a
/// line end has as many fields as the header.
pub fn check_truncation(
    file: &Path,
    body: &str,
    delimiter: u8,
    header_fields: usize,
    first_body_line: u64,
) -> Result<(), ImportError> {
    let quotes = memchr::memchr_iter(b'"', body.as_bytes()).count();
    let lines = memchr::memchr_iter(b'\n', body.as_bytes()).count() as u64;
    check_end(
        file,
        body,
        quotes,
        first_body_line + lines,
        delimiter,
        header_fields,
    )
}

/// [`check_truncation`] of a body given as pieces (see [`utf8_pieces`]).
pub fn check_truncation_pieces(
    file: &Path,
    pieces: &[Piece<'_>],
    delimiter: u8,
    header_fields: usize,
) -> Result<(), ImportError> {
    let Some(last) = pieces.last() else {
        return Ok(());
    };
    let quotes = pieces.iter().map(|p| p.quotes).sum();
    let last_line =
        last.first_line + memchr::memchr_iter(b'\n', last.text.as_bytes()).count() as u64;
    check_end(file, last.text, quotes, last_line, delimiter, header_fields)
}

/// The truncation checks given the body's quote count, the number of its last line and its end
/// (`tail`: any text that ends where the body ends and holds at least its last line end).
fn check_end(
    file: &Path,
    tail: &str,
    quotes: usize,
    last_line: u64,
    delimiter: u8,
    header_fields: usize,
) -> Result<(), ImportError> {
    let body = tail;
    if quotes % 2 == 1 {
        return Err(ImportError::Truncated {
            file: file.to_path_buf(),
            line: last_line,
            reason: "a quoted field is never closed before the end of the file".into(),
        });
    }
    if !body.is_empty() && !body.ends_with('\n') {
        let start = memchr::memrchr(b'\n', body.as_bytes()).map_or(0, |i| i + 1);
        let last = &body[start..];
        let fields = split_header(last, delimiter).len();
        if !last.trim().is_empty() && fields < header_fields && header_fields > 1 {
            return Err(ImportError::Truncated {
                file: file.to_path_buf(),
                line: last_line,
                reason: format!(
                    "the last line has {fields} of the header's {header_fields} fields and no line end"
                ),
            });
        }
    }
    Ok(())
}

/// Visits every non-blank record of `body`: chunks are processed in parallel, each folding its
/// records, in file order, into its own accumulator made by `init`; the accumulators come back in
/// file order. `first_line` is the physical line number of the body's first line.
pub fn for_each_chunk<T, I, V>(
    body: &str,
    delimiter: u8,
    first_line: u64,
    init: I,
    visit: V,
) -> Vec<T>
where
    T: Send,
    I: Fn() -> T + Sync,
    V: Fn(&mut T, u64, &[&str]) + Sync,
{
    let quoted = memchr::memchr(b'"', body.as_bytes()).is_some();
    let chunks = if quoted {
        vec![(body, first_line)]
    } else {
        split_chunks(body, first_line)
    };
    chunks
        .into_par_iter()
        .map(|(chunk, start_line)| {
            let mut acc = init();
            let mut cb = |line: u64, fields: &[&str]| visit(&mut acc, line, fields);
            if quoted {
                drive_csv(chunk, delimiter, start_line, &mut cb);
            } else {
                drive_plain(chunk, delimiter, start_line, usize::MAX, &mut cb);
            }
            acc
        })
        .collect()
}

/// Cuts `body` into pieces at line boundaries (see [`cut_at_lines`]) with each piece's first
/// line number.
fn split_chunks(body: &str, first_line: u64) -> Vec<(&str, u64)> {
    let mut line = first_line;
    cut_at_lines(body.as_bytes())
        .into_iter()
        .map(|(start, end)| {
            let piece = (&body[start..end], line);
            line += memchr::memchr_iter(b'\n', &body.as_bytes()[start..end]).count() as u64;
            piece
        })
        .collect()
}

/// [`for_each_chunk`] over the pieces of a body without quotes (see [`utf8_pieces`]); each
/// piece's accumulator is made by `init` from the piece (to size its buffers).
pub fn for_each_piece<T, I, V>(pieces: &[Piece<'_>], delimiter: u8, init: I, visit: V) -> Vec<T>
where
    T: Send,
    I: Fn(&Piece<'_>) -> T + Sync,
    V: Fn(&mut T, u64, &[&str]) + Sync,
{
    for_each_piece_upto(pieces, delimiter, usize::MAX, init, visit)
}

/// [`for_each_piece`] that splits only a record's first `keep` fields (at least one): the rest
/// of each line is skipped, and the visitor sees at most `keep` fields (fewer when the line has
/// fewer). For readers that need a few leading columns of a wide file.
pub fn for_each_piece_upto<T, I, V>(
    pieces: &[Piece<'_>],
    delimiter: u8,
    keep: usize,
    init: I,
    visit: V,
) -> Vec<T>
where
    T: Send,
    I: Fn(&Piece<'_>) -> T + Sync,
    V: Fn(&mut T, u64, &[&str]) + Sync,
{
    pieces
        .par_iter()
        .map(|p| {
            let mut acc = init(p);
            drive_plain(
                p.text,
                delimiter,
                p.first_line,
                keep,
                &mut |line, fields| visit(&mut acc, line, fields),
            );
            acc
        })
        .collect()
}

/// `s` without leading and trailing whitespace ([`str::trim`]), skipping the work when it starts
/// and ends with a visible ASCII character (as almost every field does).
pub fn trim(s: &str) -> &str {
    match (s.as_bytes().first(), s.as_bytes().last()) {
        (Some(a), Some(b)) if a.is_ascii_graphic() && b.is_ascii_graphic() => s,
        (None, _) => s,
        _ => s.trim(),
    }
}

/// Whether a line is blank (whitespace only).
fn is_blank(line: &str) -> bool {
    match line.as_bytes().first() {
        None => true,
        Some(b) if b.is_ascii_graphic() => false,
        _ => line.trim().is_empty(),
    }
}

/// The high bit of each byte of `v` that is zero, and no other bit.
#[inline]
fn zero_bytes(v: u64) -> u64 {
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    !(((v & LOW7) + LOW7) | v | LOW7)
}

/// Splits quote-free text into records: one scan for delimiters and line ends together; each
/// line loses one trailing `\r`, blank lines are skipped, fields are trimmed. Only the first
/// `keep` fields are split (`usize::MAX`: all); past them the scan looks for the line end only.
/// Returns the number of line ends passed.
fn drive_plain(
    chunk: &str,
    delimiter: u8,
    start_line: u64,
    keep: usize,
    cb: &mut impl FnMut(u64, &[&str]),
) -> u64 {
    if !delimiter.is_ascii() || matches!(delimiter, b'\n' | b'\r') {
        drive_lines(chunk, delimiter, start_line, cb);
        return memchr::memchr_iter(b'\n', chunk.as_bytes()).count() as u64;
    }
    let bytes = chunk.as_bytes();
    let mut fields: Vec<&str> = Vec::with_capacity(keep.clamp(1, 16));
    let (mut line, mut line_start, mut field_start) = (start_line, 0usize, 0usize);
    const ONES: u64 = 0x0101_0101_0101_0101;
    let (wd, wn) = (ONES * u64::from(delimiter), ONES * u64::from(b'\n'));
    // Every byte before `at` has been looked at.
    let mut at = 0usize;
    while at < bytes.len() {
        // The separators (delimiters and line ends) among the next `span` bytes: the high bit
        // of each one's byte in `hits`.
        let (hits, span) = if fields.len() >= keep {
            // Past the fields kept: straight to the line end.
            match memchr::memchr(b'\n', &bytes[at..]) {
                Some(o) => {
                    at += o;
                    (0x80, 1)
                }
                None => break,
            }
        } else if let Some(word) = bytes.get(at..).and_then(|r| r.first_chunk::<8>()) {
            // Eight bytes at a time: fields are short, a search call per field costs more.
            let x = u64::from_le_bytes(*word);
            (zero_bytes(x ^ wd) | zero_bytes(x ^ wn), 8)
        } else {
            let b = bytes[at];
            (
                if b == delimiter || b == b'\n' {
                    0x80
                } else {
                    0
                },
                1,
            )
        };
        let mut rest = hits;
        while rest != 0 {
            let i = at + (rest.trailing_zeros() / 8) as usize;
            rest &= rest - 1;
            if bytes[i] == b'\n' {
                end_line(
                    chunk,
                    &mut fields,
                    keep,
                    (line_start, field_start, i),
                    line,
                    cb,
                );
                line += 1;
                line_start = i + 1;
            } else if fields.len() < keep {
                fields.push(trim(chunk.get(field_start..i).unwrap_or("")));
            }
            field_start = i + 1;
        }
        at += span;
    }
    if line_start < bytes.len() {
        end_line(
            chunk,
            &mut fields,
            keep,
            (line_start, field_start, bytes.len()),
            line,
            cb,
        );
    }
    line - start_line
}

/// Ends the record of line `line` (`at`: where the line and its last field start, and where it
/// ends before its line end): adds the last field (unless `keep` fields are there already) and
/// visits the record unless it is blank.
fn end_line<'a>(
    chunk: &'a str,
    fields: &mut Vec<&'a str>,
    keep: usize,
    (line_start, field_start, end): (usize, usize, usize),
    line: u64,
    cb: &mut impl FnMut(u64, &[&str]),
) {
    let end = if end > line_start && chunk.as_bytes()[end - 1] == b'\r' {
        end - 1
    } else {
        end
    };
    if !is_blank(chunk.get(line_start..end).unwrap_or("")) {
        if fields.len() < keep {
            fields.push(trim(chunk.get(field_start.min(end)..end).unwrap_or("")));
        }
        cb(line, fields);
    }
    fields.clear();
}

/// [`drive_plain`] line by line, for delimiters that are not plain ASCII punctuation.
fn drive_lines(chunk: &str, delimiter: u8, start_line: u64, cb: &mut impl FnMut(u64, &[&str])) {
    let mut fields: Vec<&str> = Vec::with_capacity(16);
    for (line, raw) in (start_line..).zip(chunk.split('\n')) {
        let l = raw.strip_suffix('\r').unwrap_or(raw);
        if !l.trim().is_empty() {
            fields.clear();
            let mut s = 0;
            for i in memchr::memchr_iter(delimiter, l.as_bytes()) {
                match (l.get(s..i), l.get(i..)) {
                    (Some(f), Some(_)) => fields.push(f.trim()),
                    _ => continue,
                }
                s = i + 1;
            }
            fields.push(l.get(s..).unwrap_or("").trim());
            cb(line, &fields);
        }
    }
}

fn drive_csv(chunk: &str, delimiter: u8, start_line: u64, cb: &mut impl FnMut(u64, &[&str])) {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(chunk.as_bytes());
    let mut rec = csv::StringRecord::new();
    let bytes = chunk.as_bytes();
    // Line numbers come from byte offsets: the csv reader's own line count is off by one after
    // CRLF line ends (a record's position can sit on the previous record's LF).
    let (mut counted_to, mut newlines) = (0usize, 0u64);
    loop {
        match rdr.read_record(&mut rec) {
            Ok(true) => {
                let mut start = rec
                    .position()
                    .map_or(0, |p| p.byte() as usize)
                    .min(bytes.len());
                while start < bytes.len() && matches!(bytes[start], b'\r' | b'\n') {
                    start += 1;
                }
                if start > counted_to {
                    newlines +=
                        memchr::memchr_iter(b'\n', &bytes[counted_to..start]).count() as u64;
                    counted_to = start;
                }
                let line = start_line + newlines;
                if rec.iter().all(|f| f.trim().is_empty()) {
                    continue;
                }
                let fields: Vec<&str> = rec.iter().map(str::trim).collect();
                cb(line, &fields);
            }
            Ok(false) => break,
            // The input is valid UTF-8 already; any other csv error ends the chunk.
            Err(_) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_common_delimiters() {
        assert_eq!(sniff_delimiter("a,b,c"), b',');
        assert_eq!(sniff_delimiter("a;b;c"), b';');
        assert_eq!(sniff_delimiter("a\tb\tc"), b'\t');
        assert_eq!(sniff_delimiter("a|b|c"), b'|');
        assert_eq!(sniff_delimiter("\"a,x\";b;c"), b';');
    }

    #[test]
    fn decodes_bom_and_cp1252_and_rejects_binary() {
        let p = Path::new("f.csv");
        let t = decode(p, b"\xEF\xBB\xBFa,b\n").expect("utf8");
        assert_eq!(t.text, "a,b\n");
        assert!(!t.legacy_encoding);
        let t = decode(p, b"name\nM\xFCller \x80\n").expect("cp1252");
        assert_eq!(t.text, "name\nMüller €\n");
        assert!(t.legacy_encoding);
        assert!(matches!(
            decode(p, b"PK\x03\x04\0\0"),
            Err(ImportError::NotCsv { .. })
        ));
        assert!(matches!(
            decode(p, b" \n\r\n"),
            Err(ImportError::Empty { .. })
        ));
    }

    #[test]
    fn chunks_keep_line_numbers_and_all_records() {
        let body: String = (0..200_000).map(|i| format!("{i},x\n")).collect();
        let per_chunk = for_each_chunk(&body, b',', 2, Vec::new, |v, line, f| {
            v.push((line, f[0].parse::<u64>().unwrap_or(0)))
        });
        let all: Vec<(u64, u64)> = per_chunk.into_iter().flatten().collect();
        assert_eq!(all.len(), 200_000);
        assert!(all.iter().all(|(line, i)| *line == i + 2));
    }

    #[test]
    fn plain_records_split_as_lines_and_fields_whatever_their_lengths() {
        // Random text of letters, spaces, delimiters and line ends against a plain reference:
        // lines without their `\r`, blank ones skipped, fields trimmed, the first `keep` kept.
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for case in 0..2_000 {
            let mut text = String::new();
            for _ in 0..(case % 90) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                text.push(match x % 9 {
                    0 | 1 => ',',
                    2 => '\n',
                    3 => '\r',
                    4 => ' ',
                    _ => char::from(b'a' + (x >> 8) as u8 % 26),
                });
            }
            let keep = case % 5 + 1;
            let mut want: Vec<(u64, Vec<String>)> = Vec::new();
            for (line, l) in (7u64..).zip(text.split('\n')) {
                let l = l.strip_suffix('\r').unwrap_or(l);
                if !l.trim().is_empty() {
                    want.push((
                        line,
                        l.split(',')
                            .take(keep)
                            .map(|f| f.trim().to_string())
                            .collect(),
                    ));
                }
            }
            for k in [keep, usize::MAX] {
                let mut got = Vec::new();
                let lines = drive_plain(&text, b',', 7, k, &mut |line, f| {
                    got.push((line, f.iter().map(|s| s.to_string()).collect::<Vec<_>>()))
                });
                assert_eq!(lines as usize, text.matches('\n').count());
                let want: Vec<(u64, Vec<String>)> = if k == keep {
                    want.clone()
                } else {
                    (7u64..)
                        .zip(text.split('\n'))
                        .map(|(n, l)| (n, l.strip_suffix('\r').unwrap_or(l)))
                        .filter(|(_, l)| !l.trim().is_empty())
                        .map(|(n, l)| (n, l.split(',').map(|f| f.trim().to_string()).collect()))
                        .collect()
                };
                assert_eq!(got, want, "{text:?} keep {k}");
            }
        }
    }

    #[test]
    fn quoted_records_span_lines() {
        let body = "1,\"a\nb\"\r\n2,\"c,d\"\r\n\r\n3,\"e\"\r\n";
        let recs = for_each_chunk(body, b',', 2, Vec::new, |v, line, f| {
            v.push((line, f.iter().map(|s| s.to_string()).collect::<Vec<_>>()))
        });
        let recs: Vec<_> = recs.into_iter().flatten().collect();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0].0, 2);
        assert_eq!(recs[0].1[1], "a\nb");
        assert_eq!(recs[1].0, 4);
        assert_eq!(recs[2].0, 6);
        assert_eq!(recs[1].1[1], "c,d");
    }

    #[test]
    fn truncation_is_detected() {
        let p = Path::new("f.csv");
        assert!(check_truncation(p, "1,2,3\n4,5", b',', 3, 2).is_err());
        assert!(check_truncation(p, "1,2,3\n4,\"5", b',', 3, 2).is_err());
        assert!(check_truncation(p, "1,2,3\n4,5,6", b',', 3, 2).is_ok());
        assert!(check_truncation(p, "1,2,3\n", b',', 3, 2).is_ok());
    }
}
