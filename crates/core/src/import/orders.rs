//! Orders files: each record is an order or a line item; amounts are given or computed as
//! quantity × unit price; returns and cancellations become negative orders; line items of one
//! order collapse into one [`Order`]; rows without a customer are counted, not fatal.
//!
//! [`scan_features`] is the same reading folded straight into per-customer features without
//! materialising orders, for analysing a large export quickly.

use rustc_hash::FxHashMap as HashMap;
use std::borrow::Cow;
use std::path::Path;

use chrono::NaiveDateTime;
use serde::Serialize;

use super::columns::{self, Column, OrderField};
pub use super::scan::{scan_features, scan_file, ScanStats};
use super::text;
use super::{ImportError, ImportOptions, Reject};
use crate::dates::{detect_date_format, parse_number, DateCache, DateFormat};
use crate::model::{
    content_order_key, content_order_ref, day_of, from_minor, is_return, order_key, product_key,
    to_minor, Day, Minor, Order,
};

/// The outcome of reading an orders file.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OrdersImport {
    pub orders: Vec<Order>,
    /// Non-blank records after the header.
    pub rows_read: u64,
    /// Records that became (part of) an order.
    pub rows_imported: u64,
    /// Records rejected for a bad value (not counting those without a customer).
    pub rows_rejected: u64,
    /// Records with no customer id: they cannot be attributed and are skipped.
    pub rows_without_customer: u64,
    /// Every skipped record with its line and reason (rejected and without customer).
    pub rejects: Vec<Reject>,
    /// Orders that are returns or cancellations.
    pub returns: u64,
    /// How fields were found: (field, header).
    pub columns: Vec<(String, String)>,
    pub delimiter: char,
    pub date_format: String,
    /// The date format was a guess between day-first and month-first.
    pub date_format_ambiguous: bool,
    /// Things the user should know (encoding guesses, fallbacks).
    pub notes: Vec<String>,
    /// The export's platform profile.
    pub profile: Profile,
    /// Further line-item rows of a platform export's orders (part of an order already read).
    pub line_items: u64,
    /// Orders the platform marks cancelled, voided, unpaid or test, by reason: skipped.
    pub skipped: Vec<(String, u64)>,
}

impl OrdersImport {
    fn note_skipped(&mut self, why: &str) {
        match self.skipped.iter_mut().find(|(w, _)| w == why) {
            Some((_, n)) => *n += 1,
            None => self.skipped.push((why.to_string(), 1)),
        }
    }
}

/// One imported row as the store takes it: an order, a line item of one, or a platform refund.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderLine {
    pub customer: String,
    /// [`order_key`] of `order_ref`; for a [`LineMode::Distinct`] row the store adds the
    /// occurrence number when an identical row came earlier in the same import.
    pub order_key: i64,
    /// The export's order id; `None` for a row without one (its key comes from its content).
    pub order_ref: Option<String>,
    pub at: NaiveDateTime,
    pub day: Day,
    /// Signed amount in minor units: cancelled and returned lines are negative.
    pub amount: Minor,
    pub items: u32,
    pub cancelled: bool,
    pub email: Option<String>,
    pub currency: Option<String>,
    pub product: Option<String>,
    pub mode: LineMode,
    /// The product line this row carries, when the export names a product.
    pub item: Option<LineItem>,
}

/// One product line of an order: what was bought, how many, for how much. A line's return is
/// decided by the one returns rule ([`LineItem::is_return`] → [`is_return`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LineItem {
    /// [`product_key`] of `product_id`.
    pub product_key: i64,
    /// The export's product id or SKU (the name when it has neither).
    pub product_id: String,
    pub name: Option<String>,
    /// Units, signed: a returned line has a negative quantity.
    pub quantity: i64,
    /// Signed line amount in minor units.
    pub amount: Minor,
    pub cancelled: bool,
}

impl LineItem {
    pub fn is_return(&self) -> bool {
        is_return(self.amount, self.cancelled || self.quantity < 0)
    }
}

impl OrderLine {
    /// The order this line starts, under `key`.
    fn to_order(&self, key: i64) -> Order {
        let base = self
            .order_ref
            .clone()
            .unwrap_or_else(|| content_order_ref(self.at, from_minor(self.amount)));
        let order_id = if key == self.order_key {
            base
        } else {
            format!("{}/{}", base, key - self.order_key)
        };
        Order {
            order_id,
            customer_id: self.customer.clone(),
            ordered_at: self.at,
            amount: from_minor(self.amount),
            items: self.items,
            is_return: self.amount < 0,
            currency: self.currency.clone(),
            email: self.email.clone(),
            product: self.product.clone(),
        }
    }
}

/// The orders a run of imported lines makes, in memory: the reference of the store's upsert
/// rules (line items add up, an id-less row that repeats is the next occurrence, order-level
/// rows replace), used by [`parse_orders`] and by the tests of the streaming import.
#[derive(Debug, Default)]
pub struct Collapse {
    /// (customer, key) → index in `orders`.
    index: HashMap<(String, i64), usize>,
    /// Each order with its net amount in minor units and whether a line was cancelled.
    orders: Vec<(Order, Minor, bool)>,
}

impl Collapse {
    pub fn push(&mut self, l: &OrderLine) {
        if l.mode == LineMode::ItemOnly {
            return;
        }
        let mut key = l.order_key;
        loop {
            match self.index.get(&(l.customer.clone(), key)) {
                Some(_) if l.mode == LineMode::Distinct => key += 1,
                Some(&i) => {
                    let (o, minor, cancelled) = &mut self.orders[i];
                    if l.mode == LineMode::Sum {
                        *minor += l.amount;
                        o.items = o.items.saturating_add(l.items);
                        o.ordered_at = o.ordered_at.min(l.at);
                        *cancelled |= l.cancelled;
                        if o.email.is_none() {
                            o.email = l.email.clone();
                        }
                        if o.currency.is_none() {
                            o.currency = l.currency.clone();
                        }
                    } else {
                        *o = l.to_order(key);
                        *minor = l.amount;
                        *cancelled = l.cancelled;
                    }
                    return;
                }
                None => {
                    self.index
                        .insert((l.customer.clone(), key), self.orders.len());
                    self.orders.push((l.to_order(key), l.amount, l.cancelled));
                    return;
                }
            }
        }
    }

    /// The orders in the order they were first seen, with the returns rule applied.
    pub fn finish(self) -> Vec<Order> {
        self.orders
            .into_iter()
            .map(|(mut o, minor, cancelled)| {
                o.amount = from_minor(minor);
                o.is_return = is_return(minor, cancelled);
                o
            })
            .collect()
    }
}

/// The stored key of an order id as [`parse_orders`] names orders: an id-less row's occurrence
/// suffix (`20240101T000000/12.5/2`) is the occurrence added to its content key.
pub fn stored_order_key(order_id: &str) -> i64 {
    if let Some((base, n)) = order_id.rsplit_once('/') {
        let is_content = base.len() > 16
            && base.as_bytes()[8] == b'T'
            && base.as_bytes()[15] == b'/'
            && base[..8].bytes().all(|b| b.is_ascii_digit())
            && base[9..15].bytes().all(|b| b.is_ascii_digit());
        if is_content {
            if let Ok(n) = n.parse::<i64>() {
                return order_key(base) + n;
            }
        }
    }
    order_key(order_id)
}

