//! Segmentation runs end to end on synthetic customers: coverage, shares, naming, auto-k,
//! determinism, reassignment, predictions, and every bad input.

mod common;

use std::collections::HashSet;

use common::{ari, customer, customer_groups};
use retain_clustering::{
    segment, segment_with_progress, ClusteringError, Feature, KChoice, Method, Model, Progress,
    RfmSegment, SegmentInput, SegmentParams, SegmentationRun,
};
use retain_core::{CustomerFeatures, Prediction};

/// Three clear behaviours: recent big spenders, lapsed one-timers, middling regulars.
const THREE: [(f64, f64, f64); 3] = [(4.0, 25.0, 3000.0), (400.0, 1.0, 25.0), (60.0, 6.0, 300.0)];
/// A fourth, far from the others in log space.
const FOUR: [(f64, f64, f64); 4] = [
    (4.0, 25.0, 3000.0),
    (400.0, 1.0, 25.0),
    (60.0, 6.0, 300.0),
    (1500.0, 60.0, 40000.0),
];

fn params(method: Method, k: KChoice) -> SegmentParams {
    SegmentParams {
        k,
        ..SegmentParams::new(method)
    }
}

fn check_run_invariants(run: &SegmentationRun, customers: &[CustomerFeatures]) {
    // Every customer exactly once, in input order.
    assert_eq!(run.assignments.len(), customers.len());
    let ids: HashSet<&str> = run
        .assignments
        .iter()
        .map(|a| a.customer_id.as_str())
        .collect();
    assert_eq!(ids.len(), customers.len());
    for (a, c) in run.assignments.iter().zip(customers) {
        assert_eq!(a.customer_id, c.customer_id);
        assert_eq!(run.segment_names[a.cluster], a.segment);
        assert!((1..=5).contains(&a.r) && (1..=5).contains(&a.f) && (1..=5).contains(&a.m));
    }
    // Profiles partition the customers; shares sum to 1.
    let size: usize = run.profiles.iter().map(|p| p.size).sum();
    assert_eq!(size, customers.len());
    let share: f64 = run.profiles.iter().map(|p| p.share).sum();
    assert!((share - 1.0).abs() < 1e-9, "shares sum to {share}");
    let revenue: f64 = customers.iter().map(|c| c.monetary_total).sum();
    if revenue > 0.0 {
        let rs: f64 = run.profiles.iter().map(|p| p.revenue_share).sum();
        assert!((rs - 1.0).abs() < 1e-9, "revenue shares sum to {rs}");
    }
    for p in &run.profiles {
        let members: Vec<&CustomerFeatures> = run
            .assignments
            .iter()
            .zip(customers)
            .filter(|(a, _)| a.segment == p.name)
            .map(|(_, c)| c)
            .collect();
        assert_eq!(members.len(), p.size, "{}", p.name);
        let f_mean = members.iter().map(|c| f64::from(c.frequency)).sum::<f64>() / p.size as f64;
        assert!((f_mean - p.frequency_mean).abs() < 1e-9);
        let mut rec: Vec<i64> = members.iter().map(|c| c.recency_days).collect();
        rec.sort_unstable();
        assert!(p.recency_median >= rec[0] as f64 && p.recency_median <= rec[rec.len() - 1] as f64);
    }
    let names: HashSet<&str> = run.profiles.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names.len(), run.profiles.len(), "segment names are unique");
}

#[test]
fn rfm_run_uses_the_named_segments() {
    let (cs, _) = customer_groups(&THREE, 100, 1);
    let run = segment(&SegmentInput::new(&cs), &SegmentParams::default()).expect("run");
    assert_eq!(run.method, Method::Rfm);
    assert_eq!(run.model, Model::Rfm);
    assert!(run.scaling.is_none() && run.k_scores.is_empty());
    check_run_invariants(&run, &cs);
    for a in &run.assignments {
        assert_eq!(a.segment, RfmSegment::of(a.r, a.f).name());
    }
    assert_eq!(run.k, run.profiles.len());
    // Recent heavy buyers are Champions; lapsed one-timers hibernate.
    let champion = run
        .assignments
        .iter()
        .find(|a| a.customer_id == "g0-00000")
        .expect("present");
    assert_eq!(champion.segment, "Champions");
    let lapsed = run
        .assignments
        .iter()
        .find(|a| a.customer_id == "g1-00000")
        .expect("present");
    assert_eq!(lapsed.segment, "Hibernating");
}

