-- Deliverability: bounces and complaints reported after a send (DSN, RFC 3464; ARF, RFC 5965),
-- each tied to its send; the reason a campaign paused itself; sends found by Message-ID.
CREATE TABLE deliverability_events (
    id          BIGSERIAL PRIMARY KEY,
    send_id     BIGINT NOT NULL,
    campaign_id TEXT NOT NULL,
    email       TEXT NOT NULL,         -- the send's address, lowercase
    domain      TEXT NOT NULL,         -- its domain, lowercase
    kind        TEXT NOT NULL,         -- bounce_hard | bounce_soft | complaint
    status      TEXT,                  -- DSN status (5.1.1) or ARF feedback type (abuse)
    detail      TEXT,                  -- diagnostic code, user agent …
    fingerprint TEXT NOT NULL UNIQUE,  -- one report recorded once, however often it is read
    at          BIGINT NOT NULL        -- Unix seconds, when it was recorded
);
CREATE INDEX deliverability_campaign ON deliverability_events (campaign_id, kind);
CREATE INDEX deliverability_email ON deliverability_events (email, kind, at);
CREATE INDEX sends_message_id ON sends (message_id);
ALTER TABLE send_campaigns ADD COLUMN reason TEXT;                        -- why it paused itself
ALTER TABLE send_campaigns ADD COLUMN guardrail_override BIGINT NOT NULL DEFAULT 0;
