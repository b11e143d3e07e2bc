//! Silhouette scores, the criterion that picks k automatically.
//!
//! The silhouette is O(n²), so it is computed on a seeded random sample (a few thousand customers)
//! of the clustered data, with the labels the full fit gave them. The computation matches linfa's
//! `SilhouetteScore` (Euclidean distances, mean over points) except that a point alone in its
//! cluster scores 0, as in scikit-learn and Rousseeuw's definition (linfa gives it 1). It sorts the
//! sample by cluster so every per-cluster distance sum is a contiguous, vectorisable loop, and runs
//! points in parallel.

use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;

/// Mean silhouette of `labels` over the rows of the row-major `data` (`dim` columns).
///
/// `None` when it is undefined: fewer than two non-empty clusters, or as many clusters as points,
/// or shapes that do not match.
pub fn silhouette(data: &[f64], dim: usize, labels: &[u32]) -> Option<f64> {
    let n = labels.len();
    if dim == 0 || data.len() != n * dim || n < 2 {
        return None;
    }
    // Points sorted by label, stored by column.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (labels[i], i));
    let cols: Vec<Vec<f64>> = (0..dim)
        .map(|j| order.iter().map(|&i| data[i * dim + j]).collect())
        .collect();
    let mut ranges: Vec<(u32, usize, usize)> = Vec::new();
    for (pos, &i) in order.iter().enumerate() {
        match ranges.last_mut() {
            Some(r) if r.0 == labels[i] => r.2 = pos + 1,
            _ => ranges.push((labels[i], pos, pos + 1)),
        }
    }
    if ranges.len() < 2 || ranges.len() >= n {
        return None;
    }
    let total: f64 = (0..n)
        .into_par_iter()
        .map(|p| {
            let point: Vec<f64> = cols.iter().map(|c| c[p]).collect();
            let mut a = 0.0;
            let mut own_size = 0;
            let mut b = f64::INFINITY;
            for &(_, start, end) in &ranges {
                let sum = distance_sum(&cols, &point, start, end);
                if (start..end).contains(&p) {
                    own_size = end - start;
                    a = if own_size > 1 {
                        sum / (own_size - 1) as f64
                    } else {
                        0.0
                    };
                } else {
                    b = b.min(sum / (end - start) as f64);
                }
            }
            if own_size <= 1 {
                return 0.0;
            }
            let m = a.max(b);
            if m > 0.0 {
                (b - a) / m
            } else {
                0.0
            }
        })
        .collect::<Vec<f64>>()
        .iter()
        .sum();
    Some(total / n as f64)
}

/// Sum of Euclidean distances from `point` to the sorted points `start..end`, in 4 lanes.
fn distance_sum(cols: &[Vec<f64>], point: &[f64], start: usize, end: usize) -> f64 {
    const W: usize = 64;
    let mut acc = [0.0f64; 4];
    let mut i = start;
    let mut sq = [0.0f64; W];
    while i < end {
        let len = (end - i).min(W);
        sq[..len].fill(0.0);
        for (col, &x) in cols.iter().zip(point) {
            for (s, &v) in sq[..len].iter_mut().zip(&col[i..i + len]) {
                let t = v - x;
                *s += t * t;
            }
        }
        for (q, s) in sq[..len].iter().enumerate() {
            acc[q % 4] += s.sqrt();
        }
        i += len;
    }
    (acc[0] + acc[2]) + (acc[1] + acc[3])
}

/// Indices of a seeded random sample of `size` of `n` rows (all rows when `n <= size`), ascending.
pub fn sample_indices(n: usize, size: usize, seed: u64) -> Vec<usize> {
    if n <= size {
        return (0..n).collect();
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x5EED_5A17_u64);
    let mut idx = rand::seq::index::sample(&mut rng, n, size).into_vec();
    idx.sort_unstable();
    idx
}

/// Silhouette of `labels` on the rows `sample` of `data`.
pub fn sample_silhouette(
    data: &[f64],
    dim: usize,
    labels: &[u32],
    sample: &[usize],
) -> Option<f64> {
    if dim == 0
        || sample
            .iter()
            .any(|&i| i >= labels.len() || (i + 1) * dim > data.len())
    {
        return None;
    }
    let sub: Vec<f64> = sample
        .iter()
        .flat_map(|&i| data[i * dim..(i + 1) * dim].iter().copied())
        .collect();
    let sub_labels: Vec<u32> = sample.iter().map(|&i| labels[i]).collect();
    silhouette(&sub, dim, &sub_labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use linfa::metrics::SilhouetteScore;
    use linfa::DatasetBase;
    use ndarray::{Array1, Array2};
    use rand::Rng;

    fn random_points(n: usize, k: u32, seed: u64) -> (Vec<f64>, Vec<u32>) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let labels: Vec<u32> = (0..n).map(|i| (i as u32) % k).collect();
        let data: Vec<f64> = labels
            .iter()
            .flat_map(|&l| {
                let base = f64::from(l) * 2.0;
                [
                    base + rng.gen::<f64>(),
                    rng.gen::<f64>() * 3.0,
                    base - rng.gen::<f64>(),
                ]
            })
            .collect();
        (data, labels)
    }

    #[test]
    fn matches_linfa_without_singletons() {
        for (n, k, seed) in [(60, 3, 1), (101, 4, 2), (250, 2, 3)] {
            let (data, labels) = random_points(n, k, seed);
            let ours = silhouette(&data, 3, &labels).expect("defined");
            let records = Array2::from_shape_vec((n, 3), data).expect("shape");
            let targets: Array1<usize> = labels.iter().map(|&l| l as usize).collect();
            let theirs = DatasetBase::new(records, targets)
                .silhouette_score()
                .expect("linfa");
            assert!(
                (ours - theirs).abs() < 1e-9,
                "n={n}: ours {ours}, linfa {theirs}"
            );
        }
    }

    #[test]
    fn undefined_cases_and_singletons() {
        assert_eq!(
            silhouette(&[1.0, 2.0, 3.0], 1, &[0, 0, 0]),
            None,
            "one cluster"
        );
        assert_eq!(
            silhouette(&[1.0, 2.0], 1, &[0, 1]),
            None,
            "every point alone"
        );
        assert_eq!(silhouette(&[1.0, 2.0], 1, &[0]), None, "shape mismatch");
        // Two tight pairs far apart: close to 1. A singleton adds a 0 to the mean.
        let pairs = silhouette(&[0.0, 0.1, 10.0, 10.1], 1, &[0, 0, 1, 1]).expect("defined");
        assert!(pairs > 0.98);
        let with_single =
            silhouette(&[0.0, 0.1, 10.0, 10.1, 50.0], 1, &[0, 0, 1, 1, 2]).expect("defined");
        assert!(with_single < pairs && with_single > 0.7);
        // Identical points in two clusters: a = b = 0 → 0, never NaN.
        let same = silhouette(&[1.0, 1.0, 1.0, 1.0], 1, &[0, 0, 1, 1]).expect("defined");
        assert_eq!(same, 0.0);
    }

    #[test]
    fn samples_are_seeded_sorted_and_bounded() {
        let a = sample_indices(10_000, 300, 5);
        assert_eq!(a, sample_indices(10_000, 300, 5));
        assert_ne!(a, sample_indices(10_000, 300, 6));
        assert_eq!(a.len(), 300);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(sample_indices(50, 300, 5), (0..50).collect::<Vec<_>>());
    }
}
