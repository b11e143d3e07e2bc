-- Customers, orders, imports and the suppression list.
CREATE TABLE customers (
    id          TEXT PRIMARY KEY,
    email       TEXT,
    email_valid BIGINT NOT NULL DEFAULT 0,
    first_name  TEXT,
    last_name   TEXT,
    subscribed  BIGINT,            -- 1 opted in, 0 opted out, NULL unknown
    signup_date TEXT,               -- YYYY-MM-DD
    locale      TEXT,
    attributes  TEXT NOT NULL DEFAULT '{}',  -- JSON object
    updated_at  BIGINT NOT NULL
);
CREATE INDEX customers_email ON customers (email);

CREATE TABLE orders (
    customer_id TEXT NOT NULL,
    order_id    TEXT NOT NULL,
    ordered_at  BIGINT NOT NULL,   -- Unix seconds of the shop's local time
    amount      DOUBLE PRECISION NOT NULL,      -- negative for returns
    items       BIGINT NOT NULL,
    is_return   BIGINT NOT NULL,
    currency    TEXT,
    email       TEXT,
    product     TEXT,
    import_id   BIGINT NOT NULL,
    PRIMARY KEY (customer_id, order_id)
);
CREATE INDEX orders_ordered_at ON orders (ordered_at);

CREATE TABLE imports (
    id             BIGSERIAL PRIMARY KEY,
    kind           TEXT NOT NULL,   -- orders | customers
    file           TEXT NOT NULL,
    rows_read      BIGINT NOT NULL,
    rows_imported  BIGINT NOT NULL,
    rows_rejected  BIGINT NOT NULL,
    created_at     BIGINT NOT NULL
);

CREATE TABLE suppressions (
    email      TEXT PRIMARY KEY,    -- lowercase
    reason     TEXT NOT NULL,       -- unsubscribed | hard_bounce | complaint | manual
    source     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
