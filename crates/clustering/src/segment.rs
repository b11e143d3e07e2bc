//! Segmentation runs: the parameters, the one entry point [`segment`], the serialisable
//! [`SegmentationRun`] it returns (everything needed to store, show, export and reuse a run), and
//! the assignment of new customers to a stored run.
//!
//! Methods: `rfm` (the ten named RFM segments), `kmeans` (k-means on the scaled features) and `gmm`
//! (a Gaussian mixture on the same). Every customer is also RFM-scored whatever the method; a
//! cluster is named after the RFM segment most common in it ("Champions-like"; a second cluster
//! with the same dominant segment becomes "Champions-like 2"). Clusters are numbered by size,
//! largest first.
//!
//! Automatic k (`KChoice::Auto`, default 2–10) fits every k in the range on all customers and
//! scores each by the silhouette of a seeded sample of at most `silhouette_sample` customers; the
//! best score wins, ties going to the smaller k. With more than `fit_sample` customers (default
//! 200,000) k-means (a fixed k or every candidate k) runs its `n_runs` k-means++ starts on a
//! seeded sample of that many, and the best centres of the chosen k are refined on everyone by
//! one run of Lloyd iterations. Gaussian mixtures are fitted on at most `gmm_sample` customers (default
//! 20,000; linfa's EM is slow on large inputs) and assign everyone. Documented fallbacks, each recorded in
//! [`SegmentationRun::notes`]: the range is clamped to what the data can support (no more clusters
//! than distinct customers, and fewer than the sampled customers); a `gmm` fit that fails for one k
//! is skipped; `k` is ignored by `rfm`.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use retain_core::{CustomerFeatures, Prediction};
use serde::{Deserialize, Serialize};

use crate::error::{ClusteringError, Result};
use crate::features::{Feature, Scaling};
use crate::gmm::{gmm, GaussianParams};
use crate::kmeans::{kmeans, kmeans_from, nearest, KMeansConfig, Precision, MAX_K};
use crate::profile::{profile_segments, SegmentProfile};
use crate::rfm::{score_customers, RfmBoundaries, RfmScores, RfmSegment};
use crate::silhouette::{sample_indices, sample_silhouette};

/// How customers are segmented.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// The ten named segments of the RFM score grid.
    #[default]
    Rfm,
    /// k-means on the scaled features.
    Kmeans,
    /// Gaussian mixture on the scaled features.
    Gmm,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rfm => "rfm",
            Self::Kmeans => "kmeans",
            Self::Gmm => "gmm",
        }
    }

    /// Parses `rfm`, `kmeans` (or `k-means`) and `gmm`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "rfm" => Some(Self::Rfm),
            "kmeans" | "k-means" => Some(Self::Kmeans),
            "gmm" => Some(Self::Gmm),
            _ => None,
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Method {
    type Err = ClusteringError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s).ok_or_else(|| ClusteringError::InvalidParameter {
            name: "method",
            reason: format!("{s:?} is not one of rfm, kmeans, gmm"),
        })
    }
}

/// The number of clusters: fixed, or chosen by silhouette within a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KChoice {
    Auto { min: usize, max: usize },
    Fixed(usize),
}

impl Default for KChoice {
    fn default() -> Self {
        Self::Auto { min: 2, max: 10 }
    }
}

impl KChoice {
    /// Parses `auto` (2–10), `auto:MIN-MAX`, or a number.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("auto") {
            return Some(Self::default());
        }
        if let Some(range) = s.strip_prefix("auto:") {
            let (a, b) = range.split_once('-')?;
            return Some(Self::Auto {
                min: a.trim().parse().ok()?,
                max: b.trim().parse().ok()?,
            });
        }
        s.parse().ok().map(Self::Fixed)
    }

    fn validate(self) -> Result<()> {
        match self {
            Self::Fixed(k) if !(2..=MAX_K).contains(&k) => {
                Err(ClusteringError::KOutOfRange { k, max: MAX_K })
            }
            Self::Auto { min, max } if min < 2 || min > max || max > MAX_K => {
                Err(ClusteringError::InvalidKRange {
                    min,
                    max,
                    limit: MAX_K,
                })
            }
            _ => Ok(()),
        }
    }
}

