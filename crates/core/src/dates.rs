//! Date and number parsing for imported files: a small compiled date format (fast on the hot path),
//! detection of the format a column uses, and locale-tolerant decimal numbers.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

/// One piece of a compiled date format.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Year4,
    Year2,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    /// Optional fractional seconds and/or a zone suffix (`.123`, `Z`, `+02:00`): accepted and ignored.
    Rest,
    Lit(u8),
}

/// A date(-time) format compiled from a strftime-like pattern (`%Y %y %m %d %H %M %S`), with
/// anything else handled by chrono.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateFormat {
    pattern: String,
    toks: Option<Vec<Tok>>,
    has_time: bool,
}

impl DateFormat {
    /// Compiles `pattern`. Unknown `%` directives fall back to chrono's parser.
    pub fn new(pattern: &str) -> Self {
        let mut toks = Vec::new();
        let mut fast = true;
        let bytes = pattern.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 1 < bytes.len() {
                let t = match bytes[i + 1] {
                    b'Y' => Tok::Year4,
                    b'y' => Tok::Year2,
                    b'm' => Tok::Month,
                    b'd' | b'e' => Tok::Day,
                    b'H' => Tok::Hour,
                    b'M' => Tok::Minute,
                    b'S' => Tok::Second,
                    _ => {
                        fast = false;
                        Tok::Rest
                    }
                };
                toks.push(t);
                i += 2;
            } else {
                toks.push(Tok::Lit(bytes[i]));
                i += 1;
            }
        }
        let has_time = pattern.contains("%H") || pattern.contains("%T") || pattern.contains("%R");
        Self {
            pattern: pattern.to_string(),
            toks: fast.then_some(toks),
            has_time,
        }
    }

    /// The pattern this format was compiled from.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Parses a value; a date-only format yields midnight.
    pub fn parse(&self, s: &str) -> Option<NaiveDateTime> {
        let s = crate::import::text::trim(s);
        match &self.toks {
            Some(toks) => parse_fast(toks, s.as_bytes()),
            None => {
                if self.has_time {
                    NaiveDateTime::parse_from_str(s, &self.pattern).ok()
                } else {
                    NaiveDate::parse_from_str(s, &self.pattern)
                        .ok()
                        .map(|d| d.and_time(NaiveTime::MIN))
                }
            }
        }
    }
}

/// Values of one [`DateFormat`] read before, for a file's many repeats of few dates: a table of
/// two-way sets of values 8 to 16 bytes long, each held as its first and last 8 bytes and its
/// length (a file's few hundred distinct dates hardly ever meet three in one set). A set is one
/// cache line.
pub struct DateCache {
    sets: Vec<CacheSet>,
}

/// Two cached values: the newer first.
#[derive(Clone, Copy)]
#[repr(align(64))]
struct CacheSet([CacheSlot; 2]);

#[derive(Clone, Copy)]
struct CacheSlot {
    head: u64,
    tail: u64,
    /// The value's length (0: empty slot), with [`CacheSlot::PARSED`] when it is a date.
    len: u32,
    at: NaiveDateTime,
}

impl CacheSlot {
    const PARSED: u32 = 1 << 31;
    const EMPTY: Self = Self {
        head: 0,
        tail: 0,
        len: 0,
        at: NaiveDateTime::MIN,
    };
}

impl Default for DateCache {
    fn default() -> Self {
        Self {
            sets: vec![CacheSet([CacheSlot::EMPTY; 2]); 1 << Self::BITS],
        }
    }
}

impl DateCache {
    const BITS: u32 = 11;

    /// A cache that keeps nothing (every value is parsed).
    pub fn none() -> Self {
        Self { sets: Vec::new() }
    }