/// What one record became. (Short-lived, one per record: the large variant is the common one,
/// boxing it would cost an allocation per row.)
#[allow(clippy::large_enum_variant)]
pub(crate) enum Item {
    /// An order line and, for a platform refund, the refund as a return line.
    Lines([Option<OrderLine>; 2]),
    /// Rejected (with whether it was for want of a customer).
    Skip(Reject, bool),
    /// A further line-item row of an order already read, with its product line (an
    /// [`LineMode::ItemOnly`] line) when it names a product.
    Continuation(Option<OrderLine>),
    Skipped(&'static str),
}

/// A platform export whose columns and rules are known (`--profile`, or recognised by header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Any CSV: columns found by their names, line items summed into orders.
    #[default]
    Generic,
    /// Shopify's orders export: one row per line item, `Name` is the order, `Email` the customer;
    /// order fields (`Total`, `Financial Status`, `Refunded Amount`, `Cancelled at`) only on an
    /// order's first row.
    Shopify,
    /// WooCommerce's order export: `order_number`/`order_id`, `order_date`, `status`,
    /// `order_total`, `refunded_total`, `billing_email`; order fields repeated on item rows.
    WooCommerce,
}

impl Profile {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "generic" | "csv" => Some(Self::Generic),
            "shopify" => Some(Self::Shopify),
            "woocommerce" | "woo" => Some(Self::WooCommerce),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generic => "generic",
            Self::Shopify => "shopify",
            Self::WooCommerce => "woocommerce",
        }
    }

    /// Recognises a platform export by its normalised headers.
    fn detect(norm: &[String]) -> Self {
        let has = |h: &str| norm.iter().any(|n| n == h);
        if has("name")
            && has("email")
            && has("financialstatus")
            && has("total")
            && has("createdat")
            && (has("lineitemquantity") || has("lineitemname"))
        {
            Self::Shopify
        } else if has("orderdate")
            && has("ordertotal")
            && has("billingemail")
            && (has("ordernumber") || has("orderid"))
        {
            Self::WooCommerce
        } else {
            Self::Generic
        }
    }
}

/// How a row's amount joins the order it names, when that order already has a row in the same
/// import (rows of earlier imports are always replaced, so re-importing doubles nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineMode {
    /// A row without an order id is an order of its own: an identical row is another order (its
    /// key gets the next occurrence number).
    Distinct,
    /// A line item: amounts, quantities and cancellations add up into its order.
    Sum,
    /// An order-level row (a platform export's order total): repeated rows say the same thing.
    Replace,
    /// A platform export's further line-item row: only its product line is stored, the order
    /// came from the order's first row.
    ItemOnly,
}

impl LineMode {
    /// The mode as stored in the import's staging tables: 0 distinct, 1 sum, 2 replace.
    pub fn code(self) -> i64 {
        match self {
            Self::Distinct => 0,
            Self::Sum => 1,
            Self::Replace => 2,
            Self::ItemOnly => 3,
        }
    }
}

/// Resolved columns and formats of an orders file.
pub(crate) struct Layout {
    pub(crate) delimiter: u8,
    pub(crate) profile: Profile,
    /// Profile columns: refunded amount, cancellation time, payment method.
    pub(crate) refunded: Option<Column>,
    pub(crate) cancelled_at: Option<Column>,
    pub(crate) payment: Option<Column>,
    pub(crate) customer: Option<Column>,
    pub(crate) customer_from_email: bool,
    pub(crate) date: Column,
    pub(crate) amount: Option<Column>,
    pub(crate) quantity: Option<Column>,
    pub(crate) unit_price: Option<Column>,
    pub(crate) order_id: Option<Column>,
    pub(crate) email: Option<Column>,
    pub(crate) product: Option<Column>,
    pub(crate) currency: Option<Column>,
    pub(crate) status: Option<Column>,
    /// Product line columns: id/SKU, name, quantity, unit price, line total, refunded amount.
    pub(crate) items: ItemColumns,
    pub(crate) date_format: DateFormat,
    pub(crate) date_format_ambiguous: bool,
    pub(crate) decimal_comma: bool,
    pub(crate) columns: Vec<(String, String)>,
}

/// Where a record's product line is.
#[derive(Debug, Clone, Default)]
pub(crate) struct ItemColumns {
    pub(crate) sku: Option<Column>,
    pub(crate) name: Option<Column>,
    pub(crate) quantity: Option<Column>,
    pub(crate) unit_price: Option<Column>,
    pub(crate) total: Option<Column>,
    pub(crate) refunded: Option<Column>,
}

impl ItemColumns {
    fn any(&self) -> bool {
        self.sku.is_some() || self.name.is_some()
    }

    /// The record's product line: its id (SKU, else name), quantity and line amount (the line
    /// total, else unit price × quantity, else the row's own amount); a refunded or cancelled
    /// line is negative.
    pub(crate) fn read<'a>(
        &self,
        fields: &[&'a str],
        decimal_comma: bool,
        row_quantity: Option<f64>,
        row_amount: Option<f64>,
        cancelled: bool,
    ) -> Option<RowItem<'a>> {
        let ic = self;
        if !ic.any() {
            return None;
        }
        let text = |c: &Option<Column>| opt(fields, c).map(str::trim).filter(|s| !s.is_empty());
        let sku = text(&ic.sku);
        let name = text(&ic.name);
        let id = sku.or(name)?;
        let num = |c: &Option<Column>| opt(fields, c).and_then(|v| parse_number(v, decimal_comma));
        let mut quantity = num(&ic.quantity).or(row_quantity).unwrap_or(1.0);
        let mut amount = match (num(&ic.total), num(&ic.unit_price)) {
            (Some(t), _) => t,
            (None, Some(p)) => p * quantity.abs(),
            (None, None) => row_amount?,
        };
        let mut cancelled = cancelled;
        let refunded = num(&ic.refunded).map_or(0.0, f64::abs);
        if refunded > 0.0 {
            if refunded + 0.005 >= amount.abs() {
                cancelled = true;
            } else {
                amount -= refunded;
            }
        }
        if (cancelled || quantity < 0.0) && amount > 0.0 {
            amount = -amount;
        }
        if cancelled && quantity > 0.0 {
            quantity = -quantity;
        }
        Some(RowItem {
            id,
            name,
            quantity,
            amount,
            cancelled,
        })
    }
}