impl std::str::FromStr for KChoice {
    type Err = ClusteringError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s).ok_or_else(|| ClusteringError::InvalidParameter {
            name: "k",
            reason: format!("{s:?} is not auto, auto:MIN-MAX or a number"),
        })
    }
}

/// Everything that shapes a run besides the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentParams {
    pub method: Method,
    pub k: KChoice,
    pub seed: u64,
    /// Clustering features (k-means and GMM); default recency, frequency, monetary.
    pub features: Vec<Feature>,
    /// k-means++ initialisations per k (the lowest inertia wins); a GMM runs EM once per k.
    pub n_runs: usize,
    /// k-means iterations at most.
    pub max_iter: usize,
    /// k-means tolerance (scikit-learn's relative `tol`).
    pub tol: f64,
    /// Customers sampled to score a k by silhouette.
    pub silhouette_sample: usize,
    /// Automatic k with more customers than this fits the k-means candidates on a seeded sample
    /// of this many, then refines the chosen k's centres on all customers; a fixed k seeds its
    /// centres on the sample the same way.
    pub fit_sample: usize,
    /// Gaussian mixtures are fitted on a seeded sample of at most this many customers (linfa's EM
    /// allocates per-customer matrices on every step); every customer is then assigned by the
    /// fitted mixture.
    pub gmm_sample: usize,
    /// Arithmetic of the k-means distance loop.
    pub precision: Precision,
}

impl Default for SegmentParams {
    fn default() -> Self {
        Self {
            method: Method::Rfm,
            k: KChoice::default(),
            seed: 42,
            features: Feature::RFM.to_vec(),
            n_runs: 4,
            max_iter: 300,
            tol: 1e-4,
            silhouette_sample: 3000,
            fit_sample: 200_000,
            gmm_sample: 20_000,
            precision: Precision::F64,
        }
    }
}

impl SegmentParams {
    /// Default parameters for `method`.
    pub fn new(method: Method) -> Self {
        Self {
            method,
            ..Self::default()
        }
    }

    fn validate(&self) -> Result<()> {
        self.k.validate()?;
        if self.n_runs == 0 || self.n_runs > 100 {
            return Err(ClusteringError::InvalidParameter {
                name: "n_runs",
                reason: "must be between 1 and 100".into(),
            });
        }
        if self.max_iter == 0 {
            return Err(ClusteringError::InvalidParameter {
                name: "max_iter",
                reason: "must be at least 1".into(),
            });
        }
        if !(self.tol.is_finite() && self.tol >= 0.0) {
            return Err(ClusteringError::InvalidParameter {
                name: "tol",
                reason: "must be finite and not negative".into(),
            });
        }
        if self.gmm_sample < 3 {
            return Err(ClusteringError::InvalidParameter {
                name: "gmm_sample",
                reason: "must be at least 3".into(),
            });
        }
        if self.fit_sample < 3 {
            return Err(ClusteringError::InvalidParameter {
                name: "fit_sample",
                reason: "must be at least 3".into(),
            });
        }
        if self.silhouette_sample < 3 {
            return Err(ClusteringError::InvalidParameter {
                name: "silhouette_sample",
                reason: "must be at least 3".into(),
            });
        }
        Ok(())
    }
}

/// The data of a run.
#[derive(Debug, Clone, Copy)]
pub struct SegmentInput<'a> {
    /// One entry per customer; ids must be unique.
    pub customers: &'a [CustomerFeatures],
    /// CLV predictions, when fitted: used for profiles and for the CLV/P(alive) features.
    pub predictions: Option<&'a [Prediction]>,
    /// The date the features were computed for; stored with the run.
    pub as_of: Option<NaiveDate>,
}

