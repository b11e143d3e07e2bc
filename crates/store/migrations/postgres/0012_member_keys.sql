-- Segment assignments, predictions and plan members reference customers by their integer key
-- (customers.key) instead of the external id: 1M-customer runs write and join integers. The
-- external id stays an attribute of the customer; reads join `customers` for it. Rows whose
-- customer id is unknown to `customers` cannot exist (every import creates its customers), and
-- are dropped.
CREATE TABLE segment_assignments_v12 (
    run_id  BIGINT NOT NULL REFERENCES segment_runs (id) ON DELETE CASCADE,
    ckey    BIGINT NOT NULL,    -- customers.key
    cluster BIGINT NOT NULL,
    segment TEXT NOT NULL,
    r       BIGINT NOT NULL,    -- RFM scores 1-5
    f       BIGINT NOT NULL,
    m       BIGINT NOT NULL,
    PRIMARY KEY (run_id, ckey)
);
INSERT INTO segment_assignments_v12 (run_id, ckey, cluster, segment, r, f, m)
    SELECT a.run_id, c.key, a.cluster, a.segment, a.r, a.f, a.m
    FROM segment_assignments a JOIN customers c ON c.id = a.customer_id;
DROP TABLE segment_assignments;
ALTER TABLE segment_assignments_v12 RENAME TO segment_assignments;
ALTER INDEX segment_assignments_v12_pkey RENAME TO segment_assignments_pkey;
CREATE INDEX segment_assignments_customer ON segment_assignments (ckey);

CREATE TABLE predictions_v12 (
    ckey                        BIGINT PRIMARY KEY,   -- customers.key
    run_id                      BIGINT NOT NULL,
    frequency                   DOUBLE PRECISION NOT NULL,
    recency                     DOUBLE PRECISION NOT NULL,
    t                           DOUBLE PRECISION NOT NULL,
    monetary                    DOUBLE PRECISION NOT NULL,
    p_alive                     DOUBLE PRECISION NOT NULL,
    expected_purchases_90d      DOUBLE PRECISION NOT NULL,
    clv                         DOUBLE PRECISION,
    expected_purchases_90d_low  DOUBLE PRECISION,
    expected_purchases_90d_high DOUBLE PRECISION,
    clv_low                     DOUBLE PRECISION,
    clv_high                    DOUBLE PRECISION,
    churn_risk                  TEXT,
    next_order_date             TEXT
);
INSERT INTO predictions_v12
    SELECT c.key, p.run_id, p.frequency, p.recency, p.t, p.monetary, p.p_alive,
           p.expected_purchases_90d, p.clv, p.expected_purchases_90d_low,
           p.expected_purchases_90d_high, p.clv_low, p.clv_high, p.churn_risk, p.next_order_date
    FROM predictions p JOIN customers c ON c.id = p.customer_id;
DROP TABLE predictions;
ALTER TABLE predictions_v12 RENAME TO predictions;
ALTER INDEX predictions_v12_pkey RENAME TO predictions_pkey;

CREATE TABLE plan_members_v12 (
    campaign_id TEXT NOT NULL REFERENCES plan_campaigns (campaign_id),
    ckey        BIGINT NOT NULL,   -- customers.key
    holdout     BIGINT NOT NULL,   -- 0 recipient, 1 holdout
    PRIMARY KEY (campaign_id, ckey)
);
INSERT INTO plan_members_v12 (campaign_id, ckey, holdout)
    SELECT m.campaign_id, c.key, m.holdout
    FROM plan_members m JOIN customers c ON c.id = m.customer_id;
DROP TABLE plan_members;
ALTER TABLE plan_members_v12 RENAME TO plan_members;
ALTER INDEX plan_members_v12_pkey RENAME TO plan_members_pkey;
CREATE INDEX plan_members_customer ON plan_members (ckey);
