//! The clustering feature space: which per-customer values are clustered, and the scaling
//! (`log1p`, then standardisation) that is stored with a run so new customers can be placed later.
//!
//! Every feature is clamped at 0, `log1p`-transformed (recency, frequency and spend are heavily
//! right-skewed) and standardised with the population mean and standard deviation of the run's
//! customers. Negative raw values (net revenue after returns, a recency from an as-of date before the
//! last order) are clamped to 0 first so the logarithm is defined. A feature that is constant over
//! the customers has standard deviation 0; it is kept, scales to 0 for everyone, and so never
//! separates anyone.

use std::collections::HashMap;

use retain_core::{CustomerFeatures, Prediction};
use serde::{Deserialize, Serialize};

use crate::error::{ClusteringError, Result};

/// A per-customer value that can be clustered on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// Days since the last purchase.
    Recency,
    /// Number of purchases.
    Frequency,
    /// Net revenue.
    Monetary,
    /// Days since the first purchase.
    Tenure,
    /// Net revenue per purchase.
    AvgOrderValue,
    /// Predicted customer lifetime value (needs predictions).
    Clv,
    /// Predicted probability of being alive (needs predictions).
    PAlive,
}

impl Feature {
    /// The default clustering features: recency, frequency, monetary.
    pub const RFM: [Feature; 3] = [Feature::Recency, Feature::Frequency, Feature::Monetary];

    /// Snake-case name, as serialised.
    pub fn name(self) -> &'static str {
        match self {
            Self::Recency => "recency",
            Self::Frequency => "frequency",
            Self::Monetary => "monetary",
            Self::Tenure => "tenure",
            Self::AvgOrderValue => "avg_order_value",
            Self::Clv => "clv",
            Self::PAlive => "p_alive",
        }
    }

    /// Parses a snake-case name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Recency,
            Self::Frequency,
            Self::Monetary,
            Self::Tenure,
            Self::AvgOrderValue,
            Self::Clv,
            Self::PAlive,
        ]
        .into_iter()
        .find(|f| f.name() == s)
    }

    /// Whether the feature comes from the CLV predictions.
    pub fn needs_prediction(self) -> bool {
        matches!(self, Self::Clv | Self::PAlive)
    }

    /// The raw value for one customer; `None` when it needs a prediction and there is none.
    pub fn raw(self, c: &CustomerFeatures, p: Option<&Prediction>) -> Option<f64> {
        Some(match self {
            Self::Recency => c.recency_days as f64,
            Self::Frequency => f64::from(c.frequency),
            Self::Monetary => c.monetary_total,
            Self::Tenure => c.tenure_days as f64,
            Self::AvgOrderValue => c.avg_order_value,
            Self::Clv => p?.clv,
            Self::PAlive => p?.p_alive,
        })
    }
}

/// The transformation from raw features to the clustered space, fitted on a run's customers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaling {
    pub features: Vec<Feature>,
    /// Mean of `log1p(max(raw, 0))` per feature.
    pub means: Vec<f64>,
    /// Population standard deviation of the same; 0 for a constant feature.
    pub stds: Vec<f64>,
}

/// Each customer's prediction (by customer id), aligned with `customers`: `None` where there is
/// none. Both lists come sorted by id from the store, so this is a merge; unsorted input falls
/// back to a hash index.
pub(crate) fn predictions_of<'a>(
    customers: &[CustomerFeatures],
    predictions: Option<&'a [Prediction]>,
) -> Vec<Option<&'a Prediction>> {
    let Some(predictions) = predictions.filter(|p| !p.is_empty()) else {
        return vec![None; customers.len()];
    };
    let sorted = customers
        .windows(2)
        .all(|w| w[0].customer_id <= w[1].customer_id)
        && predictions
            .windows(2)
            .all(|w| w[0].customer_id <= w[1].customer_id);
    if sorted {
        let mut next = predictions.iter().peekable();
        customers
            .iter()
            .map(|c| {
                while next
                    .peek()
                    .is_some_and(|p| p.customer_id.as_str() < c.customer_id.as_str())
                {
                    next.next();
                }
                next.peek()
                    .copied()
                    .filter(|p| p.customer_id == c.customer_id)
            })
            .collect()
    } else {
        let index: HashMap<&str, &Prediction> = predictions
            .iter()
            .map(|p| (p.customer_id.as_str(), p))
            .collect();
        customers
            .iter()
            .map(|c| index.get(c.customer_id.as_str()).copied())
            .collect()
    }
}

fn transformed(feature: Feature, c: &CustomerFeatures, p: Option<&Prediction>) -> Result<f64> {
    let v = feature
        .raw(c, p)
        .ok_or_else(|| ClusteringError::MissingPrediction(c.customer_id.clone()))?;
    if !v.is_finite() {
        return Err(ClusteringError::NonFinite {
            customer_id: c.customer_id.clone(),
            feature: feature.name(),
            value: v,
        });
    }
    Ok(v.max(0.0).ln_1p())
}

