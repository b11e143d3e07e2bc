-- Segmentation runs (`retain segment`): every run with its parameters and its fitted model (JSON:
-- feature scaling, RFM score boundaries, centroids or mixture, segment names — enough to place new
-- customers later), the profile of each of its segments, and where every customer landed.
CREATE TABLE segment_runs (
    id          INTEGER PRIMARY KEY,
    method      TEXT NOT NULL,       -- rfm | kmeans | gmm
    k           INTEGER NOT NULL,    -- segments fitted (rfm: non-empty named segments)
    seed        INTEGER NOT NULL,    -- the u64 seed's bits
    as_of       TEXT,                -- YYYY-MM-DD
    customers   INTEGER NOT NULL,
    params      TEXT NOT NULL,       -- JSON
    k_scores    TEXT NOT NULL,       -- JSON array of {k, silhouette, inertia}
    model       TEXT NOT NULL,       -- JSON
    created_at  INTEGER NOT NULL
);

CREATE TABLE segment_profiles (
    run_id           INTEGER NOT NULL REFERENCES segment_runs (id) ON DELETE CASCADE,
    cluster          INTEGER NOT NULL,
    name             TEXT NOT NULL,
    size             INTEGER NOT NULL,
    share            REAL NOT NULL,
    revenue          REAL NOT NULL,
    revenue_share    REAL NOT NULL,
    recency_mean     REAL NOT NULL,
    recency_median   REAL NOT NULL,
    frequency_mean   REAL NOT NULL,
    frequency_median REAL NOT NULL,
    monetary_mean    REAL NOT NULL,
    monetary_median  REAL NOT NULL,
    clv_mean         REAL,           -- NULL without predictions
    p_alive_mean     REAL,
    PRIMARY KEY (run_id, cluster)
);

CREATE TABLE segment_assignments (
    run_id      INTEGER NOT NULL REFERENCES segment_runs (id) ON DELETE CASCADE,
    customer_id TEXT NOT NULL,
    cluster     INTEGER NOT NULL,
    segment     TEXT NOT NULL,
    r           INTEGER NOT NULL,    -- RFM scores 1-5
    f           INTEGER NOT NULL,
    m           INTEGER NOT NULL,
    PRIMARY KEY (run_id, customer_id)
);
CREATE INDEX segment_assignments_customer ON segment_assignments (customer_id);