/// A generic file's product line columns: the SKU by its usual names, the name from the product
/// column (when that is not the SKU) or a description column; quantity and unit price as given.
pub(crate) fn generic_items(
    product: Option<Column>,
    quantity: Option<Column>,
    unit_price: Option<Column>,
    by_name: &dyn Fn(&[&str]) -> Option<Column>,
) -> ItemColumns {
    let sku = by_name(&[
        "stockcode",
        "sku",
        "productid",
        "productcode",
        "itemsku",
        "articlenumber",
    ]);
    let name = product
        .filter(|c| sku.as_ref().map(|s| s.index) != Some(c.index))
        .or_else(|| by_name(&["description", "productname", "itemname"]))
        .filter(|c| sku.as_ref().map(|s| s.index) != Some(c.index));
    ItemColumns {
        sku,
        name,
        quantity,
        unit_price,
        total: None,
        refunded: None,
    }
}

/// A record's product line as read, before keys.
pub(crate) struct RowItem<'a> {
    pub(crate) id: &'a str,
    pub(crate) name: Option<&'a str>,
    pub(crate) quantity: f64,
    pub(crate) amount: f64,
    pub(crate) cancelled: bool,
}

/// One record, parsed.
pub(crate) struct Row<'a> {
    pub(crate) customer: Cow<'a, str>,
    pub(crate) order_id: Option<&'a str>,
    pub(crate) at: NaiveDateTime,
    pub(crate) amount: f64,
    quantity: Option<f64>,
    pub(crate) cancelled: bool,
    email: Option<&'a str>,
    product: Option<&'a str>,
    currency: Option<&'a str>,
    mode: LineMode,
    /// A platform export's refunded amount (positive): recorded as a return of the order.
    refund: Option<f64>,
    item: Option<RowItem<'a>>,
}

/// A platform export's further line-item row: its order and product line.
pub(crate) struct ContinuationRow<'a> {
    customer: Cow<'a, str>,
    order_id: &'a str,
    at: NaiveDateTime,
    item: RowItem<'a>,
}

pub(crate) enum Parsed<'a> {
    Row(Row<'a>),
    NoCustomer,
    Reject(Option<&'a Column>, String),
    /// A platform export's further line-item row of an order already read (with its product
    /// line when it can be read).
    LineItem(Option<ContinuationRow<'a>>),
    /// An order the platform marks as cancelled, voided or a test: skipped and counted.
    Skipped(&'static str),
}

/// Header names of the platform profiles' own columns.
fn profile_mapping(profile: Profile, headers: &[String]) -> Vec<(String, String)> {
    let norm: Vec<String> = headers.iter().map(|h| columns::normalize(h)).collect();
    let find = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| norm.iter().position(|h| h == n))
            .map(|i| headers[i].clone())
    };
    let fields: &[(&str, &[&str])] = match profile {
        Profile::Generic => &[],
        Profile::Shopify => &[
            ("email", &["email"]),
            ("order_id", &["name"]),
            ("order_date", &["createdat"]),
            ("amount", &["total"]),
            ("status", &["financialstatus"]),
            ("currency", &["currency"]),
            ("quantity", &["lineitemquantity"]),
            ("product", &["lineitemname", "lineitemsku"]),
        ],
        Profile::WooCommerce => &[
            ("email", &["billingemail"]),
            ("order_id", &["ordernumber", "orderid"]),
            ("order_date", &["orderdate"]),
            ("amount", &["ordertotal"]),
            ("status", &["status", "orderstatus"]),
            ("currency", &["ordercurrency", "currency"]),
            ("quantity", &["itemquantity"]),
            ("product", &["itemname", "itemsku"]),
        ],
    };
    fields
        .iter()
        .filter_map(|(f, names)| find(names).map(|h| (f.to_string(), h)))
        .collect()
}

/// Resolves the columns and formats of an orders file from its header line and a sample of its
/// first records.
pub(crate) fn layout(
    file: &Path,
    header_line: &str,
    sample_body: &str,
    opts: &ImportOptions,
) -> Result<Layout, ImportError> {
    let delimiter = opts
        .delimiter
        .unwrap_or_else(|| text::sniff_delimiter(header_line));
    let headers = text::split_header(header_line, delimiter);
    if headers.len() < 2 || headers.iter().all(|h| h.is_empty()) {
        return Err(ImportError::NotCsv {
            file: file.to_path_buf(),
            reason: format!(
                "the first line has {} field(s) separated by '{}'; expected a header with at least a customer, a date and an amount column",
                headers.len(),
                char::from(delimiter).escape_default()
            ),
        });
    }
    let norm: Vec<String> = headers.iter().map(|h| columns::normalize(h)).collect();
    let profile = opts.profile.unwrap_or_else(|| Profile::detect(&norm));
    let mut mapping = profile_mapping(profile, &headers);
    mapping.extend(opts.mapping.iter().cloned());
    let resolved = columns::resolve(
        file,
        &headers,
        OrderField::ALL,
        OrderField::key,
        OrderField::synonyms,
        OrderField::from_key,
        &mapping,
    )?;
    let by_name = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| norm.iter().position(|h| h == n))
            .map(|index| Column {
                index,
                header: headers[index].clone(),
            })
    };
    let (refunded, cancelled_at, payment) = match profile {
        Profile::Generic => (None, None, None),
        Profile::Shopify => (
            by_name(&["refundedamount"]),
            by_name(&["cancelledat"]),
            by_name(&["paymentmethod"]),
        ),
        Profile::WooCommerce => (
            by_name(&["refundedtotal", "orderrefunds", "refundtotal"]),
            None,
            by_name(&["paymentmethod"]),
        ),
    };
    let get = |f: OrderField| {
        resolved
            .iter()
            .find(|(x, _)| *x == f)
            .map(|(_, c)| c.clone())
    };
    let email = get(OrderField::Email);
    let mut customer = match profile {
        // Platform exports identify customers by their email.
        Profile::Generic => get(OrderField::CustomerId),
        Profile::Shopify | Profile::WooCommerce => None,
    };
    let mut customer_from_email = false;
    if customer.is_none() && email.is_some() {
        customer = email.clone();
        customer_from_email = true;
    }
    let date = get(OrderField::OrderDate);
    let amount = get(OrderField::Amount);
    let quantity = get(OrderField::Quantity);
    let unit_price = get(OrderField::UnitPrice);
    let mut missing = Vec::new();
    if customer.is_none() {
        missing.push("a customer id (e.g. CustomerID, customer_id, client) or an email column");
    }
    if date.is_none() {
        missing.push("an order date (e.g. InvoiceDate, order_date, date)");
    }
    if amount.is_none() && unit_price.is_none() {
        missing.push(
            "an amount (e.g. amount, total) or quantity and unit price (Quantity, UnitPrice)",
        );
    }
    let (Some(date), true, true) = (
        date,
        customer.is_some(),
        amount.is_some() || unit_price.is_some(),
    ) else {
        return Err(ImportError::MissingColumns {
            file: file.to_path_buf(),
            missing: missing.join("; "),
            found: headers.join(", "),
        });
    };
    // An unterminated last line may be a truncated record: it is no sample of the date format
    // (the truncation check reports it).
    let body = match memchr::memrchr(b'\n', sample_body.as_bytes()) {
        Some(i)
            if i + 1 < sample_body.len()
                && text::split_header(&sample_body[i + 1..], delimiter).len() < headers.len() =>
        {
            &sample_body[..=i]
        }
        _ => sample_body,
    };
    let (date_format, date_format_ambiguous) = match &opts.date_format {
        Some(p) => (DateFormat::new(p), false),
        None => {
            let samples = sample_column(body, delimiter, date.index, 2000);
            let detected =
                detect_date_format(samples.iter().map(String::as_str)).ok_or_else(|| {
                    ImportError::DateFormat {
                        file: file.to_path_buf(),
                        column: date.header.clone(),
                        reason: format!(
                            "cannot recognise the date format of values like {}",
                            samples
                                .iter()
                                .take(3)
                                .map(|s| format!("'{s}'"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    }
                })?;
            (detected.format, detected.ambiguous)
        }
    };
    let columns: Vec<(String, String)> = resolved
        .iter()
        .map(|(f, c)| (f.key().to_string(), c.header.clone()))
        .chain(customer_from_email.then(|| ("customer_id".to_string(), "(email)".to_string())))
        .collect();
    let mut columns: Vec<(String, String)> = columns;
    for (key, c) in [
        ("refunded", &refunded),
        ("cancelled_at", &cancelled_at),
        ("payment_method", &payment),
    ] {
        if let Some(c) = c {
            columns.push((key.to_string(), c.header.clone()));
        }
    }
    let product = get(OrderField::Product);
    let items = match profile {
        Profile::Generic => generic_items(
            product.clone(),
            quantity.clone(),
            unit_price.clone(),
            &by_name,
        ),
        Profile::Shopify => ItemColumns {
            sku: by_name(&["lineitemsku"]),
            name: by_name(&["lineitemname"]),
            quantity: by_name(&["lineitemquantity"]),
            unit_price: by_name(&["lineitemprice"]),
            total: None,
            refunded: None,
        },
        Profile::WooCommerce => ItemColumns {
            sku: by_name(&["itemsku", "itemproductid"]),
            name: by_name(&["itemname"]),
            quantity: by_name(&["itemquantity"]),
            unit_price: by_name(&["itemcost", "itemprice"]),
            total: by_name(&["itemtotal"]),
            refunded: by_name(&["itemrefunded"]),
        },
    };
    Ok(Layout {
        items,
        delimiter,
        profile,
        refunded,
        cancelled_at,
        payment,
        customer,
        customer_from_email,
        date,
        amount,
        quantity,
        unit_price,
        order_id: get(OrderField::OrderId),
        email,
        product,
        currency: get(OrderField::Currency),
        status: get(OrderField::Status),
        date_format,
        date_format_ambiguous,
        decimal_comma: opts.decimal_comma,
        columns,
    })
}

/// Up to `n` non-empty values of one column from the first records.
fn sample_column(body: &str, delimiter: u8, index: usize, n: usize) -> Vec<String> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(body.as_bytes());
    rdr.records()
        .map_while(Result::ok)
        .filter_map(|r| r.get(index).map(|s| s.trim().to_string()))
        .filter(|s| !s.is_empty())
        .take(n)
        .collect()
}

/// A customer id as exports write it: blank-like values mean none; `17850.0` (a float column
/// written by a spreadsheet or pandas) means `17850`.
fn clean_customer(raw: &str) -> Option<Cow<'_, str>> {
    let s = text::trim(raw);
    // Every blank-like value starts with one of these bytes and has at most 9 of them.
    let blank_like = |s: &str| {
        s.len() <= 9
            && matches!(s.as_bytes()[0], b'n' | b'N' | b'u' | b'U' | b'-' | b'#')
            && ["nan", "null", "none", "n/a", "na", "-", "#n/a", "undefined"]
                .iter()
                .any(|b| s.eq_ignore_ascii_case(b))
    };
    if s.is_empty() || blank_like(s) {
        return None;
    }
    let point = s.bytes().position(|b| b == b'.');
    if let Some((int, frac)) = point.map(|i| (&s[..i], &s[i + 1..])) {
        if !int.is_empty()
            && int.bytes().all(|b| b.is_ascii_digit())
            && !frac.is_empty()
            && frac.bytes().all(|b| b == b'0')
        {
            return Some(Cow::Borrowed(int));
        }
    }
    Some(Cow::Borrowed(s))
}

