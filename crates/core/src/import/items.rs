//! Order-lines files: `order_id,product,quantity,amount` (a product name column too, or a unit
//! price instead of the line amount) with no customer and no date — the lines of orders already
//! imported, found by the order's key ([`order_key`] of the export's order id, the key the orders
//! import stores). Read as a stream like the orders ([`super::stream`]); the product line rules
//! are the orders import's own (SKU, else name; line amount, else unit price × quantity; a
//! negative quantity or amount is a return by [`LineItem::is_return`]).

use std::path::Path;

use serde::Serialize;

use super::columns::{self, Column, OrderField};
use super::orders::{generic_items, is_cancelled_id, line_item, opt, ItemColumns, LineItem};
use super::stream::{read_head, stream_body, Body, BLOCK};
use super::text;
use super::{ImportError, ImportOptions, Reject};
use crate::dates::parse_number;
use crate::model::order_key;

/// One line of an order-lines file.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemLine {
    /// The physical line of the file where the record starts.
    pub line: u64,
    /// [`order_key`] of `order_ref`.
    pub order_key: i64,
    /// The export's order id.
    pub order_ref: String,
    pub item: LineItem,
    /// The record as read, fields joined by the delimiter (for the rejects of unknown orders).
    pub record: String,
}

/// The lines and rejected records of a run of records, in file order.
#[derive(Debug, Default)]
pub struct ItemsFeed {
    pub lines: Vec<ItemLine>,
    pub rejects: Vec<Reject>,
}

/// What a streamed read of an order-lines file found, besides the lines.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ItemsSummary {
    pub rows_read: u64,
    /// Records read as lines (their orders are looked up when they are stored).
    pub rows_parsed: u64,
    pub rows_rejected: u64,
    pub columns: Vec<(String, String)>,
    pub delimiter: char,
    /// The order id column (1-based index, header), for rejects of unknown orders.
    pub order_column: (usize, String),
    pub notes: Vec<String>,
}

/// Resolved columns of an order-lines file.
struct ItemsLayout {
    delimiter: u8,
    decimal_comma: bool,
    order_id: Column,
    quantity: Option<Column>,
    amount: Option<Column>,
    items: ItemColumns,
    columns: Vec<(String, String)>,
}

/// A header read: its fields, the delimiter, and the fields each column was matched to.
type Header = (Vec<String>, u8, Vec<(OrderField, Column)>);

fn resolve(file: &Path, header_line: &str, opts: &ImportOptions) -> Result<Header, ImportError> {
    let delimiter = opts
        .delimiter
        .unwrap_or_else(|| text::sniff_delimiter(header_line));
    let headers = text::split_header(header_line, delimiter);
    let resolved = columns::resolve(
        file,
        &headers,
        OrderField::ALL,
        OrderField::key,
        OrderField::synonyms,
        OrderField::from_key,
        &opts.mapping,
    )?;
    Ok((headers, delimiter, resolved))
}

/// Whether a header line is an order-lines file's: an order id and a product, an amount or unit
/// price, and neither a customer (id or email) nor a date — so `retain import orders` can hand
/// such a file to the order-lines import.
pub fn is_items_header(file: &Path, opts: &ImportOptions) -> Result<bool, ImportError> {
    let head = read_head(file)?;
    let (_, _, resolved) = resolve(file, &head.header_line, opts)?;
    let has = |f: OrderField| resolved.iter().any(|(x, _)| *x == f);
    Ok(has(OrderField::OrderId)
        && has(OrderField::Product)
        && (has(OrderField::Amount) || has(OrderField::UnitPrice))
        && !has(OrderField::CustomerId)
        && !has(OrderField::Email)
        && !has(OrderField::OrderDate))
}