#[test]
fn kmeans_fixed_k_recovers_groups_and_names_them() {
    let (cs, truth) = customer_groups(&THREE, 200, 2);
    let run = segment(
        &SegmentInput::new(&cs),
        &params(Method::Kmeans, KChoice::Fixed(3)),
    )
    .expect("run");
    check_run_invariants(&run, &cs);
    assert_eq!(run.k, 3);
    let labels: Vec<usize> = run.assignments.iter().map(|a| a.cluster).collect();
    assert!(ari(&labels, &truth) >= 0.95);
    assert!(run.profiles.iter().all(|p| p.name.ends_with("-like")));
    let champions = run
        .assignments
        .iter()
        .find(|a| a.customer_id == "g0-00003")
        .expect("present");
    assert_eq!(champions.segment, "Champions-like");
    // Clusters are numbered by size, largest first.
    for w in run.profiles.windows(2) {
        assert!(w[0].size >= w[1].size);
        assert!(w[0].cluster < w[1].cluster);
    }
    assert_eq!(run.k_scores.len(), 1);
    assert!(run.inertia.is_some());
    let scaling = run.scaling.as_ref().expect("scaling");
    assert_eq!(scaling.features, Feature::RFM.to_vec());
}

#[test]
fn auto_k_picks_the_true_number_of_groups() {
    for (groups, k) in [(&THREE[..], 3usize), (&FOUR[..], 4)] {
        let (cs, truth) = customer_groups(groups, 150, 3);
        let run = segment(
            &SegmentInput::new(&cs),
            &params(Method::Kmeans, KChoice::default()),
        )
        .expect("run");
        assert_eq!(run.k, k, "k_scores: {:?}", run.k_scores);
        let ks: Vec<usize> = run.k_scores.iter().map(|s| s.k).collect();
        assert_eq!(ks, (2..=10).collect::<Vec<_>>(), "every k is reported");
        let best = run
            .k_scores
            .iter()
            .filter_map(|s| s.silhouette)
            .fold(f64::MIN, f64::max);
        let chosen = run
            .k_scores
            .iter()
            .find(|s| s.k == run.k)
            .and_then(|s| s.silhouette)
            .expect("score");
        assert_eq!(chosen, best);
        let labels: Vec<usize> = run.assignments.iter().map(|a| a.cluster).collect();
        assert!(ari(&labels, &truth) >= 0.95);
        check_run_invariants(&run, &cs);
    }
}

#[test]
fn auto_k_with_a_small_sample_still_finds_the_groups() {
    let (cs, _) = customer_groups(&FOUR, 500, 4);
    let mut p = params(Method::Kmeans, KChoice::Auto { min: 2, max: 6 });
    p.silhouette_sample = 400;
    let run = segment(&SegmentInput::new(&cs), &p).expect("run");
    assert_eq!(run.k, 4);
    assert_eq!(run.k_scores.len(), 5);
    assert!(run.notes.is_empty(), "{:?}", run.notes);
    // Candidates compared on a 300-customer sample, the winner refitted on all 2,000.
    p.fit_sample = 300;
    let sampled = segment(&SegmentInput::new(&cs), &p).expect("run");
    assert_eq!(sampled.k, 4);
    assert!(
        sampled.notes.iter().any(|n| n.contains("sample of 300")),
        "{:?}",
        sampled.notes
    );
    check_run_invariants(&sampled, &cs);
    let labels = |r: &retain_clustering::SegmentationRun| {
        r.assignments.iter().map(|a| a.cluster).collect::<Vec<_>>()
    };
    assert!(ari(&labels(&sampled), &labels(&run)) >= 0.95);
}

