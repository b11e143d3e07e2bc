//! Segment profiles: who is in a segment and what they are worth — size, share of customers and of
//! revenue, mean and median recency/frequency/monetary, and mean CLV and P(alive) when predictions
//! are given.

use retain_core::{CustomerFeatures, Prediction};
use serde::{Deserialize, Serialize};

use crate::features::predictions_of;

/// The profile of one segment of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentProfile {
    /// Segment name (an RFM segment, or a cluster named after its dominant RFM segment).
    pub name: String,
    /// Index of the segment in the run: the RFM segment's position, or the cluster number.
    pub cluster: usize,
    /// Customers in the segment.
    pub size: usize,
    /// `size` over all customers of the run.
    pub share: f64,
    /// Net revenue of the segment's customers.
    pub revenue: f64,
    /// `revenue` over the run's total; 0 for every segment when the total is not positive.
    pub revenue_share: f64,
    pub recency_mean: f64,
    pub recency_median: f64,
    pub frequency_mean: f64,
    pub frequency_median: f64,
    pub monetary_mean: f64,
    pub monetary_median: f64,
    /// Mean predicted CLV over the segment's customers that have a (finite) prediction.
    pub clv_mean: Option<f64>,
    /// Mean P(alive) over the same customers.
    pub p_alive_mean: Option<f64>,
    /// Customers of the segment with a prediction.
    pub predicted: usize,
    /// The RFM segment most common in the segment, and its share of the segment's customers.
    pub dominant_rfm: Option<String>,
    pub dominant_rfm_share: Option<f64>,
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Median (mean of the middle two for an even count); sorts `v`.
fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Profiles of the segments `names` (indexed `0..names.len()`), with `segment_of[i]` the segment of
/// `customers[i]`. Empty segments and indices out of range are left out; the profiles come in
/// segment-index order. `cluster_ids[s]` is reported as segment `s`'s cluster number.
pub fn profile_segments(
    customers: &[CustomerFeatures],
    predictions: Option<&[Prediction]>,
    segment_of: &[usize],
    names: &[String],
    cluster_ids: &[usize],
    rfm_segment_of: Option<&[usize]>,
) -> Vec<SegmentProfile> {
    let s = names.len();
    let of = predictions_of(customers, predictions);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); s];
    for (i, &seg) in segment_of.iter().enumerate().take(customers.len()) {
        if seg < s {
            members[seg].push(i);
        }
    }
    let n = customers.len().max(1) as f64;
    let total_revenue: f64 = customers.iter().map(|c| c.monetary_total).sum();
    members
        .iter()
        .enumerate()
        .filter(|(_, m)| !m.is_empty())
        .map(|(seg, m)| {
            let mut rec: Vec<f64> = m
                .iter()
                .map(|&i| customers[i].recency_days as f64)
                .collect();
            let mut freq: Vec<f64> = m
                .iter()
                .map(|&i| f64::from(customers[i].frequency))
                .collect();
            let mut mon: Vec<f64> = m.iter().map(|&i| customers[i].monetary_total).collect();
            let revenue: f64 = mon.iter().sum();
            let preds: Vec<&Prediction> = m
                .iter()
                .filter_map(|&i| of.get(i).copied().flatten())
                .collect();
            // Non-finite values (e.g. no CLV when the spend model could not be fitted) are left
            // out of the means.
            let finite_mean = |values: Vec<f64>| -> Option<f64> {
                let v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
                (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
            };
            let clv_mean = finite_mean(preds.iter().map(|p| p.clv).collect());
            let p_alive_mean = finite_mean(preds.iter().map(|p| p.p_alive).collect());
            let (dominant_rfm, dominant_rfm_share) = match rfm_segment_of {
                Some(rfm) => {
                    let mut counts = [0usize; 10];
                    for &i in m {
                        if let Some(&r) = rfm.get(i) {
                            if r < 10 {
                                counts[r] += 1;
                            }
                        }
                    }
                    let mut best = 0;
                    for (r, &c) in counts.iter().enumerate() {
                        if c > counts[best] {
                            best = r;
                        }
                    }
                    (
                        Some(crate::rfm::RfmSegment::ALL[best].name().to_string()),
                        Some(counts[best] as f64 / m.len() as f64),
                    )
                }
                None => (None, None),
            };
            SegmentProfile {
                name: names[seg].clone(),
                cluster: cluster_ids.get(seg).copied().unwrap_or(seg),
                size: m.len(),
                share: m.len() as f64 / n,
                revenue,
                revenue_share: if total_revenue > 0.0 {
                    revenue / total_revenue
                } else {
                    0.0
                },
                recency_mean: mean(&rec),
                recency_median: median(&mut rec),
                frequency_mean: mean(&freq),
                frequency_median: median(&mut freq),
                monetary_mean: mean(&mon),
                monetary_median: median(&mut mon),
                clv_mean,
                p_alive_mean,
                predicted: preds.len(),
                dominant_rfm,
                dominant_rfm_share,
            }
        })
        .collect()
}
