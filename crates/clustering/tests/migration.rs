//! Migration matrices between two runs.

use retain_clustering::{migration, migration_between, Assignment, ClusteringError};

fn a(id: &str, segment: &str) -> Assignment {
    Assignment {
        customer_id: id.into(),
        segment: segment.into(),
        cluster: 0,
        r: 3,
        f: 3,
        m: 3,
    }
}

#[test]
fn counts_moves_stays_arrivals_and_departures() {
    let before = [
        a("c1", "Champions"),
        a("c2", "Champions"),
        a("c3", "At Risk"),
        a("c4", "Hibernating"),
        a("c6", "At Risk"),
    ];
    let after = [
        a("c1", "Champions"),
        a("c2", "At Risk"),
        a("c3", "At Risk"),
        a("c5", "New Customers"),
        a("c6", "Hibernating"),
    ];
    let m = migration_between(&before, &after).expect("matrix");
    assert_eq!(m.count("Champions", "Champions"), 1);
    assert_eq!(m.count("Champions", "At Risk"), 1);
    assert_eq!(m.count("At Risk", "At Risk"), 1);
    assert_eq!(m.count("At Risk", "Hibernating"), 1);
    assert_eq!(m.count("Hibernating", "Hibernating"), 0);
    assert_eq!(m.count("Nobody", "Champions"), 0);
    assert_eq!(m.left("Hibernating"), 1);
    assert_eq!(m.joined("New Customers"), 1);
    assert_eq!((m.common, m.unchanged), (4, 2));
    // Rows and columns follow the RFM order.
    assert_eq!(m.from, vec!["Champions", "At Risk", "Hibernating"]);
    assert_eq!(
        m.to,
        vec!["Champions", "New Customers", "At Risk", "Hibernating"]
    );
    // Totals add up.
    let cells: usize = m.counts.iter().flatten().sum();
    assert_eq!(cells, m.common);
    assert_eq!(cells + m.only_in_from.iter().sum::<usize>(), before.len());
    assert_eq!(cells + m.only_in_to.iter().sum::<usize>(), after.len());
    let json = serde_json::to_string(&m).expect("json");
    assert!(json.contains("\"only_in_to\""));
}

#[test]
fn cluster_names_and_other_names_are_ordered() {
    let m = migration(
        [
            ("x", "Zeta"),
            ("y", "At Risk-like 2"),
            ("z", "Champions-like"),
        ],
        [("x", "Alpha")],
    )
    .expect("ok");
    assert_eq!(m.from, vec!["Champions-like", "At Risk-like 2", "Zeta"]);
    assert_eq!(m.count("Zeta", "Alpha"), 1);
}

#[test]
fn empty_runs_and_duplicates() {
    let m = migration_between(&[], &[]).expect("empty");
    assert!(m.from.is_empty() && m.to.is_empty() && m.common == 0);
    let err =
        migration_between(&[a("c1", "Champions"), a("c1", "At Risk")], &[]).expect_err("duplicate");
    assert_eq!(err, ClusteringError::DuplicateCustomer("c1".into()));
}
