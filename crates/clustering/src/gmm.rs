//! Gaussian mixtures (linfa's `GaussianMixtureModel`, full covariances, k-means initialisation)
//! and the stored form of a fitted mixture that assigns customers later.
//!
//! linfa fits; [`GaussianParams`] keeps weights, means and covariances as plain vectors (serde) and
//! assigns each point to the component with the highest posterior, computed here with a small
//! Cholesky factorisation — the same rule as linfa's `predict`, so a stored run reassigns its own
//! customers identically. linfa can panic on degenerate data inside its linear algebra; the fit
//! runs under `catch_unwind` and such a panic becomes [`ClusteringError::Gmm`].

use linfa::traits::Fit;
use linfa::DatasetBase;
use linfa_clustering::GaussianMixtureModel;
use ndarray::Array2;
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{ClusteringError, Result};

/// A fitted mixture: `k` components over `dim` features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GaussianParams {
    /// Mixing weights, summing to 1.
    pub weights: Vec<f64>,
    /// `k` means of `dim` values.
    pub means: Vec<Vec<f64>>,
    /// `k` covariance matrices, `dim × dim`, row by row.
    pub covariances: Vec<Vec<Vec<f64>>>,
}

/// One component prepared for evaluation: log weight, mean, lower Cholesky factor, log-determinant.
struct Component {
    log_weight: f64,
    mean: Vec<f64>,
    chol: Vec<f64>,
    log_det: f64,
}

/// Lower Cholesky factor of the `d × d` row-major `a`, or `None` if it is not positive definite.
fn cholesky(a: &[f64], d: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            let mut s = a[i * d + j];
            for p in 0..j {
                s -= l[i * d + p] * l[j * d + p];
            }
            if i == j {
                if s <= 0.0 || !s.is_finite() {
                    return None;
                }
                l[i * d + i] = s.sqrt();
            } else {
                l[i * d + j] = s / l[j * d + j];
            }
        }
    }
    Some(l)
}

impl GaussianParams {
    /// Number of components.
    pub fn k(&self) -> usize {
        self.weights.len()
    }

    /// Number of features.
    pub fn dim(&self) -> usize {
        self.means.first().map_or(0, Vec::len)
    }

    fn components(&self) -> Result<Vec<Component>> {
        let d = self.dim();
        let k = self.k();
        if self.means.len() != k || self.covariances.len() != k {
            return Err(ClusteringError::DimensionMismatch {
                expected: k,
                got: self.means.len().min(self.covariances.len()),
            });
        }
        let mut out = Vec::with_capacity(k);
        for c in 0..k {
            let mean = &self.means[c];
            let cov = &self.covariances[c];
            if mean.len() != d || cov.len() != d || cov.iter().any(|r| r.len() != d) {
                return Err(ClusteringError::DimensionMismatch {
                    expected: d,
                    got: mean.len(),
                });
            }
            let flat: Vec<f64> = cov.iter().flatten().copied().collect();
            let chol = cholesky(&flat, d).ok_or_else(|| {
                ClusteringError::Gmm(format!(
                    "covariance of component {c} is not positive definite"
                ))
            })?;
            let log_det = 2.0 * (0..d).map(|i| chol[i * d + i].ln()).sum::<f64>();
            out.push(Component {
                log_weight: self.weights[c].ln(),
                mean: mean.clone(),
                chol,
                log_det,
            });
        }
        Ok(out)
    }

    /// The most probable component of every row of the row-major `data`.
    pub fn predict(&self, data: &[f64], dim: usize) -> Result<Vec<u32>> {
        if dim != self.dim() {
            return Err(ClusteringError::DimensionMismatch {
                expected: self.dim(),
                got: dim,
            });
        }
        if dim == 0 || data.len() % dim != 0 {
            return Err(ClusteringError::BadShape {
                len: data.len(),
                cols: dim,
            });
        }
        let comps = self.components()?;
        let d = dim;
        let half_log_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln() * d as f64;
        Ok(data
            .par_chunks(d)
            .map(|row| {
                let mut best = (0u32, f64::NEG_INFINITY);
                let mut y = vec![0.0; d];
                for (c, comp) in comps.iter().enumerate() {
                    // Solve L y = x - mean by forward substitution; Mahalanobis² = |y|².
                    for i in 0..d {
                        let dot: f64 = comp.chol[i * d..i * d + i]
                            .iter()
                            .zip(&y[..i])
                            .map(|(a, b)| a * b)
                            .sum();
                        y[i] = (row[i] - comp.mean[i] - dot) / comp.chol[i * d + i];
                    }
                    let maha: f64 = y.iter().map(|v| v * v).sum();
                    let lp = comp.log_weight - half_log_2pi - 0.5 * comp.log_det - 0.5 * maha;
                    if lp > best.1 {
                        best = (c as u32, lp);
                    }
                }
                best.0
            })
            .collect())
    }
}

