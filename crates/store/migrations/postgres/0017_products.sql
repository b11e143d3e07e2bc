-- Products (the catalogue emails link to, and every product named by an order line), order
-- lines (what each order contained: product, quantity, amount, returns), and the newest
-- recommendations per customer.
CREATE TABLE products (
    key          BIGINT PRIMARY KEY,   -- product_key(id): a stable hash of the id/SKU
    id           TEXT NOT NULL,
    name         TEXT,
    url          TEXT,
    image_url    TEXT,
    price        BIGINT,               -- minor units
    in_stock     BIGINT NOT NULL DEFAULT 1,
    category     TEXT,
    in_catalogue BIGINT NOT NULL DEFAULT 0, -- 1: imported by `retain import products`
    updated_at   BIGINT NOT NULL
);

CREATE TABLE order_items (
    ckey      BIGINT NOT NULL,     -- customers.key
    okey      BIGINT NOT NULL,     -- orders.okey
    pkey      BIGINT NOT NULL,     -- products.key
    day       BIGINT NOT NULL,     -- the order's day
    quantity  BIGINT NOT NULL,     -- signed: returned lines are negative
    amount    BIGINT NOT NULL,     -- minor units, signed
    cancelled BIGINT NOT NULL,     -- 1: the line was a cancellation/return
    import_id BIGINT NOT NULL,
    PRIMARY KEY (ckey, okey, pkey)
);

CREATE TABLE recommendations (
    ckey    BIGINT NOT NULL,
    rank    BIGINT NOT NULL,
    pkey    BIGINT NOT NULL,
    score   DOUBLE PRECISION NOT NULL,
    made_at BIGINT NOT NULL,
    PRIMARY KEY (ckey, rank)
);

-- Per customer, the product due to be bought again (replenishment timing, as of made_at).
CREATE TABLE replenishment_due (
    ckey          BIGINT PRIMARY KEY,
    pkey          BIGINT NOT NULL,
    last_day      BIGINT NOT NULL,
    interval_days BIGINT NOT NULL,
    due_day       BIGINT NOT NULL,     -- last_day + interval_days
    own           BIGINT NOT NULL,     -- 1: the customer's own interval
    made_at       BIGINT NOT NULL
);
