-- The send ledger: one row per (campaign, recipient) with its delivery state, the per-campaign
-- send state (active | paused | cancelled) and the lease that lets one sender at a time work on
-- a campaign. Holdout members get no row: they are never mailed.
CREATE TABLE sends (
    id              INTEGER PRIMARY KEY,   -- the send id (tracking tokens carry it)
    campaign_id     TEXT NOT NULL,
    customer_id     TEXT NOT NULL,
    email           TEXT NOT NULL,
    state           TEXT NOT NULL,         -- queued | sending | sent | failed | suppressed
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    permanent       INTEGER NOT NULL DEFAULT 0,  -- 1: last_error is a permanent (5xx) failure
    message_id      TEXT NOT NULL,         -- assigned when queued, kept across retries
    next_attempt_at INTEGER NOT NULL DEFAULT 0,  -- Unix seconds; a retry waits until then
    queued_at       INTEGER NOT NULL,
    sending_at      INTEGER,               -- when the last attempt was claimed
    sent_at         INTEGER,               -- when the server answered 250
    updated_at      INTEGER NOT NULL,
    UNIQUE (campaign_id, customer_id)
);
CREATE INDEX sends_campaign_state ON sends (campaign_id, state, id);
CREATE INDEX sends_customer ON sends (customer_id);

CREATE TABLE send_campaigns (
    campaign_id TEXT PRIMARY KEY,
    state       TEXT NOT NULL,             -- active | paused | cancelled
    updated_at  INTEGER NOT NULL
);

CREATE TABLE send_leases (
    campaign_id TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    expires_at  INTEGER NOT NULL           -- Unix seconds
);
