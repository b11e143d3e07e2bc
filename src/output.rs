//! Output formats shared by every command: aligned tables for people, JSON and CSV for tools.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;

/// `--format` values. Not every command offers every format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
    Markdown,
    Html,
}

/// Prints one JSON document (pretty) to stdout.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// A simple text table: a header row and rows of cells, columns aligned; numbers right-aligned.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<I, S>(header: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// Renders the table as text.
    pub fn render(&self) -> String {
        let n = self
            .header
            .len()
            .max(self.rows.iter().map(Vec::len).max().unwrap_or(0));
        let mut width = vec![0usize; n];
        for r in std::iter::once(&self.header).chain(&self.rows) {
            for (i, c) in r.iter().enumerate() {
                width[i] = width[i].max(c.chars().count());
            }
        }
        let numeric = |s: &str| {
            !s.is_empty()
                && s.trim_end_matches('%')
                    .replace([',', '.', '-', '+', '−'], "")
                    .chars()
                    .all(|c| c.is_ascii_digit())
        };
        let mut out = String::new();
        let line = |r: &Vec<String>, out: &mut String| {
            let mut s = String::new();
            for (i, w) in width.iter().enumerate() {
                let c = r.get(i).map(String::as_str).unwrap_or("");
                let pad = w.saturating_sub(c.chars().count());
                if i > 0 {
                    s.push_str("  ");
                }
                if numeric(c) {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(c);
                } else {
                    s.push_str(c);
                    s.push_str(&" ".repeat(pad));
                }
            }
            out.push_str(s.trim_end());
            out.push('\n');
        };
        line(&self.header, &mut out);
        let total: usize = width.iter().sum::<usize>() + 2 * n.saturating_sub(1);
        out.push_str(&"-".repeat(total));
        out.push('\n');
        for r in &self.rows {
            line(r, &mut out);
        }
        out
    }

    /// Writes the table as CSV to stdout.
    pub fn print_csv(&self) -> Result<()> {
        let mut w = csv::Writer::from_writer(std::io::stdout().lock());
        w.write_record(&self.header)?;
        for r in &self.rows {
            w.write_record(r)?;
        }
        w.flush()?;
        Ok(())
    }
}

/// `1234567.891` → `1,234,567.89`.
pub fn money(v: f64) -> String {
    let cents = (v.abs() * 100.0).round() as u128;
    // Never "-0.00": a negative amount that rounds to zero is zero.
    let neg = v < 0.0 && cents > 0;
    let int = (cents / 100).to_string();
    let mut grouped = String::new();
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    format!("{}{grouped}.{:02}", if neg { "-" } else { "" }, cents % 100)
}

/// `1234567` → `1,234,567`.
pub fn count(v: impl Into<i128>) -> String {
    let v: i128 = v.into();
    let s = v.unsigned_abs().to_string();
    let mut grouped = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    if v < 0 {
        format!("-{grouped}")
    } else {
        grouped
    }
}

/// `0.1234` → `12.3%`.
pub fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_formatting() {
        assert_eq!(money(1_234_567.891), "1,234,567.89");
        assert_eq!(money(-0.5), "-0.50");
        assert_eq!(money(-0.0), "0.00");
        assert_eq!(money(-0.004), "0.00");
        assert_eq!(money(999.999), "1,000.00");
        assert_eq!(count(1_234_567u32), "1,234,567");
        assert_eq!(count(-12i64), "-12");
        assert_eq!(pct(0.1234), "12.3%");
    }

    #[test]
    fn table_aligns_columns() {
        let mut t = Table::new(["name", "n"]);
        t.row(["a", "1"]);
        t.row(["long name", "1,000"]);
        let r = t.render();
        let lines: Vec<&str> = r.lines().collect();
        assert_eq!(lines[0], "name       n");
        assert_eq!(lines[2], "a              1");
        assert_eq!(lines[3], "long name  1,000");
    }
}
