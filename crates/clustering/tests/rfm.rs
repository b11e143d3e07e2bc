//! RFM scores and the named segment grid.

mod common;

use std::collections::HashMap;

use common::customer;
use proptest::prelude::*;
use retain_clustering::rfm::{score_customers, RfmSegment};
use retain_clustering::ClusteringError;

/// The grid as the specification states it, cell by cell: (R, F) → name.
fn expected(r: u8, f: u8) -> &'static str {
    match (r, f) {
        (5, 4) | (5, 5) => "Champions",
        (3, 4) | (3, 5) | (4, 4) | (4, 5) => "Loyal Customers",
        (4, 2) | (4, 3) | (5, 2) | (5, 3) => "Potential Loyalists",
        (5, 1) => "New Customers",
        (4, 1) => "Promising",
        (3, 3) => "Need Attention",
        (3, 1) | (3, 2) => "About To Sleep",
        (1, 3) | (1, 4) | (2, 3) | (2, 4) => "At Risk",
        (1, 5) | (2, 5) => "Can't Lose Them",
        (1, 1) | (1, 2) | (2, 1) | (2, 2) => "Hibernating",
        _ => unreachable!("scores are 1-5"),
    }
}

#[test]
fn grid_matches_the_specification_in_all_25_cells() {
    for r in 1..=5 {
        for f in 1..=5 {
            assert_eq!(RfmSegment::of(r, f).name(), expected(r, f), "R{r} F{f}");
        }
    }
}

#[test]
fn grid_is_a_partition_using_every_segment() {
    let mut cells: HashMap<RfmSegment, usize> = HashMap::new();
    for r in 1..=5 {
        for f in 1..=5 {
            *cells.entry(RfmSegment::of(r, f)).or_default() += 1;
        }
    }
    assert_eq!(cells.values().sum::<usize>(), 25);
    assert_eq!(
        cells.len(),
        10,
        "every named segment owns at least one cell"
    );
    let sizes: HashMap<&str, usize> = cells.iter().map(|(s, &n)| (s.name(), n)).collect();
    assert_eq!(sizes["Champions"], 2);
    assert_eq!(sizes["Loyal Customers"], 4);
    assert_eq!(sizes["Potential Loyalists"], 4);
    assert_eq!(sizes["At Risk"], 4);
    assert_eq!(sizes["Hibernating"], 4);
    assert_eq!(sizes["Can't Lose Them"], 2);
    assert_eq!(sizes["About To Sleep"], 2);
}

#[test]
fn names_round_trip_and_out_of_range_scores_clamp() {
    for s in RfmSegment::ALL {
        assert_eq!(RfmSegment::from_name(s.name()), Some(s));
        assert_eq!(RfmSegment::ALL[s.index()], s);
    }
    assert_eq!(RfmSegment::from_name("Whales"), None);
    assert_eq!(RfmSegment::of(9, 9), RfmSegment::of(5, 5));
    assert_eq!(RfmSegment::of(0, 0), RfmSegment::of(1, 1));
}

#[test]
fn distinct_values_fill_quintiles_evenly_and_in_the_right_direction() {
    // Ten customers, all values distinct: two per score in every dimension.
    let cs: Vec<_> = (0..10)
        .map(|i| {
            customer(
                &format!("c{i}"),
                10 * (i as i64 + 1),
                i + 1,
                100.0 * f64::from(i + 1),
            )
        })
        .collect();
    let (scores, _) = score_customers(&cs).expect("scores");
    for dim in 0..3 {
        let mut per = [0usize; 5];
        for s in &scores {
            per[usize::from([s.r, s.f, s.m][dim]) - 1] += 1;
        }
        assert_eq!(per, [2; 5], "dimension {dim}");
    }
    // c0 is the most recent but buys least; c9 the reverse.
    assert_eq!((scores[0].r, scores[0].f, scores[0].m), (5, 1, 1));
    assert_eq!((scores[9].r, scores[9].f, scores[9].m), (1, 5, 5));
}

#[test]
fn frequency_ties_split_evenly_and_deterministically() {
    // 100 one-time buyers: frequency ties everywhere, split 20 per score by customer id.
    let cs: Vec<_> = (0..100)
        .map(|i| customer(&format!("c{i:03}"), 5, 1, 10.0))
        .collect();
    let (scores, _) = score_customers(&cs).expect("scores");
    let mut per = [0usize; 5];
    for s in &scores {
        per[usize::from(s.f) - 1] += 1;
    }
    assert_eq!(per, [20; 5]);
    // Ids ascending → F ascending.
    for w in scores.windows(2) {
        assert!(w[0].f <= w[1].f);
    }
    // The input order does not matter.
    let mut rev = cs.clone();
    rev.reverse();
    let (rev_scores, _) = score_customers(&rev).expect("scores");
    for (i, s) in rev_scores.iter().enumerate() {
        assert_eq!(s.f, scores[99 - i].f);
    }
    // Recency and monetary ties are never split: all equal, all in the middle.
    assert!(scores.iter().all(|s| s.r == 3 && s.m == 3));
}

