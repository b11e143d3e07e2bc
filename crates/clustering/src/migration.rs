//! Migration between two segment assignments: how many customers moved from each segment of one
//! run to each segment of another, and who is in only one of them.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::{ClusteringError, Result};
use crate::rfm::RfmSegment;
use crate::segment::Assignment;

/// From-segment × to-segment customer counts between run A ("from") and run B ("to").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationMatrix {
    /// Segments of run A (rows).
    pub from: Vec<String>,
    /// Segments of run B (columns).
    pub to: Vec<String>,
    /// `counts[i][j]`: customers in `from[i]` in run A and `to[j]` in run B.
    pub counts: Vec<Vec<usize>>,
    /// Per row: customers of `from[i]` absent from run B.
    pub only_in_from: Vec<usize>,
    /// Per column: customers of `to[j]` absent from run A.
    pub only_in_to: Vec<usize>,
    /// Customers in both runs.
    pub common: usize,
    /// Customers in both runs whose segment name is the same.
    pub unchanged: usize,
}

impl MigrationMatrix {
    /// Customers that went from segment `from` (run A) to `to` (run B); 0 for unknown names.
    pub fn count(&self, from: &str, to: &str) -> usize {
        match (
            self.from.iter().position(|s| s == from),
            self.to.iter().position(|s| s == to),
        ) {
            (Some(i), Some(j)) => self.counts[i][j],
            _ => 0,
        }
    }

    /// Customers of segment `from` (run A) not in run B.
    pub fn left(&self, from: &str) -> usize {
        self.from
            .iter()
            .position(|s| s == from)
            .map_or(0, |i| self.only_in_from[i])
    }

    /// Customers of segment `to` (run B) not in run A.
    pub fn joined(&self, to: &str) -> usize {
        self.to
            .iter()
            .position(|s| s == to)
            .map_or(0, |j| self.only_in_to[j])
    }
}

/// Display order of segment names: RFM segments (and clusters named after them) in RFM order, then
/// the rest alphabetically.
fn order_key(name: &str) -> (usize, String) {
    let base = name.split("-like").next().unwrap_or(name);
    let rank = RfmSegment::from_name(base).map_or(RfmSegment::ALL.len(), RfmSegment::index);
    (rank, name.to_string())
}

fn index<'a>(
    run: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<HashMap<&'a str, &'a str>> {
    let mut m = HashMap::new();
    for (customer, segment) in run {
        if m.insert(customer, segment).is_some() {
            return Err(ClusteringError::DuplicateCustomer(customer.to_string()));
        }
    }
    Ok(m)
}

fn segments_of(run: &HashMap<&str, &str>) -> Vec<String> {
    let mut s: Vec<String> = run.values().map(|s| s.to_string()).collect();
    s.sort_by_key(|n| order_key(n));
    s.dedup();
    s
}

/// The migration matrix between two runs given as `(customer_id, segment)` pairs.
///
/// Errors when a customer appears twice within one run.
pub fn migration<'a>(
    from: impl IntoIterator<Item = (&'a str, &'a str)>,
    to: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<MigrationMatrix> {
    let a = index(from)?;
    let b = index(to)?;
    let from_segments = segments_of(&a);
    let to_segments = segments_of(&b);
    let row: HashMap<&str, usize> = from_segments
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    let col: HashMap<&str, usize> = to_segments
        .iter()
        .enumerate()
        .map(|(j, s)| (s.as_str(), j))
        .collect();
    let mut counts = vec![vec![0usize; to_segments.len()]; from_segments.len()];
    let mut only_in_from = vec![0usize; from_segments.len()];
    let mut only_in_to = vec![0usize; to_segments.len()];
    let (mut common, mut unchanged) = (0, 0);
    for (customer, sa) in &a {
        let i = row[sa];
        match b.get(customer) {
            Some(sb) => {
                counts[i][col[sb]] += 1;
                common += 1;
                unchanged += usize::from(sa == sb);
            }
            None => only_in_from[i] += 1,
        }
    }
    for (customer, sb) in &b {
        if !a.contains_key(customer) {
            only_in_to[col[sb]] += 1;
        }
    }
    Ok(MigrationMatrix {
        from: from_segments,
        to: to_segments,
        counts,
        only_in_from,
        only_in_to,
        common,
        unchanged,
    })
}

/// The migration matrix between two runs' assignments.
pub fn migration_between(from: &[Assignment], to: &[Assignment]) -> Result<MigrationMatrix> {
    migration(
        from.iter()
            .map(|a| (a.customer_id.as_str(), a.segment.as_str())),
        to.iter()
            .map(|a| (a.customer_id.as_str(), a.segment.as_str())),
    )
}