    /// `format.parse(s)`, from the cache when `s` was read before.
    pub fn parse(&mut self, format: &DateFormat, s: &str) -> Option<NaiveDateTime> {
        let b = s.as_bytes();
        let (Some(head), Some(tail)) = (b.first_chunk::<8>(), b.last_chunk::<8>()) else {
            return format.parse(s);
        };
        if b.len() > 16 || self.sets.is_empty() {
            return format.parse(s);
        }
        let (head, tail) = (u64::from_le_bytes(*head), u64::from_le_bytes(*tail));
        let mixed = (head.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ tail.wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
            ^ b.len() as u64)
            .wrapping_mul(0x1656_67B1_9E37_79F9);
        let Some(set) = self.sets.get_mut((mixed >> (64 - Self::BITS)) as usize) else {
            return format.parse(s);
        };
        let len = b.len() as u32;
        for slot in &set.0 {
            if slot.head == head && slot.tail == tail && slot.len & !CacheSlot::PARSED == len {
                return (slot.len & CacheSlot::PARSED != 0).then_some(slot.at);
            }
        }
        let v = format.parse(s);
        set.0[1] = set.0[0];
        set.0[0] = CacheSlot {
            head,
            tail,
            len: len | if v.is_some() { CacheSlot::PARSED } else { 0 },
            at: v.unwrap_or(NaiveDateTime::MIN),
        };
        v
    }
}

fn digits(b: &[u8], pos: &mut usize, min: usize, max: usize) -> Option<u32> {
    let start = *pos;
    let mut v: u32 = 0;
    while *pos < b.len() && *pos - start < max && b[*pos].is_ascii_digit() {
        v = v * 10 + u32::from(b[*pos] - b'0');
        *pos += 1;
    }
    (*pos - start >= min).then_some(v)
}

fn parse_fast(toks: &[Tok], b: &[u8]) -> Option<NaiveDateTime> {
    let (mut y, mut mo, mut d, mut h, mut mi, mut se) = (None, 1u32, 1u32, 0u32, 0u32, 0u32);
    let mut pos = 0usize;
    for t in toks {
        match t {
            Tok::Year4 => y = Some(digits(b, &mut pos, 4, 4)? as i32),
            Tok::Year2 => {
                let v = digits(b, &mut pos, 2, 2)? as i32;
                // Two-digit years: 00–68 → 2000s, 69–99 → 1900s (POSIX convention).
                y = Some(if v < 69 { 2000 + v } else { 1900 + v });
            }
            Tok::Month => mo = digits(b, &mut pos, 1, 2)?,
            Tok::Day => d = digits(b, &mut pos, 1, 2)?,
            Tok::Hour => h = digits(b, &mut pos, 1, 2)?,
            Tok::Minute => mi = digits(b, &mut pos, 2, 2)?,
            Tok::Second => se = digits(b, &mut pos, 2, 2)?,
            Tok::Rest => pos = b.len(),
            Tok::Lit(c) => {
                // A space in the format also accepts ISO 8601's `T`.
                if b.get(pos) == Some(c) || (*c == b' ' && b.get(pos) == Some(&b'T')) {
                    pos += 1;
                } else {
                    return None;
                }
            }
        }
    }
    if pos < b.len() && !trailing_ok(&b[pos..]) {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(y?, mo, d)?;
    let time = NaiveTime::from_hms_opt(h, mi, se.min(59))?;
    let at = date.and_time(time);
    // A UTC offset after the time (`-0500`, `+02:00`) is honoured: the result is UTC.
    match utc_offset_seconds(&b[pos..]) {
        Some(off) => at.checked_sub_signed(chrono::TimeDelta::seconds(off)),
        None => Some(at),
    }
}

/// The UTC offset at the end of a date-time's trailing text, in seconds east of UTC: `Z`,
/// `+02:00`, `-0500`, ` +01`; `None` when the text names no numeric offset (`Z` and ` UTC` are
/// zero and change nothing).
fn utc_offset_seconds(rest: &[u8]) -> Option<i64> {
    // Skip fractional seconds.
    let mut i = 0;
    if rest.first() == Some(&b'.') {
        i = 1;
        while i < rest.len() && rest[i].is_ascii_digit() {
            i += 1;
        }
    }
    while i < rest.len() && rest[i] == b' ' {
        i += 1;
    }
    let sign = match rest.get(i) {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return None,
    };
    let digits: Vec<i64> = rest[i + 1..]
        .iter()
        .filter(|c| **c != b':')
        .map(|c| c.is_ascii_digit().then(|| i64::from(c - b'0')))
        .collect::<Option<Vec<_>>>()?;
    let (h, m) = match digits.as_slice() {
        [h1, h2] => (h1 * 10 + h2, 0),
        [h1, h2, m1, m2] => (h1 * 10 + h2, m1 * 10 + m2),
        _ => return None,
    };
    (h <= 18 && m < 60).then_some(sign * (h * 3600 + m * 60))
}

/// Fractional seconds and zone suffixes after a complete date-time are accepted and ignored:
/// `.123`, `Z`, `+02:00`, ` UTC`.
fn trailing_ok(rest: &[u8]) -> bool {
    rest.iter()
        .all(|c| c.is_ascii_digit() || b".:+-Z ".contains(c) || c.is_ascii_uppercase())
}

/// Candidate formats tried by [`detect_date_format`], most specific first.
const CANDIDATES: &[&str] = &[
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d",
    "%Y%m%d",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y",
    "%d-%m-%Y %H:%M:%S",
    "%d-%m-%Y %H:%M",
    "%d-%m-%Y",
    "%d/%m/%y",
    "%m/%d/%y",
    "%d.%m.%y",
];

/// How a column's date format was chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectedFormat {
    pub format: DateFormat,
    /// True when both day-first and month-first read every sampled value (all days ≤ 12):
    /// the choice followed the separator's convention and the user should confirm it.
    pub ambiguous: bool,
}