pub(crate) fn is_cancelled_id(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() > 1 && (b[0] == b'C' || b[0] == b'c') && b[1].is_ascii_digit()
}

fn is_return_status(status: &str) -> bool {
    let s = status.as_bytes();
    ["refund", "return", "cancel", "storn", "chargeback", "void"]
        .iter()
        .any(|k| {
            s.windows(k.len())
                .any(|w| w.eq_ignore_ascii_case(k.as_bytes()))
        })
}

pub(crate) fn opt<'a>(fields: &[&'a str], c: &Option<Column>) -> Option<&'a str> {
    c.as_ref()
        .and_then(|c| fields.get(c.index).copied())
        .filter(|s| !s.is_empty())
}

/// A record's order as every profile reads it, before the profile's own rules: customer, order
/// id, time, quantity and amount (as written: a return's sign is not applied yet).
pub(crate) struct OrderCore<'a> {
    pub(crate) customer: Cow<'a, str>,
    pub(crate) order_id: Option<&'a str>,
    pub(crate) at: NaiveDateTime,
    pub(crate) amount: f64,
    pub(crate) quantity: Option<f64>,
}

/// Why a record is no order: [`Parsed::NoCustomer`] or [`Parsed::Reject`].
pub(crate) enum NotOrder<'a> {
    NoCustomer,
    Reject(Option<&'a Column>, String),
}

impl<'a> From<NotOrder<'a>> for Parsed<'a> {
    fn from(e: NotOrder<'a>) -> Self {
        match e {
            NotOrder::NoCustomer => Parsed::NoCustomer,
            NotOrder::Reject(c, why) => Parsed::Reject(c, why),
        }
    }
}

/// The amount with a return's sign: negative when the record is cancelled or its quantity is.
fn signed_amount(amount: f64, cancelled: bool, quantity: Option<f64>) -> f64 {
    if (cancelled || quantity.is_some_and(|q| q < 0.0)) && amount > 0.0 {
        -amount
    } else {
        amount
    }
}

impl Layout {
    fn parse<'a>(&'a self, fields: &[&'a str]) -> Parsed<'a> {
        self.parse_with(fields, &mut DateCache::none())
    }

    /// The columns a generic file's order rules ([`Self::generic_order`]) read, by index.
    pub(crate) fn order_columns(&self) -> impl Iterator<Item = usize> + '_ {
        [
            &self.customer,
            &self.amount,
            &self.quantity,
            &self.unit_price,
            &self.order_id,
            &self.status,
        ]
        .into_iter()
        .flatten()
        .chain(std::iter::once(&self.date))
        .map(|c| c.index)
    }