impl<'a> SegmentInput<'a> {
    pub fn new(customers: &'a [CustomerFeatures]) -> Self {
        Self {
            customers,
            predictions: None,
            as_of: None,
        }
    }
}

/// Reports progress of long runs (one step per k fitted). Implementations must be cheap.
pub trait Progress: Sync {
    fn update(&self, stage: &str, done: usize, total: usize);
}

/// Progress that goes nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn update(&self, _stage: &str, _done: usize, _total: usize) {}
}

/// The score of one candidate k.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KScore {
    pub k: usize,
    /// Mean silhouette on the sample; `None` when undefined or when the fit failed.
    pub silhouette: Option<f64>,
    /// k-means sum of squared distances (scaled space).
    pub inertia: Option<f64>,
}

/// The fitted model of a run, enough to place new customers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Model {
    /// RFM needs only the score boundaries.
    Rfm,
    /// Centroids in the scaled space, one per cluster, in cluster order.
    Kmeans { centroids: Vec<Vec<f64>> },
    /// Mixture components in the scaled space, in cluster order.
    Gmm { params: GaussianParams },
}

/// Where one customer landed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub customer_id: String,
    /// The run's name of the cluster (`segment_names[cluster]`; empty if it has none).
    pub segment: String,
    /// The RFM segment's index, or the cluster number.
    pub cluster: usize,
    pub r: u8,
    pub f: u8,
    pub m: u8,
}

/// A complete segmentation run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentationRun {
    pub method: Method,
    pub params: SegmentParams,
    pub seed: u64,
    pub as_of: Option<NaiveDate>,
    /// Number of segments fitted (RFM: non-empty named segments).
    pub k: usize,
    /// Every candidate k's score (auto), or the chosen k's (fixed); empty for RFM.
    pub k_scores: Vec<KScore>,
    /// Feature scaling of k-means/GMM; `None` for RFM.
    pub scaling: Option<Scaling>,
    pub boundaries: RfmBoundaries,
    pub model: Model,
    /// Segment name of every cluster index (RFM: the ten segments).
    pub segment_names: Vec<String>,
    /// k-means sum of squared distances of the chosen fit.
    pub inertia: Option<f64>,
    /// Non-empty segments, in cluster order.
    pub profiles: Vec<SegmentProfile>,
    /// One per input customer, in input order.
    pub assignments: Vec<Assignment>,
    /// Fallbacks applied (clamped k range, skipped fits, ignored parameters).
    pub notes: Vec<String>,
}

/// Segments customers with default progress (none). See [`segment_with_progress`].
pub fn segment(input: &SegmentInput<'_>, params: &SegmentParams) -> Result<SegmentationRun> {
    segment_with_progress(input, params, &NoProgress)
}

/// Mixed into the seed for the candidate-fitting sample (so it differs from the silhouette sample).
const FIT_SAMPLE_SALT: u64 = 0x0F17_5A3D;

/// Number of distinct rows of the scaled matrix, counting up to `limit`.
fn count_distinct(x: &[f64], d: usize, limit: usize) -> usize {
    let mut seen: HashSet<Vec<u64>> = HashSet::new();
    for row in x.chunks_exact(d) {
        // + 0.0 folds -0.0 into 0.0.
        seen.insert(row.iter().map(|v| (v + 0.0).to_bits()).collect());
        if seen.len() >= limit {
            break;
        }
    }
    seen.len()
}

/// One fitted candidate: labels and model.
struct Fitted {
    labels: Vec<u32>,
    model: Model,
    inertia: Option<f64>,
}