/// Picks the format that reads the most sampled values (more than half of them). Slash dates are day-first when a first
/// component exceeds 12 and month-first when a second one does; when neither does, the choice is
/// reported as ambiguous (month-first for `/`, as US exports write them; day-first for `.` and `-`).
pub fn detect_date_format<'a>(
    samples: impl IntoIterator<Item = &'a str>,
) -> Option<DetectedFormat> {
    let samples: Vec<&str> = samples
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if samples.is_empty() {
        return None;
    }
    // Score each candidate by how many samples it reads; a few bad values must not hide the
    // format the rest of the column uses (they are rejected row by row later).
    let scored: Vec<(DateFormat, usize)> = CANDIDATES
        .iter()
        .map(|p| {
            let f = DateFormat::new(p);
            let n = samples.iter().filter(|s| f.parse(s).is_some()).count();
            (f, n)
        })
        .collect();
    let best = scored.iter().map(|(_, n)| *n).max().unwrap_or(0);
    if best * 2 <= samples.len() {
        return None;
    }
    let fits: Vec<DateFormat> = scored
        .into_iter()
        .filter(|(_, n)| *n == best)
        .map(|(f, _)| f)
        .collect();
    let first = fits.first()?.clone();
    let p = first.pattern();
    let ambiguous = (p.starts_with("%d/") && fits.iter().any(|f| f.pattern().starts_with("%m/")))
        || (p.starts_with("%m/") && fits.iter().any(|f| f.pattern().starts_with("%d/")));
    // Month-first is the convention for ambiguous slash dates.
    let chosen = if ambiguous && p.starts_with("%d/") {
        fits.iter()
            .find(|f| f.pattern().starts_with("%m/"))
            .cloned()
            .unwrap_or(first)
    } else {
        first
    };
    Some(DetectedFormat {
        format: chosen,
        ambiguous,
    })
}

