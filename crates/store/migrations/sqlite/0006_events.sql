-- Tracking events: opens, clicks, unsubscribes and views of a send (one campaign email to one
-- recipient), with the time, a bot/prefetch flag and, for clicks, the signed target URL.
CREATE TABLE events (
    id         INTEGER PRIMARY KEY,
    send_id    INTEGER NOT NULL,
    kind       TEXT NOT NULL,       -- open | click | unsubscribe | view
    at         INTEGER NOT NULL,    -- Unix seconds (UTC)
    bot        INTEGER NOT NULL DEFAULT 0,  -- 1: a prefetch, proxy or scanner, not a person
    url        TEXT,                -- click target
    user_agent TEXT
);
CREATE INDEX events_send ON events (send_id, kind);