fn fit_k(x: &[f64], d: usize, k: usize, params: &SegmentParams) -> Result<Fitted> {
    match params.method {
        Method::Gmm => {
            // One EM run: linfa's further runs continue EM from where the last stopped rather than
            // restarting, so they add time, not restarts.
            let (g, labels) = gmm(x, d, k, 1, params.seed)?;
            Ok(Fitted {
                labels,
                model: Model::Gmm { params: g },
                inertia: None,
            })
        }
        _ => {
            let cfg = KMeansConfig {
                k,
                n_runs: params.n_runs,
                max_iter: params.max_iter,
                tol: params.tol,
                seed: params.seed,
                precision: params.precision,
            };
            let fit = kmeans(x, d, &cfg)?;
            let centroids = (0..fit.k).map(|c| fit.centroid(c).to_vec()).collect();
            Ok(Fitted {
                labels: fit.labels,
                model: Model::Kmeans { centroids },
                inertia: Some(fit.inertia),
            })
        }
    }
}

/// k-means on `x` from the given centres (one run of Lloyd iterations).
fn refine_k(x: &[f64], d: usize, centroids: &[Vec<f64>], params: &SegmentParams) -> Result<Fitted> {
    let cfg = KMeansConfig {
        k: centroids.len(),
        n_runs: 1,
        max_iter: params.max_iter,
        tol: params.tol,
        seed: params.seed,
        precision: params.precision,
    };
    let start: Vec<f64> = centroids.iter().flatten().copied().collect();
    let fit = kmeans_from(x, d, &cfg, &start)?;
    let centroids = (0..fit.k).map(|c| fit.centroid(c).to_vec()).collect();
    Ok(Fitted {
        labels: fit.labels,
        model: Model::Kmeans { centroids },
        inertia: Some(fit.inertia),
    })
}

