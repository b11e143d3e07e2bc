//! k-means: greedy k-means++ seeding and Lloyd iterations over a row-major matrix, with the linfa
//! `Fit`/`PredictInplace` traits at the boundary.
//!
//! linfa-clustering's own `KMeans` runs its Lloyd loop through generic per-row `ndarray` views (and
//! its m-k-means update treats the old centroid as one more point); on a 1M×3 matrix that is several
//! times slower than scikit-learn. This module keeps linfa's API ([`KMeansConfig`] implements
//! [`linfa::traits::Fit`], [`KMeansModel`] implements [`linfa::traits::PredictInplace`]) and owns the
//! hot loop:
//!
//! - the matrix is transposed once into columns ("structure of arrays"); distances are computed for
//!   blocks of 256 points against one centroid at a time, which the compiler vectorises;
//! - the assignment step and the centroid sums are fused into one pass, parallel with rayon over
//!   fixed-size tasks whose partial sums are reduced in task order — so the result is identical
//!   whatever the number of threads;
//! - distances can run in `f32` ([`Precision::F32`]) while sums, centroids and the reported inertia
//!   stay in `f64`.
//!
//! Semantics follow scikit-learn's `KMeans(algorithm="lloyd")`: greedy k-means++ with
//! `2 + ⌊ln k⌋` candidates per centre; convergence when labels stop changing or when the squared
//! centre shift summed over centres is at most `tol × mean feature variance`; empty clusters take
//! the points farthest from their centres; after a non-strict convergence a last assignment step
//! makes the labels match the centres. Inertia is the *sum* of squared distances (linfa 0.8's
//! `inertia()` is a mean).

use std::borrow::Cow;
use std::ops::{Add, Mul, Sub};

use linfa::traits::{Fit, PredictInplace};
use linfa::DatasetBase;
use ndarray::{Array1, Array2, ArrayBase, Data, Ix2};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{ClusteringError, Result};

/// The largest k any method accepts.
pub const MAX_K: usize = 64;
/// The largest number of features the k-means loop is compiled for.
pub const MAX_DIM: usize = 8;

/// Rows per parallel task. Fixed (not derived from the thread count) so that sums are reduced in
/// the same order on every machine.
const TASK: usize = 16_384;
/// Rows per block inside a task: the block's scratch stays in L1.
const BLOCK: usize = 256;

/// Arithmetic of the distance loop. Sums, centroids and inertia are always `f64`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// Distances in `f64`.
    #[default]
    F64,
    /// Distances in `f32`: twice the lanes per vector instruction; labels can differ from `f64`
    /// for points almost equidistant from two centres.
    F32,
}

/// Parameters of one k-means fit. Implements [`linfa::traits::Fit`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KMeansConfig {
    /// Number of clusters, `1..=MAX_K`.
    pub k: usize,
    /// Independent k-means++ initialisations; the fit with the lowest inertia wins.
    pub n_runs: usize,
    /// Lloyd iterations per run at most.
    pub max_iter: usize,
    /// Relative tolerance, scaled by the mean feature variance (scikit-learn's `tol`).
    pub tol: f64,
    /// Seed of the initialisations: the same seed gives the same result.
    pub seed: u64,
    /// Arithmetic of the distance loop.
    pub precision: Precision,
}

impl KMeansConfig {
    /// `k` clusters, one run, at most 300 iterations, `tol = 1e-4`, seed 0, `f64` (scikit-learn's
    /// defaults with `n_init=1`).
    pub fn new(k: usize) -> Self {
        Self {
            k,
            n_runs: 1,
            max_iter: 300,
            tol: 1e-4,
            seed: 0,
            precision: Precision::F64,
        }
    }
}

/// The result of [`kmeans`].
#[derive(Debug, Clone, PartialEq)]
pub struct KMeansFit {
    pub k: usize,
    pub dim: usize,
    /// `k × dim`, row-major.
    pub centroids: Vec<f64>,
    /// The cluster of every row, `0..k`.
    pub labels: Vec<u32>,
    /// Sum over rows of the squared distance to their centroid.
    pub inertia: f64,
    /// Lloyd iterations of the winning run.
    pub n_iter: usize,
    /// Whether the winning run converged before `max_iter`.
    pub converged: bool,
}