    /// A generic file's order from one record (`fields`: its fields up to the last of the
    /// [`Self::order_columns`] at least; a missing one reads as empty): [`Self::order_core`], cancelled by a `C…` order id or a return
    /// status, with the amount signed; the `Err` says why the record is none. Reads only the
    /// [`Self::order_columns`]. The one implementation of these rules: [`Self::parse_with`]
    /// reads a generic record through it, and so does the scan's column-projected reader.
    #[inline]
    pub(crate) fn generic_order<'a>(
        &'a self,
        fields: &[&'a str],
        dates: &mut DateCache,
    ) -> Result<(OrderCore<'a>, bool), NotOrder<'a>> {
        let mut core = self.order_core(fields, dates)?;
        let cancelled = core.order_id.is_some_and(is_cancelled_id)
            || opt(fields, &self.status).is_some_and(is_return_status);
        core.amount = signed_amount(core.amount, cancelled, core.quantity);
        Ok((core, cancelled))
    }

    /// The order fields every profile reads: customer, date, quantity, amount (or unit price ×
    /// quantity) and order id, in that order of checks.
    #[inline]
    fn order_core<'a>(
        &'a self,
        fields: &[&'a str],
        dates: &mut DateCache,
    ) -> Result<OrderCore<'a>, NotOrder<'a>> {
        let field = |c: &Column| fields.get(c.index).copied().unwrap_or("");
        let Some(customer) = self.customer_of(fields) else {
            return Err(NotOrder::NoCustomer);
        };
        let raw_date = field(&self.date);
        let Some(at) = dates.parse(&self.date_format, raw_date) else {
            let reason = if raw_date.is_empty() {
                "no order date".to_string()
            } else {
                format!(
                    "'{raw_date}' is not a date in the format {}",
                    self.date_format.pattern()
                )
            };
            return Err(NotOrder::Reject(Some(&self.date), reason));
        };
        let quantity = match &self.quantity {
            Some(c) if !field(c).is_empty() || self.amount.is_none() => {
                match self.number(field(c), "quantity") {
                    Ok(q) => Some(q),
                    Err(e) => return Err(NotOrder::Reject(Some(c), e)),
                }
            }
            _ => None,
        };
        let amount = match (&self.amount, &self.unit_price) {
            (Some(a), _) => match self.number(field(a), "amount") {
                Ok(v) => v,
                Err(e) => return Err(NotOrder::Reject(Some(a), e)),
            },
            (None, Some(p)) => match self.number(field(p), "unit price") {
                Ok(v) => v * quantity.unwrap_or(1.0),
                Err(e) => return Err(NotOrder::Reject(Some(p), e)),
            },
            (None, None) => return Err(NotOrder::Reject(None, "no amount".into())),
        };
        Ok(OrderCore {
            customer,
            order_id: opt(fields, &self.order_id),
            at,
            amount,
            quantity,
        })
    }

    /// A number of this file's format, or why the value is not one (`what`: the field's name).
    #[inline]
    fn number(&self, raw: &str, what: &str) -> Result<f64, String> {
        parse_number(raw, self.decimal_comma).ok_or_else(|| {
            if raw.is_empty() {
                format!("no {what}")
            } else {
                format!(
                    "'{raw}' is not a number{}",
                    if self.decimal_comma {
                        " (reading decimal commas)"
                    } else if raw.contains(',') && !raw.contains('.') {
                        " (use --decimal-comma for values like 12,50)"
                    } else {
                        ""
                    }
                )
            }
        })
    }

    /// [`Self::parse`] reading dates through `dates`.
    pub(crate) fn parse_with<'a>(
        &'a self,
        fields: &[&'a str],
        dates: &mut DateCache,
    ) -> Parsed<'a> {
        let field = |c: &Column| fields.get(c.index).copied().unwrap_or("");
        match self.profile {
            Profile::Generic => {}
            Profile::Shopify => {
                // Order fields are on an order's first row only: the rest are its line items.
                if self.amount.as_ref().is_some_and(|c| field(c).is_empty()) {
                    return Parsed::LineItem(self.continuation(fields));
                }
                if self
                    .cancelled_at
                    .as_ref()
                    .is_some_and(|c| !field(c).is_empty())
                {
                    return Parsed::Skipped("cancelled");
                }
                let status = self.status.as_ref().map_or("", |c| field(c));
                if status.eq_ignore_ascii_case("voided") {
                    return Parsed::Skipped("voided");
                }
                // Shopify's test gateway is called "Bogus Gateway".
                if self
                    .payment
                    .as_ref()
                    .is_some_and(|c| field(c).to_ascii_lowercase().contains("bogus"))
                {
                    return Parsed::Skipped("test order");
                }
            }
            Profile::WooCommerce => {
                let status = self
                    .status
                    .as_ref()
                    .map_or("", |c| field(c))
                    .to_ascii_lowercase();
                let status = status.strip_prefix("wc-").unwrap_or(&status);
                match status {
                    "cancelled" => return Parsed::Skipped("cancelled"),
                    "failed" | "pending" | "trash" | "draft" | "checkout-draft" => {
                        return Parsed::Skipped("not paid")
                    }
                    _ => {}
                }
            }
        }
        let (core, cancelled, mode, refund) = match self.profile {
            Profile::Generic => {
                let (core, cancelled) = match self.generic_order(fields, dates) {
                    Ok(o) => o,
                    Err(e) => return e.into(),
                };
                let mode = if core.order_id.is_some() {
                    LineMode::Sum
                } else {
                    LineMode::Distinct
                };
                (core, cancelled, mode, None)
            }
            Profile::Shopify | Profile::WooCommerce => {
                let mut core = match self.order_core(fields, dates) {
                    Ok(c) => c,
                    Err(e) => return e.into(),
                };
                // Refunds reduce revenue by the refunded amount; a refunded order without the
                // amount was refunded in full.
                let refunded = match &self.refunded {
                    Some(c) if !field(c).is_empty() => {
                        match self.number(field(c), "refunded amount") {
                            Ok(v) => v.abs(),
                            Err(e) => return Parsed::Reject(Some(c), e),
                        }
                    }
                    _ => 0.0,
                };
                let status = opt(fields, &self.status).unwrap_or("").to_ascii_lowercase();
                let refunded = if refunded == 0.0 && status.trim_start_matches("wc-") == "refunded"
                {
                    core.amount.abs()
                } else {
                    refunded
                };
                core.amount = signed_amount(core.amount, false, core.quantity);
                (
                    core,
                    false,
                    LineMode::Replace,
                    (refunded > 0.0).then_some(refunded),
                )
            }
        };
        let OrderCore {
            customer,
            order_id,
            at,
            amount,
            quantity,
        } = core;
        let item = match self.profile {
            Profile::Generic => self.row_item(fields, quantity, Some(amount), cancelled),
            Profile::Shopify => self.row_item(fields, None, None, false),
            Profile::WooCommerce => {
                let refunded_order = opt(fields, &self.status).is_some_and(|s| {
                    s.trim()
                        .trim_start_matches("wc-")
                        .eq_ignore_ascii_case("refunded")
                });
                self.row_item(fields, None, None, refunded_order)
            }
        };
        Parsed::Row(Row {
            item,
            mode,
            refund,
            customer,
            order_id,
            at,
            amount,
            quantity,
            cancelled,
            email: opt(fields, &self.email),
            product: opt(fields, &self.product),
            currency: opt(fields, &self.currency),
        })
    }