/// Segments the customers of `input`, reporting one progress step per k fitted.
///
/// Errors: no customers, a duplicate customer id, invalid parameters, a non-finite feature, a
/// missing prediction for a prediction feature, identical customers (k-means/GMM), fewer customers
/// or distinct customers than a fixed k, a failed GMM fit.
pub fn segment_with_progress(
    input: &SegmentInput<'_>,
    params: &SegmentParams,
    progress: &dyn Progress,
) -> Result<SegmentationRun> {
    params.validate()?;
    let customers = input.customers;
    if customers.is_empty() {
        return Err(ClusteringError::NoCustomers);
    }
    if let Some(dup) = duplicate_customer(customers) {
        return Err(ClusteringError::DuplicateCustomer(dup.to_string()));
    }
    progress.update("scoring RFM", 0, 1);
    let (scores, boundaries) = score_customers(customers)?;
    let rfm_of: Vec<usize> = scores.iter().map(|s| s.segment().index()).collect();
    let mut notes = Vec::new();

    let (names, labels, model, scaling, k_scores, inertia, k) = match params.method {
        Method::Rfm => {
            if let KChoice::Fixed(k) = params.k {
                notes.push(format!("k = {k} is ignored by method rfm"));
            }
            let names: Vec<String> = RfmSegment::ALL
                .iter()
                .map(|s| s.name().to_string())
                .collect();
            let used: HashSet<usize> = rfm_of.iter().copied().collect();
            (
                names,
                rfm_of.clone(),
                Model::Rfm,
                None,
                Vec::new(),
                None,
                used.len(),
            )
        }
        Method::Kmeans | Method::Gmm => {
            let (scaling, x) = Scaling::fit(&params.features, customers, input.predictions)?;
            let d = scaling.dim();
            let n = customers.len();
            let (lo, hi) = match params.k {
                KChoice::Fixed(k) => (k, k),
                KChoice::Auto { min, max } => (min, max),
            };
            let distinct = count_distinct(&x, d, hi + 1);
            if distinct < 2 {
                return Err(ClusteringError::NoVariation);
            }
            // Automatic k-means on many customers compares the candidates on a seeded subsample
            // and refits the winner on everyone; a mixture is always fitted on at most
            // `gmm_sample` customers and assigns everyone.
            let limit = match (params.method, params.k) {
                (Method::Gmm, _) => params.gmm_sample,
                // k-means seeds (and, with k auto, compares k) on the sample, then refines
                // the best centres on everyone.
                _ => params.fit_sample,
            };
            let subsample = n > limit;
            let (xs, distinct_s) = if subsample {
                let rows = sample_indices(n, limit, params.seed ^ FIT_SAMPLE_SALT);
                let xs: Vec<f64> = rows
                    .iter()
                    .flat_map(|&i| x[i * d..(i + 1) * d].iter().copied())
                    .collect();
                let distinct_s = count_distinct(&xs, d, hi + 1);
                notes.push(if params.method == Method::Gmm {
                    format!(
                        "mixture fitted on a seeded sample of {} of {n} customers; every customer assigned by it",
                        rows.len()
                    )
                } else if matches!(params.k, KChoice::Auto { .. }) {
                    format!(
                        "k chosen and centres seeded on a seeded sample of {} of {n} customers, then refined on all",
                        rows.len()
                    )
                } else {
                    format!(
                        "centres seeded on a seeded sample of {} of {n} customers, then refined on all",
                        rows.len()
                    )
                });
                (std::borrow::Cow::Owned(xs), distinct_s)
            } else {
                (std::borrow::Cow::Borrowed(&x[..]), distinct)
            };
            let ns = xs.len() / d;
            let sample = sample_indices(ns, params.silhouette_sample, params.seed);
            let ks: Vec<usize> = match params.k {
                KChoice::Fixed(k) => {
                    if n < k {
                        return Err(ClusteringError::TooFewCustomers { n, k });
                    }
                    if distinct_s < k {
                        return Err(ClusteringError::TooFewDistinct {
                            distinct: distinct_s,
                            k,
                        });
                    }
                    vec![k]
                }
                KChoice::Auto { .. } => {
                    let cap = hi.min(distinct_s).min(sample.len().saturating_sub(1));
                    if cap < 2 {
                        return Err(ClusteringError::TooFewForAutoK { n });
                    }
                    let lo_eff = lo.min(cap);
                    if cap < hi || lo_eff < lo {
                        notes.push(format!(
                            "k range {lo}..={hi} clamped to {lo_eff}..={cap}: {n} customers, {} distinct, {} sampled",
                            if distinct_s > hi { format!("more than {hi}") } else { distinct_s.to_string() },
                            sample.len()
                        ));
                    }
                    (lo_eff..=cap).collect()
                }
            };
            let mut k_scores = Vec::with_capacity(ks.len());
            let mut best: Option<(usize, Option<f64>, Fitted)> = None;
            let mut last_err = None;
            for (i, &k) in ks.iter().enumerate() {
                progress.update(&format!("fitting {} k={k}", params.method), i, ks.len());
                let fitted = match fit_k(&xs, d, k, params) {
                    Ok(f) => f,
                    Err(e) => {
                        notes.push(format!("k = {k}: {e}; skipped"));
                        k_scores.push(KScore {
                            k,
                            silhouette: None,
                            inertia: None,
                        });
                        last_err = Some(e);
                        continue;
                    }
                };
                let sil = sample_silhouette(&xs, d, &fitted.labels, &sample);
                k_scores.push(KScore {
                    k,
                    silhouette: sil,
                    inertia: fitted.inertia,
                });
                let better = match (&best, sil) {
                    (None, _) => true,
                    (Some((_, None, _)), Some(_)) => true,
                    (Some((_, Some(b), _)), Some(s)) => s > *b,
                    _ => false,
                };
                if better {
                    best = Some((k, sil, fitted));
                }
            }
            progress.update("profiling", ks.len(), ks.len());
            let Some((k, sil, fitted)) = best else {
                return Err(last_err.unwrap_or(ClusteringError::NoVariation));
            };
            if sil.is_none() && ks.len() > 1 {
                notes.push(format!("no k had a defined silhouette; kept k = {k}"));
            }
            let fitted = match (subsample, fitted.model) {
                (false, model) => Fitted { model, ..fitted },
                (true, Model::Gmm { params: g }) => {
                    progress.update("assigning every customer", ks.len(), ks.len());
                    let labels = g.predict(&x, d)?;
                    Fitted {
                        labels,
                        model: Model::Gmm { params: g },
                        inertia: None,
                    }
                }
                (true, Model::Kmeans { centroids }) => {
                    progress.update(
                        &format!("refining {} k={k} on all customers", params.method),
                        ks.len(),
                        ks.len(),
                    );
                    refine_k(&x, d, &centroids, params)?
                }
                (true, _) => fit_k(&x, d, k, params)?,
            };
            let (labels, model, names) = name_clusters(fitted.labels, fitted.model, k, &rfm_of);
            (
                names,
                labels,
                model,
                Some(scaling),
                k_scores,
                fitted.inertia,
                k,
            )
        }
    };

    let cluster_ids: Vec<usize> = (0..names.len()).collect();
    let profiles = profile_segments(
        customers,
        input.predictions,
        &labels,
        &names,
        &cluster_ids,
        Some(&rfm_of),
    );
    let assignments = customers
        .iter()
        .zip(&scores)
        .zip(&labels)
        .map(|((c, s), &l)| Assignment {
            customer_id: c.customer_id.clone(),
            segment: names.get(l).cloned().unwrap_or_default(),
            cluster: l,
            r: s.r,
            f: s.f,
            m: s.m,
        })
        .collect();
    progress.update("done", 1, 1);
    Ok(SegmentationRun {
        method: params.method,
        params: params.clone(),
        seed: params.seed,
        as_of: input.as_of,
        k,
        k_scores,
        scaling,
        boundaries,
        model,
        segment_names: names,
        inertia,
        profiles,
        assignments,
        notes,
    })
}

