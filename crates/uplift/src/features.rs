//! The features an uplift model reads: one customer's recency, frequency, monetary value, tenure,
//! predicted CLV and P(alive) at a date, and the numeric customer attributes the model was
//! trained with. The same function builds them for training (a past campaign's members at its
//! plan date) and for planning (today's candidates), so the two cannot drift apart.

use std::collections::BTreeMap;

use retain_core::{CustomerFeatures, Prediction};
use serde::{Deserialize, Serialize};

/// The fixed features, in vector order; numeric attributes follow.
pub const BASE_FEATURES: [&str; 7] = [
    "recency_days",
    "frequency",
    "monetary_total",
    "avg_order_value",
    "tenure_days",
    "clv",
    "p_alive",
];

/// Which features a model reads: the fixed ones and, after them, these customer attributes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Schema {
    pub attributes: Vec<String>,
}

impl Schema {
    /// A schema with the attributes that are numeric for at least `min_share` of `customers`
    /// (each an attribute map), sorted by name.
    pub fn from_attributes<'a>(
        customers: impl Iterator<Item = &'a BTreeMap<String, String>>,
        min_share: f64,
    ) -> Self {
        let mut seen: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        let mut n = 0usize;
        for attrs in customers {
            n += 1;
            for (k, v) in attrs {
                let e = seen.entry(k.as_str()).or_default();
                e.0 += 1;
                if parse_number(v).is_some() {
                    e.1 += 1;
                }
            }
        }
        let attributes = seen
            .into_iter()
            .filter(|(_, (present, numeric))| {
                *numeric > 0 && *numeric == *present && *numeric as f64 >= min_share * n as f64
            })
            .map(|(k, _)| k.to_string())
            .collect();
        Self { attributes }
    }

    /// Feature names, in vector order.
    pub fn names(&self) -> Vec<String> {
        BASE_FEATURES
            .iter()
            .map(|s| s.to_string())
            .chain(self.attributes.iter().map(|a| format!("attr:{a}")))
            .collect()
    }

    pub fn len(&self) -> usize {
        BASE_FEATURES.len() + self.attributes.len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The feature vector of one customer; NaN where a value is unknown (no purchase before the
    /// date, no prediction, attribute absent or not a number).
    pub fn vector(
        &self,
        features: Option<&CustomerFeatures>,
        prediction: Option<&Prediction>,
        attributes: Option<&BTreeMap<String, String>>,
    ) -> Vec<f64> {
        let mut v = Vec::with_capacity(self.len());
        match features {
            Some(f) => v.extend([
                f.recency_days as f64,
                f64::from(f.frequency),
                f.monetary_total,
                f.avg_order_value,
                f.tenure_days as f64,
            ]),
            None => v.extend([f64::NAN; 5]),
        }
        match prediction {
            Some(p) => v.extend([p.clv, p.p_alive]),
            None => v.extend([f64::NAN; 2]),
        }
        for a in &self.attributes {
            v.push(
                attributes
                    .and_then(|m| m.get(a))
                    .and_then(|s| parse_number(s))
                    .unwrap_or(f64::NAN),
            );
        }
        for x in &mut v {
            if !x.is_finite() {
                *x = f64::NAN;
            }
        }
        v
    }
}

fn parse_number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|x| x.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_attributes_only_and_vectors_in_schema_order() {
        let a: BTreeMap<String, String> = [("age", "41"), ("city", "Oslo"), ("score", "0.5")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let b: BTreeMap<String, String> = [("age", "29"), ("city", "Rome")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let s = Schema::from_attributes([&a, &b].into_iter(), 0.5);
        assert_eq!(s.attributes, vec!["age".to_string(), "score".to_string()]);
        let v = s.vector(None, None, Some(&b));
        assert_eq!(v.len(), BASE_FEATURES.len() + 2);
        assert!(v[..7].iter().all(|x| x.is_nan()));
        assert_eq!(v[7], 29.0);
        assert!(v[8].is_nan());
        assert_eq!(s.names()[7], "attr:age");
    }
}