    /// The record's customer: the id column (cleaned) or the email (lowercased).
    #[inline]
    fn customer_of<'a>(&self, fields: &[&'a str]) -> Option<Cow<'a, str>> {
        let raw = fields
            .get(self.customer.as_ref()?.index)
            .copied()
            .unwrap_or("");
        if self.customer_from_email {
            let e = raw.trim();
            (!e.is_empty()).then(|| Cow::Owned(e.to_ascii_lowercase()))
        } else {
            clean_customer(raw)
        }
    }

    /// A platform export's further line-item row: its customer, order and product line, or
    /// `None` when one of them cannot be read (the row still counts as a line item).
    fn continuation<'a>(&self, fields: &[&'a str]) -> Option<ContinuationRow<'a>> {
        let customer = self.customer_of(fields)?;
        let order_id = opt(fields, &self.order_id)?;
        let at = self
            .date_format
            .parse(fields.get(self.date.index).copied().unwrap_or(""))?;
        let item = self.row_item(fields, None, None, false)?;
        Some(ContinuationRow {
            customer,
            order_id,
            at,
            item,
        })
    }

    /// The record's product line ([`ItemColumns::read`] with this file's number format).
    fn row_item<'a>(
        &self,
        fields: &[&'a str],
        row_quantity: Option<f64>,
        row_amount: Option<f64>,
        cancelled: bool,
    ) -> Option<RowItem<'a>> {
        self.items.read(
            fields,
            self.decimal_comma,
            row_quantity,
            row_amount,
            cancelled,
        )
    }

    /// Number of fields of the header line.
    pub(crate) fn header_fields(&self, header_line: &str) -> usize {
        text::split_header(header_line, self.delimiter).len()
    }

    /// What the user should know about how the file was read.
    pub(crate) fn notes(&self, legacy_encoding: bool) -> Vec<String> {
        let mut notes = Vec::new();
        if legacy_encoding {
            notes.push("the file is not UTF-8; it was read as Windows-1252".into());
        }
        if self.profile != Profile::Generic {
            notes.push(format!(
                "read as a {} orders export (use --profile generic to read it column by column)",
                self.profile.as_str()
            ));
        } else if self.customer_from_email {
            notes.push("no customer id column: customers are identified by their email".into());
        }
        if self.date_format_ambiguous {
            notes.push(format!(
                "dates like 01/02 could be day-first or month-first; read as {} (use --date-format to choose)",
                self.date_format.pattern()
            ));
        }
        notes
    }

    /// Turns one record into what the import stores.
    pub(crate) fn item(&self, line: u64, fields: &[&str]) -> Item {
        match self.parse(fields) {
            Parsed::Row(r) => {
                let Some(amount) = to_minor(r.amount) else {
                    return Item::Skip(
                        self.reject(
                            line,
                            fields,
                            self.amount.as_ref(),
                            "amount out of range".into(),
                        ),
                        false,
                    );
                };
                let order_ref = r.order_id.map(str::to_string);
                let key = match &order_ref {
                    Some(id) => order_key(id),
                    None => content_order_key(r.at, r.amount),
                };
                let day = day_of(r.at.date());
                let refund = r.refund.and_then(to_minor).map(|refund| {
                    let refund_ref = format!("{}#refund", order_ref.as_deref().unwrap_or(""));
                    OrderLine {
                        customer: r.customer.to_string(),
                        order_key: order_key(&refund_ref),
                        order_ref: Some(refund_ref),
                        at: r.at,
                        day,
                        amount: -refund,
                        items: 0,
                        cancelled: true,
                        email: r.email.map(str::to_string),
                        currency: r.currency.map(str::to_string),
                        product: None,
                        mode: LineMode::Replace,
                        item: None,
                    }
                });
                let item = r.item.and_then(line_item);
                let order = OrderLine {
                    item,
                    customer: r.customer.into_owned(),
                    order_key: key,
                    order_ref,
                    at: r.at,
                    day,
                    amount,
                    items: r
                        .quantity
                        .map_or(1, |q| q.abs().round().min(f64::from(u32::MAX)) as u32),
                    cancelled: r.cancelled,
                    email: r.email.map(str::to_string),
                    currency: r.currency.map(str::to_string),
                    product: r.product.map(str::to_string),
                    mode: r.mode,
                };
                Item::Lines([Some(order), refund])
            }
            Parsed::NoCustomer => Item::Skip(
                self.reject(
                    line,
                    fields,
                    self.customer.as_ref(),
                    "no customer id: the row cannot be attributed".into(),
                ),
                true,
            ),
            Parsed::Reject(col, reason) => {
                Item::Skip(self.reject(line, fields, col, reason), false)
            }
            Parsed::LineItem(c) => Item::Continuation(c.and_then(|c| {
                let item = line_item(c.item)?;
                Some(OrderLine {
                    customer: c.customer.into_owned(),
                    order_key: order_key(c.order_id),
                    order_ref: Some(c.order_id.to_string()),
                    at: c.at,
                    day: day_of(c.at.date()),
                    amount: 0,
                    items: 0,
                    cancelled: false,
                    email: None,
                    currency: None,
                    product: None,
                    mode: LineMode::ItemOnly,
                    item: Some(item),
                })
            })),
            Parsed::Skipped(why) => Item::Skipped(why),
        }
    }

    fn reject(
        &self,
        line: u64,
        fields: &[&str],
        column: Option<&Column>,
        reason: String,
    ) -> Reject {
        Reject {
            line,
            column: column.map(|c| (c.index + 1, c.header.clone())),
            reason,
            record: fields.join(&char::from(self.delimiter).to_string()),
        }
    }
}

/// A parsed product line with its key and amounts in minor units (`None` when out of range).
pub(crate) fn line_item(r: RowItem<'_>) -> Option<LineItem> {
    Some(LineItem {
        product_key: product_key(r.id),
        product_id: r.id.to_string(),
        name: r.name.map(str::to_string),
        quantity: r.quantity.round().clamp(-1e15, 1e15) as i64,
        amount: to_minor(r.amount)?,
        cancelled: r.cancelled,
    })
}

/// A whole orders file decoded, its layout read from the header and a sample of the body, and
/// the body checked for truncation: where [`parse_orders`] and the scan's whole-file path start.
pub(crate) struct DecodedOrders<'a> {
    pub(crate) text: text::Text<'a>,
    body_start: usize,
    pub(crate) lay: Layout,
}

impl DecodedOrders<'_> {
    /// The records after the header line.
    pub(crate) fn body(&self) -> &str {
        &self.text.text[self.body_start..]
    }
}

/// Decodes `bytes` and reads their layout (see [`DecodedOrders`]).
pub(crate) fn decode_orders<'a>(
    file: &Path,
    bytes: &'a [u8],
    opts: &ImportOptions,
) -> Result<DecodedOrders<'a>, ImportError> {
    let text = text::decode(file, bytes)?;
    let all: &str = &text.text;
    let header_line = text::first_line(all);
    let body_start = memchr::memchr(b'\n', all.as_bytes()).map_or(all.len(), |i| i + 1);
    let body = &all[body_start..];
    let lay = layout(file, header_line, body, opts)?;
    text::check_truncation(file, body, lay.delimiter, lay.header_fields(header_line), 2)?;
    Ok(DecodedOrders {
        text,
        body_start,
        lay,
    })
}

