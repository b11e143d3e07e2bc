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

/// Predictions indexed by customer id.
pub(crate) fn prediction_index(predictions: Option<&[Prediction]>) -> HashMap<&str, &Prediction> {
    predictions
        .unwrap_or_default()
        .iter()
        .map(|p| (p.customer_id.as_str(), p))
        .collect()
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
    let index = prediction_index(predictions);
    let mut out = Vec::with_capacity(customers.len() * features.len());
    for c in customers {
        let p = index.get(c.customer_id.as_str()).copied();
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