impl KMeansFit {
    /// Centroid `c` as a slice of `dim` values (empty when `c >= k`).
    pub fn centroid(&self, c: usize) -> &[f64] {
        self.centroids
            .get(c * self.dim..(c + 1) * self.dim)
            .unwrap_or(&[])
    }

    /// Rows per cluster.
    pub fn sizes(&self) -> Vec<usize> {
        let mut sizes = vec![0; self.k];
        for &l in &self.labels {
            sizes[l as usize] += 1;
        }
        sizes
    }
}

/// Clusters the `n × dim` row-major matrix `data`.
///
/// Errors: `dim` of 0 or above [`MAX_DIM`], a length that is not whole rows, no rows, a
/// non-finite value, `k` of 0 or above [`MAX_K`], fewer rows than `k`, zero runs or iterations,
/// a negative or non-finite tolerance. Fewer *distinct* rows than `k` is not an error here: the
/// extra clusters end up empty or duplicated (the segmentation layer rejects that case first).
pub fn kmeans(data: &[f64], dim: usize, cfg: &KMeansConfig) -> Result<KMeansFit> {
    validate(data, dim, cfg)?;
    Ok(fit(data, dim, cfg, None))
}

/// One run of Lloyd iterations from the given centres (`k × dim` values, row by row) instead of
/// k-means++ seeds: to refine on every customer the centres a fit on a sample found. `n_runs` and
/// `seed` are not used.
///
/// Errors: those of [`kmeans`], and centres of the wrong length or not finite.
pub fn kmeans_from(
    data: &[f64],
    dim: usize,
    cfg: &KMeansConfig,
    centres: &[f64],
) -> Result<KMeansFit> {
    validate(data, dim, cfg)?;
    if centres.len() != cfg.k * dim || centres.iter().any(|v| !v.is_finite()) {
        return Err(ClusteringError::InvalidParameter {
            name: "centres",
            reason: format!(
                "{} values; k = {} centres of {dim} finite values are needed",
                centres.len(),
                cfg.k
            ),
        });
    }
    Ok(fit(data, dim, cfg, Some(centres)))
}

fn fit(data: &[f64], dim: usize, cfg: &KMeansConfig, centres: Option<&[f64]>) -> KMeansFit {
    macro_rules! by_dim {
        ($f:ty) => {
            match dim {
                1 => fit_dim::<$f, 1>(data, cfg, centres),
                2 => fit_dim::<$f, 2>(data, cfg, centres),
                3 => fit_dim::<$f, 3>(data, cfg, centres),
                4 => fit_dim::<$f, 4>(data, cfg, centres),
                5 => fit_dim::<$f, 5>(data, cfg, centres),
                6 => fit_dim::<$f, 6>(data, cfg, centres),
                7 => fit_dim::<$f, 7>(data, cfg, centres),
                _ => fit_dim::<$f, 8>(data, cfg, centres),
            }
        };
    }
    let mut fit = match cfg.precision {
        Precision::F64 => by_dim!(f64),
        Precision::F32 => by_dim!(f32),
    };
    if cfg.precision == Precision::F32 {
        fit.inertia = inertia(data, dim, &fit.centroids, &fit.labels);
    }
    fit
}