/// Parses an amount as exports write them: currency symbols and spaces ignored, thousands
/// separators allowed, a leading or trailing minus or accounting parentheses for negatives.
/// With `decimal_comma`, `1.234,56` means 1234.56; otherwise `1,234.56` does.
pub fn parse_number(raw: &str, decimal_comma: bool) -> Option<f64> {
    let s = crate::import::text::trim(raw);
    if s.is_empty() {
        return None;
    }
    if let Some(v) = plain_decimal(s.as_bytes(), if decimal_comma { b',' } else { b'.' }) {
        return Some(v);
    }
    if !decimal_comma {
        if let Ok(v) = s.parse::<f64>() {
            return v.is_finite().then_some(v);
        }
    }
    let (dec, thousands) = if decimal_comma {
        (',', '.')
    } else {
        ('.', ',')
    };
    let mut neg = false;
    let mut buf = String::with_capacity(s.len());
    let mut seen_digit = false;
    // Letters are a currency code before the number ("EUR 12") or after it past a space ("12 EUR").
    let mut suffix = false;
    let mut prev = ' ';
    for c in s.chars() {
        if suffix && !c.is_alphabetic() && c != ' ' {
            return None;
        }
        match c {
            '0'..='9' => {
                seen_digit = true;
                buf.push(c);
            }
            '-' | '−' => neg = true,
            '(' if !seen_digit => neg = true,
            ')' if seen_digit => {}
            '+' => {}
            c if c == dec => buf.push('.'),
            c if c == thousands => {}
            '\'' | ' ' | '\u{a0}' | '\u{202f}' => {}
            '$' | '€' | '£' | '¥' | '₹' => {}
            c if c.is_alphabetic() && !seen_digit => {}
            c if c.is_alphabetic() && (suffix || prev == ' ') => suffix = true,
            _ => return None,
        }
        prev = c;
    }
    if !seen_digit || buf.matches('.').count() > 1 {
        return None;
    }
    let v: f64 = buf.parse().ok()?;
    let v = if neg { -v } else { v };
    v.is_finite().then_some(v)
}