/// Reads an orders file that has been loaded into memory: the reference the streaming import
/// ([`super::stream`]) is tested against, and the reader for small files.
pub fn parse_orders(
    file: &Path,
    bytes: &[u8],
    opts: &ImportOptions,
) -> Result<OrdersImport, ImportError> {
    let decoded = decode_orders(file, bytes, opts)?;
    let lay = &decoded.lay;
    let chunks = text::for_each_chunk(
        decoded.body(),
        lay.delimiter,
        2,
        Vec::new,
        |v, line, fields| v.push(lay.item(line, fields)),
    );
    let mut out = OrdersImport {
        delimiter: char::from(lay.delimiter),
        date_format: lay.date_format.pattern().to_string(),
        date_format_ambiguous: lay.date_format_ambiguous,
        columns: lay.columns.clone(),
        notes: lay.notes(decoded.text.legacy_encoding),
        profile: lay.profile,
        ..Default::default()
    };
    let mut orders = Collapse::default();
    for item in chunks.into_iter().flatten() {
        out.rows_read += 1;
        let line = match item {
            Item::Skip(reject, no_customer) => {
                if no_customer {
                    out.rows_without_customer += 1;
                } else {
                    if opts.strict {
                        return Err(ImportError::Strict {
                            file: file.to_path_buf(),
                            reject,
                        });
                    }
                    out.rows_rejected += 1;
                }
                out.rejects.push(reject);
                continue;
            }
            Item::Continuation(_) => {
                out.line_items += 1;
                continue;
            }
            Item::Skipped(why) => {
                out.note_skipped(why);
                continue;
            }
            Item::Lines(lines) => lines,
        };
        out.rows_imported += 1;
        for l in line.into_iter().flatten() {
            orders.push(&l);
        }
    }
    out.orders = orders.finish();
    out.returns = out.orders.iter().filter(|o| o.is_return).count() as u64;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::customer_features;
    use chrono::NaiveDate;

    fn import(csv: &str, opts: &ImportOptions) -> OrdersImport {
        parse_orders(Path::new("t.csv"), csv.as_bytes(), opts).expect("imports")
    }

    #[test]
    fn online_retail_line_items_collapse_and_cancellations_are_returns() {
        let csv =
            "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\r\n\
536365,85123A,WHITE HANGING HEART,6,12/1/2010 8:26,2.55,17850.0,United Kingdom\r\n\
536365,71053,WHITE METAL LANTERN,6,12/1/2010 8:26,3.39,17850.0,United Kingdom\r\n\
536366,22633,HAND WARMER,6,12/1/2010 8:28,1.85,17850,United Kingdom\r\n\
C536379,D,Discount,-1,12/1/2010 9:41,27.50,14527,United Kingdom\r\n\
536380,22961,JAM MAKING SET,24,12/13/2010 9:41,1.45,,United Kingdom\r\n";
        let r = import(csv, &ImportOptions::default());
        assert_eq!(r.rows_read, 5);
        assert_eq!(r.rows_imported, 4);
        assert_eq!(r.rows_without_customer, 1);
        assert_eq!(r.rows_rejected, 0);
        assert_eq!(r.orders.len(), 3);
        assert_eq!(r.date_format, "%m/%d/%Y %H:%M");
        let first = r
            .orders
            .iter()
            .find(|o| o.order_id == "536365")
            .expect("order");
        assert_eq!(first.customer_id, "17850");
        assert!((first.amount - (6.0 * 2.55 + 6.0 * 3.39)).abs() < 1e-9);
        assert_eq!(first.items, 12);
        let ret = r
            .orders
            .iter()
            .find(|o| o.order_id == "C536379")
            .expect("return");
        assert!(ret.is_return);
        assert!((ret.amount + 27.5).abs() < 1e-9);
        assert_eq!(r.returns, 1);
        assert_eq!(r.rejects[0].line, 6);
    }

    #[test]
    fn day_first_semicolon_decimal_comma() {
        let csv = "\u{feff}Kunde;Datum;Betrag;Bestellnummer\n\
k1;31.01.2024;1.234,50;A1\n\
k1;01.02.2024;-34,50;A2\n\
k2;15.02.2024;10,00;A3\n";
        let r = import(
            csv,
            &ImportOptions {
                decimal_comma: true,
                ..Default::default()
            },
        );
        assert_eq!(r.delimiter, ';');
        assert_eq!(r.orders.len(), 3);
        let total: f64 = r.orders.iter().map(|o| o.amount).sum();
        assert!((total - 1210.0).abs() < 1e-9, "{total}");
        assert_eq!(r.date_format, "%d.%m.%Y");
        assert_eq!(r.returns, 1);
    }

    #[test]
    fn explicit_date_format_and_bad_rows_are_rejected_with_positions() {
        let csv = "customer_id,order_date,amount\na,05/03/2024,10\nb,not a date,5\nc,06/03/2024,12x\nd,07/03/2024,\n";
        let r = import(
            csv,
            &ImportOptions {
                date_format: Some("%d/%m/%Y".into()),
                ..Default::default()
            },
        );
        assert_eq!(r.orders.len(), 1);
        assert_eq!(
            r.orders[0].ordered_at.date(),
            NaiveDate::from_ymd_opt(2024, 3, 5).expect("d")
        );
        assert_eq!(r.rows_rejected, 3);
        let lines: Vec<u64> = r.rejects.iter().map(|x| x.line).collect();
        assert_eq!(lines, vec![3, 4, 5]);
        assert_eq!(r.rejects[0].column, Some((2, "order_date".into())));
        assert!(
            r.rejects[1].reason.contains("'12x' is not a number"),
            "{}",
            r.rejects[1].reason
        );
        assert!(r.rejects[2].reason.contains("no amount"));
        let strict = parse_orders(
            Path::new("t.csv"),
            csv.as_bytes(),
            &ImportOptions {
                strict: true,
                date_format: Some("%d/%m/%Y".into()),
                ..Default::default()
            },
        )
        .expect_err("strict");
        assert!(strict.to_string().contains("line 3"), "{strict}");
    }

    #[test]
    fn quantity_times_price_and_negative_quantity() {
        let csv = "client,date,qty,price\nx,2024-01-01,3,2.5\nx,2024-01-02,-1,2.5\n";
        let r = import(csv, &ImportOptions::default());
        assert_eq!(r.orders.len(), 2);
        assert!((r.orders[0].amount - 7.5).abs() < 1e-9);
        assert!(r.orders[1].is_return);
        assert!((r.orders[1].amount + 2.5).abs() < 1e-9);
    }

    #[test]
    fn reimport_yields_identical_order_ids() {
        let csv = "customer,date,amount\na,2024-01-01,5\na,2024-01-01,5\na,2024-01-02,7\n";
        let r1 = import(csv, &ImportOptions::default());
        let r2 = import(csv, &ImportOptions::default());
        assert_eq!(r1.orders.len(), 3, "identical rows are two orders");
        let ids1: Vec<_> = r1.orders.iter().map(|o| o.order_id.clone()).collect();
        let ids2: Vec<_> = r2.orders.iter().map(|o| o.order_id.clone()).collect();
        assert_eq!(ids1, ids2);
        let mut dedup = ids1.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), 3);
    }

    #[test]
    fn email_identifies_customers_when_no_id_column() {
        let csv = "Email,Created at,Total,Financial Status\nA@x.com,2024-01-01 10:00:00,10,paid\na@x.com,2024-01-02 10:00:00,5,refunded\n";
        let r = import(csv, &ImportOptions::default());
        assert_eq!(r.orders.len(), 2);
        assert!(r.orders.iter().all(|o| o.customer_id == "a@x.com"));
        assert!(r.orders[1].is_return);
        assert!(r.notes.iter().any(|n| n.contains("email")));
    }

    #[test]
    fn whole_file_errors() {
        let p = Path::new("t.csv");
        let o = ImportOptions::default();
        let e = parse_orders(p, b"", &o).expect_err("empty");
        assert!(matches!(e, ImportError::Empty { .. }));
        let e = parse_orders(p, b"just one column\nx\n", &o).expect_err("not csv");
        assert!(matches!(e, ImportError::NotCsv { .. }), "{e}");
        let e = parse_orders(p, b"foo,bar,baz\n1,2,3\n", &o).expect_err("no columns");
        assert!(e.to_string().contains("customer id"), "{e}");
        assert!(e.to_string().contains("foo, bar, baz"), "{e}");
        let e = parse_orders(p, b"customer,date,amount\na,2024-01-01,5\nb,2024-01", &o)
            .expect_err("trunc");
        assert!(matches!(e, ImportError::Truncated { line: 3, .. }), "{e}");
        let e = parse_orders(p, b"customer,date,amount\na,yesterday,5\n", &o).expect_err("dates");
        assert!(e.to_string().contains("'yesterday'"), "{e}");
    }

    #[test]
    fn scan_features_agrees_with_import_then_features() {
        let csv = "InvoiceNo,Quantity,InvoiceDate,UnitPrice,CustomerID\n\
1,2,2024-01-01 10:00,5,a\n1,1,2024-01-01 10:00,3,a\n2,1,2024-01-01 12:00,4,a\n\
3,1,2024-02-01 10:00,9,a\nC4,-1,2024-02-02 10:00,9,a\n5,1,2024-01-15 10:00,20,b\n6,1,2024-01-20 10:00,1,\n";
        let o = ImportOptions::default();
        let imported = import(csv, &o);
        let as_of = NaiveDate::from_ymd_opt(2024, 3, 1).expect("d");
        let a = customer_features(&imported.orders, as_of);
        let (b, stats) =
            scan_features(Path::new("t.csv"), csv.as_bytes(), &o, Some(as_of)).expect("scan");
        assert_eq!(a, b);
        assert_eq!(stats.rows_without_customer, 1);
        assert_eq!(stats.orders, 5);
        assert_eq!(a[0].frequency, 3);
        assert_eq!(a[0].repeat_purchases, 1);
        assert!((a[0].monetary_total - (13.0 + 4.0 + 9.0 - 9.0)).abs() < 1e-9);
    }

    /// Every product line of a file, through the streaming reader (continuation rows included).
    fn item_lines(path: &Path) -> Vec<(String, i64, LineItem, LineMode)> {
        let mut out = Vec::new();
        super::super::stream::stream_orders(path, &ImportOptions::default(), &|_| {}, &mut |f| {
            for l in f.lines {
                if let Some(i) = l.item {
                    out.push((l.customer, l.order_key, i, l.mode));
                }
            }
            true
        })
        .expect("reads");
        out
    }

    #[test]
    fn product_lines_of_online_retail_shopify_and_woocommerce() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("or.csv");
        std::fs::write(
            &p,
            "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID\n\
536365,85123A,WHITE HANGING HEART,6,12/1/2010 8:26,2.55,17850.0\n\
C536379,85123A,WHITE HANGING HEART,-2,12/2/2010 9:41,2.55,17850\n",
        )
        .expect("write");
        let lines = item_lines(&p);
        assert_eq!(lines.len(), 2);
        let (c, okey, i, _) = &lines[0];
        assert_eq!((c.as_str(), *okey), ("17850", order_key("536365")));
        assert_eq!(i.product_key, product_key("85123A"));
        assert_eq!(i.name.as_deref(), Some("WHITE HANGING HEART"));
        assert_eq!((i.quantity, i.amount), (6, 1530));
        assert!(!i.is_return());
        assert_eq!((lines[1].2.quantity, lines[1].2.amount), (-2, -510));
        assert!(lines[1].2.is_return());

        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data");
        let shopify = item_lines(&root.join("shopify_orders.csv"));
        // #1001 has two lines: the second row carries no order fields but is still a product line.
        let of_1001: Vec<_> = shopify
            .iter()
            .filter(|l| l.1 == order_key("#1001"))
            .collect();
        assert_eq!(of_1001.len(), 2, "{shopify:?}");
        assert_eq!(of_1001[0].2.product_id, "BLUE M");
        assert_eq!(of_1001[1].2.amount, 3000);
        assert_eq!(of_1001[1].3, LineMode::ItemOnly);
        assert_eq!(of_1001[1].0, "ana@example.com");

        let woo = item_lines(&root.join("woocommerce_orders.csv"));
        let coffee = woo
            .iter()
            .find(|l| l.2.product_id == "COFF")
            .expect("coffee");
        assert_eq!((coffee.2.quantity, coffee.2.amount), (2, 3000));
        // Order 502 was refunded: its line is a return.
        let brush = woo
            .iter()
            .find(|l| l.2.product_id == "GRIN")
            .expect("brush");
        assert!(brush.2.is_return());
    }

    #[test]
    fn a_skipped_platform_orders_line_items_are_dropped_with_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("shopify.csv");
        std::fs::write(
            &p,
            "Name,Email,Financial Status,Total,Created at,Lineitem quantity,Lineitem name,Lineitem price,Lineitem sku,Cancelled at\n\
#1,a@x.com,paid,30,2024-01-01 10:00:00,1,Mug,10,MUG,\n\
#1,a@x.com,,,2024-01-01 10:00:00,1,Tea,20,TEA,\n\
#2,b@x.com,paid,5,2024-01-02 10:00:00,1,Pen,5,PEN,2024-01-03 10:00:00\n\
#2,b@x.com,,,2024-01-02 10:00:00,2,Ink,3,INK,\n",
        )
        .expect("write");
        let lines = item_lines(&p);
        let ids: Vec<&str> = lines.iter().map(|l| l.2.product_id.as_str()).collect();
        assert_eq!(
            ids,
            vec!["MUG", "TEA"],
            "the cancelled order #2 keeps no lines"
        );
    }
}