fn validate(data: &[f64], dim: usize, cfg: &KMeansConfig) -> Result<()> {
    if dim == 0 || dim > MAX_DIM {
        return Err(ClusteringError::InvalidParameter {
            name: "dim",
            reason: format!("{dim} features; k-means supports 1 to {MAX_DIM}"),
        });
    }
    if data.len() % dim != 0 {
        return Err(ClusteringError::BadShape {
            len: data.len(),
            cols: dim,
        });
    }
    let n = data.len() / dim;
    if n == 0 {
        return Err(ClusteringError::NoCustomers);
    }
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(ClusteringError::NonFinite {
            customer_id: format!("row {}", i / dim),
            feature: "matrix value",
            value: data[i],
        });
    }
    if cfg.k == 0 || cfg.k > MAX_K {
        return Err(ClusteringError::KOutOfRange {
            k: cfg.k,
            max: MAX_K,
        });
    }
    if n < cfg.k {
        return Err(ClusteringError::TooFewCustomers { n, k: cfg.k });
    }
    if cfg.n_runs == 0 {
        return Err(ClusteringError::InvalidParameter {
            name: "n_runs",
            reason: "must be at least 1".into(),
        });
    }
    if cfg.max_iter == 0 {
        return Err(ClusteringError::InvalidParameter {
            name: "max_iter",
            reason: "must be at least 1".into(),
        });
    }
    if !(cfg.tol.is_finite() && cfg.tol >= 0.0) {
        return Err(ClusteringError::InvalidParameter {
            name: "tol",
            reason: format!("{} is not a finite non-negative number", cfg.tol),
        });
    }
    Ok(())
}

/// Sum of squared distances of each row to the centroid of its label, in `f64`. A label without a
/// centroid makes the result NaN.
pub fn inertia(data: &[f64], dim: usize, centroids: &[f64], labels: &[u32]) -> f64 {
    if dim == 0 {
        return 0.0;
    }
    let partials: Vec<f64> = data
        .par_chunks(TASK * dim)
        .zip(labels.par_chunks(TASK))
        .map(|(rows, labs)| {
            rows.chunks_exact(dim)
                .zip(labs)
                .map(|(row, &l)| {
                    let start = l as usize * dim;
                    centroids
                        .get(start..start + dim)
                        .map_or(f64::NAN, |c| sq_dist(row, c))
                })
                .sum::<f64>()
        })
        .collect();
    partials.iter().sum()
}

/// Index of the nearest centroid (`k × dim`, row-major) of every row of `data`, in `f64`; ties go
/// to the lower index.
pub fn nearest(data: &[f64], dim: usize, centroids: &[f64]) -> Vec<u32> {
    if dim == 0 {
        return Vec::new();
    }
    data.par_chunks(dim)
        .map(|row| {
            let mut best = (0u32, f64::INFINITY);
            for (c, cen) in centroids.chunks_exact(dim).enumerate() {
                let d = sq_dist(row, cen);
                if d < best.1 {
                    best = (c as u32, d);
                }
            }
            best.0
        })
        .collect()
}

fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// The float type of the distance loop.
trait Lane:
    Copy + PartialOrd + Send + Sync + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self>
{
    const ZERO: Self;
    const INF: Self;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    /// Replaces the low [`INDEX_BITS`] mantissa bits of a non-negative value with `c`: packed
    /// values order like the values (to 2⁻⁴⁶ for `f64`, 2⁻¹⁷ for `f32`), ties going to the lower
    /// index, so one vector `min` finds both the nearest distance and its centre.
    fn pack(self, c: u32) -> Self;
    /// The value (low bits cleared) and the index of a packed value.
    fn unpack(self) -> (Self, u32);
}

/// Mantissa bits that carry a centre index in the distance loop: k ≤ 2⁶ = [`MAX_K`].
const INDEX_BITS: u32 = 6;
const INDEX_MASK: u32 = (1 << INDEX_BITS) - 1;

impl Lane for f64 {
    const ZERO: Self = 0.0;
    const INF: Self = f64::INFINITY;
    fn from_f64(v: f64) -> Self {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
    #[inline]
    fn pack(self, c: u32) -> Self {
        f64::from_bits((self.to_bits() & !u64::from(INDEX_MASK)) | u64::from(c))
    }
    #[inline]
    fn unpack(self) -> (Self, u32) {
        let b = self.to_bits();
        (
            f64::from_bits(b & !u64::from(INDEX_MASK)),
            (b & u64::from(INDEX_MASK)) as u32,
        )
    }
}

impl Lane for f32 {
    const ZERO: Self = 0.0;
    const INF: Self = f32::INFINITY;
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline]
    fn pack(self, c: u32) -> Self {
        f32::from_bits((self.to_bits() & !INDEX_MASK) | c)
    }
    #[inline]
    fn unpack(self) -> (Self, u32) {
        let b = self.to_bits();
        (f32::from_bits(b & !INDEX_MASK), b & INDEX_MASK)
    }
}

