-- Segment assignments, predictions and plan members reference customers by their integer key
-- (customers.key) instead of the external id: 1M-customer runs write and join integers. The
-- external id stays an attribute of the customer; reads join `customers` for it. Rows whose
-- customer id is unknown to `customers` cannot exist (every import creates its customers), and
-- are dropped.
CREATE TABLE segment_assignments_v12 (
    run_id  INTEGER NOT NULL REFERENCES segment_runs (id) ON DELETE CASCADE,
    ckey    INTEGER NOT NULL,    -- customers.key
    cluster INTEGER NOT NULL,
    segment TEXT NOT NULL,
    r       INTEGER NOT NULL,    -- RFM scores 1-5
    f       INTEGER NOT NULL,
    m       INTEGER NOT NULL,
    PRIMARY KEY (run_id, ckey)
) WITHOUT ROWID;
INSERT INTO segment_assignments_v12 (run_id, ckey, cluster, segment, r, f, m)
    SELECT a.run_id, c.key, a.cluster, a.segment, a.r, a.f, a.m
    FROM segment_assignments a JOIN customers c ON c.id = a.customer_id;
DROP TABLE segment_assignments;
ALTER TABLE segment_assignments_v12 RENAME TO segment_assignments;
CREATE INDEX segment_assignments_customer ON segment_assignments (ckey);

CREATE TABLE predictions_v12 (
    ckey                        INTEGER PRIMARY KEY,   -- customers.key
    run_id                      INTEGER NOT NULL,
    frequency                   REAL NOT NULL,
    recency                     REAL NOT NULL,
    t                           REAL NOT NULL,
    monetary                    REAL NOT NULL,
    p_alive                     REAL NOT NULL,
    expected_purchases_90d      REAL NOT NULL,
    clv                         REAL,
    expected_purchases_90d_low  REAL,
    expected_purchases_90d_high REAL,
    clv_low                     REAL,
    clv_high                    REAL,
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

CREATE TABLE plan_members_v12 (
    campaign_id TEXT NOT NULL REFERENCES plan_campaigns (campaign_id),
    ckey        INTEGER NOT NULL,   -- customers.key
    holdout     INTEGER NOT NULL,   -- 0 recipient, 1 holdout
    PRIMARY KEY (campaign_id, ckey)
) WITHOUT ROWID;
INSERT INTO plan_members_v12 (campaign_id, ckey, holdout)
    SELECT m.campaign_id, c.key, m.holdout
    FROM plan_members m JOIN customers c ON c.id = m.customer_id;
DROP TABLE plan_members;
ALTER TABLE plan_members_v12 RENAME TO plan_members;
CREATE INDEX plan_members_customer ON plan_members (ckey);
