-- Segmentation runs (`retain segment`): every run with its parameters and its fitted model (JSON:
-- feature scaling, RFM score boundaries, centroids or mixture, segment names — enough to place new
-- customers later), the profile of each of its segments, and where every customer landed.
CREATE TABLE segment_runs (
    id          BIGSERIAL PRIMARY KEY,
    method      TEXT NOT NULL,       -- rfm | kmeans | gmm
    k           BIGINT NOT NULL,    -- segments fitted (rfm: non-empty named segments)
    seed        BIGINT NOT NULL,    -- the u64 seed's bits
    as_of       TEXT,                -- YYYY-MM-DD
    customers   BIGINT NOT NULL,
    params      TEXT NOT NULL,       -- JSON
    k_scores    TEXT NOT NULL,       -- JSON array of {k, silhouette, inertia}
    model       TEXT NOT NULL,       -- JSON
    created_at  BIGINT NOT NULL
);

CREATE TABLE segment_profiles (
    run_id           BIGINT NOT NULL REFERENCES segment_runs (id) ON DELETE CASCADE,
    cluster          BIGINT NOT NULL,
    name             TEXT NOT NULL,
    size             BIGINT NOT NULL,
    share            DOUBLE PRECISION NOT NULL,
    revenue          DOUBLE PRECISION NOT NULL,
    revenue_share    DOUBLE PRECISION NOT NULL,
    recency_mean     DOUBLE PRECISION NOT NULL,
    recency_median   DOUBLE PRECISION NOT NULL,
    frequency_mean   DOUBLE PRECISION NOT NULL,
    frequency_median DOUBLE PRECISION NOT NULL,
    monetary_mean    DOUBLE PRECISION NOT NULL,
    monetary_median  DOUBLE PRECISION NOT NULL,
    clv_mean         DOUBLE PRECISION,           -- NULL without predictions
    p_alive_mean     DOUBLE PRECISION,
    PRIMARY KEY (run_id, cluster)
);

CREATE TABLE segment_assignments (
    run_id      BIGINT NOT NULL REFERENCES segment_runs (id) ON DELETE CASCADE,
    customer_id TEXT NOT NULL,
    cluster     BIGINT NOT NULL,
    segment     TEXT NOT NULL,
    r           BIGINT NOT NULL,    -- RFM scores 1-5
    f           BIGINT NOT NULL,
    m           BIGINT NOT NULL,
    PRIMARY KEY (run_id, customer_id)
);
CREATE INDEX segment_assignments_customer ON segment_assignments (customer_id);