#[test]
fn equal_monetary_values_share_one_score_and_scores_grow_with_value() {
    let values = [5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 100.0, 200.0, 300.0, 400.0];
    let cs: Vec<_> = values
        .iter()
        .enumerate()
        .map(|(i, &m)| customer(&format!("c{i}"), 1, 1, m))
        .collect();
    let (scores, _) = score_customers(&cs).expect("scores");
    assert!(
        scores[..6].iter().all(|s| s.m == scores[0].m),
        "ties share a score"
    );
    for w in scores.windows(2) {
        assert!(w[0].m <= w[1].m, "monotone in value");
    }
    assert_eq!(scores[9].m, 5);
    let distinct: std::collections::HashSet<u8> = scores.iter().map(|s| s.m).collect();
    assert!(
        distinct.len() < 5,
        "heavy ties leave fewer distinct bins: {distinct:?}"
    );
}

#[test]
fn fewer_than_five_customers_get_symmetric_scores() {
    for n in 1..5usize {
        let cs: Vec<_> = (0..n)
            .map(|i| {
                customer(
                    &format!("c{i}"),
                    100 - i as i64,
                    i as u32 + 1,
                    i as f64 + 1.0,
                )
            })
            .collect();
        let (scores, _) = score_customers(&cs).expect("scores");
        for i in 0..n {
            let (a, b) = (scores[i], scores[n - 1 - i]);
            assert_eq!(a.m + b.m, 6, "n={n}");
            assert_eq!(a.f + b.f, 6, "n={n}");
            assert_eq!(a.r + b.r, 6, "n={n}");
            assert!((1..=5).contains(&a.m));
        }
    }
    let (one, _) = score_customers(&[customer("solo", 3, 2, 50.0)]).expect("scores");
    assert_eq!((one[0].r, one[0].f, one[0].m), (3, 3, 3));
}

#[test]
fn all_equal_customers_score_three_and_spread_frequency() {
    let cs: Vec<_> = (0..7)
        .map(|i| customer(&format!("c{i}"), 30, 2, 80.0))
        .collect();
    let (scores, b) = score_customers(&cs).expect("scores");
    assert!(scores.iter().all(|s| s.r == 3 && s.m == 3));
    assert!(
        scores
            .iter()
            .map(|s| s.f)
            .collect::<std::collections::HashSet<_>>()
            .len()
            > 1
    );
    // Boundaries hold only the used scores.
    assert_eq!(
        b.monetary.ranges.iter().filter(|r| r.customers > 0).count(),
        1
    );
    assert_eq!(b.score(&customer("new", 30, 2, 80.0)).m, 3);
}

#[test]
fn empty_input_and_non_finite_money() {
    let (scores, b) = score_customers(&[]).expect("empty is fine");
    assert!(scores.is_empty());
    assert_eq!(
        b.score(&customer("x", 1, 1, 1.0)).r,
        3,
        "no boundaries: middle score"
    );
    let bad = [customer("a", 1, 1, 1.0), customer("b", 1, 1, f64::NAN)];
    assert!(matches!(
        score_customers(&bad),
        Err(ClusteringError::NonFinite { .. })
    ));
    let inf = [customer("a", 1, 1, f64::INFINITY)];
    assert!(matches!(
        score_customers(&inf),
        Err(ClusteringError::NonFinite { .. })
    ));
}

#[test]
fn boundaries_are_serialisable_and_extrapolate_to_the_best_and_worst_scores() {
    let cs: Vec<_> = (0..50)
        .map(|i| {
            customer(
                &format!("c{i}"),
                2 * i64::from(i) + 1,
                i % 7 + 1,
                10.0 + f64::from(i),
            )
        })
        .collect();
    let (_, b) = score_customers(&cs).expect("scores");
    let json = serde_json::to_string(&b).expect("json");
    let back: retain_clustering::RfmBoundaries = serde_json::from_str(&json).expect("parse");
    assert_eq!(back, b);
    let best = b.score(&customer("new", 0, 1000, 1e9));
    assert_eq!((best.r, best.f, best.m), (5, 5, 5));
    let worst = b.score(&customer("old", 100_000, 1, 0.0));
    assert_eq!((worst.r, worst.f, worst.m), (1, 1, 1));
}

proptest! {
    #[test]
    fn boundaries_reproduce_training_scores(
        values in prop::collection::vec((0i64..400, 1u32..12, -50.0f64..5000.0), 1..200)
    ) {
        let cs: Vec<_> = values
            .iter()
            .enumerate()
            .map(|(i, &(r, f, m))| customer(&format!("c{i:04}"), r, f, m))
            .collect();
        let (scores, b) = score_customers(&cs).expect("scores");
        for (c, s) in cs.iter().zip(&scores) {
            prop_assert!((1..=5).contains(&s.r) && (1..=5).contains(&s.f) && (1..=5).contains(&s.m));
            let again = b.score(c);
            // R and M are value bins: exactly reproduced.
            prop_assert_eq!(again.r, s.r);
            prop_assert_eq!(again.m, s.m);
            // F splits ties, so a frequency can span scores: new customers get the lowest of them.
            prop_assert!(again.f <= s.f);
        }
        // Equal recency → equal R; lower recency → R at least as high.
        for (a, sa) in cs.iter().zip(&scores) {
            for (c, sc) in cs.iter().zip(&scores) {
                if a.recency_days < c.recency_days {
                    prop_assert!(sa.r >= sc.r);
                }
                if a.frequency < c.frequency {
                    prop_assert!(sa.f <= sc.f);
                }
                if a.monetary_total < c.monetary_total {
                    prop_assert!(sa.m <= sc.m);
                }
                if a.monetary_total == c.monetary_total {
                    prop_assert_eq!(sa.m, sc.m);
                }
            }
        }
    }
}
