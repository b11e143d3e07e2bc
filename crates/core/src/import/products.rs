//! Products files, the catalogue emails link to: id or SKU, name, page URL, image URL, price, in
//! stock, category. A product's key is [`crate::model::product_key`] of its id, the same key the
//! order lines carry. Rows without an id, with an unreadable price or stock value, or with a URL
//! that is not http(s) are rejected with their line; later rows for the same id replace earlier
//! ones.

use std::path::Path;

use serde::Serialize;

use super::columns::{self, ProductField};
use super::customers::parse_flag;
use super::text;
use super::{ImportError, ImportOptions, Reject};
use crate::dates::parse_number;
use crate::model::{product_key, to_minor, Minor};

/// One catalogue product.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Product {
    pub key: i64,
    pub id: String,
    pub name: Option<String>,
    pub url: Option<String>,
    pub image_url: Option<String>,
    /// Minor units.
    pub price: Option<Minor>,
    pub in_stock: bool,
    pub category: Option<String>,
}

/// The outcome of reading a products file.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProductsImport {
    pub products: Vec<Product>,
    pub rows_read: u64,
    pub rows_rejected: u64,
    pub rejects: Vec<Reject>,
    pub columns: Vec<(String, String)>,
}

/// A stock value: a flag (yes/no, in stock/out of stock) or a count (positive means in stock).
fn parse_stock(raw: &str) -> Option<bool> {
    let n = columns::normalize(raw);
    match n.as_str() {
        "instock" | "available" | "onbackorder" | "backorder" => return Some(true),
        "outofstock" | "soldout" | "unavailable" | "discontinued" => return Some(false),
        _ => {}
    }
    parse_flag(raw).or_else(|| parse_number(raw, false).map(|q| q > 0.0))
}

fn is_web_url(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    (l.starts_with("https://") || l.starts_with("http://")) && !s.contains(char::is_whitespace)
}