/// The `log1p` values of `features` for every customer, row-major.
fn log_matrix(
    features: &[Feature],
    customers: &[CustomerFeatures],
    predictions: Option<&[Prediction]>,
) -> Result<Vec<f64>> {
    let needs = features.iter().any(|f| f.needs_prediction());
    let of = if needs {
        predictions_of(customers, predictions)
    } else {
        vec![None; customers.len()]
    };
    let mut out = Vec::with_capacity(customers.len() * features.len());
    for (c, &p) in customers.iter().zip(&of) {
        for &f in features {
            out.push(transformed(f, c, p)?);
        }
    }
    Ok(out)
}

impl Scaling {
    /// Fits the scaling on `customers` and returns it with their scaled matrix (row-major,
    /// `customers.len() × features.len()`).
    ///
    /// Errors: no features, a duplicated feature, a non-finite value, a missing prediction for a
    /// prediction feature.
    pub fn fit(
        features: &[Feature],
        customers: &[CustomerFeatures],
        predictions: Option<&[Prediction]>,
    ) -> Result<(Scaling, Vec<f64>)> {
        if features.is_empty() {
            return Err(ClusteringError::InvalidParameter {
                name: "features",
                reason: "no features chosen".into(),
            });
        }
        if let Some(dup) = features
            .iter()
            .enumerate()
            .find(|(i, f)| features[..*i].contains(f))
        {
            return Err(ClusteringError::InvalidParameter {
                name: "features",
                reason: format!("{} is listed twice", dup.1.name()),
            });
        }
        let mut x = log_matrix(features, customers, predictions)?;
        let d = features.len();
        let n = customers.len().max(1) as f64;
        let mut means = vec![0.0; d];
        for row in x.chunks_exact(d) {
            for (m, v) in means.iter_mut().zip(row) {
                *m += v;
            }
        }
        means.iter_mut().for_each(|m| *m /= n);
        let mut stds = vec![0.0; d];
        for row in x.chunks_exact(d) {
            for ((s, v), m) in stds.iter_mut().zip(row).zip(&means) {
                *s += (v - m) * (v - m);
            }
        }
        stds.iter_mut().for_each(|s| *s = (*s / n).sqrt());
        let scaling = Scaling {
            features: features.to_vec(),
            means,
            stds,
        };
        scaling.standardise(&mut x);
        Ok((scaling, x))
    }

    /// Number of features.
    pub fn dim(&self) -> usize {
        self.features.len()
    }

    fn standardise(&self, x: &mut [f64]) {
        let d = self.dim();
        if d == 0 {
            return;
        }
        for row in x.chunks_exact_mut(d) {
            for ((v, m), s) in row.iter_mut().zip(&self.means).zip(&self.stds) {
                *v = if *s > 0.0 { (*v - m) / s } else { 0.0 };
            }
        }
    }

    /// Scales customers (typically new ones) with this fitted scaling: row-major, one row each.
    pub fn transform(
        &self,
        customers: &[CustomerFeatures],
        predictions: Option<&[Prediction]>,
    ) -> Result<Vec<f64>> {
        if self.means.len() != self.dim() || self.stds.len() != self.dim() {
            return Err(ClusteringError::DimensionMismatch {
                expected: self.dim(),
                got: self.means.len().min(self.stds.len()),
            });
        }
        let mut x = log_matrix(&self.features, customers, predictions)?;
        self.standardise(&mut x);
        Ok(x)
    }

    /// Maps a point of the scaled space back to raw feature values (`expm1` of the unscaled value).
    pub fn unscale(&self, point: &[f64]) -> Vec<f64> {
        point
            .iter()
            .zip(self.means.iter().zip(&self.stds))
            .map(|(v, (m, s))| (v * s + m).exp_m1())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(id: &str) -> CustomerFeatures {
        let day = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).expect("date");
        CustomerFeatures {
            customer_id: id.into(),
            first_order: day,
            last_order: day,
            recency_days: 1,
            frequency: 1,
            repeat_purchases: 0,
            monetary_total: 1.0,
            avg_order_value: 1.0,
            tenure_days: 1,
        }
    }

    fn prediction(id: &str, p_alive: f64) -> Prediction {
        Prediction {
            customer_id: id.into(),
            p_alive,
            expected_purchases_90d: 0.1,
            clv: 1.0,
        }
    }

    #[test]
    fn predictions_align_with_customers_sorted_or_not() {
        let customers: Vec<CustomerFeatures> = ["a", "b", "c", "d"].map(customer).to_vec();
        let predictions = [
            prediction("0", 0.0),
            prediction("b", 0.2),
            prediction("d", 0.4),
            prediction("e", 0.5),
        ];
        let alive = |of: Vec<Option<&Prediction>>| -> Vec<Option<f64>> {
            of.iter().map(|p| p.map(|p| p.p_alive)).collect()
        };
        let want = vec![None, Some(0.2), None, Some(0.4)];
        assert_eq!(alive(predictions_of(&customers, Some(&predictions))), want);
        let mut shuffled = predictions.to_vec();
        shuffled.reverse();
        assert_eq!(alive(predictions_of(&customers, Some(&shuffled))), want);
        let mut reversed = customers.clone();
        reversed.reverse();
        assert_eq!(
            alive(predictions_of(&reversed, Some(&predictions))),
            vec![Some(0.4), None, Some(0.2), None]
        );
        assert_eq!(alive(predictions_of(&customers, None)), vec![None; 4]);
    }
}
