//! Reading the order and customer CSVs people really have: header detection with synonyms,
//! delimiter sniffing, BOM/CRLF/Windows-1252 tolerance, day-first dates, decimal commas, returns,
//! line items collapsed into orders, and a line-numbered reject list instead of a failed import.
//!
//! [`text`] turns bytes into records, [`columns`] maps headers to fields, [`orders`] and
//! [`customers`] turn records into domain values; [`items`] reads order-lines files (the lines
//! of orders already imported, by order id); [`scan`] folds an orders file straight into
//! per-customer features.

pub mod columns;
pub mod customers;
pub mod items;
pub mod orders;
pub mod products;
pub mod scan;
pub mod stream;
pub mod text;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use columns::{CustomerField, OrderField, ProductField};
pub use customers::{
    parse_customers, stream_customers, CustomerFeed, CustomersImport, CustomersSummary,
};
pub use items::{is_items_header, stream_items, ItemLine, ItemsFeed, ItemsSummary};
pub use orders::{
    parse_orders, scan_features, scan_file, LineItem, LineMode, OrderLine, OrdersImport, Profile,
};
pub use products::{parse_products, Product, ProductsImport};
pub use stream::{stream_orders, OrderFeed, StreamSummary};

/// Options shared by both importers.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Field delimiter; sniffed from the header line when `None`.
    pub delimiter: Option<u8>,
    /// strftime-like date format (e.g. `%d.%m.%Y`); detected from the data when `None`.
    pub date_format: Option<String>,
    /// Amounts use a decimal comma (`1.234,56`).
    pub decimal_comma: bool,
    /// Explicit `field=Column` mappings that override header detection.
    pub mapping: Vec<(String, String)>,
    /// Fail on the first bad row instead of rejecting it.
    pub strict: bool,
    /// The export's platform (`shopify`, `woocommerce`, `generic`); recognised by its header
    /// when `None`.
    pub profile: Option<orders::Profile>,
}

/// A row that could not be imported, with where and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reject {
    /// 1-based physical line of the file where the record starts.
    pub line: u64,
    /// 1-based column and its header, when one column is at fault.
    pub column: Option<(usize, String)>,
    pub reason: String,
    /// The record as read, fields joined by the delimiter.
    pub record: String,
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.column {
            Some((i, name)) => write!(
                f,
                "line {}, column {} ({}): {}",
                self.line, i, name, self.reason
            ),
            None => write!(f, "line {}: {}", self.line, self.reason),
        }
    }
}

/// Why a file could not be imported at all. Nothing is written when one of these occurs.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: the file is empty; expected a CSV with a header line")]
    Empty { file: PathBuf },
    #[error("{file}: not a CSV file: {reason}")]
    NotCsv { file: PathBuf, reason: String },
    #[error("{file}: no usable columns: missing {missing}; the header has: {found}. Use --map FIELD=COLUMN to name them")]
    MissingColumns {
        file: PathBuf,
        missing: String,
        found: String,
    },
    #[error("{file}: --map {mapping}: {reason}")]
    BadMapping {
        file: PathBuf,
        mapping: String,
        reason: String,
    },
    #[error("{file}: line {line}: the file looks truncated: {reason}")]
    Truncated {
        file: PathBuf,
        line: u64,
        reason: String,
    },
    #[error("{file}: {reject} (--strict stops at the first bad row)")]
    Strict { file: PathBuf, reject: Reject },
    #[error("{file}: column {column}: {reason}. Use --date-format, e.g. --date-format '%d.%m.%Y'")]
    DateFormat {
        file: PathBuf,
        column: String,
        reason: String,
    },
}

/// Reads a whole file, naming it in the error.
pub fn read_file(path: &Path) -> Result<Vec<u8>, ImportError> {
    std::fs::read(path).map_err(|source| ImportError::Io {
        file: path.to_path_buf(),
        source,
    })
}