/// The matrix in blocks of [`BLOCK`] points, each block stored column by column
/// (`[[F; BLOCK]; D]`): the distance loop reads contiguous lanes and its bounds are known at
/// compile time. The last block is padded with zeros that are never counted.
struct Blocks<F, const D: usize> {
    blocks: Vec<[[F; BLOCK]; D]>,
    n: usize,
}

impl<F: Lane, const D: usize> Blocks<F, D> {
    fn new(data: &[f64]) -> Self {
        let n = data.len() / D;
        let mut blocks = vec![[[F::ZERO; BLOCK]; D]; n.div_ceil(BLOCK)];
        for (b, rows) in blocks.iter_mut().zip(data.chunks(BLOCK * D)) {
            for (i, row) in rows.chunks_exact(D).enumerate() {
                for (j, &v) in row.iter().enumerate() {
                    b[j][i] = F::from_f64(v);
                }
            }
        }
        Self { blocks, n }
    }

    fn row(&self, i: usize) -> [F; D] {
        let b = &self.blocks[i / BLOCK];
        std::array::from_fn(|j| b[j][i % BLOCK])
    }
}

/// Blocks per parallel task.
const TASK_BLOCKS: usize = TASK / BLOCK;

/// For each point of the block: the squared distance to the nearest centre packed with that
/// centre's index ([`Lane::pack`]).
#[inline]
fn nearest_block<F: Lane, const D: usize>(
    x: &[[F; BLOCK]; D],
    centers: &[[F; D]],
    best: &mut [F; BLOCK],
) {
    *best = [F::INF; BLOCK];
    for (c, cen) in centers.iter().enumerate() {
        let c = c as u32;
        for i in 0..BLOCK {
            let mut s = F::ZERO;
            for j in 0..D {
                let t = x[j][i] - cen[j];
                s = s + t * t;
            }
            let p = s.pack(c);
            // A value select (not a conditional store): compiles to a vector min.
            let b = best[i];
            best[i] = if p < b { p } else { b };
        }
    }
}

/// Squared distance of each point of the block to one centre.
#[inline]
fn dist_block<F: Lane, const D: usize>(x: &[[F; BLOCK]; D], center: &[F; D], out: &mut [F; BLOCK]) {
    *out = [F::ZERO; BLOCK];
    for j in 0..D {
        let cj = center[j];
        for (o, &v) in out.iter_mut().zip(x[j].iter()) {
            let t = v - cj;
            *o = *o + t * t;
        }
    }
}

/// Per-task partial results of one assignment pass.
struct Partial<const D: usize> {
    sums: Vec<[f64; D]>,
    counts: Vec<u64>,
    inertia: f64,
    changed: usize,
}