/// A plain decimal (`-123.45`, `7`) with at most 15 digits, read exactly as [`str::parse`] reads
/// it: the digits as an integer (exact below 2^53) divided by a power of ten (exact up to 10^22)
/// is one correctly rounded operation. `None` for anything else.
fn plain_decimal(b: &[u8], point: u8) -> Option<f64> {
    const POW10: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        _ => (false, b),
    };
    let (mut mantissa, mut n, mut frac) = (0u64, 0usize, None::<usize>);
    for (i, &c) in digits.iter().enumerate() {
        if c.is_ascii_digit() {
            mantissa = mantissa * 10 + u64::from(c - b'0');
            n += 1;
        } else if c == point && frac.is_none() && i > 0 && i + 1 < digits.len() {
            frac = Some(digits.len() - i - 1);
        } else {
            return None;
        }
    }
    if n == 0 || n > 15 {
        return None;
    }
    let v = mantissa as f64 / POW10[frac.unwrap_or(0)];
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").expect("test literal")
    }

    #[test]
    fn compiled_formats_parse_common_shapes() {
        let iso = DateFormat::new("%Y-%m-%d %H:%M:%S");
        assert_eq!(
            iso.parse("2024-03-05 07:08:09"),
            Some(dt("2024-03-05 07:08:09"))
        );
        assert_eq!(
            iso.parse("2024-03-05T07:08:09Z"),
            Some(dt("2024-03-05 07:08:09"))
        );
        // A UTC offset is honoured: the time is stored as UTC.
        assert_eq!(
            iso.parse("2024-03-05T07:08:09.123+02:00"),
            Some(dt("2024-03-05 05:08:09"))
        );
        assert_eq!(
            iso.parse("2024-03-05 22:30:00 -0500"),
            Some(dt("2024-03-06 03:30:00"))
        );
        assert_eq!(
            iso.parse("2024-03-05 07:08:09 +01"),
            Some(dt("2024-03-05 06:08:09"))
        );
        let day = DateFormat::new("%Y-%m-%d");
        assert_eq!(day.parse(" 2024-02-29 "), Some(dt("2024-02-29 00:00:00")));
        assert_eq!(day.parse("2023-02-29"), None, "not a leap year");
        assert_eq!(day.parse("2024-13-01"), None);
        assert_eq!(day.parse("2024-01-01x"), None);
        let de = DateFormat::new("%d.%m.%Y %H:%M");
        assert_eq!(de.parse("31.12.2010 8:26"), Some(dt("2010-12-31 08:26:00")));
        let us = DateFormat::new("%m/%d/%Y %H:%M");
        assert_eq!(us.parse("12/1/2010 8:26"), Some(dt("2010-12-01 08:26:00")));
        let compact = DateFormat::new("%Y%m%d");
        assert_eq!(compact.parse("19970101"), Some(dt("1997-01-01 00:00:00")));
        let short = DateFormat::new("%d/%m/%y");
        assert_eq!(short.parse("05/03/24"), Some(dt("2024-03-05 00:00:00")));
        assert_eq!(short.parse("05/03/98"), Some(dt("1998-03-05 00:00:00")));
        let chrono_fallback = DateFormat::new("%d %b %Y");
        assert_eq!(
            chrono_fallback.parse("05 Mar 2024"),
            Some(dt("2024-03-05 00:00:00"))
        );
    }

    #[test]
    fn detection_prefers_unambiguous_reading() {
        let d = detect_date_format(["13/01/2024", "02/03/2024"]).expect("detected");
        assert_eq!(d.format.pattern(), "%d/%m/%Y");
        assert!(!d.ambiguous);
        let m = detect_date_format(["01/13/2024", "02/03/2024"]).expect("detected");
        assert_eq!(m.format.pattern(), "%m/%d/%Y");
        let a = detect_date_format(["01/02/2024"]).expect("detected");
        assert_eq!(a.format.pattern(), "%m/%d/%Y");
        assert!(a.ambiguous);
        let de = detect_date_format(["01.02.2024 10:00"]).expect("detected");
        assert_eq!(de.format.pattern(), "%d.%m.%Y %H:%M");
        let iso = detect_date_format(["2024-01-02", "2024-01-03"]).expect("detected");
        assert_eq!(iso.format.pattern(), "%Y-%m-%d");
        let iso_t = detect_date_format(["2024-01-02T10:11:12Z"]).expect("detected");
        assert_eq!(iso_t.format.pattern(), "%Y-%m-%d %H:%M:%S");
        assert!(detect_date_format(["yesterday"]).is_none());
        let noisy = detect_date_format(["31.01.2024", "oops", "01.02.2024"]).expect("majority");
        assert_eq!(noisy.format.pattern(), "%d.%m.%Y");
        assert!(detect_date_format(["", " "]).is_none());
    }

    #[test]
    fn plain_decimals_read_as_the_standard_parser_reads_them() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let digits = (x % 15 + 1) as usize;
            let int = (x >> 8) % 10u64.pow(digits as u32);
            let frac_digits = (x >> 4) as usize % (digits + 1);
            let s = format!("{int:0digits$}");
            let s = if frac_digits > 0 && frac_digits < digits {
                format!(
                    "{}.{}",
                    &s[..digits - frac_digits],
                    &s[digits - frac_digits..]
                )
            } else {
                s
            };
            let s = if x & 1 == 1 { format!("-{s}") } else { s };
            let want: f64 = s.parse().expect("a number");
            assert_eq!(
                parse_number(&s, false).map(f64::to_bits),
                Some(want.to_bits()),
                "{s}"
            );
            let comma = s.replace('.', ",");
            assert_eq!(
                parse_number(&comma, true).map(f64::to_bits),
                Some(want.to_bits()),
                "{comma}"
            );
        }
        assert_eq!(plain_decimal(b"5.", b'.'), None);
        assert_eq!(plain_decimal(b".5", b'.'), None);
        assert_eq!(plain_decimal(b"1.2.3", b'.'), None);
        assert_eq!(plain_decimal(b"1234567890123456", b'.'), None);
        assert_eq!(parse_number("5.", false), Some(5.0));
    }

    #[test]
    fn numbers_in_the_shapes_exports_use() {
        assert_eq!(parse_number("12.5", false), Some(12.5));
        assert_eq!(parse_number("-3", false), Some(-3.0));
        assert_eq!(parse_number("1,234.50", false), Some(1234.5));
        assert_eq!(parse_number("$1,234.50", false), Some(1234.5));
        assert_eq!(parse_number("(12.00)", false), Some(-12.0));
        assert_eq!(parse_number("12,5", true), Some(12.5));
        assert_eq!(parse_number("1.234,56", true), Some(1234.56));
        assert_eq!(parse_number("1 234,56 €", true), Some(1234.56));
        assert_eq!(parse_number("-0,99", true), Some(-0.99));
        assert_eq!(parse_number("EUR 12,00", true), Some(12.0));
        assert_eq!(parse_number("", false), None);
        assert_eq!(parse_number("abc", false), None);
        assert_eq!(parse_number("1.2.3", false), None);
        assert_eq!(parse_number("NaN", false), None);
        assert_eq!(parse_number("inf", false), None);
        assert_eq!(parse_number("12abc", false), None);
    }
}