fn layout(
    file: &Path,
    header_line: &str,
    opts: &ImportOptions,
) -> Result<ItemsLayout, ImportError> {
    let (headers, delimiter, resolved) = resolve(file, header_line, opts)?;
    if headers.len() < 2 || headers.iter().all(|h| h.is_empty()) {
        return Err(ImportError::NotCsv {
            file: file.to_path_buf(),
            reason: format!(
                "the first line has {} field(s) separated by '{}'; expected a header with an order id, a product and an amount column",
                headers.len(),
                char::from(delimiter).escape_default()
            ),
        });
    }
    let norm: Vec<String> = headers.iter().map(|h| columns::normalize(h)).collect();
    let get = |f: OrderField| {
        resolved
            .iter()
            .find(|(x, _)| *x == f)
            .map(|(_, c)| c.clone())
    };
    let by_name = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| norm.iter().position(|h| h == n))
            .map(|index| Column {
                index,
                header: headers[index].clone(),
            })
    };
    let quantity = get(OrderField::Quantity);
    let unit_price = get(OrderField::UnitPrice);
    let amount = get(OrderField::Amount);
    let mut items = generic_items(
        get(OrderField::Product),
        quantity.clone(),
        unit_price.clone(),
        &by_name,
    );
    // The amount of a line of an order is the line's total.
    items.total = amount.clone();
    let order_id = get(OrderField::OrderId);
    let mut missing = Vec::new();
    if order_id.is_none() {
        missing.push("an order id (e.g. order_id, InvoiceNo, order_number)");
    }
    if items.sku.is_none() && items.name.is_none() {
        missing.push("a product (e.g. product, sku, StockCode, Description)");
    }
    if amount.is_none() && unit_price.is_none() {
        missing.push("a line amount (e.g. amount, total) or a unit price (UnitPrice, price)");
    }
    let Some(order_id) = order_id.filter(|_| missing.is_empty()) else {
        return Err(ImportError::MissingColumns {
            file: file.to_path_buf(),
            missing: missing.join("; "),
            found: headers.join(", "),
        });
    };
    let mut columns: Vec<(String, String)> = vec![("order_id".into(), order_id.header.clone())];
    for (key, c) in [
        ("product", &items.sku),
        ("product_name", &items.name),
        ("quantity", &quantity),
        ("amount", &amount),
        ("unit_price", &unit_price),
    ] {
        if let Some(c) = c {
            columns.push((key.to_string(), c.header.clone()));
        }
    }
    Ok(ItemsLayout {
        delimiter,
        decimal_comma: opts.decimal_comma,
        order_id,
        quantity,
        amount,
        items,
        columns,
    })
}

impl ItemsLayout {
    /// One record: its line, or why it cannot be one.
    fn parse(&self, line: u64, fields: &[&str]) -> Result<ItemLine, Reject> {
        let reject = |column: Option<&Column>, reason: String| Reject {
            line,
            column: column.map(|c| (c.index + 1, c.header.clone())),
            reason,
            record: fields.join(&char::from(self.delimiter).to_string()),
        };
        let Some(order_ref) = fields
            .get(self.order_id.index)
            .copied()
            .filter(|s| !s.is_empty())
        else {
            return Err(reject(Some(&self.order_id), "no order id".into()));
        };
        let product = self.items.sku.as_ref().or(self.items.name.as_ref());
        if opt(fields, &self.items.sku)
            .or(opt(fields, &self.items.name))
            .is_none()
        {
            return Err(reject(product, "no product".into()));
        }
        // Values that are given must be numbers; the line's rules are the orders import's.
        for c in [&self.quantity, &self.amount, &self.items.unit_price] {
            if let Some(raw) = opt(fields, c) {
                if parse_number(raw, self.decimal_comma).is_none() {
                    return Err(reject(
                        c.as_ref(),
                        format!(
                            "'{raw}' is not a number{}",
                            if !self.decimal_comma && raw.contains(',') && !raw.contains('.') {
                                " (use --decimal-comma for values like 12,50)"
                            } else {
                                ""
                            }
                        ),
                    ));
                }
            }
        }
        if opt(fields, &self.amount)
            .or(opt(fields, &self.items.unit_price))
            .is_none()
        {
            return Err(reject(
                self.amount.as_ref().or(self.items.unit_price.as_ref()),
                format!(
                    "no {what}",
                    what = if self.amount.is_some() {
                        "amount"
                    } else {
                        "unit price"
                    }
                ),
            ));
        }
        let read = self
            .items
            .read(
                fields,
                self.decimal_comma,
                None,
                None,
                is_cancelled_id(order_ref),
            )
            .ok_or_else(|| reject(product, "no product".into()))?;
        let item = line_item(read)
            .ok_or_else(|| reject(self.amount.as_ref(), "amount out of range".into()))?;
        Ok(ItemLine {
            line,
            order_key: order_key(order_ref),
            order_ref: order_ref.to_string(),
            item,
            record: fields.join(&char::from(self.delimiter).to_string()),
        })
    }
}