/// Renumbers clusters by size (largest first; empty ones last), permutes the model to match, and
/// names each cluster after its dominant RFM segment.
fn name_clusters(
    labels: Vec<u32>,
    model: Model,
    k: usize,
    rfm_of: &[usize],
) -> (Vec<usize>, Model, Vec<String>) {
    let mut counts = vec![[0usize; 10]; k];
    let mut sizes = vec![0usize; k];
    for (&l, &r) in labels.iter().zip(rfm_of) {
        let l = (l as usize).min(k.saturating_sub(1));
        sizes[l] += 1;
        counts[l][r.min(9)] += 1;
    }
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&a, &b| sizes[b].cmp(&sizes[a]).then(a.cmp(&b)));
    let mut new_of = vec![0usize; k];
    for (new, &old) in order.iter().enumerate() {
        new_of[old] = new;
    }
    let labels: Vec<usize> = labels
        .iter()
        .map(|&l| new_of[(l as usize).min(k.saturating_sub(1))])
        .collect();
    let permute = |v: Vec<Vec<f64>>| -> Vec<Vec<f64>> {
        order.iter().filter_map(|&o| v.get(o).cloned()).collect()
    };
    let model = match model {
        Model::Kmeans { centroids } => Model::Kmeans {
            centroids: permute(centroids),
        },
        Model::Gmm { params } => Model::Gmm {
            params: GaussianParams {
                weights: order
                    .iter()
                    .filter_map(|&o| params.weights.get(o).copied())
                    .collect(),
                means: permute(params.means),
                covariances: order
                    .iter()
                    .filter_map(|&o| params.covariances.get(o).cloned())
                    .collect(),
            },
        },
        Model::Rfm => Model::Rfm,
    };
    let mut used: HashMap<String, usize> = HashMap::new();
    let names = order
        .iter()
        .enumerate()
        .map(|(new, &old)| {
            if sizes[old] == 0 {
                return format!("Cluster {}", new + 1);
            }
            let c = &counts[old];
            let mut best = 0;
            for r in 1..10 {
                if c[r] > c[best] {
                    best = r;
                }
            }
            let base = format!("{}-like", RfmSegment::ALL[best].name());
            let seen = used.entry(base.clone()).or_insert(0);
            *seen += 1;
            if *seen == 1 {
                base
            } else {
                format!("{base} {seen}")
            }
        })
        .collect();
    (labels, model, names)
}