/// One assignment pass: writes labels and distances; with `accumulate`, also the per-cluster sums.
fn assign_pass<F: Lane, const D: usize>(
    x: &Blocks<F, D>,
    centers: &[[F; D]],
    labels: &mut [u32],
    dists: &mut [F],
    accumulate: bool,
) -> Partial<D> {
    let k = centers.len();
    let partials: Vec<Partial<D>> = x
        .blocks
        .par_chunks(TASK_BLOCKS)
        .zip(labels.par_chunks_mut(TASK))
        .zip(dists.par_chunks_mut(TASK))
        .map(|((blocks, labs), dis)| {
            let mut p = Partial {
                sums: vec![[0.0; D]; if accumulate { k } else { 0 }],
                counts: vec![0; if accumulate { k } else { 0 }],
                inertia: 0.0,
                changed: 0,
            };
            let mut best = [F::INF; BLOCK];
            let mut best_d = [F::ZERO; BLOCK];
            let mut best_c = [0u32; BLOCK];
            for ((xb, lab), dis) in blocks
                .iter()
                .zip(labs.chunks_mut(BLOCK))
                .zip(dis.chunks_mut(BLOCK))
            {
                nearest_block(xb, centers, &mut best);
                for ((b, d), c) in best.iter().zip(best_d.iter_mut()).zip(best_c.iter_mut()) {
                    (*d, *c) = b.unpack();
                }
                p.inertia += lane_sum(&best_d[..lab.len()]);
                for (i, (l_out, d_out)) in lab.iter_mut().zip(dis.iter_mut()).enumerate() {
                    let l = best_c[i];
                    p.changed += usize::from(*l_out != l);
                    *l_out = l;
                    *d_out = best_d[i];
                    if accumulate {
                        let li = (l as usize).min(k - 1);
                        let s = &mut p.sums[li];
                        for j in 0..D {
                            s[j] += xb[j][i].to_f64();
                        }
                        p.counts[li] += 1;
                    }
                }
            }
            p
        })
        .collect();
    let mut total = Partial {
        sums: vec![[0.0; D]; if accumulate { k } else { 0 }],
        counts: vec![0; if accumulate { k } else { 0 }],
        inertia: 0.0,
        changed: 0,
    };
    for p in partials {
        total.inertia += p.inertia;
        total.changed += p.changed;
        for (a, b) in total.sums.iter_mut().zip(&p.sums) {
            for j in 0..D {
                a[j] += b[j];
            }
        }
        for (a, b) in total.counts.iter_mut().zip(&p.counts) {
            *a += b;
        }
    }
    total
}

