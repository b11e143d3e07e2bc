-- Erased customers (GDPR erasure): the address is kept only as the SHA-256 of its trimmed,
-- lowercase form, so a later import of the same address cannot make it mailable again. The
-- planner's exclusions and the send-time check both consult it.
CREATE TABLE erased_hashes (
    hash       TEXT PRIMARY KEY,    -- lowercase hex SHA-256 of the lowercase address
    erased_at  INTEGER NOT NULL        -- Unix seconds
);