#[test]
fn fixed_k_on_many_customers_seeds_on_a_sample_and_refines_on_all() {
    let (cs, truth) = customer_groups(&FOUR, 500, 4);
    let p = params(Method::Kmeans, KChoice::Fixed(4));
    let full = segment(&SegmentInput::new(&cs), &p).expect("run");
    assert!(full.notes.is_empty(), "{:?}", full.notes);
    let mut p = p;
    p.fit_sample = 300;
    let sampled = segment(&SegmentInput::new(&cs), &p).expect("run");
    assert!(
        sampled
            .notes
            .iter()
            .any(|n| n.contains("centres seeded on a seeded sample of 300 of 2000")),
        "{:?}",
        sampled.notes
    );
    check_run_invariants(&sampled, &cs);
    let labels = |r: &retain_clustering::SegmentationRun| {
        r.assignments.iter().map(|a| a.cluster).collect::<Vec<_>>()
    };
    assert!(ari(&labels(&sampled), &truth) >= 0.95);
    assert!(ari(&labels(&sampled), &labels(&full)) >= 0.95);
    let (Some(a), Some(b)) = (sampled.inertia, full.inertia) else {
        panic!("k-means runs report their inertia");
    };
    assert!(
        a <= b * 1.01,
        "refined {a} against {b} from four starts on all"
    );
    let again = segment(&SegmentInput::new(&cs), &p).expect("run");
    assert_eq!(labels(&again), labels(&sampled), "same seed, same run");
}

#[test]
fn gmm_recovers_groups_and_reassigns_identically() {
    let (cs, truth) = customer_groups(&THREE, 150, 5);
    let run = segment(
        &SegmentInput::new(&cs),
        &params(Method::Gmm, KChoice::Fixed(3)),
    )
    .expect("run");
    check_run_invariants(&run, &cs);
    let labels: Vec<usize> = run.assignments.iter().map(|a| a.cluster).collect();
    assert!(ari(&labels, &truth) >= 0.95);
    assert!(matches!(run.model, Model::Gmm { .. }));
    let again = run.assign(&cs, None).expect("assign");
    let key = |a: &retain_clustering::Assignment| (a.cluster, a.segment.clone(), a.r, a.m);
    assert!(again.iter().map(key).eq(run.assignments.iter().map(key)));
    // Fitted on a sample, assigned to all.
    let mut p = params(Method::Gmm, KChoice::Fixed(3));
    p.gmm_sample = 120;
    let sampled = segment(&SegmentInput::new(&cs), &p).expect("run");
    assert!(
        sampled.notes.iter().any(|n| n.contains("sample of 120")),
        "{:?}",
        sampled.notes
    );
    check_run_invariants(&sampled, &cs);
    let labels: Vec<usize> = sampled.assignments.iter().map(|a| a.cluster).collect();
    assert!(ari(&labels, &truth) >= 0.95);
    let auto = segment(
        &SegmentInput::new(&cs),
        &params(Method::Gmm, KChoice::Auto { min: 2, max: 5 }),
    )
    .expect("run");
    assert_eq!(auto.k, 3);
}

#[test]
fn same_seed_same_run_and_json_round_trip() {
    let (cs, _) = customer_groups(&FOUR, 120, 6);
    let p = params(Method::Kmeans, KChoice::Auto { min: 2, max: 6 });
    let a = segment(&SegmentInput::new(&cs), &p).expect("run");
    let b = segment(&SegmentInput::new(&cs), &p).expect("run");
    assert_eq!(a, b);
    let json = serde_json::to_string(&a).expect("json");
    let back: SegmentationRun = serde_json::from_str(&json).expect("parse");
    assert_eq!(back.assignments, a.assignments);
    assert_eq!(back.scaling, a.scaling);
    assert_eq!(back.boundaries, a.boundaries);
    assert_eq!(back.k_scores.len(), a.k_scores.len());
    assert!(json.contains("\"method\":\"kmeans\""));
}