/// Sum of `v` in `f64`, accumulated in 8 interleaved lanes so that it vectorises; the order is
/// fixed, so the result is deterministic.
#[inline]
fn lane_sum<F: Lane>(v: &[F]) -> f64 {
    let mut acc = [0.0f64; 8];
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x.to_f64();
        }
    }
    for (a, x) in acc.iter_mut().zip(chunks.remainder()) {
        *a += x.to_f64();
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// Updates `closest` with the squared distance of every point to `center` (or sets it, with
/// `init`), and writes the sum of `closest` over each block to `block_pot`.
fn min_dists<F: Lane, const D: usize>(
    x: &Blocks<F, D>,
    center: &[F; D],
    closest: &mut [F],
    block_pot: &mut [f64],
    init: bool,
) {
    x.blocks
        .par_iter()
        .zip(closest.par_chunks_mut(BLOCK))
        .zip(block_pot.par_iter_mut())
        .with_min_len(TASK_BLOCKS)
        .for_each(|((xb, out), pot)| {
            let mut d = [F::ZERO; BLOCK];
            dist_block(xb, center, &mut d);
            for (o, &d) in out.iter_mut().zip(d.iter()) {
                let old = *o;
                *o = if init || d < old { d } else { old };
            }
            *pot = lane_sum(out);
        });
}

/// Index of the point where the running sum of `closest` first reaches `r`, walking the block sums
/// first (the same draw as a search in the full cumulative sum, without building it).
fn draw_point<F: Lane>(closest: &[F], block_pot: &[f64], r: f64) -> usize {
    let n = closest.len();
    let mut acc = 0.0;
    for (b, &p) in block_pot.iter().enumerate() {
        if acc + p >= r && p > 0.0 {
            let start = b * BLOCK;
            for (i, d) in closest[start..(start + BLOCK).min(n)].iter().enumerate() {
                acc += d.to_f64();
                if acc >= r {
                    return start + i;
                }
            }
            // Rounding: the block's lanes summed to a little more than its running sum.
            return (start + BLOCK).min(n) - 1;
        }
        acc += p;
    }
    n - 1
}

/// Greedy k-means++ (Arthur & Vassilvitskii; the greedy variant scikit-learn uses): each new
/// centre is the best of `2 + ⌊ln k⌋` candidates drawn with probability ∝ squared distance.
fn kmeans_plus_plus<F: Lane, const D: usize>(
    x: &Blocks<F, D>,
    k: usize,
    rng: &mut Xoshiro256PlusPlus,
) -> Vec<[F; D]> {
    let n = x.n;
    let trials = 2 + (k as f64).ln().floor() as usize;
    let mut centers = Vec::with_capacity(k);
    let first = rng.gen_range(0..n);
    centers.push(x.row(first));
    let mut closest = vec![F::ZERO; n];
    let mut block_pot = vec![0.0f64; x.blocks.len()];
    min_dists(x, &centers[0], &mut closest, &mut block_pot, true);
    let mut cand_pot = vec![0.0f64; x.blocks.len() * trials];
    for _ in 1..k {
        let pot: f64 = block_pot.iter().sum();
        let cand_rows: Vec<[F; D]> = (0..trials)
            .map(|_| {
                let r = rng.gen::<f64>() * pot;
                x.row(draw_point(&closest, &block_pot, r))
            })
            .collect();
        // Potential of each candidate: per block, then summed in block order.
        x.blocks
            .par_iter()
            .zip(closest.par_chunks(BLOCK))
            .zip(cand_pot.par_chunks_mut(trials))
            .with_min_len(TASK_BLOCKS)
            .for_each(|((xb, cl), pots)| {
                let mut d = [F::ZERO; BLOCK];
                for (p, cand) in pots.iter_mut().zip(&cand_rows) {
                    dist_block(xb, cand, &mut d);
                    for (d, &c0) in d.iter_mut().zip(cl) {
                        *d = if *d < c0 { *d } else { c0 };
                    }
                    *p = lane_sum(&d[..cl.len()]);
                }
            });
        let mut best = 0;
        let mut best_pot = f64::INFINITY;
        for t in 0..trials {
            let p: f64 = cand_pot.iter().skip(t).step_by(trials).sum();
            if p < best_pot {
                best_pot = p;
                best = t;
            }
        }
        let center = cand_rows[best];
        min_dists(x, &center, &mut closest, &mut block_pot, false);
        centers.push(center);
    }
    centers
}

struct RunResult<const D: usize> {
    centers: Vec<[f64; D]>,
    labels: Vec<u32>,
    inertia: f64,
    n_iter: usize,
    converged: bool,
}

fn to_lane<F: Lane, const D: usize>(c: &[[f64; D]]) -> Vec<[F; D]> {
    c.iter()
        .map(|row| std::array::from_fn(|j| F::from_f64(row[j])))
        .collect()
}

/// One k-means++ initialisation followed by Lloyd iterations.
fn run_once<F: Lane, const D: usize>(
    x: &Blocks<F, D>,
    k: usize,
    max_iter: usize,
    tol: f64,
    rng: &mut Xoshiro256PlusPlus,
) -> RunResult<D> {
    let init = kmeans_plus_plus(x, k, rng);
    lloyd(x, init, max_iter, tol)
}

/// Lloyd iterations from the centres `init`.
fn lloyd<F: Lane, const D: usize>(
    x: &Blocks<F, D>,
    init: Vec<[F; D]>,
    max_iter: usize,
    tol: f64,
) -> RunResult<D> {
    let n = x.n;
    let mut centers: Vec<[f64; D]> = init
        .iter()
        .map(|c| std::array::from_fn(|j| c[j].to_f64()))
        .collect();
    let mut lane_centers = init;
    let mut labels = vec![u32::MAX; n];
    let mut dists = vec![F::ZERO; n];
    let mut strict = false;
    let mut converged = false;
    let mut n_iter = 0;
    for it in 0..max_iter {
        n_iter = it + 1;
        let mut pass = assign_pass(x, &lane_centers, &mut labels, &mut dists, true);
        relocate_empty(x, &mut pass, &mut labels, &dists);
        let mut shift = 0.0;
        for (c, old) in centers.iter_mut().enumerate() {
            let count = pass.counts[c];
            if count == 0 {
                continue; // keeps its centre
            }
            let new: [f64; D] = std::array::from_fn(|j| pass.sums[c][j] / count as f64);
            shift += old
                .iter()
                .zip(&new)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f64>();
            *old = new;
        }
        lane_centers = to_lane(&centers);
        if pass.changed == 0 {
            strict = true;
            converged = true;
            break;
        }
        if shift <= tol {
            converged = true;
            break;
        }
    }
    // After a strict convergence the labels already match the centres and this pass only sums
    // the distances; otherwise it is scikit-learn's final assignment step.
    let pass = assign_pass(x, &lane_centers, &mut labels, &mut dists, false);
    let _ = strict;
    RunResult {
        centers,
        labels,
        inertia: pass.inertia,
        n_iter,
        converged,
    }
}

/// Gives each empty cluster the point farthest from its centre (scikit-learn's rule), moving the
/// point's contribution from its old cluster's sums.
fn relocate_empty<F: Lane, const D: usize>(
    x: &Blocks<F, D>,
    pass: &mut Partial<D>,
    labels: &mut [u32],
    dists: &[F],
) {
    let empty: Vec<usize> = (0..pass.counts.len())
        .filter(|&c| pass.counts[c] == 0)
        .collect();
    if empty.is_empty() {
        return;
    }
    let mut order: Vec<usize> = (0..dists.len()).collect();
    let m = empty.len().min(order.len());
    let by_far = |a: &usize, b: &usize| {
        dists[*b]
            .partial_cmp(&dists[*a])
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.cmp(b))
    };
    if m < order.len() {
        order.select_nth_unstable_by(m, by_far);
    }
    let mut far: Vec<usize> = order[..m].to_vec();
    far.sort_by(by_far);
    for (&e, &p) in empty.iter().zip(&far) {
        let old = labels[p] as usize;
        if pass.counts[old] <= 1 {
            continue; // would only empty another cluster
        }
        let row = x.row(p).map(Lane::to_f64);
        for (s, v) in pass.sums[old].iter_mut().zip(&row) {
            *s -= v;
        }
        pass.sums[e] = row;
        pass.counts[old] -= 1;
        pass.counts[e] = 1;
        labels[p] = e as u32;
    }
}

