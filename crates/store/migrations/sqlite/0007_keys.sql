-- Integer keys and per-customer aggregates. Customers get an integer key (the external id and
-- the email stay as attributes); orders are keyed by (customer key, order key) with the day and
-- the amount in exact minor units (hundredths); customer_stats holds each customer's folded
-- orders, recomputed by every import. The orders are copied over by code (their keys are hashes
-- of the order ids), see migrate.rs.
CREATE TABLE customers_v7 (
    key         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    email       TEXT,
    email_valid INTEGER NOT NULL DEFAULT 0,
    first_name  TEXT,
    last_name   TEXT,
    subscribed  INTEGER,
    signup_date TEXT,
    locale      TEXT,
    attributes  TEXT NOT NULL DEFAULT '{}',
    updated_at  INTEGER NOT NULL
);
INSERT INTO customers_v7 (id, email, email_valid, first_name, last_name, subscribed, signup_date, locale, attributes, updated_at)
    SELECT id, email, email_valid, first_name, last_name, subscribed, signup_date, locale, attributes, updated_at
    FROM customers ORDER BY id;
DROP TABLE customers;
ALTER TABLE customers_v7 RENAME TO customers;
CREATE INDEX customers_email ON customers (email);

ALTER TABLE orders RENAME TO orders_v6;
CREATE TABLE orders (
    ckey      INTEGER NOT NULL,     -- customers.key
    okey      INTEGER NOT NULL,     -- order_key(order_ref) (+ occurrence for id-less rows)
    order_ref TEXT,                 -- the export's order id; NULL for a row without one
    day       INTEGER NOT NULL,     -- days since 1970-01-01
    at        INTEGER NOT NULL,     -- Unix seconds
    amount    INTEGER NOT NULL,     -- minor units (hundredths), signed: returns are negative
    items     INTEGER NOT NULL,
    cancelled INTEGER NOT NULL,     -- 1: a line was a cancellation/return
    currency  TEXT,
    product   TEXT,
    import_id INTEGER NOT NULL,
    PRIMARY KEY (ckey, okey)
) WITHOUT ROWID;

CREATE TABLE customer_stats (
    ckey            INTEGER PRIMARY KEY,
    first_day       INTEGER NOT NULL,
    last_day        INTEGER NOT NULL,
    purchase_days   INTEGER NOT NULL,
    purchases       INTEGER NOT NULL,
    returns         INTEGER NOT NULL,
    purchase_total  INTEGER NOT NULL,
    returns_total   INTEGER NOT NULL,
    first_day_total INTEGER NOT NULL,
    last_order_day  INTEGER NOT NULL
);
