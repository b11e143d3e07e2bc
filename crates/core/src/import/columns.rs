//! Which column holds which field: headers are matched case-, space-, punctuation- and
//! underscore-insensitively against each field's usual names, and `--map field=Column` wins.

use std::path::Path;

use super::ImportError;

/// Normalises a header for matching: lowercase ASCII letters and digits only.
pub fn normalize(header: &str) -> String {
    header
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

macro_rules! fields {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $key:literal [$($syn:literal),* $(,)?]),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),* }

        impl $name {
            /// Every field, in matching priority order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The field's canonical name, as used by `--map`.
            pub fn key(self) -> &'static str {
                match self { $($name::$variant => $key),* }
            }

            /// Normalised header names that mean this field, best first.
            pub fn synonyms(self) -> &'static [&'static str] {
                match self { $($name::$variant => &[$($syn),*]),* }
            }

            /// The field named `key` (canonical name or any synonym).
            pub fn from_key(key: &str) -> Option<Self> {
                let n = normalize(key);
                Self::ALL.iter().copied().find(|f| normalize(f.key()) == n || f.synonyms().contains(&n.as_str()))
            }
        }
    };
}

fields! {
    /// A field of an orders file.
    OrderField {
        CustomerId => "customer_id" ["customerid", "customer", "customerno", "customernumber", "customercode", "custid", "custno", "clientid", "client", "clientno", "clientnumber", "userid", "user", "buyerid", "buyer", "memberid", "accountid", "account", "contactid", "shopperid", "kundennummer", "kundenid", "kunde", "idcliente", "clientid"],
        OrderDate => "order_date" ["orderdate", "invoicedate", "date", "orderedat", "createdat", "purchasedate", "transactiondate", "saledate", "datetime", "timestamp", "paidat", "processedat", "orderdatetime", "purchasedat", "ordertime", "time", "datum", "fecha", "day"],
        Amount => "amount" ["amount", "total", "ordertotal", "totalamount", "totalprice", "grandtotal", "revenue", "sales", "value", "ordervalue", "netamount", "net", "subtotal", "linetotal", "dollarvalue", "dollars", "spend", "betrag", "umsatz", "importe", "montant"],
        Quantity => "quantity" ["quantity", "qty", "units", "quantityordered", "numberofitems", "items", "itemcount", "lineitemquantity", "count", "ncds", "menge", "cantidad", "quantite"],
        UnitPrice => "unit_price" ["unitprice", "price", "priceeach", "itemprice", "lineitemprice", "unitcost", "preis", "precio", "prix"],
        OrderId => "order_id" ["orderid", "invoiceno", "invoice", "invoicenumber", "invoiceid", "ordernumber", "orderno", "order", "ordernr", "transactionid", "transaction", "receiptno", "receipt", "salesorder", "bestellnummer", "rechnungsnummer"],
        Email => "email" ["email", "emailaddress", "mail", "customeremail", "emailadresse", "correo"],
        Product => "product" ["product", "productname", "description", "item", "itemname", "sku", "stockcode", "productid", "lineitemname", "article", "artikel"],
        Category => "category" ["category", "productcategory", "producttype", "department", "kategorie"],
        Currency => "currency" ["currency", "currencycode", "curr", "wahrung", "waehrung"],
        Status => "status" ["status", "orderstatus", "financialstatus", "transactiontype", "type"],
    }
}

fields! {
    /// A field of a products (catalogue) file.
    ProductField {
        Id => "id" ["sku", "productid", "id", "stockcode", "productcode", "itemsku", "articlenumber", "handle", "variantsku"],
        Name => "name" ["name", "title", "productname", "description", "productdescription", "itemname"],
        Url => "url" ["url", "link", "producturl", "permalink", "page"],
        ImageUrl => "image_url" ["imageurl", "image", "imagesrc", "imagelink", "picture", "thumbnail", "variantimage"],
        Price => "price" ["price", "unitprice", "variantprice", "regularprice", "saleprice", "amount"],
        InStock => "in_stock" ["instock", "stock", "available", "availability", "stockstatus", "inventoryquantity", "variantinventoryqty", "quantity"],
        Category => "category" ["category", "productcategory", "producttype", "type", "department", "collection"],
    }
}

fields! {
    /// A field of a customers file.
    CustomerField {
        CustomerId => "customer_id" ["customerid", "customer", "id", "customerno", "customernumber", "custid", "clientid", "client", "userid", "memberid", "accountid", "contactid", "kundennummer"],
        Email => "email" ["email", "emailaddress", "mail", "customeremail", "emailadresse"],
        FirstName => "first_name" ["firstname", "first", "givenname", "forename", "vorname"],
        LastName => "last_name" ["lastname", "last", "surname", "familyname", "nachname"],
        Name => "name" ["name", "fullname", "customername"],
        Subscribed => "subscribed" ["subscribed", "consent", "optin", "optedin", "emailoptin", "acceptsmarketing", "acceptsemailmarketing", "marketingconsent", "newsletter", "marketingoptin", "emailconsent"],
        Unsubscribed => "unsubscribed" ["unsubscribed", "optout", "optedout", "emailoptout"],
        SignupDate => "signup_date" ["signupdate", "signup", "createdat", "registered", "registeredat", "joined", "joindate", "customersince", "created"],
        Locale => "locale" ["locale", "language", "lang", "languagecode"],
    }
}

