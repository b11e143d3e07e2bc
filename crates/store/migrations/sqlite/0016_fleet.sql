-- Several senders: row claims instead of a campaign lease, the workers that hold them (with
-- heartbeats on the database's clock), campaign schedules for `retain worker`, and shared rate
-- limits (one pacing row per key, e.g. a campaign or a recipient domain).
-- A claimed row stays `queued` with its worker and the claim's expiry (Unix seconds, database
-- clock); it becomes `sending` only right before its own SMTP transaction.
ALTER TABLE sends ADD COLUMN claimed_by TEXT;
ALTER TABLE sends ADD COLUMN claim_expires_at INTEGER;
CREATE INDEX sends_claimed_by ON sends (claimed_by);

CREATE TABLE send_workers (
    id           TEXT PRIMARY KEY,      -- host:pid:random
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,      -- Unix seconds, database clock
    heartbeat_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,      -- dead when no heartbeat came by then
    stopped_at   INTEGER                -- set on a clean stop or when found dead
);

CREATE TABLE send_schedules (
    campaign_id TEXT PRIMARY KEY,
    send_at     INTEGER NOT NULL,       -- Unix seconds (UTC): workers send it from then on
    created_at  INTEGER NOT NULL,
    queued_at   INTEGER                 -- when a worker queued its audience
);

CREATE TABLE send_rate_limits (
    key        TEXT PRIMARY KEY,        -- campaign:<id> | domain:<domain>
    next_at    REAL NOT NULL,           -- the next free slot, Unix seconds (database clock)
    throttled  INTEGER NOT NULL DEFAULT 0, -- 421/451 answers recorded for the key
    updated_at REAL NOT NULL
);
