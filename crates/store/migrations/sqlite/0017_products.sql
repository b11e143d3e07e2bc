-- Products (the catalogue emails link to, and every product named by an order line), order
-- lines (what each order contained: product, quantity, amount, returns), and the newest
-- recommendations per customer.
CREATE TABLE products (
    key          INTEGER PRIMARY KEY,   -- product_key(id): a stable hash of the id/SKU
    id           TEXT NOT NULL,
    name         TEXT,
    url          TEXT,
    image_url    TEXT,
    price        INTEGER,               -- minor units
    in_stock     INTEGER NOT NULL DEFAULT 1,
    category     TEXT,
    in_catalogue INTEGER NOT NULL DEFAULT 0, -- 1: imported by `retain import products`
    updated_at   INTEGER NOT NULL
);

CREATE TABLE order_items (
    ckey      INTEGER NOT NULL,     -- customers.key
    okey      INTEGER NOT NULL,     -- orders.okey
    pkey      INTEGER NOT NULL,     -- products.key
    day       INTEGER NOT NULL,     -- the order's day
    quantity  INTEGER NOT NULL,     -- signed: returned lines are negative
    amount    INTEGER NOT NULL,     -- minor units, signed
    cancelled INTEGER NOT NULL,     -- 1: the line was a cancellation/return
    import_id INTEGER NOT NULL,
    PRIMARY KEY (ckey, okey, pkey)
) WITHOUT ROWID;

CREATE TABLE recommendations (
    ckey    INTEGER NOT NULL,
    rank    INTEGER NOT NULL,
    pkey    INTEGER NOT NULL,
    score   REAL NOT NULL,
    made_at INTEGER NOT NULL,
    PRIMARY KEY (ckey, rank)
) WITHOUT ROWID;

-- Per customer, the product due to be bought again (replenishment timing, as of made_at).
CREATE TABLE replenishment_due (
    ckey          INTEGER PRIMARY KEY,
    pkey          INTEGER NOT NULL,
    last_day      INTEGER NOT NULL,
    interval_days INTEGER NOT NULL,
    due_day       INTEGER NOT NULL,     -- last_day + interval_days
    own           INTEGER NOT NULL,     -- 1: the customer's own interval
    made_at       INTEGER NOT NULL
);
