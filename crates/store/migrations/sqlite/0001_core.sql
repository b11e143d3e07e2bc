-- Customers, orders, imports and the suppression list.
CREATE TABLE customers (
    id          TEXT PRIMARY KEY,
    email       TEXT,
    email_valid INTEGER NOT NULL DEFAULT 0,
    first_name  TEXT,
    last_name   TEXT,
    subscribed  INTEGER,            -- 1 opted in, 0 opted out, NULL unknown
    signup_date TEXT,               -- YYYY-MM-DD
    locale      TEXT,
    attributes  TEXT NOT NULL DEFAULT '{}',  -- JSON object
    updated_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX customers_email ON customers (email);

CREATE TABLE orders (
    customer_id TEXT NOT NULL,
    order_id    TEXT NOT NULL,
    ordered_at  INTEGER NOT NULL,   -- Unix seconds of the shop's local time
    amount      REAL NOT NULL,      -- negative for returns
    items       INTEGER NOT NULL,
    is_return   INTEGER NOT NULL,
    currency    TEXT,
    email       TEXT,
    product     TEXT,
    import_id   INTEGER NOT NULL,
    PRIMARY KEY (customer_id, order_id)
) WITHOUT ROWID;
CREATE INDEX orders_ordered_at ON orders (ordered_at);

CREATE TABLE imports (
    id             INTEGER PRIMARY KEY,
    kind           TEXT NOT NULL,   -- orders | customers
    file           TEXT NOT NULL,
    rows_read      INTEGER NOT NULL,
    rows_imported  INTEGER NOT NULL,
    rows_rejected  INTEGER NOT NULL,
    created_at     INTEGER NOT NULL
);

CREATE TABLE suppressions (
    email      TEXT PRIMARY KEY,    -- lowercase
    reason     TEXT NOT NULL,       -- unsubscribed | hard_bounce | complaint | manual
    source     TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