/// Reads an order-lines file block by block and hands each group of lines to `sink` in file
/// order; `sink` returns false to stop early. File-level problems (empty, binary, no columns,
/// truncated) are errors, as is the first bad record under `strict`.
pub fn stream_items(
    file: &Path,
    opts: &ImportOptions,
    progress: &(dyn Fn(u64) + Sync),
    sink: &mut dyn FnMut(ItemsFeed) -> bool,
) -> Result<ItemsSummary, ImportError> {
    stream_items_in_blocks(file, opts, BLOCK, progress, sink)
}

/// [`stream_items`] with blocks of about `block` bytes.
pub(crate) fn stream_items_in_blocks(
    file: &Path,
    opts: &ImportOptions,
    block: usize,
    progress: &(dyn Fn(u64) + Sync),
    sink: &mut dyn FnMut(ItemsFeed) -> bool,
) -> Result<ItemsSummary, ImportError> {
    let head = read_head(file)?;
    let lay = layout(file, &head.header_line, opts)?;
    let header_fields = text::split_header(&head.header_line, lay.delimiter).len();
    let mut summary = ItemsSummary {
        columns: lay.columns.clone(),
        delimiter: char::from(lay.delimiter),
        order_column: (lay.order_id.index + 1, lay.order_id.header.clone()),
        ..Default::default()
    };
    let legacy = stream_body(
        file,
        &Body {
            delimiter: lay.delimiter,
            header_fields,
            legacy: head.legacy,
            block,
        },
        progress,
        &|line, fields| lay.parse(line, fields),
        &mut |parsed: Vec<Result<ItemLine, Reject>>| {
            let mut feed = ItemsFeed::default();
            for p in parsed {
                summary.rows_read += 1;
                match p {
                    Ok(l) => {
                        summary.rows_parsed += 1;
                        feed.lines.push(l);
                    }
                    Err(reject) => {
                        if opts.strict {
                            return Err(ImportError::Strict {
                                file: file.to_path_buf(),
                                reject,
                            });
                        }
                        summary.rows_rejected += 1;
                        feed.rejects.push(reject);
                    }
                }
            }
            Ok(sink(feed))
        },
    )?;
    if legacy {
        summary
            .notes
            .push("the file is not UTF-8 (in part or whole); it was read as Windows-1252".into());
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(
        csv: &str,
        opts: &ImportOptions,
        block: usize,
    ) -> Result<(Vec<ItemLine>, Vec<Reject>, ItemsSummary), ImportError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lines.csv");
        std::fs::write(&path, csv).expect("write");
        let mut lines = Vec::new();
        let mut rejects = Vec::new();
        let summary = stream_items_in_blocks(&path, opts, block, &|_| {}, &mut |f| {
            lines.extend(f.lines);
            rejects.extend(f.rejects);
            true
        })?;
        Ok((lines, rejects, summary))
    }

    const PLAIN: &str = "order_id,product,quantity,amount\n\
A1,SKU-1,2,10.00\n\
A1,SKU-2,1,4.50\n\
A2,SKU-1,-1,-5.00\n\
A3,SKU-3,1,-3.00\n\
,SKU-1,1,1.00\n\
A4,,1,1.00\n\
A5,SKU-1,two,1.00\n\
A6,SKU-1,1,\n";

    #[test]
    fn plain_lines_are_read_with_returns_and_rejects() {
        for block in [1, 7, 64, 1 << 20] {
            let (lines, rejects, s) = read(PLAIN, &ImportOptions::default(), block).expect("read");
            assert_eq!((s.rows_read, s.rows_parsed, s.rows_rejected), (8, 4, 4));
            assert_eq!(s.order_column, (1, "order_id".to_string()));
            let keys: Vec<i64> = lines.iter().map(|l| l.order_key).collect();
            assert_eq!(
                keys,
                vec![
                    order_key("A1"),
                    order_key("A1"),
                    order_key("A2"),
                    order_key("A3")
                ]
            );
            assert_eq!(lines[0].item.product_id, "SKU-1");
            assert_eq!((lines[0].item.quantity, lines[0].item.amount), (2, 1000));
            assert!(!lines[0].item.is_return());
            // A negative quantity and amount, and a negative amount alone, are returns.
            assert!(lines[2].item.is_return());
            assert_eq!((lines[2].item.quantity, lines[2].item.amount), (-1, -500));
            assert!(lines[3].item.is_return());
            assert_eq!(lines[3].line, 5);
            let why: Vec<(u64, Option<usize>, &str)> = rejects
                .iter()
                .map(|r| (r.line, r.column.as_ref().map(|c| c.0), r.reason.as_str()))
                .collect();
            assert_eq!(
                why,
                vec![
                    (6, Some(1), "no order id"),
                    (7, Some(2), "no product"),
                    (8, Some(3), "'two' is not a number"),
                    (9, Some(4), "no amount"),
                ]
            );
        }
    }

    #[test]
    fn online_retail_style_columns_and_unit_prices() {
        let csv = "InvoiceNo;StockCode;Description;Quantity;UnitPrice\n\
536365;85123A;WHITE HANGING HEART;6;2,55\n\
C536379;D;Discount;1;27,50\n";
        let opts = ImportOptions {
            decimal_comma: true,
            ..Default::default()
        };
        let (lines, rejects, s) = read(csv, &opts, 1 << 20).expect("read");
        assert!(rejects.is_empty(), "{rejects:?}");
        assert_eq!(s.delimiter, ';');
        assert_eq!(lines[0].item.product_id, "85123A");
        assert_eq!(lines[0].item.name.as_deref(), Some("WHITE HANGING HEART"));
        assert_eq!((lines[0].item.quantity, lines[0].item.amount), (6, 1530));
        // A cancellation invoice's line is a return.
        assert!(lines[1].item.is_return());
        assert_eq!((lines[1].item.quantity, lines[1].item.amount), (-1, -2750));
    }

    #[test]
    fn missing_columns_and_strict_are_errors() {
        let e = read("order_id,quantity\nA,1\n", &ImportOptions::default(), 64)
            .expect_err("no product");
        let msg = e.to_string();
        assert!(
            msg.contains("a product") && msg.contains("a line amount"),
            "{msg}"
        );
        let strict = ImportOptions {
            strict: true,
            ..Default::default()
        };
        let e = read(PLAIN, &strict, 64).expect_err("strict");
        assert!(e.to_string().contains("line 6"), "{e}");
    }

    #[test]
    fn the_header_tells_lines_from_orders() {
        let dir = tempfile::tempdir().expect("tempdir");
        let check = |csv: &str| {
            let p = dir.path().join("f.csv");
            std::fs::write(&p, csv).expect("write");
            is_items_header(&p, &ImportOptions::default()).expect("head")
        };
        assert!(check("order_id,product,quantity,amount\nA,B,1,2\n"));
        assert!(check("InvoiceNo,StockCode,Quantity,UnitPrice\nA,B,1,2\n"));
        assert!(!check(
            "customer_id,order_id,date,product,quantity,amount\nc,A,2024-01-01,B,1,2\n"
        ));
        assert!(!check("order_id,date,amount\nA,2024-01-01,2\n"));
    }
}