fn fit_dim<F: Lane, const D: usize>(
    data: &[f64],
    cfg: &KMeansConfig,
    centres: Option<&[f64]>,
) -> KMeansFit {
    let x = Blocks::<F, D>::new(data);
    // scikit-learn's tolerance: tol × mean of the per-feature variances.
    let n = x.n as f64;
    let mut mean = [0.0f64; D];
    for row in data.chunks_exact(D) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += v;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n);
    let mut var = [0.0f64; D];
    for row in data.chunks_exact(D) {
        for ((s, v), m) in var.iter_mut().zip(row).zip(&mean) {
            *s += (v - m) * (v - m);
        }
    }
    let mean_var = var.iter().map(|v| v / n).sum::<f64>() / D as f64;
    let tol = cfg.tol * mean_var;
    let best = match centres {
        Some(c) => {
            let init: Vec<[F; D]> = c
                .chunks_exact(D)
                .map(|row| std::array::from_fn(|j| F::from_f64(row[j])))
                .collect();
            lloyd(&x, init, cfg.max_iter, tol)
        }
        None => {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed);
            let mut best: Option<RunResult<D>> = None;
            for _ in 0..cfg.n_runs {
                let run = run_once(&x, cfg.k, cfg.max_iter, tol, &mut rng);
                if best.as_ref().is_none_or(|b| run.inertia < b.inertia) {
                    best = Some(run);
                }
            }
            best.unwrap_or_else(|| run_once(&x, cfg.k, cfg.max_iter, tol, &mut rng))
        }
    };
    KMeansFit {
        k: cfg.k,
        dim: D,
        centroids: best
            .centers
            .iter()
            .flat_map(|c| c.iter().copied())
            .collect(),
        labels: best.labels,
        inertia: best.inertia,
        n_iter: best.n_iter,
        converged: best.converged,
    }
}

