-- CLV model runs (`retain predict`): fitted parameters and means of every run, and the current
-- per-customer predictions, which each run replaces as a whole.
CREATE TABLE prediction_runs (
    id                   INTEGER PRIMARY KEY,
    as_of                TEXT NOT NULL,     -- YYYY-MM-DD; orders on or after it were ignored
    period               TEXT NOT NULL,     -- day | week: the time unit of the parameters
    horizon_months       INTEGER NOT NULL,
    discount             REAL NOT NULL,     -- monthly
    customers            INTEGER NOT NULL,
    bgnbd_r              REAL NOT NULL,
    bgnbd_alpha          REAL NOT NULL,
    bgnbd_a              REAL NOT NULL,
    bgnbd_b              REAL NOT NULL,
    bgnbd_log_likelihood REAL NOT NULL,
    bgnbd_converged      INTEGER NOT NULL,
    gg_p                 REAL,              -- NULL when no spend model could be fitted
    gg_q                 REAL,
    gg_v                 REAL,
    gg_reason            TEXT,              -- why there is no spend model
    p_alive_mean         REAL NOT NULL,
    expected_purchases_90d_mean REAL NOT NULL,
    clv_mean             REAL,              -- NULL without a spend model
    created_at           INTEGER NOT NULL
);

CREATE TABLE predictions (
    customer_id            TEXT PRIMARY KEY,
    run_id                 INTEGER NOT NULL,
    frequency              REAL NOT NULL,   -- the summary the models saw, in the run's period
    recency                REAL NOT NULL,
    t                      REAL NOT NULL,
    monetary               REAL NOT NULL,
    p_alive                REAL NOT NULL,
    expected_purchases_90d REAL NOT NULL,
    clv                    REAL             -- NULL without a spend model
);
