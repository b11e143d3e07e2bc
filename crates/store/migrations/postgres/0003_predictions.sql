-- CLV model runs (`retain predict`): fitted parameters and means of every run, and the current
-- per-customer predictions, which each run replaces as a whole.
CREATE TABLE prediction_runs (
    id                   BIGSERIAL PRIMARY KEY,
    as_of                TEXT NOT NULL,     -- YYYY-MM-DD; orders on or after it were ignored
    period               TEXT NOT NULL,     -- day | week: the time unit of the parameters
    horizon_months       BIGINT NOT NULL,
    discount             DOUBLE PRECISION NOT NULL,     -- monthly
    customers            BIGINT NOT NULL,
    bgnbd_r              DOUBLE PRECISION NOT NULL,
    bgnbd_alpha          DOUBLE PRECISION NOT NULL,
    bgnbd_a              DOUBLE PRECISION NOT NULL,
    bgnbd_b              DOUBLE PRECISION NOT NULL,
    bgnbd_log_likelihood DOUBLE PRECISION NOT NULL,
    bgnbd_converged      BIGINT NOT NULL,
    gg_p                 DOUBLE PRECISION,              -- NULL when no spend model could be fitted
    gg_q                 DOUBLE PRECISION,
    gg_v                 DOUBLE PRECISION,
    gg_reason            TEXT,              -- why there is no spend model
    p_alive_mean         DOUBLE PRECISION NOT NULL,
    expected_purchases_90d_mean DOUBLE PRECISION NOT NULL,
    clv_mean             DOUBLE PRECISION,              -- NULL without a spend model
    created_at           BIGINT NOT NULL
);

CREATE TABLE predictions (
    customer_id            TEXT PRIMARY KEY,
    run_id                 BIGINT NOT NULL,
    frequency              DOUBLE PRECISION NOT NULL,   -- the summary the models saw, in the run's period
    recency                DOUBLE PRECISION NOT NULL,
    t                      DOUBLE PRECISION NOT NULL,
    monetary               DOUBLE PRECISION NOT NULL,
    p_alive                DOUBLE PRECISION NOT NULL,
    expected_purchases_90d DOUBLE PRECISION NOT NULL,
    clv                    DOUBLE PRECISION             -- NULL without a spend model
);