/// A fitted k-means model in linfa's terms: centroids as an `ndarray`, prediction through
/// [`linfa::traits::Predict`].
#[derive(Debug, Clone, PartialEq)]
pub struct KMeansModel {
    /// `k × dim`.
    pub centroids: Array2<f64>,
    /// Sum of squared distances on the training data.
    pub inertia: f64,
    pub n_iter: usize,
    /// The training rows' clusters.
    pub labels: Array1<usize>,
}

impl<D: Data<Elem = f64>, T> Fit<ArrayBase<D, Ix2>, T, ClusteringError> for KMeansConfig {
    type Object = KMeansModel;

    fn fit(&self, dataset: &DatasetBase<ArrayBase<D, Ix2>, T>) -> Result<KMeansModel> {
        let records = dataset.records();
        let dim = records.ncols();
        let data: Cow<'_, [f64]> = match records.as_slice() {
            Some(s) => Cow::Borrowed(s),
            None => Cow::Owned(records.iter().copied().collect()),
        };
        let fit = kmeans(&data, dim, self)?;
        let centroids = Array2::from_shape_vec((fit.k, dim), fit.centroids)
            .map_err(|e| ClusteringError::Linfa(e.to_string()))?;
        Ok(KMeansModel {
            centroids,
            inertia: fit.inertia,
            n_iter: fit.n_iter,
            labels: fit.labels.iter().map(|&l| l as usize).collect(),
        })
    }
}

impl<D: Data<Elem = f64>> PredictInplace<ArrayBase<D, Ix2>, Array1<usize>> for KMeansModel {
    /// Nearest centroid of each row. Rows of the wrong width (a caller bug; linfa's own models
    /// panic there) get cluster 0.
    fn predict_inplace(&self, x: &ArrayBase<D, Ix2>, y: &mut Array1<usize>) {
        let dim = self.centroids.ncols();
        if x.ncols() != dim || y.len() != x.nrows() {
            y.fill(0);
            return;
        }
        let data: Vec<f64> = x.iter().copied().collect();
        let centroids: Vec<f64> = self.centroids.iter().copied().collect();
        for (o, l) in y.iter_mut().zip(nearest(&data, dim, &centroids)) {
            *o = l as usize;
        }
    }

    fn default_target(&self, x: &ArrayBase<D, Ix2>) -> Array1<usize> {
        Array1::zeros(x.nrows())
    }
}

/// linfa-clustering's own `KMeans` (k-means++, Lloyd with its m-k-means update), for comparison in
/// benchmarks and tests. `tol` is linfa's: the Euclidean distance between successive centroid
/// matrices. Returns `(labels, sum-of-squares inertia, centroids)`.
pub fn linfa_kmeans(
    data: &[f64],
    dim: usize,
    k: usize,
    n_runs: usize,
    tol: f64,
    seed: u64,
) -> Result<(Vec<u32>, f64, Vec<f64>)> {
    use linfa::traits::Predict;
    use linfa::ParamGuard;
    use linfa_clustering::KMeans;
    if dim == 0 || data.len() % dim != 0 {
        return Err(ClusteringError::BadShape {
            len: data.len(),
            cols: dim,
        });
    }
    let n = data.len() / dim;
    let records = Array2::from_shape_vec((n, dim), data.to_vec())
        .map_err(|e| ClusteringError::Linfa(e.to_string()))?;
    let dataset = DatasetBase::from(records.clone());
    let model = KMeans::params_with_rng(k, Xoshiro256PlusPlus::seed_from_u64(seed))
        .n_runs(n_runs)
        .tolerance(tol)
        .max_n_iterations(300)
        .check()
        .map_err(|e| ClusteringError::Linfa(e.to_string()))?
        .fit(&dataset)
        .map_err(|e| ClusteringError::Linfa(e.to_string()))?;
    let labels: Array1<usize> = model.predict(&records);
    let labels: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
    let centroids: Vec<f64> = model.centroids().iter().copied().collect();
    let sse = inertia(data, dim, &centroids, &labels);
    Ok((labels, sse, centroids))
}