/// A resolved column: its 0-based index and header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub index: usize,
    pub header: String,
}

/// Resolves which header each field uses. Explicit mappings first; then, per field in priority
/// order, the first synonym (best first) matching an unclaimed header.
pub fn resolve<F>(
    file: &Path,
    headers: &[String],
    fields: &[F],
    key: impl Fn(F) -> &'static str,
    synonyms: impl Fn(F) -> &'static [&'static str],
    from_key: impl Fn(&str) -> Option<F>,
    mapping: &[(String, String)],
) -> Result<Vec<(F, Column)>, ImportError>
where
    F: Copy + PartialEq,
{
    let norm: Vec<String> = headers.iter().map(|h| normalize(h)).collect();
    let mut taken = vec![false; headers.len()];
    let mut out: Vec<(F, Column)> = Vec::new();
    for (field_key, column) in mapping {
        let bad = |reason: String| ImportError::BadMapping {
            file: file.to_path_buf(),
            mapping: format!("{field_key}={column}"),
            reason,
        };
        let field = from_key(field_key).ok_or_else(|| {
            bad(format!(
                "unknown field '{field_key}'; expected one of {}",
                fields
                    .iter()
                    .map(|f| key(*f))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        let index = headers
            .iter()
            .position(|h| h == column)
            .or_else(|| norm.iter().position(|h| *h == normalize(column)))
            .ok_or_else(|| {
                bad(format!(
                    "no column '{column}'; the header has: {}",
                    headers.join(", ")
                ))
            })?;
        out.retain(|(f, _)| *f != field);
        out.push((
            field,
            Column {
                index,
                header: headers[index].clone(),
            },
        ));
        taken[index] = true;
    }
    for &field in fields {
        if out.iter().any(|(f, _)| *f == field) {
            continue;
        }
        let hit = synonyms(field)
            .iter()
            .find_map(|s| (0..headers.len()).find(|&i| !taken[i] && norm[i] == *s));
        if let Some(index) = hit {
            taken[index] = true;
            out.push((
                field,
                Column {
                    index,
                    header: headers[index].clone(),
                },
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve_orders(
        headers: &[&str],
        mapping: &[(&str, &str)],
    ) -> Result<Vec<(OrderField, String)>, ImportError> {
        let headers: Vec<String> = headers.iter().map(|s| s.to_string()).collect();
        let mapping: Vec<(String, String)> = mapping
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        Ok(resolve(
            Path::new("f.csv"),
            &headers,
            OrderField::ALL,
            OrderField::key,
            OrderField::synonyms,
            OrderField::from_key,
            &mapping,
        )?
        .into_iter()
        .map(|(f, c)| (f, c.header))
        .collect())
    }

    #[test]
    fn online_retail_headers() {
        let r = resolve_orders(
            &[
                "InvoiceNo",
                "StockCode",
                "Description",
                "Quantity",
                "InvoiceDate",
                "UnitPrice",
                "CustomerID",
                "Country",
            ],
            &[],
        )
        .expect("resolves");
        let get = |f| r.iter().find(|(x, _)| *x == f).map(|(_, h)| h.as_str());
        assert_eq!(get(OrderField::CustomerId), Some("CustomerID"));
        assert_eq!(get(OrderField::OrderDate), Some("InvoiceDate"));
        assert_eq!(get(OrderField::OrderId), Some("InvoiceNo"));
        assert_eq!(get(OrderField::Quantity), Some("Quantity"));
        assert_eq!(get(OrderField::UnitPrice), Some("UnitPrice"));
        assert_eq!(get(OrderField::Product), Some("Description"));
        assert_eq!(get(OrderField::Amount), None);
    }

    #[test]
    fn matching_ignores_case_space_and_underscores() {
        let r = resolve_orders(&["Customer ID", "ORDER_DATE", "Total"], &[]).expect("resolves");
        assert_eq!(r.len(), 3);
        assert!(r.contains(&(OrderField::Amount, "Total".into())));
        assert!(r.contains(&(OrderField::CustomerId, "Customer ID".into())));
    }

    #[test]
    fn explicit_mapping_wins_and_bad_mapping_is_explained() {
        let r = resolve_orders(
            &["Kundennr", "Datum", "Betrag", "customer"],
            &[("customer_id", "Kundennr")],
        )
        .expect("resolves");
        assert!(r.contains(&(OrderField::CustomerId, "Kundennr".into())));
        assert!(r.contains(&(OrderField::OrderDate, "Datum".into())));
        let e = resolve_orders(&["a"], &[("nonsense", "a")]).expect_err("unknown field");
        assert!(e.to_string().contains("unknown field 'nonsense'"), "{e}");
        let e = resolve_orders(&["a"], &[("amount", "zzz")]).expect_err("unknown column");
        assert!(e.to_string().contains("no column 'zzz'"), "{e}");
    }
}