/// Reads a products file loaded into memory (a catalogue is small next to the orders).
pub fn parse_products(
    file: &Path,
    bytes: &[u8],
    opts: &ImportOptions,
) -> Result<ProductsImport, ImportError> {
    let text = text::decode(file, bytes)?;
    let all: &str = &text.text;
    let header_line = text::first_line(all);
    let delimiter = opts
        .delimiter
        .unwrap_or_else(|| text::sniff_delimiter(header_line));
    let headers = text::split_header(header_line, delimiter);
    let resolved = columns::resolve(
        file,
        &headers,
        ProductField::ALL,
        ProductField::key,
        ProductField::synonyms,
        ProductField::from_key,
        &opts.mapping,
    )?;
    let get = |f: ProductField| {
        resolved
            .iter()
            .find(|(x, _)| *x == f)
            .map(|(_, c)| c.clone())
    };
    let Some(id_col) = get(ProductField::Id) else {
        return Err(ImportError::MissingColumns {
            file: file.to_path_buf(),
            missing: "a product id or SKU (e.g. sku, product_id, StockCode)".into(),
            found: headers.join(", "),
        });
    };
    let body_start = memchr::memchr(b'\n', all.as_bytes()).map_or(all.len(), |i| i + 1);
    let body = &all[body_start..];
    text::check_truncation(file, body, delimiter, headers.len(), 2)?;
    let (name, url, image, price, stock, category) = (
        get(ProductField::Name),
        get(ProductField::Url),
        get(ProductField::ImageUrl),
        get(ProductField::Price),
        get(ProductField::InStock),
        get(ProductField::Category),
    );
    type Row = Result<Product, Reject>;
    let chunks = text::for_each_chunk(body, delimiter, 2, Vec::<Row>::new, |v, line, fields| {
        let reject = |c: &columns::Column, reason: String| Reject {
            line,
            column: Some((c.index + 1, c.header.clone())),
            reason,
            record: fields.join(&char::from(delimiter).to_string()),
        };
        let value = |c: &Option<columns::Column>| {
            c.as_ref()
                .and_then(|c| fields.get(c.index))
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
        };
        let row = (|| {
            let id = value(&Some(id_col.clone()))
                .ok_or_else(|| reject(&id_col, "no product id".into()))?;
            let price = match (value(&price), &price) {
                (Some(raw), Some(c)) => Some(
                    parse_number(raw, opts.decimal_comma)
                        .and_then(to_minor)
                        .filter(|p| *p >= 0)
                        .ok_or_else(|| reject(c, format!("'{raw}' is not a price")))?,
                ),
                _ => None,
            };
            let in_stock = match (value(&stock), &stock) {
                (Some(raw), Some(c)) => parse_stock(raw)
                    .ok_or_else(|| reject(c, format!("'{raw}' is not a stock value")))?,
                _ => true,
            };
            let link = |col: &Option<columns::Column>| -> Result<Option<String>, Reject> {
                match (value(col), col) {
                    (Some(u), Some(c)) if !is_web_url(u) => {
                        Err(reject(c, format!("'{u}' is not an http(s) URL")))
                    }
                    (u, _) => Ok(u.map(str::to_string)),
                }
            };
            let url = link(&url)?;
            let image_url = link(&image)?;
            Ok(Product {
                key: product_key(id),
                id: id.to_string(),
                name: value(&name).map(str::to_string),
                url,
                image_url,
                price,
                in_stock,
                category: value(&category).map(str::to_string),
            })
        })();
        v.push(row);
    });
    let mut out = ProductsImport {
        columns: resolved
            .iter()
            .map(|(f, c)| (f.key().to_string(), c.header.clone()))
            .collect(),
        ..Default::default()
    };
    let mut index: rustc_hash::FxHashMap<i64, usize> = rustc_hash::FxHashMap::default();
    for row in chunks.into_iter().flatten() {
        out.rows_read += 1;
        match row {
            Ok(p) => match index.get(&p.key) {
                Some(&i) => out.products[i] = p,
                None => {
                    index.insert(p.key, out.products.len());
                    out.products.push(p);
                }
            },
            Err(r) => {
                if opts.strict {
                    return Err(ImportError::Strict {
                        file: file.to_path_buf(),
                        reject: r,
                    });
                }
                out.rows_rejected += 1;
                out.rejects.push(r);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_catalogue_and_rejects_bad_rows() {
        let csv = "SKU,Title,Link,Image,Price,Availability,Product Type\n\
COFF,Coffee beans,https://shop.example/coffee,https://cdn.example/c.jpg,12.50,in stock,Coffee\n\
FILT,Filter papers,https://shop.example/filters,,3,out of stock,\n\
,No id,https://shop.example/x,,1,yes,\n\
BAD,Bad link,javascript:alert(1),,1,yes,\n\
MUG,Mug,,,abc,yes,\n\
COFF,Coffee beans 1kg,https://shop.example/coffee,,20,12,Coffee\n";
        let r = parse_products(
            Path::new("p.csv"),
            csv.as_bytes(),
            &ImportOptions::default(),
        )
        .expect("reads");
        assert_eq!(r.rows_read, 6);
        assert_eq!(r.rows_rejected, 3);
        assert_eq!(r.products.len(), 2);
        let coffee = &r.products[0];
        assert_eq!(coffee.key, product_key("COFF"));
        assert_eq!(
            coffee.name.as_deref(),
            Some("Coffee beans 1kg"),
            "later rows replace"
        );
        assert_eq!(coffee.price, Some(2000));
        assert!(coffee.in_stock);
        assert!(!r.products[1].in_stock);
        let lines: Vec<u64> = r.rejects.iter().map(|x| x.line).collect();
        assert_eq!(lines, vec![4, 5, 6]);
        assert!(r.rejects[1].reason.contains("not an http(s) URL"));
    }
}