#[test]
fn a_stored_run_places_new_customers() {
    let (cs, _) = customer_groups(&THREE, 100, 7);
    let run = segment(
        &SegmentInput::new(&cs),
        &params(Method::Kmeans, KChoice::Fixed(3)),
    )
    .expect("run");
    // Its own customers land where they were.
    let again = run.assign(&cs, None).expect("assign");
    for (x, y) in again.iter().zip(&run.assignments) {
        assert_eq!((x.cluster, x.r, x.m), (y.cluster, y.r, y.m));
        assert!(x.f <= y.f);
    }
    // A new customer who looks like group 0 joins group 0's cluster.
    let g0 = run
        .assignments
        .iter()
        .find(|a| a.customer_id == "g0-00000")
        .expect("present");
    let newcomer = customer("new", 4, 26, 3100.0);
    let placed = run
        .assign(std::slice::from_ref(&newcomer), None)
        .expect("assign");
    assert_eq!(placed[0].cluster, g0.cluster);
    assert_eq!(placed[0].segment, g0.segment);
    // The free function gives the same clusters.
    let Model::Kmeans { centroids } = &run.model else {
        panic!("k-means model")
    };
    let clusters =
        retain_clustering::assign(run.scaling.as_ref().expect("scaling"), centroids, &cs, None)
            .expect("assign");
    assert_eq!(
        clusters,
        run.assignments
            .iter()
            .map(|a| a.cluster)
            .collect::<Vec<_>>()
    );
    let bad = retain_clustering::assign(
        run.scaling.as_ref().expect("scaling"),
        &[vec![0.0; 2]],
        &cs,
        None,
    );
    assert!(matches!(
        bad,
        Err(ClusteringError::DimensionMismatch { .. })
    ));
    // RFM runs too.
    let rfm = segment(&SegmentInput::new(&cs), &SegmentParams::default()).expect("run");
    let placed = rfm
        .assign(&[customer("fresh", 0, 100, 1e6)], None)
        .expect("assign");
    assert_eq!(placed[0].segment, "Champions");
}

fn predictions_for(cs: &[CustomerFeatures]) -> Vec<Prediction> {
    cs.iter()
        .map(|c| Prediction {
            customer_id: c.customer_id.clone(),
            p_alive: 1.0 / (1.0 + c.recency_days as f64 / 100.0),
            expected_purchases_90d: f64::from(c.frequency) / 10.0,
            clv: c.monetary_total * 0.5,
        })
        .collect()
}

#[test]
fn predictions_feed_profiles_and_features() {
    let (cs, _) = customer_groups(&THREE, 80, 8);
    let preds = predictions_for(&cs);
    let input = SegmentInput {
        customers: &cs,
        predictions: Some(&preds),
        as_of: Some(common::as_of()),
    };
    let run = segment(&input, &SegmentParams::default()).expect("run");
    assert_eq!(run.as_of, Some(common::as_of()));
    for p in &run.profiles {
        assert_eq!(p.predicted, p.size);
        let clv = p.clv_mean.expect("clv");
        assert!((clv - 0.5 * p.monetary_mean).abs() < 1e-6 * clv.abs().max(1.0));
        assert!(p.p_alive_mean.is_some_and(|v| v > 0.0 && v <= 1.0));
    }
    let mut p = params(Method::Kmeans, KChoice::Fixed(3));
    p.features = vec![
        Feature::Recency,
        Feature::Frequency,
        Feature::Monetary,
        Feature::Clv,
        Feature::PAlive,
    ];
    let run = segment(&input, &p).expect("run");
    assert_eq!(run.scaling.as_ref().map(|s| s.dim()), Some(5));
    check_run_invariants(&run, &cs);
    // Missing predictions for a prediction feature.
    let partial = &preds[..preds.len() - 1];
    let input = SegmentInput {
        customers: &cs,
        predictions: Some(partial),
        as_of: None,
    };
    assert!(matches!(
        segment(&input, &p),
        Err(ClusteringError::MissingPrediction(_))
    ));
    // A missing CLV (no spend model) is left out of the CLV mean, not propagated as NaN.
    let mut no_clv = preds.clone();
    for p in &mut no_clv {
        p.clv = f64::NAN;
    }
    let input_nan = SegmentInput {
        customers: &cs,
        predictions: Some(&no_clv),
        as_of: None,
    };
    let run = segment(&input_nan, &SegmentParams::default()).expect("run");
    assert!(run
        .profiles
        .iter()
        .all(|p| p.clv_mean.is_none() && p.p_alive_mean.is_some()));
    // Without a prediction feature, missing predictions only leave profile fields empty.
    let run = segment(&input, &SegmentParams::default()).expect("run");
    assert!(run.profiles.iter().map(|p| p.predicted).sum::<usize>() == cs.len() - 1);
}

