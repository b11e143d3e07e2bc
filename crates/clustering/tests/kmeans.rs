//! The k-means engine: recovery of seeded blobs, determinism, the Lloyd fixed point, linfa's
//! traits at the boundary, and bad input.

mod common;

use common::{ari, blobs};
use linfa::traits::{Fit, Predict};
use linfa::DatasetBase;
use ndarray::{Array1, Array2};
use retain_clustering::kmeans::{
    inertia, kmeans, kmeans_from, linfa_kmeans, nearest, KMeansConfig, Precision,
};
use retain_clustering::ClusteringError;

fn four_blobs(per: usize, seed: u64) -> (Vec<f64>, Vec<usize>) {
    let centers = vec![
        vec![0.0, 0.0, 0.0],
        vec![6.0, 0.0, 1.0],
        vec![0.0, 7.0, -2.0],
        vec![5.0, 6.0, 6.0],
    ];
    blobs(&centers, per, 0.7, seed)
}

fn as_usize(l: &[u32]) -> Vec<usize> {
    l.iter().map(|&x| x as usize).collect()
}

#[test]
fn adjusted_rand_index_behaves() {
    let a = [0, 0, 1, 1, 2, 2];
    assert!(
        (ari(&a, &[5, 5, 9, 9, 7, 7]) - 1.0).abs() < 1e-12,
        "relabelling is a perfect match"
    );
    assert!(
        ari(&a, &[0, 1, 0, 1, 0, 1]) < 0.1,
        "an unrelated split scores near 0"
    );
    assert!(ari(&a, &[0, 0, 1, 1, 2, 0]) < 1.0);
}

#[test]
fn refining_centres_from_a_sample_fit_reaches_the_full_fit() {
    let (data, truth) = four_blobs(2_000, 11);
    let cfg = KMeansConfig::new(4);
    // Seeds from every fourth point, refined on all of them.
    let sample: Vec<f64> = data.chunks_exact(3).step_by(4).flatten().copied().collect();
    let seeded = kmeans(&sample, 3, &cfg).expect("sample fit");
    let refined = kmeans_from(&data, 3, &cfg, &seeded.centroids).expect("refined");
    assert!(refined.converged);
    assert_eq!(refined.labels.len(), truth.len());
    assert!(ari(&as_usize(&refined.labels), &truth) >= 0.95);
    assert_eq!(
        refined.labels,
        nearest(&data, 3, &refined.centroids),
        "labels are the nearest refined centres"
    );
    let full = kmeans(&data, 3, &cfg).expect("full fit");
    assert!(
        refined.inertia <= full.inertia * 1.001,
        "refined {} against a full fit's {}",
        refined.inertia,
        full.inertia
    );
    // Refining converged centres changes nothing.
    let again = kmeans_from(&data, 3, &cfg, &refined.centroids).expect("again");
    assert_eq!(again.labels, refined.labels);
    // Centres of the wrong shape or not finite are typed errors.
    for bad in [vec![0.0; 9], vec![f64::NAN; 12]] {
        assert!(matches!(
            kmeans_from(&data, 3, &cfg, &bad),
            Err(ClusteringError::InvalidParameter {
                name: "centres",
                ..
            })
        ));
    }
}

#[test]
fn recovers_well_separated_blobs() {
    let (data, truth) = four_blobs(400, 7);
    for precision in [Precision::F64, Precision::F32] {
        let mut cfg = KMeansConfig::new(4);
        cfg.n_runs = 3;
        cfg.precision = precision;
        let fit = kmeans(&data, 3, &cfg).expect("fit");
        let score = ari(&as_usize(&fit.labels), &truth);
        assert!(score >= 0.95, "{precision:?}: ARI {score}");
        assert!(fit.converged);
        assert!(
            (fit.inertia - inertia(&data, 3, &fit.centroids, &fit.labels)).abs()
                < 1e-6 * fit.inertia
        );
        assert_eq!(fit.sizes().iter().sum::<usize>(), truth.len());
    }
}