/// The nearest centroid (scaled space) of each customer: how a k-means run places new customers.
///
/// Errors when the centroids do not have the scaling's dimension, on non-finite features and on
/// missing predictions for prediction features.
pub fn assign(
    scaling: &Scaling,
    centroids: &[Vec<f64>],
    customers: &[CustomerFeatures],
    predictions: Option<&[Prediction]>,
) -> Result<Vec<usize>> {
    let d = scaling.dim();
    if let Some(bad) = centroids.iter().find(|c| c.len() != d) {
        return Err(ClusteringError::DimensionMismatch {
            expected: d,
            got: bad.len(),
        });
    }
    if centroids.is_empty() {
        return Err(ClusteringError::DimensionMismatch {
            expected: 1,
            got: 0,
        });
    }
    let x = scaling.transform(customers, predictions)?;
    let flat: Vec<f64> = centroids.iter().flatten().copied().collect();
    Ok(nearest(&x, d, &flat)
        .into_iter()
        .map(|l| l as usize)
        .collect())
}

impl SegmentationRun {
    /// Places customers that were not part of the run (or re-places those that were) with the
    /// run's boundaries, scaling and model.
    pub fn assign(
        &self,
        customers: &[CustomerFeatures],
        predictions: Option<&[Prediction]>,
    ) -> Result<Vec<Assignment>> {
        if let Some(c) = customers.iter().find(|c| !c.monetary_total.is_finite()) {
            return Err(ClusteringError::NonFinite {
                customer_id: c.customer_id.clone(),
                feature: "monetary_total",
                value: c.monetary_total,
            });
        }
        let scores: Vec<RfmScores> = customers.iter().map(|c| self.boundaries.score(c)).collect();
        let clusters: Vec<usize> = match (&self.model, &self.scaling) {
            (Model::Rfm, _) => scores.iter().map(|s| s.segment().index()).collect(),
            (Model::Kmeans { centroids }, Some(scaling)) => {
                assign(scaling, centroids, customers, predictions)?
            }
            (Model::Gmm { params }, Some(scaling)) => {
                let x = scaling.transform(customers, predictions)?;
                params
                    .predict(&x, scaling.dim())?
                    .into_iter()
                    .map(|l| l as usize)
                    .collect()
            }
            (_, None) => {
                return Err(ClusteringError::DimensionMismatch {
                    expected: 1,
                    got: 0,
                })
            }
        };
        Ok(customers
            .iter()
            .zip(scores)
            .zip(clusters)
            .map(|((c, s), cl)| Assignment {
                customer_id: c.customer_id.clone(),
                segment: self.segment_names.get(cl).cloned().unwrap_or_default(),
                cluster: cl,
                r: s.r,
                f: s.f,
                m: s.m,
            })
            .collect())
    }
}

/// The first customer id that appears twice, if any: adjacent ids when the customers come sorted
/// by id (as the store gives them), a hash set otherwise.
fn duplicate_customer(customers: &[CustomerFeatures]) -> Option<&str> {
    let mut sorted = true;
    for w in customers.windows(2) {
        match w[0].customer_id.cmp(&w[1].customer_id) {
            std::cmp::Ordering::Less => {}
            std::cmp::Ordering::Equal => return Some(&w[1].customer_id),
            std::cmp::Ordering::Greater => {
                sorted = false;
                break;
            }
        }
    }
    if sorted {
        return None;
    }
    let mut ids = HashSet::with_capacity(customers.len());
    customers
        .iter()
        .find(|c| !ids.insert(c.customer_id.as_str()))
        .map(|c| c.customer_id.as_str())
}
