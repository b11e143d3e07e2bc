-- Campaign plans: each `retain plan` run is stored as a draft with its campaigns and their frozen
-- member lists (recipients and holdout), then approved (the campaigns may be sent) or discarded.
CREATE TABLE plans (
    id               TEXT PRIMARY KEY,      -- p1, p2, …
    seq              BIGINT NOT NULL UNIQUE,
    state            TEXT NOT NULL,         -- draft | approved | discarded
    budget           DOUBLE PRECISION NOT NULL,
    used             DOUBLE PRECISION NOT NULL,
    expected_value   DOUBLE PRECISION NOT NULL,
    holdout_fraction DOUBLE PRECISION NOT NULL,
    seed             BIGINT NOT NULL,
    as_of            TEXT,                  -- YYYY-MM-DD the features were computed at
    goals_file       TEXT,                  -- where the goals came from
    document         TEXT NOT NULL,         -- the plan as JSON, member lists left out
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

CREATE TABLE plan_campaigns (
    campaign_id    TEXT PRIMARY KEY,        -- <plan id>-<goal>-<n>: unique across plans
    plan_id        TEXT NOT NULL REFERENCES plans (id),
    position       BIGINT NOT NULL,        -- order within the plan
    goal           TEXT NOT NULL,
    template       TEXT NOT NULL,
    segments       TEXT NOT NULL,           -- JSON array of segment names
    expected_value DOUBLE PRECISION NOT NULL,
    cost           DOUBLE PRECISION NOT NULL,
    recipients     BIGINT NOT NULL,
    holdout        BIGINT NOT NULL,
    details        TEXT NOT NULL            -- JSON: rates, power, rationale
);
CREATE INDEX plan_campaigns_plan ON plan_campaigns (plan_id, position);

-- Frozen members: who a campaign mails (recipient) and who it holds out (holdout).
CREATE TABLE plan_members (
    campaign_id TEXT NOT NULL REFERENCES plan_campaigns (campaign_id),
    customer_id TEXT NOT NULL,
    holdout     BIGINT NOT NULL,           -- 0 recipient, 1 holdout
    PRIMARY KEY (campaign_id, customer_id)
);
CREATE INDEX plan_members_customer ON plan_members (customer_id);