#[test]
fn recovers_blobs_in_one_and_seven_dimensions() {
    let (d1, t1) = blobs(&[vec![0.0], vec![10.0], vec![20.0]], 200, 1.0, 3);
    let f1 = kmeans(&d1, 1, &KMeansConfig::new(3)).expect("fit");
    assert!(ari(&as_usize(&f1.labels), &t1) >= 0.95);
    let centers: Vec<Vec<f64>> = (0..3)
        .map(|c| (0..7).map(|j| if j == c { 8.0 } else { 0.0 }).collect())
        .collect();
    let (d7, t7) = blobs(&centers, 200, 1.0, 4);
    let f7 = kmeans(&d7, 7, &KMeansConfig::new(3)).expect("fit");
    assert!(ari(&as_usize(&f7.labels), &t7) >= 0.95);
}

#[test]
fn same_seed_same_result_whatever_the_thread_count() {
    let (data, _) = four_blobs(3000, 11); // 12,000 rows: several parallel tasks
    let mut cfg = KMeansConfig::new(6);
    cfg.n_runs = 2;
    cfg.seed = 99;
    let a = kmeans(&data, 3, &cfg).expect("fit");
    let b = kmeans(&data, 3, &cfg).expect("fit");
    assert_eq!(a, b);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    let c = pool.install(|| kmeans(&data, 3, &cfg).expect("fit"));
    assert_eq!(a, c, "one thread gives bit-identical output");
    let pool3 = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .expect("pool");
    let d = pool3.install(|| kmeans(&data, 3, &cfg).expect("fit"));
    assert_eq!(a, d);
}

#[test]
fn without_tolerance_lloyd_stops_at_a_fixed_point() {
    let (data, _) = four_blobs(300, 5);
    let mut cfg = KMeansConfig::new(5);
    cfg.tol = 0.0;
    let fit = kmeans(&data, 3, &cfg).expect("fit");
    assert!(fit.converged);
    // Every centroid is the mean of its points, and every point is nearest to its own centroid.
    for c in 0..fit.k {
        let members: Vec<&[f64]> = data
            .chunks(3)
            .zip(&fit.labels)
            .filter(|(_, &l)| l as usize == c)
            .map(|(r, _)| r)
            .collect();
        assert!(!members.is_empty(), "no empty cluster");
        for j in 0..3 {
            let mean = members.iter().map(|r| r[j]).sum::<f64>() / members.len() as f64;
            assert!((mean - fit.centroid(c)[j]).abs() < 1e-9);
        }
    }
    assert_eq!(nearest(&data, 3, &fit.centroids), fit.labels);
}

#[test]
fn duplicated_points_fill_every_cluster() {
    // 300 rows but only 4 distinct points, k = 4: each point becomes a cluster.
    let pts = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0]];
    let data: Vec<f64> = (0..300).flat_map(|i| pts[i % 4]).collect();
    let fit = kmeans(&data, 2, &KMeansConfig::new(4)).expect("fit");
    assert!(fit.inertia.abs() < 1e-12);
    assert!(fit.sizes().iter().all(|&s| s == 75));
}

#[test]
fn close_to_linfa_on_the_same_data() {
    let (data, truth) = four_blobs(300, 21);
    let (labels, sse, _) = linfa_kmeans(&data, 3, 4, 3, 1e-4, 1).expect("linfa");
    assert!(ari(&as_usize(&labels), &truth) >= 0.95);
    let mut cfg = KMeansConfig::new(4);
    cfg.n_runs = 3;
    let ours = kmeans(&data, 3, &cfg).expect("fit");
    assert!(
        ours.inertia <= sse * 1.01,
        "ours {} linfa {sse}",
        ours.inertia
    );
}