/// Fits a `k`-component mixture to the row-major `data` with linfa (`n_runs` EM runs from the
/// seeded k-means initialisation, the best lower bound wins) and labels every row.
pub fn gmm(
    data: &[f64],
    dim: usize,
    k: usize,
    n_runs: usize,
    seed: u64,
) -> Result<(GaussianParams, Vec<u32>)> {
    if dim == 0 || data.len() % dim != 0 {
        return Err(ClusteringError::BadShape {
            len: data.len(),
            cols: dim,
        });
    }
    let n = data.len() / dim;
    if k == 0 || n < k {
        return Err(ClusteringError::TooFewCustomers { n, k });
    }
    if data.iter().any(|v| !v.is_finite()) {
        return Err(ClusteringError::Gmm("non-finite input".into()));
    }
    let records = Array2::from_shape_vec((n, dim), data.to_vec())
        .map_err(|e| ClusteringError::Gmm(e.to_string()))?;
    let fitted = std::panic::catch_unwind(|| {
        let dataset = DatasetBase::from(records);
        GaussianMixtureModel::params_with_rng(k, Xoshiro256PlusPlus::seed_from_u64(seed))
            .n_runs(n_runs.max(1) as u64)
            .tolerance(1e-3)
            .reg_covariance(1e-6)
            .max_n_iterations(200)
            .fit(&dataset)
    });
    let model = match fitted {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => return Err(ClusteringError::Gmm(e.to_string())),
        Err(_) => {
            return Err(ClusteringError::Gmm(
                "linfa panicked on degenerate data".into(),
            ))
        }
    };
    let params = GaussianParams {
        weights: model.weights().to_vec(),
        means: model
            .means()
            .rows()
            .into_iter()
            .map(|r| r.to_vec())
            .collect(),
        covariances: model
            .covariances()
            .outer_iter()
            .map(|m| m.rows().into_iter().map(|r| r.to_vec()).collect())
            .collect(),
    };
    let labels = params.predict(data, dim)?;
    Ok((params, labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use linfa::traits::Predict;
    use ndarray::Array1;
    use rand::Rng;

    fn three_blobs(per: usize) -> Vec<f64> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let centers = [[0.0, 0.0], [5.0, 5.0], [0.0, 6.0]];
        (0..per)
            .flat_map(|_| {
                centers
                    .iter()
                    .flat_map(|c| [c[0] + rng.gen::<f64>() - 0.5, c[1] + rng.gen::<f64>() - 0.5])
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn our_predict_matches_linfa_predict() {
        let data = three_blobs(100);
        let records = Array2::from_shape_vec((300, 2), data.clone()).expect("shape");
        let model = GaussianMixtureModel::params_with_rng(3, Xoshiro256PlusPlus::seed_from_u64(9))
            .fit(&DatasetBase::from(records.clone()))
            .expect("fit");
        let theirs: Array1<usize> = model.predict(&records);
        let params = GaussianParams {
            weights: model.weights().to_vec(),
            means: model
                .means()
                .rows()
                .into_iter()
                .map(|r| r.to_vec())
                .collect(),
            covariances: model
                .covariances()
                .outer_iter()
                .map(|m| m.rows().into_iter().map(|r| r.to_vec()).collect())
                .collect(),
        };
        let ours = params.predict(&data, 2).expect("predict");
        assert_eq!(
            ours.iter().map(|&l| l as usize).collect::<Vec<_>>(),
            theirs.to_vec()
        );
        // Each blob is one component.
        for b in 0..3 {
            let first = ours[b];
            assert!((0..100).all(|i| ours[i * 3 + b] == first));
        }
    }

    #[test]
    fn degenerate_input_is_an_error_not_a_panic() {
        let same = vec![1.0; 40];
        match gmm(&same, 2, 3, 1, 0) {
            Err(ClusteringError::Gmm(_)) | Ok(_) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
        assert!(matches!(
            gmm(&[1.0, 2.0], 2, 2, 1, 0),
            Err(ClusteringError::TooFewCustomers { .. })
        ));
        assert!(matches!(
            gmm(&[1.0, f64::NAN, 0.0, 1.0, 2.0, 2.0], 2, 2, 1, 0),
            Err(ClusteringError::Gmm(_))
        ));
        let bad = GaussianParams {
            weights: vec![1.0],
            means: vec![vec![0.0, 0.0]],
            covariances: vec![vec![vec![1.0, 2.0], vec![2.0, 1.0]]],
        };
        assert!(matches!(
            bad.predict(&[0.0, 0.0], 2),
            Err(ClusteringError::Gmm(_))
        ));
        assert!(matches!(
            bad.predict(&[0.0, 0.0, 0.0], 3),
            Err(ClusteringError::DimensionMismatch { .. })
        ));
    }

    #[test]
    fn cholesky_factorises() {
        let a = [4.0, 2.0, 0.6, 2.0, 5.0, 1.0, 0.6, 1.0, 3.0];
        let l = cholesky(&a, 3).expect("positive definite");
        for i in 0..3 {
            for j in 0..3 {
                let v: f64 = (0..3).map(|p| l[i * 3 + p] * l[j * 3 + p]).sum();
                assert!((v - a[i * 3 + j]).abs() < 1e-12);
            }
        }
        assert!(cholesky(&[1.0, 2.0, 2.0, 1.0], 2).is_none());
    }
}