#[test]
fn progress_is_reported_per_k() {
    use std::sync::Mutex;
    struct Log(Mutex<Vec<String>>);
    impl Progress for Log {
        fn update(&self, stage: &str, _done: usize, _total: usize) {
            self.0.lock().expect("lock").push(stage.to_string());
        }
    }
    let (cs, _) = customer_groups(&THREE, 50, 9);
    let log = Log(Mutex::new(Vec::new()));
    segment_with_progress(
        &SegmentInput::new(&cs),
        &params(Method::Kmeans, KChoice::Auto { min: 2, max: 4 }),
        &log,
    )
    .expect("run");
    let stages = log.0.into_inner().expect("lock");
    assert_eq!(
        stages
            .iter()
            .filter(|s| s.starts_with("fitting kmeans k="))
            .count(),
        3
    );
}

#[test]
fn degenerate_data_falls_back_or_fails_cleanly() {
    // All customers identical.
    let same: Vec<_> = (0..20)
        .map(|i| customer(&format!("c{i}"), 10, 2, 50.0))
        .collect();
    for method in [Method::Kmeans, Method::Gmm] {
        let err = segment(
            &SegmentInput::new(&same),
            &params(method, KChoice::default()),
        )
        .expect_err("no variation");
        assert_eq!(err, ClusteringError::NoVariation);
    }
    let rfm =
        segment(&SegmentInput::new(&same), &SegmentParams::default()).expect("rfm still works");
    check_run_invariants(&rfm, &same);
    // Three distinct customers, repeated: auto clamps to 2..=3; a fixed 5 is refused.
    let few: Vec<_> = (0..30)
        .map(|i| {
            customer(
                &format!("c{i:02}"),
                [1, 50, 300][i % 3],
                [9, 3, 1][i % 3],
                [900.0, 90.0, 9.0][i % 3],
            )
        })
        .collect();
    let run = segment(
        &SegmentInput::new(&few),
        &params(Method::Kmeans, KChoice::default()),
    )
    .expect("run");
    assert_eq!(
        run.k_scores.iter().map(|s| s.k).collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert_eq!(run.k, 3);
    assert!(run.notes.iter().any(|n| n.contains("clamped")));
    check_run_invariants(&run, &few);
    let err = segment(
        &SegmentInput::new(&few),
        &params(Method::Kmeans, KChoice::Fixed(5)),
    )
    .expect_err("too few");
    assert_eq!(err, ClusteringError::TooFewDistinct { distinct: 3, k: 5 });
    // Fewer customers than k.
    let err = segment(
        &SegmentInput::new(&few[..4]),
        &params(Method::Kmeans, KChoice::Fixed(5)),
    )
    .expect_err("n < k");
    assert_eq!(err, ClusteringError::TooFewCustomers { n: 4, k: 5 });
    // Two customers cannot choose k.
    let err = segment(
        &SegmentInput::new(&few[..2]),
        &params(Method::Kmeans, KChoice::default()),
    )
    .expect_err("n=2");
    assert_eq!(err, ClusteringError::TooFewForAutoK { n: 2 });
    // A single customer: RFM works, clustering does not.
    let one = [customer("solo", 3, 1, 10.0)];
    assert!(segment(&SegmentInput::new(&one), &SegmentParams::default()).is_ok());
    assert_eq!(
        segment(
            &SegmentInput::new(&one),
            &params(Method::Kmeans, KChoice::default())
        )
        .expect_err("one"),
        ClusteringError::NoVariation
    );
    // Negative revenue (returns) and revenue summing to zero: no NaN shares.
    let refunds = [
        customer("a", 1, 1, -20.0),
        customer("b", 2, 1, 20.0),
        customer("c", 3, 2, 0.0),
    ];
    let run = segment(&SegmentInput::new(&refunds), &SegmentParams::default()).expect("run");
    assert!(run
        .profiles
        .iter()
        .all(|p| p.revenue_share == 0.0 && p.share.is_finite()));
}

#[test]
fn bad_input_is_a_typed_error() {
    let (cs, _) = customer_groups(&THREE, 10, 10);
    let run = |cs: &[CustomerFeatures], p: &SegmentParams| {
        segment(&SegmentInput::new(cs), p).expect_err("error")
    };
    assert_eq!(
        run(&[], &SegmentParams::default()),
        ClusteringError::NoCustomers
    );
    assert_eq!(
        run(&[], &params(Method::Kmeans, KChoice::default())),
        ClusteringError::NoCustomers
    );
    let mut dup = cs.clone();
    dup.push(cs[3].clone());
    assert_eq!(
        run(&dup, &SegmentParams::default()),
        ClusteringError::DuplicateCustomer(cs[3].customer_id.clone())
    );
    // The same in id order (the store's order: the adjacent-ids check).
    dup.sort_by(|a, b| a.customer_id.cmp(&b.customer_id));
    assert_eq!(
        run(&dup, &SegmentParams::default()),
        ClusteringError::DuplicateCustomer(cs[3].customer_id.clone())
    );
    for k in [0, 1, 65] {
        assert!(matches!(
            run(&cs, &params(Method::Kmeans, KChoice::Fixed(k))),
            ClusteringError::KOutOfRange { .. }
        ));
    }
    for (min, max) in [(1, 5), (6, 5), (2, 65)] {
        assert!(matches!(
            run(&cs, &params(Method::Gmm, KChoice::Auto { min, max })),
            ClusteringError::InvalidKRange { .. }
        ));
    }
    let mut nan = cs.clone();
    nan[5].monetary_total = f64::NAN;
    assert!(matches!(
        run(&nan, &SegmentParams::default()),
        ClusteringError::NonFinite { .. }
    ));
    assert!(matches!(
        run(&nan, &params(Method::Kmeans, KChoice::Fixed(2))),
        ClusteringError::NonFinite { .. }
    ));
    let mut inf = cs.clone();
    inf[0].avg_order_value = f64::INFINITY;
    let mut p = params(Method::Kmeans, KChoice::Fixed(2));
    p.features = vec![Feature::Recency, Feature::AvgOrderValue];
    assert!(matches!(
        run(&inf, &p),
        ClusteringError::NonFinite {
            feature: "avg_order_value",
            ..
        }
    ));
    p.features = vec![];
    assert!(matches!(
        run(&cs, &p),
        ClusteringError::InvalidParameter {
            name: "features",
            ..
        }
    ));
    p.features = vec![Feature::Recency, Feature::Recency];
    assert!(matches!(
        run(&cs, &p),
        ClusteringError::InvalidParameter {
            name: "features",
            ..
        }
    ));
    let mut p = params(Method::Kmeans, KChoice::Fixed(2));
    p.n_runs = 0;
    assert!(matches!(
        run(&cs, &p),
        ClusteringError::InvalidParameter { name: "n_runs", .. }
    ));
    let mut p = params(Method::Kmeans, KChoice::Fixed(2));
    p.silhouette_sample = 1;
    assert!(matches!(
        run(&cs, &p),
        ClusteringError::InvalidParameter {
            name: "silhouette_sample",
            ..
        }
    ));
}

#[test]
fn parameters_parse() {
    assert_eq!(
        KChoice::parse("auto"),
        Some(KChoice::Auto { min: 2, max: 10 })
    );
    assert_eq!(
        KChoice::parse("auto:3-7"),
        Some(KChoice::Auto { min: 3, max: 7 })
    );
    assert_eq!(KChoice::parse("5"), Some(KChoice::Fixed(5)));
    assert_eq!(KChoice::parse("five"), None);
    assert_eq!("gmm".parse::<Method>(), Ok(Method::Gmm));
    assert_eq!("K-Means".parse::<Method>(), Ok(Method::Kmeans));
    assert!("dbscan".parse::<Method>().is_err());
    assert_eq!(Feature::parse("p_alive"), Some(Feature::PAlive));
}