#[test]
fn linfa_fit_and_predict_traits() {
    let (data, truth) = four_blobs(100, 2);
    let records = Array2::from_shape_vec((truth.len(), 3), data.clone()).expect("shape");
    let model = KMeansConfig::new(4)
        .fit(&DatasetBase::from(records.clone()))
        .expect("fit");
    assert_eq!(model.centroids.dim(), (4, 3));
    let predicted: Array1<usize> = model.predict(&records);
    assert_eq!(predicted, model.labels);
    assert!(ari(&predicted.to_vec(), &truth) >= 0.95);
    // Column-major records (no row-major slice) fit and predict the same.
    let n = truth.len();
    let col_major: Vec<f64> = (0..3)
        .flat_map(|j| (0..n).map(move |i| (i, j)))
        .map(|(i, j)| data[i * 3 + j])
        .collect();
    let f_order =
        Array2::from_shape_vec(ndarray::ShapeBuilder::f((n, 3)), col_major).expect("shape");
    assert_eq!(f_order, records);
    assert!(f_order.as_slice().is_none());
    let back: Array1<usize> = model.predict(&f_order);
    assert_eq!(back, predicted);
    let model_f = KMeansConfig::new(4)
        .fit(&DatasetBase::from(f_order))
        .expect("fit");
    assert_eq!(model_f.labels, model.labels);
    // Wrong width: no panic, cluster 0.
    let narrow = Array2::<f64>::zeros((5, 2));
    let zeros: Array1<usize> = model.predict(&narrow);
    assert!(zeros.iter().all(|&l| l == 0));
}

#[test]
fn bad_input_is_a_typed_error() {
    let data = vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0];
    let err = |r: Result<_, ClusteringError>| r.expect_err("should fail");
    assert!(matches!(
        err(kmeans(&data, 2, &KMeansConfig::new(0))),
        ClusteringError::KOutOfRange { .. }
    ));
    assert!(matches!(
        err(kmeans(&data, 2, &KMeansConfig::new(65))),
        ClusteringError::KOutOfRange { .. }
    ));
    assert!(matches!(
        err(kmeans(&data, 2, &KMeansConfig::new(4))),
        ClusteringError::TooFewCustomers { n: 3, k: 4 }
    ));
    assert!(matches!(
        err(kmeans(&data, 4, &KMeansConfig::new(1))),
        ClusteringError::BadShape { .. }
    ));
    assert!(matches!(
        err(kmeans(&data, 0, &KMeansConfig::new(1))),
        ClusteringError::InvalidParameter { .. }
    ));
    assert!(matches!(
        err(kmeans(&[], 2, &KMeansConfig::new(1))),
        ClusteringError::NoCustomers
    ));
    let mut nan = data.clone();
    nan[3] = f64::NAN;
    assert!(matches!(
        err(kmeans(&nan, 2, &KMeansConfig::new(2))),
        ClusteringError::NonFinite { .. }
    ));
    nan[3] = f64::NEG_INFINITY;
    assert!(matches!(
        err(kmeans(&nan, 2, &KMeansConfig::new(2))),
        ClusteringError::NonFinite { .. }
    ));
    let mut cfg = KMeansConfig::new(2);
    cfg.n_runs = 0;
    assert!(matches!(
        err(kmeans(&data, 2, &cfg)),
        ClusteringError::InvalidParameter { name: "n_runs", .. }
    ));
    let mut cfg = KMeansConfig::new(2);
    cfg.tol = f64::NAN;
    assert!(matches!(
        err(kmeans(&data, 2, &cfg)),
        ClusteringError::InvalidParameter { name: "tol", .. }
    ));
    // All identical rows: not an error at this level, one centre carries everyone.
    let same = vec![1.0; 20];
    let fit = kmeans(&same, 2, &KMeansConfig::new(3)).expect("degenerate but defined");
    assert_eq!(fit.inertia, 0.0);
    assert_eq!(fit.labels.len(), 10);
}
