-- Dashboard sessions, so a restart of `retain serve` does not log everyone out. The cookie's
-- token is never stored: only its SHA-256 (hex). Each session has its role (admin | viewer) and
-- the CSRF token its forms must send back. Times are Unix seconds (UTC); a session whose
-- expires_at has passed is gone (expired rows are deleted at the next login).
CREATE TABLE web_sessions (
    token_hash TEXT PRIMARY KEY,
    role       TEXT NOT NULL,
    csrf       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX web_sessions_expires ON web_sessions (expires_at);
